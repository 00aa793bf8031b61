"""A throwaway OpenSSH server on 127.0.0.1 for tests and benchmarks.

    from sshd_server import LoopbackSSHD

    with LoopbackSSHD("/tmp/somedir") as srv:
        subprocess.run(srv.ssh_argv + [srv.login, "echo ok"])   # login = user@127.0.0.1
        subprocess.run(srv.scp_argv + ["f", srv.target("/tmp/f")])
        subprocess.run(["rsync", "-e", srv.ssh_cmd, "f", srv.target("/tmp/f")])
        srv.run("echo ok", text=True).stdout                     # -> "ok\n"

``start()`` makes a fresh ed25519 host key and a fresh ed25519 user key in the
work directory, writes an ``sshd_config`` that lets exactly the current user in
with that key (and nothing else: no passwords, no env passing), runs
``sshd -D -e`` on a free port on 127.0.0.1 and returns once a real ``ssh ...
true`` has succeeded. ``stop()`` ends the listener and any session processes
it forked. Only the standard library is used (no pytest).

Works as root (sshd then needs /run/sshd, which is created) and unprivileged
(sshd then can only log in the user it runs as - the current user - which is
all this wants).

Notes on the remote side:
  * sessions get sshd's minimal environment (PATH=/usr/local/bin:/usr/bin:...),
    not the caller's - pass full paths (e.g. the venv's pydelta) to remote
    commands;
  * the remote command runs under the user's login shell from /etc/passwd
    (``$SHELL -c CMD``). Debian's bash would source ~/.bashrc for it; by
    default the server sets SHLVL=1 for sessions, which makes bash skip that
    (``shell_rc=True`` keeps the normal behaviour; a .bashrc that prints
    anything would then corrupt binary protocols over stdout);
  * as root with ``UsePAM no`` sshd refuses accounts whose /etc/shadow
    password field starts with "!" ("account is locked"), even for key
    logins. start() detects that and then runs sshd with ``UsePAM yes``
    (PAM's account check does not care; password methods stay off). The
    account database is never changed. In containers without
    CAP_AUDIT_CONTROL the "sshd" PAM stack's ``session required
    pam_loginuid.so`` fails every login ("pam_open_session(): Cannot
    make/remove an entry"); start() then runs sshd once more through a
    symlink named ``pydelta-test-sshd`` in the work directory: sshd names
    its PAM service after the program, so PAM uses the distribution's
    default stack (/etc/pam.d/other; Debian: the common-* files, no
    pam_loginuid). Unprivileged sshd cannot read /etc/shadow and has no
    such check for ordinary users.

Manual / benchmark use::

    python tests/sshd_server.py WORKDIR

prints the ssh command (for ``rsync -e`` / ``pydelta -e``) and the target
prefix, then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

__all__ = ["LoopbackSSHD"]

_SSHD_FALLBACK = "/usr/sbin/sshd"


def _find_sshd() -> Optional[str]:
    found = shutil.which("sshd")
    if found:
        return os.path.abspath(found)  # sshd re-execs itself: needs an absolute path
    if os.access(_SSHD_FALLBACK, os.X_OK):
        return _SSHD_FALLBACK
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ppids() -> Dict[int, int]:
    """pid -> parent pid for every process (Linux /proc; empty elsewhere)."""
    out: Dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for e in entries:
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..." - comm may contain spaces and parens
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) > 1:
            out[int(e)] = int(rest[1])
    return out


def _descendants(pid: int) -> List[Tuple[int, int]]:
    """All descendants of ``pid`` as (pid, depth), parents before children."""
    kids: Dict[int, List[int]] = {}
    for p, pp in _ppids().items():
        kids.setdefault(pp, []).append(p)
    out: List[Tuple[int, int]] = []
    todo = [(k, 1) for k in kids.get(pid, [])]
    while todo:
        p, depth = todo.pop(0)
        out.append((p, depth))
        todo.extend((k, depth + 1) for k in kids.get(p, []))
    return out


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def _wait_gone(pids: List[int], reaped: bool, timeout: float = 2.0) -> None:
    """Wait until ``pids`` have exited (SIGKILL after ``timeout``); if ``reaped``,
    also give their parents a moment to reap them."""
    end = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.002)
        if _alive(pid):
            _kill(pid, signal.SIGKILL)
    if reaped:
        end = time.monotonic() + 0.5
        for pid in pids:
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
                time.sleep(0.002)


def _wait_stopped(pid: int, timeout: float = 1.0) -> None:
    """Wait until ``pid`` is in state T (stopped) after a SIGSTOP."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return
        if stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"T", b"t", b"Z"):
            return
        time.sleep(0.002)


# sshd's log line when the PAM session stack refuses a login
_PAM_SESSION_FAILED = "pam_open_session()"
# the program name (hence PAM service) of sshd's fallback run, see the notes
_PAM_ALIAS = "pydelta-test-sshd"


class _PamSessionRefused(RuntimeError):
    """The "sshd" PAM stack refused to open a session (e.g. pam_loginuid)."""


def _account_locked(user: str) -> bool:
    """True if sshd (as root, UsePAM no) would refuse ``user`` as locked."""
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == user and len(fields) > 1:
                    return fields[1].startswith("!")
    except OSError:
        pass
    return False


class LoopbackSSHD:
    """An sshd on 127.0.0.1:<free port> that lets the current user in by key."""

    host = "127.0.0.1"

    def __init__(self, workdir: str, log_level: str = "INFO", shell_rc: bool = False) -> None:
        # INFO (not ERROR) because sshd's reasons for refusing a login
        # ("account is locked", "not allowed because ...") are logged at INFO.
        # The log is a file in workdir; it only matters when something fails.
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.log_level = log_level
        # shell_rc=False: sessions get SHLVL=1 (sshd SetEnv), so bash, which
        # on Debian sources ~/.bashrc for commands run by sshd when SHLVL < 2,
        # skips it: sessions start faster and do not depend on (or hang in)
        # the account's dotfiles - e.g. root's `pyenv init` on the dev box,
        # whose rehash lock can stall a login for 60 s.
        self.shell_rc = shell_rc
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port: int = 0
        self.key = os.path.join(self.workdir, "id_ed25519")
        self.host_key = os.path.join(self.workdir, "ssh_host_ed25519_key")
        self.authorized_keys = os.path.join(self.workdir, "authorized_keys")
        self.config = os.path.join(self.workdir, "sshd_config")
        self.pid_file = os.path.join(self.workdir, "sshd.pid")
        self.log = os.path.join(self.workdir, "sshd.log")
        self.proc: Optional[subprocess.Popen] = None
        self.startup_seconds: Optional[float] = None
        self.use_pam = False  # set by start(): only for a locked account, as root
        # set by start() when the "sshd" PAM session stack refused the login:
        # sshd then runs through a symlink, so its PAM service is this name
        self.pam_service: Optional[str] = None

    # ------------------------------------------------------------ discovery

    @staticmethod
    def available() -> bool:
        """True if sshd, ssh and ssh-keygen are all installed."""
        return bool(_find_sshd() and shutil.which("ssh") and shutil.which("ssh-keygen"))

    @staticmethod
    def missing() -> List[str]:
        """Names of the missing binaries (for skip messages)."""
        out = []
        if not _find_sshd():
            out.append("sshd")
        for b in ("ssh", "ssh-keygen"):
            if not shutil.which(b):
                out.append(b)
        return out

    # ------------------------------------------------------------ client side

    def _client_opts(self) -> List[str]:
        return [
            "-i", self.key,
            "-o", "IdentitiesOnly=yes",  # ignore any ssh-agent keys
            "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",
            "-F", "/dev/null",
        ]  # fmt: skip

    @property
    def ssh_argv(self) -> List[str]:
        """``ssh`` plus options; append ``user@host`` (or -l) and the command."""
        return ["ssh", "-p", str(self.port)] + self._client_opts()

    @property
    def ssh_cmd(self) -> str:
        """ssh_argv as one shell-quoted string (for ``rsync -e`` / ``pydelta -e``)."""
        return shlex.join(self.ssh_argv)

    @property
    def scp_argv(self) -> List[str]:
        """``scp`` plus options; append the sources and the destination."""
        return ["scp", "-P", str(self.port)] + self._client_opts()

    @property
    def login(self) -> str:
        """``user@127.0.0.1`` (the ssh destination)."""
        return f"{self.user}@{self.host}"

    def target(self, path) -> str:
        """``user@127.0.0.1:path`` (an scp/rsync/pydelta-sync remote path)."""
        return f"{self.user}@{self.host}:{os.fspath(path)}"

    def run(self, command: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run ``command`` on the server over ssh (captures output by default)."""
        kw.setdefault("capture_output", True)
        return subprocess.run(self.ssh_argv + [self.login, command], timeout=timeout, **kw)

    # ------------------------------------------------------------ server side

    def _keygen(self, path: str, comment: str) -> None:
        for p in (path, path + ".pub"):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
            check=True,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    def _write_config(self) -> None:
        lines = [
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"PidFile {self.pid_file}",
            # PAM (when on) only does account/session: no password methods
            "UsePAM yes" if self.use_pam else "UsePAM no",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "AuthenticationMethods publickey",
            f"AllowUsers {self.user}",
            "PermitUserEnvironment no",
            # no AcceptEnv line: sshd's default accepts no client variables
            "X11Forwarding no",
            "AllowAgentForwarding no",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "MaxStartups 100",  # parallel test/bench connections
            "MaxSessions 100",
            "Subsystem sftp internal-sftp",  # scp (OpenSSH >= 9) speaks sftp
            *([] if self.shell_rc else ["SetEnv SHLVL=1"]),
            f"LogLevel {self.log_level}",
        ]
        if os.geteuid() == 0:
            lines.append("PermitRootLogin prohibit-password")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _log_tail(self, n: int = 25) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no sshd log)"

    def _pam_session_refused(self) -> bool:
        """True if the "sshd" PAM stack refused a session (then retry aliased)."""
        return self.use_pam and self.pam_service is None and _PAM_SESSION_FAILED in self._log_tail()

    def _probe(self, timeout: float = 5) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.ssh_argv + ["-o", "ConnectTimeout=5", self.login, "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, timeout: float = 15.0, attempts: int = 5) -> "LoopbackSSHD":
        if self.proc is not None:
            return self
        t0 = time.monotonic()
        sshd = _find_sshd()
        if not self.available() or sshd is None:
            raise RuntimeError(f"cannot run a loopback sshd: missing {', '.join(self.missing())}")
        if os.geteuid() == 0:
            # privilege-separation chroot; packages create it only at boot/start
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
            # sshd with UsePAM no refuses key logins to "locked" accounts
            # (shadow password "!..."); PAM's account check does not mind
            self.use_pam = _account_locked(self.user)
        os.makedirs(self.workdir, exist_ok=True)
        self._keygen(self.host_key, "pydelta-test-host")
        self._keygen(self.key, "pydelta-test-user")
        os.chmod(self.key, 0o600)
        with open(self.key + ".pub") as src, open(self.authorized_keys, "w") as dst:
            dst.write(src.read())

        try:
            try:
                self._launch(sshd, t0, timeout, attempts)
            except _PamSessionRefused:
                # the "sshd" PAM stack cannot open sessions here (see the
                # module notes): run sshd under a PAM service name of our own
                alias = os.path.join(self.workdir, _PAM_ALIAS)
                if os.path.lexists(alias):
                    os.unlink(alias)
                os.symlink(sshd, alias)
                self.pam_service = _PAM_ALIAS
                self._launch(alias, time.monotonic(), timeout, attempts)
        except BaseException:
            self._stop_proc()
            raise
        return self

    def _launch(self, sshd: str, t0: float, timeout: float, attempts: int) -> None:
        deadline = t0 + timeout
        last_err = ""
        for _ in range(attempts):
            self.port = _free_port()
            self._write_config()
            # check the config first: a bad one should fail loudly, not as a timeout
            chk = subprocess.run([sshd, "-t", "-f", self.config], capture_output=True, text=True)
            if chk.returncode != 0:
                raise RuntimeError(f"sshd -t rejected {self.config}:\n{chk.stderr}")
            if os.path.exists(self.pid_file):
                os.unlink(self.pid_file)
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    [sshd, "-D", "-e", "-f", self.config],
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,  # no SIGINT from the terminal
                )
            err = self._wait_ready(deadline)
            if err is None:
                self.startup_seconds = time.monotonic() - t0
                return
            last_err = err
            self._stop_proc()
            if self._pam_session_refused():
                raise _PamSessionRefused(err)
            if "bind" not in err.lower() and "address already in use" not in err.lower():
                break  # not a port race: retrying will not help
            if time.monotonic() > deadline:
                break
        hint = ""
        if self.use_pam:
            service = self.pam_service or "sshd"
            hint = (
                f"\n(the account {self.user!r} is locked in /etc/shadow, so sshd ran with "
                f"UsePAM yes and PAM service {service!r}; that PAM stack must allow a "
                f"key login's account and session checks)"
            )
        raise RuntimeError(
            f"loopback sshd did not come up on {self.host}:{self.port}: {last_err}\n"
            f"--- tail of {self.log}:\n{self._log_tail()}{hint}"
        )

    def _wait_ready(self, deadline: float) -> Optional[str]:
        """None once ``ssh true`` works, else why not."""
        assert self.proc is not None
        last = "timed out"
        delay = 0.02
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"sshd exited with status {self.proc.returncode}: " + self._log_tail(5)
            # sshd writes its PidFile only after it is listening (a TCP probe
            # would work too but leaves a "kex_exchange_identification" line
            # in the log)
            if not os.path.exists(self.pid_file):
                last = "sshd not listening yet (no pid file)"
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            try:
                r = self._probe(timeout=max(1.0, min(10.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                last = "ssh true timed out"
                continue
            if r.returncode == 0:
                return None
            if self._pam_session_refused():
                return f"PAM refused the session: {r.stderr.strip()}"
            last = f"ssh true failed ({r.returncode}): {r.stderr.strip()}"
            if "Permission denied" in r.stderr:
                return last  # an auth problem does not go away by waiting
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        return last

    def _stop_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._end_sessions(proc.pid)
            except ProcessLookupError:
                pass
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @staticmethod
    def _end_sessions(listener: int) -> None:
        """End every process below the sshd listener, deepest first.

        Each connection is a forked child of the listener that calls setsid(),
        and the remote command runs in a session of its own, so neither dies
        with the listener (a command that does not read stdin would outlive
        it). The listener is frozen (no new connections) while the tree is
        ended from the leaves up, each level (with its process group, which
        catches double-forked background jobs) before its parents, so every
        parent reaps its children and nothing is left as a zombie for init.
        """
        os.kill(listener, signal.SIGSTOP)
        try:
            _wait_stopped(listener)
            tree = _descendants(listener)
            for depth in sorted({d for _, d in tree}, reverse=True):
                level = [p for p, d in tree if d == depth]
                for pid in level:
                    _kill(pid, signal.SIGTERM)
                    try:
                        if os.getpgid(pid) == pid:
                            os.killpg(pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                # the listener is stopped: its own children stay zombies for now
                _wait_gone(level, reaped=depth > 1)
        finally:
            os.kill(listener, signal.SIGCONT)
        end = time.monotonic() + 1
        while _descendants(listener) and time.monotonic() < end:
            time.sleep(0.005)  # the listener reaps its children

    def stop(self) -> None:
        """Stop sshd and its sessions; safe to call more than once."""
        self._stop_proc()

    def __enter__(self) -> "LoopbackSSHD":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.proc.pid}" if self.proc else "stopped"
        return f"<LoopbackSSHD {self.login}:{self.port} ({state}) in {self.workdir}>"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(f"usage: {os.path.basename(sys.argv[0])} WORKDIR", file=sys.stderr)
        return 2
    srv = LoopbackSSHD(argv[0])
    stop = []

    def on_signal(signum, frame):
        stop.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        srv.start()
        print(f"ssh_cmd={srv.ssh_cmd}")
        print(f"target={srv.target('')}")
        print(f"# started in {srv.startup_seconds:.2f}s; sshd pid {srv.proc.pid}; "
              f"log {srv.log}; Ctrl-C / SIGTERM stops", flush=True)  # fmt: skip
        while not stop:
            if srv.proc is None or srv.proc.poll() is not None:
                print("sshd exited:\n" + srv._log_tail(), file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
