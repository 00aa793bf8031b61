"""Content-defined chunking (csrc/cdc.c): the same cut points and digests,
byte for byte.

The rule (see csrc/cdc.c): gear hash h = (h << 1) + G[byte] over the bytes
of the open chunk from L = min - 63 on; a chunk of L bytes ends when
L == max, or min <= L < avg and the top b + 2 bits of h are zero, or
avg <= L < max and the top b - 2 bits are zero (avg = 2^b). G is
splitmix64 seeded with 0. Chunk digests use the BLAKE3 kernels of
:mod:`.blake3`. State between calls lives in small numpy arrays, so the
kernel stops and resumes anywhere, like the C job.

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from . import _jit
from ._jit import _MASK64, _U0, _U1, DONE, ERR_PARAM, NEED_INPUT, NEED_OUTPUT, Buffer, _ro
from .blake3 import _b3_final, _b3_reset, _b3_update, _new_state

np: Any = None  # numpy, bound by _jit.load()

#: Chunks reported per scan call at most.
CDC_CAP = 4096
# state st int64[3]: open chunk length, done flag, found flag
_S_LEN, _S_DONE, _S_FOUND = 0, 1, 2


def cdc_gear() -> List[int]:
    """The gear table: the first 256 outputs of splitmix64 seeded with 0."""
    out = []
    for i in range(256):
        z = ((i + 1) * 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


def cdc_check(min_size: int, avg_size: int, max_size: int) -> bool:
    """True if the sizes are valid for the chunker (as pd_cdc_check)."""
    return (
        64 <= min_size <= avg_size <= max_size <= 1 << 30
        and avg_size >= 256
        and avg_size & (avg_size - 1) == 0
    )


def _find_cut(gear, prm, masks, hv, st, a, i, end):
    """Look for the end of the open chunk in a[i:end]; returns the index
    after the last byte used; st[_S_FOUND] says whether a chunk ended."""
    h = hv[0]
    length = st[_S_LEN]
    lo = prm[0]
    avg = prm[1]
    hi = prm[2]
    found = 0
    skip_to = lo - 64
    if length < skip_to:
        k = skip_to - length
        if k > end - i:
            k = end - i
        i += k
        length += k
    while length + 1 < lo and i < end:
        h = (h << _U1) + gear[a[i]]
        i += 1
        length += 1
    ms = masks[0]
    ml = masks[1]
    while length + 1 < avg and i < end:
        h = (h << _U1) + gear[a[i]]
        i += 1
        length += 1
        if length >= lo and (h & ms) == _U0:
            found = 1
            break
    if found == 0 and length + 1 >= avg:
        while i < end:
            h = (h << _U1) + gear[a[i]]
            i += 1
            length += 1
            if length >= hi or (length >= lo and (h & ml) == _U0):
                found = 1
                break
    hv[0] = h
    st[_S_LEN] = length
    st[_S_FOUND] = found
    return i


def _emit(hv, st, hw, hb, hs, lens, digs, cnt):
    lens[cnt] = st[_S_LEN]
    _b3_final(hw, hb, hs, digs[cnt * 32 : cnt * 32 + 32])
    hv[0] = _U0
    st[_S_LEN] = 0
    _b3_reset(hw, hb, hs)


def _k_cdc_scan(gear, prm, masks, hv, st, hw, hb, hs, a, p, n, eof, lens, digs, cap):
    """Scan a[p:p+n]; returns (code, bytes used, chunks emitted)."""
    if st[_S_DONE] != 0:
        if n == 0:
            return DONE, 0, 0
        return ERR_PARAM, 0, 0
    i = p
    end = p + n
    cnt = 0
    while i < end:
        if cnt == cap:
            return NEED_OUTPUT, i - p, cnt
        q = _find_cut(gear, prm, masks, hv, st, a, i, end)
        if q > i:
            _b3_update(hw, hb, hs, a, i, q - i)
        i = q
        if st[_S_FOUND] == 0:
            break
        _emit(hv, st, hw, hb, hs, lens, digs, cnt)
        cnt += 1
    if eof == 0:
        return NEED_INPUT, i - p, cnt
    if st[_S_LEN] > 0:
        if cnt == cap:
            return NEED_OUTPUT, i - p, cnt
        _emit(hv, st, hw, hb, hs, lens, digs, cnt)
        cnt += 1
    st[_S_DONE] = 1
    return DONE, i - p, cnt


KERNELS = ("_find_cut", "_emit", "_k_cdc_scan")


def _top_bits(bits: int) -> int:
    return 0 if bits == 0 else (_MASK64 << (64 - bits)) & _MASK64


class Chunker:
    """A streaming content-defined chunker with per-chunk BLAKE3 (numba)."""

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if not cdc_check(min_size, avg_size, max_size):
            raise ValueError(f"invalid chunk sizes {min_size}/{avg_size}/{max_size}")
        _jit.ensure()
        b = avg_size.bit_length() - 1
        self._gear = np.array(cdc_gear(), dtype=np.uint64)
        self._prm = np.array([min_size, avg_size, max_size], dtype=np.int64)
        self._masks = np.array([_top_bits(b + 2), _top_bits(b - 2)], dtype=np.uint64)
        self._hv = np.zeros(1, np.uint64)
        self._st = np.zeros(3, np.int64)
        self._hw, self._hb, self._hs = _new_state()
        self._lens = np.zeros(CDC_CAP, np.int64)
        self._digs = np.zeros(CDC_CAP * 32, np.uint8)

    def reset(self) -> None:
        """Start a new stream."""
        self._hv[0] = 0
        self._st[:] = 0
        self._hw, self._hb, self._hs = _new_state()

    def scan(
        self, buf: Buffer, off: int, length: int, eof: bool
    ) -> Tuple[int, int, List[int], bytes]:
        """Scan buf[off:off+length]: (code, bytes used, chunk lengths, their digests)."""
        a = _ro(buf)
        if off < 0 or length < 0 or off + length > a.size:
            raise ValueError("scan range outside the buffer")
        rc, used, cnt = _k_cdc_scan(
            self._gear,
            self._prm,
            self._masks,
            self._hv,
            self._st,
            self._hw,
            self._hb,
            self._hs,
            a,
            np.int64(off),
            np.int64(length),
            np.int64(1 if eof else 0),
            self._lens,
            self._digs,
            np.int64(CDC_CAP),
        )
        lens = [int(v) for v in self._lens[:cnt]]
        return int(rc), int(used), lens, self._digs[: 32 * cnt].tobytes()


_jit.register(globals(), KERNELS)
