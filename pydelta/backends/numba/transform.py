"""The byte grouping of compressed literals (csrc/transform.c).

No JIT here: numpy's strided copies do the same job at memory speed.
"""

from __future__ import annotations

from typing import Any

from ._jit import Buffer


def group16(data: Buffer) -> bytearray:
    """The bytes of ``data`` at even offsets, then those at odd offsets."""
    import numpy as np

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
