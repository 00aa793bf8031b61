"""Hash flooding: signatures whose weak sums are chosen to defeat the
signature table's index (tests/floods.py builds them).

Before the index was keyed and bucketed, a 4 MB native signature whose weak
sums shared one slot took 11 s to load (quadratic: 2.8 s at 2 MB) and a
1.3 MB rdiff one 2.4 s; each lookup in the scan walked the cluster too.
These tests load and scan such signatures with a generous time bound (they
take well under 0.2 s now; the bound only has to catch quadratic time),
check that an author who knows the key gets no worse than a binary search,
and that the delta never depends on the key - on both backends (the numba
twin has the same index; rdiff tables are C in both).
"""

from __future__ import annotations

import io
import os
import random
import time

import floods
import pytest
from conftest import apply_ops, parse_delta, rand_bytes
from test_sigtable import colliding_blocks

import pydelta
from pydelta.backends import backend

#: Generous: each case takes < 0.2 s on an idle machine and took seconds
#: (growing with the square of the signature) before the fix. Under
#: AddressSanitizer (tests/asan.sh) everything runs several times slower.
BOUND = 1.5 * (10 if os.environ.get("PYDELTA_SANITIZED") else 1)
#: On a busy machine a case may pass BOUND and still be linear: it passes if
#: it takes at most this many times as long as the same work with random
#: weak sums, timed just before (quadratic time is 50-100x at these sizes).
RATIO = 8


def assert_fast(elapsed: float, baseline) -> None:
    """elapsed is within BOUND, or within RATIO times baseline() (a
    callable timing the same work with random weak sums)."""
    if elapsed < BOUND:
        return
    base = baseline()
    assert elapsed < RATIO * base, (elapsed, base)


def random_native(n: int) -> bytes:
    rnd = random.Random(n)
    return floods.native_signature([rnd.getrandbits(64) for _ in range(n)])


def random_rdiff(n: int) -> bytes:
    rnd = random.Random(n)
    return floods.rdiff_signature([rnd.getrandbits(32) for _ in range(n)])


NATIVE_N = 174_762  # a 4 MB native signature (24-byte entries)
RDIFF_N = 109_226  # a 1.3 MB rdiff signature (12-byte entries)


def set_table_key(k0: int, k1: int) -> None:
    """Fix the index key of the tables built from now on ((0, 0): random)."""
    from pydelta.backends import c

    c.set_table_key(k0, k1)  # rdiff tables are always C
    backend.set_table_key(k0, k1)


@pytest.fixture
def fixed_key():
    """Run a test under a known key, then go back to a random one."""
    yield set_table_key
    set_table_key(0, 0)


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Compile what the timed calls use (the numba kernels) beforehand."""
    for sig in (floods.native_signature([1, 2, 3]), floods.rdiff_signature([1, 2, 3])):
        pydelta.delta(sig, io.BytesIO(rand_bytes(70_000, 1)))
        backend.SigTable(sig[16:-52], 3, 1024, 16, 3 * 1024).find(bytes(1024))


def timed_delta(sig: bytes, new: bytes) -> tuple:
    t0 = time.perf_counter()
    d = pydelta.delta(sig, io.BytesIO(new))
    return d, time.perf_counter() - t0


# ---------------------------------------------------------------- native


def test_native_old_slot_flood_is_fast():
    sig = floods.native_signature(floods.native_old_slot_weaks(NATIVE_N))
    new = rand_bytes(1 << 20, 11)
    d, elapsed = timed_delta(sig, new)
    p = parse_delta(d)
    assert p.copied == 0 and p.literal == len(new)
    assert_fast(elapsed, lambda: timed_delta(random_native(NATIVE_N), new)[1])


def test_native_equal_weak_flood_is_fast():
    """One run of 174k distinct blocks: only 16 are ever candidates."""
    sig = floods.native_signature([0x1234] * NATIVE_N)
    new = rand_bytes(1 << 20, 12)
    d, elapsed = timed_delta(sig, new)
    assert parse_delta(d).copied == 0
    assert_fast(elapsed, lambda: timed_delta(random_native(NATIVE_N), new)[1])


def test_native_known_key_flood_is_fast_and_right(fixed_key):
    """An author who learnt the key can fill one bucket: the lookups
    binary-search it, and blocks in that bucket are still found."""
    k0, k1 = 0x0123456789ABCDEF, 0xFEDCBA9876543210
    fixed_key(k0, k1)
    bs, sl = 64, 16
    real = [rand_bytes(bs, 100 + i) for i in range(40)]
    entries = backend.sig_blocks(b"".join(real), 40 * bs, bs, sl)
    # weak sums sharing the bucket of real[0] in any table of <= 2^32 buckets
    top = floods.keyed_mix(backend.weak(real[0]), k0, k1) >> 32 << 32
    crowd = [floods.keyed_unmix(top | j, k0, k1) for j in range(1, 100_001)]
    rnd = random.Random(5)
    flood = b"".join(w.to_bytes(8, "little") + rnd.randbytes(sl) for w in crowd)
    n = 40 + len(crowd)
    t0 = time.perf_counter()
    t = backend.SigTable(entries + flood, n, bs, sl, n * bs)
    elapsed = time.perf_counter() - t0

    def baseline() -> float:
        body = random_native(n)[16:-52]
        t0 = time.perf_counter()
        backend.SigTable(body, n, bs, sl, n * bs)
        return time.perf_counter() - t0

    assert_fast(elapsed, baseline)
    assert t.error == 0 and t.unique == n
    for i, blk in enumerate(real):
        assert t.find(blk) == i
    # a full delta against it: the copies are right
    old = b"".join(real) + bytes(len(crowd) * bs)
    new = rand_bytes(500, 7) + real[0] + real[5] + rand_bytes(100, 8) + real[0]
    # the header of a signature with the BLAKE3 sums of `entries`
    sig = pydelta.signature(io.BytesIO(old), block_size=bs, strong_len=sl, strong_hash="blake3")
    head, trailer = sig[:16], sig[-52:]
    body = entries + flood
    crafted = head + body + trailer[:16]
    h = pydelta.blake3()
    h.update(crafted)
    crafted += h.digest() + b"PDSE"
    d, elapsed = timed_delta(crafted, new)
    assert_fast(elapsed, lambda: timed_delta(random_native(n), new)[1])
    p = parse_delta(d)
    assert p.copies == [("C", 0, bs), ("C", 5 * bs, bs), ("C", 0, bs)]
    assert apply_ops(old, p) == new


# ---------------------------------------------------------------- rdiff (C)


def test_rdiff_old_cluster_flood_is_fast():
    sig = floods.rdiff_signature(floods.rdiff_old_slot_weaks(RDIFF_N))
    new = rand_bytes(1 << 20, 13)
    d, elapsed = timed_delta(sig, new)
    assert d[:4] == b"rs\x026" and len(d) > len(new)
    assert_fast(elapsed, lambda: timed_delta(random_rdiff(RDIFF_N), new)[1])


def test_rdiff_equal_weak_flood_is_fast():
    sig = floods.rdiff_signature([0x1234] * RDIFF_N)
    new = rand_bytes(1 << 20, 14)
    _, elapsed = timed_delta(sig, new)
    assert_fast(elapsed, lambda: timed_delta(random_rdiff(RDIFF_N), new)[1])


def test_rdiff_known_key_flood_is_fast(fixed_key):
    pytest.importorskip("numpy")
    k0, k1 = 0x1111222233334444, 0x5555666677778888
    fixed_key(k0, k1)
    weaks = floods.keyed_bucket_weaks(4000, k0, k1, bits=32)
    sig = floods.rdiff_signature(weaks)
    new = rand_bytes(1 << 20, 15)
    _, elapsed = timed_delta(sig, new)
    assert_fast(elapsed, lambda: timed_delta(random_rdiff(len(weaks)), new)[1])


# ---------------------------------------------------------------- output


@pytest.mark.parametrize("fmt_name", ["native", "rdiff"])
def test_delta_independent_of_key(fmt_name):
    """More distinct blocks share a weak sum than are tried (16): which
    ones are tried is fixed by the signature, not by the key."""
    blocks = colliding_blocks(48)
    old = b"".join(blocks[:40]) + rand_bytes(3000, 1)
    rnd = random.Random(2)
    new = b"".join(rnd.sample(blocks, 48)) + old[-3000:] + b"".join(blocks[3:20])
    sig = pydelta.signature(io.BytesIO(old), block_size=2048, format=fmt_name)
    outs = set()
    try:
        for key in [(1, 2), (0xFFFFFFFFFFFFFFFF, 7), (3, 0), (0, 0)]:
            set_table_key(*key)
            outs.add(pydelta.delta(sig, io.BytesIO(new)))
    finally:
        set_table_key(0, 0)
    assert len(outs) == 1
