"""Folder pushes: find the files that are already the same by their digests,
all at once, with both ends hashing at the same time (feature "compare").

A folder sync compares every file by content. File by file through the
signature and delta exchange, an unchanged shard still costs the receiver
its signature, the sender a scan, the receiver a check of the identity
delta, and two round trips, while the other end idles. For a checkpoint of
40 shards with 3 changed that is most of the time. So before the files go
one by one, a push asks the far end for the BLAKE3 digests of every file it
has of the same size (one ``digests`` request; the far end hashes them on
all its cores), while this end hashes its own meanwhile. Files whose
digests agree are done: a ``touch`` request gives them the sender's mode
and time (the far end checks the digest against the one it computed for
that very file, unchanged since). The others go through the usual
exchange, which verifies every result as always.
"""

from __future__ import annotations

import functools
import os
import stat
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from .._threads import resolve_threads
from ..backends import backend
from ..errors import ProtocolError, PydeltaError, RemoteError, os_reason
from . import fs
from .report import SyncedFile
from .transfer import applied_mode

#: The feature name agreed in hello (messages.FEATURES).
FEATURE = "compare"
#: The far end hashes in the background ("hash", then "hashed" for the
#: results as they come) while the files found different are sent.
AHEAD = "compare-ahead"
#: Bytes read per step while hashing.
STEP = 8 << 20
#: Files per request (a JSON frame stays far below wire.MAX_FRAME).
BATCH = 20000
#: Files a source walk queues for hashing ahead (others are hashed when asked for).
MAX_AHEAD = 10000
#: The nice value of the threads that hash ahead (on Linux, per thread): the
#: transfer they overlap goes first, they take the cores it leaves idle.
BACKGROUND_NICE = 10


def lower_priority() -> None:
    """Pool initializer: run this thread at :data:`BACKGROUND_NICE` or lower
    priority (where a thread can have its own; elsewhere nothing changes)."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:  # never raised
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


def file_digest(fh: Any, stop: Optional[threading.Event] = None) -> Optional[bytes]:
    """BLAKE3 of an open file from its start (bounded memory); None if
    ``stop`` was set before the end."""
    hasher = backend.Blake3()
    buf = bytearray(STEP)
    view = memoryview(buf)
    fd = fh.fileno()
    off = 0
    while stop is None or not stop.is_set():
        n = os.preadv(fd, [view], off)
        if not n:
            return hasher.digest()
        hasher.update(view[:n])
        off += n
    return None


#: What identifies one state of a file: (device, inode, size, mtime, ctime).
Identity = Tuple[int, ...]


def _identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_source(
    path: str, follow: bool, stop: Optional[threading.Event] = None
) -> Optional[Tuple[Identity, bytes]]:
    """The identity and digest of the source file at path, or None (unreadable,
    not a regular file, changed while read, or stopped)."""
    try:
        with fs.open_source(path, follow=follow) as fh:
            before = _identity(os.fstat(fh.fileno()))
            digest = file_digest(fh, stop)
            if digest is None or _identity(os.fstat(fh.fileno())) != before:
                return None
    except (PydeltaError, OSError):
        return None
    return before, digest


class Known:
    """Digests of source files computed for the comparison, by path, for the
    delta's end record (it then needs no second reading of NEW). One is
    handed out only for the very file state it was computed from.

    Args:
        ahead: also hand out what it finished hashing (:meth:`SourceDigests.done`).
    """

    def __init__(self, ahead: Optional["SourceDigests"] = None) -> None:
        self._known: Dict[str, Tuple[Identity, bytes]] = {}
        self._ahead = ahead

    def add(self, rel: str, hashed: Tuple[Identity, bytes]) -> None:
        self._known[rel] = hashed

    def take(self, rel: str, fd: int) -> Optional[bytes]:
        """The digest of rel if the open fd is still the file state hashed."""
        got = self._known.pop(rel, None)
        if got is None and self._ahead is not None:
            got = self._ahead.done(rel)
        if got is None or _identity(os.fstat(fd)) != got[0]:
            return None
        return got[1]


class SourceDigests:
    """The source folder's digests, hashed ahead on a pool of threads.

    Started before the connection is up, this end hashes its files while ssh
    connects and the far end starts; :meth:`get` then waits only for what is
    not done yet. Bounded: :meth:`keep` cancels the files the plan does not
    compare (those not yet started), and :meth:`close` stops everything.

    Args:
        root: the local source folder.
        threads: the pool's size (None: all cores).
        links: the source's link mode ("skip", "keep" or "copy").
        walk: hash every file found under root (else only those asked for).
    """

    def __init__(
        self, root: str, threads: Optional[int], links: str = "skip", walk: bool = True
    ) -> None:
        self.root = root
        self._follow = links == "copy"
        self._links = links
        self._pool = ThreadPoolExecutor(
            max(1, resolve_threads(threads)),
            thread_name_prefix="pydelta-digest",
            initializer=lower_priority,
        )
        self._jobs: Dict[str, "Future[Optional[Tuple[Identity, bytes]]]"] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        if walk:  # else only what get() asks for
            self._pool.submit(self._walk)

    def _walk(self) -> None:
        try:
            entries = fs.walk(fs.expand(self.root), self._links)
        except (PydeltaError, OSError):
            return
        files = [e["path"] for e in entries if e.get("type") == "file"]
        for rel in files[:MAX_AHEAD]:  # the rest when asked for
            self._job(rel)

    def _job(self, rel: str) -> Optional["Future[Optional[Tuple[Identity, bytes]]]"]:
        with self._lock:
            if self._closed:
                return None
            fut = self._jobs.get(rel)
            if fut is None:
                path = fs.expand(os.path.join(self.root, rel))
                fut = self._pool.submit(hash_source, path, self._follow, self._stop)
                self._jobs[rel] = fut
            return fut

    def queue(self, rels: List[str]) -> None:
        """Hash these files next (in this order, after those queued already)."""
        for rel in rels:
            self._job(rel)

    def done(self, rel: str) -> Optional[Tuple[Identity, bytes]]:
        """The identity and digest of rel if it was hashed already, else None
        (does not wait)."""
        with self._lock:
            fut = self._jobs.get(rel)
        if fut is None or not fut.done() or fut.cancelled():
            return None
        return fut.result()

    def get(self, rel: str) -> Optional[Tuple[Identity, bytes]]:
        """The identity and digest of the source file rel (hashed now if it was
        not queued), or None."""
        fut = self._job(rel)
        if fut is None or fut.cancelled():
            return hash_source(fs.expand(os.path.join(self.root, rel)), self._follow)
        return fut.result()

    def keep(self, rels: Any) -> None:
        """Do not start hashing the files not in rels (those running finish:
        their digests still serve a file's delta, see :class:`Known`)."""
        with self._lock:
            for rel, fut in self._jobs.items():
                if rel not in rels:
                    fut.cancel()

    def close(self) -> None:
        """Stop all hashing and the pool."""
        with self._lock:
            self._closed = True
            self._stop.set()
            for fut in self._jobs.values():
                fut.cancel()
        self._pool.shutdown(wait=True)


# -- the serving end ---------------------------------------------------------------


class Digests:
    """The serving end's side: digests of files under a root, and touching
    those found the same. Remembers what it hashed (by identity) for touch."""

    def __init__(self, threads: Optional[int]) -> None:
        self.threads = resolve_threads(threads)
        self._seen: Dict[Tuple[str, str], Tuple[Tuple[int, ...], bytes]] = {}
        # feature "compare-ahead": the files being hashed in the background,
        # in the order asked, and how many of them were answered
        self._pool: Optional[ThreadPoolExecutor] = None
        self._ahead: List["Future[Optional[str]]"] = []
        self._answered = 0
        self._stop = threading.Event()

    def _one(self, root: str, rel: str, size: int) -> Optional[str]:
        dir_fd, base = fs.open_parent(root, rel)
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return None
            with fs.open_in(dir_fd, base, rel) as fh:
                before = os.fstat(fh.fileno())
                digest = file_digest(fh, self._stop)
                if digest is None or _identity(os.fstat(fh.fileno())) != _identity(before):
                    return None  # changed while read
        finally:
            os.close(dir_fd)
        self._seen[(root, rel)] = (_identity(before), digest)
        return digest.hex()

    def digests(self, root: str, files: List[Tuple[str, int]]) -> List[Optional[str]]:
        """Per (path, size): the hex BLAKE3 of the regular file there if it has
        that size, else None (missing, another size or kind, unreadable)."""

        one = functools.partial(self._safe_one, root)
        if self.threads < 2 or len(files) < 2:
            return [one(*f) for f in files]
        with ThreadPoolExecutor(self.threads, thread_name_prefix="pydelta-digest") as ex:
            return list(ex.map(one, *zip(*files)))

    def _safe_one(self, root: str, rel: str, size: int) -> Optional[str]:
        try:
            return self._one(root, rel, size)
        except (PydeltaError, OSError, ValueError):
            return None

    def start(self, root: str, files: List[Tuple[str, int]]) -> None:
        """Begin hashing the files (as :meth:`digests`) in the background, in
        order, on all cores; :meth:`ready` hands out the results. Ends any
        earlier such run."""
        self.close()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            self.threads, thread_name_prefix="pydelta-digest", initializer=lower_priority
        )
        self._ahead = [self._pool.submit(self._safe_one, root, *f) for f in files]
        self._answered = 0

    def ready(self) -> List[Optional[str]]:
        """The next results of :meth:`start` in order: waits for the first one
        not yet handed out, adds those after it that are done; [] at the end."""
        todo = self._ahead[self._answered :]
        if not todo:
            return []
        out = [None if todo[0].cancelled() else todo[0].result()]
        for fut in todo[1:]:
            if not fut.done():
                break
            out.append(None if fut.cancelled() else fut.result())
        self._answered += len(out)
        return out

    def close(self) -> None:
        """Stop background hashing (the session ends, or starts another)."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def touch(self, root: str, rel: str, digest: str, mode: Any, mtime_ns: Any) -> bool:
        """Give the file the sender's mode and time if it is still the one
        hashed here with this digest; False (nothing done) otherwise."""
        seen = self._seen.get((root, rel))
        if seen is None or seen[1].hex() != digest:
            return False
        dir_fd, base = fs.open_parent(root, rel)
        try:
            with fs.open_in(dir_fd, base, rel) as fh:
                fd = fh.fileno()
                if _identity(os.fstat(fd)) != seen[0]:
                    return False
                m = applied_mode(mode, new_file=False) if isinstance(mode, int) else None
                if m is not None and stat.S_IMODE(os.fstat(fd).st_mode) != m:
                    os.fchmod(fd, m)
                if isinstance(mtime_ns, int) and os.fstat(fd).st_mtime_ns != mtime_ns:
                    os.utime(fd, ns=(time.time_ns(), mtime_ns))
        except (OSError, OverflowError, ValueError) as e:
            why = os_reason(e) if isinstance(e, OSError) else str(e)
            raise fs.FileAccessError(f"cannot set the times or mode of {rel}: {why}") from None
        finally:
            os.close(dir_fd)
        return True


def _files(msg: Dict[str, Any]) -> Tuple[str, List[Tuple[str, int]]]:
    """The root and [(path, size)] of a ``digests`` or ``hash`` request."""
    root, files = msg.get("root"), msg.get("files")
    if not isinstance(root, str) or not isinstance(files, list) or len(files) > BATCH:
        raise ValueError(f"malformed {msg.get('op')} request")
    items = []
    for f in files:
        if (
            not isinstance(f, list)
            or len(f) != 2
            or not isinstance(f[0], str)
            or not isinstance(f[1], int)
            or isinstance(f[1], bool)
            or f[1] < 0
        ):
            raise ValueError("malformed digests entry")
        items.append((f[0], f[1]))
    return fs.expand(root), items


def serve_digests(digests: Digests, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``digests`` request ({"root", "files": [[path, size], ...]})."""
    return {"ok": True, "digests": digests.digests(*_files(msg))}


def serve_hash(digests: Digests, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``hash`` request (as ``digests``; feature "compare-ahead"):
    the hashing starts, the answer comes at once."""
    digests.start(*_files(msg))
    return {"ok": True}


def serve_hashed(digests: Digests, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``hashed`` request: the next digests of the ``hash``
    request, in its order (at least one; [] once all were sent)."""
    return {"ok": True, "digests": digests.ready()}


def serve_touch(digests: Digests, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``touch`` request ({"root", "files": [[path, digest, mode, mtime_ns]]})."""
    root, files = msg.get("root"), msg.get("files")
    if not isinstance(root, str) or not isinstance(files, list) or len(files) > BATCH:
        raise ValueError("malformed touch request")
    root = fs.expand(root)
    done = []
    for f in files:
        if not isinstance(f, list) or len(f) != 4 or not all(isinstance(x, str) for x in f[:2]):
            raise ValueError("malformed touch entry")
        try:
            done.append(digests.touch(root, f[0], f[1], f[2], f[3]))
        except (PydeltaError, OSError):
            done.append(False)
    return {"ok": True, "done": done}


# -- the driving end ---------------------------------------------------------------


def candidates(
    entries: List[Dict[str, Any]], have: Dict[str, Dict[str, Any]]
) -> List[Dict[str, Any]]:
    """The source's regular files the far end lists as regular files of the
    same size: those worth comparing by digest (at most BATCH)."""
    return [
        e
        for e in entries
        if e["type"] == "file"
        and have.get(e["path"], {}).get("type") == "file"
        and have[e["path"]].get("size") == e["size"]
    ][:BATCH]


def _touch(
    call: Callable[[Dict[str, Any]], Dict[str, Any]],
    dest: str,
    same: List[Tuple[Dict[str, Any], str]],
) -> List[bool]:
    """Ask the far end to give the files found the same (entry, digest) the
    source's mode and time; per file whether it did (all False on a refusal)."""
    if not same:
        return []
    files = [[e["path"], d, e.get("mode"), e.get("mtime_ns")] for e, d in same]
    try:
        done = call({"op": "touch", "root": dest, "files": files}).get("done")
    except RemoteError:
        return [False] * len(same)
    if not isinstance(done, list) or len(done) != len(same):
        raise ProtocolError("the far end answered touch malformedly")
    return [ok is True for ok in done]


class Comparison:
    """The driving end of feature "compare-ahead": the far end hashes the
    candidates in the background while this end sends the files found
    different, each as soon as both digests for it are known.

    ``different()`` yields those files (the caller sends each before asking
    for more); ``touch()`` then settles the same ones.

    Raises:
        RemoteError: the far end refused the ``hash`` request (from the
            constructor; nothing started: compare the older way or not at all).
    """

    def __init__(
        self,
        call: Callable[[Dict[str, Any]], Dict[str, Any]],
        dest: str,
        cands: List[Dict[str, Any]],
        mine: SourceDigests,
        known: Known,
        presign: Optional[Callable[[List[str]], None]] = None,
    ) -> None:
        self.cands = cands
        self._presign = presign
        self._call = call
        self._dest = dest
        self._mine = mine
        self._known = known
        self._same: List[Tuple[Dict[str, Any], str]] = []
        mine.queue([e["path"] for e in cands])
        call({"op": "hash", "root": dest, "files": [[e["path"], e["size"]] for e in cands]})

    def different(self) -> Iterator[Dict[str, Any]]:
        """The candidates not found the same (different, or not comparable), in
        order, as the far end's digests arrive; the same ones are kept."""
        i = 0
        while i < len(self.cands):
            try:
                theirs = self._call({"op": "hashed"}).get("digests")
            except RemoteError:
                yield from self.cands[i:]  # the far end gave up: the usual exchange
                return
            if not isinstance(theirs, list) or not 0 < len(theirs) <= len(self.cands) - i:
                raise ProtocolError("the far end answered hashed malformedly")
            differ = []
            for d in theirs:
                e = self.cands[i]
                i += 1
                got = self._mine.get(e["path"])
                if got is not None and got[0][2] == e["size"] and d == got[1].hex():
                    self._same.append((e, d))
                    continue
                if got is not None:
                    self._known.add(e["path"], got)
                differ.append(e)
            if len(differ) > 1 and self._presign is not None:
                self._presign([e["path"] for e in differ[1:]])  # signed while the first goes
            yield from differ

    def touch(self) -> Tuple[Dict[str, SyncedFile], List[Dict[str, Any]]]:
        """Settle the files found the same: their report lines (by path), and
        the entries the far end would not touch (changed since: send them)."""
        done = _touch(self._call, self._dest, self._same)
        lines = {
            e["path"]: SyncedFile(e["path"], "unchanged", e["size"])
            for (e, _), ok in zip(self._same, done)
            if ok
        }
        return lines, [e for (e, _), ok in zip(self._same, done) if not ok]


def same_files(
    call: Callable[[Dict[str, Any]], Dict[str, Any]],
    src: str,
    dest: str,
    entries: List[Dict[str, Any]],
    have: Dict[str, Dict[str, Any]],
    threads: Optional[int],
    follow: bool = False,
    ahead: Optional[SourceDigests] = None,
    known: Optional[Known] = None,
) -> Dict[str, SyncedFile]:
    """The source files (by path) found already the same at the far end, with
    their lines of the report ("unchanged"); the far end gave them the
    source's mode and time. ``call`` sends one request and returns the reply.

    Candidates are the regular files the far end lists with the same size.
    Anything that goes wrong leaves a file to the usual exchange. ``ahead``:
    this end's digests hashed ahead (:class:`SourceDigests` of src);
    ``known`` collects this end's digests of the files found different.
    """
    cands = candidates(entries, have)
    if ahead is not None:
        ahead.keep({e["path"] for e in cands})
    if not cands:
        return {}
    nthreads = resolve_threads(threads)

    def mine(e: Dict[str, Any]) -> Optional[Tuple[Identity, bytes]]:
        if ahead is not None:
            got = ahead.get(e["path"])
        else:
            got = hash_source(fs.expand(os.path.join(src, e["path"])), follow)
        return got if got is not None and got[0][2] == e["size"] else None

    # our digests are computed while the far end computes its own
    with ThreadPoolExecutor(max(1, nthreads), thread_name_prefix="pydelta-digest") as ex:
        ours = [ex.submit(mine, e) for e in cands]
        try:
            reply = call(
                {"op": "digests", "root": dest, "files": [[e["path"], e["size"]] for e in cands]}
            )
        except RemoteError:
            return {}
        theirs = reply.get("digests")
        if not isinstance(theirs, list) or len(theirs) != len(cands):
            raise ProtocolError("the far end answered digests malformedly")
        same = []
        for e, fut, d in zip(cands, ours, theirs):
            got = fut.result()
            if got is not None and isinstance(d, str) and d == got[1].hex():
                same.append((e, d))
            elif got is not None and known is not None:
                known.add(e["path"], got)
    done = _touch(call, dest, same)
    return {
        e["path"]: SyncedFile(e["path"], "unchanged", e["size"])
        for (e, _), ok in zip(same, done)
        if ok
    }
