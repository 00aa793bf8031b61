"""The loopback sshd harness itself (tests/sshd_server.py, the `sshd` fixture)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from sshd_server import LoopbackSSHD


def test_echo(sshd):
    r = subprocess.run(
        sshd.ssh_argv + [sshd.login, "echo ok"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"


def test_remote_user_and_env(sshd):
    r = sshd.run('printf "%s %s %s" "$(id -un)" "$USER" "$HOME"', text=True)
    assert r.returncode == 0, r.stderr
    user, env_user, home = r.stdout.split(" ")
    assert user == env_user == sshd.user
    assert home  # a login environment, not ours
    assert sshd.port > 1024 and sshd.host == "127.0.0.1"


def test_no_env_passthrough(sshd):
    # SendEnv is not configured and the server accepts no variables: the remote
    # side must not see ours
    env = dict(os.environ, PYDELTA_HARNESS_PROBE="leak", LC_PYDELTA="leak")
    r = sshd.run('echo "[$PYDELTA_HARNESS_PROBE$LC_PYDELTA]"', text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "[]\n"


def test_exit_status_and_stdin(sshd):
    r = sshd.run("cat; exit 7", input=b"\x00\xffbinary\n")
    assert r.returncode == 7
    assert r.stdout == b"\x00\xffbinary\n"


def test_scp_roundtrip(sshd, tmp_path):
    data = os.urandom(200_000) + b"\x00\r\n end"
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    remote = tmp_path / "remote dir"  # the server is this machine
    remote.mkdir()
    src.write_bytes(data)
    up = subprocess.run(
        sshd.scp_argv + [str(src), sshd.target(remote / "up.bin")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert (remote / "up.bin").read_bytes() == data
    down = subprocess.run(
        sshd.scp_argv + [sshd.target(remote / "up.bin"), str(back)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert back.read_bytes() == data


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_rsync_over_ssh_cmd(sshd, tmp_path):
    data = os.urandom(300_000)
    src = tmp_path / "a.bin"
    src.write_bytes(data)
    dest = tmp_path / "dest"
    dest.mkdir()
    r = subprocess.run(
        ["rsync", "-a", "-e", sshd.ssh_cmd, str(src), sshd.target(f"{dest}/")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (dest / "a.bin").read_bytes() == data


def test_second_server_and_stop(sshd, tmp_path):
    """A private server next to the session one; stop() is idempotent and leaves nothing."""
    srv = LoopbackSSHD(str(tmp_path / "s2"))
    with srv:
        assert srv.startup_seconds is not None and srv.startup_seconds < 10
        # an open session must not outlive stop()
        session = subprocess.Popen(
            srv.ssh_argv + [srv.login, "sleep 60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert srv.run("true").returncode == 0
        pid = srv.proc.pid
    try:
        assert srv.proc is None
        assert not os.path.exists(f"/proc/{pid}")
        assert session.wait(timeout=10) != 0  # its connection was closed
    finally:
        if session.poll() is None:
            session.kill()
    srv.stop()  # again: a no-op
    r = subprocess.run(
        srv.ssh_argv + ["-o", "ConnectTimeout=3", srv.login, "true"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 255


_LOCKED_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from sshd_server import LoopbackSSHD
with LoopbackSSHD(sys.argv[2]) as srv:
    r = srv.run("id -un", text=True)
    print(srv.use_pam, srv.pam_service, r.returncode, r.stdout.strip())
"""


def _private_mounts_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, timeout=30
    )
    return r.returncode == 0


@pytest.mark.skipif(not LoopbackSSHD.available(), reason="sshd/ssh/ssh-keygen missing")
@pytest.mark.skipif(not _private_mounts_work(), reason="needs root and unshare -m")
@pytest.mark.parametrize("pam_session", ["works", "refused"])
def test_locked_root_needs_no_account_change(tmp_path, pam_session):
    """A locked root account (shadow "!...") gets a key login without usermod.

    Seen only inside a private mount namespace: a copy of /etc/shadow with
    root locked (and, for "refused", an sshd PAM stack whose session step
    fails as pam_loginuid does in containers) is bind-mounted over the real
    file for this one process tree; the host's files are never written.
    """
    shadow = tmp_path / "shadow"
    with open("/etc/shadow") as f:
        lines = f.read().splitlines()
    locked = [
        ("root:!" + ln.split(":", 2)[1].lstrip("!") + ":" + ln.split(":", 2)[2])
        if ln.startswith("root:")
        else ln
        for ln in lines
    ]
    shadow.write_text("\n".join(locked) + "\n")
    shadow.chmod(0o640)
    mounts = f"mount --bind {shadow} /etc/shadow"
    if pam_session == "refused":
        pam = tmp_path / "pam-sshd"
        pam.write_text(
            "auth required pam_deny.so\naccount required pam_permit.so\n"
            "session required pam_deny.so\n"
        )
        mounts += f" && mount --bind {pam} /etc/pam.d/sshd"
    here = os.path.dirname(os.path.abspath(__file__))
    script = tmp_path / "probe.py"
    script.write_text(_LOCKED_PROBE)
    cmd = f'{mounts} && grep -q "^root:!" /etc/shadow && exec "$0" "$@"'
    r = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", cmd,
         sys.executable, str(script), here, str(tmp_path / "srv")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    use_pam, service, rc, user = r.stdout.split()
    assert (use_pam, rc, user) == ("True", "0", "root")
    assert service == ("None" if pam_session == "works" else "pydelta-test-sshd")
