"""pydelta sync over a real OpenSSH server on 127.0.0.1 (tests/sshd_server.py).

Both directions, a folder, a missing file, an identical file, a connection
killed mid-transfer (and the rerun), a remote without pydelta, and the
bytes on the wire for a model-like pair. The server's sessions do not see
our environment, so the remote end is started as ``<this python> -m pydelta``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import rand_bytes, tmp_leftovers
from test_sync import make_tree, model_pair, tree_files, write

import pydelta

PY = sys.executable
REMOTE_CMD = f"{PY} -m pydelta"


def sync(sshd, src, dest, **kw):
    kw.setdefault("remote_cmd", REMOTE_CMD)
    return pydelta.sync(src, dest, ssh=sshd.ssh_argv, **kw)


def test_push_and_pull_a_model_pair(sshd, tmp_path):
    old, new = model_pair(24 << 20, 7)
    local = write(tmp_path / "local" / "model.safetensors", new)
    remote = write(tmp_path / "remote" / "model.safetensors", old)
    r = sync(sshd, str(local), sshd.target(remote))
    assert remote.read_bytes() == new
    assert [f.action for f in r.files] == ["updated"]
    # 3 of 40 tensors changed and everything after the header shifted by one byte
    assert r.total_size == len(new)
    assert r.wire_bytes < 0.10 * len(new), str(r)
    assert r.bytes_received < 0.01 * len(new)  # the signature
    assert r.speedup > 10

    # pull the other way round: the local copy goes back to the old version
    pulled = write(tmp_path / "back" / "model.safetensors", new)
    remote.write_bytes(old)
    r = sync(sshd, sshd.target(remote), str(pulled))
    assert pulled.read_bytes() == old
    assert [f.action for f in r.files] == ["updated"]
    assert r.wire_bytes < 0.10 * len(new), str(r)


def test_missing_and_identical_files(sshd, tmp_path):
    data = rand_bytes(3 << 20, 3)
    local = write(tmp_path / "a.bin", data)
    remote = tmp_path / "remote" / "sub" / "a.bin"  # neither exists yet
    r = sync(sshd, str(local), sshd.target(remote))
    assert remote.read_bytes() == data and r.files[0].action == "created"
    assert len(data) <= r.bytes_sent < len(data) + 4096  # sent whole (incompressible)
    ino = remote.stat().st_ino
    r = sync(sshd, str(local), sshd.target(remote))
    assert r.files[0].action == "unchanged" and remote.stat().st_ino == ino
    assert r.bytes_sent < 1024 and r.wire_bytes < 0.02 * len(data)  # only the signature


def test_folder_both_ways_with_delete(sshd, tmp_path):
    src = tmp_path / "model"
    files = make_tree(src)
    os.symlink("../../outside", src / "link")
    remote = tmp_path / "srv" / "models" / "model"
    r = sync(sshd, str(src), sshd.target(remote))
    assert tree_files(remote) == files and (remote / "emptydir").is_dir()
    assert [f.path for f in r.files if f.action == "skipped"] == ["link"]
    write(remote / "stale.bin", b"old")
    (src / "shards/model-00002.bin").write_bytes(b"retrained" * 1000)
    files["shards/model-00002.bin"] = b"retrained" * 1000
    r = sync(sshd, str(src), sshd.target(remote), delete=True)
    assert tree_files(remote) == files
    assert r.count("updated") == 1 and r.count("deleted") == 1
    local = tmp_path / "pulled"
    r = sync(sshd, sshd.target(remote), str(local))
    assert tree_files(local) == files and r.count("created") == len(files)


def test_remote_without_pydelta(sshd, tmp_path):
    local = write(tmp_path / "a.bin", b"data")
    with pytest.raises(pydelta.RemoteCommandError) as ei:
        sync(
            sshd,
            str(local),
            sshd.target(tmp_path / "b.bin"),
            remote_cmd="/nonexistent/venv/bin/pydelta",
        )
    msg = str(ei.value)
    assert "pydelta is not installed on" in msg and "--remote-cmd" in msg
    assert "\n" not in msg
    assert not (tmp_path / "b.bin").exists()


def test_cli_over_ssh_prints_the_summary(sshd, tmp_path):
    old, new = model_pair(4 << 20, 9)
    local = write(tmp_path / "m.bin", new)
    remote = write(tmp_path / "r" / "m.bin", old)
    p = subprocess.run(
        [
            PY,
            "-m",
            "pydelta",
            "sync",
            "-e",
            sshd.ssh_cmd,
            "--remote-cmd",
            REMOTE_CMD,
            str(local),
            sshd.target(remote),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert remote.read_bytes() == new
    assert "1 file: 0 created, 1 updated" in p.stdout and "speedup is" in p.stdout


def test_unreachable_host_is_a_clear_error(sshd, tmp_path):
    local = write(tmp_path / "a.bin", b"data")
    argv = [a if a != str(sshd.port) else "1" for a in sshd.ssh_argv]  # port 1: refused
    with pytest.raises(pydelta.RemoteCommandError, match="ssh to .* failed"):
        pydelta.sync(str(local), sshd.target(tmp_path / "b.bin"), ssh=argv, remote_cmd=REMOTE_CMD)


# ---------------------------------------------------------------- killed connections


def ssh_recording_pid(sshd, pidfile):
    """The ssh command, run through a shell that writes ssh's pid first."""
    return ["sh", "-c", f'echo $$ > {pidfile}; exec "$@"', "sh", *sshd.ssh_argv]


def wait_no_leftovers(directory, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not tmp_leftovers(directory):
            return []
        time.sleep(0.1)
    return tmp_leftovers(directory)


@pytest.mark.parametrize("direction", ["push", "pull", "push-first-copy"])
def test_killed_connection_keeps_old_content_and_rerun_completes(sshd, tmp_path, direction):
    old, new = rand_bytes(40 << 20, 1), rand_bytes(40 << 20, 2)  # all different
    src = write(tmp_path / "src" / "f.bin", new)
    dst = write(tmp_path / "dst" / "f.bin", old)
    if direction == "push-first-copy":
        dst.unlink()
    pidfile = tmp_path / "ssh.pid"
    killed = []

    at = (20 if direction == "push-first-copy" else 8) << 20

    def kill_midway(st):
        if not killed and st.file_done > at:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            killed.append(st.file_done)

    ends = (sshd.target(src), str(dst)) if direction == "pull" else (str(src), sshd.target(dst))
    with pytest.raises(
        pydelta.ConnectionLostError, match="connection to .* lost: ssh was killed by signal 9"
    ):
        pydelta.sync(
            *ends,
            ssh=ssh_recording_pid(sshd, pidfile),
            remote_cmd=REMOTE_CMD,
            progress=kill_midway,
            compress=False,
        )
    assert killed and killed[0] < len(new)
    if direction != "push-first-copy":
        assert dst.read_bytes() == old
    else:
        assert not dst.exists()
    # the end that was writing drops its temporary file (the remote one as soon as it sees the hang-up)
    assert wait_no_leftovers(dst.parent) == []
    r = sync(sshd, *ends)
    assert dst.read_bytes() == new
    if direction == "push-first-copy":
        # what arrived before the kill was kept beside it, and the rerun sent only the rest
        assert r.files[0].action == "created"
        assert r.bytes_sent < len(new) - (4 << 20), r
        assert not (dst.parent / ".f.bin.pydelta-partial").exists()
    else:
        assert r.files[0].action == "updated"


# ---------------------------------------------------------------- past 4 GiB, bounded memory

# Peak RSS from VmHWM: ru_maxrss would also count the memory of the process
# that forked this one (Linux carries it across exec), here the test runner.
RSS_WRAPPER = """
import atexit, sys
out = sys.argv.pop(1)

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(out, "w").write(line.split()[1])

atexit.register(hwm)
from pydelta.cli import main
sys.argv[0] = "pydelta"
main()
"""


@pytest.mark.slow
def test_sync_past_4gib_in_bounded_memory(sshd, tmp_path):
    """A 4.5 GiB sparse file pushed over ssh: 64-bit offsets, both ends under 200 MiB."""
    from test_large import (
        APPEND,
        NEW_CHANGES,
        NEW_SIZE,
        OLD_SIZE,
        OLD_WRITES,
        _file_digest,
        _make_sparse,
    )

    old = tmp_path / "remote" / "big.bin"
    new = tmp_path / "local" / "big.bin"
    old.parent.mkdir()
    new.parent.mkdir()
    _make_sparse(old, OLD_SIZE, OLD_WRITES)
    _make_sparse(new, OLD_SIZE, OLD_WRITES + NEW_CHANGES)
    with open(new, "ab") as fh:
        fh.write(APPEND)
    wrapper = tmp_path / "rss.py"
    wrapper.write_text(RSS_WRAPPER)
    server_rss, client_rss = tmp_path / "server.rss", tmp_path / "client.rss"
    p = subprocess.run(
        [
            PY,
            str(wrapper),
            str(client_rss),
            "sync",
            "-e",
            sshd.ssh_cmd,
            "--no-fsync",
            "--remote-cmd",
            f"{PY} {wrapper} {server_rss}",
            str(new),
            sshd.target(old),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert p.returncode == 0, p.stderr
    assert "1 updated" in p.stdout
    sent = int(p.stdout.split("sent ")[1].split(" bytes")[0].replace(",", ""))
    assert sent < 8 << 20  # the changes, the appended MiB, the copies
    assert old.stat().st_size == NEW_SIZE
    assert _file_digest(old) == _file_digest(new)
    for f in (server_rss, client_rss):
        kib = int(f.read_text())
        assert kib < 200 * 1024, f"{f.name}: peak RSS {kib} KiB"
