"""A store in a local directory (or a ``file://`` URL): no server, no extra package.

Keys are relative paths under the root. Every write goes to a temporary
file in ``<root>/.tmp`` (same filesystem), is fsynced and then renamed into
place, so a reader never sees half an object. Create-only writes use
``link()``, which fails if the target exists (atomic on POSIX filesystems);
compare-and-swap (tags) holds an ``flock`` on ``<root>/.lock`` while it
compares the current content with the token and renames.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from typing import Iterator, Optional
from urllib.parse import unquote, urlparse

from ..errors import (
    DiskFullError,
    StoreAccessError,
    StoreError,
    StoreNotFoundError,
    TagConflictError,
)
from .base import CREATE, SWAP, Data, ObjectInfo, Store

_TMP = ".tmp"


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def path_of_url(url: str) -> str:
    """The directory a local store URL (a path or ``file://...``) names."""
    if url.startswith("file:"):
        p = urlparse(url)
        if p.netloc not in ("", "localhost"):
            raise StoreError(f"file:// store URLs name local paths, not host {p.netloc!r}: {url}")
        return unquote(p.path) or "/"
    return url


class LocalStore(Store):
    """A model store in a local directory."""

    conditional = True

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        self.root = os.path.abspath(path_of_url(url))
        if not os.path.isdir(self.root):
            if os.path.exists(self.root):
                raise StoreError(f"store {url} is not a directory")
            if not create:
                raise StoreNotFoundError(f"store {url} does not exist")
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as e:
                raise StoreAccessError(f"cannot create store {url}: {_reason(e)}") from None

    # -- helpers

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"invalid object key {key!r}")
        return os.path.join(self.root, *parts)

    def _fail(self, e: OSError, doing: str) -> StoreError:
        if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
            return DiskFullError(f"store {self.url} is full: {doing}: {_reason(e)}")
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreAccessError(f"store {self.url}: {doing}: {_reason(e)}")
        return StoreError(f"store {self.url}: {doing}: {_reason(e)}")

    def spool_dir(self) -> Optional[str]:
        d = os.path.join(self.root, _TMP)
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            raise self._fail(e, "cannot create its temporary folder") from None
        return d

    def _tmpfile(self) -> "tuple[int, str]":
        return tempfile.mkstemp(prefix="obj.", suffix=".tmp", dir=self.spool_dir())

    def _install(self, tmp: str, key: str, create: bool) -> bool:
        """Move a finished temporary file to ``key``; False if create and it exists."""
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if create:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            return True
        os.replace(tmp, path)
        return True

    # -- reads

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except FileNotFoundError:
            raise StoreNotFoundError(f"{key} is not in store {self.url}") from None
        except OSError as e:
            raise self._fail(e, f"cannot read {key}") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as fh:
                data = os.pread(fh.fileno(), length, start)
        except FileNotFoundError:
            raise StoreNotFoundError(f"{key} is not in store {self.url}") from None
        except OSError as e:
            raise self._fail(e, f"cannot read {key}") from None
        if len(data) != length:
            # a short object is a damaged store, not a transient failure
            from ..errors import CorruptStoreError

            raise CorruptStoreError(
                f"{key} in store {self.url} is shorter than its index says "
                f"(wanted bytes {start}..{start + length})"
            )
        return data

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        # the token names this very file (every write renames a new inode into
        # place), so a rewrite with the same bytes still changes it
        try:
            with open(self._path(key), "rb") as fh:
                s = os.fstat(fh.fileno())
                data = fh.read()
        except FileNotFoundError:
            return None, None
        except OSError as e:
            raise self._fail(e, f"cannot read {key}") from None
        return data, f"{s.st_ino}-{s.st_mtime_ns}-{s.st_size}"

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root
        top = os.path.join(base, *[p for p in prefix.split("/")[:-1] if p])
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != _TMP]
            rel = os.path.relpath(dirpath, base)
            for name in filenames:
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if not key.startswith(prefix) or name.startswith("."):
                    continue
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    # -- writes

    def put(
        self, key: str, data: Data, *, mode: str = "overwrite", token: Optional[str] = None
    ) -> bool:
        try:
            fd, tmp = self._tmpfile()
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                if mode == SWAP:
                    return self._swap(tmp, key, token)
                return self._install(tmp, key, mode == CREATE)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as e:
            raise self._fail(e, f"cannot write {key}") from None

    def _swap(self, tmp: str, key: str, token: Optional[str]) -> bool:
        lock = os.path.join(self.root, ".lock")
        with open(lock, "a+b") as lf:
            fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
            _, now = self.get_token(key)
            if now != token:
                raise TagConflictError(
                    f"{key} in store {self.url} changed while we were writing it"
                )
            return self._install(tmp, key, False)

    def put_file(self, key: str, path: str) -> None:
        try:
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
            if os.path.dirname(os.path.abspath(path)) == os.path.join(self.root, _TMP):
                self._install(path, key, False)
                return
            fd, tmp = self._tmpfile()
            try:
                with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                    while True:
                        block = src.read(1 << 20)
                        if not block:
                            break
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
                self._install(tmp, key, False)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as e:
            raise self._fail(e, f"cannot write {key}") from None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))
