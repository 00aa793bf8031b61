"""Compact digest tables: millions of chunks in a few tens of bytes each.

A store holds every chunk of every version; a 100 GB model alone is ~400k
chunks at 256 KiB. As a dict of objects each chunk took ~250 bytes; here a
chunk takes its 32-byte digest plus packed columns, in sorted runs:

* :class:`DigestSet` - sorted distinct digests in one ``bytes`` (32 B each)
  with a 65,536-bucket table on the first two bytes, looked up by binary
  search within the bucket. Sorting never degrades on chosen digests (a
  store's pack indexes are not trusted): a crowded bucket costs a few more
  comparisons, never more memory or quadratic time.
* :class:`ChunkTable` - digest -> (pack number, offset, stored length,
  codec), 49 bytes a chunk: sorted runs (a :class:`DigestSet` plus parallel
  ``array`` columns) and a small dict of the latest additions, folded into a
  run every :data:`RUN` additions; a run is merged with the one before it
  when that one is at most twice its size, so there are at most
  log2(chunks / RUN) + 1 runs to search and each chunk is merged
  O(log chunks) times.
"""

from __future__ import annotations

import heapq
from array import array
from itertools import accumulate
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

HASH_LEN = 32
#: Additions kept in a dict before they are folded into a sorted run.
RUN = 1 << 13
#: pack number of a chunk whose pack is not written yet
UNPLACED = 0xFFFFFFFF

#: (pack number, offset in the pack, stored length, codec)
Loc = Tuple[int, int, int, int]


def _sorted_order(packed: "bytes | bytearray", n: int) -> Iterator[Tuple[bytes, int]]:
    """(digest, position) of ``n`` packed digests in sorted order (ties by
    position), sorting blocks of RUN and merging them, so the temporary
    objects stay at one block's worth."""
    mv = memoryview(packed)
    runs = []
    for b in range(0, n, RUN):
        idx = sorted(
            range(b, min(n, b + RUN)), key=lambda i: bytes(mv[i * HASH_LEN : (i + 1) * HASH_LEN])
        )
        runs.append(array("I", idx))

    def walk(run: "array[int]") -> Iterator[Tuple[bytes, int]]:
        for i in run:
            yield bytes(mv[i * HASH_LEN : (i + 1) * HASH_LEN]), i

    if len(runs) == 1:
        yield from walk(runs[0])
    else:
        yield from heapq.merge(*(walk(r) for r in runs))


class DigestSet:
    """Sorted distinct 32-byte digests, packed (32 bytes each + 256 KiB)."""

    __slots__ = ("data", "_starts", "_shift")

    def __init__(self, data: "bytes | bytearray") -> None:
        """``data``: sorted, distinct digests, concatenated (kept, not copied)."""
        if len(data) % HASH_LEN:
            raise ValueError("packed digests are 32 bytes each")
        self.data = data
        n = len(self.data) // HASH_LEN
        bits = min(16, max(0, n.bit_length() - 2))  # ~4 digests a bucket
        self._shift = 16 - bits
        counts = array("I", bytes(4 * ((1 << bits) + 1)))
        mv = memoryview(self.data)
        shift = self._shift
        for i in range(0, len(self.data), HASH_LEN):
            counts[((mv[i] << 8 | mv[i + 1]) >> shift) + 1] += 1
        self._starts = array("I", accumulate(counts))

    @classmethod
    def from_digests(cls, digests: Iterable[bytes]) -> "DigestSet":
        """The distinct digests of any iterable (sorted in blocks, merged)."""
        packed = bytearray()
        for d in digests:
            if len(d) != HASH_LEN:
                raise ValueError("digests are 32 bytes")
            packed += d
        out = bytearray()
        prev = None
        for d, _ in _sorted_order(packed, len(packed) // HASH_LEN):
            if d != prev:
                out += d
                prev = d
        del packed
        return cls(out)

    def __len__(self) -> int:
        return len(self.data) // HASH_LEN

    def find(self, d: bytes) -> int:
        """The position of digest ``d``, or -1."""
        if len(d) != HASH_LEN:
            return -1
        b = (d[0] << 8 | d[1]) >> self._shift
        lo, hi = self._starts[b], self._starts[b + 1]
        data = self.data
        while lo < hi:
            mid = (lo + hi) >> 1
            got = data[mid * HASH_LEN : mid * HASH_LEN + HASH_LEN]
            if got < d:
                lo = mid + 1
            elif got > d:
                hi = mid
            else:
                return mid
        return -1

    def __contains__(self, d: object) -> bool:
        return isinstance(d, (bytes, bytearray)) and self.find(bytes(d)) >= 0

    def digest(self, i: int) -> bytes:
        """The i-th digest (sorted order)."""
        return bytes(self.data[i * HASH_LEN : (i + 1) * HASH_LEN])

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.data), HASH_LEN):
            yield bytes(self.data[i : i + HASH_LEN])


class _Run:
    """One sorted run: digests and their columns."""

    __slots__ = ("keys", "pack", "offset", "stored", "codec")

    def __init__(self) -> None:
        self.keys = DigestSet(b"")
        self.pack = array("I")
        self.offset = array("Q")
        self.stored = array("I")
        self.codec = bytearray()

    @classmethod
    def build(cls, items: Iterator[Tuple[bytes, Loc]]) -> "_Run":
        """A run from (digest, location) in sorted order, without repeats."""
        r = cls()
        keys = bytearray()
        for d, (p, o, s, c) in items:
            keys += d
            r.pack.append(p)
            r.offset.append(o)
            r.stored.append(s)
            r.codec.append(c)
        r.keys = DigestSet(keys)
        return r

    def items(self) -> Iterator[Tuple[bytes, Loc]]:
        for i, d in enumerate(self.keys):
            yield d, (self.pack[i], self.offset[i], self.stored[i], self.codec[i])


class ChunkTable:
    """digest -> where the chunk is stored; ~49 bytes a chunk.

    Pack ids are kept once, in :attr:`packs`; a location names its pack by
    number (:data:`UNPLACED` while its pack is not written yet).
    """

    def __init__(self) -> None:
        self.packs: List[bytes] = []
        self._pack_no: Dict[bytes, int] = {}
        self._runs: List[_Run] = []
        self._recent: Dict[bytes, Loc] = {}
        self._count = 0

    def pack_number(self, pack: bytes) -> int:
        """The number of pack id ``pack`` (assigned on first use)."""
        n = self._pack_no.get(pack)
        if n is None:
            n = self._pack_no[pack] = len(self.packs)
            self.packs.append(pack)
        return n

    def __len__(self) -> int:
        return self._count

    def _find(self, d: bytes) -> Tuple[Optional[_Run], int]:
        for r in self._runs:
            i = r.keys.find(d)
            if i >= 0:
                return r, i
        return None, -1

    def __contains__(self, d: object) -> bool:
        if not isinstance(d, bytes):
            return False
        return d in self._recent or self._find(d)[0] is not None

    def get(self, d: bytes) -> Optional[Tuple[bytes, int, int, int]]:
        """(pack id, offset, stored length, codec) of digest ``d``, or None
        (also while its pack is not written)."""
        loc = self._recent.get(d)
        if loc is None:
            r, i = self._find(d)
            if r is None:
                return None
            loc = (r.pack[i], r.offset[i], r.stored[i], r.codec[i])
        if loc[0] == UNPLACED:
            return None
        return self.packs[loc[0]], loc[1], loc[2], loc[3]

    def add(
        self, d: bytes, pack: int = UNPLACED, offset: int = 0, stored: int = 0, codec: int = 0
    ) -> bool:
        """Record digest ``d`` unless it is known; returns whether it was new."""
        if d in self:
            return False
        if len(d) != HASH_LEN:
            raise ValueError("digests are 32 bytes")
        self._recent[d] = (pack, offset, stored, codec)
        self._count += 1
        if len(self._recent) >= RUN:
            self._fold()
        return True

    def place(self, d: bytes, pack: int, offset: int, stored: int, codec: int) -> None:
        """Set the location of a known digest (its pack is written)."""
        if d in self._recent:
            self._recent[d] = (pack, offset, stored, codec)
            return
        r, i = self._find(d)
        if r is None:
            raise KeyError(d.hex())
        r.pack[i], r.offset[i], r.stored[i], r.codec[i] = pack, offset, stored, codec

    def _fold(self) -> None:
        recent = self._recent
        self._recent = {}
        self._runs.append(_Run.build((d, recent[d]) for d in sorted(recent)))
        del recent
        runs = self._runs
        while len(runs) >= 2 and len(runs[-2].keys) <= 2 * len(runs[-1].keys):
            b = runs.pop()
            a = runs.pop()
            runs.append(_Run.build(heapq.merge(a.items(), b.items(), key=lambda kv: kv[0])))
            del a, b

    def compact(self) -> None:
        """Fold the recent additions into the runs (and merge the runs)."""
        if self._recent:
            self._fold()
