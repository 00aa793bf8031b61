"""Thread counts: signatures and deltas are byte-identical for any count."""

import importlib
import io
import random

import pytest

import pydelta

sig_mod = importlib.import_module("pydelta.signature")
delta_mod = importlib.import_module("pydelta.delta")
THREADS = (1, 2, 3, 5)


def _pair(seed=7, size=600_000):
    r = random.Random(seed)
    old = bytearray(r.randbytes(size))
    new = bytearray(old)
    for _ in range(20):  # scattered replacements, inserts and deletes
        at = r.randrange(len(new))
        op = r.choice("rid")
        if op == "r":
            new[at : at + 50] = r.randbytes(50)
        elif op == "i":
            new[at:at] = r.randbytes(r.randrange(1, 3000))
        else:
            del new[at : at + r.randrange(1, 3000)]
    return bytes(old), bytes(new)


@pytest.mark.parametrize("read_size", [4096, 65536, 8 << 20])
@pytest.mark.parametrize("block", [1, 64, 1000, 4096])
def test_same_output_for_any_thread_count(monkeypatch, tmp_path, read_size, block):
    old, new = _pair()
    # small read buffers put many buffer seams (and thread splits) in the data
    monkeypatch.setattr(sig_mod, "READ_SIZE", read_size)
    monkeypatch.setattr(delta_mod, "READ_SIZE", read_size)
    sigs = {t: pydelta.signature(io.BytesIO(old), block_size=block, threads=t) for t in THREADS}
    assert len(set(sigs.values())) == 1
    deltas = {t: pydelta.delta(sigs[1], io.BytesIO(new), threads=t) for t in THREADS}
    assert len(set(deltas.values())) == 1
    (tmp_path / "old").write_bytes(old)
    pydelta.patch(tmp_path / "old", io.BytesIO(deltas[1]), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == new


def test_threads_argument_validated():
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(io.BytesIO(b"x"), threads=-1)
    sig = pydelta.signature(io.BytesIO(b"x"))
    with pytest.raises(ValueError):
        pydelta.iter_delta(sig, io.BytesIO(b"y"), threads=-2)


def _mixed(seed=11, size=700_000, block=512):
    """NEW mostly unlike OLD, with pieces of OLD (aligned or not), repeats and
    near-misses (a block with its last byte changed) scattered through it."""
    r = random.Random(seed)
    old = r.randbytes(size)
    new = bytearray()
    while len(new) < size:
        pick = r.random()
        if pick < 0.4:
            new += r.randbytes(r.randrange(1, 40_000))
        elif pick < 0.7:
            at = r.randrange(size - block)
            new += old[at : at + r.randrange(1, 6 * block)]
        elif pick < 0.85:
            at = r.randrange(size // block) * block
            new += old[at : at + block - 1] + bytes([old[at + block - 1] ^ 1])
        else:
            new += new[-r.randrange(1, 5000) :]
    return old, bytes(new)


def _c_only() -> None:
    """The pre-scan is a C kernel the numba twin does not have (backends.c.C_ONLY)."""
    if pydelta.backend != "c":
        pytest.skip("a C-only kernel: the pre-scan (the C pass runs this test)")


@pytest.mark.parametrize("cap", [1, 3, 1 << 15])
@pytest.mark.parametrize("read_size", [5000, 65536, 8 << 20])
def test_prescan_keeps_the_delta_for_any_thread_count(monkeypatch, read_size, cap):
    """The parallel pre-scan of the all-different case: every thread count
    and segment boundary (odd read sizes, a pre-scan that stops early at
    `cap` candidates) gives the single-thread delta byte for byte."""
    _c_only()
    old, new = _mixed()
    monkeypatch.setattr(delta_mod, "READ_SIZE", read_size)
    monkeypatch.setattr(delta_mod, "PRESCAN_MIN", 1)
    monkeypatch.setattr(delta_mod, "PRESCAN_CHECK", 1)
    monkeypatch.setattr(delta_mod, "PRESCAN_LITERAL_SHARE", 0.0)
    monkeypatch.setattr(delta_mod, "PRESCAN_CAP", cap)
    from pydelta.backends import c as C

    hinted = []
    real_hint = C.DeltaJob.hint

    def hint(self, start, stop, hits, n):
        hinted.append(stop - start)
        real_hint(self, start, stop, hits, n)

    monkeypatch.setattr(C.DeltaJob, "hint", hint)
    for block in (64, 512, 1000):
        sig = pydelta.signature(io.BytesIO(old), block_size=block)
        want = pydelta.delta(sig, io.BytesIO(new), threads=1, compress=False)
        for t in (2, 3, 4, 7, 16):
            assert pydelta.delta(sig, io.BytesIO(new), threads=t, compress=False) == want
    assert hinted  # the pre-scan ran


def test_prescan_kernel_and_hint_checks():
    """The kernel finds every window with an index candidate (checked
    against a window-by-window lookup) and the job refuses a bad hint."""
    _c_only()
    from pydelta.backends import c as C

    r = random.Random(5)
    old = r.randbytes(50_000)
    new = r.randbytes(3000) + old[1000:9000] + r.randbytes(3000) + old[:700]
    sig = pydelta.load_signature(pydelta.signature(io.BytesIO(old), block_size=500))
    table = sig.table
    want = [x for x in range(len(new) - 499) if table.find(new[x : x + 500]) is not None]
    hits = C.prescan_hits(10_000)
    n, done = C.prescan(table, new, len(new), 0, len(new), 100, hits, 10_000)
    assert done == 100 + len(new) - 499
    got = [hits[i] - 100 for i in range(n)]
    assert set(want) <= set(got)  # candidates: every real match, maybe more
    # a pre-scan that runs out of room certifies only what it checked
    n2, done2 = C.prescan(table, new, len(new), 0, len(new), 0, hits, 2)
    assert n2 == 2 and done2 == got[2]
    # split anywhere: the same candidates
    mid = 4321
    n3, d3 = C.prescan(table, new, len(new), 0, mid, 0, hits, 10_000)
    first = [hits[i] for i in range(n3)]
    n4, _ = C.prescan(table, new, len(new), d3, len(new), 0, hits, 10_000)
    assert first + [hits[i] for i in range(n4)] == got
    job = C.DeltaJob(table)
    bad = C.prescan_hits(2)
    bad[0], bad[1] = 50, 40
    with pytest.raises(ValueError):
        job.hint(0, 100, bad, 2)
    with pytest.raises(ValueError):
        job.hint(60, 100, bad, 1)
