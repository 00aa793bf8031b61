"""Relocation records: where the chunks of a repacked pack went.

A manifest names each chunk's pack and offset, and a version's id is the
BLAKE3 of its manifest, so manifests are never rewritten. When gc repacks a
mostly-dead pack P it copies P's live chunks into a new pack Q, writes the
record ``packs/<P>.moved`` naming Q, and only later deletes P. A pull that
finds P gone reads the record, then Q's index, and fetches the chunks from
Q (by digest, verified as always). Records may chain (Q repacked in turn);
at most :data:`MAX_HOPS` are followed.

The record is a small JSON object::

    {"format": "pydelta-moved", "format_version": 1,
     "pack": "<P hex>", "to": ["<Q hex>", ...]}
"""

from __future__ import annotations

import json
from typing import Dict, List, Sequence, Tuple, TypeVar

from ..errors import CorruptStoreError, StoreNotFoundError
from ..formats import manifest as mf
from .base import Store
from .packs import blake3, decode_payload, index_key, pack_key

FORMAT = "pydelta-moved"
VERSION = 1
MAX_HOPS = 8
#: merge chunks of one pack at most this far apart into one ranged GET
MERGE_GAP = 256 << 10
MAX_REQUEST = 8 << 20


def moved_key(pack: bytes) -> str:
    """The key of a pack's relocation record."""
    return f"packs/{pack.hex()}.moved"


def encode_moved(pack: bytes, to: Sequence[bytes]) -> bytes:
    """A relocation record's bytes."""
    doc = {
        "format": FORMAT,
        "format_version": VERSION,
        "pack": pack.hex(),
        "to": [t.hex() for t in to],
    }
    return (json.dumps(doc, sort_keys=True) + "\n").encode("ascii")


def decode_moved(data: bytes, pack: bytes, what: str) -> List[bytes]:
    """The packs a record sends ``pack``'s chunks to."""
    try:
        if len(data) > 1 << 20:
            raise ValueError
        doc = json.loads(data.decode("utf-8"))
        if doc.get("format") != FORMAT or doc.get("format_version") != VERSION:
            raise ValueError
        if doc.get("pack") != pack.hex():
            raise ValueError
        to = [bytes.fromhex(t) for t in doc["to"]]
        if not to or any(len(t) != mf.HASH_LEN for t in to):
            raise ValueError
        return to
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, AttributeError, RecursionError):
        raise CorruptStoreError(f"{what} is not a valid relocation record") from None


def read_index(st: Store, pack: bytes) -> mf.PackIndex:
    """A pack's index, checked."""
    what = f"{index_key(pack)} in store {st.url}"
    idx = mf.decode_pack_index(st.get(index_key(pack)), blake3, what)
    if idx.pack != pack:
        raise CorruptStoreError(f"{what} describes another pack")
    return idx


def locate(
    st: Store, pack: bytes, digests: Sequence[bytes]
) -> Dict[bytes, Tuple[bytes, mf.PackEntry]]:
    """digest -> (pack, entry) for chunks of a vanished ``pack``, following records.

    Raises StoreNotFoundError if ``pack`` has no record, CorruptStoreError if a
    chunk is in none of the packs the records lead to.
    """
    want = set(digests)
    found: Dict[bytes, Tuple[bytes, mf.PackEntry]] = {}
    frontier = [pack]
    for _ in range(MAX_HOPS):
        nxt: List[bytes] = []
        for p in frontier:
            try:
                data = st.get(moved_key(p))
            except StoreNotFoundError:
                if p == pack:
                    raise StoreNotFoundError(
                        f"pack {pack.hex()[:16]} is not in store {st.url} (and no record says where "
                        "its chunks went)"
                    ) from None
                continue
            for q in decode_moved(data, p, f"{moved_key(p)} in store {st.url}"):
                try:
                    idx = read_index(st, q)
                except StoreNotFoundError:
                    nxt.append(q)  # repacked again
                    continue
                for e in idx.entries:
                    if e.digest in want and e.digest not in found:
                        found[e.digest] = (q, e)
        if want <= set(found) or not nxt:
            break
        frontier = nxt
    missing = want - set(found)
    if missing:
        raise CorruptStoreError(
            f"pack {pack.hex()[:16]} was repacked, but {len(missing)} of its chunks are in none of "
            f"the packs its record names (store {st.url})"
        )
    return found


R = TypeVar("R", mf.ChunkRef, mf.PackEntry)


def merge_ranges(items: Sequence[R]) -> List[List[R]]:
    """Payloads of one pack (anything with ``offset`` and ``stored``) grouped
    into ranged GETs: sorted, neighbours at most MERGE_GAP apart merged, up
    to MAX_REQUEST bytes a request."""
    out: List[List[R]] = []
    for e in sorted(items, key=lambda e: e.offset):
        g = out[-1] if out else None
        if (
            g
            and e.offset - (g[-1].offset + g[-1].stored) <= MERGE_GAP
            and e.offset + e.stored - g[0].offset <= MAX_REQUEST
        ):
            g.append(e)
        else:
            out.append([e])
    return out


def fetch_moved(
    st: Store, pack: bytes, refs: Sequence[mf.ChunkRef]
) -> Tuple[Dict[bytes, bytes], int, int]:
    """The chunks ``refs`` (all in the vanished ``pack``), from where they went.

    Returns (digest -> verified bytes, bytes downloaded, requests).
    """
    where = locate(st, pack, [r.digest for r in refs])
    by_pack: Dict[bytes, List[mf.PackEntry]] = {}
    for q, e in where.values():
        by_pack.setdefault(q, []).append(e)
    out: Dict[bytes, bytes] = {}
    got = 0
    requests = 0
    for q, entries in by_pack.items():
        groups = merge_ranges(entries)
        what = f"pack {q.hex()[:16]} in store {st.url}"
        for g in groups:
            start = g[0].offset
            end = max(e.offset + e.stored for e in g)
            data = st.get_range(pack_key(q), start, end - start)
            got += len(data)
            requests += 1
            for e in g:
                a = e.offset - start
                out[e.digest] = decode_payload(
                    data[a : a + e.stored], e.codec, e.size, e.digest, what
                )
    return out, got, requests
