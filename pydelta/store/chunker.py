"""Chunking files for the store: content-defined cut points and BLAKE3 digests.

The kernel (csrc/cdc.c, or its numba twin) finds the cut points and hashes
each chunk; this module feeds it a file in large reads, keeps the bytes of
the chunk in progress when the caller wants the chunks' data (push), and
hashes the whole file alongside (the manifest's per-file digest).

Memory: one read buffer (:data:`READ_SIZE`) plus at most one chunk carried
over between reads, whatever the file size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, List, Optional, Tuple

from ..backends import backend
from ..errors import DONE, NEED_OUTPUT, UsageError

#: Bytes read from a file per call.
READ_SIZE = 8 << 20


@dataclass(frozen=True)
class ChunkParams:
    """Chunk sizes: no cut before ``min_size``, a forced cut at ``max_size``,
    sizes clustered around ``avg_size`` (a power of two)."""

    min_size: int
    avg_size: int
    max_size: int

    @classmethod
    def from_avg(cls, avg: int) -> "ChunkParams":
        """min = avg / 4, max = avg * 4 (the store's default shape)."""
        return cls(avg // 4, avg, avg * 4)

    def as_tuple(self) -> Tuple[int, int, int]:
        """(min, avg, max)."""
        return (self.min_size, self.avg_size, self.max_size)


#: The default: 256 KiB average (64 KiB .. 1 MiB). Measured on 1 GiB model
#: pairs (bench/store_bench.py --sweep): a fine-tune re-uploads 2.86% at
#: 256 KiB against 2.58% at 128 KiB and 2.51% at 32 KiB, an append 4.04%
#: against 4.22% and 4.38% (larger chunks compress better), while the
#: chunk count, manifest size and per-chunk memory halve with each
#: doubling (3,582 chunks and 144 KB of manifest per GiB at 256 KiB).
DEFAULT_PARAMS = ChunkParams.from_avg(256 << 10)


def _kernels():
    """The chunker class and the BLAKE3 hasher of the backend in use."""
    return backend.Chunker, backend.Blake3


def check_params(p: ChunkParams) -> ChunkParams:
    """Raise UsageError unless the sizes are valid for the chunker."""
    lo, avg, hi = p.as_tuple()
    if not (64 <= lo <= avg <= hi <= 1 << 30) or avg < 256 or avg & (avg - 1):
        raise UsageError(
            f"invalid chunk sizes {lo}/{avg}/{hi}: need 64 <= min <= avg <= max <= 1 GiB, "
            "avg a power of two >= 256"
        )
    return p


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file."""

    __slots__ = ("offset", "size", "digest")
    offset: int
    size: int
    digest: bytes


def chunk_stream(
    fh: BinaryIO,
    params: ChunkParams = DEFAULT_PARAMS,
    *,
    want_data: bool = False,
    on_read: Optional[Callable[[int], None]] = None,
    read_size: int = READ_SIZE,
    whole: bool = True,
) -> Iterator[Tuple[Chunk, Optional[memoryview]]]:
    """Yield (chunk, data) for a binary stream, in order; then stop.

    ``data`` is a memoryview of the chunk's bytes when ``want_data`` (valid
    only until the next item is requested), else None. The generator's
    return value (StopIteration.value) is the BLAKE3 digest of the whole
    stream (None unless ``whole``: the chunk digests say as much, for a
    caller that compares them). ``on_read(n)`` is called after each read.
    """
    Chunker, Blake3 = _kernels()
    ch = Chunker(*params.as_tuple())
    hasher = Blake3() if whole else None
    cap = max(read_size, params.max_size * 2)
    buf = bytearray(cap)
    view = memoryview(buf)
    start = 0  # buffer index where the unfinished chunk begins (want_data)
    end = 0  # bytes of valid data in buf
    scanned = 0  # buffer index up to which the kernel has seen the data
    pos = 0  # file offset of the next chunk
    eof = False
    while True:
        # keep the unfinished chunk's bytes (if wanted), read more after them
        keep = start if want_data else scanned
        if keep:
            view[: end - keep] = view[keep:end]
            end -= keep
            scanned -= keep
            start = max(0, start - keep)
        while end < cap and not eof:
            n = fh.readinto(view[end:cap])
            if not n:
                eof = True
                break
            if hasher is not None:
                hasher.update(view[end : end + n])
            end += n
            if on_read is not None:
                on_read(n)
            if end - scanned >= read_size // 2:
                break
        while True:
            rc, used, lens, digests = ch.scan(buf, scanned, end - scanned, eof)
            scanned += used
            for i, n in enumerate(lens):
                c = Chunk(pos, n, digests[32 * i : 32 * i + 32])
                yield c, (view[start : start + n] if want_data else None)
                pos += n
                start += n
            if rc != NEED_OUTPUT:
                break
        if rc == DONE:
            return hasher.digest() if hasher is not None else None


def chunk_file(
    path: str, params: ChunkParams = DEFAULT_PARAMS, on_read: Optional[Callable[[int], None]] = None
) -> Tuple[List[Chunk], bytes]:
    """All chunks of a file and its whole-file BLAKE3."""
    out: List[Chunk] = []
    with open(path, "rb", buffering=0) as fh:
        gen = chunk_stream(fh, params, on_read=on_read)
        while True:
            try:
                c, _ = next(gen)
            except StopIteration as stop:
                return out, stop.value
            out.append(c)


def file_size(path: str) -> int:
    """Size of a file in bytes."""
    return os.stat(path).st_size
