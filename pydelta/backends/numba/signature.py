"""Signature entries of a buffer, block by block (csrc/signature.c).

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any

from . import _jit
from ._jit import (
    _HW_LEN,
    _MAX_STRONG,
    _MIN_STRONG,
    _UFF,
    _WEAK_LEN,
    Buffer,
    _ro,
    _u32,
)
from .weaksum import (
    _weak,
)
from .xxh3 import STRONG_BLAKE3, STRONG_XXH3, XXH3_LEN, _strong

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# Signature entries (signature.c).


def _k_sig_blocks(a, n, block_len, strong_len, strong, out):
    hw = np.empty(_HW_LEN, np.uint32)
    hb = np.zeros(64, np.uint8)
    hs = np.zeros(4, np.int64)
    entry = _WEAK_LEN + strong_len
    # np.int64(0), not 0: numba would also compile the helpers for a
    # literal 0 argument
    count = np.int64(0)
    off = np.int64(0)
    while off < n:
        k = n - off
        if k > block_len:
            k = block_len
        e = count * entry
        w = _weak(a, off, k)
        for i in range(8):
            out[e + i] = np.uint8((w >> np.uint64(8 * i)) & _UFF)
        _strong(strong, a, off, k, out[e + _WEAK_LEN : e + entry], strong_len, hw, hb, hs)
        count += 1
        off += block_len
    return count


def strong_ok(strong: int, strong_len: int) -> bool:
    """pd_strong_ok: a known kind of strong sum kept in strong_len bytes."""
    top = XXH3_LEN if strong == STRONG_XXH3 else _MAX_STRONG
    return strong in (STRONG_BLAKE3, STRONG_XXH3) and _MIN_STRONG <= strong_len <= top


def sig_blocks(
    buf: Buffer, length: int, block_len: int, strong_len: int, strong: int = STRONG_BLAKE3
) -> bytes:
    """Signature entries of buf[:length], block by block; ``strong`` is the
    kind of strong sum (1 BLAKE3, 2 XXH3-128)."""
    _jit.ensure()
    _u32(block_len, "block_len")
    _u32(strong_len, "strong_len")
    if block_len == 0 or not strong_ok(strong, strong_len):
        return b""
    a = _ro(buf)
    if not 0 <= length <= a.size:
        raise ValueError("length reaches outside the buffer")
    entry = _WEAK_LEN + strong_len
    count = -(-length // block_len)
    out = np.empty(max(count * entry, 1), np.uint8)
    got = _k_sig_blocks(a, length, block_len, strong_len, strong, out)
    return out[: got * entry].tobytes()


#: The functions _jit.load() compiles with numba.njit.
KERNELS = ("_k_sig_blocks",)
_jit.register(globals(), KERNELS)
