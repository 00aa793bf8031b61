"""The C backend: thin wrappers over the cffi module ``pydelta._core``.

Everything here moves whole buffers into C in one call; the C side runs
with the GIL released (cffi's default for API-mode calls), so other Python
threads keep running while a block is hashed or a buffer scanned.
"""

from __future__ import annotations

from typing import Optional, Union

from ._core import ffi, lib

NAME = "c"

Buffer = Union[bytes, bytearray, memoryview]

NEED_INPUT = lib.PD_NEED_INPUT
NEED_OUTPUT = lib.PD_NEED_OUTPUT
DONE = lib.PD_DONE
ERR_CORRUPT = lib.PD_ERR_CORRUPT
ERR_BOUNDS = lib.PD_ERR_BOUNDS
ERR_IO = lib.PD_ERR_IO
ERR_NOMEM = lib.PD_ERR_NOMEM
ERR_PARAM = lib.PD_ERR_PARAM
ERR_SIGNATURE = lib.PD_ERR_SIGNATURE

HASH_LEN = lib.PD_HASH_LEN
LIT_MAX = lib.PD_LIT_MAX
DELTA_MIN_OUT = lib.PD_DELTA_MIN_OUT


def _ptr(buf: Buffer):
    """A uint8_t pointer to a Python buffer, without copying."""
    return ffi.from_buffer("uint8_t[]", buf)


class Blake3:
    """Incremental BLAKE3 (unkeyed), hashlib-shaped."""

    name = "blake3"
    digest_size = 32
    block_size = 64

    def __init__(self, data: Buffer = b"", /) -> None:
        self._h = ffi.gc(lib.pd_blake3_new(), lib.pd_blake3_free)
        if self._h == ffi.NULL:
            raise MemoryError("cannot allocate a BLAKE3 state")
        if data:
            self.update(data)

    def update(self, data: Buffer, /) -> None:
        """Hash more bytes."""
        lib.pd_blake3_update(self._h, _ptr(data), memoryview(data).nbytes)

    def digest(self, length: int = 32) -> bytes:
        """The digest of everything so far (any length: BLAKE3 is an XOF)."""
        if length < 0:
            raise ValueError("digest length must be non-negative")
        out = ffi.new("uint8_t[]", max(length, 1))
        lib.pd_blake3_final(self._h, out, length)
        return bytes(ffi.buffer(out, length))

    def hexdigest(self, length: int = 32) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest(length).hex()

    def copy(self) -> "Blake3":
        """An independent copy of the current state."""
        other = Blake3.__new__(Blake3)
        h = lib.pd_blake3_copy(self._h)
        if h == ffi.NULL:
            raise MemoryError("cannot allocate a BLAKE3 state")
        other._h = ffi.gc(h, lib.pd_blake3_free)
        return other


def blake3_digest(data: Buffer, length: int = 32) -> bytes:
    """One-shot BLAKE3 of data."""
    if length < 0:
        raise ValueError("digest length must be non-negative")
    out = ffi.new("uint8_t[]", max(length, 1))
    lib.pd_blake3_hash(_ptr(data), memoryview(data).nbytes, out, length)
    return bytes(ffi.buffer(out, length))


def weak(data: Buffer) -> int:
    """The weak sum of one window."""
    return int(lib.pd_weak(_ptr(data), memoryview(data).nbytes))


def weak_rolling(data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    n = memoryview(data).nbytes
    count = n - window + 1 if 0 < window <= n else 0
    out = ffi.new("uint64_t[]", max(count, 1))
    got = lib.pd_weak_rolling(_ptr(data), n, window, out)
    return [int(out[i]) for i in range(got)]


def sig_blocks(buf: Buffer, length: int, block_len: int, strong_len: int) -> bytes:
    """Signature entries of buf[:length], block by block."""
    entry = 8 + strong_len
    count = -(-length // block_len)
    out = ffi.new("uint8_t[]", max(count * entry, 1))
    got = lib.pd_sig_blocks(_ptr(buf), length, block_len, strong_len, out)
    return bytes(ffi.buffer(out, got * entry))


class SigTable:
    """The lookup table of a signature."""

    def __init__(
        self, entries: Buffer, nblocks: int, block_len: int, strong_len: int, basis_size: int
    ) -> None:
        err = ffi.new("int *")
        t = lib.pd_sigtable_new(
            _ptr(entries), nblocks, block_len, strong_len, basis_size, err
        )
        if t == ffi.NULL:
            self._t = None
            self.error = int(err[0])
            return
        self.error = 0
        self._t = ffi.gc(t, lib.pd_sigtable_free)

    def find(self, data: Buffer) -> Optional[int]:
        """Index of a block equal to data (one block long), or None."""
        i = lib.pd_sigtable_find(self._t, _ptr(data))
        return None if i < 0 else int(i)

    @property
    def unique(self) -> int:
        """Distinct full blocks in the table."""
        return int(lib.pd_sigtable_unique(self._t))


class DeltaJob:
    """A resumable delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        self._table = table  # the C job points into it
        d = lib.pd_delta_new(table._t)
        if d == ffi.NULL:
            raise MemoryError("cannot allocate the delta job")
        self._d = ffi.gc(d, lib.pd_delta_free)
        self._used = ffi.new("size_t *")
        self._produced = ffi.new("size_t *")

    def scan(self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray) -> tuple:
        """Scan inbuf[in_off:in_off+in_len]; returns (code, input used, output made)."""
        rc = lib.pd_delta_scan(
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

    def hash_externally(self) -> None:
        """The caller hashes NEW itself and gives the digest via set_digest()."""
        lib.pd_delta_hash_externally(self._d)

    def set_digest(self, digest: bytes) -> None:
        """BLAKE3 of all of NEW, before the final (eof) scan call."""
        lib.pd_delta_set_digest(self._d, digest)

    def stats(self) -> tuple:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        a = ffi.new("uint64_t[3]")
        lib.pd_delta_stats(self._d, a, a + 1, a + 2)
        return int(a[0]), int(a[1]), int(a[2])


class PatchJob:
    """A resumable patch job reading the basis through a file descriptor."""

    def __init__(self, fd: int, old_size: int) -> None:
        p = lib.pd_patch_new(fd, old_size)
        if p == ffi.NULL:
            raise MemoryError("cannot allocate the patch job")
        self._p = ffi.gc(p, lib.pd_patch_free)
        self._used = ffi.new("size_t *")
        self._produced = ffi.new("size_t *")

    def step(self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray) -> tuple:
        """Apply ops from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        src = _ptr(inbuf)
        rc = lib.pd_patch_step(
            self._p,
            src + in_off,
            in_len,
            _ptr(outbuf),
            len(outbuf),
            self._used,
            self._produced,
        )
        return rc, int(self._used[0]), int(self._produced[0])

    def result(self) -> tuple:
        """(expected size, expected digest, produced size, produced digest)."""
        es = ffi.new("uint64_t *")
        gs = ffi.new("uint64_t *")
        ed = ffi.new("uint8_t[32]")
        gd = ffi.new("uint8_t[32]")
        lib.pd_patch_result(self._p, es, ed, gs, gd)
        return int(es[0]), bytes(ffi.buffer(ed, 32)), int(gs[0]), bytes(ffi.buffer(gd, 32))

    @property
    def errno(self) -> int:
        """errno of the last basis read failure (0: the basis ended early)."""
        return int(lib.pd_patch_errno(self._p))
