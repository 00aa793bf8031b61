"""Making deltas: scan NEW against a signature.

NEW is read once, front to back (a pipe is fine); memory is the signature
table plus a read buffer and an output buffer, whatever NEW's size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

from . import format as fmt
from ._backend import backend
from ._io import Source, open_input, open_output, readinto
from ._literals import DEFAULT_LEVEL
from ._threads import resolve_threads
from .errors import UsageError
from .rdiff import RdiffSignature, load_any_signature
from .signature import Signature

#: Bytes of NEW held per call into C.
READ_SIZE = 8 << 20
#: Output buffer of the scan.
OUT_SIZE = 1 << 20

Progress = Optional[Callable[[int], None]]
SigSource = Union[Source, Signature, bytes]


@dataclass
class DeltaStats:
    """What a delta holds, filled in as it is written."""

    new_size: int = 0  #: bytes of NEW
    copied: int = 0  #: bytes of NEW sent as COPY from OLD
    literal: int = 0  #: bytes of NEW sent as LITERAL data
    delta_size: int = 0  #: bytes of delta written
    compressed_literal: int = 0  #: LITERAL bytes sent zstd-compressed (uncompressed size)
    compressed_size: int = 0  #: bytes those took in the delta (the zstd frames)


def _scan(
    sig: Signature,
    new: Source,
    progress: Progress,
    stats: DeltaStats,
    threads: int,
    flags: int = 0,
) -> Iterator[memoryview]:
    """Yield the delta as views into a reused buffer (valid until the next one).

    With threads > 1 the digest of NEW is computed on a second thread while
    the scan runs: each region is handed to the hasher as soon as it is read
    and waited for only before its bytes are overwritten.
    """
    header = fmt.pack_delta_header(sig.info, flags)
    stats.delta_size = len(header)
    yield memoryview(header)
    job = backend.DeltaJob(sig.table)
    block_len = sig.info.block_len
    cap = max(READ_SIZE, 4 * block_len)
    inbuf = bytearray(cap)
    view = memoryview(inbuf)
    outbuf = bytearray(max(OUT_SIZE, backend.DELTA_MIN_OUT))
    out_view = memoryview(outbuf)
    # one hashing thread: updates must run one at a time, in order
    executor = ThreadPoolExecutor(1, thread_name_prefix="pydelta-hash") if threads > 1 else None
    hasher = backend.Blake3() if executor is not None else None
    pending: list = []  # hashing jobs not yet finished, in order
    if hasher is not None:
        job.hash_externally()

    def settle() -> None:
        for f in pending:
            f.result()
        pending.clear()

    try:
        with open_input(new, "new file") as (fh, name):
            done = 0  # bytes of NEW dropped from the buffer
            start = have = 0  # unused input is inbuf[start:have]
            eof = False
            while True:
                if not eof and have < cap:
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
                rc, used, produced = job.scan(inbuf, start, have - start, eof, outbuf)
                if rc < 0:
                    raise MemoryError(f"delta scan failed with code {rc}")
                if produced:
                    stats.delta_size += produced
                    yield out_view[:produced]
                if used:
                    start += used
                    if progress is not None:
                        progress(done + start)
                if rc == backend.DONE:
                    break
                if rc == backend.NEED_INPUT and start:
                    # make room at the end: move the unused bytes to the front
                    settle()
                    inbuf[: have - start] = inbuf[start:have]
                    done += start
                    have -= start
                    start = 0
    finally:
        if executor is not None:
            settle_quietly(pending)
            executor.shutdown(wait=True)
    stats.new_size, stats.copied, stats.literal = job.stats()


def _use_compression(compress: Optional[bool], level: int) -> bool:
    """Whether to compress literals: ``None`` means if zstandard is installed."""
    from . import _literals

    _literals.check_level(level)
    if compress is None:
        return _literals.available()
    if compress and not _literals.available():
        raise UsageError(
            "compress=True needs the 'zstandard' package: pip install zstandard"
        )
    return bool(compress)


def _stream(
    sig: Signature,
    new: Source,
    progress: Progress,
    stats: DeltaStats,
    threads: int,
    compress: bool,
    level: int,
    gate: Optional[Callable[[], bool]] = None,
) -> Iterator[Union[bytes, memoryview]]:
    """The delta in pieces: _scan, with large literals compressed if asked
    (each one only if ``gate()`` says so, when a gate is given)."""
    if not compress:
        return _scan(sig, new, progress, stats, threads)
    from ._literals import compress_ops

    ops = _scan(sig, new, progress, stats, threads, fmt.FLAG_ZLITERALS)
    return compress_ops(ops, stats, level, threads, gate)


def settle_quietly(pending: list) -> None:
    for f in pending:
        f.cancel()
    for f in pending:
        if not f.cancelled():
            f.exception()


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
    nthreads = resolve_threads(threads)
    zlit = _use_compression(compress, level)
    sig = load_any_signature(sig)  # a librsync signature gives a librsync delta
    if isinstance(sig, RdiffSignature):
        from .rdiff import iter_delta as rdiff_iter_delta

        if compress:
            raise UsageError("an rdiff (librsync) delta cannot hold compressed literals: drop --compress")

        return rdiff_iter_delta(sig, new, progress=progress, threads=nthreads)
    pieces = _stream(sig, new, progress, DeltaStats(), nthreads, zlit, level)
    return (bytes(piece) for piece in pieces)


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
    nthreads = resolve_threads(threads)
    zlit = _use_compression(compress, level)
    sig = load_any_signature(sig)  # a librsync signature gives a librsync delta
    if isinstance(sig, RdiffSignature):
        from .rdiff import delta as rdiff_delta

        if compress:
            raise UsageError("an rdiff (librsync) delta cannot hold compressed literals: drop --compress")

        return rdiff_delta(sig, new, out, progress=progress, threads=nthreads)
    stats = DeltaStats()
    if out is None:
        return b"".join(bytes(p) for p in _stream(sig, new, progress, stats, nthreads, zlit, level))
    sink = open_output(out, "delta")
    try:
        for piece in _stream(sig, new, progress, stats, nthreads, zlit, level):
            sink.write(piece)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return stats
