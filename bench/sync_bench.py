"""Side-by-side benchmark: ``pydelta sync`` against scp and rsync over ssh.

All three tools update a file through the same throwaway OpenSSH server on
127.0.0.1 (tests/sshd_server.py), so they pay the same ssh handshake, the
same cipher and the same loopback "network". Both ends run on this machine
and share its cores.

Cases (model-like pairs from modelgen.py, cached in --work):
    finetune   push: local NEW -> remote OLD (3% of the tensors retrained, the
               header one byte longer, so every data byte shifts) - the main case
    identical  push: the remote copy already has the same content
    missing    push: the remote file does not exist (first copy of finetune NEW)
    pull       (unless --no-pull) finetune the other way: remote NEW -> local OLD
    repeat     push: the second sync of the same destination after a second small
               change (the first, untimed, by the same tool; bench/sync_cases.py)
    folder40   push: a folder of 40 shards, 3 fine-tuned, compared by content
               (rsync -r -c; bench/sync_cases.py)

The 10 GiB point: ``--size 10240 --kinds finetune,repeat --no-pull --repeat 1``
(needs ~35 GiB free in --work; heavy: run it once).

Tools, each run as its own command line:
    pydelta          ``pydelta sync -e SSH --remote-cmd <venv>/pydelta --no-progress``
                     (its defaults: fsync of the result before the rename, zstd
                     literals only while compressing outruns the link)
    pydelta-nofsync  the same with ``--no-fsync`` (rsync and scp do not fsync)
    rsync            ``rsync --no-whole-file -t --stats -e SSH`` (its defaults
                     otherwise: temporary file + rename, no compression)
    scp              ``scp`` with the harness's options (OpenSSH >= 9 speaks SFTP)
    pydelta-nocompress  (only with --tools) ``--no-fsync --no-compress``
    rsync-fsync      (only with --tools) rsync with ``--fsync``

Per case, per repeat, per tool (tools interleaved within each repeat so slow
drift of a noisy machine hits all of them alike):
  1. the destination is prepared fresh and untimed: the OLD file is copied to
     the destination with a plain local copy (for "missing" it is removed),
     leftovers in the destination directory are removed, then ``sync`` flushes
     dirty pages so no writeback of the copy overlaps the timed command.
     Caches are NOT dropped, they are warmed: each case's source and old file
     are read once before its first run, the old copy was just written, and
     every tool did an untimed warm-up on a small file first (binaries,
     Python imports).
  2. the command is timed (wall clock, via run_bench.run_measured, which also
     gives the local client's peak RSS through GNU time);
  3. bytes on the wire are the growth of the loopback interface's rx_bytes
     (/proc/net/dev, ``lo``) across the command: every packet of the ssh
     connection, both directions, TCP/IP headers and encryption included,
     for every tool alike. Other loopback traffic on the machine would add to
     it; the idle background rate is measured at the start and reported;
  4. the tool's own count is parsed from its output: pydelta's summary
     ("sent N bytes  received M bytes") and rsync's --stats ("Total bytes
     sent/received"); scp reports none;
  5. the destination is compared byte for byte with the source (filecmp,
     shallow=False) and the destination directory must hold nothing else
     (no temporary files left behind); a mismatch fails the benchmark.

Times are medians of --repeat runs. Results: bench/results/sync_bench-<size>M.md
and .json (also printed).

A slow link (--link-mbit N): loopback is effectively an unlimited link, so the
CPU, not the network, decides the times there. With --link-mbit N every tool's
ssh connection instead goes through a relay (a small stdlib Python script
written into the scratch dir at run time and given to ssh as
``-o ProxyCommand=...``, the same option for pydelta -e, rsync -e and scp): ssh
talks to the relay over its stdin/stdout, the relay connects to the sshd on
127.0.0.1 and copies bytes both ways, each direction limited to N Mbit/s
(10^6 bit/s of TCP payload, i.e. of ssh's encrypted stream) by a token bucket
that holds at most 64 KiB of credit (no burst saved up while idle; a chunk of
at most 64 KiB passes once the bucket is out of debt and is then debited, so
oversleeping costs no rate), over a socket with 64 KiB send/receive buffers
and TCP_NODELAY - so a sender's writes block as soon as it outruns the link. No
latency is added beyond that pacing. Before the cases, a random file is sent
with scp through the relay both ways to check the achieved rate (recorded).
Results then go to sync_bench-<size>M-<N>mbit.md/.json.

Usage:
    python bench/sync_bench.py                          # 1 GiB, repeat 3
    python bench/sync_bench.py --size 64 --repeat 1     # quick look
    python bench/sync_bench.py --kinds finetune --no-pull --tools pydelta,rsync
    python bench/sync_bench.py --size 256 --link-mbit 200 --kinds finetune,missing --no-pull
    python bench/sync_bench.py --kinds finetune,repeat,folder40 --no-pull --tools pydelta-nofsync,rsync
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # tests/ is not a package

import run_bench  # noqa: E402
import sync_cases  # noqa: E402
from modelgen import make_pair  # noqa: E402
from run_bench import fmt_ratio, run_measured  # noqa: E402
from sshd_server import LoopbackSSHD  # noqa: E402

#: The venv's pydelta script (sshd sessions get a minimal PATH: use it by path on both ends).
PYDELTA = os.path.join(os.path.dirname(sys.executable), "pydelta")

CASES = ("finetune", "identical", "missing", "repeat", "folder40")
#: How the far end runs pydelta (main() points its signature cache into the scratch dir).
REMOTE = [PYDELTA]
DEFAULT_TOOLS = ("pydelta", "pydelta-nofsync", "rsync", "scp")
ALL_TOOLS = ("pydelta", "pydelta-nofsync", "pydelta-nocompress", "rsync", "rsync-fsync", "scp")


# -- measuring -------------------------------------------------------------------


def lo_counters() -> Tuple[int, int]:
    """(rx_bytes, rx_packets) of the loopback interface.

    On ``lo`` every packet is transmitted and received once, so rx counts both
    directions of every connection exactly once.
    """
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                fields = rest.split()
                return int(fields[0]), int(fields[1])
    raise RuntimeError("no loopback interface 'lo' in /proc/net/dev")


def lo_background(seconds: float = 2.0) -> float:
    """Loopback bytes per second while this benchmark sends nothing."""
    a = lo_counters()[0]
    time.sleep(seconds)
    return (lo_counters()[0] - a) / seconds


_PYDELTA_SENT = re.compile(r"sent ([\d,]+) bytes\s+received ([\d,]+) bytes")
_RSYNC_SENT = re.compile(r"Total bytes sent: ([\d,]+)")
_RSYNC_RECV = re.compile(r"Total bytes received: ([\d,]+)")


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def parse_pydelta(out: str) -> Optional[Tuple[int, int]]:
    m = _PYDELTA_SENT.search(out)
    return (_int(m.group(1)), _int(m.group(2))) if m else None


def parse_rsync(out: str) -> Optional[Tuple[int, int]]:
    s, r = _RSYNC_SENT.search(out), _RSYNC_RECV.search(out)
    return (_int(s.group(1)), _int(r.group(1))) if s and r else None


# -- a bandwidth-limited link ------------------------------------------------------

#: The relay run by ssh as its ProxyCommand: stdin/stdout <-> TCP to host:port,
#: each direction paced to RATE bytes/s by its own token bucket.
RELAY_SCRIPT = r'''"""ssh ProxyCommand relay: stdin/stdout <-> TCP HOST:PORT, each way at most RATE bytes/s.

usage: relay.py HOST PORT RATE_BYTES_PER_S   (written by bench/sync_bench.py)
"""
import os
import socket
import sys
import threading
import time

HOST, PORT, RATE = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
CHUNK = 64 << 10  # bytes moved per step (read size, and the most one step sends)
BURST = 64 << 10  # most credit a bucket holds: no burst saved up while idle


class Bucket:
    def __init__(self):
        self.tokens = float(BURST)
        self.t = time.monotonic()

    def take(self, n):
        """Block until the bucket is out of debt, then let n bytes pass (on credit).

        Spending on credit keeps the long-run rate exact although sleep()
        oversleeps: what accrues meanwhile is kept (up to BURST), not lost.
        """
        while True:
            now = time.monotonic()
            self.tokens = min(float(BURST), self.tokens + (now - self.t) * RATE)
            self.t = now
            if self.tokens >= 0:
                self.tokens -= n
                return
            time.sleep(-self.tokens / RATE)


def up(sock):  # ssh -> server
    b = Bucket()
    while True:
        data = os.read(0, CHUNK)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            return
        b.take(len(data))
        sock.sendall(data)


def down(sock):  # server -> ssh
    b = Bucket()
    while True:
        data = sock.recv(CHUNK)
        if not data:
            os.close(1)
            return
        b.take(len(data))
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


def guarded(fn, sock, done):
    try:
        fn(sock)
    except OSError:
        os._exit(0)  # a side closed: ssh or sshd goes on to end the connection
    done.set()


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHUNK)  # before connect: small window
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.connect((HOST, PORT))
    up_done, down_done = threading.Event(), threading.Event()
    threading.Thread(target=guarded, args=(up, sock, up_done), daemon=True).start()
    guarded(down, sock, down_done)  # the server closing ends the connection
    up_done.wait(1.0)
    os._exit(0)


main()
'''


def link_opts(root: str, port: int, mbit: float) -> List[str]:
    """ssh options that route the connection through a relay limited to mbit Mbit/s each way."""
    relay = os.path.join(root, "relay.py")
    with open(relay, "w") as f:
        f.write(RELAY_SCRIPT)
    cmd = shlex.join(
        [sys.executable, "-I", "-S", relay, "127.0.0.1", str(port), f"{mbit * 1e6 / 8:.0f}"]
    )
    # ssh runs it as `exec CMD` in a shell, so the SIGHUP it sends at exit reaches the relay
    return ["-o", "ProxyCommand=" + cmd.replace("%", "%%")]  # ssh expands %-tokens in it


# -- tools -------------------------------------------------------------------------


@dataclass
class Link:
    """How every tool reaches the server: the harness's ssh options, except that
    ssh logs at VERBOSE into ``log`` (``-E``), where it writes the connection's
    own byte count ("Transferred: sent N, received M bytes") when it ends."""

    srv: LoopbackSSHD
    log: str  #: ssh's log file (truncated before each run)
    ssh_argv: List[str]
    ssh_cmd: str  #: for -e
    scp_argv: List[str]
    plain_argv: List[str]  #: the harness's ssh argv plus extra (no log), for `ssh true`

    @classmethod
    def make(cls, srv: LoopbackSSHD, root: str, extra: Optional[List[str]] = None) -> "Link":
        """extra: ssh options every tool gets (the relay's ProxyCommand)."""
        log = os.path.join(root, "ssh.log")
        extra = list(extra or [])

        def verbose(argv: List[str]) -> List[str]:
            return ["LogLevel=VERBOSE" if a.startswith("LogLevel=") else a for a in argv] + extra

        ssh_argv = verbose(srv.ssh_argv) + ["-E", log]
        # scp has no -E: it runs this wrapper as its ssh (-S), which adds it
        wrapper = os.path.join(root, "ssh-logged")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec ssh -E {shlex.quote(log)} "$@"\n')
        os.chmod(wrapper, 0o755)
        scp_argv = verbose(srv.scp_argv) + ["-S", wrapper]  # scp hands -o options to ssh
        return cls(srv, log, ssh_argv, shlex.join(ssh_argv), scp_argv, srv.ssh_argv + extra)

    def target(self, path: str) -> str:
        return self.srv.target(path)

    def reset(self) -> None:
        open(self.log, "w").close()

    def ssh_bytes(self) -> Optional[Tuple[int, int]]:
        """(sent, received) by the ssh client of the last run, from its log."""
        sent = recv = 0
        found = False
        with open(self.log, errors="replace") as f:
            for m in _SSH_TRANSFERRED.finditer(f.read()):
                sent += int(m.group(1))
                recv += int(m.group(2))
                found = True
        return (sent, recv) if found else None


_SSH_TRANSFERRED = re.compile(r"Transferred: sent (\d+), received (\d+) bytes")


@dataclass
class SyncTool:
    """One transfer tool: how to build its command and read its own byte count."""

    name: str
    argv: Callable[[Link, str, str], List[str]]  # (link, src, dest) -> argv
    parse: Optional[Callable[[str], Optional[Tuple[int, int]]]] = None
    note: str = ""


def make_tools(names: List[str]) -> List[SyncTool]:
    def pydelta(extra: List[str]) -> Callable[[Link, str, str], List[str]]:
        return lambda link, src, dest: [
            PYDELTA, "sync", "-e", link.ssh_cmd, "--remote-cmd", REMOTE[0], "--no-progress",
            *extra, src, dest,
        ]  # fmt: skip

    def rsync(extra: List[str]) -> Callable[[Link, str, str], List[str]]:
        return lambda link, src, dest: [
            "rsync", "--no-whole-file", "-t", "--stats", *extra, "-e", link.ssh_cmd, src, dest,
        ]  # fmt: skip

    known = {
        "pydelta": SyncTool("pydelta", pydelta([]), parse_pydelta, "defaults: fsync on"),
        "pydelta-nofsync": SyncTool(
            "pydelta-nofsync",
            pydelta(["--no-fsync"]),
            parse_pydelta,
            "--no-fsync, like rsync and scp",
        ),
        "pydelta-nocompress": SyncTool(
            "pydelta-nocompress",
            pydelta(["--no-fsync", "--no-compress"]),
            parse_pydelta,
            "--no-fsync --no-compress",
        ),
        "rsync": SyncTool("rsync", rsync([]), parse_rsync, "--no-whole-file -t, no fsync"),
        "rsync-fsync": SyncTool(
            "rsync-fsync", rsync(["--fsync"]), parse_rsync, "--no-whole-file -t --fsync"
        ),
        "scp": SyncTool(
            "scp", lambda link, src, dest: link.scp_argv + [src, dest], None, "whole file, no fsync"
        ),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown tools {unknown}; choose from {', '.join(ALL_TOOLS)}")
    return [known[n] for n in names]


# -- cases -------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    kind: str  #: the modelgen pair
    new: str  #: the source content
    old: Optional[str]  #: what the destination holds before (None: missing)
    pull: bool = False  #: remote source -> local destination
    prime: Optional[str] = None  #: synced first (untimed, same tool): the "repeat" case
    folder: bool = False  #: new/old are folders (the "folder40" case)


def ensure_pair(work: str, size: float, kind: str, log: Callable[[str], None]) -> Tuple[str, str]:
    """The cached (old, new) pair, named as run_bench.py names it."""
    tag = f"{kind}-{size:g}M"
    old, new = os.path.join(work, f"{tag}.old"), os.path.join(work, f"{tag}.new")
    if not (os.path.exists(old) and os.path.exists(new)):
        log(f"generating {tag} ...")
        make_pair(kind, size, old, new)
    return old, new


def build_cases(
    work: str, size: float, kinds: List[str], pull: bool, log: Callable[[str], None]
) -> List[Case]:
    cases = []
    for k in kinds:
        if k not in CASES:
            raise SystemExit(f"unknown case {k!r}; choose from {', '.join(CASES)}")
        if k == "identical":
            old, new = ensure_pair(work, size, "identical", log)
            cases.append(Case("identical", "identical", new, old))
        elif k == "finetune":
            old, new = ensure_pair(work, size, "finetune", log)
            cases.append(Case("finetune", "finetune", new, old))
        elif k == "repeat":
            old, new = ensure_pair(work, size, "finetune", log)
            new2 = sync_cases.ensure_second_change(new, log)
            cases.append(Case("repeat", "finetune", new2, old, prime=new))
        elif k == "folder40":
            old, new = sync_cases.ensure_folder_pair(work, size, log)
            cases.append(Case("folder40", "folder", new, old, folder=True))
        else:  # missing: the first copy of finetune's new file
            _, new = ensure_pair(work, size, "finetune", log)
            cases.append(Case("missing", "finetune", new, None))
    if pull:
        old, new = ensure_pair(work, size, "finetune", log)
        cases.append(Case("finetune-pull", "finetune", new, old, pull=True))
    return cases


def warm_cache(paths: List[str]) -> None:
    """Read files once so that the first timed run finds them in the page cache too."""
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 24):
                pass


def prepare_dest(dest_dir: str, target: str, old: Optional[str]) -> None:
    """Empty dest_dir, put a fresh copy of old at target (none if old is None), flush."""
    for e in os.listdir(dest_dir):
        p = os.path.join(dest_dir, e)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    if old is not None:
        subprocess.run(["cp", "-r", old, target], check=True)
    os.sync()  # no writeback of the copy during the timed command


def tree_size(path: str) -> int:
    """Bytes of a file, or of the files in a folder."""
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(path) for n in ns)


def case_argv(link: Link, tool: SyncTool, case: Case, new: str, target: str) -> List[str]:
    """The tool's command for one transfer of this case (folders: rsync -r -c)."""
    if case.pull:
        return tool.argv(link, link.target(new), target)
    if case.folder and tool.name.startswith("rsync"):
        argv = tool.argv(link, new + "/", link.target(target) + "/")
        return argv[:1] + ["-r", "-c"] + argv[1:]
    return tool.argv(link, new, link.target(target))


def run_one(link: Link, tool: SyncTool, case: Case, dest_dir: str, scratch: str) -> Dict[str, Any]:
    """Prepare, time, count and verify one transfer."""
    target = os.path.join(dest_dir, "model" if case.folder else "model.safetensors")
    prepare_dest(dest_dir, target, case.old)
    waited = None
    if case.prime is not None:  # the first sync, untimed; then the second small change
        seconds, _ = run_measured(case_argv(link, tool, case, case.prime, target))
        if not filecmp.cmp(target, case.prime, shallow=False):
            raise RuntimeError(f"{tool.name}: the first sync left {target} wrong")
        if tool.name.startswith("pydelta"):
            waited = sync_cases.wait_signed(os.path.join(scratch, "sigcache"), target)
            if waited < 0:
                raise RuntimeError(f"{tool.name}: the far end never signed {target}")
        os.sync()
    argv = case_argv(link, tool, case, case.new, target)
    out_file = os.path.join(scratch, "stdout")
    link.reset()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
    rx0, pk0 = lo_counters()
    seconds, rss = run_measured(argv, out_file)
    rx1, pk1 = lo_counters()
    if tool.name.startswith("pydelta") and not case.pull and not case.folder:
        # the far end signs what it wrote after the session (low priority, detached):
        # let that finish before the next tool's run, so that it is not slowed by it
        if os.path.getsize(target) >= 16 << 20:
            sync_cases.wait_signed(os.path.join(scratch, "sigcache"), target, timeout=60)
    with open(out_file, errors="replace") as f:
        out = f.read()
    if not os.path.exists(target):
        raise RuntimeError(f"{tool.name}: {target} was not created")
    if case.folder:
        why = sync_cases.same_tree(target, case.new)
        if why is not None:
            raise RuntimeError(f"{tool.name}: {target} differs from {case.new}: {why}")
    elif not filecmp.cmp(target, case.new, shallow=False):
        raise RuntimeError(f"{tool.name}: {target} differs from {case.new}")
    extra = sorted(set(os.listdir(dest_dir)) - {os.path.basename(target)})
    if extra:
        raise RuntimeError(f"{tool.name}: left behind in the destination: {extra}")
    ssh = link.ssh_bytes()
    if ssh is None:
        raise RuntimeError(f"{tool.name}: ssh logged no 'Transferred:' line in {link.log}")
    reported = tool.parse(out) if tool.parse else None
    if tool.parse and reported is None:
        raise RuntimeError(f"{tool.name}: no byte count in its output: {out.strip()[:300]!r}")
    return {
        "seconds": seconds,
        "lo_bytes": rx1 - rx0,
        "lo_packets": pk1 - pk0,
        "ssh_bytes": sum(ssh),
        "ssh_sent_received": list(ssh),
        "reported": list(reported) if reported else None,
        "peak_rss": rss,
        "summary": out.strip().splitlines()[0]
        if tool.name.startswith("pydelta") and out.strip()
        else "",
        "argv": argv,
        "started_utc": started,
        "waited_for_signing": waited,
    }


def warm_up(link: Link, tools: List[SyncTool], root: str, log: Callable[[str], None]) -> None:
    """One untimed run of every tool on a small file (binaries, imports, JIT caches)."""
    small = os.path.join(root, "warm.bin")
    with open(small, "wb") as f:
        f.write(os.urandom(1 << 20))
    d = os.path.join(root, "warm-dest")
    os.makedirs(d, exist_ok=True)
    for tool in tools:
        dest = os.path.join(d, "warm.bin")
        if os.path.exists(dest):
            os.unlink(dest)
        run_measured(tool.argv(link, small, link.target(dest)))
        if not filecmp.cmp(dest, small, shallow=False):
            raise RuntimeError(f"warm-up: {tool.name} copied the small file wrong")
    log("warm-up done")


def check_link(
    link: Link, root: str, mib: int, mbit: float, ssh_true: float, log: Callable[[str], None]
) -> Dict[str, Any]:
    """scp a random (incompressible) file through the link, push then pull, and
    compare the achieved rate with the limit (also net of ssh_true, the seconds
    a bare `ssh true` takes through the same link)."""
    src = os.path.join(root, "link-check.bin")
    with open(src, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    size = os.path.getsize(src)
    d = os.path.join(root, "link-check")
    os.makedirs(d, exist_ok=True)
    remote, back = os.path.join(d, "pushed.bin"), os.path.join(d, "pulled.bin")
    out: Dict[str, Any] = {
        "file_bytes": size,
        "limit_mbit": mbit,
        "expected_seconds": size * 8 / (mbit * 1e6),
    }
    for direction, s, t, result in (
        ("push", src, link.target(remote), remote),
        ("pull", link.target(src), back, back),
    ):
        link.reset()
        rx0 = lo_counters()[0]
        secs, _ = run_measured(link.scp_argv + [s, t])
        wire = lo_counters()[0] - rx0
        if not filecmp.cmp(result, src, shallow=False):
            raise RuntimeError(f"link check: scp {direction} copied the file wrong")
        ssh = link.ssh_bytes()
        out[direction] = {
            "seconds": secs,
            "payload_mbit_s": size * 8 / secs / 1e6,
            "payload_mbit_s_net": size * 8 / max(secs - ssh_true, 1e-3) / 1e6,
            "ssh_bytes": sum(ssh) if ssh else None,
            "ssh_mbit_s": sum(ssh) * 8 / secs / 1e6 if ssh else None,
            "lo_bytes": wire,
        }
        log(
            f"link check: scp {direction} of {size / 2**20:.0f} MiB random data in "
            f"{secs:.2f} s (limit alone: {out['expected_seconds']:.2f} s) = "
            f"{out[direction]['payload_mbit_s']:.1f} Mbit/s of file data "
            f"({out[direction]['payload_mbit_s_net']:.1f} net of `ssh true`), "
            f"{out[direction]['ssh_mbit_s'] or 0:.1f} Mbit/s of ssh stream (limit {mbit:g})"
        )
    shutil.rmtree(d)
    os.unlink(src)
    return out


# -- machine -----------------------------------------------------------------------


def _first_line(cmd: List[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]


def negotiated_cipher(srv: LoopbackSSHD) -> str:
    """The cipher ssh settles on with this server (every tool uses the same)."""
    argv = ["LogLevel=DEBUG1" if a.startswith("LogLevel=") else a for a in srv.ssh_argv]
    p = subprocess.run(argv + [srv.login, "true"], capture_output=True, text=True, timeout=30)
    m = re.search(r"kex: server->client cipher: (\S+) MAC: (\S+)", p.stderr)
    return f"{m.group(1)} (MAC {m.group(2)})" if m else "?"


def pydelta_commit() -> str:
    """HEAD of this checkout, flagged if pydelta/ has uncommitted changes."""
    git = _first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--", "pydelta"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return git + (" (pydelta/ modified)" if dirty else "")


def machine_info(srv: LoopbackSSHD) -> Dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pydelta_commit": pydelta_commit(),
        "ssh": _first_line(["ssh", "-V"]),
        "rsync": _first_line(["rsync", "--version"]),
        "cipher": negotiated_cipher(srv),
        "loadavg_start": os.getloadavg(),
    }


# -- the run -----------------------------------------------------------------------


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    rep = [r["reported"] for r in runs if r["reported"]]
    return {
        "wall": statistics.median(r["seconds"] for r in runs),
        "times": [r["seconds"] for r in runs],
        "lo_bytes": int(statistics.median(r["lo_bytes"] for r in runs)),
        "lo_bytes_all": [r["lo_bytes"] for r in runs],
        "lo_packets": int(statistics.median(r["lo_packets"] for r in runs)),
        "ssh_bytes": int(statistics.median(r["ssh_bytes"] for r in runs)),
        "ssh_bytes_all": [r["ssh_bytes"] for r in runs],
        "reported_sent": rep[-1][0] if rep else None,
        "reported_received": rep[-1][1] if rep else None,
        "peak_rss": max(r["peak_rss"] for r in runs),
        "summary": runs[-1]["summary"],
        "argv": runs[-1]["argv"],
        "started_utc": [r["started_utc"] for r in runs],
        "verified": True,
    }


def bench_case(
    link: Link,
    case: Case,
    tools: List[SyncTool],
    repeat: int,
    root: str,
    log: Callable[[str], None],
) -> Dict[str, Any]:
    dest_dir = os.path.join(root, f"dest-{case.name}")
    os.makedirs(dest_dir, exist_ok=True)
    res: Dict[str, Any] = {
        "case": case.name,
        "kind": case.kind,
        "direction": "pull" if case.pull else "push",
        "file_size": tree_size(case.new),
        "old_size": tree_size(case.old) if case.old else None,
        "source": os.path.basename(case.new),
        "old": os.path.basename(case.old) if case.old else None,
        "tools": {},
    }
    warm_cache(
        [
            os.path.join(d, n)
            for p in (case.new, case.old, case.prime)
            if p
            for d, _, ns in (os.walk(p) if os.path.isdir(p) else [("", None, [p])])
            for n in ns
        ]
    )
    runs: Dict[str, List[Dict[str, Any]]] = {t.name: [] for t in tools}
    errors: Dict[str, str] = {}
    for i in range(repeat):
        for tool in tools:
            if tool.name in errors or (case.folder and tool.name == "scp"):
                continue
            try:
                r = run_one(link, tool, case, dest_dir, scratch=root)
            except Exception as e:  # recorded, and the run fails at the end
                errors[tool.name] = str(e)
                log(f"  {case.name} {tool.name} run {i + 1}: ERROR {e}")
                continue
            runs[tool.name].append(r)
            rep = f", reports {sum(r['reported']):,}" if r["reported"] else ""
            log(
                f"  {case.name} {tool.name} run {i + 1}: {r['seconds']:.2f} s, "
                f"lo {r['lo_bytes']:,} B, ssh {r['ssh_bytes']:,} B{rep}"
                + (f"  [{r['summary']}]" if r["summary"] else "")
            )
    prepare_dest(dest_dir, os.path.join(dest_dir, "x"), None)
    os.rmdir(dest_dir)
    for tool in tools:
        if case.folder and tool.name == "scp":
            continue
        if tool.name in errors:
            res["tools"][tool.name] = {"error": errors[tool.name], "note": tool.note}
        else:
            res["tools"][tool.name] = dict(summarize(runs[tool.name]), note=tool.note)
    return res


# -- output ------------------------------------------------------------------------


def _mib(n: Optional[int]) -> str:
    return "-" if n is None else f"{n / 2**20:,.2f}"


def write_markdown(
    info: Dict[str, Any], notes: List[str], results: List[Dict[str, Any]], repeat: int, size: float
) -> str:
    mbit = info.get("link_mbit")
    over = f"over loopback ssh through a {mbit:g} Mbit/s relay" if mbit else "over loopback ssh"
    L = [f"# pydelta sync vs rsync vs scp {over}, {size:g} MiB", ""]
    L.append(
        f"{info['date']}; {info['nproc']} cores ({info['cpu']}), Linux {info['kernel']}, "
        f"Python {info['python']}; pydelta {info['pydelta_commit']}"
        + (
            f" at the start, {info['pydelta_commit_end']} at the end (the checkout changed "
            "during the run)"
            if info.get("pydelta_commit_end", info["pydelta_commit"]) != info["pydelta_commit"]
            else ""
        )
        + f"; {info['ssh']}; "
        f"{info['rsync']}; ssh cipher {info['cipher']}; load average at start "
        f"{' / '.join(f'{x:.2f}' for x in info['loadavg_start'])}, at end "
        f"{' / '.join(f'{x:.2f}' for x in info['loadavg_end'])}."
    )
    L.append("")
    L.append(
        f"Wall times are medians of {repeat} run(s) (all runs listed); warm page cache, "
        "nothing dropped. Wire = growth of `lo` rx_bytes across the command (all ssh "
        "packets, both directions, headers and encryption included; median of the runs). "
        '"ssh bytes" = what the ssh client itself counted on its socket for this one '
        "connection (its `Transferred: sent N, received M bytes` log line): lo minus ssh "
        "bytes is TCP/IP headers (~66 B a packet) plus any other loopback traffic "
        'meanwhile. "reported" = the tool\'s own sent+received count (pydelta '
        "summary, rsync --stats). Ratios are this row's wall time over scp's and over "
        "rsync's (below 1 = faster)."
    )
    L.append("")
    if mbit:
        L.append(
            f"**Link: limited to {mbit:g} Mbit/s per direction** ({mbit / 8:g} MB/s = "
            f"{mbit * 1e6 / 8 / 2**20:.2f} MiB/s of ssh stream each way) for every tool "
            "alike, by a relay that each tool's ssh runs as its `ProxyCommand` (details in "
            'the notes). "wire Mbit/s" = wire bytes (lo, both directions) x 8 / wall '
            "time."
        )
        L.append("")
    for n in notes:
        L.append(f"- {n}")
    L.append("")
    names = [n for n in ALL_TOOLS if any(n in r["tools"] for r in results)]
    L.append("Overview - wall s (median) / wire MiB (lo):")
    L.append("")
    L.append("| case | " + " | ".join(names) + " |")
    L.append("|---|" + "---|" * len(names))
    for r in results:
        cells = []
        for n in names:
            e = r["tools"].get(n)
            if e is None:
                cells.append("")
            elif "error" in e:
                cells.append("ERROR")
            else:
                cells.append(f"{e['wall']:.2f} s / {_mib(e['lo_bytes'])}")
        L.append(f"| {r['case']} | " + " | ".join(cells) + " |")
    L.append("")
    for r in results:
        size_b = r["file_size"]
        what = {
            "finetune": "push, remote has OLD (3% of tensors retrained, header +1 byte: all data shifted)",
            "identical": "push, remote already has the same content",
            "missing": "push, remote file does not exist (first copy)",
            "finetune-pull": "pull, remote has NEW, local has OLD",
            "repeat": "push, the second sync of the same destination after a second small "
            "change (3 x 1 MiB); the first sync (finetune, untimed) by the same tool",
            "folder40": "push, a folder of 40 shards, 3 fine-tuned, the rest identical; "
            "every file compared by content (rsync -r -c)",
        }.get(r["case"], r["direction"])
        L.append(f"## {r['case']}: {what}")
        L.append("")
        L.append(
            f"File {size_b:,} bytes ({size_b / 2**20:,.1f} MiB), source `{r['source']}`"
            + (f", old `{r['old']}`" if r["old"] else "")
            + "."
        )
        L.append("")
        L.append(
            "| tool | wall s (median) | runs s | wire bytes (lo) | wire % of file | wire Mbit/s | "
            "ssh bytes | reported bytes (sent + recv) | time vs scp | time vs rsync | "
            "local RSS MiB |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        tools = r["tools"]
        scp_t = tools.get("scp", {}).get("wall")
        rs_t = tools.get("rsync", {}).get("wall")
        for name, e in tools.items():
            if "error" in e:
                L.append(f"| {name} | ERROR: {e['error'][:200]} | | | | | | | | | |")
                continue
            rep = (
                "-"
                if e["reported_sent"] is None
                else f"{e['reported_sent'] + e['reported_received']:,} "
                f"({e['reported_sent']:,} + {e['reported_received']:,})"
            )
            L.append(
                f"| {name} | {e['wall']:.2f} | {' / '.join(f'{t:.2f}' for t in e['times'])} | "
                f"{e['lo_bytes']:,} | {100 * e['lo_bytes'] / size_b:.2f}% | "
                f"{e['lo_bytes'] * 8 / e['wall'] / 1e6:,.1f} | {e['ssh_bytes']:,} | {rep} | "
                f"{fmt_ratio(e['wall'], scp_t)} | {fmt_ratio(e['wall'], rs_t)} | "
                f"{e['peak_rss'] / 2**20:.0f} |"
            )
        summ = [f"{n}: {e['summary']}" for n, e in tools.items() if e.get("summary")]
        if summ:
            L.append("")
            L.append("pydelta said: " + "; ".join(summ) + ".")
        L.append("")
    return "\n".join(L) + "\n"


# -- main --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and case (median)")
    ap.add_argument("--kinds", default=",".join(CASES), help=f"cases, from {','.join(CASES)}")
    ap.add_argument(
        "--pull",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure finetune pulled (remote NEW -> local OLD)",
    )
    ap.add_argument("--tools", default=",".join(DEFAULT_TOOLS), help=f"from {','.join(ALL_TOOLS)}")
    ap.add_argument("--work", default=os.path.join(HERE, "work"), help="pair cache (and scratch)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=float, default=run_bench.TIMEOUT, help="seconds per command")
    ap.add_argument(
        "--link-mbit",
        type=float,
        default=None,
        metavar="N",
        help="route every tool's ssh through a relay limited to N Mbit/s per "
        "direction (results go to sync_bench-<size>M-<N>mbit.*)",
    )
    ap.add_argument(
        "--link-check-mib",
        type=int,
        default=None,
        metavar="MIB",
        help="size of the random file scp'd both ways to check the link limit "
        "(default: about 4 s at the limit, 8..256 MiB)",
    )
    a = ap.parse_args()
    if a.link_mbit is not None and a.link_mbit <= 0:
        ap.error("--link-mbit must be positive")
    run_bench.TIMEOUT = a.timeout  # run_measured reads it from its module

    def log(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    if not LoopbackSSHD.available():
        log(f"cannot run: missing {', '.join(LoopbackSSHD.missing())}")
        return 2
    if not os.access(PYDELTA, os.X_OK):
        log(f"cannot run: no pydelta script at {PYDELTA} (run with the venv's python)")
        return 2
    tools = make_tools([t for t in a.tools.split(",") if t])
    for t in ("rsync", "scp"):
        if any(x.name.startswith(t) for x in tools) and not shutil.which(t):
            log(f"cannot run: {t} is not installed")
            return 2
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    cases = build_cases(a.work, a.size, [k for k in a.kinds.split(",") if k], a.pull, log)

    # scratch on the same filesystem as the pairs (so the destination is a real
    # disk, like a remote's, not a tmpfs); the sshd lives in a temp dir
    root = tempfile.mkdtemp(prefix="sync-bench-", dir=a.work)
    # the far end's signature cache (pydelta/sync/sigcache.py) in the scratch dir
    REMOTE[0] = f"env PYDELTA_SIG_CACHE={shlex.quote(os.path.join(root, 'sigcache'))} {PYDELTA}"
    srv = LoopbackSSHD(os.path.join(tempfile.mkdtemp(prefix="pydelta-sync-bench-sshd-"), "sshd"))
    results: List[Dict[str, Any]] = []
    stem = os.path.join(
        a.out, f"sync_bench-{a.size:g}M" + (f"-{a.link_mbit:g}mbit" if a.link_mbit else "")
    )
    failed = False
    md = ""
    try:
        # generous: the remote login shell's ~/.bashrc may wait on a lock (e.g.
        # pyenv's rehash lock, up to 60 s) while other ssh sessions run
        srv.start(timeout=120)
        log(f"sshd on {srv.host}:{srv.port} (started in {srv.startup_seconds:.2f} s)")
        info = machine_info(srv)
        bg = lo_background()
        extra = link_opts(root, srv.port, a.link_mbit) if a.link_mbit else []
        link = Link.make(srv, root, extra)
        # through the link (the relay too, if any): what each tool's connection costs
        ssh_times = [run_measured(link.plain_argv + [srv.login, "true"])[0] for _ in range(5)]
        info["lo_background_bytes_per_s"] = bg
        info["ssh_true_seconds"] = statistics.median(ssh_times)
        info["link_mbit"] = a.link_mbit
        log(
            f"idle loopback traffic {bg:,.0f} B/s; `ssh true` {info['ssh_true_seconds']:.3f} s"
            + (f" (through the {a.link_mbit:g} Mbit/s relay)" if a.link_mbit else "")
        )
        if a.link_mbit:
            mib = a.link_check_mib or int(min(256, max(8, a.link_mbit / 8 * 1e6 * 4 / 2**20)))
            info["link_check"] = check_link(
                link, root, mib, a.link_mbit, info["ssh_true_seconds"], log
            )
        warm_up(link, tools, root, log)
        notes = [
            "Both ends run on this machine (loopback sshd from tests/sshd_server.py) and share "
            f"its {info['nproc']} cores: a tool's remote half competes with its local half. "
            "The machine is shared and noisy; compare within a table, not across runs.",
            "Fairness: rsync and scp do not fsync; pydelta's default fsyncs each result "
            "before the rename, so the `pydelta-nofsync` row (--no-fsync) is the like-for-like "
            "one. Each destination is a fresh `cp` of OLD followed by `sync`, so every tool "
            "starts from the same content with no dirty pages; the copy's mtime is new, so "
            "rsync's quick check (size+mtime) never skips the identical file - it does its "
            "full delta pass, as pydelta always does.",
            "pydelta compresses literal data with zstd only while it measures that it "
            "compresses faster than the link drains its writes (the first 4 MiB always "
            "compressed); the wire column shows how much it did. "
            "rsync runs without -z, scp without -C. scp of OpenSSH 9 "
            "transfers over the SFTP subsystem.",
            f"Every wall time includes one ssh connection (login and key exchange): bare "
            f"`ssh true` takes {info['ssh_true_seconds']:.3f} s here (median of 5). pydelta "
            "also starts Python on both ends.",
            f"Idle loopback traffic before the run: {bg:,.0f} bytes/s (noise on the wire column).",
            "Every tool runs the harness's ssh command with two additions, the same for all: "
            "`-o LogLevel=VERBOSE -E <log>` (scp: through a `-S` wrapper that adds `-E`), so "
            "that ssh writes its own byte count of the connection to a file; nothing else "
            "is logged during the transfer.",
            "Every destination was verified byte for byte against its source after every run, "
            "with no temporary file left beside it.",
            "pydelta's far end keeps its signature cache (pydelta/sync/sigcache.py, on by "
            "default) in the scratch dir. Every case except `repeat` starts from a fresh `cp` "
            "(new inode, new ctime), so there it never holds the destination's signature: those "
            "rows are cold-cache figures. `repeat` times the second sync of a destination "
            "(the first, untimed, by the same tool), after the far end signed what it wrote.",
        ]
        if a.link_mbit:
            lc = info["link_check"]
            notes += [
                f"The link: every tool's ssh (pydelta -e, rsync -e, scp -o) gets `-o "
                f"ProxyCommand=python -I -S relay.py 127.0.0.1 <port> "
                f"{a.link_mbit * 1e6 / 8:.0f}`. The relay (stdlib Python, written to the "
                "scratch dir) talks to ssh over its stdin/stdout and to the sshd over one "
                f"loopback TCP connection, and passes at most {a.link_mbit:g} Mbit/s "
                "(10^6 bit/s of TCP payload, i.e. of ssh's encrypted stream; TCP/IP headers "
                "on top) in each direction, each paced by its own token bucket that holds at "
                "most 64 KiB of credit (nothing saved up while idle; a step of at most 64 KiB "
                "passes once the bucket is out of debt and is then debited), with 64 KiB socket buffers and TCP_NODELAY, so a sender's writes block "
                "as soon as it outruns the link. No latency is added beyond the pacing. The "
                "relay is one more process on the 2 shared cores, the same for every tool. "
                "Host key checking is unchanged (StrictHostKeyChecking=no, "
                "UserKnownHostsFile=/dev/null); ssh still counts its own bytes.",
                f"Link check before the cases: scp of {lc['file_bytes'] / 2**20:.0f} MiB of "
                f"random data took {lc['push']['seconds']:.2f} s pushed and "
                f"{lc['pull']['seconds']:.2f} s pulled (the limit alone: "
                f"{lc['expected_seconds']:.2f} s; `ssh true` through the relay: "
                f"{info['ssh_true_seconds']:.3f} s) = {lc['push']['payload_mbit_s']:.1f} / "
                f"{lc['pull']['payload_mbit_s']:.1f} Mbit/s of file data "
                f"({lc['push']['payload_mbit_s_net']:.1f} / {lc['pull']['payload_mbit_s_net']:.1f} "
                "net of the `ssh true` time), "
                f"{lc['push']['ssh_mbit_s']:.1f} / {lc['pull']['ssh_mbit_s']:.1f} Mbit/s of "
                f"ssh stream (both directions counted) against the {a.link_mbit:g} Mbit/s limit.",
            ]
        for case in cases:
            log(f"{case.name} ({tree_size(case.new) / 2**20:,.0f} MiB) ...")
            r = bench_case(link, case, tools, a.repeat, root, log)
            results.append(r)
            failed = failed or any("error" in e for e in r["tools"].values())
            info["loadavg_end"] = os.getloadavg()
            info["pydelta_commit_end"] = pydelta_commit()
            with open(stem + ".json", "w") as f:
                json.dump(
                    {
                        "machine": info,
                        "notes": notes,
                        "size_mib": a.size,
                        "repeat": a.repeat,
                        "command": " ".join(map(shlex.quote, sys.argv)),
                        "cases": results,
                    },
                    f,
                    indent=1,
                )
            md = write_markdown(info, notes, results, a.repeat, a.size)
            with open(stem + ".md", "w") as f:
                f.write(md)
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(os.path.dirname(srv.workdir), ignore_errors=True)
    print(md)
    print(f"written: {stem}.md, {stem}.json")
    if failed:
        log("BENCHMARK FAILED: some transfers failed or did not verify (see the tables)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
