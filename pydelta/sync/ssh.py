"""The ssh side of ``pydelta sync``: locations, and a channel to ``pydelta serve``
run by ssh that explains ssh's own failures."""

from __future__ import annotations

import collections
import os
import re
import shlex
import subprocess
import threading
from typing import List, Optional, Sequence, Tuple, Union

from ..errors import ConnectionLostError, RemoteCommandError, SyncError, UsageError, os_reason
from .wire import Channel


def parse_location(arg: Union[str, "os.PathLike[str]"]) -> Tuple[Optional[str], str]:
    """Split ``[user@]host:path`` into (host, path); a local path gives (None, path).

    As with rsync and scp, a colon before the first slash makes a remote
    location (write ``./a:b`` for a local file named ``a:b``); ``[::1]:path``
    names an IPv6 host. An empty remote path is the remote home directory.
    """
    s = os.fspath(arg)
    if not isinstance(s, str):
        s = os.fsdecode(s)
    m = re.match(r"(?:([^@/:\[]+)@)?\[([^\]/]+)\]:(.*)\Z", s, re.S)
    if m:  # [v6addr]:path, user@[v6addr]:path
        user, host, path = m.groups()
        return (f"{user}@{host}" if user else host), path
    colon = s.find(":")
    slash = s.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return s[:colon], s[colon + 1 :]
    return None, s


class SSHChannel(Channel):
    """A channel to ``<remote-cmd> serve`` run by ssh, that explains ssh's failures."""

    def __init__(
        self, argv: List[str], host: str, remote_cmd: str, timeout: Optional[float] = None
    ) -> None:
        self.argv = argv
        self.host = host
        self.remote_cmd = remote_cmd
        self.started = False
        self._errlines: "collections.deque[str]" = collections.deque(maxlen=40)
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=False,
            )
        except OSError as e:
            raise RemoteCommandError(f"cannot run {argv[0]}: {os_reason(e)}") from None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        super().__init__(self.proc.stdout, self.proc.stdin, host, timeout)  # type: ignore[arg-type]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._errlines.append(line)

    def stderr_text(self) -> str:
        return " / ".join(self._errlines)

    def lost(self, why: str) -> SyncError:
        try:
            rc: Optional[int] = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        self._reader.join(timeout=2)
        said = self.stderr_text()
        said_part = f" (ssh said: {said})" if said else ""
        if not self.started:
            low = said.lower()
            if rc == 255:  # ssh's own failure (ssh's warnings may say "No such file" too)
                return RemoteCommandError(f"ssh to {self.host} failed{said_part or ' (exit 255)'}")
            if (
                rc == 127
                or "command not found" in low
                or "no such file or directory" in low
                or "no module named pydelta" in low
                or "not found" in low
                and self.remote_cmd.split()[0] in said
            ):
                if self.remote_cmd.split()[0] == "pydelta":  # the default: suggest a path
                    how = "give its path with --remote-cmd, e.g. --remote-cmd ~/venv/bin/pydelta"
                else:
                    how = "check the path given with --remote-cmd"
                return RemoteCommandError(
                    f"pydelta is not installed on {self.host}, or not on the PATH of ssh "
                    f"commands there ('{self.remote_cmd}' not found{said_part}): install it "
                    f"there (pip install pydelta-sync), or {how}"
                )
            if "no such command" in low and "serve" in low:
                return RemoteCommandError(
                    f"the pydelta on {self.host} has no 'serve' command (too old): upgrade it there"
                )
            return RemoteCommandError(
                f"'{self.remote_cmd} serve' on {self.host} did not start (exit {rc}){said_part}"
            )
        if rc is not None and rc < 0:
            how = f"ssh was killed by signal {-rc}"
        elif rc is not None:
            how = f"ssh exited with status {rc}"
        else:
            how = why
        return ConnectionLostError(f"connection to {self.host} lost: {how}{said_part}")

    def finish(self, timeout: float = 30.0) -> None:
        """After goodbye: let ssh exit."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass


def ssh_argv(ssh: Union[str, Sequence[str]]) -> List[str]:
    argv = shlex.split(ssh) if isinstance(ssh, str) else [str(a) for a in ssh]
    if not argv:
        raise UsageError("the ssh command is empty")
    return argv
