"""The C backend: thin wrappers over the cffi module ``pydelta._core``.

Everything here moves whole buffers into C in one call; the C side runs
with the GIL released (cffi's default for API-mode calls), so other Python
threads keep running while a block is hashed or a buffer scanned.

The table and job wrappers are generic (:mod:`._cffi`): the native kernels
here and the librsync ones in :mod:`.rdiff` differ only in which C
functions they call.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Optional, Tuple, Union

from .._core import ffi, lib
from . import _cffi
from ._cffi import nbytes as _nbytes
from ._cffi import ptr as _ptr

NAME = "c"
#: What only this backend has (the numba twin takes the plain paths, with
#: the same results): direct patch output and the delta pre-scan.
C_ONLY = (
    "C_ONLY",
    "Sink",
    "prescan",
    "prescan_hits",
    "move_hits",
    "sig_fd",
    "blake3_update_fd",
    "map_guard",
    "blake3_update_mapped",
    "prescan_mapped",
)

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
#: Kinds of per-block strong sum (a native signature's strong hash id).
STRONG_BLAKE3 = lib.PD_STRONG_BLAKE3
STRONG_XXH3 = lib.PD_STRONG_XXH3
LIT_MAX = lib.PD_LIT_MAX
DELTA_MIN_OUT = lib.PD_DELTA_MIN_OUT


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

    def update(self, data: Buffer, /, *, threads: int = 1) -> None:
        """Hash more bytes; ``threads`` > 1 hashes their whole 1 MiB subtrees
        on that many threads (the same digest)."""
        if threads > 1:
            lib.pd_blake3_update_par(self._h, _ptr(data), _nbytes(data), threads)
        else:
            lib.pd_blake3_update(self._h, _ptr(data), _nbytes(data))

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
    lib.pd_blake3_hash(_ptr(data), _nbytes(data), out, length)
    return bytes(ffi.buffer(out, length))


def weak(data: Buffer) -> int:
    """The weak sum of one window."""
    return int(lib.pd_weak(_ptr(data), _nbytes(data)))


def weak_rolling(data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    n = _nbytes(data)
    count = n - window + 1 if 0 < window <= n else 0
    out = ffi.new("uint64_t[]", max(count, 1))
    got = lib.pd_weak_rolling(_ptr(data), n, window, out)
    return [int(out[i]) for i in range(got)]


def xxh3_128(data: Buffer) -> bytes:
    """XXH3-128 of data (unseeded, default secret), canonical (big-endian) bytes."""
    out = ffi.new("uint8_t[16]")
    lib.pd_xxh3_128(_ptr(data), _nbytes(data), out)
    return bytes(ffi.buffer(out, 16))


def sig_blocks(
    buf: Buffer, length: int, block_len: int, strong_len: int, strong: int = STRONG_BLAKE3
) -> bytes:
    """Signature entries of buf[:length], block by block; ``strong`` is the
    kind of strong sum (a signature's strong hash id: 1 BLAKE3, 2 XXH3-128)."""
    entry = 8 + strong_len
    count = -(-length // block_len)
    out = ffi.new("uint8_t[]", max(count * entry, 1))
    got = lib.pd_sig_blocks(_ptr(buf), length, block_len, strong_len, strong, out)
    return bytes(ffi.buffer(out, got * entry))


def sig_fd(
    buf: bytearray,
    fd: int,
    offset: int,
    length: int,
    block_len: int,
    strong_len: int,
    strong: int = STRONG_BLAKE3,
) -> Tuple[bytes, int]:
    """Signature entries of bytes [offset, offset + length) of the regular
    file fd, read in pieces of len(buf) bytes (whole blocks) into buf and
    hashed at once (strong sums of kind ``strong``). Returns (entries,
    bytes read: fewer only at end of file); a failed read raises OSError."""
    return _cffi.fd_entries(
        lambda out, got, err: lib.pd_sig_fd(
            fd, offset, length, block_len, strong_len, strong, _ptr(buf), len(buf), out, got, err
        ),
        "pd_sig_fd",
        length,
        block_len,
        8 + strong_len,
    )


class SigTable(_cffi.Table):
    """The lookup table of a signature."""

    _find = lib.pd_sigtable_find
    _unique = lib.pd_sigtable_unique

    def __init__(
        self,
        entries: Buffer,
        nblocks: int,
        block_len: int,
        strong_len: int,
        basis_size: int,
        strong: int = STRONG_BLAKE3,
    ) -> None:
        err = ffi.new("int *")
        t = lib.pd_sigtable_new(
            _ptr(entries), nblocks, block_len, strong_len, strong, basis_size, err
        )
        self._adopt(t, err, lib.pd_sigtable_free)


def set_table_key(k0: int, k1: int) -> None:
    """Fix the key of the weak-sum index for tables built from now on (both
    formats): for tests; (0, 0) draws a fresh random key. Deltas never
    depend on the key (see csrc/internal.h)."""
    lib.pd_table_key(k0, k1)


class DeltaJob(_cffi.Job):
    """A resumable delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        self._table = table  # the C job points into it
        self._adopt(lib.pd_delta_new(table._t), lib.pd_delta_free, "delta job")

    def scan(
        self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray
    ) -> tuple[int, int, int]:
        """Scan inbuf[in_off:in_off+in_len]; returns (code, input used, output made)."""
        return self._call(lib.pd_delta_scan, inbuf, in_off, in_len, outbuf, 1 if eof else 0)

    def scan_mapped(
        self, inbuf: Buffer, in_off: int, in_len: int, eof: bool, outbuf: bytearray
    ) -> tuple[int, int, int]:
        """:meth:`scan` over a mapping of a file (csrc/mapguard.c): a file
        truncated under it gives ERR_IO (the job is then unusable)."""
        return self._call(lib.pd_delta_scan_mapped, inbuf, in_off, in_len, outbuf, 1 if eof else 0)

    def hint(self, start: int, stop: int, hits: Any, n: int) -> None:
        """A pre-scan result (see :func:`prescan`): windows of NEW starting in
        [start, stop) have no index candidate but at hits[:n] (ascending)."""
        rc = lib.pd_delta_hint(self._h, start, stop, hits, n)
        if rc != lib.PD_OK:
            raise (
                MemoryError("cannot keep the pre-scan result")
                if rc == ERR_NOMEM
                else ValueError("pre-scan hint out of order")
            )

    def hash_externally(self) -> None:
        """The caller hashes NEW itself and gives the digest via set_digest()."""
        lib.pd_delta_hash_externally(self._h)

    def set_digest(self, digest: bytes) -> None:
        """BLAKE3 of all of NEW, before the final (eof) scan call."""
        lib.pd_delta_set_digest(self._h, digest)

    def stats(self) -> tuple[int, ...]:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        return _cffi.u64s(lib.pd_delta_stats, self._h, 3)


class Sink:
    """Direct output of a patch job to a regular file (csrc/copy.c).

    COPY ops go through copy_file_range(2) (the read/write path where the
    kernel refuses it); a second thread hashes the result as it is written.

    Args:
        fd: the output file (regular), written from offset ``start``.
        copy_range: use copy_file_range (False forces the read/write path).
        writeback: start writeback as it goes (an fsync follows).
        thread: hash on a second thread (False: on the writing one).
        mapped: read the output back through a mapping (False: pread).
        hash_threads: threads hashing the digest (tree-parallel, same digest).
    """

    def __init__(
        self,
        fd: int,
        start: int = 0,
        *,
        copy_range: bool = True,
        writeback: bool = False,
        thread: bool = True,
        mapped: bool = True,
        hash_threads: int = 1,
    ) -> None:
        flags = (0 if copy_range else lib.PD_SINK_NO_CFR) | (
            lib.PD_SINK_WRITEBACK if writeback else 0
        )
        flags |= (0 if thread else lib.PD_SINK_NO_THREAD) | (0 if mapped else lib.PD_SINK_NO_MAP)
        s = lib.pd_sink_new(fd, start, flags)
        if s == ffi.NULL:
            raise MemoryError("cannot allocate the output sink")
        self._s = ffi.gc(s, lib.pd_sink_free)
        if hash_threads > 1:
            lib.pd_sink_hash_threads(self._s, hash_threads)
        self._final: Optional[Tuple[bool, int, bytes]] = None

    def finish(self) -> Tuple[bool, int, bytes]:
        """Wait for the hasher: (all written and read back, size, digest)."""
        if self._final is None:
            size = ffi.new("uint64_t *")
            dig = ffi.new("uint8_t[32]")
            rc = lib.pd_sink_finish(self._s, size, dig)
            self._final = (rc == lib.PD_OK, int(size[0]), bytes(ffi.buffer(dig, 32)))
        return self._final

    def sign(
        self,
        block_len: int,
        strong_len: int,
        limit: int,
        own_thread: bool = False,
        strong: int = STRONG_BLAKE3,
    ) -> None:
        """Also make the result's signature entries from the read-back (before any write).

        At most ``limit`` bytes of entries: past it there is no signature.
        ``own_thread``: read back for it on a thread of its own. ``strong``:
        the kind of strong sum (1 BLAKE3, 2 XXH3-128).
        """
        rc = lib.pd_sink_sign(self._s, block_len, strong_len, strong, limit, 1 if own_thread else 0)
        if rc == lib.PD_ERR_NOMEM:
            raise MemoryError("cannot allocate the result's signer")
        if rc != lib.PD_OK:
            raise ValueError(
                f"cannot sign with blocks of {block_len} and strong sums of {strong_len}"
            )

    def signature(self) -> Optional[bytes]:
        """After :meth:`finish`: the result's signature entries, or None (not
        asked, past the limit, or the result failed)."""
        n = ffi.new("size_t *")
        p = lib.pd_sink_sig(self._s, n)
        return None if p == ffi.NULL else bytes(ffi.buffer(p, n[0]))

    @property
    def errno(self) -> int:
        """errno of a failed write or read-back (0: none, or the file came up short)."""
        return int(lib.pd_sink_errno(self._s))

    @property
    def write_failed(self) -> bool:
        """True if writing the result failed (else the read-back did)."""
        return bool(lib.pd_sink_write_failed(self._s))

    @property
    def kernel_copied(self) -> int:
        """Result bytes copied by copy_file_range."""
        return int(lib.pd_sink_kernel_copied(self._s))


def prescan_hits(cap: int) -> Any:
    """An array for :func:`prescan` results."""
    return ffi.new("uint64_t[]", max(cap, 1))


def prescan(
    table: SigTable, buf: Buffer, length: int, start: int, stop: int, base: int, hits: Any, cap: int
) -> Tuple[int, int]:
    """Pre-scan windows of buf[:length] starting in [start, stop) (any thread):
    (candidates written to hits, end of the range checked), both offsets in
    NEW being base + the buffer offset."""
    if not 0 <= length <= _nbytes(buf):
        raise ValueError("pre-scan length outside the buffer")
    done = ffi.new("uint64_t *")
    n = lib.pd_delta_prescan(table._t, _ptr(buf), length, start, stop, base, hits, cap, done)
    return int(n), int(done[0])


def blake3_update_fd(hasher: Blake3, buf: bytearray, fd: int, offset: int, length: int) -> int:
    """hasher.update() with bytes [offset, offset + length) of the regular file
    fd, read in pieces of len(buf) bytes into buf (csrc/sigread.c). Returns
    the bytes hashed (fewer only at end of file); a failed read raises OSError."""
    got = ffi.new("uint64_t *")
    err = ffi.new("int *")
    rc = lib.pd_blake3_fd(hasher._h, fd, offset, length, _ptr(buf), len(buf), got, err)
    if rc == lib.PD_ERR_IO:
        raise OSError(err[0], os.strerror(err[0]))
    if rc != lib.PD_OK:
        raise ValueError(f"bad parameters for pd_blake3_fd (result {rc})")
    return int(got[0])


def map_guard() -> bool:
    """Install the SIGBUS guard of the mapped kernels; False if it cannot be."""
    return bool(lib.pd_map_guard() == lib.PD_OK)


def blake3_update_mapped(hasher: Blake3, data: Buffer) -> bool:
    """hasher.update(data) over a mapping: False if the file was truncated
    under it (the hasher is then unusable)."""
    return bool(lib.pd_blake3_update_mapped(hasher._h, _ptr(data), _nbytes(data)) == lib.PD_OK)


def prescan_mapped(
    table: SigTable, buf: Buffer, length: int, start: int, stop: int, base: int, hits: Any, cap: int
) -> Tuple[int, int]:
    """:func:`prescan` over a mapping: OSError if the file was truncated under it."""
    if not 0 <= length <= _nbytes(buf):
        raise ValueError("pre-scan length outside the buffer")
    done = ffi.new("uint64_t *")
    count = ffi.new("size_t *")
    rc = lib.pd_delta_prescan_mapped(
        table._t, _ptr(buf), length, start, stop, base, hits, cap, done, count
    )
    if rc != lib.PD_OK:
        raise OSError(errno.EIO, "the file was truncated while it was read")
    return int(count[0]), int(done[0])


def move_hits(dst: Any, at: int, src: Any, n: int) -> None:
    """dst[at:at+n] = src[:n] (joining pre-scan segments)."""
    ffi.memmove(dst + at, src, 8 * n)


class PatchJob(_cffi.Job):
    """A resumable patch job reading the basis through a file descriptor."""

    def __init__(self, fd: int, old_size: int) -> None:
        self._adopt(lib.pd_patch_new(fd, old_size), lib.pd_patch_free, "patch job")

    def attach(self, sink: Sink) -> None:
        """Write the result through sink: steps then report bytes written."""
        self._sink = sink  # the C job points to it
        lib.pd_patch_set_sink(self._h, sink._s)

    def step(
        self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray
    ) -> tuple[int, int, int]:
        """Apply ops from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        return self._call(lib.pd_patch_step, inbuf, in_off, in_len, outbuf)

    def result(self) -> tuple[int, bytes, int, bytes]:
        """(expected size, expected digest, produced size, produced digest)."""
        es = ffi.new("uint64_t *")
        gs = ffi.new("uint64_t *")
        ed = ffi.new("uint8_t[32]")
        gd = ffi.new("uint8_t[32]")
        lib.pd_patch_result(self._h, es, ed, gs, gd)
        return int(es[0]), bytes(ffi.buffer(ed, 32)), int(gs[0]), bytes(ffi.buffer(gd, 32))

    @property
    def errno(self) -> int:
        """errno of the last basis read failure (0: the basis ended early)."""
        return int(lib.pd_patch_errno(self._h))


# -- byte grouping of compressed literals (transform.c) ------------------------


def group16(data: Buffer) -> bytearray:
    """The bytes of ``data`` at even offsets, then those at odd offsets."""
    n = _nbytes(data)
    out = bytearray(n)
    if n:
        lib.pd_group16(_ptr(data), n, ffi.from_buffer("uint8_t[]", out))
    return out


def ungroup16(grouped: Buffer, out: Any, start: int = 0) -> None:
    """Undo :func:`group16` into ``out[start:start + len(grouped)]``."""
    n = _nbytes(grouped)
    dst = ffi.from_buffer("uint8_t[]", out, require_writable=True)
    if start < 0 or start + n > len(dst):
        raise ValueError("ungroup16: the output buffer is too short")
    if n:
        lib.pd_ungroup16(_ptr(grouped), n, dst + start)


def lit_costs(data: Buffer) -> Tuple[int, int]:
    """Order-0 entropy estimates (bits * 2**16) of ``data`` as it is and
    grouped as transform 2 does: how a literal's transform is chosen."""
    out = ffi.new("uint64_t[2]")
    lib.pd_lit_costs(_ptr(data), _nbytes(data), out)
    return int(out[0]), int(out[1])


# -- content-defined chunking (cdc.c) ------------------------------------------

#: Chunks reported per scan call at most.
CDC_CAP = 4096


def cdc_gear() -> list:
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
        self._lens = ffi.new("uint64_t[]", CDC_CAP)
        self._digests = ffi.new("uint8_t[]", CDC_CAP * HASH_LEN)
        self._used = ffi.new("size_t *")
        self._count = ffi.new("size_t *")

    def reset(self) -> None:
        """Start a new stream."""
        lib.pd_cdc_reset(self._c)

    def scan(self, buf: Buffer, off: int, length: int, eof: bool) -> tuple:
        """Scan buf[off:off+length]: (code, bytes used, chunk lengths, their digests)."""
        if off < 0 or length < 0 or off + length > _nbytes(buf):
            raise ValueError("scan range outside the buffer")
        rc = lib.pd_cdc_scan(
            self._c,
            _ptr(buf) + off,
            length,
            1 if eof else 0,
            self._lens,
            self._digests,
            CDC_CAP,
            self._used,
            self._count,
        )
        n = int(self._count[0])
        lens = [int(v) for v in ffi.unpack(self._lens, n)] if n else []
        return rc, int(self._used[0]), lens, bytes(ffi.buffer(self._digests, HASH_LEN * n))
