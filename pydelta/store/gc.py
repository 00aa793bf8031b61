"""gc: delete versions outside a policy and the packs nothing uses, safely
against pushes running at the same time; repack mostly-dead packs.

The rule (also in the README, "Store upkeep"): **a push must finish within
the grace period G of loading the store's index** (default
:data:`DEFAULT_GRACE`, 6 hours: far longer than any upload; ``--grace``).
Under that rule gc never breaks a version, because nothing is deleted in
one step:

1. **Condemn.** A pack that no kept version uses, and that is older than G
   (so no push still uploading could be about to name it), is hidden: its
   index is copied to ``gc/condemned/<pack>`` and ``packs/<pack>.idx`` is
   deleted. Push learns what the store holds from the indexes only, so no
   push that starts after this point can reuse the pack's chunks.
2. **Delete, a grace period later.** A later gc run, at least G after the
   condemnation, lists the versions again. A push that loaded the index
   before the condemnation has finished by then (the rule), so its
   manifest is in that listing: if any version now uses the pack, its
   index is restored; otherwise the pack is deleted.

Times are the store's own (object modification times, and a ``gc/clock``
object written at the start of each run), so the clocks of the machines
running push and gc do not matter.

Versions: with ``keep_last`` and/or ``keep_tagged`` the policy keeps the N
most recent versions and/or every tagged one; versions (and tags) outside
it are deleted. Versions younger than G are always kept (a push may be
about to tag one). With neither option no version is deleted and gc only
removes what nothing uses. A version's time is the later of its manifest's
and of the tags naming it. The packs of a deleted version stay until a
later run (step 2), so pulls already running finish.

Repacking: a pack still in use whose live chunks are under
``repack_below`` of its bytes (and older than G) has its live chunks
copied, as stored and verified, into new packs; a relocation record
``packs/<old>.moved`` names them (:mod:`.relocate`), and the old pack is
condemned as above. Manifests are never rewritten (a version's id is its
manifest's hash): pulls of older versions follow the record. At deletion
time every chunk that any version then uses must be found through the
record, else the old pack is restored instead.

Interrupted pushes leave packs without an index; those older than G are
deleted. A run's cost is one listing of the store plus every kept
manifest once (cached on disk: manifests never change), and the deletes.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

from ..backends import backend
from ..errors import CorruptStoreError, StoreNotFoundError, UsageError
from ..formats import manifest as mf
from .base import OVERWRITE, ObjectInfo, Store
from .index import cache_root
from .packs import DEFAULT_PACK_SIZE, PackWriter, decode_payload, index_key, pack_key
from .pull import read_manifest_bytes
from .relocate import decode_moved, encode_moved, locate, merge_ranges, moved_key
from .stores import PACKS, TAGS, VERSIONS, open_store, read_config, tag_key, version_key

#: Default grace period (seconds): longer than any push takes.
DEFAULT_GRACE = 6 * 3600.0
#: Repack a pack in use once its live chunks are under this share of its bytes.
REPACK_BELOW = 0.5
CONDEMNED = "gc/condemned/"
CLOCK_KEY = "gc/clock"


def _blake3(data: bytes) -> bytes:
    return backend.blake3_digest(data)


@dataclass
class GcReport:
    """What a gc run did (or, with dry_run, would do)."""

    store: str
    versions_kept: int = 0
    versions_deleted: List[str] = field(default_factory=list)
    tags_deleted: List[str] = field(default_factory=list)
    packs_condemned: int = 0  #: hidden now, deleted by a run at least the grace period later
    packs_deleted: int = 0
    packs_restored: int = 0  #: condemned, but a version (a racing push) uses them: index restored
    packs_waiting: int = 0  #: condemned, grace period not over yet
    packs_repacked: int = 0  #: mostly-dead packs whose live chunks were moved
    packs_written: int = 0  #: new packs written by repacking
    bytes_deleted: int = 0  #: bytes of pack objects deleted
    bytes_condemned: int = 0
    bytes_repacked: int = 0  #: bytes of new packs written by repacking
    orphans_deleted: int = 0  #: packs of interrupted pushes (no index) deleted
    grace: float = DEFAULT_GRACE
    seconds: float = 0.0
    dry_run: bool = False

    def summary(self) -> str:
        """A few lines for people."""
        would = ""
        lines = (
            ["dry run: nothing was changed; this is what a run would do"] if self.dry_run else []
        )
        lines += [
            f"versions: {self.versions_kept} kept, {len(self.versions_deleted)} {would}deleted"
            + (
                f" ({', '.join(v[:16] for v in self.versions_deleted[:8])}"
                f"{', ...' if len(self.versions_deleted) > 8 else ''})"
                if self.versions_deleted
                else ""
            ),
        ]
        if self.tags_deleted:
            lines.append(f"tags {would}deleted: {', '.join(self.tags_deleted)}")
        lines.append(
            f"packs: {self.packs_deleted} {would}deleted ({self.bytes_deleted:,} bytes), "
            f"{self.packs_condemned} {would}condemned ({self.bytes_condemned:,} bytes, deleted by a gc "
            f"at least {self.grace:g} s later), {self.packs_waiting} waiting, "
            f"{self.packs_restored} restored (in use again), {self.orphans_deleted} from interrupted "
            f"pushes {would}deleted"
        )
        if self.packs_repacked:
            lines.append(
                f"repacked {self.packs_repacked} mostly-dead pack{'s' if self.packs_repacked != 1 else ''}"
                f" into {self.packs_written} ({self.bytes_repacked:,} bytes written)"
            )
        lines.append(f"{self.seconds:.2f} s")
        return "\n".join(lines)


# ---------------------------------------------------------------- reading the store


def _manifest_cache(st: Store) -> str:
    import hashlib

    key = hashlib.sha256(st.url.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(cache_root(), "manifests", key)


def _load_manifest(st: Store, vid: str, cache: Optional[str]) -> mf.Manifest:
    what = f"manifest of version {vid[:16]} in store {st.url}"
    path = os.path.join(cache, vid) if cache else None
    if path:
        with contextlib.suppress(OSError):
            with open(path, "rb") as fh:
                data = fh.read()
            if _blake3(data).hex() == vid:
                return mf.decode_manifest(data, what)
    man, data = read_manifest_bytes(st, vid)
    if path:
        with contextlib.suppress(OSError):
            os.makedirs(cache, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
    return man


def _clock(st: Store) -> float:
    """The store's time now: the modification time of an object we just wrote."""
    st.put(CLOCK_KEY, f"{time.time():.3f}\n".encode(), mode=OVERWRITE)
    for o in st.list(CLOCK_KEY):
        if o.key == CLOCK_KEY:
            return o.mtime
    return time.time()


@dataclass
class _Snapshot:
    versions: Dict[str, float] = field(default_factory=dict)  # id -> time
    # name -> (version, mtime, the time the tag records: a finer tie-break for equal mtimes)
    tags: Dict[str, Tuple[str, float, float]] = field(default_factory=dict)
    packs: Dict[bytes, ObjectInfo] = field(default_factory=dict)
    indexes: Dict[bytes, ObjectInfo] = field(default_factory=dict)
    moved: Dict[bytes, ObjectInfo] = field(default_factory=dict)
    condemned: Dict[bytes, ObjectInfo] = field(default_factory=dict)


def _hex_id(name: str) -> Optional[bytes]:
    if len(name) != 64:
        return None
    try:
        return bytes.fromhex(name)
    except ValueError:
        return None


def _snapshot(st: Store, jobs: int) -> _Snapshot:
    s = _Snapshot()
    for o in st.list(VERSIONS):
        vid = o.key[len(VERSIONS) :]
        if _hex_id(vid) is not None:
            s.versions[vid] = o.mtime
    tag_objs = list(st.list(TAGS))

    def read_tag(o: ObjectInfo) -> Optional[Tuple[str, str, float, float]]:
        data, _ = st.get_token(o.key)
        if data is None:
            return None
        try:
            t = mf.decode_tag(data, f"{o.key} in store {st.url}")
        except CorruptStoreError:
            return None
        return o.key[len(TAGS) :], t.version, o.mtime, t.time

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for got in pool.map(read_tag, tag_objs):
            if got is not None:
                s.tags[got[0]] = got[1:]
    for o in st.list(PACKS):
        name = o.key[len(PACKS) :]
        stem, _, ext = name.partition(".")
        pid = _hex_id(stem)
        if pid is None:
            continue
        if ext == "pack":
            s.packs[pid] = o
        elif ext == "idx":
            s.indexes[pid] = o
        elif ext == "moved":
            s.moved[pid] = o
    for o in st.list(CONDEMNED):
        pid = _hex_id(o.key[len(CONDEMNED) :])
        if pid is not None:
            s.condemned[pid] = o
    return s


# ---------------------------------------------------------------- the run


def gc(
    store: str,
    *,
    keep_last: Optional[int] = None,
    keep_tagged: bool = False,
    grace: float = DEFAULT_GRACE,
    repack: bool = True,
    repack_below: float = REPACK_BELOW,
    pack_size: int = DEFAULT_PACK_SIZE,
    dry_run: bool = False,
    jobs: int = 8,
    endpoint_url: Optional[str] = None,
) -> GcReport:
    """Delete versions outside the policy and the packs no version uses.

    See the module documentation for the policy and the safety rule against
    concurrent pushes.

    Args:
        store: the store's URL or path.
        keep_last: keep the N most recent versions.
        keep_tagged: keep every version a tag names.
        grace: seconds; longer than any push takes (default 6 hours).
        repack: repack mostly-dead packs.
        repack_below: the live share of a pack's bytes under which it is repacked.
        pack_size: size of the packs repacking writes.
        dry_run: change nothing; report what would go.
        jobs: parallel requests.
        endpoint_url: the S3 endpoint.

    Example:
        >>> import pydelta.store
        >>> print(pydelta.store.gc("s3://models/llama", keep_last=5, keep_tagged=True).summary())  # doctest: +SKIP
    """
    t0 = time.monotonic()
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise UsageError(f"keep_last must be a number >= 0, not {keep_last!r}")
    if grace < 0:
        raise UsageError("the grace period cannot be negative")
    if not 0.0 <= repack_below <= 1.0:
        raise UsageError("repack_below is a share of a pack's bytes, between 0 and 1")
    with open_store(os.fspath(store), endpoint_url=endpoint_url, jobs=jobs) as st:
        if not st.writable:
            raise UsageError(f"cannot gc {st.url}: it is read-only")
        if read_config(st) is None:
            raise StoreNotFoundError(f"{st.url} is not a pydelta store")
        run = _Gc(st, grace, jobs, dry_run)
        run.go(keep_last, keep_tagged, repack, repack_below, pack_size)
        run.report.seconds = time.monotonic() - t0
        return run.report


class _Gc:
    def __init__(self, st: Store, grace: float, jobs: int, dry_run: bool) -> None:
        self.st = st
        self.grace = grace
        self.jobs = jobs
        self.dry_run = dry_run
        self.report = GcReport(st.url, grace=grace, dry_run=dry_run)
        # the clock is read before the listing: everything listed is at most this new
        self.now = time.time() if dry_run else _clock(st)
        self.snap = _snapshot(st, jobs)
        self.cache = _manifest_cache(st)

    def old(self, t: float) -> bool:
        return self.now - t >= self.grace

    # -- versions

    def policy(self, keep_last: Optional[int], keep_tagged: bool) -> Set[str]:
        s = self.snap
        # A version's age: the newest of its object's and its tags' store times.
        # Listings give those to the second only (S3), so two pushes in one
        # second tie; the time a tag records (the pushing client's clock, to the
        # millisecond) orders them then.
        when: Dict[str, Tuple[float, float]] = {v: (t, 0.0) for v, t in s.versions.items()}
        for vid, mtime, recorded in s.tags.values():
            if vid in when:
                when[vid] = max(when[vid], (mtime, recorded))
        if keep_last is None and not keep_tagged:
            return set(when)
        keep = {v for v, t in when.items() if not self.old(t[0])}
        if keep_last:
            keep |= {v for v, _ in sorted(when.items(), key=lambda kv: (kv[1], kv[0]))[-keep_last:]}
        if keep_tagged:
            keep |= {v for v, *_ in s.tags.values() if v in when}
        return keep

    def delete_versions(self, keep: Set[str]) -> None:
        r = self.report
        gone = sorted(set(self.snap.versions) - keep)
        r.versions_deleted = gone
        r.versions_kept = len(keep)
        gone_set = set(gone)
        for name, (vid, *_) in sorted(self.snap.tags.items()):
            if vid not in gone_set:
                continue
            if not self.dry_run:
                data, _ = self.st.get_token(tag_key(name))
                if data is None:
                    continue
                try:
                    if mf.decode_tag(data).version != vid:
                        continue  # moved meanwhile (a push): keep it
                except CorruptStoreError:
                    continue
                self.st.delete(tag_key(name))
            r.tags_deleted.append(name)
        if not self.dry_run:
            for vid in gone:
                self.st.delete(version_key(vid))

    # -- what is in use

    def usage(self, keep: Set[str]) -> Dict[bytes, Dict[int, mf.ChunkRef]]:
        """pack -> offset -> chunk, over every kept version."""
        used: Dict[bytes, Dict[int, mf.ChunkRef]] = {}
        lock = threading.Lock()

        def one(vid: str) -> None:
            try:
                man = _load_manifest(self.st, vid, self.cache)
            except StoreNotFoundError:
                return  # deleted meanwhile
            with lock:
                for f in man.files:
                    for c in f.chunks:
                        used.setdefault(c.pack, {})[c.offset] = c

        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            list(pool.map(one, sorted(keep)))
        return used

    def moved_targets(self, pack: bytes, depth: int = 0) -> Set[bytes]:
        """Packs a relocation record (and the records after it) lead to."""
        if pack not in self.snap.moved or depth > 8:
            return set()
        try:
            to = decode_moved(
                self.st.get(moved_key(pack)), pack, f"{moved_key(pack)} in store {self.st.url}"
            )
        except StoreNotFoundError:
            return set()
        out = set(to)
        for q in to:
            out |= self.moved_targets(q, depth + 1)
        return out

    # -- packs

    def condemn(self, pack: bytes) -> None:
        info = self.snap.packs[pack]
        self.report.packs_condemned += 1
        self.report.bytes_condemned += info.size
        if self.dry_run:
            return
        data = self.st.get(index_key(pack))
        # overwrite: the record's time is the condemnation's, which starts the grace period
        self.st.put(CONDEMNED + pack.hex(), data, mode=OVERWRITE)
        self.st.delete(index_key(pack))

    def restore(self, pack: bytes) -> None:
        self.report.packs_restored += 1
        if self.dry_run:
            return
        data = self.st.get(CONDEMNED + pack.hex())
        idx = mf.decode_pack_index(data, _blake3, f"{CONDEMNED}{pack.hex()} in store {self.st.url}")
        if idx.pack != pack:
            raise CorruptStoreError(
                f"{CONDEMNED}{pack.hex()} in store {self.st.url} describes another pack"
            )
        self.st.put(index_key(pack), data)
        self.st.delete(CONDEMNED + pack.hex())

    def rewritten(self, pack: bytes) -> bool:
        """True if the pack object or its index changed since our listing: a push
        uploaded a byte-identical pack again (same chunks, same order - the
        content of a deleted version pushed anew). Such a pack is not deleted."""
        info = self.snap.packs.get(pack)
        now = {o.key: o for o in self.st.list(pack_key(pack)[: -len(".pack")])}
        cur = now.get(pack_key(pack))
        return index_key(pack) in now or (
            cur is not None and info is not None and cur.mtime != info.mtime
        )

    def delete_pack(self, pack: bytes, orphan: bool = False) -> None:
        info = self.snap.packs.get(pack)
        if not self.dry_run and self.rewritten(pack):
            return
        if orphan:
            self.report.orphans_deleted += 1
        else:
            self.report.packs_deleted += 1
        self.report.bytes_deleted += info.size if info else 0
        if self.dry_run:
            return
        self.st.delete(pack_key(pack))
        self.st.delete(CONDEMNED + pack.hex())

    def relocated_ok(self, pack: bytes, refs: Dict[int, mf.ChunkRef]) -> bool:
        """Every chunk in use of ``pack`` can be found through its relocation record."""
        if pack not in self.snap.moved:
            return False
        try:
            locate(self.st, pack, [c.digest for c in refs.values()])
        except (StoreNotFoundError, CorruptStoreError):
            return False
        return True

    def go(
        self,
        keep_last: Optional[int],
        keep_tagged: bool,
        repack: bool,
        repack_below: float,
        pack_size: int,
    ) -> None:
        s = self.snap
        keep = self.policy(keep_last, keep_tagged)
        self.delete_versions(keep)
        used = self.usage(keep)
        live: Set[bytes] = set(used)
        for p in list(used):
            live |= self.moved_targets(p)
        candidates: List[bytes] = []
        for p, info in sorted(s.packs.items()):
            if p in s.indexes and p in s.condemned and not self.dry_run:
                self.st.delete(CONDEMNED + p.hex())  # pushed again since it was condemned
                del s.condemned[p]
            if p in s.indexes:  # visible to pushes
                if p not in live:
                    if self.old(info.mtime) and self.old(s.indexes[p].mtime):
                        self.condemn(p)
                    continue
                refs = used.get(p)
                if (
                    repack
                    and refs
                    and p not in s.moved
                    and self.old(info.mtime)
                    and sum(c.stored for c in refs.values())
                    < repack_below * max(1, info.size - mf.PACK_HEADER.size)
                ):
                    candidates.append(p)
                continue
            if p in s.condemned:
                refs = used.get(p)
                if refs and not self.relocated_ok(p, refs):
                    self.restore(p)  # a push that loaded the index before we hid it uses it
                elif p in live and not refs:
                    self.restore(p)  # a relocation record of a pack in use leads here
                elif self.old(s.condemned[p].mtime):
                    self.delete_pack(p)
                else:
                    self.report.packs_waiting += 1
                continue
            if self.old(info.mtime) and p not in live:
                self.delete_pack(p, orphan=True)  # an interrupted upload (pack without index)
        # leftovers: records and indexes without their pack
        if not self.dry_run:
            for p in s.condemned:
                if p not in s.packs:
                    self.st.delete(CONDEMNED + p.hex())
            for p, o in s.indexes.items():
                if p not in s.packs and self.old(o.mtime):
                    self.st.delete(index_key(p))  # an index must never outlive its pack
            for p, o in s.moved.items():
                if p not in used and p not in live and p not in s.packs and self.old(o.mtime):
                    self.st.delete(moved_key(p))
        if candidates:
            self.repack(candidates, used, pack_size)

    # -- repacking

    def repack(
        self, packs: List[bytes], used: Dict[bytes, Dict[int, mf.ChunkRef]], pack_size: int
    ) -> None:
        r = self.report
        r.packs_repacked += len(packs)
        if self.dry_run:
            r.bytes_repacked += sum(c.stored for p in packs for c in used[p].values())
            return
        writer: Optional[PackWriter] = None
        new_packs: List[bytes] = []
        placed: Set[bytes] = set()  # digests already in a new pack
        spool = self.st.spool_dir()

        def flush() -> None:
            nonlocal writer
            if writer is None or not writer.entries:
                return
            w, writer = writer, None
            try:
                new_id, idx = w.finish()
                self.st.put_file(pack_key(new_id), w.path)
                self.st.put(index_key(new_id), mf.encode_pack_index(idx, _blake3))
            finally:
                w.discard()
            r.packs_written += 1
            r.bytes_repacked += idx.pack_size
            new_packs.append(new_id)

        try:
            for p in packs:
                refs = list(used[p].values())
                what = f"pack {p.hex()[:16]} in store {self.st.url}"
                for group in merge_ranges(refs):
                    start = group[0].offset
                    end = max(c.offset + c.stored for c in group)
                    data = self.st.get_range(pack_key(p), start, end - start)
                    for c in group:
                        if c.digest in placed:
                            continue
                        a = c.offset - start
                        payload = bytes(data[a : a + c.stored])
                        decode_payload(payload, c.codec, c.size, c.digest, what)  # verify
                        if writer is None:
                            writer = PackWriter(spool)
                        writer.add(c.digest, c.size, c.codec, payload)
                        placed.add(c.digest)
                        if writer.size >= pack_size:
                            flush()
            flush()
        finally:
            if writer is not None:
                writer.discard()
        # a chunk of one old pack may sit in any new pack of this run (the same
        # digest in two old packs is copied once): each record names them all
        for p in packs:
            self.st.put(moved_key(p), encode_moved(p, new_packs))
            self.condemn(p)
