"""A hostile sync peer for tests: scripted fake ``pydelta serve`` / client ends.

The sync protocol (pydelta's sync wire module) is re-implemented here from its
description, independently of pydelta's own framing code, so a peer can
send what pydelta never would: frames of absurd claimed length, endless
data streams, malformed JSON, wrong types, rdiff deltas, ...

    from evil_peer import EvilServer, Frames, native_delta, zero_z_ops

    def script(p):                      # p: Frames, after the handshake
        m = p.recv_json()               # the client's request
        p.send_json({"ok": True, "type": "file", "size": 4, ...})
        ...

    with EvilServer(script) as srv:     # a thread on the far end of two pipes
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        client.pull("x", str(tmp_path / "x"))

:class:`EvilServer` answers ``hello`` itself and runs ``script`` for the
rest; ``script`` may return at any time (the pipes then close). Helpers
build native deltas by hand (:func:`native_delta`, 'Z' ops of zeros with
:func:`zero_z_op`). :func:`run_guarded` runs a snippet of Python in a
subprocess with a watchdog on its resident memory and wall time, so a
reproducer of a memory blow-up stops at a bound instead of eating the
machine.

Only the standard library, zstandard (a pydelta dependency) and pydelta's
public API are used.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

MAGIC = b"PDSYNC1\n"
JSON, DATA, END, FAIL = b"J", b"D", b"e", b"X"
HEAD = struct.Struct(">cI")  # kind byte, big-endian u32 payload length
PROTO = 1
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PeerGone(Exception):
    """The victim closed its end (the evil script then just stops)."""


class Frames:
    """Raw frame I/O over a readable and a writable binary stream."""

    def __init__(self, rfile, wfile) -> None:
        self.rfile = rfile
        self.wfile = wfile

    # -- sending -------------------------------------------------------
    def raw(self, data: bytes) -> None:
        """Write bytes as they are (no framing)."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError) as e:
            raise PeerGone(str(e)) from None

    def frame(self, kind: bytes, payload: bytes = b"", claim: Optional[int] = None) -> None:
        """One frame; ``claim`` lies about the payload length in the header."""
        n = len(payload) if claim is None else claim
        self.raw(HEAD.pack(kind, n) + payload)

    def send_json(self, obj: Any) -> None:
        self.frame(JSON, json.dumps(obj).encode() if not isinstance(obj, bytes) else obj)

    def send_data(self, data: bytes, chunk: int = 1 << 20) -> None:
        """Data frames of ``data`` (not ended)."""
        for i in range(0, len(data), chunk):
            self.frame(DATA, data[i : i + chunk])

    def send_stream(self, data: bytes) -> None:
        """A whole data stream: data frames, then END."""
        self.send_data(data)
        self.frame(END)

    def send_fail(self, message: str) -> None:
        self.frame(FAIL, message.encode())

    def endless(self, piece: bytes, limit_bytes: int = 8 << 30) -> int:
        """Data frames of ``piece`` until the victim hangs up (or limit_bytes)."""
        sent = 0
        try:
            while sent < limit_bytes:
                self.frame(DATA, piece)
                sent += len(piece)
        except PeerGone:
            pass
        return sent

    # -- receiving -----------------------------------------------------
    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            try:
                got = self.rfile.read(n - len(out))
            except (OSError, ValueError) as e:
                raise PeerGone(str(e)) from None
            if not got:
                raise PeerGone("end of stream")
            out += got
        return out

    def expect_magic(self) -> None:
        got = self._read(len(MAGIC))
        if got != MAGIC:
            raise AssertionError(f"victim sent {got!r} instead of the magic")

    def recv(self) -> Tuple[bytes, bytes]:
        kind, n = HEAD.unpack(self._read(HEAD.size))
        return kind, self._read(n) if n else b""

    def recv_json(self) -> Dict[str, Any]:
        kind, payload = self.recv()
        if kind == FAIL:
            raise AssertionError(f"victim failed: {payload.decode(errors='replace')}")
        assert kind == JSON, kind
        return json.loads(payload)

    def recv_stream(self) -> bytes:
        """A whole data stream (e.g. the victim's signature)."""
        out = []
        while True:
            kind, payload = self.recv()
            if kind == DATA:
                out.append(payload)
            elif kind == END:
                return b"".join(out)
            elif kind == FAIL:
                raise AssertionError(f"victim failed: {payload.decode(errors='replace')}")
            else:
                raise AssertionError(f"unexpected {kind!r} frame in a stream")

    def recv_kind(self) -> bytes:
        """The kind of the next frame (payload dropped)."""
        return self.recv()[0]


class EvilServer:
    """A scripted stand-in for ``pydelta serve`` on a thread, over two pipes.

    ``rfile``/``wfile`` are the client's ends (give them to SyncClient).
    The handshake and ``hello`` are answered; ``script(frames)`` does the
    rest. Exceptions in the script are kept in ``error`` (PeerGone is normal).
    """

    def __init__(self, script: Callable[[Frames], None], handshake: bool = True) -> None:
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        self._srv_r = os.fdopen(c2s_r, "rb", buffering=0)
        self._srv_w = os.fdopen(s2c_w, "wb", buffering=0)
        self.rfile = os.fdopen(s2c_r, "rb")
        self.wfile = os.fdopen(c2s_w, "wb")
        self.error: Optional[BaseException] = None
        self._script = script
        self._handshake = handshake
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        p = Frames(self._srv_r, self._srv_w)
        try:
            if self._handshake:
                p.raw(MAGIC)
                p.expect_magic()
                hello = p.recv_json()
                assert hello.get("op") == "hello", hello
                p.send_json({"ok": True, "proto": PROTO, "version": "evil"})
            self._script(p)
        except PeerGone:
            pass
        except BaseException as e:  # kept for the test to look at
            self.error = e
        finally:
            for f in (self._srv_w, self._srv_r):
                try:
                    f.close()
                except OSError:
                    pass

    def close(self) -> None:
        for f in (self.wfile, self.rfile):
            try:
                f.close()
            except OSError:
                pass
        self.thread.join(10)

    def __enter__(self) -> "EvilServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def answer_until(p: Frames, op: str, replies: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Answer requests until one with ``op`` arrives; returns that request.

    ``replies`` maps other ops to their JSON reply (default {"ok": True}).
    """
    replies = replies or {}
    while True:
        m = p.recv_json()
        if m.get("op") == op:
            return m
        p.send_json(replies.get(m.get("op"), {"ok": True}))


# -- hand-made deltas --------------------------------------------------------


def varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def delta_header(
    basis_size: int,
    block_len: int = 1024,
    strong_len: int = 16,
    flags: int = 0,
    sig_digest: bytes = bytes(32),
) -> bytes:
    """A native delta header with a valid check field (see docs/FORMAT.md)."""
    import pydelta

    head = struct.pack(
        "<4sBBBBIQ32s", b"PDDL", 1, strong_len, flags, 0, block_len, basis_size, sig_digest
    )
    return head + pydelta.blake3_digest(head, 8)


def end_op(size: int, digest: bytes) -> bytes:
    return b"E" + struct.pack("<Q", size) + digest


def copy_op(off: int, n: int) -> bytes:
    return b"C" + varint(off) + varint(n)


def literal_op(data: bytes) -> bytes:
    return b"L" + varint(len(data)) + data


def zero_z_op(n: int = 4 << 20) -> bytes:
    """A 'Z' op that inflates to ``n`` zero bytes from a few KiB."""
    import zstandard

    frame = zstandard.ZstdCompressor(level=19).compress(bytes(n))
    return b"Z" + varint(n) + b"\x01" + varint(len(frame)) + frame


def native_delta(
    basis_size: int,
    ops: Iterable[bytes],
    result: Optional[bytes] = None,
    *,
    flags: int = 0,
    block_len: int = 1024,
    end: Optional[bytes] = None,
    sig_digest: bytes = bytes(32),
) -> bytes:
    """Header + ops + END (of ``result``'s size and digest, or ``end`` as given)."""
    import pydelta

    if end is None:
        assert result is not None
        end = end_op(len(result), pydelta.blake3_digest(result))
    return (
        delta_header(basis_size, block_len, flags=flags, sig_digest=sig_digest)
        + b"".join(ops)
        + end
    )


# -- a guarded subprocess ------------------------------------------------------


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Guarded:
    """What :func:`run_guarded` saw."""

    def __init__(self) -> None:
        self.returncode: Optional[int] = None
        self.stdout = ""
        self.stderr = ""
        self.seconds = 0.0
        self.peak_kib = 0  #: highest VmRSS seen
        self.base_kib = 0  #: VmRSS when the child said it was ready
        self.killed: Optional[str] = None  #: why the watchdog killed it

    @property
    def grew_kib(self) -> int:
        return self.peak_kib - self.base_kib

    def __repr__(self) -> str:
        return (
            f"<Guarded rc={self.returncode} killed={self.killed!r} {self.seconds:.2f}s "
            f"grew {self.grew_kib} KiB; out={self.stdout[-300:]!r} err={self.stderr[-600:]!r}>"
        )


#: Prelude of a guarded snippet: a ready() marker the watchdog waits for
#: (memory before it - imports, numba compilation - is not counted).
_PRELUDE = """
import sys, os
sys.path.insert(0, {tests!r})
def _warm():
    # compile what the numba backend compiles on first use (native and
    # rdiff signature, delta, patch, compressed literals), so the memory
    # watched from ready() on is the snippet's, not the JIT's
    import io, random, warnings, tempfile, pydelta
    r = random.Random(0)
    old = r.randbytes(40000)
    new = old[:9000] + r.randbytes(3000) + bytes(5000) + old[9000:]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "old")
        with open(p, "wb") as f:
            f.write(old)
        for fmt in ("native", "rdiff"):
            sig = pydelta.signature(p, format=fmt)
            dl = pydelta.delta(sig, io.BytesIO(new))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pydelta.patch(p, io.BytesIO(dl), io.BytesIO())
            pydelta.info(io.BytesIO(dl))
        dl = pydelta.delta(pydelta.signature(p), io.BytesIO(new), compress=True)
        pydelta.patch(p, io.BytesIO(dl), io.BytesIO())
def ready():
    _warm()
    sys.stdout.write("READY\\n"); sys.stdout.flush()
"""


def run_guarded(
    code: str,
    *,
    max_growth_mib: int = 256,
    timeout: float = 60,
    fsize: Optional[int] = None,
    cwd: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
) -> Guarded:
    """Run ``code`` in a fresh Python; kill it past ``max_growth_mib`` of RSS
    growth after it calls ``ready()``, or after ``timeout`` seconds.

    ``fsize`` sets RLIMIT_FSIZE (a write past it fails with EFBIG).
    """
    import resource

    def limits() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    full_env = dict(os.environ if env is None else env)
    full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
    script = _PRELUDE.format(tests=os.path.join(REPO, "tests")) + code
    g = Guarded()
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=full_env,
        preexec_fn=limits,
    )
    out: List[bytes] = []
    err: List[bytes] = []
    ready = threading.Event()

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            if line == b"READY\n" and not ready.is_set():
                g.base_kib = _rss_kib(proc.pid)
                ready.set()
                continue
            out.append(line)

    def pump_err() -> None:
        assert proc.stderr is not None
        err.append(proc.stderr.read())

    threads = [
        threading.Thread(target=pump_out, daemon=True),
        threading.Thread(target=pump_err, daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = t0 + timeout
    while proc.poll() is None:
        now = time.monotonic()
        if ready.is_set():
            rss = _rss_kib(proc.pid)
            g.peak_kib = max(g.peak_kib, rss)
            if rss - g.base_kib > max_growth_mib * 1024:
                g.killed = f"memory: grew past {max_growth_mib} MiB"
                proc.send_signal(signal.SIGKILL)
                break
        if now > deadline:
            g.killed = f"time: still running after {timeout:.0f}s"
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    g.seconds = time.monotonic() - t0
    for t in threads:
        t.join(5)
    g.returncode = proc.returncode
    g.stdout = b"".join(out).decode(errors="replace")
    g.stderr = b"".join(err).decode(errors="replace")
    if not g.base_kib:
        g.base_kib = g.peak_kib
    return g
