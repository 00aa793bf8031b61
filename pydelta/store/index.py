"""What a store already holds: every chunk in its packs, from the pack indexes.

Push decides which chunks to upload from this index, never by asking the
store about each chunk: one listing of ``packs/`` (a request per 1,000
objects on S3) plus the index objects not yet in the local cache. Pack
indexes never change once written (their packs are named by content), so
they are cached on disk (``$PYDELTA_CACHE_DIR``, else
``$XDG_CACHE_HOME/pydelta`` or ``~/.cache/pydelta``) per store URL; the
listing is the truth, so an index whose pack is gone is simply not used.
An index object is only written after its pack, so a pack whose upload was
interrupted (no index) is invisible and is uploaded again by the rerun,
while packs that arrived whole are reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

from ..formats import manifest as mf
from .base import Store
from .digests import ChunkTable
from .packs import blake3, index_key
from .stores import PACKS


def cache_root() -> str:
    """The directory of pydelta's caches."""
    env = os.environ.get("PYDELTA_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pydelta")


def _cache_dir(store: Store) -> str:
    key = hashlib.sha256(store.url.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(cache_root(), "pack-index", key)


def _read_cached(path: str, pack: bytes) -> Optional[mf.PackIndex]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        idx = mf.decode_pack_index(data, blake3, "cached pack index")
    except (OSError, ValueError):
        return None
    return idx if idx.pack == pack else None


def _write_cached(path: str, data: bytes) -> None:
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)


def list_packs(store: Store) -> List[bytes]:
    """Ids of the packs that have an index (complete packs)."""
    out = []
    for o in store.list(PACKS):
        name = o.key[len(PACKS) :]
        if name.endswith(".idx") and len(name) == 64 + 4:
            with contextlib.suppress(ValueError):
                out.append(bytes.fromhex(name[:64]))
    return sorted(out)


def load_index(store: Store, jobs: int = 8, use_cache: bool = True) -> ChunkTable:
    """digest -> location of every chunk in the store's complete packs.

    A :class:`~.digests.ChunkTable` (~49 bytes a chunk); pack indexes are
    read ``jobs`` at a time and dropped once their entries are in the table.
    """
    packs = list_packs(store)
    cdir = _cache_dir(store) if use_cache else None

    def one(pack: bytes) -> mf.PackIndex:
        path = os.path.join(cdir, pack.hex() + ".idx") if cdir else None
        if path:
            cached = _read_cached(path, pack)
            if cached is not None:
                return cached
        data = store.get(index_key(pack))
        idx = mf.decode_pack_index(data, blake3, f"{index_key(pack)} in store {store.url}")
        if idx.pack != pack:
            from ..errors import CorruptStoreError

            raise CorruptStoreError(
                f"{index_key(pack)} in store {store.url} describes another pack"
            )
        if path:
            _write_cached(path, data)
        return idx

    out = ChunkTable()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        # a window of packs at a time: pool.map would read every index first
        for w in range(0, len(packs), 2 * jobs):
            for idx in pool.map(one, packs[w : w + 2 * jobs]):
                n = out.pack_number(idx.pack)
                for e in idx.entries:
                    out.add(e.digest, n, e.offset, e.stored, e.codec)
    return out
