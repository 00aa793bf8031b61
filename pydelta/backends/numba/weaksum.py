"""The weak rolling sum (csrc/weaksum.c, internal.h).

See :mod:`pydelta.backends.numba._jit` for how the kernels are compiled and
the integer rules they follow.
"""

from __future__ import annotations

from typing import Any

from . import _jit
from ._jit import (
    _MASK64,
    _U0,
    _UM,
    _UM2,
    _UM3,
    _UM4,
    _WEAK_M,
    Buffer,
    _ro,
)

np: Any = None  # numpy, bound by _jit.load()


# ---------------------------------------------------------------------------
# Weak sum (weaksum.c, internal.h).


def _weak(a, p, n):
    """pd_weak: Horner's rule, four bytes a step."""
    b = a[p : p + n]  # indexes from 0 up: no negative-index checks
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


def weak(data: Buffer) -> int:
    """The weak sum of one window."""
    _jit.ensure()
    a = _ro(data)
    return int(_k_weak(a, 0, a.size))


def weak_rolling(data: Buffer, window: int) -> list:
    """Weak sums of every window of ``window`` bytes, computed by rolling."""
    _jit.ensure()
    a = _ro(data)
    n = a.size
    if window <= 0 or n < window:
        return []
    out = np.empty(n - window + 1, np.uint64)
    _k_weak_rolling(a, 0, n, window, _out_table(window), out)
    return out.tolist()


#: The functions _jit.load() compiles with numba.njit.
KERNELS = (
    "_weak",
    "_k_weak",
    "_k_weak_rolling",
)
_jit.register(globals(), KERNELS)
