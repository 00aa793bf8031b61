"""What the cffi wrappers of :mod:`.c` and :mod:`.rdiff` share: buffer
pointers, and generic lookup-table and resumable-job wrappers (the two
formats' kernels differ only in which C functions they call)."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Tuple, Union

from .._core import ffi, lib

Buffer = Union[bytes, bytearray, memoryview]


def ptr(buf: Buffer) -> Any:
    """A uint8_t pointer to a Python buffer, without copying."""
    return ffi.from_buffer("uint8_t[]", buf)


def nbytes(buf: Buffer) -> int:
    """Length of a buffer in bytes."""
    return memoryview(buf).nbytes


def fd_entries(
    call: Callable[[Any, Any, Any], int], name: str, length: int, block_len: int, entry: int
) -> Tuple[bytes, int]:
    """Run a file-reading signature kernel (csrc/sigread.c) as ``call(out, got,
    err)`` into an output of room for [offset, offset + length)'s blocks of
    ``entry`` bytes each. Returns (entries, bytes read: fewer only at end of
    file); a failed read raises OSError, bad parameters ValueError."""
    out = ffi.new("uint8_t[]", max(-(-length // block_len) * entry, 1))
    got = ffi.new("uint64_t *")
    err = ffi.new("int *")
    rc = call(out, got, err)
    if rc == lib.PD_ERR_IO:
        raise OSError(err[0], os.strerror(err[0]))
    if rc != lib.PD_OK:
        raise ValueError(f"bad parameters for {name} (result {rc})")
    n = int(got[0])
    return bytes(ffi.buffer(out, -(-n // block_len) * entry)), n


def u64s(fn: Callable[..., Any], handle: Any, n: int) -> Tuple[int, ...]:
    """Call ``fn(handle, &a[0], ..., &a[n-1])`` and return the n uint64 values."""
    a = ffi.new(f"uint64_t[{n}]")
    fn(handle, *(a + i for i in range(n)))
    return tuple(int(a[i]) for i in range(n))


class Table:
    """A C lookup table of signature entries (``error`` is its result code, 0 if built)."""

    _find: Callable[..., int]
    _unique: Callable[..., int]

    def _adopt(self, t: Any, err: Any, free: Callable[..., None]) -> None:
        if t == ffi.NULL:
            self._t = None
            self.error = int(err[0])
            return
        self.error = 0
        self._t = ffi.gc(t, free)

    def find(self, data: Buffer) -> Optional[int]:
        """Index of a block equal to data (one block long), or None."""
        i = type(self)._find(self._t, ptr(data))
        return None if i < 0 else int(i)

    @property
    def unique(self) -> int:
        """Distinct full blocks in the table."""
        return int(type(self)._unique(self._t))


class Job:
    """A resumable C job (delta scan or patch): a handle and its step function."""

    def _adopt(self, handle: Any, free: Callable[..., None], what: str) -> None:
        if handle == ffi.NULL:
            raise MemoryError(f"cannot allocate the {what}")
        self._h = ffi.gc(handle, free)
        self._used = ffi.new("size_t *")
        self._produced = ffi.new("size_t *")

    def _call(
        self,
        fn: Callable[..., int],
        inbuf: Buffer,
        in_off: int,
        in_len: int,
        outbuf: bytearray,
        *eof: int,
    ) -> Tuple[int, int, int]:
        rc = fn(
            self._h,
            ptr(inbuf) + in_off,
            in_len,
            *eof,
            ptr(outbuf),
            len(outbuf),
            self._used,
            self._produced,
        )
        return rc, int(self._used[0]), int(self._produced[0])
