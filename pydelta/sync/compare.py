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

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._threads import resolve_threads
from ..backends import backend
from ..errors import ProtocolError, PydeltaError, RemoteError, os_reason
from . import fs
from .report import SyncedFile
from .transfer import applied_mode

#: The feature name agreed in hello (messages.FEATURES).
FEATURE = "compare"
#: Bytes read per step while hashing.
STEP = 8 << 20
#: Files per request (a JSON frame stays far below wire.MAX_FRAME).
BATCH = 20000


def file_digest(fh: Any) -> bytes:
    """BLAKE3 of an open file from its start (bounded memory)."""
    hasher = backend.Blake3()
    buf = bytearray(STEP)
    view = memoryview(buf)
    fd = fh.fileno()
    off = 0
    while True:
        n = os.preadv(fd, [view], off)
        if not n:
            return hasher.digest()
        hasher.update(view[:n])
        off += n


def _identity(st: os.stat_result) -> Tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# -- the serving end ---------------------------------------------------------------


class Digests:
    """The serving end's side: digests of files under a root, and touching
    those found the same. Remembers what it hashed (by identity) for touch."""

    def __init__(self, threads: Optional[int]) -> None:
        self.threads = resolve_threads(threads)
        self._seen: Dict[Tuple[str, str], Tuple[Tuple[int, ...], bytes]] = {}

    def _one(self, root: str, rel: str, size: int) -> Optional[str]:
        dir_fd, base = fs.open_parent(root, rel)
        try:
            st = os.stat(base, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                return None
            with fs.open_in(dir_fd, base, rel) as fh:
                before = os.fstat(fh.fileno())
                digest = file_digest(fh)
                if _identity(os.fstat(fh.fileno())) != _identity(before):
                    return None  # changed while read
        finally:
            os.close(dir_fd)
        self._seen[(root, rel)] = (_identity(before), digest)
        return digest.hex()

    def digests(self, root: str, files: List[Tuple[str, int]]) -> List[Optional[str]]:
        """Per (path, size): the hex BLAKE3 of the regular file there if it has
        that size, else None (missing, another size or kind, unreadable)."""

        def one(item: Tuple[str, int]) -> Optional[str]:
            try:
                return self._one(root, *item)
            except (PydeltaError, OSError, ValueError):
                return None

        if self.threads < 2 or len(files) < 2:
            return [one(f) for f in files]
        with ThreadPoolExecutor(self.threads, thread_name_prefix="pydelta-digest") as ex:
            return list(ex.map(one, files))

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


def serve_digests(digests: Digests, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``digests`` request ({"root", "files": [[path, size], ...]})."""
    root, files = msg.get("root"), msg.get("files")
    if not isinstance(root, str) or not isinstance(files, list) or len(files) > BATCH:
        raise ValueError("malformed digests request")
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
    return {"ok": True, "digests": digests.digests(fs.expand(root), items)}


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


def same_files(
    call: Callable[[Dict[str, Any]], Dict[str, Any]],
    src: str,
    dest: str,
    entries: List[Dict[str, Any]],
    have: Dict[str, Dict[str, Any]],
    threads: Optional[int],
    follow: bool = False,
) -> Dict[str, SyncedFile]:
    """The source files (by path) found already the same at the far end, with
    their lines of the report ("unchanged"); the far end gave them the
    source's mode and time. ``call`` sends one request and returns the reply.

    Candidates are the regular files the far end lists with the same size.
    Anything that goes wrong leaves a file to the usual exchange.
    """
    cands = [
        e
        for e in entries
        if e["type"] == "file"
        and have.get(e["path"], {}).get("type") == "file"
        and have[e["path"]].get("size") == e["size"]
    ][:BATCH]
    if not cands:
        return {}
    nthreads = resolve_threads(threads)

    def mine(e: Dict[str, Any]) -> Optional[bytes]:
        try:
            with fs.open_source(fs.expand(os.path.join(src, e["path"])), follow=follow) as fh:
                if os.fstat(fh.fileno()).st_size != e["size"]:
                    return None
                return file_digest(fh)
        except (PydeltaError, OSError):
            return None

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
            if got is not None and isinstance(d, str) and d == got.hex():
                same.append((e, d))
    if not same:
        return {}
    files = [[e["path"], d, e.get("mode"), e.get("mtime_ns")] for e, d in same]
    try:
        done = call({"op": "touch", "root": dest, "files": files}).get("done")
    except RemoteError:
        return {}
    if not isinstance(done, list) or len(done) != len(same):
        raise ProtocolError("the far end answered touch malformedly")
    return {
        e["path"]: SyncedFile(e["path"], "unchanged", e["size"])
        for (e, _), ok in zip(same, done)
        if ok is True
    }
