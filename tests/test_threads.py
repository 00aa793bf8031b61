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
