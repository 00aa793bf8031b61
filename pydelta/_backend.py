"""Backend choice.

``PYDELTA_BACKEND`` selects the implementation of the kernels: ``c`` (the
cffi-built C core, the default). Every backend writes byte-identical
signatures and deltas. The drivers (signature.py, delta.py, patch.py) call
only what a backend module exports: Blake3, blake3_digest, weak,
weak_rolling, sig_blocks, SigTable, DeltaJob, PatchJob and the result codes.
"""

from __future__ import annotations

import os
from types import ModuleType

from .errors import UsageError

KNOWN = ("c",)


def _load(name: str) -> ModuleType:
    if name == "c":
        from . import _c

        return _c
    raise UsageError(f"unknown PYDELTA_BACKEND {name!r}: use one of {', '.join(KNOWN)}")


backend: ModuleType = _load(os.environ.get("PYDELTA_BACKEND", "c").strip().lower() or "c")
