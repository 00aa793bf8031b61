"""The receiving end's signature cache: skip re-reading a large file that has
not changed since its signature was last made.

A sync's receiving end signs its old copy of every file (reads it whole and
hashes every block) before the sending end can scan. For a model file that
did not change on the receiver since the last sync, that is the same work
again. The cache keeps each signature under the file's identity - device,
inode, size, modification and status-change times (``st_ctime_ns`` changes
on every write, chmod, utime or rename of the inode, and cannot be set back
by a user) - and serves it while that identity holds.

Safe because nothing is trusted on its word: every sync result is verified
against the sender's whole-file BLAKE3 before it replaces anything, so even
a stale or forged entry can only make one sync fail, never a wrong file
(and the entry is dropped when a sync that used it fails). A damaged entry
(its own BLAKE3 does not match) is a miss; an unusable cache directory
(missing, unwritable, full) turns the cache off for the rest of the run.

Where: ``$PYDELTA_SIG_CACHE`` if set (a directory; ``0``/``off`` disables
it), else ``$XDG_CACHE_HOME/pydelta/sigs``, else ``~/.cache/pydelta/sigs``.
One entry per file (named by device and inode), at most :data:`MAX_ENTRY`
bytes each, the directory pruned to :data:`MAX_TOTAL` bytes, least recently
used entries first (a hit refreshes the entry's time). ``pydelta sync
--no-sig-cache`` turns it off for both ends.

Results written by a sync are signed too, so the next sync of the same
destination finds their signature: the patch makes it from the same
read-back of the written ranges that computes the result's digest (csrc/
copy.c, ``Patcher(sign=...)``), no second read of the file, and the entry is
written when the verified result is published, keyed by the file as it then
stands (renamed, its mode and time set: each of these changes its ctime), so
it is there when the sync returns. Only the patch's direct writer signs (the
C backend writing a file); a result written another way (the numba backend,
``PYDELTA_PATCH_DIRECT=0``, a resumed update) gets no entry, and its next
sync signs it as for a miss. The entry of a file an update replaced (a hit,
or signed ahead by .presign) is dropped when the result is published: it
could never serve again.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import threading
import time
from typing import Optional, Tuple

from ..backends import backend
from ..errors import PydeltaError
from ..formats import native as fmt
from ..signature import iter_signature

#: First bytes of an entry.
MAGIC = b"PDSIGC1\n"
#: The entry's head: magic, dev, ino, size, mtime_ns, ctime_ns, signature
#: length, then the BLAKE3 of everything before it and of the signature.
_HEAD = struct.Struct("<8sQQQqqQ")
_DIGEST = 32
#: The largest signature kept (a signature of ~1 TiB with 1 MiB blocks is 24 MiB).
MAX_ENTRY = 64 << 20
#: The directory is pruned to this many bytes.
MAX_TOTAL = 512 << 20
#: Files smaller than this are not worth an entry (signing them is quick).
MIN_FILE = 16 << 20
#: A temporary file older than this (seconds) is a killed writer's leftover.
STALE_TMP = 3600

OFF = ("0", "off", "no", "false")


def default_dir() -> Optional[str]:
    """The cache directory from the environment, or None when it is turned off."""
    env = os.environ.get("PYDELTA_SIG_CACHE")
    if env is not None:
        if env.strip().lower() in OFF:
            return None
        if env.strip():
            return os.path.expanduser(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pydelta", "sigs")


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class SigCache:
    """Signatures of regular files by their identity, in one directory.

    Every method fails quietly: the cache is an optimisation, never a reason
    for a sync to fail. After the first error writing to the directory the
    cache stops writing (and says nothing).
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.writable = True
        self.hits = 0
        self.misses = 0
        #: the block sums this end signs and serves in: "blake3", or "xxh3"
        #: once a session agreed feature "xxh3" (see .shortsig)
        self.strong_hash = "blake3"

    @classmethod
    def open(cls, enabled: bool = True) -> Optional["SigCache"]:
        """The cache at :func:`default_dir`, or None if turned off."""
        root = default_dir() if enabled else None
        return cls(root) if root else None

    def _path(self, st: os.stat_result) -> str:
        return os.path.join(self.root, f"{st.st_dev:x}-{st.st_ino:x}.sig")

    def get(self, fd: int, strong_hash: Optional[str] = None) -> Optional[bytes]:
        """The cached signature of the open regular file ``fd``, or None; only
        one whose block sums are ``strong_hash`` ("xxh3" or "blake3"; None:
        :attr:`strong_hash`)."""
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size < MIN_FILE:
                return None
            path = self._path(st)
            with open(path, "rb") as fh:
                head = fh.read(_HEAD.size + 2 * _DIGEST)
                if len(head) < _HEAD.size + 2 * _DIGEST:
                    return self._miss()
                magic, *ident, length = _HEAD.unpack(head[: _HEAD.size])
                if magic != MAGIC or tuple(ident) != _identity(st) or length > MAX_ENTRY:
                    return self._miss()
                head_sum = head[_HEAD.size : _HEAD.size + _DIGEST]
                body_sum = head[_HEAD.size + _DIGEST :]
                if backend.blake3_digest(head[: _HEAD.size]) != head_sum:
                    return self._drop(path)
                body = fh.read(length + 1)
            if len(body) != length or backend.blake3_digest(body) != body_sum:
                return self._drop(path)  # damaged: a miss (and gone)
            if len(body) < fmt.SIG_HEADER.size or fmt.STRONG_NAMES.get(
                fmt.sig_strong_kind(body)
            ) != (strong_hash or self.strong_hash):
                return self._miss()  # another kind of block sums: never served
        except (OSError, ValueError):
            return self._miss()
        self.hits += 1
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        return body

    def _miss(self) -> None:
        self.misses += 1
        return None

    def _drop(self, path: str) -> None:
        try:
            os.unlink(path)
        except OSError:
            pass
        return self._miss()

    def put(self, before: os.stat_result, fd: int, sig: bytes) -> None:
        """Keep sig as the signature of ``fd`` if the file is still what it was
        (``before``, its stat when the signing began)."""
        if not self.writable or len(sig) > MAX_ENTRY or before.st_size < MIN_FILE:
            return
        try:
            if _identity(os.fstat(fd)) != _identity(before):
                return  # it changed while it was read
            head = _HEAD.pack(MAGIC, *_identity(before), len(sig))
            data = head + backend.blake3_digest(head) + backend.blake3_digest(sig)
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            path = self._path(before)
            # one name per writer: the process and its thread (presign's signer
            # and a put can write one entry at once)
            tmp = f"{path}.{os.getpid()}-{threading.get_ident():x}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.write(sig)
            os.replace(tmp, path)
            self._prune()
        except (OSError, ValueError):
            self.writable = False
            try:
                os.unlink(tmp)
            except (OSError, UnboundLocalError):
                pass

    def sign_params(self, size: Optional[int]) -> Optional[Tuple[int, int, int, int]]:
        """``(block_len, strong_len, limit, strong hash id)`` to sign a result
        of ``size`` bytes with as it is written (``Patcher(sign=...)``), or
        None: too small to keep, unknown, or its signature would be larger
        than :data:`MAX_ENTRY`. The parameters are those a sync signs its
        basis with, in this cache's kind (:attr:`strong_hash`)."""
        if size is None or size < MIN_FILE:
            return None
        block_len = fmt.default_block_len(size)
        strong_len = fmt.DEFAULT_STRONG_LEN
        entries = -(-size // block_len)
        if fmt.SIG_HEADER.size + entries * (8 + strong_len) + fmt.SIG_TRAILER.size > MAX_ENTRY:
            return None
        return block_len, strong_len, MAX_ENTRY, fmt.STRONG_IDS[self.strong_hash]

    def put_written(self, fd: int, sig: bytes) -> None:
        """Keep sig, made as the file ``fd`` was written, as its signature,
        keyed by the file as it stands now, if sig is what the cache serves
        for it: its size and the parameters :meth:`sign_params` gives."""
        try:
            st = os.fstat(fd)
            block_len, strong_len = fmt.parse_sig_header(sig[: fmt.SIG_HEADER.size], "result")
            _, total, _, _ = fmt.SIG_TRAILER.unpack_from(sig, len(sig) - fmt.SIG_TRAILER.size)
        except (OSError, ValueError, struct.error, PydeltaError):
            return
        params = self.sign_params(st.st_size)
        kind = fmt.sig_strong_kind(sig)
        if (
            total == st.st_size
            and params is not None
            and params[:2] + params[3:]
            == (
                block_len,
                strong_len,
                kind,
            )
        ):
            self.put(st, fd, sig)

    def forget(self, fd: int) -> None:
        """Drop the entry of ``fd`` (a sync that used it failed, or replaced the file)."""
        try:
            os.unlink(self._path(os.fstat(fd)))
        except OSError:
            pass

    def _prune(self) -> None:
        """Remove the oldest entries while the directory holds more than
        MAX_TOTAL, and temporary files a writer killed mid-write left (older
        than :data:`STALE_TMP` seconds: no live writer takes that long)."""
        entries = []
        total = 0
        stale = time.time_ns() - STALE_TMP * 10**9
        with os.scandir(self.root) as it:
            for e in it:
                if e.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        if e.stat(follow_symlinks=False).st_mtime_ns < stale:
                            os.unlink(e.path)
                elif e.name.endswith(".sig"):
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    entries.append((st.st_mtime_ns, st.st_size, e.path))
                    total += st.st_size
        entries.sort()
        for _, size, path in entries:
            if total <= MAX_TOTAL:
                break
            try:
                os.unlink(path)
                total -= size
            except OSError:
                pass


def sign_file(
    path: str,
    cache: SigCache,
    threads: Optional[int] = None,
    stop: Optional[threading.Event] = None,
) -> None:
    """Sign the regular file at path into the cache (not following a link);
    given up, nothing kept, as soon as ``stop`` is set."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size < MIN_FILE:
            return
        if cache.get(fd) is not None:
            return
        kept = []
        for piece in iter_signature(fh, threads=threads, strong_hash=cache.strong_hash):
            if stop is not None and stop.is_set():
                return
            kept.append(bytes(piece))
        cache.put(st, fd, b"".join(kept))
