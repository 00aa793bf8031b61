"""Moving one file: the receiving end's basis, signature and patch, and the
sending end's delta stream, with its adaptive compression gate.

The receiving end sends the signature of its old copy (or of what an earlier
attempt left), the sending end scans its new file against it and streams
back a delta, and the receiving end patches into a temporary file beside the
target that replaces it only once its size and BLAKE3 digest are verified.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import tempfile
import threading
import time
from typing import BinaryIO, Iterator, Optional, Tuple, Union

from .._threads import resolve_threads
from ..backends import backend
from ..delta import delta_pieces, use_compression
from ..errors import FileAccessError, PydeltaError, RemoteError, os_reason
from ..formats import native as fmt
from ..formats.native import BadInstruction, read_op
from ..patch import Patcher
from ..results import DeltaStats, Progress
from ..signature import Signature, iter_signature
from .fs import open_source
from .wire import END, Channel, DataWriter, Failed

#: A delta no longer than this is held back to see whether it only says
#: "the whole old file, unchanged": then the target is verified in place
#: (hashed) instead of being rewritten.
IDENTITY_MAX = 1024


def identity_digest(head: bytes, basis_size: int) -> Optional[bytes]:
    """If this whole delta says "the old file unchanged", the digest it promises."""
    hs = fmt.DELTA_HEADER.size
    try:
        h = fmt.parse_delta_header(head[:hs], "delta")
    except PydeltaError:
        return None
    if h.basis_size != basis_size:
        return None
    pos, end = hs, len(head)
    try:
        op = read_op(head, pos, end)
        if basis_size:
            if op is None or op.code != fmt.OP_COPY or (op.a, op.b) != (0, basis_size):
                return None
            pos += op.head
            op = read_op(head, pos, end)
    except BadInstruction:
        return None
    if op is None or op.code != fmt.OP_END or pos + op.head != end or op.a != basis_size:
        return None
    return op.digest


class Incoming:
    """The receiving end of one file: its basis, the signature, the patch.

    The basis is the existing target or, when there is none, what an
    earlier attempt left of it (``.NAME.pydelta-partial`` beside it: a first
    copy that broke off resumes from there) or else an empty file (the delta
    is then all literal). Nothing replaces the target before :meth:`finish`
    has verified the result; a first copy that fails keeps what it wrote as
    the partial file, when that is more than the partial file had.
    """

    def __init__(
        self,
        target: str,
        *,
        fsync: bool,
        threads: Optional[int],
        progress: Progress = None,
        name: str = "delta",
    ) -> None:
        self.target = target
        self.mode: Optional[int] = None
        self.mtime_ns: Optional[int] = None
        self._fsync = fsync
        self._threads = threads
        self.progress = progress  #: called with the bytes of the result done
        self._name = name
        try:
            st: Optional[os.stat_result] = os.lstat(target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise FileAccessError(f"cannot access {target}: {os_reason(e)}") from None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise FileAccessError(f"{target} is a symbolic link: not replaced")
            if stat.S_ISDIR(st.st_mode):
                raise FileAccessError(f"{target} is a directory: cannot replace it with a file")
            if not stat.S_ISREG(st.st_mode):
                raise FileAccessError(f"{target} is not a regular file: not replaced")
        self.have = st is not None
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            raise FileAccessError(f"cannot write {target}: directory {parent} does not exist")
        self.partial = os.path.join(parent, "." + os.path.basename(target) + ".pydelta-partial")
        self.resumed = False  #: the basis is what an earlier attempt left
        if self.have:
            self.basis: BinaryIO = open_source(target)
        else:
            try:
                self.basis = open_source(self.partial)
                self.resumed = True
            except FileAccessError:  # none (or not a regular file): start from nothing
                self.basis = tempfile.TemporaryFile()
        self.basis_size = os.fstat(self.basis.fileno()).st_size
        self._head = bytearray()
        self._patcher: Optional[Patcher] = None

    def signature(self) -> Iterator[bytes]:
        self.basis.seek(0)
        return iter_signature(self.basis, threads=self._threads)

    def feed(self, data: bytes) -> None:
        if self._patcher is None:
            self._head += data
            if len(self._head) > IDENTITY_MAX:
                self._start_patch()
            return
        self._patcher.write(data)

    def _start_patch(self) -> None:
        self._patcher = Patcher(
            self.basis,
            self.target,
            progress=self.progress,
            delta_name=self._name,
            fsync=self._fsync,
            mode=self.mode,
            mtime_ns=self.mtime_ns,
        )
        head, self._head = self._head, bytearray()
        self._patcher.write(head)

    def finish(self) -> str:
        """End of the delta: verify and publish; returns the action taken."""
        if self._patcher is None:
            if self.have and self._unchanged():
                return "unchanged"
            self._start_patch()
        assert self._patcher is not None
        self._patcher.close()
        with contextlib.suppress(OSError):
            os.unlink(self.partial)  # done with (and a leftover beside an existing file is stale)
        return "updated" if self.have else "created"

    def _unchanged(self) -> bool:
        """The delta is "old file as is": verify the old file against its digest in place."""
        want = identity_digest(bytes(self._head), self.basis_size)
        if want is None:
            return False
        hasher = backend.Blake3()
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        self.basis.seek(0)
        off = 0
        while off < self.basis_size:
            n = self.basis.readinto(view)
            if not n:
                return False
            hasher.update(view[:n])
            off += n
            if self.progress is not None:
                self.progress(off)
        if hasher.digest() != want:
            return False  # the patch then says what is wrong
        try:
            if self.mode is not None:
                os.chmod(self.target, self.mode)
            if self.mtime_ns is not None:
                os.utime(self.target, ns=(time.time_ns(), self.mtime_ns))
        except OSError as e:
            raise FileAccessError(
                f"cannot set the times or mode of {self.target}: {os_reason(e)}"
            ) from None
        return True

    def close(self) -> None:
        """Drop any unfinished output (a published result stays) and the basis.

        An unfinished first copy is kept as the partial file if it got further
        than the partial file it started from.
        """
        p = self._patcher
        if p is not None and p.result is None:
            further = not self.have and p.produced > self.basis_size
            p.abort(keep_as=self.partial if further else None)
        self.basis.close()


def receive(ch: Channel, inc: Incoming) -> str:
    """Feed the delta stream on ch into inc and finish it; reads the stream to its end."""
    failure: Optional[BaseException] = None
    try:
        for piece in ch.recv_stream():
            if failure is None:
                with Failed() as f:
                    inc.feed(piece)
                if f.error is not None:
                    failure = f.error
                    inc.close()
    except RemoteError:  # the sender gave up on this file
        if failure is None:
            raise
    if failure is not None:
        raise failure
    return inc.finish()


class LinkGate:
    """Whether to compress the next literal: only while zstd outruns the link.

    Sent plain, literal bytes go at the link's speed L; compressed, at the
    speed C at which we compress them (the link then carries fewer bytes
    than it could). So compressing pays exactly when C > L: on a WAN or a
    1 Gbit/s link with cores to spare, not on a fast LAN or loopback, nor
    when the cores are busy. Both are measured as the data goes:

    * L: the channel counts the seconds spent blocked in write(); over the
      last WINDOW bytes sent, bytes / those seconds. While we produce faster
      than the link takes, that is the link's speed; while compressing makes
      us the bottleneck, writes do not block and L looks high, so the gate
      turns compression off again - it settles where the two balance.
    * C: the compressor reports each literal's size and wall time; times
      the worker threads.

    The first WARMUP bytes are always compressed (small deltas cost little
    to compress, and this gives C). Each literal goes as 'L' or 'Z' either
    way, and the result is verified against its digest as always.
    """

    WARMUP = 4 << 20
    WINDOW = 32 << 20

    def __init__(self, ch: Channel, workers: int) -> None:
        self._ch = ch
        self._workers = max(1, workers)
        self._start = (ch.sent, ch.write_seconds)
        self._hist: "collections.deque[Tuple[int, float]]" = collections.deque([self._start])
        self._comp: "collections.deque[Tuple[int, float]]" = collections.deque(maxlen=64)
        self._lock = threading.Lock()

    def record(self, nbytes: int, seconds: float) -> None:
        """One literal of nbytes took seconds to compress (on one worker)."""
        with self._lock:
            self._comp.append((nbytes, seconds))

    def link_rate(self) -> float:
        """Bytes/s the link drains (infinite while writes never block)."""
        sent, secs = self._ch.sent, self._ch.write_seconds
        with self._lock:
            hist = self._hist
            hist.append((sent, secs))
            while len(hist) > 2 and sent - hist[1][0] >= self.WINDOW:
                hist.popleft()
            dsent, dsecs = sent - hist[0][0], secs - hist[0][1]
        return dsent / dsecs if dsecs > 0 else float("inf")

    def compress_rate(self) -> float:
        """Bytes/s we compress, over the recent literals and all workers."""
        with self._lock:
            n = sum(b for b, _ in self._comp)
            s = sum(t for _, t in self._comp)
        return self._workers * n / s if s > 0 else float("inf")

    def __call__(self) -> bool:
        if self._ch.sent - self._start[0] < self.WARMUP:
            return True
        return self.compress_rate() > self.link_rate()


def send_delta(
    ch: Channel,
    sig_data: bytes,
    new: Union[str, BinaryIO],
    *,
    progress: Progress,
    threads: Optional[int],
    compress: Optional[bool],
    level: int,
) -> DeltaStats:
    """Make the delta of new against the received signature and stream it, then END.

    ``compress=None`` compresses literals adaptively (see :class:`LinkGate`).
    """
    name = f"signature from {ch.peer}"
    fmt.parse_sig_header(sig_data[: fmt.SIG_HEADER.size], name)
    sig = Signature(sig_data, name)
    zlit = use_compression(compress, level)
    nthreads = resolve_threads(threads)
    gate = LinkGate(ch, nthreads) if compress is None and zlit else None
    writer = DataWriter(ch)
    stats = DeltaStats()
    for piece in delta_pieces(
        sig,
        new,
        progress=progress,
        stats=stats,
        threads=nthreads,
        compress=zlit,
        level=level,
        gate=gate,
    ):
        writer.write(piece)
    writer.flush()
    ch.send(END)
    return stats
