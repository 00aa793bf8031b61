"""The numba backend: the C core's kernels rewritten with numba.

Same exports, semantics and output as :mod:`pydelta._c`: signatures and
deltas are byte-identical to the C backend's. The kernels are plain
functions over numpy uint8 views of the caller's buffers (no copies of the
MiB buffers), compiled with ``numba.njit(cache=True, nogil=True)``; every
bit of state a job needs between calls lives in small numpy arrays, so the
compiled functions can stop and resume anywhere.

numpy and numba are imported, and the kernels compiled (or loaded from
numba's on-disk cache), on the first call that needs them, not when this
module is imported: ``pydelta --help`` stays fast whichever backend is
chosen. The kernels mirror csrc/: weak sum (weaksum.c), signature entries
(signature.c), table build and lookup (sigtable.c), delta scan (delta.c),
patch ops (patch.c), and BLAKE3 written from its specification.

Integer rules: weak sums and other 64-bit hash arithmetic use uint64 values
and np.uint64 constants only, BLAKE3 words are np.uint32 (every result is
truncated back to uint32), and sizes and positions are int64; they are not
mixed, since numba's typing of mixed signed/unsigned operations differs
between versions. Compile time: numba compiles a helper once per distinct
literal argument, so internal calls pass variables (np.int64(0), not 0)
and copies are loops, not slice assignments (seconds of compile each).
"""

from __future__ import annotations

import os
import threading
from typing import Optional, Union

NAME = "numba"

Buffer = Union[bytes, bytearray, memoryview]

# Result codes: the values of the pd_result enum in csrc/pydelta.h.
NEED_INPUT = 1
NEED_OUTPUT = 2
DONE = 3
ERR_CORRUPT = -1
ERR_BOUNDS = -2
ERR_IO = -3
ERR_NOMEM = -4
ERR_PARAM = -5
ERR_SIGNATURE = -6

# Sizes and limits (csrc/pydelta.h).
HASH_LEN = 32
LIT_MAX = 262144
DELTA_MIN_OUT = 262400
_MIN_STRONG = 8
_MAX_STRONG = 32
_WEAK_LEN = 8
_TRAILER_LEN = 40
_OP_COPY = 67
_OP_LITERAL = 76
_OP_END = 69
_MAX_CANDIDATES = 16  # PD_MAX_CANDIDATES (internal.h)
_OK = 0
_MORE = 100  # internal: the patch kernel's read-request list is full

_WEAK_M = 0x9E3779B97F4A7C15  # PD_WEAK_M
_BLOOM_MUL = 0xD6E8FEB86659FD93
_MASK64 = (1 << 64) - 1
_SIZE_MAX = _MASK64

# BLAKE3 (https://github.com/BLAKE3-team/BLAKE3-specs): IV, message
# permutation and domain flags.
_B3_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)
_CHUNK_START = 1
_CHUNK_END = 2
_PARENT = 4
_ROOT = 8
_B3_STACK = 54  # CV stack depth: enough for 2**64 bytes

# Layout of the small state arrays.
# BLAKE3 hasher: hw uint32[8 + 8*54] (chunk CV, then the CV stack),
# hb uint8[64] (the chunk's buffered block), hs int64[4]:
_HS_COUNTER, _HS_BLOCKS, _HS_BUFLEN, _HS_STACK = 0, 1, 2, 3
_HW_LEN = 8 + 8 * _B3_STACK
# Signature table parameters, tp int64[...]:
(_T_NBLOCKS, _T_NFULL, _T_BASIS, _T_BLOCK_LEN, _T_STRONG_LEN, _T_TAIL_LEN,
 _T_NUNIQ, _T_TMASK, _T_BLOOM_SHIFT, _T_LEN) = range(10)
# Delta job, si int64[...] (the weak sum h is in a separate uint64[1]):
(_D_USED, _D_HAVE_H, _D_JUDGED, _D_CONT, _D_COPY_PENDING, _D_COPY_OFF,
 _D_COPY_LEN, _D_LIT_LEN, _D_COPIED, _D_LITERAL, _D_DONE, _D_EXTERNAL, _D_HAVE_DIGEST,
 _D_LEN) = range(14)
# Patch job, ps uint64[4]: state, COPY source offset, bytes left in the op,
# expected size from the END trailer.
_P_STATE, _P_OFF, _P_REM, _P_EXPECT = 0, 1, 2, 3
_ST_OP, _ST_COPY, _ST_LITERAL, _ST_DONE = 0, 1, 2, 3
_REQS = 1024  # basis reads collected per kernel call

# ---------------------------------------------------------------------------
# Lazy import and compilation.

np = None  # numpy, bound by _load()
_ready = False
_lock = threading.Lock()

# Constants of the kernels (uint64; uint32 for BLAKE3 words), bound by
# _load(): numba freezes module globals into the compiled code as constants
# of their numpy type.
_U0 = _U1 = _U8 = _U31 = _U17 = _U32 = _M32 = _U7F = _UFF = None
_IV0 = _IV1 = _IV2 = _IV3 = _IV4 = _IV5 = _IV6 = _IV7 = None
_UM = _UM2 = _UM3 = _UM4 = _UBLOOM = None
_UST_OP = _UST_COPY = _UST_LITERAL = _UST_DONE = None
_F_START = _F_END = _F_PARENT = _F_ROOT = _F_NONE = _B64 = None
_Z0 = _HLEN = None  # int64 0 and HASH_LEN: not literals, which numba would
# compile helpers for separately


def _constants(np_mod) -> dict:
    u = np_mod.uint64
    m = _WEAK_M
    c = {
        "_U0": u(0), "_U1": u(1), "_U8": u(8), "_U31": u(31), "_U17": u(17),
        "_U32": u(32), "_M32": u(0xFFFFFFFF), "_U7F": u(0x7F), "_UFF": u(0xFF),
        "_UM": u(m), "_UM2": u(m * m & _MASK64), "_UM3": u(m ** 3 & _MASK64),
        "_UM4": u(m ** 4 & _MASK64), "_UBLOOM": u(_BLOOM_MUL),
        "_UST_OP": u(_ST_OP), "_UST_COPY": u(_ST_COPY),
        "_UST_LITERAL": u(_ST_LITERAL), "_UST_DONE": u(_ST_DONE),
    }
    c["_Z0"] = np_mod.int64(0)
    c["_HLEN"] = np_mod.int64(HASH_LEN)
    w = np_mod.uint32
    c.update({
        "_F_START": w(_CHUNK_START), "_F_END": w(_CHUNK_END), "_F_PARENT": w(_PARENT),
        "_F_ROOT": w(_ROOT), "_F_NONE": w(0), "_B64": w(64),
    })
    for i, v in enumerate(_B3_IV):
        c[f"_IV{i}"] = w(v)
    return c


def _load() -> None:
    """Import numpy and numba, and make the kernels numba functions."""
    global np, _ready
    with _lock:
        if _ready:
            return
        import numba
        import numpy

        g = globals()
        g.update(_constants(numpy))
        np = numpy
        for name in _KERNELS:
            try:
                g[name] = numba.njit(cache=True, nogil=True)(g[name])
            except RuntimeError:  # no writable cache location: compile every run
                g[name] = numba.njit(nogil=True)(g[name])
        _ready = True


def _ro(buf: Buffer):
    """A read-only uint8 numpy view of a buffer (no copy). Input buffers are
    always passed read-only so each kernel is compiled for one type."""
    a = np.frombuffer(buf, dtype=np.uint8)
    if a.flags.writeable:
        a.flags.writeable = False
    return a


def _u32(v: int, what: str) -> int:
    """Range check as cffi does for a uint32_t argument."""
    if not 0 <= v <= 0xFFFFFFFF:
        raise OverflowError(f"{what} does not fit uint32_t")
    return v


def _u64(v: int, what: str) -> int:
    """Range check as cffi does for a uint64_t argument."""
    if not 0 <= v <= _MASK64:
        raise OverflowError(f"{what} does not fit uint64_t")
    return v


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
            m2, m6, m3, m10, m7, m0, m4, m13, m1, m11, m12, m5, m9, m14, m15, m8
        )
    return (
        np.uint32(v0 ^ v8), np.uint32(v1 ^ v9), np.uint32(v2 ^ v10), np.uint32(v3 ^ v11),
        np.uint32(v4 ^ v12), np.uint32(v5 ^ v13), np.uint32(v6 ^ v14), np.uint32(v7 ^ v15),
        np.uint32(v8 ^ h0), np.uint32(v9 ^ h1), np.uint32(v10 ^ h2), np.uint32(v11 ^ h3),
        np.uint32(v12 ^ h4), np.uint32(v13 ^ h5), np.uint32(v14 ^ h6), np.uint32(v15 ^ h7),
    )


def _load_block(a, p):
    """16 little-endian message words from a[p:p+64]. (Written out: numba
    compiles a helper once per distinct constant argument.)"""
    b = a[p:p + 64]
    return (
        np.uint32(np.uint32(b[0]) | (np.uint32(b[1]) << 8) | (np.uint32(b[2]) << 16) | (np.uint32(b[3]) << 24)),
        np.uint32(np.uint32(b[4]) | (np.uint32(b[5]) << 8) | (np.uint32(b[6]) << 16) | (np.uint32(b[7]) << 24)),
        np.uint32(np.uint32(b[8]) | (np.uint32(b[9]) << 8) | (np.uint32(b[10]) << 16) | (np.uint32(b[11]) << 24)),
        np.uint32(np.uint32(b[12]) | (np.uint32(b[13]) << 8) | (np.uint32(b[14]) << 16) | (np.uint32(b[15]) << 24)),
        np.uint32(np.uint32(b[16]) | (np.uint32(b[17]) << 8) | (np.uint32(b[18]) << 16) | (np.uint32(b[19]) << 24)),
        np.uint32(np.uint32(b[20]) | (np.uint32(b[21]) << 8) | (np.uint32(b[22]) << 16) | (np.uint32(b[23]) << 24)),
        np.uint32(np.uint32(b[24]) | (np.uint32(b[25]) << 8) | (np.uint32(b[26]) << 16) | (np.uint32(b[27]) << 24)),
        np.uint32(np.uint32(b[28]) | (np.uint32(b[29]) << 8) | (np.uint32(b[30]) << 16) | (np.uint32(b[31]) << 24)),
        np.uint32(np.uint32(b[32]) | (np.uint32(b[33]) << 8) | (np.uint32(b[34]) << 16) | (np.uint32(b[35]) << 24)),
        np.uint32(np.uint32(b[36]) | (np.uint32(b[37]) << 8) | (np.uint32(b[38]) << 16) | (np.uint32(b[39]) << 24)),
        np.uint32(np.uint32(b[40]) | (np.uint32(b[41]) << 8) | (np.uint32(b[42]) << 16) | (np.uint32(b[43]) << 24)),
        np.uint32(np.uint32(b[44]) | (np.uint32(b[45]) << 8) | (np.uint32(b[46]) << 16) | (np.uint32(b[47]) << 24)),
        np.uint32(np.uint32(b[48]) | (np.uint32(b[49]) << 8) | (np.uint32(b[50]) << 16) | (np.uint32(b[51]) << 24)),
        np.uint32(np.uint32(b[52]) | (np.uint32(b[53]) << 8) | (np.uint32(b[54]) << 16) | (np.uint32(b[55]) << 24)),
        np.uint32(np.uint32(b[56]) | (np.uint32(b[57]) << 8) | (np.uint32(b[58]) << 16) | (np.uint32(b[59]) << 24)),
        np.uint32(np.uint32(b[60]) | (np.uint32(b[61]) << 8) | (np.uint32(b[62]) << 16) | (np.uint32(b[63]) << 24)),
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
        m = (left[0], left[1], left[2], left[3], left[4], left[5], left[6], left[7],
             cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7])
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
        m = (left[0], left[1], left[2], left[3], left[4], left[5], left[6], left[7],
             right[0], right[1], right[2], right[3], right[4], right[5], right[6], right[7])
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


# ---------------------------------------------------------------------------
# Weak sum (weaksum.c, internal.h).


def _weak(a, p, n):
    """pd_weak: Horner's rule, four bytes a step."""
    b = a[p:p + n]  # indexes from 0 up: no negative-index checks
    h = _U0
    i = 0
    while i + 4 <= n:
        h = h * _UM4 + (
            np.uint64(b[i]) * _UM3
            + np.uint64(b[i + 1]) * _UM2
            + np.uint64(b[i + 2]) * _UM
            + np.uint64(b[i + 3])
        )
        i += 4
    while i < n:
        h = h * _UM + np.uint64(b[i])
        i += 1
    return h


def _k_weak(a, p, n):
    return _weak(a, p, n)


def _k_weak_rolling(a, p, n, window, tab, out):
    """Rolling sums of the windows of a[p:p+n]."""
    h = _weak(a, p, window)
    count = n - window + 1
    out[0] = h
    for i in range(1, count):
        h = h * _UM + (np.uint64(a[p + i - 1 + window]) - tab[a[p + i - 1]])
        out[i] = h
    return count


def _out_table(n: int):
    """tab[c] = c * M**n mod 2**64, for rolling a window of n bytes."""
    mn = pow(_WEAK_M, n, 1 << 64)
    return np.array([(c * mn) & _MASK64 for c in range(256)], dtype=np.uint64)


# ---------------------------------------------------------------------------
# Signature entries (signature.c).


def _k_sig_blocks(a, n, block_len, strong_len, out):
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
        _b3_hash(a, off, k, out[e + _WEAK_LEN:e + entry], hw, hb, hs)
        count += 1
        off += block_len
    return count


# ---------------------------------------------------------------------------
# Signature table (sigtable.c). The sort and dedupe run in numpy; the index
# (open addressing over the distinct weak sums, with a Bloom-style bit set
# in front) and the lookup are kernels.


def _slot_of(h, tmask):
    return (((h ^ (h >> _U31)) * _UM) >> _U17) & tmask


def _bloom_bit(h, shift):
    return (h * _UBLOOM) >> shift


def _bloom_test(bloom, h, shift):
    b = _bloom_bit(h, shift)
    return ((bloom[b >> np.uint64(6)] >> (b & np.uint64(63))) & _U1) != _U0


def _k_table_index(uweak, slot, tmask, bloom, shift):
    """Index the first entry of every run of equal weak sums."""
    um = np.uint64(tmask)
    us = np.uint64(shift)
    for i in range(uweak.shape[0]):
        if i > 0 and uweak[i - 1] == uweak[i]:
            continue
        h = uweak[i]
        s = _slot_of(h, um)
        while slot[s] != 0:
            s = (s + _U1) & um
        slot[s] = i + 1
        b = _bloom_bit(h, us)
        bloom[b >> np.uint64(6)] |= _U1 << (b & np.uint64(63))


def _strong_eq(sh, strong, b, slen):
    base = b * slen
    for i in range(slen):
        if sh[i] != strong[base + i]:
            return False
    return True


def _table_match(tp, strong, uweak, uidx, slot, bloom, h, a, p, sh, have_sh, hw, hb, hs):
    """pd_sigtable_match: block index whose weak sum is h and strong hash
    that of a[p:p+block_len] (hashed at most once into sh), or -1; and the
    updated have_sh flag."""
    if not _bloom_test(bloom, h, np.uint64(tp[_T_BLOOM_SHIFT])):
        return -1, have_sh
    um = np.uint64(tp[_T_TMASK])
    nu = tp[_T_NUNIQ]
    slen = tp[_T_STRONG_LEN]
    s = _slot_of(h, um)
    while True:
        v = slot[s]
        if v == 0:
            return -1, have_sh
        if uweak[v - 1] == h:
            i = v - 1
            k = 0
            while k < _MAX_CANDIDATES and i < nu and uweak[i] == h:
                if not have_sh:
                    _b3_hash(a, p, tp[_T_BLOCK_LEN], sh, hw, hb, hs)
                    have_sh = True
                b = uidx[i]
                if _strong_eq(sh, strong, b, slen):
                    return b, have_sh
                k += 1
                i += 1
            return -1, have_sh
        s = (s + _U1) & um


def _k_table_find(tp, strong, uweak, uidx, slot, bloom, a, p, have_sh, sh, hw, hb, hs):
    """pd_sigtable_find on a[p:p+block_len] (have_sh False; arguments, not
    constants, so the helpers are not compiled again for constants)."""
    h = _weak(a, p, tp[_T_BLOCK_LEN])
    b, _ = _table_match(tp, strong, uweak, uidx, slot, bloom, h, a, p, sh, have_sh, hw, hb, hs)
    return b


# ---------------------------------------------------------------------------
# Delta scan (delta.c).


def _put_varint(out, o, v):
    n = 0
    while v >= 0x80:
        out[o + n] = np.uint8((v & 0x7F) | 0x80)
        n += 1
        v >>= 7
    out[o + n] = np.uint8(v)
    return n + 1


def _put_u64(out, o, v):
    for i in range(8):
        out[o + i] = np.uint8((v >> (8 * i)) & 0xFF)


def _emit_copy(si, out, o):
    n = 0
    out[o] = _OP_COPY
    n += 1
    n += _put_varint(out, o + n, si[_D_COPY_OFF])
    n += _put_varint(out, o + n, si[_D_COPY_LEN])
    si[_D_COPY_PENDING] = 0
    return n


def _emit_literal(si, lit, out, o, a, src, length):
    """One LITERAL of the carried bytes followed by a[src:src+length]."""
    ll = si[_D_LIT_LEN]
    total = ll + length
    n = 0
    out[o] = _OP_LITERAL
    n += 1
    n += _put_varint(out, o + n, total)
    _copy(out, o + n, lit, _Z0, ll)
    _copy(out, o + n + ll, a, src, length)
    si[_D_LITERAL] += total
    si[_D_LIT_LEN] = 0
    return n + total


def _add_copy(si, out, o, off, length):
    n = 0
    if si[_D_COPY_PENDING] != 0 and si[_D_COPY_OFF] + si[_D_COPY_LEN] == off:
        si[_D_COPY_LEN] += length
    else:
        if si[_D_COPY_PENDING] != 0:
            n = _emit_copy(si, out, o)
        si[_D_COPY_PENDING] = 1
        si[_D_COPY_OFF] = off
        si[_D_COPY_LEN] = length
    si[_D_COPIED] += length
    return n


def _try_continuation(si, h, tp, weak, strong, a, p, avail, sh, have_sh, tsh, hw, hb, hs):
    """Length matched by the block at the continuation offset (a full block
    or the tail), or 0; and the updated have_sh flag."""
    cont = si[_D_CONT]
    if cont < 0 or cont >= tp[_T_BASIS]:
        return 0, have_sh
    bl = tp[_T_BLOCK_LEN]
    slen = tp[_T_STRONG_LEN]
    j = cont // bl
    if j < tp[_T_NFULL]:
        # the weak sum filters only if it is already known
        if avail < bl or (si[_D_HAVE_H] != 0 and weak[j] != h):
            return 0, have_sh
        if not have_sh:
            _b3_hash(a, p, bl, sh, hw, hb, hs)
            have_sh = True
        if not _strong_eq(sh, strong, j, slen):
            return 0, have_sh
        return bl, have_sh
    n = tp[_T_TAIL_LEN]
    if avail < n or _weak(a, p, n) != weak[j]:
        return 0, have_sh
    _b3_hash(a, p, n, tsh, hw, hb, hs)
    if not _strong_eq(tsh, strong, j, slen):
        return 0, have_sh
    return n, have_sh


def _k_delta_scan(si, hv, dig, lit, nw, nb, ns, sw, sb, ss, sh, tsh,
                  tp, weak, strong, uweak, uidx, slot, bloom, out_tab,
                  a, base, in_len, eof, out, out_cap):
    """pd_delta_scan over a[base:base+in_len]; returns (rc, used, produced).
    nw/nb/ns: the hasher of NEW; sw/sb/ss: scratch for block hashes; dig:
    the digest of NEW given by the caller when it hashes NEW itself."""
    bl = tp[_T_BLOCK_LEN]
    nuniq = tp[_T_NUNIQ]
    shift = np.uint64(tp[_T_BLOOM_SHIFT])
    pos = np.int64(0)  # not 0: see _k_sig_blocks
    lit_start = np.int64(0)
    o = np.int64(0)
    rc = 0
    if si[_D_DONE] != 0:
        return DONE, 0, 0
    if out_cap < DELTA_MIN_OUT:
        return ERR_PARAM, 0, 0
    finished = False
    while True:
        # One pass emits at most one COPY and one LITERAL.
        if out_cap - o < LIT_MAX + 64:
            rc = NEED_OUTPUT
            break
        avail = in_len - pos
        if avail < bl and not eof:
            rc = NEED_INPUT
            break
        if avail == 0:
            finished = True
            break

        mlen = 0
        moff = 0
        if si[_D_JUDGED] == 0:
            have_sh = False
            mlen, have_sh = _try_continuation(si, hv[0], tp, weak, strong, a, base + pos,
                                              avail, sh, have_sh, tsh, sw, sb, ss)
            moff = si[_D_CONT]
            # the weak sum of the window only when the continuation fails
            if mlen == 0 and avail >= bl:
                if si[_D_HAVE_H] == 0:
                    hv[0] = _weak(a, base + pos, bl)
                    si[_D_HAVE_H] = 1
                if nuniq != 0:
                    b, have_sh = _table_match(tp, strong, uweak, uidx, slot, bloom, hv[0], a,
                                              base + pos, sh, have_sh, sw, sb, ss)
                    if b >= 0:
                        mlen = bl
                        moff = b * bl
        if mlen != 0:
            here = pos - lit_start
            if si[_D_LIT_LEN] + here != 0:
                o += _emit_literal(si, lit, out, o, a, base + lit_start, here)
            o += _add_copy(si, out, o, moff, mlen)
            pos += mlen
            lit_start = pos
            si[_D_HAVE_H] = 0
            si[_D_CONT] = moff + mlen
            continue

        # A miss: the first byte of the window is literal.
        if si[_D_COPY_PENDING] != 0:
            o += _emit_copy(si, out, o)
        si[_D_CONT] = -1
        if avail < bl:
            # end of NEW, less than a block left: all literal
            room = LIT_MAX - si[_D_LIT_LEN] - (pos - lit_start)
            pos += avail if avail < room else room
        elif avail == bl:
            if not eof:
                # cannot roll without the next byte; resume here
                si[_D_JUDGED] = 1
                rc = NEED_INPUT
                break
            pos += 1
            si[_D_HAVE_H] = 0
        else:
            # roll through the literal run; stop at a pre-filter hit, the
            # end of the buffer, or a full literal
            limit = lit_start + (LIT_MAX - si[_D_LIT_LEN])
            end = in_len - bl
            if end > limit:
                end = limit
            h = hv[0]
            h = h * _UM + (np.uint64(a[base + pos + bl]) - out_tab[a[base + pos]])
            pos += 1
            # four positions a step (as delta.c): the sums at pos+1..pos+4
            # all come from h, so the multiplies run in parallel
            while pos + 4 <= end and not _bloom_test(bloom, h, shift):
                q = base + pos
                x1 = np.uint64(a[q + bl]) - out_tab[a[q]]
                x2 = np.uint64(a[q + bl + 1]) - out_tab[a[q + 1]]
                x3 = np.uint64(a[q + bl + 2]) - out_tab[a[q + 2]]
                x4 = np.uint64(a[q + bl + 3]) - out_tab[a[q + 3]]
                h1 = h * _UM + x1
                h2 = h * _UM2 + (x1 * _UM + x2)
                h3 = h * _UM3 + (x1 * _UM2 + x2 * _UM + x3)
                h4 = h * _UM4 + (x1 * _UM3 + x2 * _UM2 + x3 * _UM + x4)
                if _bloom_test(bloom, h1, shift):
                    h = h1
                    pos += 1
                    break
                if _bloom_test(bloom, h2, shift):
                    h = h2
                    pos += 2
                    break
                if _bloom_test(bloom, h3, shift):
                    h = h3
                    pos += 3
                    break
                h = h4
                pos += 4
            while pos < end and not _bloom_test(bloom, h, shift):
                h = h * _UM + (np.uint64(a[base + pos + bl]) - out_tab[a[base + pos]])
                pos += 1
            hv[0] = h
            si[_D_JUDGED] = 0
        if si[_D_LIT_LEN] + (pos - lit_start) == LIT_MAX:
            o += _emit_literal(si, lit, out, o, a, base + lit_start, pos - lit_start)
            lit_start = pos

    if finished:
        # All of NEW is decided: flush and write END with the trailer.
        external = si[_D_EXTERNAL] != 0
        if external and si[_D_HAVE_DIGEST] == 0:
            return ERR_PARAM, 0, 0
        if pos - lit_start + si[_D_LIT_LEN] != 0:
            o += _emit_literal(si, lit, out, o, a, base + lit_start, pos - lit_start)
        lit_start = pos
        if si[_D_COPY_PENDING] != 0:
            o += _emit_copy(si, out, o)
        if not external:
            _b3_update(nw, nb, ns, a, base, pos)
        si[_D_USED] += pos
        out[o] = _OP_END
        o += 1
        _put_u64(out, o, si[_D_USED])
        if external:
            _copy(out, o + 8, dig, _Z0, _HLEN)
        else:
            _b3_final(nw, nb, ns, out[o + 8:o + 8 + HASH_LEN])
        o += _TRAILER_LEN
        si[_D_DONE] = 1
        return DONE, pos, o

    # Suspend: carry this call's literal bytes, which leave the buffer.
    ll = si[_D_LIT_LEN]
    k = pos - lit_start
    _copy(lit, ll, a, base + lit_start, k)
    si[_D_LIT_LEN] = ll + k
    if si[_D_EXTERNAL] == 0:
        _b3_update(nw, nb, ns, a, base, pos)
    si[_D_USED] += pos
    return rc, pos, o


# ---------------------------------------------------------------------------
# Patch (patch.c). The kernel parses ops and copies literals; for each COPY
# it reserves the output and records a read request (out position, basis
# offset, length, input position, bytes left in the op before it), and
# Python reads the basis with preadv straight into the output buffer.


def _get_varint(a, p, avail):
    """pd_get_varint: (bytes used, value); 0 bytes: need more input; -1:
    overlong or more than 64 bits."""
    r = _U0
    for i in range(10):
        if i >= avail:
            return 0, r
        b = a[p + i]
        if i == 9 and b > 1:
            return -1, r
        r |= (np.uint64(b) & _U7F) << np.uint64(7 * i)
        if b < 0x80:
            # a trailing zero group would be a second spelling
            if i > 0 and b == 0:
                return -1, r
            return i + 1, r
    return -1, r


def _get_u64(a, p):
    v = _U0
    for i in range(7, -1, -1):
        v = (v << _U8) | np.uint64(a[p + i])
    return v


def _parse_op(ps, edig, old_size, a, p, avail):
    """Parse one op header at a[p:p+avail]: bytes used, 0 if incomplete,
    or a negative result code."""
    if avail == 0:
        return 0
    op = a[p]
    n = 1
    if op == _OP_COPY:
        k, x = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        k, y = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        if y == _U0:
            return ERR_CORRUPT
        if x > old_size or y > old_size - x:
            return ERR_BOUNDS
        ps[_P_OFF] = x
        ps[_P_REM] = y
        ps[_P_STATE] = _UST_COPY
        return n
    if op == _OP_LITERAL:
        k, x = _get_varint(a, p + n, avail - n)
        if k <= 0:
            return ERR_CORRUPT if k < 0 else 0
        n += k
        if x == _U0:
            return ERR_CORRUPT
        ps[_P_REM] = x
        ps[_P_STATE] = _UST_LITERAL
        return n
    if op == _OP_END:
        if avail < 1 + _TRAILER_LEN:
            return 0
        ps[_P_EXPECT] = _get_u64(a, p + 1)
        _copy(edig, _Z0, a, p + 9, _HLEN)
        ps[_P_STATE] = _UST_DONE
        return 1 + _TRAILER_LEN
    return ERR_CORRUPT


def _k_patch_run(ps, edig, old_size, a, ip, in_end, out, o, out_cap, req):
    """Run ops until a result code (or _MORE: the request list is full);
    returns (rc, input position, output position, requests)."""
    uold = np.uint64(old_size)
    nreq = 0
    rc = _OK
    while rc == _OK:
        st = ps[_P_STATE]
        if st == _UST_DONE:
            rc = DONE
        elif st == _UST_OP:
            k = _parse_op(ps, edig, uold, a, ip, in_end - ip)
            if k < 0:
                rc = k
            elif k == 0:
                rc = NEED_INPUT
            else:
                ip += k
        elif st == _UST_COPY:
            room = out_cap - o
            if room == 0:
                rc = NEED_OUTPUT
            elif nreq == req.shape[0]:
                rc = _MORE
            else:
                rem = ps[_P_REM]
                uk = rem if rem < np.uint64(room) else np.uint64(room)
                k = np.int64(uk)
                req[nreq, 0] = o
                req[nreq, 1] = np.int64(ps[_P_OFF])
                req[nreq, 2] = k
                req[nreq, 3] = ip
                req[nreq, 4] = np.int64(rem)
                nreq += 1
                o += k
                ps[_P_OFF] = ps[_P_OFF] + uk
                ps[_P_REM] = rem - uk
                if ps[_P_REM] == _U0:
                    ps[_P_STATE] = _UST_OP
        else:  # _ST_LITERAL
            room = out_cap - o
            avail = in_end - ip
            if avail == 0:
                rc = NEED_INPUT
            elif room == 0:
                rc = NEED_OUTPUT
            else:
                rem = ps[_P_REM]
                lim = room if room < avail else avail
                uk = rem if rem < np.uint64(lim) else np.uint64(lim)
                k = np.int64(uk)
                _copy(out, o, a, ip, k)
                o += k
                ip += k
                ps[_P_REM] = rem - uk
                if ps[_P_REM] == _U0:
                    ps[_P_STATE] = _UST_OP
    return rc, ip, o, nreq


_KERNELS = (
    "_g", "_compress", "_load_block", "_load_cv", "_store_cv", "_chunk_cv", "_set_chunk_cv",
    "_iv", "_first8", "_copy",
    "_b3_reset", "_start_flag", "_chunk_update", "_hash_chunk", "_push_cv", "_b3_update",
    "_b3_final", "_b3_hash", "_k_b3_update", "_k_b3_final",
    "_weak", "_k_weak", "_k_weak_rolling", "_k_sig_blocks",
    "_slot_of", "_bloom_bit", "_bloom_test", "_k_table_index", "_strong_eq", "_table_match",
    "_k_table_find",
    "_put_varint", "_put_u64", "_emit_copy", "_emit_literal", "_add_copy",
    "_try_continuation", "_k_delta_scan",
    "_get_varint", "_get_u64", "_parse_op", "_k_patch_run",
)


# ---------------------------------------------------------------------------
# The API of pydelta._c.


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
        if not _ready:
            _load()
        self._hw, self._hb, self._hs = _new_state()
        if data:
            self.update(data)

    def update(self, data: Buffer, /) -> None:
        """Hash more bytes."""
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
    if not _ready:
        _load()
    a = _ro(data)
    hw, hb, hs = _new_state()
    if a.size:
        _k_b3_update(hw, hb, hs, a, 0, a.size)
    out = np.empty(length, np.uint8)
    _k_b3_final(hw, hb, hs, out)
    return out.tobytes()


def weak(data: Buffer) -> int:
    """The weak sum of one window."""
    if not _ready:
        _load()
    a = _ro(data)
    return int(_k_weak(a, 0, a.size))


def weak_rolling(data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    if not _ready:
        _load()
    a = _ro(data)
    n = a.size
    if window <= 0 or n < window:
        return []
    out = np.empty(n - window + 1, np.uint64)
    _k_weak_rolling(a, 0, n, window, _out_table(window), out)
    return out.tolist()


def sig_blocks(buf: Buffer, length: int, block_len: int, strong_len: int) -> bytes:
    """Signature entries of buf[:length], block by block."""
    if not _ready:
        _load()
    _u32(block_len, "block_len")
    _u32(strong_len, "strong_len")
    if block_len == 0 or not _MIN_STRONG <= strong_len <= _MAX_STRONG:
        return b""
    a = _ro(buf)
    if not 0 <= length <= a.size:
        raise ValueError("length reaches outside the buffer")
    entry = _WEAK_LEN + strong_len
    count = -(-length // block_len)
    out = np.empty(max(count * entry, 1), np.uint8)
    got = _k_sig_blocks(a, length, block_len, strong_len, out)
    return out[: got * entry].tobytes()


class SigTable:
    """The lookup table of a signature."""

    def __init__(
        self, entries: Buffer, nblocks: int, block_len: int, strong_len: int, basis_size: int
    ) -> None:
        if not _ready:
            _load()
        _u64(nblocks, "nblocks")
        _u32(block_len, "block_len")
        _u32(strong_len, "strong_len")
        _u64(basis_size, "basis_size")
        self._tp = None
        self.error = self._build(entries, nblocks, block_len, strong_len, basis_size)

    def _build(self, entries, nblocks, block_len, strong_len, basis_size) -> int:
        if block_len == 0 or not _MIN_STRONG <= strong_len <= _MAX_STRONG:
            return ERR_PARAM
        # the block count must be exactly what basis_size implies
        if nblocks != -(-basis_size // block_len):
            return ERR_SIGNATURE
        entry = _WEAK_LEN + strong_len
        if nblocks > (_SIZE_MAX // 64) // entry:
            return ERR_NOMEM
        raw = _ro(entries)
        if raw.size < nblocks * entry:
            return ERR_SIGNATURE
        try:
            self._index(raw, nblocks, block_len, strong_len, basis_size)
        except MemoryError:
            self._tp = None
            return ERR_NOMEM
        return 0

    def _index(self, raw, nblocks, block_len, strong_len, basis_size) -> None:
        entry = _WEAK_LEN + strong_len
        nfull = basis_size // block_len
        rows = raw[: nblocks * entry].reshape(nblocks, entry)
        weak_ = np.ascontiguousarray(rows[:, :_WEAK_LEN]).view("<u8").reshape(nblocks)
        self._weak = weak_.astype(np.uint64)
        self._strong = np.ascontiguousarray(rows[:, _WEAK_LEN:]).reshape(nblocks * strong_len)
        # Distinct full blocks sorted by weak sum, then strong bytes (as
        # memcmp orders them), then index; the first of each run of equal
        # (weak, strong) is kept, so the lowest index wins.
        if nfull:
            nw = (strong_len + 7) // 8
            pad = np.zeros((nfull, 8 * nw), np.uint8)
            pad[:, :strong_len] = rows[:nfull, _WEAK_LEN:]
            words = pad.view(">u8").astype(np.uint64)  # big-endian: memcmp order
            fw = self._weak[:nfull]
            order = np.lexsort([words[:, k] for k in range(nw - 1, -1, -1)] + [fw])
            sw = fw[order]
            ss = words[order]
            keep = np.ones(nfull, dtype=bool)
            keep[1:] = (sw[1:] != sw[:-1]) | (ss[1:] != ss[:-1]).any(axis=1)
            uweak = np.ascontiguousarray(sw[keep])
            uidx = order[keep].astype(np.int64)
        else:
            uweak = np.zeros(0, np.uint64)
            uidx = np.zeros(0, np.int64)
        nu = uweak.size
        nweak = int(nu and 1 + np.count_nonzero(uweak[1:] != uweak[:-1]))
        slots = _pow2_at_least(max(16, 2 * nweak))
        # 64 bits per distinct weak sum, at most 2**27 bits (as sigtable.c)
        bits = _pow2_at_least(min(max(4096, 64 * nweak), 1 << 27))
        lg = bits.bit_length() - 1
        slot = np.zeros(slots, np.int64)
        bloom = np.zeros(bits // 64, np.uint64)
        _k_table_index(uweak, slot, slots - 1, bloom, 64 - lg)
        tp = np.zeros(_T_LEN, np.int64)
        tp[_T_NBLOCKS] = nblocks
        tp[_T_NFULL] = nfull
        tp[_T_BASIS] = basis_size
        tp[_T_BLOCK_LEN] = block_len
        tp[_T_STRONG_LEN] = strong_len
        tp[_T_TAIL_LEN] = basis_size % block_len
        tp[_T_NUNIQ] = nu
        tp[_T_TMASK] = slots - 1
        tp[_T_BLOOM_SHIFT] = 64 - lg
        self._uweak, self._uidx, self._slot, self._bloom = uweak, uidx, slot, bloom
        self._out_tab = _out_table(block_len)
        self._tp = tp

    def find(self, data: Buffer) -> Optional[int]:
        """Index of a block equal to data (one block long), or None."""
        tp = self._tp
        if tp is None or not tp[_T_NUNIQ]:
            return None
        a = _ro(data)
        if a.size < tp[_T_BLOCK_LEN]:
            return None
        hw, hb, hs = _new_state()
        sh = np.zeros(HASH_LEN, np.uint8)
        i = _k_table_find(tp, self._strong, self._uweak, self._uidx, self._slot, self._bloom,
                          a, 0, False, sh, hw, hb, hs)
        return None if i < 0 else int(i)

    @property
    def unique(self) -> int:
        """Distinct full blocks in the table."""
        return 0 if self._tp is None else int(self._tp[_T_NUNIQ])


def _pow2_at_least(v: int) -> int:
    p = 1
    while p < v:
        p <<= 1
    return p


class DeltaJob:
    """A resumable delta scan over NEW against one table."""

    def __init__(self, table: SigTable) -> None:
        if table._tp is None:
            raise ValueError("the signature table was not built")
        self._table = table
        self._si = np.zeros(_D_LEN, np.int64)  # cont starts at 0: block 0 is tried first
        self._hv = np.zeros(1, np.uint64)
        self._digest = np.zeros(HASH_LEN, np.uint8)
        self._lit = np.empty(LIT_MAX, np.uint8)
        self._new = _new_state()
        self._scratch = _new_state()
        self._sh = np.zeros(HASH_LEN, np.uint8)
        self._tsh = np.zeros(HASH_LEN, np.uint8)

    def scan(self, inbuf: bytearray, in_off: int, in_len: int, eof: bool, outbuf: bytearray) -> tuple:
        """Scan inbuf[in_off:in_off+in_len]; returns (code, input used, output made)."""
        a = _ro(inbuf)
        if in_off < 0 or in_len < 0 or in_off + in_len > a.size:
            raise ValueError("input range reaches outside the buffer")
        out = np.frombuffer(outbuf, dtype=np.uint8)
        t = self._table
        nw, nb, ns = self._new
        sw, sb, ss = self._scratch
        rc, used, produced = _k_delta_scan(
            self._si, self._hv, self._digest, self._lit, nw, nb, ns, sw, sb, ss, self._sh, self._tsh,
            t._tp, t._weak, t._strong, t._uweak, t._uidx, t._slot, t._bloom, t._out_tab,
            a, in_off, in_len, bool(eof), out, out.size,
        )
        return int(rc), int(used), int(produced)

    def hash_externally(self) -> None:
        """The caller hashes NEW itself and gives the digest via set_digest()."""
        self._si[_D_EXTERNAL] = 1

    def set_digest(self, digest: bytes) -> None:
        """BLAKE3 of all of NEW, before the final (eof) scan call."""
        d = _ro(digest)
        if d.size < HASH_LEN:
            raise ValueError(f"a digest is {HASH_LEN} bytes")
        self._digest[:] = d[:HASH_LEN]
        self._si[_D_HAVE_DIGEST] = 1

    def stats(self) -> tuple:
        """(NEW bytes read, bytes copied, bytes sent as literal)."""
        si = self._si
        return int(si[_D_USED]), int(si[_D_COPIED]), int(si[_D_LITERAL])


class PatchJob:
    """A resumable patch job reading the basis through a file descriptor."""

    def __init__(self, fd: int, old_size: int) -> None:
        if not _ready:
            _load()
        _u64(old_size, "old_size")
        self._fd = fd
        self._old_size = old_size
        self._ps = np.zeros(4, np.uint64)
        self._edig = np.zeros(HASH_LEN, np.uint8)
        self._req = np.zeros((_REQS, 5), np.int64)
        self._hasher = _new_state()
        self._produced = 0
        self._errno = 0

    def step(self, inbuf: Buffer, in_off: int, in_len: int, outbuf: bytearray) -> tuple:
        """Apply ops from inbuf[in_off:in_off+in_len]; (code, used, produced)."""
        a = _ro(inbuf)
        if in_off < 0 or in_len < 0 or in_off + in_len > a.size:
            raise ValueError("input range reaches outside the buffer")
        out = np.frombuffer(outbuf, dtype=np.uint8)
        ps, edig, req = self._ps, self._edig, self._req
        ip, end, o, cap = in_off, in_off + in_len, 0, out.size
        while True:
            expect = (ps[_P_EXPECT], edig.copy())
            rc, ip, o, nreq = _k_patch_run(ps, edig, self._old_size, a, ip, end, out, o, cap, req)
            if nreq:
                bad = self._read(memoryview(outbuf).cast("B"), req[:nreq].tolist())
                if bad is not None:
                    # as if the ops after the failed read were never parsed
                    o, off, _, ip, rem = bad
                    ps[_P_STATE], ps[_P_OFF], ps[_P_REM] = _ST_COPY, off, rem
                    ps[_P_EXPECT], edig[:] = expect
                    rc = ERR_IO
            if rc != _MORE:
                break
        if o:
            hw, hb, hs = self._hasher
            view = out[:o]
            view.flags.writeable = False
            _k_b3_update(hw, hb, hs, view, 0, o)
            self._produced += o
        return int(rc), ip - in_off, o

    def _read(self, view: memoryview, reqs: list) -> Optional[list]:
        """Read the basis for each request; the failing request, or None."""
        fd = self._fd
        for r in reqs:
            pos, off, k = r[0], r[1], r[2]
            while k:
                try:
                    got = _preadv(fd, view[pos : pos + k], off)
                except OSError as e:
                    self._errno = e.errno or 0
                    return r
                if got == 0:
                    # the basis is shorter than it was said to be
                    self._errno = 0
                    return r
                pos += got
                off += got
                k -= got
        return None

    def result(self) -> tuple:
        """(expected size, expected digest, produced size, produced digest)."""
        hw, hb, hs = self._hasher
        out = np.empty(HASH_LEN, np.uint8)
        _k_b3_final(hw, hb, hs, out)
        return int(self._ps[_P_EXPECT]), self._edig.tobytes(), self._produced, out.tobytes()

    @property
    def errno(self) -> int:
        """errno of the last basis read failure (0: the basis ended early)."""
        return self._errno


if hasattr(os, "preadv"):

    def _preadv(fd: int, view: memoryview, off: int) -> int:
        return os.preadv(fd, [view], off)

else:  # pragma: no cover - platforms without preadv

    def _preadv(fd: int, view: memoryview, off: int) -> int:
        data = os.pread(fd, len(view), off)
        view[: len(data)] = data
        return len(data)
