"""XXH3-128, the per-block strong sum of signatures with strong hash id 2
(csrc/xxh3.c): unseeded, default secret, canonical (big-endian) output.

Written from the xxHash specification (doc/xxhash_spec.md); the same steps
as csrc/xxh3.c, with the 64x64->128-bit multiply made from 32-bit halves.
See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow (uint64 values and np.uint64 constants only).
"""

from __future__ import annotations

from typing import Any, Dict

from . import _jit
from ._jit import Buffer, _ro
from .blake3 import _b3_hash

np: Any = None  # numpy, bound by _jit.load()

#: The kinds of per-block strong sum (a native signature's strong hash id).
STRONG_BLAKE3 = 1
STRONG_XXH3 = 2
XXH3_LEN = 16

#: The specification's default secret (192 bytes).
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
)
_PRIMES = {
    "_P32_1": 0x9E3779B1,
    "_P32_2": 0x85EBCA77,
    "_P32_3": 0xC2B2AE3D,
    "_P64_1": 0x9E3779B185EBCA87,
    "_P64_2": 0xC2B2AE3D27D4EB4F,
    "_P64_3": 0x165667B19E3779F9,
    "_P64_4": 0x85EBCA77C2B2AE63,
    "_P64_5": 0x27D4EB2F165667C5,
    "_PMX_1": 0x165667919E3779F9,
    "_PMX_2": 0x9FB21C651E98DF25,
}
_SHIFTS = (0, 1, 2, 3, 8, 13, 16, 19, 24, 28, 29, 32, 33, 35, 37, 47, 54, 56)

# Bound by _bind() when the kernels are compiled (numba freezes them).
_P32_1 = _P32_2 = _P32_3 = _P64_1 = _P64_2 = _P64_3 = _P64_4 = _P64_5 = None
_PMX_1 = _PMX_2 = _XM32 = _XM8 = _XONES = None
_X0 = _X1 = _X2 = _X3 = _X8 = _X13 = _X16 = _X19 = _X24 = _X28 = _X29 = None
_X32 = _X33 = _X35 = _X37 = _X47 = _X54 = _X56 = None
_XK: Any = None
_XZ: Any = None


def _bind(np_mod) -> Dict[str, Any]:
    """This module's constants as numpy values (called by _jit.load)."""
    u = np_mod.uint64
    c: Dict[str, Any] = {k: u(v) for k, v in _PRIMES.items()}
    c.update({f"_X{s}": u(s) for s in _SHIFTS})
    c["_XM32"] = u(0xFFFFFFFF)
    c["_XM8"] = u(0xFF)
    c["_XONES"] = u((1 << 64) - 1)
    c["_XZ"] = np_mod.int64(0)
    c["_XK"] = np_mod.frombuffer(_SECRET, np_mod.uint8).copy()
    return c


def _rd64(a, p):
    """Little-endian u64 at a[p]."""
    v = _X0
    for i in range(7, -1, -1):
        v = (v << _X8) | np.uint64(a[p + i])
    return v


def _rd32(a, p):
    v = _X0
    for i in range(3, -1, -1):
        v = (v << _X8) | np.uint64(a[p + i])
    return v


def _mul128(x, y):
    """(low, high) 64 bits of the full product, from 32-bit halves."""
    xl = x & _XM32
    xh = x >> _X32
    yl = y & _XM32
    yh = y >> _X32
    ll = xl * yl
    lh = xl * yh
    hl = xh * yl
    hh = xh * yh
    mid = (ll >> _X32) + (lh & _XM32) + (hl & _XM32)
    lo = (mid << _X32) | (ll & _XM32)
    hi = hh + (lh >> _X32) + (hl >> _X32) + (mid >> _X32)
    return lo, hi


def _fold(x, y):
    lo, hi = _mul128(x, y)
    return lo ^ hi


def _aval(x):
    x = x ^ (x >> _X37)
    x = x * _PMX_1
    return x ^ (x >> _X32)


def _aval64(x):
    x = x ^ (x >> _X33)
    x = x * _P64_2
    x = x ^ (x >> _X29)
    x = x * _P64_3
    return x ^ (x >> _X32)


def _bswap64(x):
    r = _X0
    for _ in range(8):
        r = (r << _X8) | (x & _XM8)
        x = x >> _X8
    return r


def _bswap32(x):
    r = _X0
    for _ in range(4):
        r = (r << _X8) | (x & _XM8)
        x = x >> _X8
    return r


def _small(a, p, n):
    """0..16 bytes: (low, high)."""
    k = _XK
    if n == 0:
        return (
            _aval64(_rd64(k, 64) ^ _rd64(k, 72)),
            _aval64(_rd64(k, 80) ^ _rd64(k, 88)),
        )
    un = np.uint64(n)
    if n <= 3:
        c = (
            np.uint64(a[p + n - 1])
            | (un << _X8)
            | (np.uint64(a[p]) << _X16)
            | (np.uint64(a[p + (n >> 1)]) << _X24)
        )
        lo = (_rd32(k, 0) ^ _rd32(k, 4)) ^ c
        s = _bswap32(c)
        r = ((s << _X13) | (s >> _X19)) & _XM32  # 32-bit rotate
        hi = (_rd32(k, 8) ^ _rd32(k, 12)) ^ r
        return _aval64(lo), _aval64(hi)
    if n <= 8:
        first = _rd32(a, p)
        last = _rd32(a, p + n - 4)
        v = (_rd64(k, 16) ^ _rd64(k, 24)) ^ (first | (last << _X32))
        lo, hi = _mul128(v, _P64_1 + (un << _X2))
        hi = hi + (lo << _X1)
        lo = lo ^ (hi >> _X3)
        lo = lo ^ (lo >> _X35)
        lo = lo * _PMX_2
        lo = lo ^ (lo >> _X28)
        return lo, _aval(hi)
    first = _rd64(a, p)
    last = _rd64(a, p + n - 8)
    v1 = (_rd64(k, 32) ^ _rd64(k, 40)) ^ first ^ last
    v2 = (_rd64(k, 48) ^ _rd64(k, 56)) ^ last
    lo, hi = _mul128(v1, _P64_1)
    lo = lo + ((un - _X1) << _X54)
    hi = hi + v2 + (v2 & _XM32) * (_P32_2 - _X1)
    lo = lo ^ _bswap64(hi)
    lo2, hi2 = _mul128(lo, _P64_2)
    hi2 = hi2 + hi * _P64_2
    return _aval(lo2), _aval(hi2)


def _mix16(a, p, ko):
    k = _XK
    return _fold(_rd64(a, p) ^ _rd64(k, ko), _rd64(a, p + 8) ^ _rd64(k, ko + 8))


def _mix32(acc0, acc1, a, pa, pb, ko):
    acc0 = acc0 + _mix16(a, pa, ko)
    acc1 = acc1 + _mix16(a, pb, ko + 16)
    acc0 = acc0 ^ (_rd64(a, pb) + _rd64(a, pb + 8))
    acc1 = acc1 ^ (_rd64(a, pa) + _rd64(a, pa + 8))
    return acc0, acc1


def _medium(a, p, n):
    """17..240 bytes: (low, high)."""
    un = np.uint64(n)
    acc0 = un * _P64_1
    acc1 = _X0
    if n <= 128:
        rounds = ((n - 1) >> 5) + 1
        for i in range(rounds - 1, -1, -1):
            acc0, acc1 = _mix32(acc0, acc1, a, p + 16 * i, p + n - 16 * i - 16, 32 * i)
    else:
        for i in range(4):
            acc0, acc1 = _mix32(acc0, acc1, a, p + 32 * i, p + 32 * i + 16, 32 * i)
        acc0 = _aval(acc0)
        acc1 = _aval(acc1)
        for i in range(4, n >> 5):
            acc0, acc1 = _mix32(acc0, acc1, a, p + 32 * i, p + 32 * i + 16, 32 * (i - 4) + 3)
        acc0, acc1 = _mix32(acc0, acc1, a, p + n - 16, p + n - 32, 103)
    lo = acc0 + acc1
    hi = acc0 * _P64_1 + acc1 * _P64_4 + un * _P64_2
    return _aval(lo), _X0 - _aval(hi)


def _stripe(acc, a, p, ko):
    """accumulate(): one 64-byte stripe at a[p], secret at offset ko."""
    k = _XK
    for i in range(8):
        v = _rd64(a, p + 8 * i)
        x = v ^ _rd64(k, ko + 8 * i)
        acc[i ^ 1] += v
        acc[i] += (x & _XM32) * (x >> _X32)


def _merge(acc, init, ko):
    k = _XK
    r = init
    for i in range(4):
        r = r + _fold(
            acc[2 * i] ^ _rd64(k, ko + 16 * i), acc[2 * i + 1] ^ _rd64(k, ko + 16 * i + 8)
        )
    return _aval(r)


def _large(a, p, n):
    """More than 240 bytes: (low, high)."""
    acc = np.empty(8, np.uint64)
    acc[0] = _P32_3
    acc[1] = _P64_1
    acc[2] = _P64_2
    acc[3] = _P64_3
    acc[4] = _P64_4
    acc[5] = _P32_2
    acc[6] = _P64_5
    acc[7] = _P32_1
    k = _XK
    nb = (n - 1) // 1024
    for b in range(nb):
        q = p + b * 1024
        for s in range(16):
            _stripe(acc, a, q + 64 * s, 8 * s)
        for i in range(8):
            x = acc[i]
            x = x ^ (x >> _X47)
            x = x ^ _rd64(k, 128 + 8 * i)
            acc[i] = x * _P32_1
    q = p + nb * 1024
    rest = n - nb * 1024
    for s in range((rest - 1) // 64):
        _stripe(acc, a, q + 64 * s, 8 * s)
    _stripe(acc, a, p + n - 64, 121)
    un = np.uint64(n)
    lo = _merge(acc, un * _P64_1, 11)
    hi = _merge(acc, (un * _P64_2) ^ _XONES, 117)
    return lo, hi


def _xxh3_into(a, p, n, out, o, m):
    """The first m (<= 16) canonical bytes of XXH3-128(a[p:p+n]) to
    out[o:o+m]."""
    if n <= 16:
        lo, hi = _small(a, p, n)
    elif n <= 240:
        lo, hi = _medium(a, p, n)
    else:
        lo, hi = _large(a, p, n)
    for i in range(m):
        if i < 8:
            out[o + i] = np.uint8((hi >> np.uint64(56 - 8 * i)) & _XM8)
        else:
            out[o + i] = np.uint8((lo >> np.uint64(120 - 8 * i)) & _XM8)


def _strong(kind, a, p, n, out, m, hw, hb, hs):
    """A block's strong sum of kind (1 BLAKE3, 2 XXH3-128), truncated to m
    bytes, into out[0:m] (pd_strong)."""
    if kind == 2:
        _xxh3_into(a, p, n, out, _XZ, m)
    else:
        _b3_hash(a, p, n, out[:m], hw, hb, hs)


def _k_xxh3(a, p, n, out, o, m):
    _xxh3_into(a, p, n, out, o, m)


def xxh3_128(data: Buffer) -> bytes:
    """XXH3-128 of data (unseeded, default secret), canonical (big-endian) bytes."""
    _jit.ensure()
    a = _ro(data)
    out = np.zeros(16, np.uint8)
    _k_xxh3(a, np.int64(0), a.size, out, np.int64(0), np.int64(16))
    return out.tobytes()


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_rd64",
    "_rd32",
    "_mul128",
    "_fold",
    "_aval",
    "_aval64",
    "_bswap64",
    "_bswap32",
    "_small",
    "_mix16",
    "_mix32",
    "_medium",
    "_stripe",
    "_merge",
    "_large",
    "_xxh3_into",
    "_strong",
    "_k_xxh3",
)
_jit.register(globals(), KERNELS)
