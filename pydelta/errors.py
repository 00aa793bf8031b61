"""The exceptions pydelta raises.

Every error derives from :class:`PydeltaError`, which is never raised
directly. Messages are one line that says what went wrong and, where there
is one, what to do about it; the CLI prints them as they are.

Caller mistakes (an invalid block size, a wrong argument type) also derive
from :class:`ValueError`; problems opening or writing files also derive
from :class:`OSError`.
"""

from __future__ import annotations

__all__ = [
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
]


class PydeltaError(Exception):
    """Base class of all pydelta errors (never raised directly)."""


class UsageError(PydeltaError, ValueError):
    """An argument is invalid, e.g. a block size out of range."""


class FileAccessError(PydeltaError, OSError):
    """An input could not be opened or read, or an output could not be written."""


class FormatError(PydeltaError):
    """A file is not of the kind expected (e.g. a data file given as a signature)."""


class NotASignatureError(FormatError):
    """The file given as a signature is not a pydelta signature."""


class NotADeltaError(FormatError):
    """The file given as a delta is not a pydelta delta."""


class UnsupportedVersionError(FormatError):
    """The file was written by a newer pydelta with a format this one cannot read."""


class CorruptError(PydeltaError):
    """A signature or delta is truncated or damaged."""


class CorruptSignatureError(CorruptError):
    """The signature is truncated or damaged."""


class CorruptDeltaError(CorruptError):
    """The delta is truncated or damaged."""


class WrongBasisError(PydeltaError):
    """The old file is not the one the signature (and so the delta) was made from."""


class VerificationError(PydeltaError):
    """The patched result does not match the size or digest the delta promises."""


class UnverifiedWarning(UserWarning):
    """A result was written without verification: an rdiff (librsync) delta carries no checksum."""


class SyncError(PydeltaError):
    """A sync did not complete: some files failed (see ``report``), or the
    connection failed. Files that were not updated keep their old content."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        #: the :class:`~pydelta.SyncReport` of what was done, when there is one
        self.report = report


class RemoteError(SyncError):
    """The other end of a sync reported that an operation failed."""


class RemoteCommandError(SyncError):
    """The remote end could not be started: ssh failed, or pydelta is missing there."""


class ConnectionLostError(SyncError):
    """The connection of a sync broke (ssh died, the network dropped)."""


class ProtocolError(SyncError):
    """The other end of a sync sent something that is not the sync protocol."""


# -- model store (pydelta.store: push, pull, ls) ------------------------------


class StoreError(PydeltaError):
    """A model store operation failed (push, pull, ls); never raised directly.

    Whatever the failure, a pull leaves the files at its destination as they
    were (half-built files stay beside them, for the rerun) and an
    interrupted push leaves no visible version."""

    def __init__(self, message: str, report: object = None) -> None:
        super().__init__(message)
        #: the push or pull report so far, when there is one
        self.report = report


class StoreNotFoundError(StoreError):
    """The store (directory, bucket) or an object in it does not exist."""


class VersionNotFoundError(StoreNotFoundError):
    """The tag or version asked for is not in the store."""


class StoreAccessError(StoreError):
    """The store refused us: no credentials, or access denied."""


class StoreUnreachableError(StoreError):
    """The store could not be reached, or kept failing (5xx, dropped connections)
    after every retry."""


class CorruptStoreError(StoreError):
    """An object in the store is malformed or holds the wrong bytes (a manifest,
    pack index, tag, or a chunk that fails its BLAKE3 check)."""


class TagConflictError(StoreError):
    """A tag moved while we were about to move it (another push won the race)."""


class DiskFullError(FileAccessError):
    """The destination ran out of space."""


__all__ += [
    "StoreError",
    "StoreNotFoundError",
    "VersionNotFoundError",
    "StoreAccessError",
    "StoreUnreachableError",
    "CorruptStoreError",
    "TagConflictError",
    "DiskFullError",
]


# -- fleet delivery (issue 12: locks, timeouts, read-only stores) -------------


class PullTimeoutError(StoreError):
    """A pull (or its wait for another pull into the same place) ran past its
    ``timeout``; what arrived is kept for the rerun."""


class ReadOnlyStoreError(StoreError):
    """A write was asked of a store that can only be read (an HTTP(S) store)."""


__all__ += ["PullTimeoutError", "ReadOnlyStoreError"]
