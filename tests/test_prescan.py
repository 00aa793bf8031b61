"""The pre-scan kernel's side-by-side streams (csrc/prescan.c): a range long
enough to be cut in four gives the candidates of the one-stream walk, and
a call that runs out of hit space certifies only what it reports."""

from __future__ import annotations

import importlib
import io
import random

import pytest

import pydelta

delta_mod = importlib.import_module("pydelta.delta")

BLOCK = 512
#: Ranges shorter than this are walked as one stream (PRESCAN_SPLIT_MIN).
SPLIT_MIN = 1 << 16


def _pair(seed: int = 3):
    """OLD, and a NEW of ~600 KB unlike it but for pieces of it scattered
    through (so every stream of a whole-buffer call meets candidates)."""
    r = random.Random(seed)
    old = r.randbytes(200_000)
    new = bytearray()
    while len(new) < 600_000:
        new += r.randbytes(r.randrange(1000, 30_000))
        at = r.randrange(len(old) - 3 * BLOCK)
        new += old[at : at + r.randrange(BLOCK, 3 * BLOCK)]
    return old, bytes(new)


@pytest.fixture(scope="module")
def kernel():
    if pydelta.backend != "c":
        pytest.skip("a C-only kernel: the pre-scan (the C pass runs this test)")
    from pydelta.backends import c as C

    old, new = _pair()
    sig = pydelta.load_signature(pydelta.signature(io.BytesIO(old), block_size=BLOCK))
    return C, sig.table, new


def _walk(C, table, new, base):
    """The candidates found by calls over short ranges (one stream each)."""
    hits = C.prescan_hits(1 << 16)
    got, at, end = [], 0, len(new) - BLOCK + 1
    while at < end:
        stop = min(at + SPLIT_MIN // 2, end)
        n, done = C.prescan(table, new, len(new), at, stop, base, hits, 1 << 16)
        assert done == base + stop
        got += [hits[i] for i in range(n)]
        at = stop
    return got


def test_streams_find_what_one_stream_finds(kernel):
    C, table, new = kernel
    base = 12345
    want = _walk(C, table, new, base)
    quarter = len(new) // 4
    assert all(
        any(base + k * quarter <= h < base + (k + 1) * quarter for h in want) for k in range(4)
    )
    hits = C.prescan_hits(1 << 16)
    for lo, hi in [(0, len(new)), (1, len(new) - 7), (70_001, 70_001 + SPLIT_MIN + 5)]:
        n, done = C.prescan(table, new, len(new), lo, hi, base, hits, 1 << 16)
        assert done == base + min(hi, len(new) - BLOCK + 1)
        assert [hits[i] for i in range(n)] == [h for h in want if base + lo <= h < done]


@pytest.mark.parametrize("cap", [4, 5, 8, 13, 30])
def test_out_of_hit_space_certifies_only_what_it_reports(kernel, cap):
    C, table, new = kernel
    want = _walk(C, table, new, 0)
    hits = C.prescan_hits(cap)
    at, got, end = 0, [], len(new) - BLOCK + 1
    while at < end:  # the caller's loop: go on from where a call stopped
        n, done = C.prescan(table, new, len(new), at, end, 0, hits, cap)
        assert at < done <= end and n <= cap
        part = [hits[i] for i in range(n)]
        assert part == [h for h in want if at <= h < done]
        got += part
        at = done
    assert got == want


@pytest.mark.parametrize("cap", [4, 9, 1 << 15])
def test_the_delta_is_the_same_for_any_thread_count(monkeypatch, kernel, cap):
    old, new = _pair(7)
    monkeypatch.setattr(delta_mod, "PRESCAN_MIN", 1)
    monkeypatch.setattr(delta_mod, "PRESCAN_CHECK", 1)
    monkeypatch.setattr(delta_mod, "PRESCAN_LITERAL_SHARE", 0.0)
    monkeypatch.setattr(delta_mod, "PRESCAN_CAP", cap)
    sig = pydelta.signature(io.BytesIO(old), block_size=BLOCK)
    want = pydelta.delta(sig, io.BytesIO(new), threads=1, compress=False)
    for t in (2, 3):
        assert pydelta.delta(sig, io.BytesIO(new), threads=t, compress=False) == want


def test_a_signature_past_the_sieve_cap(kernel):
    """~312,000 distinct sums: the sieve (at most 2^24 bits) is smaller than
    the bloom filter and lets more through; the candidates are the same."""
    C = kernel[0]
    r = random.Random(9)
    old = r.randbytes(20_000_000)
    new = bytearray()
    while len(new) < 300_000:
        new += r.randbytes(r.randrange(100, 20_000))
        at = r.randrange(len(old) - 200)
        new += old[at : at + r.randrange(64, 200)]
    new = bytes(new)
    table = pydelta.load_signature(pydelta.signature(io.BytesIO(old), block_size=64)).table
    hits = C.prescan_hits(1 << 16)
    got, at, end = [], 0, len(new) - 63
    while at < end:  # one stream a call
        stop = min(at + SPLIT_MIN // 2, end)
        n, done = C.prescan(table, new, len(new), at, stop, 0, hits, 1 << 16)
        assert done == stop
        got += [hits[i] for i in range(n)]
        at = stop
    n, done = C.prescan(table, new, len(new), 0, end, 0, hits, 1 << 16)
    assert done == end and [hits[i] for i in range(n)] == got
    want = [x for x in range(end) if table.find(new[x : x + 64]) is not None]
    assert want and set(want) <= set(got)
