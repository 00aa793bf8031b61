"""Reading regular files in small pieces: the same signatures as the buffered path."""

import gzip
import importlib
import io
import os
import random

import pytest

import pydelta
from pydelta import _threads
from pydelta.backends import backend

sig_mod = importlib.import_module("pydelta.signature")
needs_sig_fd = pytest.mark.skipif(
    not hasattr(backend, "sig_fd"),
    reason="a C-only kernel: the numba backend reads through the buffer (the C pass runs this test)",
)


def _data(size, seed=3):
    return random.Random(seed).randbytes(size)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces and chunks small enough to put many seams in small files."""
    monkeypatch.setattr(_threads, "PIECE", 4096)
    monkeypatch.setattr(_threads, "FILE_PART", 20_000)
    monkeypatch.setattr(sig_mod, "READ_SIZE", 20_000)


@pytest.mark.parametrize("block", [1, 64, 1000, 4096, 5000, 70_000])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_file_signature_equals_the_stream_one(tmp_path, small_pieces, block, threads):
    data = _data(300_007)
    path = tmp_path / "old"
    path.write_bytes(data)
    want = pydelta.signature(io.BytesIO(data), block_size=block, threads=1)
    assert pydelta.signature(path, block_size=block, threads=threads) == want


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 19_999, 20_000, 20_001, 40_000])
def test_edge_sizes(tmp_path, small_pieces, size):
    data = _data(size)
    path = tmp_path / "old"
    path.write_bytes(data)
    for block in (1000, 4096, 10_000):
        want = pydelta.signature(io.BytesIO(data), block_size=block)
        for threads in (1, 2):
            assert pydelta.signature(path, block_size=block, threads=threads) == want


def test_default_sizes_on_a_file(tmp_path):
    data = _data(3 << 20)
    path = tmp_path / "old"
    path.write_bytes(data)
    assert pydelta.signature(path, threads=2) == pydelta.signature(io.BytesIO(data), threads=1)


def test_a_file_object_is_read_from_its_position_and_left_at_the_end(tmp_path, small_pieces):
    data = _data(100_000)
    path = tmp_path / "old"
    path.write_bytes(data)
    for opener in (lambda: open(path, "rb"), lambda: open(path, "rb", buffering=0)):
        with opener() as fh:
            fh.read(12_345)
            got = pydelta.signature(fh, block_size=3000, threads=2)
            assert fh.tell() == len(data)
            assert fh.read() == b""
        assert got == pydelta.signature(io.BytesIO(data[12_345:]), block_size=3000)


def test_only_plain_readable_regular_files_take_the_file_path(tmp_path):
    path = tmp_path / "old"
    path.write_bytes(b"x" * 1000)
    with open(path, "rb") as fh:
        assert _threads.file_range(fh) == (fh.fileno(), 0)
    with open(path, "ab") as fh:
        assert _threads.file_range(fh) is None
    assert _threads.file_range(io.BytesIO(b"abc")) is None
    r, w = os.pipe()
    with open(r, "rb") as rf, open(w, "wb"):
        assert _threads.file_range(rf) is None


def test_a_compressed_wrapper_is_signed_by_its_content(tmp_path, small_pieces):
    data = _data(50_000)
    path = tmp_path / "old.gz"
    path.write_bytes(gzip.compress(data))
    with gzip.open(path, "rb") as fh:
        assert _threads.file_range(fh) is None
        got = pydelta.signature(fh, block_size=1000, threads=2)
    assert got == pydelta.signature(io.BytesIO(data), block_size=1000)


def test_a_pipe_is_signed_as_before(tmp_path):
    data = _data(200_000)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: all of data, then EOF
        os.close(r)
        with open(w, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(w)
    with open(r, "rb") as fh:
        got = pydelta.signature(fh, block_size=1000, threads=2)
    os.waitpid(pid, 0)
    assert got == pydelta.signature(io.BytesIO(data), block_size=1000)


def _prefix_signed(sig, data, lowest, highest):
    """sig is the signature of a prefix of data, of lowest..highest bytes."""
    size = pydelta.load_signature(sig).info.basis_size
    assert lowest <= size <= highest
    assert sig == pydelta.signature(io.BytesIO(data[:size]), block_size=1000)


def test_a_file_that_shrinks_while_signed_gives_a_consistent_signature(tmp_path, small_pieces):
    # parts already read ahead when it shrinks stay read: the result is the
    # signature of a prefix, at least as long as what is left
    data = _data(200_000)
    path = tmp_path / "old"
    path.write_bytes(data)
    seen = []

    def shrink(done):
        if not seen:
            os.truncate(path, 50_000)
        seen.append(done)

    sig = pydelta.signature(path, block_size=1000, threads=2, progress=shrink)
    _prefix_signed(sig, data, 50_000, 200_000)


def test_a_file_that_grows_while_signed_gives_a_consistent_signature(tmp_path, small_pieces):
    data = _data(60_000)
    path = tmp_path / "old"
    path.write_bytes(data[:30_000])
    grown = []

    def grow(done):
        if not grown:
            with open(path, "ab") as fh:
                fh.write(data[30_000:])
            grown.append(done)

    sig = pydelta.signature(path, block_size=1000, threads=2, progress=grow)
    _prefix_signed(sig, data, 30_000, 60_000)


@needs_sig_fd
def test_the_kernel_reports_read_errors_and_bad_parameters(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"y" * 10_000)
    buf = bytearray(4096)
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(OSError):
            backend.sig_fd(buf, fd, 0, 10_000, 1024, 16)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError):
            backend.sig_fd(buf, fd, 0, 10_000, 1000, 16)  # not whole blocks
        with pytest.raises(ValueError):
            backend.sig_fd(buf, fd, 0, 10_000, 1024, 40)  # strong sum too long
        entries, got = backend.sig_fd(buf, fd, 9_000, 5_000, 1024, 16)
        assert got == 1_000
        assert entries == backend.sig_blocks(b"y" * 1000, 1000, 1024, 16)
    finally:
        os.close(fd)


@needs_sig_fd
def test_a_read_error_is_one_clear_line(tmp_path, monkeypatch):
    path = tmp_path / "old"
    path.write_bytes(b"z" * 10_000)

    def failing(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backend, "sig_fd", failing)
    with pytest.raises(pydelta.FileAccessError, match=r"cannot read .*old: Input/output error"):
        pydelta.signature(path, block_size=1000)


def test_the_buffered_path_is_kept_when_the_backend_has_no_file_kernel(tmp_path, monkeypatch):
    data = _data(30_000)
    path = tmp_path / "old"
    path.write_bytes(data)
    want = pydelta.signature(io.BytesIO(data), block_size=1000)
    monkeypatch.delattr(backend, "sig_fd", raising=False)
    assert pydelta.signature(path, block_size=1000, threads=2) == want
    assert sig_mod.READ_SIZE > 0


@needs_sig_fd
@pytest.mark.parametrize("kinds", [("rabinkarp", "blake2"), ("rollsum", "md4")])
@pytest.mark.parametrize("block", [1, 1000, 4096, 70_000])
def test_rdiff_signature_of_a_file_equals_the_stream_one(tmp_path, small_pieces, kinds, block):
    weak, strong = kinds
    data = _data(150_001)
    path = tmp_path / "old"
    path.write_bytes(data)
    opts = dict(block_size=block, format="rdiff", rdiff_weak=weak, rdiff_hash=strong)
    want = pydelta.signature(io.BytesIO(data), threads=1, **opts)
    for threads in (1, 2, 3):
        assert pydelta.signature(path, threads=threads, **opts) == want


@needs_sig_fd
def test_the_rdiff_kernel_reports_bad_parameters(tmp_path):
    from pydelta.backends import rdiff_kernels

    path = tmp_path / "f"
    path.write_bytes(b"y" * 5000)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError):
            rdiff_kernels().sig_fd(0, bytearray(4096), fd, 0, 5000, 1024, 8)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 65_537, 300_001])
def test_the_sending_ends_pre_hash_reads_in_small_pieces(tmp_path, monkeypatch, size):
    from pydelta.sync import pipeline

    monkeypatch.setattr(pipeline, "STEP", 100_000)
    data = _data(size)
    path = tmp_path / "new"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert pipeline.PreHash(fd).result() == backend.blake3_digest(data)
    finally:
        os.close(fd)


@needs_sig_fd
def test_the_file_hash_kernel_reports_errors(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"w" * 5000)
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(OSError):
            backend.blake3_update_fd(backend.Blake3(), bytearray(4096), fd, 0, 5000)
    finally:
        os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ValueError):
            backend.blake3_update_fd(backend.Blake3(), bytearray(0), fd, 0, 5000)
        h = backend.Blake3()
        assert backend.blake3_update_fd(h, bytearray(1000), fd, 1000, 10_000) == 4000
        assert h.digest() == backend.blake3_digest(b"w" * 4000)
    finally:
        os.close(fd)
