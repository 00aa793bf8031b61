"""The signature lookup table (csrc/sigtable.c).

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _jit
from ._jit import (
    _MAX_CANDIDATES,
    _MAX_STRONG,
    _MIN_STRONG,
    _SIZE_MAX,
    _T_BASIS,
    _T_BLOCK_LEN,
    _T_BLOOM_SHIFT,
    _T_LEN,
    _T_NBLOCKS,
    _T_NFULL,
    _T_NUNIQ,
    _T_STRONG_LEN,
    _T_TAIL_LEN,
    _T_TMASK,
    _U0,
    _U1,
    _U17,
    _U31,
    _UBLOOM,
    _UM,
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
    _b3_hash,
    _new_state,
)
from .weaksum import (
    _out_table,
    _weak,
)

np: Any = None  # numpy, bound by _jit.load()


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


class SigTable:
    """The lookup table of a signature."""

    def __init__(
        self, entries: Buffer, nblocks: int, block_len: int, strong_len: int, basis_size: int
    ) -> None:
        _jit.ensure()
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
        i = _k_table_find(
            tp,
            self._strong,
            self._uweak,
            self._uidx,
            self._slot,
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
    "_slot_of",
    "_bloom_bit",
    "_bloom_test",
    "_k_table_index",
    "_strong_eq",
    "_table_match",
    "_k_table_find",
)
_jit.register(globals(), KERNELS)
