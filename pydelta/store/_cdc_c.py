"""The C chunker (csrc/cdc.c) behind a small class (moves to backends/c.py)."""

from __future__ import annotations

from typing import List, Tuple, Union

from .._core import ffi, lib

Buffer = Union[bytes, bytearray, memoryview]

#: Chunks reported per scan call at most.
CAP = 4096


def cdc_gear() -> List[int]:
    """The 256 entries of the chunker's gear table."""
    out = ffi.new("uint64_t[256]")
    lib.pd_cdc_gear(out)
    return [int(out[i]) for i in range(256)]


def cdc_check(min_size: int, avg_size: int, max_size: int) -> bool:
    """True if the sizes are valid for the chunker."""
    ok = all(0 <= v < 1 << 64 for v in (min_size, avg_size, max_size))
    return ok and lib.pd_cdc_check(min_size, avg_size, max_size) == lib.PD_OK


class Chunker:
    """A streaming content-defined chunker with per-chunk BLAKE3."""

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if not cdc_check(min_size, avg_size, max_size):
            raise ValueError(f"invalid chunk sizes {min_size}/{avg_size}/{max_size}")
        c = lib.pd_cdc_new(min_size, avg_size, max_size)
        if c == ffi.NULL:
            raise MemoryError("cannot allocate the chunker")
        self._c = ffi.gc(c, lib.pd_cdc_free)
        self._lens = ffi.new("uint64_t[]", CAP)
        self._digests = ffi.new("uint8_t[]", CAP * 32)
        self._used = ffi.new("size_t *")
        self._count = ffi.new("size_t *")

    def reset(self) -> None:
        """Start a new stream."""
        lib.pd_cdc_reset(self._c)

    def scan(
        self, buf: Buffer, off: int, length: int, eof: bool
    ) -> Tuple[int, int, List[int], bytes]:
        """Scan buf[off:off+length]: (code, bytes used, chunk lengths, their digests)."""
        rc = lib.pd_cdc_scan(
            self._c,
            ffi.from_buffer("uint8_t[]", buf) + off,
            length,
            1 if eof else 0,
            self._lens,
            self._digests,
            CAP,
            self._used,
            self._count,
        )
        n = int(self._count[0])
        lens = [int(v) for v in ffi.unpack(self._lens, n)] if n else []
        return rc, int(self._used[0]), lens, bytes(ffi.buffer(self._digests, 32 * n))
