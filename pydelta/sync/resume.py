"""Resuming an interrupted update of an existing file (feature ``resume``).

A first copy that breaks off keeps what it wrote as ``.NAME.pydelta-partial``
and the next run signs that (see :class:`.transfer.Incoming`). An *update*
that breaks off has two useful things: the old file, and the first K bytes
of the new one it had already written. It keeps those as the partial file
too, with a sidecar ``.NAME.pydelta-partial.json`` saying what it is a
prefix of (the sender's size and modification time) and how far it got.

The next run (both ends agreed ``resume``) makes the receiving end
*offer* the prefix: its length K and the BLAKE3 of its K bytes as they are
on disk now. The sending end hashes the first K bytes of its file: only if
they match does it accept, and then it sends the delta of the rest of its
file (from K on) against the old file's signature as usual. The receiver
keeps the partial file as the output, truncated to K, and patches the rest
after it. Both halves are verified: the prefix by the sender's comparison,
the rest by the delta's own END digest; only then is the file renamed over
the target. A sidecar that does not match the announced file, a partial
file that is not a regular file, or an offer the sender declines, drops the
partial file and the update runs in full.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import Any, BinaryIO, Callable, Dict, Optional, Tuple

from .._io import AtomicFile
from ..backends import backend
from ..errors import FileAccessError, ProtocolError, VerificationError
from .wire import Channel

#: The feature name agreed in hello (messages.FEATURES).
FEATURE = "resume"
#: A prefix shorter than this is not worth an offer (nor keeping).
MIN_PREFIX = 64 << 10
#: Most bytes of a sidecar read.
MAX_SIDECAR = 4096
#: Bytes hashed per read of a prefix.
HASH_STEP = 8 << 20

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def hash_prefix(fd: int, length: int, h: Any = None, start: int = 0) -> Optional[bytes]:
    """BLAKE3 of bytes ``start`` to ``length`` of ``fd`` (None if it is shorter),
    continuing hasher ``h`` if given."""
    h = backend.Blake3() if h is None else h
    pos = start
    while pos < length:
        data = os.pread(fd, min(HASH_STEP, length - pos), pos)
        if not data:
            return None
        h.update(data)
        pos += len(data)
    return h.digest()


class _Adopted(AtomicFile):
    """An AtomicFile whose temporary file is the partial file, already open
    and positioned after its verified prefix. Before it replaces the target
    the whole file is hashed against the digest the sender gave for all of
    its file: the prefix and the rest were each verified, and this checks
    they were put together right."""

    def __init__(
        self, fd: int, name: str, target: str, fsync: bool, dir_fd: int, whole: bytes
    ) -> None:
        self._adopt = (fd, name)
        self._whole = whole
        super().__init__(target, fsync=fsync, dir_fd=dir_fd)

    def _create(self, what: str) -> Tuple[int, str]:
        return self._adopt

    def commit(self) -> None:
        fd = self.fh.fileno()
        if hash_prefix(fd, os.fstat(fd).st_size) != self._whole:
            self.abort()  # (the partial file goes: it cannot be trusted)
            raise VerificationError(
                f"the resumed {self.name} does not match the digest of the whole file: dropped"
            )
        super().commit()


class UpdateResume:
    """The receiving end's partial result of an update, beside its target.

    Args:
        dir_fd: the target's directory (open; names below are in it).
        base: the target's name in it.
    """

    def __init__(self, dir_fd: int, base: str) -> None:
        self._dir = dir_fd
        self.partial = "." + base + ".pydelta-partial"
        self.sidecar = self.partial + ".json"
        self._fd = -1
        self._offered = 0
        self._whole = b""  # the sender's digest of all of its file
        self.offset = 0  #: bytes of the result taken from the partial file (0: none)

    # -- the next run --------------------------------------------------------------
    def offer(self, size: Optional[int], mtime_ns: Optional[int]) -> Optional[Dict[str, Any]]:
        """The offer to send (``offset``, ``digest``), or None (a stale partial is dropped)."""
        if size is None:
            return None
        info = self._read_sidecar()
        if info is None:
            return None
        if info.get("size") != size or info.get("mtime_ns") != mtime_ns:
            self.drop()  # a prefix of another version of the file
            return None
        try:
            fd = os.open(self.partial, os.O_RDWR | _O_NOFOLLOW, dir_fd=self._dir)
        except OSError:
            self.drop()
            return None
        self._fd = fd
        st = os.fstat(fd)
        have = info.get("have")
        k = min(have, st.st_size) if isinstance(have, int) and not isinstance(have, bool) else 0
        if not stat.S_ISREG(st.st_mode) or not MIN_PREFIX <= k <= size:
            self.drop()
            return None
        digest = hash_prefix(fd, k)
        if digest is None:
            self.drop()
            return None
        self._offered = k
        return {"offset": k, "digest": digest.hex()}

    def _read_sidecar(self) -> Optional[Dict[str, Any]]:
        try:
            fd = os.open(self.sidecar, os.O_RDONLY | _O_NOFOLLOW, dir_fd=self._dir)
        except OSError:
            return None
        try:
            raw = os.read(fd, MAX_SIDECAR + 1)
        except OSError:
            raw = b""
        finally:
            os.close(fd)
        try:
            info = json.loads(raw) if len(raw) <= MAX_SIDECAR else None
        except (ValueError, RecursionError):  # (nested deeper than the parser goes)
            info = None
        if not isinstance(info, dict) or info.get("format") != "pydelta-partial":
            self.drop()
            return None
        return info

    def accepted(self, answer: Any) -> None:
        """The sender's answer to the offer (``{"resume": bool, "digest": hex
        of its whole file}``): resume from it, or drop it."""
        whole = answer.get("digest") if isinstance(answer, dict) else None
        if answer.get("resume") is True and self._offered and _is_digest(whole):
            self.offset = self._offered
            self._whole = bytes.fromhex(whole)
        else:
            self.drop()

    def output(self, target: str, fsync: bool) -> AtomicFile:
        """The output: the partial file, cut to the prefix, written on from there.

        It is first renamed to a name of its own (as a new temporary file
        has), so another run syncing the same target at the same time can
        neither cut it (under this run's mapped read-back) nor put another
        file under the name renamed over the target; that run finds no
        partial file, or fails this file if it had offered this one too.
        """
        fd, self._fd = self._fd, -1
        try:
            own = self._take(fd, target)
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, self.offset)
        os.lseek(fd, self.offset, os.SEEK_SET)
        with contextlib.suppress(OSError):
            os.unlink(self.sidecar, dir_fd=self._dir)  # rewritten if this run breaks off too
        return _Adopted(fd, own, target, fsync, self._dir, self._whole)

    def _take(self, fd: int, target: str) -> str:
        """Rename the partial file (open as fd) to a new name of this run's; that name."""
        base = self.partial[len(".") : -len(".pydelta-partial")]
        own = f".{base}.{os.urandom(4).hex()}.pydelta-tmp"
        taken = FileAccessError(
            f"the partial file of {target} was taken by another run of pydelta "
            "syncing it at the same time: not resumed here (rerun to complete)"
        )
        try:
            os.rename(self.partial, own, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        except FileNotFoundError:
            raise taken from None
        except OSError as e:
            raise FileAccessError(
                f"cannot take the partial file of {target}: {e.strerror}"
            ) from None
        st, mine = os.stat(own, dir_fd=self._dir, follow_symlinks=False), os.fstat(fd)
        if (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):  # another run's, kept since
            with contextlib.suppress(OSError):
                os.rename(own, self.partial, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            raise taken
        return own

    # -- this run broke off ----------------------------------------------------------
    def keep(self, produced: int, size: Optional[int], mtime_ns: Optional[int]) -> Optional[str]:
        """The name to keep an unfinished output as (with its sidecar written), or None."""
        have = self.offset + produced
        if size is None or have < MIN_PREFIX:
            return None
        info = {
            "format": "pydelta-partial",
            "version": 1,
            "size": size,
            "mtime_ns": mtime_ns,
            "have": have,
        }
        try:
            fd = os.open(
                self.sidecar,
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_NOFOLLOW,
                0o600,
                dir_fd=self._dir,
            )
            try:
                os.write(fd, json.dumps(info).encode())
            finally:
                os.close(fd)
        except OSError:
            return None
        return self.partial

    # -- cleaning up -------------------------------------------------------------------
    def drop(self) -> None:
        """Remove the partial file and its sidecar."""
        self.close()
        for name in (self.partial, self.sidecar):
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=self._dir)
        self._offered = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _is_digest(text: Any) -> bool:
    if not isinstance(text, str) or len(text) != 64:
        return False
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def check_offer(new: BinaryIO, offer: Any, size: int) -> Tuple[int, bytes]:
    """The sending end: (prefix length to skip, BLAKE3 of all of ``new``) if
    ``offer`` matches the first bytes of ``new`` (which is then positioned
    after them), else (0, b"")."""
    if not isinstance(offer, dict):
        return 0, b""
    k, digest = offer.get("offset"), offer.get("digest")
    if not isinstance(k, int) or isinstance(k, bool) or not 0 < k <= size or not _is_digest(digest):
        return 0, b""
    try:
        fd = new.fileno()
        h = backend.Blake3()
        if hash_prefix(fd, k, h) != bytes.fromhex(digest):
            return 0, b""
        whole = hash_prefix(fd, size, h, k)
    except (ValueError, OSError, AttributeError):
        return 0, b""
    if whole is None:
        return 0, b""
    new.seek(k)
    return k, whole


def answer_offer(ch: Channel, new: BinaryIO, offer: Any, size: int) -> int:
    """The sending end, when the receiver offered a prefix: check it, say
    yes or no (``{"resume": bool}``); the bytes to skip (``new`` is then
    positioned there). Without an offer nothing is sent and 0 returned."""
    if offer is None:
        return 0
    skip, whole = check_offer(new, offer, size)
    ch.send_json({"resume": True, "digest": whole.hex()} if skip else {"resume": False})
    return skip


def after_prefix(progress: Callable[[int], None], skip: int, done: int) -> None:
    """A progress callback shifted past a resumed prefix."""
    progress(skip + done)


class OfferTaker:
    """The sending end of a get: takes the receiver's offer, a JSON frame
    before its signature stream (one at most, before any data)."""

    def __init__(self) -> None:
        self.offer: Optional[Dict[str, Any]] = None
        self._taken = False

    def __call__(self, msg: Dict[str, Any]) -> None:
        if self._taken or msg.get("op") != "resume":
            raise ProtocolError("unexpected message inside a signature stream")
        self._taken = True
        self.offer = msg
