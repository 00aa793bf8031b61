"""mirror: copy versions from one store to another, moving only the packs it lacks.

``pydelta mirror SRC DST [--tag TAG]`` puts a copy of a store near its
readers (a bucket in another region, a directory on the node, the tree an
nginx or a CDN serves). Order of writes, so the mirror never shows a version
it cannot serve:

1. the store marker (the chunk sizes), if DST is new;
2. every pack the versions use that DST lacks - the pack, streamed through
   a spool file and checked against its id (its BLAKE3), then its index;
   a pack the source has repacked is copied as its relocation record plus
   the packs the record names;
3. the manifests (create-only; checked against their ids);
4. the tags, last, each with a compare-and-swap on DST.

Packs already in DST (pack and index) are not read at all, so mirroring
again after a push moves only the new packs. With ``tag``, only that
version and that tag; otherwise every version and every tag. A source
served over HTTP cannot be listed: give ``tag``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Set

from ..backends import backend
from ..errors import CorruptStoreError, StoreNotFoundError, UsageError
from ..formats import manifest as mf
from .base import CREATE, SWAP, ObjectInfo, Store
from .packs import index_key, pack_key
from .pull import read_manifest_bytes, resolve_version
from .relocate import decode_moved, moved_key
from .stores import CONFIG_KEY, PACKS, TAGS, VERSIONS, open_store, read_config, tag_key, version_key

#: bytes per ranged GET while copying a pack
BLOCK = 8 << 20


@dataclass
class MirrorReport:
    """What a mirror did (or, with dry_run, would do)."""

    src: str
    dst: str
    versions: List[str] = field(default_factory=list)  #: versions now in DST (copied or present)
    new_versions: int = 0  #: manifests written
    packs_copied: int = 0
    packs_present: int = 0  #: packs DST already had
    bytes_copied: int = 0  #: bytes written to DST (packs, indexes, records, manifests, tags)
    tags: Dict[str, str] = field(default_factory=dict)  #: tags set in DST -> version
    seconds: float = 0.0
    dry_run: bool = False

    def summary(self) -> str:
        """A few lines for people."""
        what = "would copy" if self.dry_run else "copied"
        tags = ", ".join(f"{t} -> {v[:16]}" for t, v in sorted(self.tags.items())) or "none"
        return "\n".join(
            [
                f"{self.src} -> {self.dst}: {len(self.versions)} version"
                f"{'s' if len(self.versions) != 1 else ''} ({self.new_versions} new)",
                f"{what} {self.packs_copied} pack{'s' if self.packs_copied != 1 else ''} "
                f"({self.bytes_copied:,} bytes); {self.packs_present} already there",
                f"tags: {tags}",
                f"{self.seconds:.2f} s",
            ]
        )


def _present(dst: Store) -> Set[str]:
    """Keys under packs/ in DST."""
    return {o.key for o in dst.list(PACKS)}


class _Copier:
    def __init__(
        self, src: Store, dst: Store, have: Set[str], dry_run: bool, report: MirrorReport
    ) -> None:
        self.src, self.dst, self.have, self.dry_run, self.report = src, dst, have, dry_run, report
        self.lock = threading.Lock()
        self.done: Set[bytes] = set()

    def _count(self, n: int, pack: bool = False) -> None:
        with self.lock:
            self.report.bytes_copied += n
            if pack:
                self.report.packs_copied += 1

    def pack(self, pack: bytes, depth: int = 0) -> None:
        """Make ``pack`` (or where its chunks went) available in DST."""
        with self.lock:
            if pack in self.done:
                return
            self.done.add(pack)
        if pack_key(pack) in self.have and index_key(pack) in self.have:
            with self.lock:
                self.report.packs_present += 1
            return
        if moved_key(pack) in self.have and pack_key(pack) not in self.have:
            return  # DST has the record (and so, by our order, its targets)
        try:
            idx_data = self.src.get(index_key(pack))
        except StoreNotFoundError:
            self._moved(pack, depth)
            return
        idx = mf.decode_pack_index(idx_data, _blake3, f"{index_key(pack)} in store {self.src.url}")
        if idx.pack != pack:
            raise CorruptStoreError(
                f"{index_key(pack)} in store {self.src.url} describes another pack"
            )
        if self.dry_run:
            self._count(idx.pack_size + len(idx_data), pack=True)
            return
        if pack_key(pack) not in self.have:
            self._copy_pack(pack, idx.pack_size)
        self.dst.put(index_key(pack), idx_data)
        self._count(idx.pack_size + len(idx_data), pack=True)

    def _moved(self, pack: bytes, depth: int) -> None:
        if depth > 8:
            raise CorruptStoreError(
                f"relocation records of pack {pack.hex()[:16]} go round in circles"
            )
        try:
            rec = self.src.get(moved_key(pack))
        except StoreNotFoundError:
            raise StoreNotFoundError(
                f"pack {pack.hex()[:16]} is not in store {self.src.url}: the store is damaged"
            ) from None
        for q in decode_moved(rec, pack, f"{moved_key(pack)} in store {self.src.url}"):
            self.pack(q, depth + 1)
        if not self.dry_run:
            self.dst.put(moved_key(pack), rec)
        self._count(len(rec))

    def _copy_pack(self, pack: bytes, size: int) -> None:
        spool = self.dst.spool_dir()
        fd, path = tempfile.mkstemp(prefix="mirror.", suffix=".tmp", dir=spool)
        try:
            h = backend.Blake3()
            with os.fdopen(fd, "wb") as fh:
                off = 0
                while off < size:
                    n = min(BLOCK, size - off)
                    data = self.src.get_range(pack_key(pack), off, n)
                    h.update(data)
                    fh.write(data)
                    off += n
                fh.flush()
                os.fsync(fh.fileno())
            if h.digest() != pack:
                raise CorruptStoreError(
                    f"pack {pack.hex()[:16]} in store {self.src.url} holds the wrong bytes (BLAKE3 mismatch)"
                )
            self.dst.put_file(pack_key(pack), path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)


class _Empty(Store):
    """A store that does not exist yet (a dry run's destination)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        return None, None

    def list(self, prefix: str) -> "Iterator[ObjectInfo]":
        return iter(())


def _blake3(data: bytes) -> bytes:
    return backend.blake3_digest(data)


def mirror(
    src: str,
    dst: str,
    *,
    tag: Optional[str] = None,
    jobs: int = 8,
    dry_run: bool = False,
    endpoint_url: Optional[str] = None,
    dst_endpoint_url: Optional[str] = None,
) -> MirrorReport:
    """Copy versions and tags from store ``src`` to store ``dst`` (see the module doc).

    Args:
        src: the store to copy from (any store, HTTP included with ``tag``).
        dst: the store to copy to (a local directory is created).
        tag: copy only this tag and its version (default: everything).
        jobs: packs copied in parallel.
        dry_run: write nothing; report what would be copied.
        endpoint_url: S3 endpoint of ``src`` (and of ``dst`` unless given).
        dst_endpoint_url: S3 endpoint of ``dst``.

    Example:
        >>> import pydelta.store
        >>> pydelta.store.mirror("s3://models-us/llama", "/mnt/cache/llama", tag="prod")  # doctest: +SKIP
    """
    t0 = time.monotonic()
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a positive number, not {jobs!r}")
    src, dst = os.fspath(src), os.fspath(dst)

    def ep(url: str, e: Optional[str]) -> Optional[str]:
        return e if url.startswith("s3://") else None

    def open_dst() -> Store:
        try:
            return open_store(
                dst,
                endpoint_url=ep(dst, dst_endpoint_url or endpoint_url),
                jobs=jobs,
                create=not dry_run,
            )
        except StoreNotFoundError:
            if not dry_run or dst.startswith("s3://"):
                raise
            return _Empty(dst)  # a dry run into a directory not created yet

    with open_store(src, endpoint_url=ep(src, endpoint_url), jobs=jobs) as s, open_dst() as d:
        if not d.writable:
            raise UsageError(f"cannot mirror into {d.url}: it is read-only")
        report = MirrorReport(s.url, d.url, dry_run=dry_run)
        params = read_config(s)
        if params is None:
            raise StoreNotFoundError(f"{s.url} is not a pydelta store (no {CONFIG_KEY})")
        theirs = read_config(d)
        if theirs is not None and theirs != params:
            raise UsageError(
                f"store {d.url} chunks with sizes {theirs.as_tuple()}, store {s.url} with "
                f"{params.as_tuple()}: mirror into an empty store"
            )
        # what to copy
        if tag is not None:
            vid = resolve_version(s, tag, None)
            raw, _ = s.get_token(tag_key(tag))
            tags = {tag: raw} if raw is not None else {}
            versions = [vid]
        else:
            versions = sorted(
                o.key[len(VERSIONS) :] for o in s.list(VERSIONS) if len(o.key) == len(VERSIONS) + 64
            )
            tags = {}
            for o in s.list(TAGS):
                raw, _ = s.get_token(o.key)
                if raw is not None:
                    tags[o.key[len(TAGS) :]] = raw
        have_versions = {o.key for o in d.list(VERSIONS)} if theirs is not None else set()
        have = _present(d) if theirs is not None else set()
        if theirs is None and not dry_run:
            marker = s.get(CONFIG_KEY)
            if d.put(CONFIG_KEY, marker, mode=CREATE):
                report.bytes_copied += len(marker)
        manifests: Dict[str, bytes] = {}
        packs: List[bytes] = []
        seen: Set[bytes] = set()
        for v in versions:
            if version_key(v) in have_versions:
                report.versions.append(v)
                continue
            man, data = read_manifest_bytes(s, v)
            manifests[v] = data
            for p in man.packs():
                if p not in seen:
                    seen.add(p)
                    packs.append(p)
        copier = _Copier(s, d, have, dry_run, report)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pydelta-mirror") as pool:
            list(pool.map(copier.pack, packs))
        for v, data in manifests.items():
            if not dry_run and d.put(version_key(v), data, mode=CREATE):
                report.bytes_copied += len(data)
            elif dry_run:
                report.bytes_copied += len(data)
            report.new_versions += 1
            report.versions.append(v)
        # tags last
        for name, raw in sorted(tags.items()):
            t = mf.decode_tag(raw, f"tag {name!r} in store {s.url}")
            if t.version not in report.versions:
                continue  # names a version we did not copy (gone from the source)
            if not dry_run:
                now, token = d.get_token(tag_key(name))
                if now != raw:
                    d.put(tag_key(name), raw, mode=SWAP, token=token)
                    report.bytes_copied += len(raw)
            report.tags[name] = t.version
        report.seconds = time.monotonic() - t0
        return report
