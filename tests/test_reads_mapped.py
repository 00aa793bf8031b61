"""The delta reads NEW through mapped windows: same deltas, and a NEW cut short
while it is read is a clear error, never a crash (csrc/mapguard.c)."""

import importlib
import io
import mmap
import os
import random
import subprocess
import sys

import pytest

import pydelta
from pydelta.backends import backend
from pydelta.errors import message

delta_mod = importlib.import_module("pydelta.delta")
c_only = pytest.mark.skipif(
    not hasattr(backend, "map_guard"),
    reason="a C-only kernel: the numba backend reads NEW with read() (the C pass runs this test)",
)


def _pair(seed, size, tail):
    r = random.Random(seed)
    old = r.randbytes(size)
    new = bytearray(old)
    for _ in range(25):
        at = r.randrange(len(new))
        new[at : at + 50] = r.randbytes(r.randrange(1, 4000))
    return old, bytes(new) + r.randbytes(tail)  # an all-different tail: the pre-scan runs


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr(delta_mod, "MAP_WINDOW", 1 << 16)
    monkeypatch.setattr(delta_mod, "PRESCAN_MIN", 1 << 12)
    monkeypatch.setattr(delta_mod, "PRESCAN_CHECK", 1 << 14)


@pytest.mark.parametrize("block", [64, 700, 4096, 100_000])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_mapped_new_gives_the_same_delta(tmp_path, small_windows, block, threads):
    old, new = _pair(block, 400_000, 300_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=block)
    want = pydelta.delta(sig, io.BytesIO(new), threads=1)
    assert pydelta.delta(sig, path, threads=threads) == want
    (tmp_path / "old").write_bytes(old)
    pydelta.patch(tmp_path / "old", io.BytesIO(want), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == new


@pytest.mark.parametrize("size", [1, 4095, 4096, 65_536, 65_537])
def test_edge_sizes(tmp_path, small_windows, size):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "new"
    path.write_bytes(data)
    sig = pydelta.signature(io.BytesIO(data[: size // 2]), block_size=512)
    for threads in (1, 2):
        assert pydelta.delta(sig, path, threads=threads) == pydelta.delta(sig, io.BytesIO(data))


def test_an_empty_or_unaligned_new_reads_as_before(tmp_path, small_windows):
    old, new = _pair(1, 50_000, 10_000)
    sig = pydelta.signature(io.BytesIO(old), block_size=1000)
    path = tmp_path / "new"
    path.write_bytes(b"")
    assert pydelta.delta(sig, path) == pydelta.delta(sig, io.BytesIO(b""))
    path.write_bytes(b"#" * 100 + new)
    with open(path, "rb") as fh:
        fh.read(100)  # a position no mapping can start at
        assert pydelta.delta(sig, fh, threads=2) == pydelta.delta(sig, io.BytesIO(new))


def test_the_read_path_stays_available(tmp_path, small_windows, monkeypatch):
    old, new = _pair(2, 60_000, 20_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=1000)
    monkeypatch.setenv(delta_mod.MAP_ENV, "0")
    assert pydelta.delta(sig, path, threads=2) == pydelta.delta(sig, io.BytesIO(new))


@c_only
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("cut", [0, 100_000, 1_500_000])
def test_new_cut_short_while_read_is_one_clear_error(tmp_path, monkeypatch, threads, cut):
    # the output buffer fills long before the 1 MiB window is scanned, so the
    # scan stops (and reports progress) inside the window: cut there, the rest
    # of the window is gone under the mapping (SIGBUS in the guarded kernels)
    monkeypatch.setattr(delta_mod, "MAP_WINDOW", 1 << 20)
    monkeypatch.setattr(delta_mod, "OUT_SIZE", 0)
    monkeypatch.setattr(delta_mod, "PRESCAN_MIN", 1 << 12)
    old, new = _pair(3, 50_000, 3_000_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=2048)
    calls = []

    def truncate_once(done):
        if not calls:
            os.truncate(path, cut)
        calls.append(done)

    with pytest.raises(pydelta.FileAccessError) as err:
        pydelta.delta(sig, path, threads=threads, progress=truncate_once)
    assert calls[0] < 1 << 20
    text = message(err.value)
    assert "cut short" in text and str(path) in text and "\n" not in text


@c_only
def test_the_guarded_kernels_report_a_mapping_cut_short(tmp_path):
    path = tmp_path / "f"
    data = random.Random(9).randbytes(1 << 20)
    path.write_bytes(data)
    sig = pydelta.load_signature(pydelta.signature(io.BytesIO(data[:100_000]), block_size=1024))
    fd = os.open(path, os.O_RDONLY)
    try:
        m = mmap.mmap(fd, 1 << 20, prot=mmap.PROT_READ)
        view = memoryview(m)
        os.truncate(path, 4096)
        assert not backend.blake3_update_mapped(backend.Blake3(), view)
        job = backend.DeltaJob(sig.table)
        rc, _, _ = job.scan_mapped(view, 0, 1 << 20, True, bytearray(backend.DELTA_MIN_OUT))
        assert rc == backend.ERR_IO
        hits = backend.prescan_hits(64)
        with pytest.raises(OSError):
            backend.prescan_mapped(sig.table, view, 1 << 20, 0, 1 << 19, 0, hits, 64)
        # what is still there reads as before
        h = backend.Blake3()
        assert backend.blake3_update_mapped(h, view[:4096])
        assert h.digest() == backend.blake3_digest(data[:4096])
        view.release()
        m.close()
    finally:
        os.close(fd)


@c_only
def test_new_cut_short_fails_the_cli_with_one_line(tmp_path):
    # the scan is stopped midway through NEW by a progress hook that truncates it
    old, new = _pair(4, 300_000, 3_000_000)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    pydelta.signature(tmp_path / "old", tmp_path / "sig", block_size=2048)
    code = (
        "import importlib, os, sys\n"
        "d = importlib.import_module('pydelta.delta')\n"
        "d.MAP_WINDOW = 1 << 16\n"
        "real = d._scan_windows\n"
        "NEW = sys.argv[2]\n"
        "def cut(*a):\n"
        "    a = list(a)\n"
        "    a[-1] = lambda done: os.truncate(NEW, 1000)\n"
        "    return real(*a)\n"
        "d._scan_windows = cut\n"
        "from pydelta.__main__ import main\n"
        "sys.argv = ['pydelta', 'delta', '-q', sys.argv[1], sys.argv[2], sys.argv[3]]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(tmp_path / "sig"),
            str(tmp_path / "new"),
            str(tmp_path / "delta"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode > 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cut short" in lines[0], proc.stderr
    assert not (tmp_path / "delta").exists()


@c_only
def test_a_bus_error_outside_the_guard_still_ends_the_process(tmp_path):
    # the guard passes a SIGBUS it did not cause to what was there before
    path = tmp_path / "f"
    path.write_bytes(b"q" * 65_536)
    code = (
        "import mmap, os, sys\n"
        "from pydelta.backends import backend\n"
        "assert backend.map_guard()\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "m = mmap.mmap(fd, 65536, prot=mmap.PROT_READ)\n"
        "os.ftruncate(fd, 0)\n"
        "print(m[40000])\n"
    )
    env = dict(os.environ)
    env.pop("PYTHONFAULTHANDLER", None)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, env=env, timeout=60
    )
    if os.environ.get("PYDELTA_SANITIZED"):
        # under the sanitizers the handler before ours is AddressSanitizer's,
        # which reports the bus error and aborts
        assert proc.returncode == -6 and b"BUS" in proc.stderr
    else:
        assert proc.returncode == -7  # SIGBUS


def test_a_new_that_cannot_be_mapped_is_read(tmp_path, small_windows, monkeypatch):
    old, new = _pair(6, 60_000, 20_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=1000)
    want = pydelta.delta(sig, io.BytesIO(new))

    def refuse(*args, **kwargs):
        raise OSError(19, "No such device")

    monkeypatch.setattr(mmap, "mmap", refuse)
    assert pydelta.delta(sig, path, threads=2) == want


def test_a_mapped_new_reports_the_same_statistics(tmp_path, small_windows):
    old, new = _pair(7, 200_000, 50_000)
    (tmp_path / "new").write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=1000)
    mapped = pydelta.delta(sig, tmp_path / "new", tmp_path / "d1", threads=2)
    read = pydelta.delta(sig, io.BytesIO(new), tmp_path / "d2", threads=2)
    assert mapped.new_size == len(new)
    assert (mapped.new_size, mapped.copied, mapped.literal, mapped.delta_size) == (
        read.new_size,
        read.copied,
        read.literal,
        read.delta_size,
    )


@pytest.mark.parametrize("block", [700, 4096])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_mapped_new_gives_the_same_rdiff_delta(tmp_path, small_windows, block, threads):
    old, new = _pair(8, 300_000, 200_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=block, format="rdiff")
    want = pydelta.delta(sig, io.BytesIO(new), threads=1)
    assert pydelta.delta(sig, path, threads=threads) == want


@c_only
@pytest.mark.parametrize("cut", [0, 1_500_000])
def test_new_cut_short_while_an_rdiff_delta_reads_it(tmp_path, monkeypatch, cut):
    monkeypatch.setattr(delta_mod, "MAP_WINDOW", 1 << 20)
    monkeypatch.setattr(delta_mod, "OUT_SIZE", 0)
    old, new = _pair(9, 50_000, 3_000_000)
    path = tmp_path / "new"
    path.write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=2048, format="rdiff")
    calls = []

    def truncate_once(done):
        if not calls:
            os.truncate(path, cut)
        calls.append(done)

    with pytest.raises(pydelta.FileAccessError) as err:
        pydelta.delta(sig, path, progress=truncate_once)
    assert calls[0] < 1 << 20
    text = message(err.value)
    assert "cut short" in text and str(path) in text and "\n" not in text


def test_offsets_past_4_gib(tmp_path):
    # a sparse file: only its last bytes are read (signature, delta, pre-hash)
    data = random.Random(10).randbytes(300_000)
    path = tmp_path / "sparse"
    at = (4 << 30) + (1 << 16)  # a multiple of the mapping granularity
    with open(path, "wb") as fh:
        fh.truncate(at)
        fh.seek(at)
        fh.write(data)
    with open(path, "rb") as fh:
        fh.seek(at)
        sig = pydelta.signature(fh, block_size=4096, threads=2)
    assert sig == pydelta.signature(io.BytesIO(data), block_size=4096)
    old = pydelta.signature(io.BytesIO(data[:150_000]), block_size=4096)
    with open(path, "rb") as fh:
        fh.seek(at)
        got = pydelta.delta(old, fh, threads=2)
    assert got == pydelta.delta(old, io.BytesIO(data))
