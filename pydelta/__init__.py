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

from ._version import __version__ as __version__
from .backends import Hasher, blake3, blake3_digest
from .backends import backend as _backend_module
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
from .formats import native as format  # noqa: F401 - compatibility alias: pydelta.format
from .formats.native import default_block_len
from .formats.rdiff import RdiffSignatureInfo
from .info import info
from .patch import Patcher, patch
from .results import DeltaStats, FileInfo, PatchResult, SignatureInfo
from .signature import RdiffSignature, Signature, iter_signature, load_signature, signature
from .store import Progress, PullReport, PushReport, StoreListing, VersionInfo, ls, pull, push
from .sync import SyncClient, SyncedFile, SyncReport, SyncStatus, serve, sync

# The public surface only: everything is defined in the modules above, and
# nothing inside the package imports this module back.

#: Name of the kernel backend in use: "c" or "numba" (PYDELTA_BACKEND), or
#: "none" when neither can run (every call then raises UsageError saying why).
backend: str = _backend_module.NAME

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
