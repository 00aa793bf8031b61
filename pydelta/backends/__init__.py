"""Backend choice: which implementation of the kernels runs.

``PYDELTA_BACKEND`` selects it: ``c`` (the cffi-built C core, the default)
or ``numba`` (the same kernels in numba, ``pip install 'pydelta-sync[numba]'``).
Every backend writes byte-identical signatures and deltas. The drivers
(signature.py, delta.py, patch.py) call only what a backend module exports:
Blake3, blake3_digest, xxh3_128, weak, weak_rolling, sig_blocks, SigTable,
DeltaJob, PatchJob, the result codes and the kinds of strong sum (STRONG_*); the model store also uses Chunker (and
cdc_gear, cdc_check): content-defined chunking with per-chunk BLAKE3. :data:`features` says what each backend
supports beyond that (librsync's formats need the C core:
:func:`rdiff_kernels`).

If ``PYDELTA_BACKEND`` is not set and the C core cannot be imported (not
built, e.g. installed without a C compiler), the numba backend is used if
numba is installed, and a warning says so once, through the ``pydelta``
logger (the CLI shows it on stderr unless ``-q``). An explicit
``PYDELTA_BACKEND=c`` never falls back. numba itself is imported only when
its kernels are first used.

Nothing here fails at import: with no usable backend (neither the C core
nor numba, or an unknown ``PYDELTA_BACKEND``), :data:`backend` is a
stand-in whose first use raises :class:`~pydelta.errors.UsageError` with one
line saying what to install, so ``pydelta --version`` and ``--help`` still
work and every other command prints that line.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Dict, FrozenSet, NoReturn, Optional, Protocol, Tuple, Union

from ..errors import UsageError

KNOWN = ("c", "numba")

#: What each backend supports: "native" (pydelta's formats), "rdiff"
#: (librsync's formats, C kernels only), "threads" (kernels release the GIL),
#: "cdc" (the model store's content-defined chunker).
features: Dict[str, FrozenSet[str]] = {
    "c": frozenset({"native", "rdiff", "threads", "cdc"}),
    "numba": frozenset({"native", "threads", "cdc"}),
}

#: What the hashing functions accept.
Buffer = Union[bytes, bytearray, memoryview]

#: How to get each backend.
INSTALL_C = (
    "install a C compiler, then pip install --force-reinstall --no-cache-dir pydelta-sync "
    "(in a clone: pip install -e .)"
)
INSTALL_NUMBA = "pip install 'pydelta-sync[numba]'"


class Unavailable(ModuleType):
    """Stands in for the backend when none can be loaded: any use raises
    one :class:`UsageError` that says why and what to install."""

    NAME = "none"

    def __init__(self, why: str) -> None:
        super().__init__("pydelta.backends.unavailable")
        self.why = why

    def __getattr__(self, attr: str) -> NoReturn:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise UsageError(self.why)


class Announced(ModuleType):
    """The numba backend standing in for the missing C core: the first use
    of a kernel logs the notice that says so (once), then this module holds
    the real one's names, so later lookups cost nothing extra. Deferring the
    notice to the first use lets the CLI set up ``-q`` first."""

    def __init__(self, real: ModuleType, notice: str) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.NAME = real.NAME
        self.notice = notice
        self._real = real

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)
        real = self.__dict__["_real"]
        notice = self.__dict__.pop("notice", None)
        if notice is not None:
            # once: a later lookup of a name the real module lacks (a C-only
            # kernel probed with hasattr) comes back here and says nothing
            self.__dict__.update(vars(real))
            import logging  # here, not at import: ``pydelta --version`` skips logging's import

            logging.getLogger("pydelta").warning(notice)
        return getattr(real, attr)


def _numba_missing() -> Optional[str]:
    """Why the numba backend cannot run here, or None (without importing numba)."""
    from importlib.util import find_spec

    for mod in ("numba", "numpy"):
        try:
            spec = find_spec(mod)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return f"{mod} is not installed"
    return None


def _load_c() -> Tuple[Optional[ModuleType], str]:
    try:
        from . import c
    except ImportError as exc:
        return None, str(exc)
    return c, ""


def _load_numba() -> ModuleType:
    from . import numba

    return numba


def _select(requested: str) -> Tuple[ModuleType, Optional[str]]:
    """(backend module, fallback notice or None) for PYDELTA_BACKEND=requested."""
    if requested == "c":
        module, why = _load_c()
        if module is None:
            return Unavailable(
                f"PYDELTA_BACKEND=c but pydelta's C core is not available ({why}): {INSTALL_C}"
            ), None
        return module, None
    if requested == "numba":
        why = _numba_missing()
        if why is not None:
            return Unavailable(f"PYDELTA_BACKEND=numba needs numba ({why}): {INSTALL_NUMBA}"), None
        return _load_numba(), None
    if requested:
        return Unavailable(
            f"unknown PYDELTA_BACKEND {requested!r}: use one of {', '.join(KNOWN)} "
            "(or leave it unset)"
        ), None
    module, why_c = _load_c()
    if module is not None:
        return module, None
    why_numba = _numba_missing()
    if why_numba is not None:
        return Unavailable(
            f"no backend: pydelta's C core is not built ({why_c}) and the numba backend "
            f"cannot stand in ({why_numba}): {INSTALL_NUMBA}, or {INSTALL_C}"
        ), None
    return _load_numba(), (
        f"C core not available ({why_c}); using the numba backend "
        "(slower start: its kernels compile on first use)"
    )


def rdiff_kernels() -> ModuleType:
    """The librsync kernels (:mod:`.rdiff`), imported on first use: pydelta
    itself also runs on the numba backend, without the C core."""
    try:
        from . import rdiff
    except ImportError as exc:
        raise UsageError(
            f"rdiff (librsync) files need pydelta's C core, which is not available ({exc}): "
            f"{INSTALL_C}"
        ) from None
    return rdiff


def simd() -> str:
    """The SIMD kernels the C core uses, e.g. ``"blake3 avx2, blake2b avx2"``,
    or ``""`` when the backend is not the C core."""
    if getattr(backend, "NAME", "none") != "c":
        return ""
    from .._core import ffi, lib

    parts = [f"blake3 {ffi.string(lib.pd_blake3_impl()).decode()}"]
    impl = getattr(lib, "pd_rs_impl", None)
    if impl is not None:
        parts.append(f"blake2b {ffi.string(impl()).decode()}")
    return ", ".join(parts)


#: PYDELTA_BACKEND as given (lowercase), "" if unset.
requested: str = os.environ.get("PYDELTA_BACKEND", "").strip().lower()
_module, _notice = _select(requested)
#: The backend module in use (:mod:`.c` or :mod:`.numba`), or a stand-in:
#: :class:`Unavailable` (``NAME == "none"``) or :class:`Announced`.
backend: ModuleType = _module if _notice is None else Announced(_module, _notice)
#: Why there is no backend (the one line every command prints), or "".
unavailable: str = _module.why if isinstance(_module, Unavailable) else ""
#: Why the backend is not the default one (the fallback notice), or "".
fallback: str = _notice or ""


# -- the public hasher (pydelta.blake3), whatever the backend ------------------------


class Hasher(Protocol):
    """A BLAKE3 state with hashlib's shape, as :func:`blake3` returns."""

    name: str
    digest_size: int
    block_size: int

    def update(self, data: Buffer, /) -> None:
        """Hash more bytes."""

    def digest(self, length: int = 32) -> bytes:
        """The digest of everything so far (any length: BLAKE3 is an XOF)."""

    def hexdigest(self, length: int = 32) -> str:
        """:meth:`digest` as lowercase hex."""

    def copy(self) -> "Hasher":
        """An independent copy of the current state."""


def blake3(data: Buffer = b"", /) -> Hasher:
    """A new incremental BLAKE3 hasher, hashlib-style, on the backend in use.

    Example:
        >>> h = blake3(b"abc")
        >>> h.update(b"def")
        >>> h.hexdigest()[:16]
        'b34b56076712fd7f'
    """
    hasher: Hasher = backend.Blake3(data)
    return hasher


def blake3_digest(data: Buffer, length: int = 32) -> bytes:
    """One-shot BLAKE3 of data (``length`` bytes of output, default 32).

    Example:
        >>> blake3_digest(b"abc").hex()[:16]
        '6437b3ac38465133'
    """
    digest: bytes = backend.blake3_digest(data, length)
    return digest
