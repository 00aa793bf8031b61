"""pull, steps 4-5: build each changed file beside its target, verify, rename.

Local copies and downloads arrive a window at a time (:mod:`.pull_plan`),
``jobs`` at once; every chunk is checked against its BLAKE3 before it is
written, and each file's whole BLAKE3 is computed as its chunks land (the
run at the frontier is hashed from the page cache). A file replaces its
target only once it matches; a chunk downloaded for one window is copied
from where it landed by the next.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from array import array
from concurrent.futures import ThreadPoolExecutor

from ..backends import backend
from ..errors import (
    DiskFullError,
    FileAccessError,
    PullTimeoutError,
    StoreNotFoundError,
    VerificationError,
)
from .packs import blake3, decode_payload, pack_key
from .pull_plan import _Copy, _Fetch, _Plan, _Request, _requests, _Target
from .pull_state import _reason, _save_state, _walk_files, partial_path, state_path
from .relocate import fetch_moved

_READ = 8 << 20


class _Pull(_Plan):
    """One pull's execution (the plan's windows, then the renames)."""

    def _write(self, t: _Target, off: int, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = os.pwrite(t.fd, view, off)
                view = view[n:]
                off += n
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"no space left for {t.path}: {_reason(e)}") from None
            raise FileAccessError(f"cannot write {t.partial}: {_reason(e)}") from None

    def _placed(self, n: int, fetched: int = 0) -> None:
        with self.lock:
            self.done += n
            self.sent += fetched
            self.chunks += 1
        self.tell("fetch", self.done, self.total)

    def execute(self, delete: bool) -> None:
        r = self.report
        work = [t for t in self.targets if not t.unchanged]
        try:
            for t in work:
                os.makedirs(os.path.dirname(t.path), exist_ok=True)
                fresh = not os.path.exists(t.partial)
                t.fd = os.open(t.partial, os.O_RDWR | os.O_CREAT, 0o600)
                if fresh:
                    self.created_partials.append(t.partial)
                os.ftruncate(t.fd, t.entry.size)
                t.hasher = backend.Blake3()
                t.ready = bytearray(t.present)
                t.starts = array("Q", [0])
                off = 0
                for size in t.entry.chunks.sizes():
                    off += size
                    t.starts.append(off)
                self._advance(t)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"no space left in {self.dest}: {_reason(e)}") from None
            raise FileAccessError(f"cannot write in {self.dest}: {_reason(e)}") from None
        r.local_chunks = sum(sum(t.present) for t in work)
        self.total = self._to_place()
        try:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for copies, fetch in self._windows():
                    # local copies first: every old file is still in place now
                    for ok, item in zip(pool.map(self._copy, copies), copies):
                        if ok:
                            r.local_chunks += 1
                        else:
                            src, c, tg = item
                            fetch.setdefault(c.digest, _Fetch(c, []))
                            fetch[c.digest].targets.extend(tg)
                    for got in pool.map(self._fetch, _requests(list(fetch.values()))):
                        r.downloaded_bytes += got
                        r.requests += 1
                    r.fetched_chunks += len(fetch)
                    for d, f in fetch.items():  # later windows copy it from there
                        t, off, _ = f.targets[0]
                        self._remember(d, t.partial, off)
            # step 5: verify each file, then rename it into place
            for t in work:
                self._finish(t)
        except DiskFullError:
            for p in self.created_partials:
                with contextlib.suppress(OSError):
                    os.unlink(p)
            raise
        for t in self.targets:
            if t.unchanged and os.path.exists(partial_path(t.path)):
                with contextlib.suppress(OSError):
                    os.unlink(partial_path(t.path))  # left by an older interrupted pull
            if t.unchanged and stat.S_IMODE(os.stat(t.path).st_mode) != t.entry.mode:
                with contextlib.suppress(OSError):
                    os.chmod(t.path, t.entry.mode)
        self._classify()
        if delete and not self.man.single_file:
            self._delete()
        files = {}
        for t in self.targets:
            s = os.stat(t.path)
            files[t.rel] = [s.st_size, s.st_mtime_ns]
        _save_state(state_path(self.dest), self.st.url, r.version, files)

    def _advance(self, t: _Target) -> None:
        """Hash the run of ready chunks at the frontier, unless another
        thread is doing so (it then picks up what we marked)."""
        n = len(t.entry.chunks)
        with t.lock:
            if t.hashing:
                return
            t.hashing = True
        try:
            while True:
                with t.lock:
                    j = k = t.frontier
                    while k < n and t.ready[k]:
                        k += 1
                    if k == j:
                        t.hashing = False
                        return
                a, b = t.starts[j], t.starts[k]
                while a < b:
                    block = os.pread(t.fd, min(_READ, b - a), a)
                    if not block:
                        raise FileAccessError(
                            f"cannot read back {t.partial}: it is shorter than written"
                        )
                    t.hasher.update(block)  # type: ignore[attr-defined]
                    a += len(block)
                with t.lock:
                    t.frontier = k
        except BaseException:
            with t.lock:
                t.hashing = False
            raise

    def _mark(self, t: _Target, i: int) -> None:
        with t.lock:
            t.ready[i] = 1
            if i != t.frontier or t.hashing:
                return
        self._advance(t)

    def _copy(self, item: "_Copy") -> bool:
        (path, off, size), c, targets = item
        try:
            data, ident = self.files.pread(path, off, size)
        except OSError:
            return False
        if len(data) != c.size:
            return False
        if ident != self.identity.get(path) and blake3(data) != c.digest:
            # the local file changed since it was chunked (and this chunk
            # with it): download instead. Unchanged files are not hashed
            # again - the whole-file BLAKE3 check before the rename covers
            # a change that keeps inode, size and time.
            return False
        for t, o, i in targets:
            self._write(t, o, data)
            self._mark(t, i)
        self._placed(c.size * len(targets))
        return True

    def _fetch(self, req: "_Request") -> int:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise PullTimeoutError(
                f"pull into {self.dest} ran past its timeout; what arrived is kept"
            )
        key = pack_key(req.pack)
        try:
            data = self.st.get_range(key, req.start, req.length)
        except StoreNotFoundError:
            return self._fetch_moved(req)  # repacked by gc (pydelta.store.relocate)
        what = f"pack {req.pack.hex()[:16]} in store {self.st.url}"
        for f in req.items:
            c = f.ref
            a = c.offset - req.start
            chunk = decode_payload(data[a : a + c.stored], c.codec, c.size, c.digest, what)
            for t, o, i in f.targets:
                self._write(t, o, chunk)
                self._mark(t, i)
            self._placed(c.size * len(f.targets), c.stored)
        return len(data)

    def _fetch_moved(self, req: "_Request") -> int:
        chunks, got, requests = fetch_moved(self.st, req.pack, [f.ref for f in req.items])
        for f in req.items:
            for t, o, i in f.targets:
                self._write(t, o, chunks[f.ref.digest])
                self._mark(t, i)
            self._placed(f.ref.size * len(f.targets), f.ref.stored)
        with self.lock:
            self.report.requests += requests - 1
        return got

    def _finish(self, t: _Target) -> None:
        try:
            self._advance(t)
            os.fsync(t.fd)
            done = t.frontier == len(t.entry.chunks) and os.fstat(t.fd).st_size == t.entry.size
            os.close(t.fd)
            t.fd = -1
        except OSError as e:
            raise FileAccessError(f"cannot read back {t.partial}: {_reason(e)}") from None
        if not done or t.hasher.digest() != t.entry.digest:  # type: ignore[attr-defined]
            with contextlib.suppress(OSError):
                os.unlink(t.partial)
            raise VerificationError(
                f"{t.path} does not match version {self.report.version[:16]} after it was built "
                "(whole-file BLAKE3 mismatch); it was left unchanged"
            )
        try:
            os.chmod(t.partial, t.entry.mode)
            os.replace(t.partial, t.path)
        except OSError as e:
            raise FileAccessError(f"cannot replace {t.path}: {_reason(e)}") from None

    def _delete(self) -> None:
        keep = {t.rel for t in self.targets}
        for rel in _walk_files(self.root):
            if rel not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.root, *rel.split("/")))
                    self.report.deleted.append(rel)
        # folders left empty by the deletions
        for dirpath, _dirs, _files in sorted(os.walk(self.root), key=lambda w: -len(w[0])):
            if dirpath != self.root:
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)
