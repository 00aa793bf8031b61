"""Folder pushes: the receiving end signs the files about to be updated
before their turn (feature "presign").

A put's first step is the receiving end signing its old copy (reading all
of it) while the sender waits for the signature. In a folder push the
sender knows early which existing files it will update - the ones of
another size once the listings are in, the ones of the same size as soon as
their digests differ (.compare) - so it names them in a ``presign`` request,
and the far end signs them, in that order, on a background thread, into its
signature cache (.sigcache): when the put comes, the signature is there at
once (a put arriving while its file is still being signed waits for it).

Only an optimisation: a file that changes in between no longer matches its
cache entry (keyed by device, inode, size and times), and every result is
verified as always. Without a signature cache (``--no-sig-cache`` or none
configured) nothing is signed ahead.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

from ..errors import PydeltaError
from . import fs
from .sigcache import MIN_FILE, SigCache, sign_file

#: The feature name agreed in hello (messages.FEATURES).
FEATURE = "presign"
#: Files one session may have queued (a request names at most this many).
MAX_QUEUED = 20000
#: Larger files are not signed ahead (the session's end waits for the one
#: being signed).
MAX_SIZE = 4 << 30


class Presigner:
    """The receiving end's side: signs named files into its cache, in order,
    on one background thread.

    Args:
        cache: the signature cache (None: nothing is done).
    """

    def __init__(self, cache: Optional[SigCache]) -> None:
        self.cache = cache
        self._pool: Optional[ThreadPoolExecutor] = None
        self._jobs: Dict[Tuple[str, str], "Future[None]"] = {}
        self._stop = threading.Event()

    def add(self, root: str, rels: Any) -> int:
        """Queue the files under root (paths checked as for any request);
        returns how many were queued."""
        if self.cache is None:
            return 0
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pydelta-presign")
        n = 0
        for rel in rels:
            if len(self._jobs) >= MAX_QUEUED or (root, rel) in self._jobs:
                continue
            self._jobs[(root, rel)] = self._pool.submit(self._sign, root, rel)
            n += 1
        return n

    def _sign(self, root: str, rel: str) -> None:
        cache = self.cache
        try:
            path = fs.resolve(root, rel)
            st = os.stat(path, follow_symlinks=False)
        except (PydeltaError, OSError, ValueError):
            return
        if cache is not None and MIN_FILE <= st.st_size <= MAX_SIZE:
            sign_file(path, cache, threads=1, stop=self._stop)

    def wait(self, root: str, rel: str) -> None:
        """If the file is queued or being signed, wait until it is done."""
        fut = self._jobs.pop((root, rel), None)
        if fut is not None:
            try:
                fut.result()
            except (PydeltaError, OSError, ValueError, MemoryError):
                pass  # the cache never fails a put

    def close(self) -> None:
        """Drop what was not started; stop the file being signed (at its next
        piece) and wait for that: a session that ends, or loses its client,
        does not wait for a whole large file to be read."""
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._jobs.clear()


def serve_presign(presigner: Presigner, msg: Dict[str, Any]) -> Dict[str, Any]:
    """The reply to a ``presign`` request ({"root", "files": [path, ...]})."""
    root, files = msg.get("root"), msg.get("files")
    if (
        not isinstance(root, str)
        or not isinstance(files, list)
        or len(files) > MAX_QUEUED
        or not all(isinstance(f, str) for f in files)
    ):
        raise ValueError("malformed presign request")
    return {"ok": True, "queued": presigner.add(fs.expand(root), files)}
