"""The signature lookup table (csrc/sigtable.c).

The same index as the C core's (see csrc/internal.h, pd_windex): distinct
blocks sorted by (weak sum, strong bytes, index), their runs of equal weak
sums grouped into buckets by a keyed mix of the weak sum (the key random per
process, so sums chosen by a signature's author cannot pile into one
bucket), each bucket sorted by weak sum and binary-searched when large (so
even a known key gives O(log n) lookups, never the quadratic time of
probing). At most the first 16 blocks of a run are candidates, which makes
the match a property of the signature alone: the same block as the C
backend's whatever the key or layout.

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

import secrets
from typing import Any, List, Optional

from . import _jit
from ._jit import (
    _BLOOM_MUL,
    _MAX_CANDIDATES,
    _MIX1,
    _MIX2,
    _SIZE_MAX,
    _T_BASIS,
    _T_BLOCK_LEN,
    _T_BLOOM_SHIFT,
    _T_LEN,
    _T_NBLOCKS,
    _T_NFULL,
    _T_NRUNS,
    _T_NUNIQ,
    _T_STRONG_KIND,
    _T_STRONG_LEN,
    _T_TAIL_LEN,
    _U0,
    _U1,
    _U29,
    _U31,
    _U32,
    _UBLOOM,
    _UMIX1,
    _UMIX2,
    _WEAK_LEN,
    ERR_NOMEM,
    ERR_PARAM,
    ERR_SIGNATURE,
    HASH_LEN,
    Buffer,
    _ro,
    _u32,
    _u64,
)
from .blake3 import (
    _new_state,
)
from .signature import strong_ok
from .weaksum import (
    _out_table,
    _weak,
)
from .xxh3 import STRONG_BLAKE3, _strong

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# Signature table (sigtable.c). The sort, dedupe and bucketing run in numpy;
# the lookup is a kernel.

#: The key of the bucket mix for tables built from now on (pd_table_key).
_KEY: List[int] = [secrets.randbits(64), secrets.randbits(64)]
#: A bucket larger than this is binary-searched first (PD_BUCKET_SCAN).
_BUCKET_SCAN = 8


def set_table_key(k0: int, k1: int) -> None:
    """Fix the key of the weak-sum index for tables built from now on, as
    the C core's pd_table_key: for tests; (0, 0) draws a fresh random key.
    Deltas never depend on the key."""
    if k0 == 0 and k1 == 0:
        k0, k1 = secrets.randbits(64), secrets.randbits(64)
    _KEY[:] = [_u64(k0, "k0"), _u64(k1, "k1")]


def _mix(h, k0, k1):
    """pd_windex_mix: the keyed bucket mix of a weak sum."""
    x = h ^ k0
    x ^= x >> _U31
    x *= _UMIX1
    x ^= k1
    x ^= x >> _U29
    x *= _UMIX2
    x ^= x >> _U32
    return x


def _mix_array(h, k0: int, k1: int):
    """_mix over a uint64 array (numpy, wrapping like the kernel)."""
    u = np.uint64
    x = h ^ u(k0)
    x ^= x >> u(31)
    x *= u(_MIX1)
    x ^= u(k1)
    x ^= x >> u(29)
    x *= u(_MIX2)
    x ^= x >> u(32)
    return x


def _bloom_bit(h, shift):
    return (h * _UBLOOM) >> shift


def _bloom_test(bloom, h, shift):
    b = _bloom_bit(h, shift)
    return ((bloom[b >> np.uint64(6)] >> (b & np.uint64(63))) & _U1) != _U0


def _windex_find(runs, bucket, tk, h):
    """pd_windex_find: the row of runs (weak, first, count) whose weak sum
    is h, or -1. tk holds the key and the bucket shift."""
    b = _mix(h, tk[0], tk[1]) >> tk[2]
    lo = bucket[b]
    hi = bucket[b + _U1]
    while hi - lo > _BUCKET_SCAN:
        mid = lo + (hi - lo) // 2
        if runs[mid, 0] < h:
            lo = mid + 1
        else:
            hi = mid + 1
    while lo < hi:
        if runs[lo, 0] == h:
            return lo
        lo += 1
    return -1


def _strong_eq(sh, strong, b, slen):
    base = b * slen
    for i in range(slen):
        if sh[i] != strong[base + i]:
            return False
    return True


def _table_match(tp, strong, runs, uidx, bucket, tk, bloom, h, a, p, sh, have_sh, hw, hb, hs):
    """pd_sigtable_match: block index whose weak sum is h and strong hash
    that of a[p:p+block_len] (hashed at most once into sh), or -1; and the
    updated have_sh flag."""
    if not _bloom_test(bloom, h, np.uint64(tp[_T_BLOOM_SHIFT])):
        return -1, have_sh
    r = _windex_find(runs, bucket, tk, h)
    if r < 0:
        return -1, have_sh
    slen = tp[_T_STRONG_LEN]
    if not have_sh:
        _strong(tp[_T_STRONG_KIND], a, p, tp[_T_BLOCK_LEN], sh, slen, hw, hb, hs)
        have_sh = True
    first = np.int64(runs[r, 1])
    for k in range(np.int64(runs[r, 2])):
        b = uidx[first + k]
        if _strong_eq(sh, strong, b, slen):
            return b, have_sh
    return -1, have_sh


def _k_table_find(tp, strong, runs, uidx, bucket, tk, bloom, a, p, have_sh, sh, hw, hb, hs):
    """pd_sigtable_find on a[p:p+block_len] (have_sh False; arguments, not
    constants, so the helpers are not compiled again for constants)."""
    h = _weak(a, p, tp[_T_BLOCK_LEN])
    b, _ = _table_match(tp, strong, runs, uidx, bucket, tk, bloom, h, a, p, sh, have_sh, hw, hb, hs)
    return b


class SigTable:
    """The lookup table of a signature."""

    def __init__(
        self,
        entries: Buffer,
        nblocks: int,
        block_len: int,
        strong_len: int,
        basis_size: int,
        strong: int = STRONG_BLAKE3,
    ) -> None:
        _jit.ensure()
        _u64(nblocks, "nblocks")
        _u32(block_len, "block_len")
        _u32(strong_len, "strong_len")
        _u64(basis_size, "basis_size")
        self._tp = None
        self._kind = strong
        self.error = self._build(entries, nblocks, block_len, strong_len, basis_size)

    def _build(self, entries, nblocks, block_len, strong_len, basis_size) -> int:
        if block_len == 0 or not strong_ok(self._kind, strong_len):
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
        # the runs of equal weak sums: (weak, first, candidates <= 16)
        if nu:
            starts = np.flatnonzero(np.r_[True, uweak[1:] != uweak[:-1]])
        else:
            starts = np.zeros(0, np.int64)
        nruns = starts.size
        counts = np.diff(np.r_[starts, nu])
        rweak = uweak[starts]
        nb = _pow2_at_least(max(16, nruns))
        shift = 64 - (nb.bit_length() - 1)
        k0, k1 = _KEY
        # counting sort into buckets; stable, so every bucket stays sorted
        # by weak sum for the binary search
        bix = (_mix_array(rweak, k0, k1) >> np.uint64(shift)).astype(np.int64)
        order = np.argsort(bix, kind="stable")
        runs = np.empty((nruns, 3), np.uint64)
        runs[:, 0] = rweak[order]
        runs[:, 1] = starts[order]
        runs[:, 2] = np.minimum(counts, _MAX_CANDIDATES)[order]
        bucket = np.zeros(nb + 1, np.int64)
        bucket[1:] = np.cumsum(np.bincount(bix, minlength=nb))
        tk = np.array([k0, k1, shift], np.uint64)
        # 64 bits per distinct weak sum, at most 2**27 bits (as sigtable.c)
        bits = _pow2_at_least(min(max(4096, 64 * nruns), 1 << 27))
        lg = bits.bit_length() - 1
        bloom = np.zeros(bits // 64, np.uint64)
        bb = (rweak * np.uint64(_BLOOM_MUL)) >> np.uint64(64 - lg)
        np.bitwise_or.at(
            bloom,
            (bb >> np.uint64(6)).astype(np.int64),
            np.left_shift(np.uint64(1), bb & np.uint64(63)),
        )
        tp = np.zeros(_T_LEN, np.int64)
        tp[_T_NBLOCKS] = nblocks
        tp[_T_NFULL] = nfull
        tp[_T_BASIS] = basis_size
        tp[_T_BLOCK_LEN] = block_len
        tp[_T_STRONG_LEN] = strong_len
        tp[_T_TAIL_LEN] = basis_size % block_len
        tp[_T_NUNIQ] = nu
        tp[_T_NRUNS] = nruns
        tp[_T_BLOOM_SHIFT] = 64 - lg
        tp[_T_STRONG_KIND] = self._kind
        self._runs, self._uidx, self._bucket, self._tk = runs, uidx, bucket, tk
        self._bloom = bloom
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
        i = _k_table_find(
            tp,
            self._strong,
            self._runs,
            self._uidx,
            self._bucket,
            self._tk,
            self._bloom,
            a,
            0,
            False,
            sh,
            hw,
            hb,
            hs,
        )
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


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_mix",
    "_bloom_bit",
    "_bloom_test",
    "_windex_find",
    "_strong_eq",
    "_table_match",
    "_k_table_find",
)
_jit.register(globals(), KERNELS)
