"""pull, steps 3-4 planned: what is here already, and the work in windows.

Every target file is chunked (the content-defined cut points of push): an
unchanged file is left alone, the chunks of the others (and of the seeds)
become local sources. Sources are kept in compact columns beside a sorted
table of the wanted digests (:class:`~.digests.DigestSet`), never as an
object per chunk, and the copies and downloads are planned a window of
:data:`WINDOW` chunk references at a time, so memory does not grow with the
number of chunks beyond a few dozen bytes each (the manifest's chunk list,
the wanted digests, and each chunk's place in its file).
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from array import array
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import FileAccessError, UsageError
from ..formats import manifest as mf
from .base import Store
from .chunker import ChunkParams, chunk_stream
from .digests import DigestSet
from .packs import blake3
from .pull_state import _reason, _walk_files, partial_path
from .report import Progress, PullReport

ProgressFn = Callable[[Progress], None]

#: Chunk references planned (and then copied / downloaded) at a time.
WINDOW = 1 << 12
#: Largest ranged GET (merged neighbouring chunks of one pack).
MAX_REQUEST = 8 << 20
#: Chunks of one pack at most this far apart are fetched in one request (the
#: chunks a push adds are contiguous in its packs, so a pull of its version
#: needs few requests even with a small gap, and fetches few unneeded bytes).
MERGE_GAP = 16 << 10

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


class _Plan:
    """One pull's plan: targets, local sources, the work in windows."""

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
        # the wanted digests (sorted) and, beside each, a local source:
        # number of its file in src_paths (-1: none yet) and offset there
        self.want = DigestSet(b"")
        self.src_file = array("i")
        self.src_off = array("Q")
        self.src_paths: List[str] = []
        self._src_no: Dict[str, int] = {}
        self.need = bytearray()  # wanted digest i is missing from the partial files
        self.missing = 0  # needed digests without a local source
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
        scanned: List[int],
        total: int,
        like: Optional[mf.FileEntry] = None,
    ) -> bool:
        """Chunk a local file, recording the wanted chunks as sources.

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
                    self._remember(c.digest, path, c.offset)
                self.identity[path] = _identity(os.fstat(fh.fileno()))
        except OSError as e:
            raise FileAccessError(f"cannot read {path}: {_reason(e)}") from None
        return same and i == len(like.chunks)  # type: ignore[union-attr]

    def _remember(self, digest: bytes, path: str, offset: int) -> None:
        """Record a local source of a wanted chunk (the first one found)."""
        pos = self.want.find(digest)
        if pos < 0 or self.src_file[pos] >= 0:
            return
        n = self._src_no.get(path)
        if n is None:
            n = self._src_no[path] = len(self.src_paths)
            self.src_paths.append(path)
        self.src_file[pos] = n
        self.src_off[pos] = offset
        if self.need and self.need[pos]:
            self.missing -= 1

    def plan(self, seeds: Sequence["str | os.PathLike[str]"]) -> None:
        for t in self.targets:
            _check_inside(self.root, t.path)
            if os.path.isdir(t.path) and not os.path.islink(t.path):
                raise FileAccessError(f"cannot write {t.path}: it is a folder")
        self.want = DigestSet.from_digests(
            t.entry.chunks.digest(i) for t in self.targets for i in range(len(t.entry.chunks))
        )
        self.src_file = array("i", [-1]) * len(self.want)
        self.src_off = array("Q", bytes(8 * len(self.want)))
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
            t.unchanged = self._scan(t.path, scanned, total, like=t.entry)
        # partial files from an interrupted pull: checked in place
        for t in self.targets:
            if t.unchanged:
                continue
            t.partial = partial_path(t.path)
            t.present = bytearray(len(t.entry.chunks))
            self._check_partial(t)
        self._count_needed()
        if self.missing and (others or seed_list):
            extra = others + seed_list
            total = sum(os.path.getsize(p) for p in extra if os.path.isfile(p))
            scanned = [0]
            for p in extra:
                if not self.missing:
                    break
                self._scan(p, scanned, total)

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

    def _count_needed(self) -> None:
        """Mark the wanted digests missing from the partial files, and count
        those without a local source."""
        need = bytearray(len(self.want))
        for t in self.targets:
            if t.unchanged:
                continue
            chunks = t.entry.chunks
            for i, have in enumerate(t.present):
                if not have:
                    need[self.want.find(chunks.digest(i))] = 1
        self.need = need
        self.missing = sum(1 for i, n in enumerate(need) if n and self.src_file[i] < 0)

    def _windows(self) -> Iterator[Tuple[List[_Copy], Dict[bytes, _Fetch]]]:
        """(local copies, downloads) still to do, WINDOW chunk references at
        a time. The caller records what a window brought (:meth:`_remember`)
        before asking for the next, so a chunk is downloaded once and copied
        from where it landed after that."""
        copies: Dict[bytes, _Copy] = {}
        fetch: Dict[bytes, _Fetch] = {}
        n = 0
        for t in self.targets:
            if t.unchanged:
                continue
            chunks = t.entry.chunks
            off = 0
            for i, size in enumerate(chunks.sizes()):
                if not t.present[i]:
                    c = chunks[i]
                    pos = self.want.find(c.digest)
                    f = self.src_file[pos]
                    if c.digest in fetch:
                        fetch[c.digest].targets.append((t, off, i))
                    elif f >= 0:
                        src = (self.src_paths[f], self.src_off[pos], c.size)
                        copies.setdefault(c.digest, (src, c, []))[2].append((t, off, i))
                    else:
                        fetch[c.digest] = _Fetch(c, [(t, off, i)])
                    n += 1
                    if n >= WINDOW:
                        yield list(copies.values()), fetch
                        copies, fetch, n = {}, {}, 0
                off += size
        if copies or fetch:
            yield list(copies.values()), fetch

    def _to_place(self) -> int:
        """Bytes still to write into the partial files."""
        total = 0
        for t in self.targets:
            if not t.unchanged:
                total += sum(s for s, p in zip(t.entry.chunks.sizes(), t.present) if not p)
        return total

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
        """Fill the report as the pull would (a dry run: nothing changes)."""
        self._classify()
        r = self.report
        r.local_chunks = sum(sum(t.present) for t in self.targets if not t.unchanged)
        for copies, fetch in self._windows():
            r.local_chunks += len(copies)
            r.fetched_chunks += len(fetch)
            r.downloaded_bytes += sum(f.ref.stored for f in fetch.values())
            r.requests += len(_requests(list(fetch.values())))
            for d, f in fetch.items():  # later windows would copy it from there
                t, off, _ = f.targets[0]
                self._remember(d, t.partial, off)

    # -- step 4: build the files


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
