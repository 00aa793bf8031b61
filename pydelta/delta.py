"""Making deltas: scan NEW against a signature, pydelta's or librsync's.

NEW is read once, front to back (a pipe is fine); memory is the signature
table plus a read buffer and an output buffer, whatever NEW's size. A
native signature gives a native delta (literals zstd-compressed where that
pays, see :mod:`pydelta.formats.literals`); a librsync signature gives a
librsync delta that ``rdiff patch`` applies.
"""

from __future__ import annotations

import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import (
    Any,
    BinaryIO,
    Callable,
    Generator,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
    overload,
)

from ._io import MappedWindows, Source, fill, open_input, readinto, write_all
from ._threads import file_range, resolve_threads
from .backends import backend, rdiff_kernels
from .errors import (
    DONE,
    ERR_IO,
    NEED_INPUT,
    NEED_OUTPUT,
    FileAccessError,
    UsageError,
    raise_for_code,
)
from .formats import literals
from .formats import native as fmt
from .formats.literals import DEFAULT_LEVEL
from .formats.rdiff import DELTA_MAGIC as RDIFF_DELTA_MAGIC
from .results import DeltaStats, Progress
from .signature import AnySignature, RdiffSignature, Signature, load_any_signature

#: Bytes of NEW held per call into C.
READ_SIZE = 8 << 20
#: Output buffer of the scan.
OUT_SIZE = 1 << 20
#: Bytes of NEW mapped at a time when it is a regular file (at least four
#: blocks); PYDELTA_MAP_NEW=0 reads it with read() instead.
MAP_WINDOW = 8 << 20
MAP_ENV = "PYDELTA_MAP_NEW"

#: Index candidates one pre-scan segment records at most (then it stops early).
PRESCAN_CAP = 1 << 15
#: The pre-scan runs on stretches of NEW at least this long, and looks at
#: the share of literals every PRESCAN_CHECK bytes scanned.
PRESCAN_MIN = 1 << 20
PRESCAN_CHECK = 4 << 20
#: The pre-scan runs while literals were at least this share of the NEW
#: bytes scanned since the last check (little in common with the basis).
PRESCAN_LITERAL_SHARE = 0.5

SigSource = Union[Source, Signature, RdiffSignature, bytes]
Gate = Optional[Callable[[], bool]]
Piece = Union[bytes, memoryview]

__all__ = ["delta", "iter_delta", "delta_pieces", "use_compression", "DeltaStats"]


def _scan(
    sig: Signature,
    new: Source,
    progress: Progress,
    stats: DeltaStats,
    threads: int,
    flags: int = 0,
    digest: Optional[Callable[[], bytes]] = None,
) -> Iterator[memoryview]:
    """Yield the delta as views into a reused buffer (valid until the next one).

    With threads > 1 the digest of NEW is computed on a second thread while
    the scan runs: each region is handed to the hasher as soon as it is read
    and waited for only before its bytes are overwritten. ``digest``, if
    given, supplies NEW's BLAKE3 instead (called at the end of NEW; sync
    computes it while the far end signs its copy).
    """
    header = fmt.pack_delta_header(sig.info, flags)
    stats.delta_size = len(header)
    yield memoryview(header)
    job = backend.DeltaJob(sig.table)
    block_len = sig.info.block_len
    # the scan needs a block and more of NEW in hand; the buffer starts at
    # READ_SIZE and doubles (up to cap) only while it is full of NEW's bytes
    # and the scan could not use them: memory follows the data that arrived,
    # not the block length a signature claims
    cap = max(READ_SIZE, 4 * block_len)
    inbuf = bytearray(min(cap, READ_SIZE))
    view = memoryview(inbuf)
    outbuf = bytearray(max(OUT_SIZE, backend.DELTA_MIN_OUT))
    out_view = memoryview(outbuf)
    # one hashing thread: updates must run one at a time, in order
    executor = (
        ThreadPoolExecutor(1, thread_name_prefix="pydelta-hash")
        if threads > 1 and digest is None
        else None
    )
    hasher = backend.Blake3() if executor is not None else None
    pending: List[Future] = []  # hashing jobs not yet finished, in order
    if hasher is not None or digest is not None:
        job.hash_externally()
    pre = _Prescan(sig, job, threads) if threads > 1 and backend.NAME == "c" else None

    def settle() -> None:
        for f in pending:
            f.result()
        pending.clear()

    try:
        with open_input(new, "new file") as (fh, name):
            win = _windows_of(fh, block_len)
            if win is not None:
                if pre is not None:
                    pre.mapped = name
                yield from _scan_windows(
                    win, name, job, pre, hasher, executor, digest, stats, progress
                )
                stats.new_size, stats.copied, stats.literal = job.stats()
                return
            done = 0  # bytes of NEW dropped from the buffer
            start = have = 0  # unused input is inbuf[start:have]
            eof = False
            while True:
                if not eof and have < len(inbuf):
                    n = readinto(fh, view[have:], name)
                    if n:
                        if executor is not None:
                            pending.append(executor.submit(hasher.update, view[have : have + n]))
                        have += n
                    else:
                        eof = True
                        if hasher is not None:
                            settle()
                            job.set_digest(hasher.digest())
                        elif digest is not None:
                            job.set_digest(digest())
                if pre is not None:
                    pre.run(inbuf, have, done, start)
                rc, used, produced = job.scan(inbuf, start, have - start, eof, outbuf)
                if rc < 0:
                    raise_for_code(rc)
                if produced:
                    stats.delta_size += produced
                    yield out_view[:produced]
                if used:
                    start += used
                    if progress is not None:
                        progress(done + start)
                if rc == DONE:
                    break
                if rc == NEED_INPUT and start:
                    # make room at the end: move the unused bytes to the front
                    settle()
                    inbuf[: have - start] = inbuf[start:have]
                    done += start
                    have -= start
                    start = 0
                elif rc == NEED_INPUT and have == len(inbuf) and len(inbuf) < cap:
                    inbuf, view = _grown(inbuf, have, cap)  # (pending hashes keep the old one)
    finally:
        if pre is not None:
            pre.close()
        if executor is not None:
            _settle_quietly(pending)
            executor.shutdown(wait=True)
    stats.new_size, stats.copied, stats.literal = job.stats()


def _windows_of(fh: BinaryIO, block_len: int) -> Optional[MappedWindows]:
    """Mapped windows of NEW when it is a regular file read directly (C
    backend, not PYDELTA_MAP_NEW=0), else None: the read() path."""
    if os.environ.get(MAP_ENV, "1") == "0" or not hasattr(backend, "map_guard"):
        return None
    where = file_range(fh)
    if where is None or where[1] % mmap.ALLOCATIONGRANULARITY:
        return None
    fd, pos = where
    try:
        size = os.fstat(fd).st_size - pos
    except OSError:
        return None
    if size <= 0 or not backend.map_guard():
        return None
    win = MappedWindows(fd, pos, size, max(MAP_WINDOW, 4 * block_len))
    try:
        win.window(0)
    except (OSError, ValueError):  # a file system that cannot map it: read()
        win.close()
        return None
    return win


def _truncated(name: str, size: int) -> FileAccessError:
    return FileAccessError(
        f"cannot read new file {name}: it was cut short while being read (it had {size} bytes)"
    )


def _scan_windows(
    win: MappedWindows,
    name: str,
    job: Any,
    pre: Optional["_Prescan"],
    hasher: Any,
    executor: Optional[ThreadPoolExecutor],
    digest: Optional[Callable[[], bytes]],
    stats: DeltaStats,
    progress: Progress = None,
) -> Iterator[memoryview]:
    """The scan of :func:`_scan` over mapped windows of NEW instead of a read
    buffer: no copy out of the page cache. NEW is the ``win.size`` bytes it
    had when opened; one cut short under a window is an error (the kernels
    touching the mapping are guarded, csrc/mapguard.c), never a crash.
    Each window starts where the scan stopped (rounded down to the mapping
    granularity); the previous one is unmapped first."""
    gran = mmap.ALLOCATIONGRANULARITY
    outbuf = bytearray(max(OUT_SIZE, backend.DELTA_MIN_OUT))
    out_view = memoryview(outbuf)
    pending: List[Future] = []  # hashing jobs, in order: True if the mapping held

    def settle() -> None:
        held = [f.result() for f in pending]
        pending.clear()
        if not all(held):
            raise _truncated(name, win.size)

    done = start = hashed = 0  # window's NEW offset; scan position in it; NEW hashed
    view = win.view  # the first window, mapped by _windows_of
    assert view is not None
    have, told = len(view), False
    try:
        while True:
            eof = done + have == win.size
            if executor is not None and hashed < done + have:
                part = view[hashed - done : have]
                pending.append(executor.submit(backend.blake3_update_mapped, hasher, part))
                hashed = done + have
            if eof and not told:
                if hasher is not None:
                    settle()
                    job.set_digest(hasher.digest())
                elif digest is not None:
                    job.set_digest(digest())
                told = True
            if pre is not None:
                pre.run(view, have, done, start)
            rc, used, produced = job.scan_mapped(view, start, have - start, eof, outbuf)
            if rc == ERR_IO:
                raise _truncated(name, win.size)
            if rc < 0:
                raise_for_code(rc)
            if produced:
                stats.delta_size += produced
                yield out_view[:produced]
            if used:
                start += used
                if progress is not None:
                    progress(done + start)
            if rc == DONE:
                break
            if rc == NEED_INPUT and not eof:
                settle()  # the hasher is done with this window
                at = (done + start) // gran * gran
                part = view = None  # type: ignore[assignment]
                try:
                    view = win.window(at, done + have - at + 1)
                except (ValueError, OSError):  # mmap saw the file shorter now
                    raise _truncated(name, win.size) from None
                start, done, have = done + start - at, at, len(view)
    finally:
        _settle_quietly(pending)
        part = view = None  # type: ignore[assignment]
        win.close()


class _Prescan:
    """The parallel pre-scan of the all-different case (csrc/prescan.c).

    Each new stretch of the input buffer is split into one segment per
    thread; the threads record where a window has an index candidate, and
    the scan is handed the result as a hint that lets it skip the certified
    misses. The delta does not depend on it (the scan still decides every
    window itself), so neither on the thread count nor the segments.
    """

    def __init__(self, sig: Signature, job: object, threads: int) -> None:
        self._table = sig.table
        self._job = job
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="pydelta-prescan")
        self._cap = PRESCAN_CAP
        self._hits = [backend.prescan_hits(self._cap) for _ in range(threads)]
        self._all = backend.prescan_hits(self._cap * threads)
        self._last = True
        self._upto = 0  # NEW is pre-scanned (hinted) up to here
        self._seen = (0, 0, 0)  # job stats at the last check
        #: NEW's name when the buffer is a mapping (the guarded kernel), else None
        self.mapped: Optional[str] = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _worth_it(self) -> bool:
        now = self._job.stats()  # type: ignore[attr-defined]
        new, lit = now[0] - self._seen[0], now[2] - self._seen[2]
        if new >= PRESCAN_CHECK or not now[0]:
            self._seen = now
            self._last = not now[0] or lit >= PRESCAN_LITERAL_SHARE * new
        return self._last

    def run(self, buf: Union[bytearray, memoryview], have: int, base: int, start: int) -> None:
        """Pre-scan buf[:have] (NEW offset base) from max(start, where it got)."""
        lo = max(start, self._upto - base)
        hi = have
        if hi - lo < PRESCAN_MIN or not self._worth_it():
            return
        per = -(-(hi - lo) // self._threads)
        segs = [(a, min(a + per, hi)) for a in range(lo, hi, per)]
        table, hits = self._table, self._hits

        kernel = backend.prescan if self.mapped is None else backend.prescan_mapped

        def one(i: int) -> Tuple[int, int]:
            a, b = segs[i]
            return kernel(table, buf, have, a, b, base, hits[i], self._cap)

        futures = [self._pool.submit(one, i) for i in range(1, len(segs))]
        try:
            results = [one(0)] + [f.result() for f in futures]
        except OSError:  # a guarded kernel: the mapped file was cut short
            for f in futures:
                f.exception()
            raise FileAccessError(f"cannot read new file {self.mapped}: it was cut short") from None
        total, stop = 0, base + lo
        for i, (n, done) in enumerate(results):
            backend.move_hits(self._all, total, hits[i], n)
            total += n
            stop = done
            if done != base + segs[i][1]:
                break  # stopped early: nothing after it is certified
        if stop > base + lo:
            self._job.hint(base + lo, stop, self._all, total)  # type: ignore[attr-defined]
            self._upto = stop


def _grown(buf: bytearray, have: int, cap: int) -> Tuple[bytearray, memoryview]:
    """A buffer twice as large (at most cap) holding buf[:have]."""
    bigger = bytearray(min(cap, 2 * len(buf)))
    bigger[:have] = buf[:have]
    return bigger, memoryview(bigger)


def _settle_quietly(pending: List[Future]) -> None:
    for f in pending:
        f.cancel()
    for f in pending:
        if not f.cancelled():
            f.exception()


def use_compression(compress: Optional[bool], level: int) -> bool:
    """Whether to compress literals: ``None`` means if zstandard is installed."""
    literals.check_level(level)
    if compress is None:
        return literals.available()
    if compress and not literals.available():
        raise UsageError("compress=True needs the 'zstandard' package: pip install zstandard")
    return bool(compress)


def delta_pieces(
    sig: Signature,
    new: Source,
    *,
    progress: Progress,
    stats: DeltaStats,
    threads: int,
    compress: bool,
    level: int,
    gate: Gate = None,
    digest: Optional[Callable[[], bytes]] = None,
) -> Iterator[Piece]:
    """A native delta in pieces (views valid until the next piece): the scan,
    with large literals compressed if ``compress`` (each one only if
    ``gate()`` says so, when a gate is given). ``stats`` is filled in.
    ``digest``: NEW's BLAKE3 from elsewhere (see :func:`_scan`)."""
    if not compress:
        return _scan(sig, new, progress, stats, threads, 0, digest)
    ops = _scan(sig, new, progress, stats, threads, fmt.FLAG_ZLITERALS, digest)
    return literals.compress_ops(ops, stats, level, threads, gate)


# -- librsync deltas ----------------------------------------------------------------

#: (buffer, start, end, eof) of NEW; the scan sends back how far it got.
Chunks = Generator[Tuple[Union[bytearray, memoryview], int, int, bool], int, None]


def _rdiff_scan(
    sig: RdiffSignature, new: Source, progress: Progress, stats: DeltaStats, threads: int = 1
) -> Iterator[memoryview]:
    """Yield the librsync delta as views into a reused buffer.

    With threads > 1 the next chunk of NEW is read in a second thread while
    the scan runs (two buffers); the delta is the same either way.
    """
    kernels = rdiff_kernels()
    stats.delta_size = len(RDIFF_DELTA_MAGIC)
    yield memoryview(RDIFF_DELTA_MAGIC)
    job = kernels.DeltaJob(sig.table)
    block_len = sig.info.block_len
    outbuf = bytearray(max(OUT_SIZE, kernels.DELTA_MIN_OUT))
    out_view = memoryview(outbuf)
    with open_input(new, "new file") as (fh, name):
        # reading ahead keeps two buffers of several blocks: only for blocks
        # of ordinary size (the in-place reader grows with the data instead)
        win = _windows_of(fh, block_len)
        scan = job.scan if win is None else job.scan_mapped
        if win is not None:
            chunks: Chunks = _read_mapped(win, name)
        elif threads > 1 and 4 * block_len <= READ_SIZE:
            chunks = _read_ahead(fh, name, block_len)
        else:
            chunks = _read_in_place(fh, name, block_len)
        try:
            rc, consumed = NEED_INPUT, 0
            for buf, start, have, eof in chunks:
                while True:
                    rc, used, produced = scan(buf, start, have - start, eof, outbuf)
                    if rc == ERR_IO and win is not None:
                        raise _truncated(name, win.size)
                    if rc < 0:
                        raise_for_code(rc)
                    if produced:
                        stats.delta_size += produced
                        yield out_view[:produced]
                    if used:
                        start += used
                        consumed += used
                        if progress is not None:
                            progress(consumed)
                    if rc != NEED_OUTPUT:  # done, or wants more input
                        break
                if rc == DONE:
                    break
                chunks.send(start)
        finally:
            chunks.close()
    stats.new_size, stats.copied, stats.literal = job.stats()


def _read_mapped(win: MappedWindows, name: str) -> Chunks:
    """Like _read_in_place over mapped windows of NEW (see _scan_windows):
    each window starts where the scan stopped, rounded down to the mapping
    granularity, and the previous one is unmapped first."""
    gran = mmap.ALLOCATIONGRANULARITY
    view: Optional[memoryview] = win.view  # the first window, mapped by _windows_of
    done = start = 0
    try:
        while view is not None:
            have = len(view)
            eof = done + have == win.size
            start = yield view, start, have, eof  # type: ignore[misc]
            yield  # type: ignore[misc]  # pause for send()
            if eof:
                raise AssertionError("delta scan wants input after the end")
            at = (done + start) // gran * gran
            view = None
            try:
                view = win.window(at, done + have - at + 1)
            except (ValueError, OSError):  # mmap saw the file shorter now
                raise _truncated(name, win.size) from None
            start, done = done + start - at, at
    finally:
        view = None
        win.close()


def _read_in_place(fh: BinaryIO, name: str, block_len: int) -> Chunks:
    """Yield (buffer, start, end, eof) views of NEW from one buffer; the
    caller sends back how far it got, and the unused rest moves to the front.
    The buffer starts at READ_SIZE and doubles, up to four blocks, only when
    it is full and the scan could use none of it (see _scan)."""
    cap = max(READ_SIZE, 4 * block_len)
    buf = bytearray(min(cap, READ_SIZE))
    view = memoryview(buf)
    start = have = 0
    eof = False
    while True:
        if not eof and have < len(buf):
            n = readinto(fh, view[have:], name)
            if n:
                have += n
            else:
                eof = True
        start = yield buf, start, have, eof
        yield  # type: ignore[misc]  # pause for send()
        if start:
            buf[: have - start] = buf[start:have]
            have -= start
            start = 0
        elif have == len(buf) and len(buf) < cap:
            buf, view = _grown(buf, have, cap)


def _read_ahead(fh: BinaryIO, name: str, block_len: int) -> Chunks:
    """Like _read_in_place with two buffers, the next one filled by a reader
    thread. The scan leaves at most a block unused; that tail is copied in
    front of the next chunk (each buffer keeps a block of room for it)."""
    reserve = block_len
    chunk = max(READ_SIZE, 4 * block_len)
    bufs = [bytearray(reserve + chunk), bytearray(reserve + chunk)]

    def refill(buf: bytearray) -> int:
        return fill(fh, memoryview(buf)[reserve:], name)

    with ThreadPoolExecutor(1, thread_name_prefix="pydelta-read") as reader:
        cur = 0
        n = refill(bufs[0])
        start, have, eof = reserve, reserve + n, n < chunk
        pending = None if eof else reader.submit(refill, bufs[1])
        try:
            while True:
                start = yield bufs[cur], start, have, eof
                yield  # type: ignore[misc]  # pause for send()
                if pending is None:  # at EOF the scan finishes this buffer
                    raise AssertionError("delta scan wants input after the end")
                left = have - start
                if left > reserve:  # pragma: no cover - the scan never leaves more
                    raise AssertionError("delta scan left more than a block unused")
                n = pending.result()
                nxt = 1 - cur
                bufs[nxt][reserve - left : reserve] = bufs[cur][start:have]
                cur, start, have, eof = nxt, reserve - left, reserve + n, n < chunk
                pending = None if eof else reader.submit(refill, bufs[1 - cur])
        finally:
            if pending is not None:
                pending.cancel()
                try:
                    pending.result()
                except BaseException:
                    pass


# -- the verb ---------------------------------------------------------------------


def _pieces(
    sig: SigSource,
    new: Source,
    progress: Progress,
    stats: DeltaStats,
    threads: Optional[int],
    compress: Optional[bool],
    level: int,
) -> Iterator[Piece]:
    """Check the arguments (at once) and return the delta's pieces (lazily):
    a librsync signature gives a librsync delta."""
    nthreads = resolve_threads(threads)
    zlit = use_compression(compress, level)
    loaded: AnySignature = load_any_signature(sig)
    if isinstance(loaded, RdiffSignature):
        if compress:
            raise UsageError(
                "an rdiff (librsync) delta cannot hold compressed literals: drop --compress"
            )
        return _rdiff_scan(loaded, new, progress, stats, nthreads)
    return delta_pieces(
        loaded, new, progress=progress, stats=stats, threads=nthreads, compress=zlit, level=level
    )


def iter_delta(
    sig: SigSource,
    new: Source,
    *,
    progress: Progress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
) -> Iterator[bytes]:
    """Yield the delta from ``sig`` to ``new`` in pieces as it is produced.

    Args:
        sig: a signature: path, ``"-"``, file object, bytes or a loaded
            :class:`Signature`.
        new: the new file: path, ``"-"`` or a readable binary file object.
        progress: called with the number of bytes of ``new`` read so far.
        threads, compress, level: as for :func:`delta`.

    Example:
        >>> for piece in iter_delta("old.sig", "new.bin"):  # doctest: +SKIP
        ...     channel.sendall(piece)
    """
    pieces = _pieces(sig, new, progress, DeltaStats(), threads, compress, level)
    return (bytes(piece) for piece in pieces)


@overload
def delta(
    sig: SigSource,
    new: Source,
    out: None = None,
    *,
    progress: Progress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
) -> bytes: ...


@overload
def delta(
    sig: SigSource,
    new: Source,
    out: Source,
    *,
    progress: Progress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
) -> DeltaStats: ...


def delta(
    sig: SigSource,
    new: Source,
    out: Union[Source, None] = None,
    *,
    progress: Progress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
) -> Union[bytes, DeltaStats]:
    """Compute the delta that turns the signature's basis into ``new``.

    Args:
        sig: the signature of the old file (path, ``"-"``, file object,
            bytes or a loaded :class:`Signature`). An rdiff (librsync)
            signature, recognized by its magic, gives an rdiff delta.
        new: the new file (path, ``"-"`` or readable binary file object).
        out: where to write the delta: a path (written atomically), ``"-"``
            or a writable binary file object; if omitted the delta is
            returned as bytes.
        progress: called with the number of bytes of ``new`` read so far.
        threads: threads to use (default: all cores; the digest of ``new``
            is computed beside the scan); same output for any count.
        compress: send LITERAL data zstd-compressed where that saves at
            least 3% (per literal, plain or with the bytes of 16-bit values
            grouped, whichever is smaller). Default: on if the
            ``zstandard`` package is installed. Off gives the format-1
            delta of earlier versions, byte for byte.
        level: zstd level, 1..22 (default 3).

    Returns:
        The delta bytes if ``out`` is None, else :class:`DeltaStats`.

    Example:
        >>> import pydelta
        >>> stats = pydelta.delta("old.sig", "new.bin", "new.delta")  # doctest: +SKIP
        >>> stats.literal  # bytes that had to be sent  # doctest: +SKIP
        31457280
    """
    stats = DeltaStats()
    pieces = _pieces(sig, new, progress, stats, threads, compress, level)
    if out is None:
        return b"".join(bytes(p) for p in pieces)
    write_all(out, "delta", pieces)
    return stats
