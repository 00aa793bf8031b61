"""Thin wrappers over the librsync-interop part of the C core (``pd_rs_*``).

Like :mod:`pydelta._c`, every call hands whole buffers to C, which runs
with the GIL released.
"""

from __future__ import annotations

from typing import Optional, Union

from ._core import ffi, lib

Buffer = Union[bytes, bytearray, memoryview]

DELTA_MAGIC = lib.PD_RS_DELTA_MAGIC
MD4_MAGIC = lib.PD_RS_MD4_MAGIC
BLAKE2_MAGIC = lib.PD_RS_BLAKE2_MAGIC
RK_MD4_MAGIC = lib.PD_RS_RK_MD4_MAGIC
RK_BLAKE2_MAGIC = lib.PD_RS_RK_BLAKE2_MAGIC
WEAK_ROLLSUM = lib.PD_RS_WEAK_ROLLSUM
WEAK_RABINKARP = lib.PD_RS_WEAK_RABINKARP
BLAKE2_LEN = lib.PD_RS_BLAKE2_LEN
MD4_LEN = lib.PD_RS_MD4_LEN
LIT_MAX = lib.PD_RS_LIT_MAX
DELTA_MIN_OUT = lib.PD_RS_DELTA_MIN_OUT


def _ptr(buf: Buffer):
    return ffi.from_buffer("uint8_t[]", buf)


def _len(buf: Buffer) -> int:
    return memoryview(buf).nbytes


def blake2b(data: Buffer, digest_size: int = 32) -> bytes:
    """BLAKE2b of data (unkeyed), digest_size 1..64."""
    if not 1 <= digest_size <= 64:
        raise ValueError("digest_size must be 1..64")
    out = ffi.new("uint8_t[]", 64)
    lib.pd_rs_blake2b(_ptr(data), _len(data), out, digest_size)
    return bytes(ffi.buffer(out, digest_size))


def blake2b_many(data: Buffer, stride: int, count: int, length: int) -> list:
    """BLAKE2b-256 of ``count`` inputs of ``length`` bytes at ``i * stride``."""
    if count and (count - 1) * stride + length > _len(data):
        raise ValueError("inputs reach past the buffer")
    out = ffi.new("uint8_t[]", 32 * max(count, 1))
    lib.pd_rs_blake2b_many(_ptr(data), stride, count, length, out)
    return [bytes(ffi.buffer(out + 32 * i, 32)) for i in range(count)]


def md4(data: Buffer) -> bytes:
    """MD4 of data."""
    out = ffi.new("uint8_t[16]")
    lib.pd_rs_md4(_ptr(data), _len(data), out)
    return bytes(out)


def impl() -> str:
    """The BLAKE2b kernels in use ("portable", "avx2" or "avx512")."""
    return ffi.string(lib.pd_rs_impl()).decode()


def set_impl(name: str) -> bool:
    """Switch the BLAKE2b kernels; False if unknown or not supported here."""
    return bool(lib.pd_rs_set_impl(name.encode()))


def weak(kind: int, data: Buffer) -> int:
    """The weak sum (WEAK_ROLLSUM or WEAK_RABINKARP) of one window."""
    return int(lib.pd_rs_weak(kind, _ptr(data), _len(data)))


def weak_rolling(kind: int, data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    n = _len(data)
    count = n - window + 1 if 0 < window <= n else 0
    out = ffi.new("uint32_t[]", max(count, 1))
    got = lib.pd_rs_weak_rolling(kind, _ptr(data), n, window, out)
    return [int(out[i]) for i in range(got)]


def sig_blocks(magic: int, buf: Buffer, length: int, block_len: int, strong_len: int) -> bytes:
    """Signature entries of buf[:length]."""
    entry = 4 + strong_len
    count = -(-length // block_len)
    out = ffi.new("uint8_t[]", max(count * entry, 1))
    got = lib.pd_rs_sig_blocks(magic, _ptr(buf), length, block_len, strong_len, out)
    return bytes(ffi.buffer(out, got * entry))


class SigTable:
    """The lookup table of a librsync signature."""

    def __init__(
        self, magic: int, entries: Buffer, nblocks: int, block_len: int, strong_len: int
    ) -> None:
        err = ffi.new("int *")
        t = lib.pd_rs_sigtable_new(magic, _ptr(entries), nblocks, block_len, strong_len, err)
        if t == ffi.NULL:
            self._t = None
            self.error = int(err[0])
            return
        self.error = 0
        self._t = ffi.gc(t, lib.pd_rs_sigtable_free)

    def find(self, data: Buffer) -> Optional[int]:
        """Index of a block equal to data (one block long), or None."""
        i = lib.pd_rs_sigtable_find(self._t, _ptr(data))
        return None if i < 0 else int(i)

    @property
    def unique(self) -> int:
        """Distinct blocks in the table."""
        return int(lib.pd_rs_sigtable_unique(self._t))


class DeltaJob:
    """A resumable librsync delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        self._table = table  # the C job points into it
        d = lib.pd_rs_delta_new(table._t)
        if d == ffi.NULL:
            raise MemoryError("cannot allocate the delta job")
        self._d = ffi.gc(d, lib.pd_rs_delta_free)
        self._used = ffi.new("size_t *")
        self._produced = ffi.new("size_t *")

    def scan(self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray) -> tuple:
        """Scan inbuf[in_off:in_off+in_len]; (code, input used, output made)."""
        rc = lib.pd_rs_delta_scan(
            self._d,
            _ptr(inbuf) + in_off,
            in_len,
            1 if eof else 0,
            _ptr(outbuf),
            len(outbuf),
            self._used,
            self._produced,
        )
        return rc, int(self._used[0]), int(self._produced[0])

    def stats(self) -> tuple:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        a = ffi.new("uint64_t[3]")
        lib.pd_rs_delta_stats(self._d, a, a + 1, a + 2)
        return int(a[0]), int(a[1]), int(a[2])


class PatchJob:
    """Applies librsync delta commands; with fd < 0 only decodes and counts."""

    def __init__(self, fd: int, old_size: int) -> None:
        p = lib.pd_rs_patch_new(fd, old_size)
        if p == ffi.NULL:
            raise MemoryError("cannot allocate the patch job")
        self._p = ffi.gc(p, lib.pd_rs_patch_free)
        self._used = ffi.new("size_t *")
        self._produced = ffi.new("size_t *")

    def step(self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray) -> tuple:
        """Apply commands from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        rc = lib.pd_rs_patch_step(
            self._p,
            _ptr(inbuf) + in_off,
            in_len,
            _ptr(outbuf),
            len(outbuf),
            self._used,
            self._produced,
        )
        return rc, int(self._used[0]), int(self._produced[0])

    def stats(self) -> dict:
        """Commands decoded so far and the BLAKE3 digest of the output."""
        a = ffi.new("uint64_t[5]")
        dig = ffi.new("uint8_t[32]")
        lib.pd_rs_patch_stats(self._p, a, a + 1, a + 2, a + 3, a + 4, dig)
        return {
            "result_size": int(a[0]),
            "copies": int(a[1]),
            "copied": int(a[2]),
            "literals": int(a[3]),
            "literal": int(a[4]),
            "digest": bytes(ffi.buffer(dig, 32)),
        }

    @property
    def errno(self) -> int:
        """errno of the last basis read failure (0: the basis ended early)."""
        return int(lib.pd_rs_patch_errno(self._p))
