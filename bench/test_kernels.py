"""pytest-benchmark micro-benchmarks of the kernels (not part of the test run).

Run: .venv/bin/python -m pytest bench/test_kernels.py --benchmark-only
Each kernel runs through the backend in use (PYDELTA_BACKEND), on 8 MiB of
random data unless noted, so throughput is 8 MiB / the reported time.
"""

import io
import random

import pytest

import pydelta
from pydelta.backends import backend

pytest.importorskip("pytest_benchmark")

SIZE = 8 << 20
BLOCK = 32768
DATA = random.Random(1).randbytes(SIZE)


@pytest.fixture(scope="module")
def sig():
    return pydelta.Signature(pydelta.signature(io.BytesIO(DATA), block_size=BLOCK))


def test_rolling_sum(benchmark):
    benchmark(backend.weak, DATA)


def test_strong_hash_whole(benchmark):
    benchmark(backend.blake3_digest, DATA)


def test_strong_hash_blocks(benchmark):
    """Signature kernel: weak + BLAKE3 of every 32 KiB block."""
    benchmark(backend.sig_blocks, DATA, SIZE, BLOCK, 16)


def test_table_lookup(benchmark, sig):
    blocks = [DATA[i : i + BLOCK] for i in range(0, SIZE, BLOCK)][:64]
    benchmark(lambda: [sig.table.find(b) for b in blocks])


def test_scan_all_different(benchmark, sig):
    """Delta scan where nothing matches: rolling + pre-filter per byte."""
    other = random.Random(2).randbytes(SIZE)
    benchmark(lambda: pydelta.delta(sig, io.BytesIO(other), threads=1))


def test_scan_identical(benchmark, sig):
    """Delta scan where everything matches: continuation by strong hash."""
    benchmark(lambda: pydelta.delta(sig, io.BytesIO(DATA), threads=1))


def test_patch_copy(benchmark, sig, tmp_path):
    old = tmp_path / "old"
    old.write_bytes(DATA)
    d = pydelta.delta(sig, io.BytesIO(DATA))
    benchmark(lambda: pydelta.patch(old, io.BytesIO(d), io.BytesIO()))
