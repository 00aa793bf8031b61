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
bytes each, the directory pruned to :data:`MAX_TOTAL` bytes, oldest entries
first. ``pydelta sync --no-sig-cache`` turns it off for both ends.

Results written by a sync are signed too (so the next sync of the same
destination finds its signature): after the session, by a detached child of
``pydelta serve`` at the lowest CPU priority (:func:`sign_later`), so that
no sync waits for it.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import List, Optional

from ..backends import backend
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

    @classmethod
    def open(cls, enabled: bool = True) -> Optional["SigCache"]:
        """The cache at :func:`default_dir`, or None if turned off."""
        root = default_dir() if enabled else None
        return cls(root) if root else None

    def _path(self, st: os.stat_result) -> str:
        return os.path.join(self.root, f"{st.st_dev:x}-{st.st_ino:x}.sig")

    def get(self, fd: int) -> Optional[bytes]:
        """The cached signature of the open regular file ``fd``, or None."""
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
        except (OSError, ValueError):
            return self._miss()
        self.hits += 1
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
            tmp = f"{path}.{os.getpid()}.tmp"
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

    def forget(self, fd: int) -> None:
        """Drop the entry of ``fd`` (a sync that used it failed)."""
        try:
            os.unlink(self._path(os.fstat(fd)))
        except OSError:
            pass

    def _prune(self) -> None:
        """Remove the oldest entries while the directory holds more than MAX_TOTAL."""
        entries = []
        total = 0
        with os.scandir(self.root) as it:
            for e in it:
                if e.name.endswith(".sig"):
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


def sign_file(path: str, cache: SigCache, threads: Optional[int] = None) -> None:
    """Sign the regular file at path into the cache (not following a link)."""
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
        sig = b"".join(bytes(p) for p in iter_signature(fh, threads=threads))
        cache.put(st, fd, sig)


def sign_later(paths: List[str], cache: SigCache) -> None:
    """Sign the files a session wrote, in a detached child at the lowest CPU
    priority, so that neither end waits for it (POSIX; elsewhere: nothing).

    The child leaves the session (setsid) and drops standard input and
    output, so ssh and the client see this process end as usual.
    """
    if not paths or not hasattr(os, "fork"):
        return
    try:
        pid = os.fork()
    except OSError:
        return
    if pid:
        try:
            os.waitpid(pid, 0)  # the first child exits at once (the grandchild works)
        except OSError:
            pass
        return
    try:  # the child: detach, then fork again so that nothing waits on us
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            os.nice(19)
        except OSError:
            pass
        for path in paths:
            sign_file(path, cache, threads=1)
    finally:
        os._exit(0)
