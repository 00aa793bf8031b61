"""The exceptions pydelta raises.

Every error derives from :class:`PydeltaError`, which is never raised
directly. Messages are one line that says what went wrong and, where there
is one, what to do about it; the CLI prints them as they are.

Caller mistakes (an invalid block size, a wrong argument type) also derive
from :class:`ValueError`; problems opening or writing files also derive
from :class:`OSError`.
"""

from __future__ import annotations

import os
from typing import Callable, NoReturn, Optional

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
    "PeerSilentError",
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


class PeerSilentError(ConnectionLostError):
    """The other end of a sync sent nothing for longer than the idle timeout."""


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


# -- C result codes ------------------------------------------------------------
# The pd_result enum of csrc/pydelta.h (both backends return these values;
# tests check that the C core's enum agrees).

NEED_INPUT = 1  #: used what it could; call again with more input
NEED_OUTPUT = 2  #: output buffer too full; drain it, call again
DONE = 3  #: the stream is complete
ERR_CORRUPT = -1  #: malformed input: bad opcode, varint, zero-length op
ERR_BOUNDS = -2  #: an offset or length reaches outside the basis
ERR_IO = -3  #: reading the basis failed or came up short
ERR_NOMEM = -4  #: out of memory
ERR_PARAM = -5  #: invalid parameter from the caller
ERR_SIGNATURE = -6  #: signature entries inconsistent with sizes


def raise_for_code(
    code: int,
    *,
    corrupt: Optional[Callable[[], PydeltaError]] = None,
    bounds: Optional[Callable[[], PydeltaError]] = None,
    io: Optional[Callable[[], PydeltaError]] = None,
    nomem: str = "out of memory in a pydelta kernel",
) -> NoReturn:
    """Raise the exception for a negative result code of a kernel.

    This is the one place where C result codes become exceptions: the
    callers say what the code means for the file at hand (``corrupt``: the
    input is malformed; ``bounds``: a copy reaches outside the basis;
    ``io``: reading the basis failed); out of memory is always MemoryError,
    and a code no caller expects is a bug (RuntimeError).
    """
    if code == ERR_NOMEM:
        raise MemoryError(nomem)
    if code == ERR_BOUNDS and bounds is not None:
        raise bounds()
    if code == ERR_IO and io is not None:
        raise io()
    if code in (ERR_CORRUPT, ERR_SIGNATURE, ERR_BOUNDS, ERR_IO) and corrupt is not None:
        raise corrupt()
    raise RuntimeError(f"pydelta kernel failed with result code {code}")


# -- message text ----------------------------------------------------------------


def os_reason(e: OSError) -> str:
    """Why an OSError happened, without its errno number."""
    return e.strerror or str(e)


def message(e: BaseException) -> str:
    """One line for an error: a pydelta error's own text, an OSError with its
    file name, anything else with its type."""
    if isinstance(e, PydeltaError):
        return str(e)
    if isinstance(e, OSError):
        where = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
        return where + os_reason(e)
    return f"{type(e).__name__}: {e}"
