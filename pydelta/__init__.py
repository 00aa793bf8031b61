"""pydelta: rsync-style binary deltas for very large files.

The receiver makes a small *signature* of its old file; the sender scans
the new file against it and writes a *delta* of COPY and LITERAL
instructions; the receiver *patches* old + delta into the new file,
verified against a BLAKE3 digest before it replaces anything.

Example:
    >>> import pydelta
    >>> pydelta.signature("old.bin", "old.sig")      # on the receiver  # doctest: +SKIP
    >>> pydelta.delta("old.sig", "new.bin", "new.delta")  # on the sender  # doctest: +SKIP
    >>> pydelta.patch("old.bin", "new.delta", "old.bin")  # on the receiver  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict

from ._version import __version__ as __version__

# The public surface only: everything is defined in the modules below, and
# nothing inside the package imports this module back. Each name is imported
# on first use (module __getattr__, PEP 562), so ``import pydelta`` - and so
# every ``pydelta`` command and the far end of a sync - starts in a few
# milliseconds instead of loading the kernels, the sync layer and the model
# store up front.
_WHERE: Dict[str, str] = {
    "Hasher": "backends",
    "blake3": "backends",
    "blake3_digest": "backends",
    "delta": "delta",
    "iter_delta": "delta",
    "default_block_len": "formats.native",
    "RdiffSignatureInfo": "formats.rdiff",
    "info": "info",
    "Patcher": "patch",
    "patch": "patch",
    "DeltaStats": "results",
    "FileInfo": "results",
    "PatchResult": "results",
    "SignatureInfo": "results",
    "RdiffSignature": "signature",
    "Signature": "signature",
    "iter_signature": "signature",
    "load_signature": "signature",
    "signature": "signature",
    "Progress": "store",
    "PullReport": "store",
    "PushReport": "store",
    "StoreListing": "store",
    "VersionInfo": "store",
    "ls": "store",
    "pull": "store",
    "push": "store",
    "SyncClient": "sync",
    "SyncedFile": "sync",
    "SyncReport": "sync",
    "SyncStatus": "sync",
    "serve": "sync",
    "sync": "sync",
}
_ERRORS = (
    "ConnectionLostError",
    "CorruptDeltaError",
    "CorruptError",
    "CorruptSignatureError",
    "CorruptStoreError",
    "DiskFullError",
    "FileAccessError",
    "FormatError",
    "NotADeltaError",
    "NotASignatureError",
    "ProtocolError",
    "PydeltaError",
    "RemoteCommandError",
    "RemoteError",
    "StoreAccessError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnreachableError",
    "SyncError",
    "TagConflictError",
    "UnsupportedVersionError",
    "UnverifiedWarning",
    "UsageError",
    "VerificationError",
    "VersionNotFoundError",
    "WrongBasisError",
)
_WHERE.update(dict.fromkeys(_ERRORS, "errors"))


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it (PEP 562)."""
    from importlib import import_module

    if name in _WHERE:
        value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    elif name == "backend":
        #: Name of the kernel backend in use: "c" or "numba" (PYDELTA_BACKEND),
        #: or "none" when neither can run (every call then raises UsageError).
        value = import_module(f"{__name__}.backends").backend.NAME
    elif name == "_backend_module":  # the kernel module itself (tests read its limits)
        value = import_module(f"{__name__}.backends").backend
    elif name == "format":  # compatibility alias: pydelta.format
        value = import_module(f"{__name__}.formats.native")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_WHERE) | {"backend", "format"})


#: Functions named like the submodule that defines them: importing the
#: submodule (``pydelta.sync.client``, say) must not turn ``pydelta.sync``
#: from the function into the module, as the import system's
#: ``setattr(parent, child, module)`` would.
_SHADOWED = frozenset({"signature", "delta", "patch", "info", "sync"})


class _Package(ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, ModuleType):
            return  # the function is looked up on first use (__getattr__)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from .backends import Hasher, blake3, blake3_digest
    from .delta import delta, iter_delta
    from .errors import (
        ConnectionLostError,
        CorruptDeltaError,
        CorruptError,
        CorruptSignatureError,
        CorruptStoreError,
        DiskFullError,
        FileAccessError,
        FormatError,
        NotADeltaError,
        NotASignatureError,
        ProtocolError,
        PydeltaError,
        RemoteCommandError,
        RemoteError,
        StoreAccessError,
        StoreError,
        StoreNotFoundError,
        StoreUnreachableError,
        SyncError,
        TagConflictError,
        UnsupportedVersionError,
        UnverifiedWarning,
        UsageError,
        VerificationError,
        VersionNotFoundError,
        WrongBasisError,
    )
    from .formats import native as format  # noqa: F401
    from .formats.native import default_block_len
    from .formats.rdiff import RdiffSignatureInfo
    from .info import info
    from .patch import Patcher, patch
    from .results import DeltaStats, FileInfo, PatchResult, SignatureInfo
    from .signature import RdiffSignature, Signature, iter_signature, load_signature, signature
    from .store import Progress, PullReport, PushReport, StoreListing, VersionInfo, ls, pull, push
    from .sync import SyncClient, SyncedFile, SyncReport, SyncStatus, serve, sync

    backend: str

__all__ = [
    "signature",
    "iter_signature",
    "Signature",
    "load_signature",
    "SignatureInfo",
    "RdiffSignature",
    "RdiffSignatureInfo",
    "delta",
    "iter_delta",
    "DeltaStats",
    "patch",
    "Patcher",
    "PatchResult",
    "info",
    "FileInfo",
    "sync",
    "SyncReport",
    "SyncedFile",
    "SyncStatus",
    "SyncClient",
    "serve",
    "default_block_len",
    "blake3",
    "Hasher",
    "blake3_digest",
    "backend",
    "PydeltaError",
    "UsageError",
    "FileAccessError",
    "FormatError",
    "NotASignatureError",
    "NotADeltaError",
    "UnsupportedVersionError",
    "CorruptError",
    "CorruptSignatureError",
    "CorruptDeltaError",
    "WrongBasisError",
    "VerificationError",
    "UnverifiedWarning",
    "SyncError",
    "RemoteError",
    "RemoteCommandError",
    "ConnectionLostError",
    "ProtocolError",
    "push",
    "pull",
    "ls",
    "Progress",
    "PushReport",
    "PullReport",
    "StoreListing",
    "VersionInfo",
    "StoreError",
    "StoreNotFoundError",
    "VersionNotFoundError",
    "StoreAccessError",
    "StoreUnreachableError",
    "CorruptStoreError",
    "TagConflictError",
    "DiskFullError",
]
