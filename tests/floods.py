"""Hash-flooding signatures: crafted native and rdiff signatures whose weak
sums are chosen to defeat a signature table's index.

A signature's author chooses its weak sums freely (nothing checks them
against a basis until a block matches). These builders make the three
shapes that matter:

* ``equal``: every block has the same weak sum and a distinct strong sum
  (one run of candidates; the candidate cap keeps it linear);
* ``old_slot``: distinct weak sums that all land in one slot of the
  unkeyed index pydelta used before its table was keyed (linear probing
  then went quadratic: a 2 MB native signature took seconds to load);
* ``keyed``: distinct weak sums that all land in one bucket of today's
  index *for a known key* (what an attacker who learnt the key could do):
  the in-bucket binary search keeps that O(log n) per lookup.

The files are built with struct (and pydelta.blake3 for the native
trailer's digest), so the helpers follow the formats, not the code layout. Used by tests/test_flood.py and
bench/flood_bench.py.
"""

from __future__ import annotations

import bisect
import random
import struct
from typing import List

import pydelta

MASK64 = (1 << 64) - 1
#: Multiplier of the old unkeyed native slot function (and of the weak sum).
GOLDEN = 0x9E3779B97F4A7C15

# ---------------------------------------------------------------- weak sum sets


def _unxorshift(x: int, s: int) -> int:
    """Invert y = x ^ (x >> s) on 64 bits."""
    h = x
    for _ in range(64 // s + 1):
        h = x ^ (h >> s)
    return h & MASK64


def native_old_slot_weaks(n: int) -> List[int]:
    """n distinct 64-bit weak sums that all had slot 0 in the unkeyed native
    index, ``((h ^ (h >> 31)) * GOLDEN >> 17) & mask``, for every table of
    up to 2**24 slots."""
    inv = pow(GOLDEN, -1, 1 << 64)
    out = []
    for j in range(1, n + 1):
        y = (j << 41) & MASK64  # bits 17..40 of the product are zero
        out.append(_unxorshift((y * inv) & MASK64, 31))
    return out


def rdiff_old_slot_weaks(n: int, spread: int = 256) -> List[int]:
    """n distinct 32-bit weak sums whose home slots in the unkeyed rdiff
    index, ``((w * GOLDEN mod 2**64) >> 29) & mask``, all lie in
    [0, spread) for every table of up to 2**17 slots: one primary cluster.

    w = hi * 2**17 + lo, so w * G mod 2**46 = A(lo) + B(hi) with
    B(hi) = (hi * G mod 2**29) << 17; for each lo the wanted B lie in one
    interval of a sorted list (meet in the middle)."""
    mod = 1 << 46
    top = spread << 29
    bs = sorted(((hi * GOLDEN) % (1 << 29)) << 17 for hi in range(1 << 15))
    hi_of = {((hi * GOLDEN) % (1 << 29)) << 17: hi for hi in range(1 << 15)}
    out: List[int] = []
    for lo in range(1 << 17):
        a = (lo * GOLDEN) % mod
        start = (-a) % mod
        ranges = [(start, min(start + top, mod))]
        if start + top > mod:
            ranges.append((0, start + top - mod))
        for lo_b, hi_b in ranges:
            i = bisect.bisect_left(bs, lo_b)
            while i < len(bs) and bs[i] < hi_b:
                out.append(hi_of[bs[i]] << 17 | lo)
                i += 1
        if len(out) >= n:
            break
    assert len(out) >= n and len(set(out)) == len(out)
    return out[:n]


# The keyed bucket function of the tables (csrc/internal.h pd_windex_mix and
# its numba twin), and its inverse for a known key.
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_C1_INV = pow(_C1, -1, 1 << 64)
_C2_INV = pow(_C2, -1, 1 << 64)


def keyed_mix(h: int, k0: int, k1: int) -> int:
    """pd_windex_mix(h) under key (k0, k1)."""
    x = (h ^ k0) & MASK64
    x ^= x >> 31
    x = (x * _C1) & MASK64
    x ^= k1
    x ^= x >> 29
    x = (x * _C2) & MASK64
    x ^= x >> 32
    return x


def keyed_unmix(y: int, k0: int, k1: int) -> int:
    """The h with keyed_mix(h, k0, k1) == y."""
    x = _unxorshift(y, 32)
    x = (x * _C2_INV) & MASK64
    x = _unxorshift(x, 29)
    x ^= k1
    x = (x * _C1_INV) & MASK64
    x = _unxorshift(x, 31)
    return x ^ k0


def keyed_bucket_weaks(n: int, k0: int, k1: int, bits: int = 64) -> List[int]:
    """n distinct weak sums of ``bits`` bits that share one bucket of every
    table under this key: for 64 bits the mix is inverted (top 32 bits of
    the output zero); 32-bit (rdiff) sums cannot be chosen that way, so
    random ones are filtered with numpy for a mix whose top 12 bits are
    zero (bucket 0 of any table of up to 4096 buckets)."""
    if bits == 64:
        return [keyed_unmix(j, k0, k1) for j in range(1, n + 1)]
    import numpy as np

    rng = np.random.default_rng(k0 ^ k1)
    found = np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        while found.size < n:
            w = rng.integers(0, 1 << 32, 1 << 22, dtype=np.uint64)
            x = w ^ np.uint64(k0)
            x ^= x >> np.uint64(31)
            x *= np.uint64(_C1)
            x ^= np.uint64(k1)
            x ^= x >> np.uint64(29)
            x *= np.uint64(_C2)
            x ^= x >> np.uint64(32)
            found = np.unique(np.concatenate([found, w[(x >> np.uint64(52)) == 0]]))
    out = [int(v) for v in found[:n]]
    assert all(keyed_mix(w, k0, k1) >> 52 == 0 for w in out[:50])
    return out


# ---------------------------------------------------------------- signature files


def native_signature(
    weaks: List[int], block_len: int = 1024, strong_len: int = 16, seed: int = 1
) -> bytes:
    """A native signature of len(weaks) full blocks with these weak sums and
    distinct random strong sums."""
    rnd = random.Random(seed)
    body = b"".join(struct.pack("<Q", w) + rnd.randbytes(strong_len) for w in weaks)
    n = len(weaks)
    head = struct.pack("<4sBBBBII", b"PDSG", 1, 1, 1, strong_len, block_len, 0)
    covered = head + body + struct.pack("<QQ", n, n * block_len)
    h = pydelta.blake3()  # the trailer's digest covers everything before it
    h.update(covered)
    return covered + h.digest() + b"PDSE"


def rdiff_signature(
    weaks: List[int], block_len: int = 1024, strong_len: int = 8, seed: int = 1
) -> bytes:
    """An rdiff (RabinKarp + BLAKE2) signature with these weak sums and
    distinct random strong sums."""
    rnd = random.Random(seed)
    body = b"".join(struct.pack(">I", w) + rnd.randbytes(strong_len) for w in weaks)
    return struct.pack(">III", 0x72730147, block_len, strong_len) + body
