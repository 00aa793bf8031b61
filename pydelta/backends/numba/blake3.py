"""BLAKE3 (csrc/blake3.c), written from its specification: the kernels, and
the hashlib-shaped :class:`Blake3` over them.

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any

from . import _jit
from ._jit import (
    _B64,
    _F_END,
    _F_NONE,
    _F_PARENT,
    _F_ROOT,
    _F_START,
    _HS_BLOCKS,
    _HS_BUFLEN,
    _HS_COUNTER,
    _HS_STACK,
    _HW_LEN,
    _IV0,
    _IV1,
    _IV2,
    _IV3,
    _IV4,
    _IV5,
    _IV6,
    _IV7,
    _M32,
    _U0,
    _U1,
    _U32,
    _Z0,
    Buffer,
    _ro,
)

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# BLAKE3 kernels. Words are np.uint32 values: numba computes in 64 bits, and
# truncating every result back to uint32 lets LLVM use 32-bit adds and
# rotates.


def _g(a, b, c, d, x, y):
    a = np.uint32(a + b + x)
    d = np.uint32(d ^ a)
    d = np.uint32((d >> 16) | (d << 16))
    c = np.uint32(c + d)
    b = np.uint32(b ^ c)
    b = np.uint32((b >> 12) | (b << 20))
    a = np.uint32(a + b + y)
    d = np.uint32(d ^ a)
    d = np.uint32((d >> 8) | (d << 24))
    c = np.uint32(c + d)
    b = np.uint32(b ^ c)
    b = np.uint32((b >> 7) | (b << 25))
    return a, b, c, d


def _compress(cv, m, t, blen, flags):
    """The compression function: chaining value cv (8 words), message m (16
    words), counter t (uint64), block length and flags; returns all 16
    output words (the first 8 are the new chaining value)."""
    h0, h1, h2, h3, h4, h5, h6, h7 = cv
    m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 = m
    v0, v1, v2, v3, v4, v5, v6, v7 = h0, h1, h2, h3, h4, h5, h6, h7
    v8, v9, v10, v11 = _IV0, _IV1, _IV2, _IV3
    v12 = np.uint32(t & _M32)
    v13 = np.uint32(t >> _U32)
    v14 = blen
    v15 = flags
    for _r in range(7):
        v0, v4, v8, v12 = _g(v0, v4, v8, v12, m0, m1)
        v1, v5, v9, v13 = _g(v1, v5, v9, v13, m2, m3)
        v2, v6, v10, v14 = _g(v2, v6, v10, v14, m4, m5)
        v3, v7, v11, v15 = _g(v3, v7, v11, v15, m6, m7)
        v0, v5, v10, v15 = _g(v0, v5, v10, v15, m8, m9)
        v1, v6, v11, v12 = _g(v1, v6, v11, v12, m10, m11)
        v2, v7, v8, v13 = _g(v2, v7, v8, v13, m12, m13)
        v3, v4, v9, v14 = _g(v3, v4, v9, v14, m14, m15)
        # the message permutation 2,6,3,10,7,0,4,13,1,11,12,5,9,14,15,8
        m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 = (
            m2,
            m6,
            m3,
            m10,
            m7,
            m0,
            m4,
            m13,
            m1,
            m11,
            m12,
            m5,
            m9,
            m14,
            m15,
            m8,
        )
    return (
        np.uint32(v0 ^ v8),
        np.uint32(v1 ^ v9),
        np.uint32(v2 ^ v10),
        np.uint32(v3 ^ v11),
        np.uint32(v4 ^ v12),
        np.uint32(v5 ^ v13),
        np.uint32(v6 ^ v14),
        np.uint32(v7 ^ v15),
        np.uint32(v8 ^ h0),
        np.uint32(v9 ^ h1),
        np.uint32(v10 ^ h2),
        np.uint32(v11 ^ h3),
        np.uint32(v12 ^ h4),
        np.uint32(v13 ^ h5),
        np.uint32(v14 ^ h6),
        np.uint32(v15 ^ h7),
    )


def _load_block(a, p):
    """16 little-endian message words from a[p:p+64]. (Written out: numba
    compiles a helper once per distinct constant argument.)"""
    b = a[p : p + 64]
    return (
        np.uint32(
            np.uint32(b[0])
            | (np.uint32(b[1]) << 8)
            | (np.uint32(b[2]) << 16)
            | (np.uint32(b[3]) << 24)
        ),
        np.uint32(
            np.uint32(b[4])
            | (np.uint32(b[5]) << 8)
            | (np.uint32(b[6]) << 16)
            | (np.uint32(b[7]) << 24)
        ),
        np.uint32(
            np.uint32(b[8])
            | (np.uint32(b[9]) << 8)
            | (np.uint32(b[10]) << 16)
            | (np.uint32(b[11]) << 24)
        ),
        np.uint32(
            np.uint32(b[12])
            | (np.uint32(b[13]) << 8)
            | (np.uint32(b[14]) << 16)
            | (np.uint32(b[15]) << 24)
        ),
        np.uint32(
            np.uint32(b[16])
            | (np.uint32(b[17]) << 8)
            | (np.uint32(b[18]) << 16)
            | (np.uint32(b[19]) << 24)
        ),
        np.uint32(
            np.uint32(b[20])
            | (np.uint32(b[21]) << 8)
            | (np.uint32(b[22]) << 16)
            | (np.uint32(b[23]) << 24)
        ),
        np.uint32(
            np.uint32(b[24])
            | (np.uint32(b[25]) << 8)
            | (np.uint32(b[26]) << 16)
            | (np.uint32(b[27]) << 24)
        ),
        np.uint32(
            np.uint32(b[28])
            | (np.uint32(b[29]) << 8)
            | (np.uint32(b[30]) << 16)
            | (np.uint32(b[31]) << 24)
        ),
        np.uint32(
            np.uint32(b[32])
            | (np.uint32(b[33]) << 8)
            | (np.uint32(b[34]) << 16)
            | (np.uint32(b[35]) << 24)
        ),
        np.uint32(
            np.uint32(b[36])
            | (np.uint32(b[37]) << 8)
            | (np.uint32(b[38]) << 16)
            | (np.uint32(b[39]) << 24)
        ),
        np.uint32(
            np.uint32(b[40])
            | (np.uint32(b[41]) << 8)
            | (np.uint32(b[42]) << 16)
            | (np.uint32(b[43]) << 24)
        ),
        np.uint32(
            np.uint32(b[44])
            | (np.uint32(b[45]) << 8)
            | (np.uint32(b[46]) << 16)
            | (np.uint32(b[47]) << 24)
        ),
        np.uint32(
            np.uint32(b[48])
            | (np.uint32(b[49]) << 8)
            | (np.uint32(b[50]) << 16)
            | (np.uint32(b[51]) << 24)
        ),
        np.uint32(
            np.uint32(b[52])
            | (np.uint32(b[53]) << 8)
            | (np.uint32(b[54]) << 16)
            | (np.uint32(b[55]) << 24)
        ),
        np.uint32(
            np.uint32(b[56])
            | (np.uint32(b[57]) << 8)
            | (np.uint32(b[58]) << 16)
            | (np.uint32(b[59]) << 24)
        ),
        np.uint32(
            np.uint32(b[60])
            | (np.uint32(b[61]) << 8)
            | (np.uint32(b[62]) << 16)
            | (np.uint32(b[63]) << 24)
        ),
    )


def _load_cv(hw, i):
    """8 words of a uint32 array from index i."""
    return (hw[i], hw[i + 1], hw[i + 2], hw[i + 3], hw[i + 4], hw[i + 5], hw[i + 6], hw[i + 7])


def _store_cv(hw, i, w):
    for k in range(8):
        hw[i + k] = w[k]


def _chunk_cv(hw):
    return (hw[0], hw[1], hw[2], hw[3], hw[4], hw[5], hw[6], hw[7])


def _set_chunk_cv(hw, w):
    for k in range(8):
        hw[k] = w[k]


def _iv():
    return (_IV0, _IV1, _IV2, _IV3, _IV4, _IV5, _IV6, _IV7)


def _first8(w):
    return (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7])


def _copy(dst, d, src, s, n):
    """dst[d:d+n] = src[s:s+n] (a loop LLVM makes a memcpy; numba's slice
    assignment costs seconds of compile time)."""
    for i in range(n):
        dst[d + i] = src[s + i]


def _b3_reset(hw, hb, hs):
    _set_chunk_cv(hw, _iv())
    hs[_HS_COUNTER] = 0
    hs[_HS_BLOCKS] = 0
    hs[_HS_BUFLEN] = 0
    hs[_HS_STACK] = 0


def _start_flag(hs):
    return _F_START if hs[_HS_BLOCKS] == 0 else _F_NONE


def _chunk_update(hw, hb, hs, a, p, n):
    """Add a[p:p+n] to the current chunk (which stays <= 1024 bytes). Its
    last block stays buffered until more input shows it is not the last."""
    bl = hs[_HS_BUFLEN]
    t = np.uint64(hs[_HS_COUNTER])
    if bl > 0:
        take = 64 - bl
        if take > n:
            take = n
        _copy(hb, bl, a, p, take)
        hs[_HS_BUFLEN] = bl + take
        p += take
        n -= take
        if n == 0:
            return
        w = _compress(_chunk_cv(hw), _load_block(hb, 0), t, _B64, _start_flag(hs))
        _set_chunk_cv(hw, _first8(w))
        hs[_HS_BLOCKS] += 1
        hs[_HS_BUFLEN] = 0
    if n > 64:
        cv = _chunk_cv(hw)
        flags = _start_flag(hs)
        blocks = hs[_HS_BLOCKS]
        while n > 64:
            w = _compress(cv, _load_block(a, p), t, _B64, flags)
            cv = _first8(w)
            flags = _F_NONE
            blocks += 1
            p += 64
            n -= 64
        _set_chunk_cv(hw, cv)
        hs[_HS_BLOCKS] = blocks
    _copy(hb, _Z0, a, p, n)
    hs[_HS_BUFLEN] = n


def _hash_chunk(a, p, t):
    """CV of the whole (non-root) chunk a[p:p+1024] numbered t."""
    cv = _first8(_compress(_iv(), _load_block(a, p), t, _B64, _F_START))
    for b in range(1, 15):
        cv = _first8(_compress(cv, _load_block(a, p + 64 * b), t, _B64, _F_NONE))
    return _first8(_compress(cv, _load_block(a, p + 960), t, _B64, _F_END))


def _push_cv(hw, hs, cv, total):
    """Push the CV of a finished chunk (total chunks done including it),
    first merging every completed subtree it closes. Only called when more
    input follows, so none of these parents can be the root."""
    sl = hs[_HS_STACK]
    while (total & 1) == 0:
        sl -= 1
        left = _load_cv(hw, 8 + 8 * sl)
        m = (
            left[0],
            left[1],
            left[2],
            left[3],
            left[4],
            left[5],
            left[6],
            left[7],
            cv[0],
            cv[1],
            cv[2],
            cv[3],
            cv[4],
            cv[5],
            cv[6],
            cv[7],
        )
        cv = _first8(_compress(_iv(), m, _U0, _B64, _F_PARENT))
        total >>= 1
    _store_cv(hw, 8 + 8 * sl, cv)
    hs[_HS_STACK] = sl + 1


def _b3_update(hw, hb, hs, a, p, n):
    """Hash a[p:p+n] into the state."""
    if n <= 0:
        return
    clen = hs[_HS_BLOCKS] * 64 + hs[_HS_BUFLEN]
    if clen > 0:
        take = 1024 - clen
        if take > n:
            take = n
        _chunk_update(hw, hb, hs, a, p, take)
        p += take
        n -= take
        if n == 0:
            return
        # the chunk is full and input follows: finish it
        t = np.uint64(hs[_HS_COUNTER])
        flags = np.uint32(_start_flag(hs) | _F_END)
        w = _compress(_chunk_cv(hw), _load_block(hb, 0), t, _B64, flags)
        _push_cv(hw, hs, _first8(w), hs[_HS_COUNTER] + 1)
        hs[_HS_COUNTER] += 1
        hs[_HS_BLOCKS] = 0
        hs[_HS_BUFLEN] = 0
        _set_chunk_cv(hw, _iv())
    # whole chunks straight from the input while more input follows them
    while n > 1024:
        cv = _hash_chunk(a, p, np.uint64(hs[_HS_COUNTER]))
        _push_cv(hw, hs, cv, hs[_HS_COUNTER] + 1)
        hs[_HS_COUNTER] += 1
        p += 1024
        n -= 1024
    _chunk_update(hw, hb, hs, a, p, n)


def _b3_final(hw, hb, hs, out):
    """Fill out (any length) with output; the state is unchanged (the
    buffered block's unused tail is zeroed, which changes nothing)."""
    olen = out.shape[0]
    if olen == 0:
        return
    bl = hs[_HS_BUFLEN]
    for i in range(bl, 64):
        hb[i] = 0
    cv = _chunk_cv(hw)
    m = _load_block(hb, 0)
    t = np.uint64(hs[_HS_COUNTER])
    blen = np.uint32(bl)
    flags = np.uint32(_start_flag(hs) | _F_END)
    for i in range(hs[_HS_STACK] - 1, -1, -1):
        right = _first8(_compress(cv, m, t, blen, flags))
        left = _load_cv(hw, 8 + 8 * i)
        cv = _iv()
        m = (
            left[0],
            left[1],
            left[2],
            left[3],
            left[4],
            left[5],
            left[6],
            left[7],
            right[0],
            right[1],
            right[2],
            right[3],
            right[4],
            right[5],
            right[6],
            right[7],
        )
        t = _U0
        blen = _B64
        flags = _F_PARENT
    blk = _U0
    done = 0
    while done < olen:
        w = _compress(cv, m, blk, blen, np.uint32(flags | _F_ROOT))
        for k in range(16):
            for j in range(4):
                if done < olen:
                    out[done] = np.uint8(w[k] >> np.uint32(8 * j))  # truncates
                    done += 1
        blk += _U1


def _b3_hash(a, p, n, out, hw, hb, hs):
    """One-shot BLAKE3 of a[p:p+n], filling out, using the given scratch
    state."""
    _b3_reset(hw, hb, hs)
    _b3_update(hw, hb, hs, a, p, n)
    _b3_final(hw, hb, hs, out)


def _k_b3_update(hw, hb, hs, a, p, n):
    _b3_update(hw, hb, hs, a, p, n)


def _k_b3_final(hw, hb, hs, out):
    _b3_final(hw, hb, hs, out)


def _new_state():
    hw = np.empty(_HW_LEN, np.uint32)
    hb = np.zeros(64, np.uint8)
    hs = np.zeros(4, np.int64)
    _b3_reset(hw, hb, hs)
    return hw, hb, hs


class Blake3:
    """Incremental BLAKE3 (unkeyed), hashlib-shaped."""

    name = "blake3"
    digest_size = 32
    block_size = 64

    def __init__(self, data: Buffer = b"", /) -> None:
        _jit.ensure()
        self._hw, self._hb, self._hs = _new_state()
        if data:
            self.update(data)

    def update(self, data: Buffer, /, *, threads: int = 1) -> None:
        """Hash more bytes (``threads``: as the C backend's; here one thread)."""
        a = _ro(data)
        if a.size:
            _k_b3_update(self._hw, self._hb, self._hs, a, 0, a.size)

    def digest(self, length: int = 32) -> bytes:
        """The digest of everything so far (any length: BLAKE3 is an XOF)."""
        if length < 0:
            raise ValueError("digest length must be non-negative")
        out = np.empty(length, np.uint8)
        _k_b3_final(self._hw, self._hb, self._hs, out)
        return out.tobytes()

    def hexdigest(self, length: int = 32) -> str:
        """:meth:`digest` as lowercase hex."""
        return self.digest(length).hex()

    def copy(self) -> "Blake3":
        """An independent copy of the current state."""
        other = Blake3.__new__(Blake3)
        other._hw = self._hw.copy()
        other._hb = self._hb.copy()
        other._hs = self._hs.copy()
        return other


def blake3_digest(data: Buffer, length: int = 32) -> bytes:
    """One-shot BLAKE3 of data."""
    if length < 0:
        raise ValueError("digest length must be non-negative")
    _jit.ensure()
    a = _ro(data)
    hw, hb, hs = _new_state()
    if a.size:
        _k_b3_update(hw, hb, hs, a, 0, a.size)
    out = np.empty(length, np.uint8)
    _k_b3_final(hw, hb, hs, out)
    return out.tobytes()


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_g",
    "_compress",
    "_load_block",
    "_load_cv",
    "_store_cv",
    "_chunk_cv",
    "_set_chunk_cv",
    "_iv",
    "_first8",
    "_copy",
    "_b3_reset",
    "_start_flag",
    "_chunk_update",
    "_hash_chunk",
    "_push_cv",
    "_b3_update",
    "_b3_final",
    "_b3_hash",
    "_k_b3_update",
    "_k_b3_final",
)
_jit.register(globals(), KERNELS)
