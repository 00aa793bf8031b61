"""The librsync-interop kernels of the C core (``pd_rs_*``).

Only the C backend has them: rdiff signatures and deltas need the C core
whichever backend runs pydelta's own formats. Like :mod:`.c`, every call
hands whole buffers to C, which runs with the GIL released; the table and
job wrappers are the generic ones of :mod:`._cffi`.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Union

from .._core import ffi, lib
from ._cffi import Job, Table, fd_entries, nbytes, ptr, u64s

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


def blake2b(data: Buffer, digest_size: int = 32) -> bytes:
    """BLAKE2b of data (unkeyed), digest_size 1..64."""
    if not 1 <= digest_size <= 64:
        raise ValueError("digest_size must be 1..64")
    out = ffi.new("uint8_t[]", 64)
    lib.pd_rs_blake2b(ptr(data), nbytes(data), out, digest_size)
    return bytes(ffi.buffer(out, digest_size))


def blake2b_many(data: Buffer, stride: int, count: int, length: int) -> list:
    """BLAKE2b-256 of ``count`` inputs of ``length`` bytes at ``i * stride``."""
    if count and (count - 1) * stride + length > nbytes(data):
        raise ValueError("inputs reach past the buffer")
    out = ffi.new("uint8_t[]", 32 * max(count, 1))
    lib.pd_rs_blake2b_many(ptr(data), stride, count, length, out)
    return [bytes(ffi.buffer(out + 32 * i, 32)) for i in range(count)]


def md4(data: Buffer) -> bytes:
    """MD4 of data."""
    out = ffi.new("uint8_t[16]")
    lib.pd_rs_md4(ptr(data), nbytes(data), out)
    return bytes(out)


def impl() -> str:
    """The BLAKE2b kernels in use ("portable", "avx2" or "avx512")."""
    return ffi.string(lib.pd_rs_impl()).decode()


def set_impl(name: str) -> bool:
    """Switch the BLAKE2b kernels; False if unknown or not supported here."""
    return bool(lib.pd_rs_set_impl(name.encode()))


def weak(kind: int, data: Buffer) -> int:
    """The weak sum (WEAK_ROLLSUM or WEAK_RABINKARP) of one window."""
    return int(lib.pd_rs_weak(kind, ptr(data), nbytes(data)))


def weak_rolling(kind: int, data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    n = nbytes(data)
    count = n - window + 1 if 0 < window <= n else 0
    out = ffi.new("uint32_t[]", max(count, 1))
    got = lib.pd_rs_weak_rolling(kind, ptr(data), n, window, out)
    return [int(out[i]) for i in range(got)]


def sig_blocks(magic: int, buf: Buffer, length: int, block_len: int, strong_len: int) -> bytes:
    """Signature entries of buf[:length]."""
    entry = 4 + strong_len
    count = -(-length // block_len)
    out = ffi.new("uint8_t[]", max(count * entry, 1))
    got = lib.pd_rs_sig_blocks(magic, ptr(buf), length, block_len, strong_len, out)
    return bytes(ffi.buffer(out, got * entry))


def sig_fd(
    magic: int,
    buf: bytearray,
    fd: int,
    offset: int,
    length: int,
    block_len: int,
    strong_len: int,
) -> Tuple[bytes, int]:
    """Entries of bytes [offset, offset + length) of the regular file fd, read
    in pieces of len(buf) bytes (whole blocks) into buf and hashed at once
    (csrc/sigread.c). Returns (entries, bytes read: fewer only at end of
    file); a failed read raises OSError."""
    return fd_entries(
        lambda out, got, err: lib.pd_rs_sig_fd(
            magic, fd, offset, length, block_len, strong_len, ptr(buf), len(buf), out, got, err
        ),
        "pd_rs_sig_fd",
        length,
        block_len,
        4 + strong_len,
    )


class SigTable(Table):
    """The lookup table of a librsync signature."""

    _find = lib.pd_rs_sigtable_find
    _unique = lib.pd_rs_sigtable_unique

    def __init__(
        self, magic: int, entries: Buffer, nblocks: int, block_len: int, strong_len: int
    ) -> None:
        err = ffi.new("int *")
        t = lib.pd_rs_sigtable_new(magic, ptr(entries), nblocks, block_len, strong_len, err)
        self._adopt(t, err, lib.pd_rs_sigtable_free)


class DeltaJob(Job):
    """A resumable librsync delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        self._table = table  # the C job points into it
        self._adopt(lib.pd_rs_delta_new(table._t), lib.pd_rs_delta_free, "delta job")

    def scan(
        self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray
    ) -> Tuple[int, int, int]:
        """Scan inbuf[in_off:in_off+in_len]; (code, input used, output made)."""
        return self._call(lib.pd_rs_delta_scan, inbuf, in_off, in_len, outbuf, 1 if eof else 0)

    def scan_mapped(
        self, inbuf: Buffer, in_off: int, in_len: int, eof: bool, outbuf: bytearray
    ) -> Tuple[int, int, int]:
        """:meth:`scan` over a mapping of a file (csrc/mapguard.c): a file
        truncated under it gives PD_ERR_IO (the job is then unusable)."""
        return self._call(
            lib.pd_rs_delta_scan_mapped, inbuf, in_off, in_len, outbuf, 1 if eof else 0
        )

    def stats(self) -> Tuple[int, ...]:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        return u64s(lib.pd_rs_delta_stats, self._h, 3)


class PatchJob(Job):
    """Applies librsync delta commands; with fd < 0 only decodes and counts."""

    def __init__(self, fd: int, old_size: int) -> None:
        self._adopt(lib.pd_rs_patch_new(fd, old_size), lib.pd_rs_patch_free, "patch job")

    def attach(self, sink: Any) -> None:
        """Write the output through a :class:`pydelta.backends.c.Sink`."""
        self._sink = sink  # the C job points to it
        lib.pd_rs_patch_set_sink(self._h, sink._s)

    def step(
        self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray
    ) -> Tuple[int, int, int]:
        """Apply commands from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        return self._call(lib.pd_rs_patch_step, inbuf, in_off, in_len, outbuf)

    def stats(self) -> Dict[str, object]:
        """Commands decoded so far and the BLAKE3 digest of the output."""
        a = ffi.new("uint64_t[5]")
        dig = ffi.new("uint8_t[32]")
        lib.pd_rs_patch_stats(self._h, a, a + 1, a + 2, a + 3, a + 4, dig)
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
        return int(lib.pd_rs_patch_errno(self._h))


__all__ = [
    "blake2b",
    "blake2b_many",
    "md4",
    "impl",
    "set_impl",
    "weak",
    "weak_rolling",
    "sig_blocks",
    "sig_fd",
    "SigTable",
    "DeltaJob",
    "PatchJob",
]
