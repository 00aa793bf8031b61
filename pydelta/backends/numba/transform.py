"""The byte grouping of compressed literals and the estimates that choose
it (csrc/transform.c).

The grouping itself needs no JIT: numpy's strided copies do the same job at
memory speed. The estimates are a kernel, integer for integer the C one.
"""

from __future__ import annotations

from typing import Any, Tuple

from . import _jit
from ._jit import Buffer, _ro

np: Any = None  # numpy, bound by _jit.load()

#: The sample counted (PD_LIT_COSTS_*): the first LIT_COSTS_LINE bytes of
#: every LIT_COSTS_STRIDE lines, within the first LIT_COSTS_MAX bytes.
LIT_COSTS_MAX = 1 << 30
LIT_COSTS_LINE = 64
LIT_COSTS_STRIDE = 4


def _log2_q16(x):
    """floor(log2(x) * 2**16) by repeated squaring of the mantissa."""
    if x == 0:
        return np.uint64(0)
    k = 0
    y = x
    while y > np.uint64(1):
        y = y >> np.uint64(1)
        k += 1
    if k >= 31:
        m = x >> np.uint64(k - 31)
    else:
        m = x << np.uint64(31 - k)
    r = np.uint64(k) << np.uint64(16)
    top = np.uint64(1) << np.uint64(32)
    for b in range(15, -1, -1):
        m = (m * m) >> np.uint64(31)
        if m >= top:
            m = m >> np.uint64(1)
            r = r | (np.uint64(1) << np.uint64(b))
    return r


def _order0_cost(counts, total):
    s = np.uint64(0)
    for c in range(256):
        s += counts[c] * _log2_q16(counts[c])
    t = total * _log2_q16(total)
    if t > s:
        return t - s
    return np.uint64(0)


def _k_lit_costs(a, n, out):
    ev = np.zeros(256, dtype=np.uint64)
    od = np.zeros(256, dtype=np.uint64)
    one = np.uint64(1)
    for at in range(0, n, LIT_COSTS_LINE * LIT_COSTS_STRIDE):
        end = min(n, at + LIT_COSTS_LINE)
        for i in range(at, end):
            if i & 1:
                od[a[i]] += one
            else:
                ev[a[i]] += one
    ne = np.uint64(0)
    no = np.uint64(0)
    for c in range(256):
        ne += ev[c]
        no += od[c]
    al = ev + od
    out[0] = _order0_cost(al, ne + no)
    out[1] = _order0_cost(ev, ne) + _order0_cost(od, no)


_jit.register(globals(), ("_log2_q16", "_order0_cost", "_k_lit_costs"))


def lit_costs(data: Buffer) -> Tuple[int, int]:
    """Order-0 entropy estimates (bits * 2**16) of ``data`` as it is and
    grouped as transform 2 does: how a literal's transform is chosen."""
    _jit.ensure()
    a = _ro(data)
    out = np.zeros(2, dtype=np.uint64)
    _k_lit_costs(a, min(a.size, LIT_COSTS_MAX), out)
    return int(out[0]), int(out[1])


def group16(data: Buffer) -> bytearray:
    """The bytes of ``data`` at even offsets, then those at odd offsets."""
    import numpy as np  # (the module's np is bound only once kernels compile)

    src = np.frombuffer(data, dtype=np.uint8)
    n = src.size
    out = bytearray(n)
    if n:
        dst = np.frombuffer(out, dtype=np.uint8)
        half = (n + 1) // 2
        dst[:half] = src[0::2]
        dst[half:] = src[1::2]
    return out


def ungroup16(grouped: Buffer, out: Any, start: int = 0) -> None:
    """Undo :func:`group16` into ``out[start:start + len(grouped)]``."""
    import numpy as np

    src = np.frombuffer(grouped, dtype=np.uint8)
    n = src.size
    dst = np.frombuffer(out, dtype=np.uint8)
    if start < 0 or start + n > dst.size:
        raise ValueError("ungroup16: the output buffer is too short")
    if n:
        half = (n + 1) // 2
        view = dst[start : start + n]
        view[0::2] = src[:half]
        view[1::2] = src[half:]
