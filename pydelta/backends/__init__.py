"""Backend choice: which implementation of the kernels runs.

``PYDELTA_BACKEND`` selects it: ``c`` (the cffi-built C core, the default)
or ``numba`` (the same kernels in numba, ``pip install 'pydelta[numba]'``).
Every backend writes byte-identical signatures and deltas. The drivers
(signature.py, delta.py, patch.py) call only what a backend module exports:
Blake3, blake3_digest, weak, weak_rolling, sig_blocks, SigTable, DeltaJob,
PatchJob and the result codes; the model store also uses Chunker (and
cdc_gear, cdc_check): content-defined chunking with per-chunk BLAKE3. :data:`features` says what each backend
supports beyond that (librsync's formats need the C core:
:func:`rdiff_kernels`).

If ``PYDELTA_BACKEND`` is not set and the C core cannot be imported (not
built), the numba backend is used if numba is installed, with a one-line
notice on stderr; an explicit ``PYDELTA_BACKEND=c`` never falls back.
numba itself is imported only when its kernels are first used.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Dict, FrozenSet, Optional

from ..errors import UsageError

KNOWN = ("c", "numba")

#: What each backend supports: "native" (pydelta's formats), "rdiff"
#: (librsync's formats, C kernels only), "threads" (kernels release the GIL),
#: "cdc" (the model store's content-defined chunker).
features: Dict[str, FrozenSet[str]] = {
    "c": frozenset({"native", "rdiff", "threads", "cdc"}),
    "numba": frozenset({"native", "threads", "cdc"}),
}


def _numba_missing() -> Optional[str]:
    """Why the numba backend cannot run here, or None (without importing numba)."""
    from importlib.util import find_spec

    for mod in ("numba", "numpy"):
        if find_spec(mod) is None:
            return f"{mod} is not installed"
    return None


def _load(name: str, explicit: bool = True) -> ModuleType:
    if name == "c":
        try:
            from . import c
        except ImportError as exc:
            why = _numba_missing()
            if explicit or why is not None:
                hint = "" if explicit else f"; the numba backend cannot stand in: {why}"
                raise ImportError(
                    f"pydelta: C core not available ({exc}){hint}: build it "
                    "(pip install -e .) or pip install 'pydelta[numba]'"
                ) from exc
            print(
                f"pydelta: C core not available ({exc}); using the numba backend", file=sys.stderr
            )
            return _load("numba")
        return c
    if name == "numba":
        why = _numba_missing()
        if why is not None:
            raise UsageError(
                f"PYDELTA_BACKEND=numba needs numba ({why}): pip install 'pydelta[numba]'"
            )
        from . import numba

        return numba
    raise UsageError(f"unknown PYDELTA_BACKEND {name!r}: use one of {', '.join(KNOWN)}")


def rdiff_kernels() -> ModuleType:
    """The librsync kernels (:mod:`.rdiff`), imported on first use: pydelta
    itself also runs on the numba backend, without the C core."""
    try:
        from . import rdiff
    except ImportError as exc:
        raise UsageError(
            f"rdiff (librsync) files need pydelta's C core, which is not available ({exc}): "
            "build it (pip install -e .)"
        ) from None
    return rdiff


_requested = os.environ.get("PYDELTA_BACKEND", "").strip().lower()
#: The backend module in use (:mod:`.c` or :mod:`.numba`).
backend: ModuleType = _load(_requested or "c", explicit=bool(_requested))
