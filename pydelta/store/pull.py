"""pull: make a local file or folder exactly one version of a store.

1. Resolve the tag (or version prefix) to a version id; with ``quick``,
   stop right there if the record of the last pull says DEST is that
   version and every file still has the size and modification time it
   recorded.
2. Read the manifest and check it against its id (its BLAKE3).
3. Find what is already here: each target file is chunked (the same
   content-defined cut points as push) - if its digest matches, it is
   unchanged; otherwise its chunks, those of the other files in DEST and of
   the ``seeds``, become sources. A half-built file from an interrupted
   pull (``.NAME.pydelta-partial``) is checked in place, chunk by chunk,
   and reused as the file being built.
4. Build every changed file in its partial file beside the target: local
   chunks are copied (and re-verified), missing ones downloaded with ranged
   GETs grouped by pack, nearby ranges merged (at most
   :data:`MAX_REQUEST` bytes a request), ``jobs`` requests at a time. Every
   chunk is checked against its BLAKE3 before it is written.
5. Check each finished file's whole BLAKE3, then rename it over the target.
   Only then are files not in the version removed (``delete``), and the
   record of this pull written (``.pydelta-pull.json``).

Any failure leaves the targets as they were; the partial files keep the
verified chunks that arrived, so a rerun fetches only the rest.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..backends import backend
from ..errors import (
    CorruptStoreError,
    DiskFullError,
    FileAccessError,
    PullTimeoutError,
    StoreNotFoundError,
    UsageError,
    VerificationError,
    VersionNotFoundError,
)
from ..formats import manifest as mf
from .base import Store
from .chunker import ChunkParams, chunk_stream
from .lock import dest_lock
from .near import open_pull_store
from .packs import blake3, decode_payload, pack_key
from .relocate import fetch_moved
from .report import Progress, PullReport
from .stores import CONFIG_KEY, TAGS, VERSIONS, tag_key, version_key

ProgressFn = Callable[[Progress], None]

#: Largest ranged GET (merged neighbouring chunks of one pack).
MAX_REQUEST = 8 << 20
#: Chunks of one pack at most this far apart are fetched in one request (the
#: chunks a push adds are contiguous in its packs, so a pull of its version
#: needs few requests even with a small gap, and fetches few unneeded bytes).
MERGE_GAP = 16 << 10
STATE_NAME = ".pydelta-pull.json"
PARTIAL_SUFFIX = ".pydelta-partial"
_READ = 8 << 20


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def partial_path(target: str) -> str:
    """Where a file is built before it replaces ``target``."""
    d, name = os.path.split(target)
    return os.path.join(d, f".{name}{PARTIAL_SUFFIX}")


def state_path(dest: str) -> str:
    """Where the record of the last pull into ``dest`` is kept."""
    if os.path.isdir(dest):
        return os.path.join(dest, STATE_NAME)
    d, name = os.path.split(os.path.abspath(dest))
    return os.path.join(d, f".{name}{STATE_NAME}")


def _is_ours(name: str) -> bool:
    return name == STATE_NAME or name.endswith(PARTIAL_SUFFIX) or name.endswith(STATE_NAME)


# ---------------------------------------------------------------- resolving


def resolve_version(st: Store, tag: Optional[str], version: Optional[str]) -> str:
    """The full version id a tag or a version (prefix) names."""
    if version is not None:
        v = mf.check_version_id(version)
        if len(v) == 64:
            return v
        found = [o.key[len(VERSIONS) :] for o in st.list(VERSIONS + v)]
        found = [f for f in found if len(f) == 64]
        if len(found) == 1:
            return found[0]
        if not found:
            raise VersionNotFoundError(f"no version {v} in store {st.url}")
        raise UsageError(f"version prefix {v} is ambiguous in store {st.url}: give more digits")
    name = mf.check_tag_name(tag or "latest")
    data, _ = st.get_token(tag_key(name))
    if data is None:
        if st.get_token(CONFIG_KEY)[0] is None:
            raise StoreNotFoundError(
                f"{st.url} is not a pydelta store (no {CONFIG_KEY}): push to it first"
            )
        raise VersionNotFoundError(f"tag {name!r} is not in store {st.url}")
    return mf.decode_tag(data, f"tag {name!r} in store {st.url}").version


def read_manifest(st: Store, version: str) -> Tuple[mf.Manifest, int]:
    """(manifest, its size in bytes), checked against its id."""
    man, data = read_manifest_bytes(st, version)
    return man, len(data)


def read_manifest_bytes(st: Store, version: str) -> Tuple[mf.Manifest, bytes]:
    """(manifest, its bytes), checked against its id (mirror copies the bytes)."""
    try:
        data = st.get(version_key(version))
    except StoreNotFoundError:
        raise VersionNotFoundError(f"version {version[:16]} is not in store {st.url}") from None
    what = f"manifest of version {version[:16]} in store {st.url}"
    if blake3(data).hex() != version:
        raise CorruptStoreError(f"{what} is damaged or tampered with (its BLAKE3 is not its id)")
    return mf.decode_manifest(data, what), data


# ---------------------------------------------------------------- state


def _load_state(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
        if doc.get("format") == "pydelta-pull" and isinstance(doc.get("files"), dict):
            return doc
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None


def _save_state(path: str, store: str, version: str, files: Dict[str, List[int]]) -> None:
    doc = {
        "format": "pydelta-pull",
        "format_version": 1,
        "store": store,
        "version": version,
        "files": files,
    }
    tmp = path + ".tmp"
    with contextlib.suppress(OSError):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, sort_keys=True)
        os.replace(tmp, path)


def _walk_files(root: str) -> List[str]:
    """Relative POSIX paths of the regular files under root (not ours)."""
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if _is_ours(name):
                continue
            full = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(full).st_mode):
                    out.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
    return out


def _quick_ok(dest: str, version: str, delete: bool) -> Optional[Tuple[List[str], int]]:
    """(files, bytes) if the last pull's record says DEST is this version."""
    sp = state_path(dest)
    doc = _load_state(sp)
    if doc is None or doc.get("version") != version:
        return None
    root = os.path.dirname(sp)
    total = 0
    for rel, (size, mtime_ns) in doc["files"].items():
        try:
            s = os.stat(os.path.join(root, *rel.split("/")))
        except OSError:
            return None
        if s.st_size != size or s.st_mtime_ns != mtime_ns:
            return None
        total += size
    if delete and os.path.isdir(dest) and sorted(_walk_files(dest)) != sorted(doc["files"]):
        return None
    return sorted(doc["files"]), total


# ---------------------------------------------------------------- the plan


@dataclass
class _Target:
    entry: mf.FileEntry
    path: str  # where the file goes
    rel: str  # relative path for the report/state
    existed: bool = False
    unchanged: bool = False
    partial: str = ""
    present: bytearray = field(default_factory=bytearray)  # chunk i already in the partial
    fd: int = -1
    # the whole-file BLAKE3, computed while the file is built: chunks are
    # marked ready as they land, and whichever writer completes the run at
    # the frontier hashes it (from the page cache) and moves the frontier on
    ready: bytearray = field(default_factory=bytearray)
    starts: "array[int]" = field(default_factory=lambda: array("Q"))  # file offset of each chunk
    frontier: int = 0  # chunks [0, frontier) are hashed
    hashing: bool = False
    hasher: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Fetch:
    """A chunk to download, and where it goes."""

    ref: mf.ChunkRef
    targets: List[Tuple[_Target, int, int]]  # (file, offset, chunk index)


#: A chunk to copy from a local file: ((path, offset, size), ref, [(file, offset, index)]).
_Copy = Tuple[Tuple[str, int, int], mf.ChunkRef, List[Tuple[_Target, int, int]]]


class _Files:
    """Read-only descriptors of local source files, opened once and shared."""

    def __init__(self) -> None:
        self._fds: Dict[str, Tuple[int, Tuple[int, ...]]] = {}
        self._lock = threading.Lock()

    def pread(self, path: str, offset: int, size: int) -> Tuple[bytes, Tuple[int, ...]]:
        """(bytes at offset, the file's identity when it was opened)."""
        with self._lock:
            got = self._fds.get(path)
            if got is None:
                fd = os.open(path, os.O_RDONLY)
                got = self._fds[path] = (fd, _identity(os.fstat(fd)))
        return os.pread(got[0], size, offset), got[1]

    def close(self) -> None:
        for fd, _ in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _identity(s: os.stat_result) -> Tuple[int, ...]:
    """What tells whether a file changed: device, inode, size, change times."""
    return (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)


def _seed_files(paths: Sequence[str]) -> List[str]:
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            out += [os.path.join(p, *r.split("/")) for r in _walk_files(p)]
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise FileAccessError(f"seed {p} is neither a file nor a folder")
    return out


def _check_inside(root: str, path: str) -> None:
    """Refuse to write through a symbolic link or a file inside DEST."""
    rel = os.path.relpath(os.path.dirname(path), root)
    cur = root
    if rel == ".":
        return
    for part in rel.split(os.sep):
        cur = os.path.join(cur, part)
        try:
            s = os.lstat(cur)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(s.st_mode):
            raise FileAccessError(f"refusing to write {path}: {cur} is a symbolic link")
        if not stat.S_ISDIR(s.st_mode):
            raise FileAccessError(f"cannot write {path}: {cur} is not a folder")


def pull(
    store: str,
    dest: "str | os.PathLike[str]",
    *,
    tag: Optional[str] = None,
    version: Optional[str] = None,
    seeds: Sequence["str | os.PathLike[str]"] = (),
    delete: bool = False,
    quick: bool = False,
    jobs: int = 8,
    dry_run: bool = False,
    endpoint_url: Optional[str] = None,
    progress: Optional[ProgressFn] = None,
    near: Sequence[str] = (),
    lock: bool = True,
    timeout: Optional[float] = None,
) -> PullReport:
    """Make DEST (a file or a folder) exactly one version of a store.

    Only chunks that neither DEST nor the seeds hold are downloaded. Every
    chunk and every file is verified (BLAKE3) before a file replaces its
    target; a failure leaves the targets as they were.

    Args:
        store: a local directory, ``file://`` URL or ``s3://bucket/prefix``.
        dest: the file or folder to update (created if missing).
        tag: the tag to pull (default ``latest``).
        version: a version id (or a unique prefix) instead of a tag.
        seeds: more local files or folders to take chunks from.
        delete: remove files in DEST that are not in the version.
        quick: trust the sizes and modification times recorded by the last
            pull into DEST (read no file data if they still match).
        jobs: parallel requests.
        dry_run: change nothing; report what would be downloaded.
        endpoint_url: the S3 endpoint (default: AWS config / environment).
        progress: called with a :class:`Progress` as the pull goes.
        near: stores to read before ``store`` (tried in order; see
            :mod:`pydelta.store.near`): the manifest and each pack come from
            the first that has them, tags from ``store`` unless it is
            unreachable.
        lock: hold the lock beside DEST (:mod:`pydelta.store.lock`) so
            concurrent pulls into one place download once; a pull that
            waited for another checks the record it left (``quick``) first.
        timeout: give up after this many seconds (waiting for the lock
            included) with PullTimeoutError; what arrived is kept.

    Returns:
        A :class:`PullReport`.

    Example:
        >>> import pydelta
        >>> r = pydelta.pull("s3://models/llama-7b", "/models/llama-7b", tag="v2")  # doctest: +SKIP
        >>> print(r.summary())  # doctest: +SKIP
    """
    t0 = time.monotonic()
    if tag is not None and version is not None:
        raise UsageError("give a tag or a version, not both")
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a positive number, not {jobs!r}")
    dest = os.fspath(dest)
    deadline = None if timeout is None else t0 + timeout
    st = open_pull_store(
        os.fspath(store), [os.fspath(n) for n in near], endpoint_url=endpoint_url, jobs=jobs
    )
    with st, _locked(dest, lock and not dry_run, timeout) as waited:
        quick = quick or waited
        vid = resolve_version(st, tag, version)
        if quick:
            hit = _quick_ok(dest, vid, delete)
            if hit is not None:
                r = PullReport(st.url, dest, vid, len(hit[0]), hit[1], quick=True, dry_run=dry_run)
                r.unchanged = hit[0]
                r.seconds = time.monotonic() - t0
                return r
        man, man_size = read_manifest(st, vid)
        report = PullReport(st.url, dest, vid, len(man.files), man.total_size, dry_run=dry_run)
        report.downloaded_bytes = man_size
        report.requests = 2
        run = _Pull(st, man, dest, report, jobs, progress)
        run.deadline = deadline
        try:
            run.plan(seeds)
            if dry_run:
                run.estimate()
            else:
                run.execute(delete)
        finally:
            run.close()
        report.seconds = time.monotonic() - t0
        return report


class _Pull:
    """One pull's state: targets, local sources, downloads."""

    def __init__(
        self,
        st: Store,
        man: mf.Manifest,
        dest: str,
        report: PullReport,
        jobs: int,
        progress: Optional[ProgressFn],
    ) -> None:
        self.st = st
        self.man = man
        self.dest = dest
        self.report = report
        self.jobs = jobs
        self.progress = progress
        self.params = ChunkParams(*man.chunker)
        self.files = _Files()
        self.local: Dict[bytes, Tuple[str, int, int]] = {}  # digest -> (path, offset, size)
        self.identity: Dict[str, Tuple[int, ...]] = {}  # path -> its identity when scanned
        self.targets: List[_Target] = []
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.sent = 0
        self.chunks = 0
        self.created_partials: List[str] = []
        self.deadline: Optional[float] = None
        if man.single_file:
            name = man.files[0].path
            if os.path.isdir(dest) or dest.endswith(("/", os.sep)):
                target = os.path.join(dest, name)
            else:
                target = dest
            self.root = os.path.dirname(os.path.abspath(target))
            rel = os.path.basename(target)
            self.targets.append(_Target(man.files[0], os.path.abspath(target), rel))
        else:
            if os.path.exists(dest) and not os.path.isdir(dest):
                raise UsageError(f"{dest} is a file, but version {report.version[:16]} is a folder")
            self.root = os.path.abspath(dest)
            for e in man.files:
                self.targets.append(_Target(e, os.path.join(self.root, *e.path.split("/")), e.path))

    def tell(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(Progress(phase, done, total, self.chunks, self.sent))

    def close(self) -> None:
        self.files.close()
        for t in self.targets:
            if t.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(t.fd)
                t.fd = -1

    # -- step 3: what is here already

    def _scan(
        self,
        path: str,
        want: Set[bytes],
        scanned: List[int],
        total: int,
        like: Optional[mf.FileEntry] = None,
    ) -> bool:
        """Chunk a local file, recording the chunks in ``want`` as sources.

        Returns whether the file has exactly the chunks of ``like`` (then it
        is that file: same length, same BLAKE3 of every piece). The file's
        identity (inode, size, time) is remembered, so a chunk copied from
        it later need not be hashed again if the file did not change.
        """
        same = like is not None
        i = 0
        try:
            with open(path, "rb", buffering=0) as fh:

                def on_read(n: int) -> None:
                    scanned[0] += n
                    self.tell("scan", scanned[0], total)

                gen = chunk_stream(fh, self.params, on_read=on_read, whole=False)
                while True:
                    try:
                        c, _ = next(gen)
                    except StopIteration:
                        break
                    if same:
                        ch = like.chunks  # type: ignore[union-attr]
                        same = i < len(ch) and ch.sizes()[i] == c.size and ch.digest(i) == c.digest
                    i += 1
                    if c.digest in want and c.digest not in self.local:
                        self.local[c.digest] = (path, c.offset, c.size)
                self.identity[path] = _identity(os.fstat(fh.fileno()))
        except OSError as e:
            raise FileAccessError(f"cannot read {path}: {_reason(e)}") from None
        return same and i == len(like.chunks)  # type: ignore[union-attr]

    def plan(self, seeds: Sequence["str | os.PathLike[str]"]) -> None:
        for t in self.targets:
            _check_inside(self.root, t.path)
            if os.path.isdir(t.path) and not os.path.islink(t.path):
                raise FileAccessError(f"cannot write {t.path}: it is a folder")
        want: Set[bytes] = set()
        for t in self.targets:
            want.update(c.digest for c in t.entry.chunks)
        existing = [
            t for t in self.targets if os.path.isfile(t.path) and not os.path.islink(t.path)
        ]
        seed_list = _seed_files(seeds)
        others: List[str] = []
        if not self.man.single_file and os.path.isdir(self.root):
            mine = {t.rel for t in self.targets}
            others = [
                os.path.join(self.root, *r.split("/"))
                for r in _walk_files(self.root)
                if r not in mine
            ]
        total = sum(os.path.getsize(t.path) for t in existing)
        scanned = [0]
        for t in existing:
            t.existed = True
            t.unchanged = self._scan(t.path, want, scanned, total, like=t.entry)
        # partial files from an interrupted pull: checked in place
        for t in self.targets:
            if t.unchanged:
                continue
            t.partial = partial_path(t.path)
            t.present = bytearray(len(t.entry.chunks))
            self._check_partial(t)
        needed = self._needed()
        if needed and (others or seed_list):
            extra = others + seed_list
            total = sum(os.path.getsize(p) for p in extra if os.path.isfile(p))
            scanned = [0]
            for p in extra:
                if not needed - set(self.local):
                    break
                self._scan(p, needed, scanned, total)

    def _check_partial(self, t: _Target) -> None:
        try:
            fd = os.open(t.partial, os.O_RDONLY)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            off = 0
            for i, c in enumerate(t.entry.chunks):
                if off + c.size <= size:
                    data = os.pread(fd, c.size, off)
                    if len(data) == c.size and blake3(data) == c.digest:
                        t.present[i] = True
                off += c.size
        except OSError:
            pass
        finally:
            os.close(fd)

    def _needed(self) -> Set[bytes]:
        out: Set[bytes] = set()
        for t in self.targets:
            if t.unchanged:
                continue
            for c, have in zip(t.entry.chunks, t.present):
                if not have:
                    out.add(c.digest)
        return out

    def _work(self) -> Tuple[List[_Copy], Dict[bytes, _Fetch]]:
        """(local copies, downloads) still to do."""
        copies: Dict[bytes, _Copy] = {}
        fetch: Dict[bytes, _Fetch] = {}
        for t in self.targets:
            if t.unchanged:
                continue
            off = 0
            for i, (c, have) in enumerate(zip(t.entry.chunks, t.present)):
                if not have:
                    src = self.local.get(c.digest)
                    if src is not None:
                        copies.setdefault(c.digest, (src, c, []))[2].append((t, off, i))
                    else:
                        fetch.setdefault(c.digest, _Fetch(c, []))
                        fetch[c.digest].targets.append((t, off, i))
                off += c.size
        return list(copies.values()), fetch

    def _classify(self) -> None:
        r = self.report
        for t in self.targets:
            if t.unchanged:
                r.unchanged.append(t.rel)
            elif t.existed:
                r.updated.append(t.rel)
            else:
                r.created.append(t.rel)

    def estimate(self) -> None:
        copies, fetch = self._work()
        self._classify()
        r = self.report
        r.local_chunks = len(copies) + sum(sum(t.present) for t in self.targets if not t.unchanged)
        r.fetched_chunks = len(fetch)
        r.downloaded_bytes += sum(f.ref.stored for f in fetch.values())
        r.requests += len(_requests(list(fetch.values())))

    # -- step 4: build the files

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
        copies, fetch = self._work()
        r.local_chunks = sum(sum(t.present) for t in work)
        self.total = sum(c.size * len(tg) for _, c, tg in copies) + sum(
            f.ref.size * len(f.targets) for f in fetch.values()
        )
        try:
            # local copies first: every old file is still in place now
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for ok, item in zip(pool.map(self._copy, copies), copies):
                    if ok:
                        r.local_chunks += 1
                    else:
                        src, c, tg = item
                        fetch.setdefault(c.digest, _Fetch(c, []))
                        fetch[c.digest].targets.extend(tg)
            reqs = _requests(list(fetch.values()))
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                for got in pool.map(self._fetch, reqs):
                    r.downloaded_bytes += got
                    r.requests += 1
            r.fetched_chunks = len(fetch)
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


@dataclass
class _Request:
    pack: bytes
    start: int
    length: int
    items: List[_Fetch]


def _requests(fetches: List[_Fetch]) -> List[_Request]:
    """Ranged GETs for the chunks to download: grouped by pack, sorted,
    neighbours (gap <= MERGE_GAP) merged up to MAX_REQUEST bytes."""
    by_pack: Dict[bytes, List[_Fetch]] = {}
    for f in fetches:
        by_pack.setdefault(f.ref.pack, []).append(f)
    out: List[_Request] = []
    for pack, items in by_pack.items():
        items.sort(key=lambda f: f.ref.offset)
        cur: Optional[_Request] = None
        for f in items:
            a, b = f.ref.offset, f.ref.offset + f.ref.stored
            if (
                cur is not None
                and a - (cur.start + cur.length) <= MERGE_GAP
                and b - cur.start <= MAX_REQUEST
            ):
                cur.length = max(cur.length, b - cur.start)
                cur.items.append(f)
            else:
                cur = _Request(pack, a, b - a, [f])
                out.append(cur)
    # biggest first keeps the workers busy to the end
    out.sort(key=lambda q: -q.length)
    return out


def _locked(
    dest: str, enabled: bool, timeout: Optional[float]
) -> "contextlib.AbstractContextManager[bool]":
    """The destination's lock (yields True if we waited for another pull), or nothing."""
    return dest_lock(dest, timeout) if enabled else contextlib.nullcontext(False)


def list_tags(st: Store) -> List[str]:
    """Names of the tags in a store."""
    return sorted(o.key[len(TAGS) :] for o in st.list(TAGS))
