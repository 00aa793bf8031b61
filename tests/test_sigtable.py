"""The signature table: lookup, deduplication, validation, and the
degenerate inputs (one block content repeated millions of times, weak-sum
collisions) that could make a naive scan quadratic."""

from __future__ import annotations

import io
import time

import pytest
from conftest import apply_ops, parse_delta, rand_bytes

import pydelta
from pydelta.backends import backend

SL = 16


def table(data: bytes, bs: int, sl: int = SL):
    entries = backend.sig_blocks(data, len(data), bs, sl)
    n = -(-len(data) // bs)
    assert len(entries) == n * (8 + sl)
    t = backend.SigTable(entries, n, bs, sl, len(data))
    assert t.error == 0
    return t


# Thue-Morse signs t_i = (-1)^popcount(i), i < 1024: the polynomial
# prod_{j<10} (1 - x^(2^j)) has these coefficients, and at any odd x it is
# divisible by 2^64, so adding +-1 in this pattern to 1024 consecutive bytes
# never changes the weak sum (mod 2^64). That gives as many distinct blocks
# with one weak sum as we like.
TM = [1 if bin(i).count("1") % 2 == 0 else -1 for i in range(1024)]


def colliding_blocks(count: int, bs: int = 2048) -> list:
    assert bs >= 1024 + count - 1
    out = []
    for m in range(count):
        blk = bytearray([100]) * bs
        for i, s in enumerate(TM):
            blk[m + i] += s
        out.append(bytes(blk))
    assert len(set(out)) == count
    assert len({backend.weak(b) for b in out}) == 1
    return out


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize("bs", [1, 7, 64, 1000, 4096])
def test_finds_every_block(bs):
    nblocks = 300 if bs > 1 else 200
    data = rand_bytes(nblocks * bs + bs // 2, bs)
    t = table(data, bs)
    seen = {}
    for k in range(len(data) // bs):
        blk = data[k * bs : (k + 1) * bs]
        first = seen.setdefault(blk, k)  # identical blocks (likely for bs=1) -> lowest index
        assert t.find(blk) == first, k
    if bs >= 7:
        assert t.unique == len(data) // bs


def test_misses_unknown_and_shifted_windows():
    bs = 256
    data = rand_bytes(100 * bs, 1)
    t = table(data, bs)
    for i in range(1, 200, 7):
        assert t.find(data[i : i + bs]) is None
    for seed in range(50):
        assert t.find(rand_bytes(bs, 1000 + seed)) is None
    blk = bytearray(data[:bs])
    blk[-1] ^= 1
    assert t.find(bytes(blk)) is None


def test_tail_block_is_not_indexed():
    bs = 64
    data = rand_bytes(10 * bs + 20, 2)
    t = table(data, bs)
    assert t.unique == 10
    tail = data[-20:]
    # a block-long window that starts with the tail does not find it
    assert t.find(tail + bytes(bs - 20)) is None


@pytest.mark.parametrize("bs", [1, 3, 64])
def test_duplicates_deduplicated_lowest_index(bs):
    x, y, z = (rand_bytes(bs, s) for s in (3, 4, 5))
    if bs == 1:
        x, y, z = b"x", b"y", b"z"
    data = y + x * 5 + z + y * 3 + x + z
    t = table(data, bs)
    assert t.unique == 3
    assert t.find(x) == 1
    assert t.find(y) == 0
    assert t.find(z) == 6


def test_all_identical_blocks():
    t = table(bytes(1 << 20), 1024)
    assert t.unique == 1
    assert t.find(bytes(1024)) == 0
    assert t.find(b"\x01" + bytes(1023)) is None


def test_empty_table():
    t = backend.SigTable(b"", 0, 1024, SL, 0)
    assert t.error == 0
    assert t.unique == 0
    assert t.find(bytes(1024)) is None
    # only a tail block: nothing indexed
    t = table(b"abc", 1024)
    assert t.unique == 0
    assert t.find(b"abc" + bytes(1021)) is None


def test_many_blocks_distinct_weak_sums():
    bs = 16
    data = rand_bytes(50_000 * bs, 6)
    t = table(data, bs, 8)
    assert t.unique == 50_000
    for k in range(0, 50_000, 997):
        assert t.find(data[k * bs : (k + 1) * bs]) == k


@pytest.mark.parametrize("count", [2, 5, 16])
def test_weak_collisions_resolved_by_strong_hash(count):
    blocks = colliding_blocks(count)
    t = table(b"".join(blocks), 2048)
    assert t.unique == count
    for k, blk in enumerate(blocks):
        assert t.find(blk) == k
    base = bytes([100]) * 2048  # same weak sum, not in the table
    assert t.find(base) is None


def test_weak_collisions_beyond_candidate_limit():
    """At most 16 distinct blocks per weak sum are tried (PD_MAX_CANDIDATES):
    the rest are missed, never mis-matched, and deltas stay correct."""
    blocks = colliding_blocks(40)
    data = b"".join(blocks)
    t = table(data, 2048)
    assert t.unique == 40
    found = [t.find(b) for b in blocks]
    assert all(f is None or f == k for k, f in enumerate(found))
    hits = sum(f is not None for f in found)
    assert hits == 16
    # the table above holds BLAKE3 sums: which 16 are tried follows their order
    sig = pydelta.signature(io.BytesIO(data), block_size=2048, strong_hash="blake3")
    # identical data: the continuation check does not go through the capped
    # candidate walk, so the whole basis is still one COPY
    assert parse_delta(pydelta.delta(sig, io.BytesIO(data))).ops == [("C", 0, len(data))]
    # a block not in the first 16 candidates, on its own: sent as literal
    missed = [k for k, f in enumerate(found) if f is None]
    lone = blocks[missed[0]]
    new = rand_bytes(100, 9) + lone + rand_bytes(100, 10)
    p = parse_delta(pydelta.delta(sig, io.BytesIO(new)))
    assert p.copied == 0 and apply_ops(data, p) == new
    # one that is among them is found
    k = next(k for k, f in enumerate(found) if f == k)
    new = rand_bytes(100, 9) + blocks[k] + rand_bytes(100, 10)
    p = parse_delta(pydelta.delta(sig, io.BytesIO(new)))
    assert p.copies == [("C", k * 2048, 2048)]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "nblocks,basis,err",
    [
        (11, 10 * 64 + 1, 0),  # consistent: 10 full + tail
        (10, 10 * 64 + 1, backend.ERR_SIGNATURE),
        (12, 10 * 64 + 1, backend.ERR_SIGNATURE),
        (11, 10 * 64, backend.ERR_SIGNATURE),
        (11, 12 * 64, backend.ERR_SIGNATURE),
        (0, 1, backend.ERR_SIGNATURE),
        (1, 0, backend.ERR_SIGNATURE),
    ],
)
def test_inconsistent_counts_rejected(nblocks, basis, err):
    entries = bytes(12 * (8 + SL))  # enough bytes for any of these counts
    t = backend.SigTable(entries, nblocks, 64, SL, basis)
    assert t.error == err


@pytest.mark.parametrize("bs,sl", [(0, 16), (64, 7), (64, 33), (64, 0)])
def test_bad_parameters_rejected(bs, sl):
    t = backend.SigTable(bytes(64), 1, bs, sl, 10)
    assert t.error == backend.ERR_PARAM


def test_sig_blocks_bad_parameters():
    assert backend.sig_blocks(b"abc", 3, 1, 7) == b""
    assert backend.sig_blocks(b"abc", 3, 1, 33) == b""
    assert len(backend.sig_blocks(b"abc", 3, 1, 8)) == 3 * 16
    assert backend.sig_blocks(b"", 0, 64, 16) == b""


# ---------------------------------------------------------------- degenerate scans


def _sparse(path, size, patches=()):
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off, data in patches:
            fh.seek(off)
            fh.write(data)


def test_zeros_64mib_one_changed_byte(tmp_path, capsys):
    size = 64 << 20
    old, new = tmp_path / "old", tmp_path / "new"
    _sparse(old, size)
    p = size // 2 + 12345
    _sparse(new, size, [(p, b"\x01")])
    t0 = time.perf_counter()
    si = pydelta.signature(old, tmp_path / "sig")
    t1 = time.perf_counter()
    stats = pydelta.delta(tmp_path / "sig", new, tmp_path / "delta")
    t2 = time.perf_counter()
    res = pydelta.patch(old, tmp_path / "delta", tmp_path / "out")
    t3 = time.perf_counter()
    bs = si.block_len
    assert bs == pydelta.default_block_len(size) == 8192
    assert pydelta.Signature.load(tmp_path / "sig").table.unique == 1
    d = (tmp_path / "delta").read_bytes()
    ops = parse_delta(d).ops
    assert len(ops) <= 5
    assert len([o for o in ops if o[0] == "C"]) <= 3
    assert stats.literal <= 2 * bs
    assert len(d) < 60 + 41 + 3 * 21 + 2 * bs
    assert res.size == size
    h = pydelta.blake3()
    with open(tmp_path / "out", "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    want = pydelta.blake3()
    want.update(bytes(p))
    want.update(b"\x01")
    want.update(bytes(size - p - 1))
    assert h.digest() == want.digest() == res.digest
    with capsys.disabled():
        print(
            f"\n[64 MiB zeros] signature {t1 - t0:.2f}s, delta {t2 - t1:.2f}s, "
            f"patch {t3 - t2:.2f}s, delta {len(d)} bytes, ops {[o[0] for o in ops]}"
        )


def test_zeros_old_vs_varied_new_is_fast():
    """Every window of NEW hits the one weak sum of OLD's zero block only
    where NEW is zero: the scan stays linear."""
    old = bytes(8 << 20)
    sig = pydelta.signature(io.BytesIO(old), block_size=4096)
    new = bytearray(8 << 20)
    for i in range(0, len(new), 3000):
        new[i] = 1 + i % 255
    t0 = time.perf_counter()
    d = pydelta.delta(sig, io.BytesIO(bytes(new)))
    elapsed = time.perf_counter() - t0
    p = parse_delta(d)
    assert p.copied == 0  # every 4096-byte window holds a nonzero byte
    assert p.literal == len(new)
    assert elapsed < 30  # generous: only guards against quadratic blow-up


def test_many_weak_collisions_scan():
    """NEW full of windows that collide with OLD's weak sum: each costs a
    bounded number of strong compares, and the result is right."""
    blocks = colliding_blocks(64)
    old = b"".join(blocks[:16])
    new = b"".join(blocks[16:]) * 4 + rand_bytes(5000, 8)
    sig = pydelta.signature(io.BytesIO(old), block_size=2048)
    t0 = time.perf_counter()
    d = pydelta.delta(sig, io.BytesIO(new))
    assert time.perf_counter() - t0 < 30
    p = parse_delta(d)
    assert apply_ops(old, p) == new
    assert p.copied + p.literal == len(new)
