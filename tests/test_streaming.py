"""Streaming: the output never depends on how the input is chunked."""

from __future__ import annotations

import importlib
import io
import os
import sys
import tempfile
import threading

import pytest
from conftest import ReadOnlyTiny, TinyReader, rand_bytes, tmp_leftovers

import pydelta

CHUNKS = [1, 2, 3, 7]


def _mod(name):
    """A pydelta submodule (pydelta.signature etc. are shadowed by functions)."""
    return importlib.import_module("pydelta." + name)


# SIG read through streams returning fewer bytes than its header per call
SIG_CHUNKS = list(CHUNKS) + [16, 17]


def _case(seed=1, size=6000, bs=64):
    """OLD/NEW with copies, literals, a moved block, and OLD's short tail."""
    old = rand_bytes(size + 13, seed)
    new = (
        b"hdr!"
        + old[:1000]
        + rand_bytes(300, seed + 1)
        + old[2500:4000]
        + old[1000:1300]
        + old[4100:]
        + b"appended"
    )
    return old, new, bs


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The reference signature and delta made from ordinary files."""
    d = tmp_path_factory.mktemp("ref")
    old, new, bs = _case()
    (d / "old").write_bytes(old)
    (d / "new").write_bytes(new)
    pydelta.signature(d / "old", d / "sig", block_size=bs)
    stats = pydelta.delta(d / "sig", d / "new", d / "delta")
    assert stats.copied and stats.literal
    return {
        "dir": d,
        "old": old,
        "new": new,
        "bs": bs,
        "sig": (d / "sig").read_bytes(),
        "delta": (d / "delta").read_bytes(),
    }


# ---------------------------------------------------------------- tiny reads


@pytest.mark.parametrize("k", CHUNKS)
def test_signature_tiny_reads(ref, k):
    src = TinyReader(ref["old"], k)
    assert pydelta.signature(src, block_size=ref["bs"]) == ref["sig"]
    assert src.calls >= len(ref["old"]) // k


@pytest.mark.parametrize("k", CHUNKS)
def test_signature_read_only_duck_type(ref, k):
    src = ReadOnlyTiny(ref["old"], k)
    assert pydelta.signature(src, block_size=ref["bs"]) == ref["sig"]


@pytest.mark.parametrize("k", CHUNKS)
def test_delta_tiny_reads_new(ref, k):
    out = pydelta.delta(ref["dir"] / "sig", TinyReader(ref["new"], k))
    assert out == ref["delta"]


@pytest.mark.parametrize("k", SIG_CHUNKS)
def test_delta_tiny_reads_sig_and_new(ref, k):
    sig = TinyReader(ref["sig"], k)
    out = pydelta.delta(sig, TinyReader(ref["new"], k))
    assert out == ref["delta"]
    out = pydelta.delta(ReadOnlyTiny(ref["sig"], k), ReadOnlyTiny(ref["new"], k))
    assert out == ref["delta"]


@pytest.mark.parametrize("k", SIG_CHUNKS)
def test_delta_tiny_reads_to_path(ref, k, tmp_path):
    stats = pydelta.delta(TinyReader(ref["sig"], k), TinyReader(ref["new"], k), tmp_path / "d")
    assert (tmp_path / "d").read_bytes() == ref["delta"]
    assert stats.delta_size == len(ref["delta"])
    assert stats.new_size == len(ref["new"])


@pytest.mark.parametrize("k", CHUNKS)
def test_patch_tiny_reads_delta(ref, k, tmp_path):
    out = tmp_path / "out"
    res = pydelta.patch(ref["dir"] / "old", TinyReader(ref["delta"], k), out)
    assert out.read_bytes() == ref["new"]
    assert res.size == len(ref["new"])
    assert tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("k", CHUNKS)
def test_patch_tiny_reads_to_stream(ref, k):
    sink = io.BytesIO()
    with open(ref["dir"] / "old", "rb") as old:
        pydelta.patch(old, ReadOnlyTiny(ref["delta"], k), sink)
    assert sink.getvalue() == ref["new"]


@pytest.mark.parametrize("k", SIG_CHUNKS)
def test_whole_pipeline_tiny(ref, k, tmp_path):
    """OLD, NEW, SIG and DELTA all dribbled through k-byte reads."""
    sig = pydelta.signature(TinyReader(ref["old"], k), block_size=ref["bs"])
    d = pydelta.delta(TinyReader(sig, k), TinyReader(ref["new"], k))
    assert d == ref["delta"]
    sink = io.BytesIO()
    pydelta.patch(ref["dir"] / "old", TinyReader(d, k), sink)
    assert sink.getvalue() == ref["new"]


@pytest.mark.parametrize("k", CHUNKS)
def test_patcher_fed_tiny_pieces(ref, k, tmp_path):
    out = tmp_path / "out"
    d = ref["delta"]
    with pydelta.Patcher(ref["dir"] / "old", out) as p:
        for i in range(0, len(d), k):
            assert p.write(d[i : i + k]) == len(d[i : i + k])
        assert not out.exists()  # nothing published before close
    assert out.read_bytes() == ref["new"]
    assert p.result.size == len(ref["new"])
    assert p.result.digest == pydelta.blake3_digest(ref["new"])
    assert p.close() is p.result  # close is idempotent
    assert tmp_leftovers(tmp_path) == []


def test_patcher_uneven_pieces_and_empty_writes(ref, tmp_path, rng):
    d = ref["delta"]
    sink = io.BytesIO()
    p = pydelta.Patcher(ref["dir"] / "old", sink)
    i = 0
    while i < len(d):
        n = rng.choice([0, 1, 2, 5, 41, 52, 53, 300, 4000])
        p.write(memoryview(d)[i : i + n])
        i += n
    res = p.close()
    assert sink.getvalue() == ref["new"]
    assert res.size == len(ref["new"])


def test_patcher_write_after_close_raises(ref, tmp_path):
    p = pydelta.Patcher(ref["dir"] / "old", io.BytesIO())
    p.write(ref["delta"])
    p.close()
    with pytest.raises(ValueError, match="closed"):
        p.write(b"x")


@pytest.mark.parametrize("bs", [1, 3, 7, 64, 1000])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_delta_chunk_independent_many_block_sizes(tmp_path, bs, k):
    old, new, _ = _case(seed=bs, size=3000)
    sig = pydelta.signature(io.BytesIO(old), block_size=bs)
    want = pydelta.delta(sig, io.BytesIO(new))
    assert pydelta.delta(sig, TinyReader(new, k)) == want
    # and the result is right
    (tmp_path / "old").write_bytes(old)
    sink = io.BytesIO()
    pydelta.patch(tmp_path / "old", TinyReader(want, k), sink)
    assert sink.getvalue() == new


def test_delta_chunk_independent_long_literals():
    """Literals are cut at LIT_MAX by position, not by read size."""
    lit_max = pydelta._backend_module.LIT_MAX
    old = rand_bytes(100_000, 3)
    new = rand_bytes(lit_max + 5000, 4) + old + rand_bytes(lit_max - 1, 5) + old[:3000]
    sig = pydelta.signature(io.BytesIO(old), block_size=1024)
    want = pydelta.delta(sig, io.BytesIO(new))
    for k in (997, 4096, 65536 + 3):
        assert pydelta.delta(sig, TinyReader(new, k)) == want, k


def test_delta_chunk_independent_across_read_buffer(monkeypatch):
    """Force the driver's own buffer to be small so input is compacted often."""
    dmod, smod = _mod("delta"), _mod("signature")

    old, new, bs = _case(seed=9, size=20_000, bs=100)
    sig = pydelta.signature(io.BytesIO(old), block_size=bs)
    want = pydelta.delta(sig, io.BytesIO(new))
    monkeypatch.setattr(dmod, "READ_SIZE", 1)  # buffer = 4 blocks
    monkeypatch.setattr(smod, "READ_SIZE", 1)  # one block per sig chunk
    assert pydelta.signature(io.BytesIO(old), block_size=bs) == sig
    for k in (1, 7, 150, 401):
        assert pydelta.delta(sig, TinyReader(new, k)) == want, k


# ---------------------------------------------------------------- iterators


def test_iter_signature_concatenates_to_signature(ref):
    pieces = list(pydelta.iter_signature(ref["dir"] / "old", block_size=ref["bs"]))
    assert len(pieces) >= 2
    assert all(isinstance(p, bytes) for p in pieces)
    assert b"".join(pieces) == ref["sig"]
    pieces = list(pydelta.iter_signature(TinyReader(ref["old"], 3), block_size=ref["bs"]))
    assert b"".join(pieces) == ref["sig"]


def test_iter_delta_concatenates_to_delta(ref):
    pieces = list(pydelta.iter_delta(ref["dir"] / "sig", ref["dir"] / "new"))
    assert len(pieces) >= 2
    assert all(isinstance(p, bytes) for p in pieces)
    assert b"".join(pieces) == ref["delta"]
    pieces = list(pydelta.iter_delta(ref["sig"], TinyReader(ref["new"], 2)))
    assert b"".join(pieces) == ref["delta"]


def test_iter_delta_pieces_are_independent_copies(ref):
    """Pieces are bytes copies, safe to keep after the next one is made."""
    dmod = _mod("delta")

    old = rand_bytes(50_000, 11)
    new = rand_bytes(3 * (1 << 20), 12)  # > OUT_SIZE of all-literal output
    sig = pydelta.signature(io.BytesIO(old), block_size=1024)
    pieces = list(pydelta.iter_delta(sig, io.BytesIO(new)))
    assert len(pieces) > 2
    assert b"".join(pieces) == pydelta.delta(sig, io.BytesIO(new))
    assert dmod.OUT_SIZE == 1 << 20


def test_iter_signature_large_multichunk():
    """More than one READ_SIZE of OLD: entries of all chunks, in order."""
    smod = _mod("signature")

    old = rand_bytes(smod.READ_SIZE * 2 + 12345, 13)
    pieces = list(pydelta.iter_signature(io.BytesIO(old), block_size=4096))
    assert len(pieces) == 1 + 3 + 1  # header, three chunks of entries, trailer
    assert b"".join(pieces) == pydelta.signature(TinyReader(old, 65536 + 7), block_size=4096)


# ---------------------------------------------------------------- progress


def _monotonic_recorder():
    seen = []

    def cb(n):
        assert isinstance(n, int)
        seen.append(n)

    return seen, cb


def test_progress_signature():
    smod = _mod("signature")

    old = rand_bytes(2 * smod.READ_SIZE + 999, 14)
    seen, cb = _monotonic_recorder()
    pydelta.signature(io.BytesIO(old), block_size=4096, progress=cb)
    assert len(seen) >= 3
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[-1] == len(old)


@pytest.mark.parametrize("k", [None, 7])
def test_progress_delta(ref, k):
    seen, cb = _monotonic_recorder()
    new = ref["new"] if k is None else TinyReader(ref["new"], k)
    d = pydelta.delta(ref["sig"], new if k else ref["dir"] / "new", progress=cb)
    assert d == ref["delta"]
    assert seen and seen == sorted(seen)
    assert seen[-1] == len(ref["new"])
    if k:
        assert len(seen) > 10


def test_progress_iter_delta_and_signature(ref):
    seen, cb = _monotonic_recorder()
    b"".join(pydelta.iter_delta(ref["sig"], TinyReader(ref["new"], 3), progress=cb))
    assert seen == sorted(seen) and seen[-1] == len(ref["new"])
    seen, cb = _monotonic_recorder()
    b"".join(pydelta.iter_signature(ref["dir"] / "old", block_size=ref["bs"], progress=cb))
    assert seen == sorted(seen) and seen[-1] == len(ref["old"])


@pytest.mark.parametrize("k", [None, 5])
def test_progress_patch(ref, k, tmp_path):
    pmod = _mod("patch")

    seen, cb = _monotonic_recorder()
    d = ref["delta"] if k is None else TinyReader(ref["delta"], k)
    pydelta.patch(
        ref["dir"] / "old", io.BytesIO(d) if k is None else d, tmp_path / "o", progress=cb
    )
    assert seen and seen == sorted(seen)
    assert seen[-1] == len(ref["new"])
    seen2, cb2 = _monotonic_recorder()
    with pydelta.Patcher(ref["dir"] / "old", io.BytesIO(), progress=cb2) as p:
        for i in range(0, len(ref["delta"]), 11):
            p.write(ref["delta"][i : i + 11])
    assert seen2 == sorted(seen2) and seen2[-1] == len(ref["new"])
    assert pmod.OUT_SIZE >= 1


def test_progress_patch_large_output(tmp_path, monkeypatch):
    """Output larger than the patch buffer: several progress steps."""
    pmod = _mod("patch")

    monkeypatch.setattr(pmod, "OUT_SIZE", 4096)
    old = rand_bytes(100_000, 15)
    new = old + rand_bytes(10_000, 16) + old
    (tmp_path / "old").write_bytes(old)
    d = pydelta.delta(pydelta.signature(tmp_path / "old", block_size=512), io.BytesIO(new))
    seen, cb = _monotonic_recorder()
    sink = io.BytesIO()
    pydelta.patch(tmp_path / "old", io.BytesIO(d), sink, progress=cb)
    assert sink.getvalue() == new
    assert len(seen) >= len(new) // 4096
    assert seen == sorted(seen) and seen[-1] == len(new)


# ---------------------------------------------------------------- pipes


def _pipe_reader(data: bytes, piece: int = 4096):
    """A read file object on an os.pipe fed by a writer thread."""
    r, w = os.pipe()

    def writer():
        try:
            with os.fdopen(w, "wb", buffering=0) as fh:
                for i in range(0, len(data), piece):
                    fh.write(data[i : i + piece])
        except BrokenPipeError:  # reader gave up early
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    return os.fdopen(r, "rb", buffering=0), t


@pytest.mark.parametrize("piece", [1, 3, 4096, 1 << 20])
def test_signature_from_pipe(ref, piece):
    if piece == 1:
        data, bs = ref["old"][:2000], 64
        want = pydelta.signature(io.BytesIO(data), block_size=bs)
    else:
        data, bs, want = ref["old"], ref["bs"], ref["sig"]
    fh, t = _pipe_reader(data, piece)
    with fh:
        got = pydelta.signature(fh, block_size=bs)
    t.join(10)
    assert got == want


def test_signature_from_pipe_default_block_len():
    data = rand_bytes(100_000, 17)
    fh, t = _pipe_reader(data)
    with fh:
        got = pydelta.signature(fh)
    t.join(10)
    # size unknown on a pipe: the stream block length
    assert int.from_bytes(got[8:12], "little") == pydelta.format.STREAM_BLOCK_LEN == 32768
    assert got == pydelta.signature(io.BytesIO(data), block_size=32768)


def test_signature_size_known_for_files_and_bytesio(tmp_path):
    data = rand_bytes(5_000_000, 18)
    (tmp_path / "f").write_bytes(data)
    a = pydelta.signature(tmp_path / "f")
    b = pydelta.signature(io.BytesIO(data))
    assert a == b
    assert int.from_bytes(a[8:12], "little") == pydelta.default_block_len(len(data)) == 3072


@pytest.mark.parametrize("piece", [1, 7, 65536])
def test_delta_from_pipe(ref, piece):
    fh, t = _pipe_reader(ref["new"], piece)
    with fh:
        got = pydelta.delta(ref["dir"] / "sig", fh)
    t.join(10)
    assert got == ref["delta"]


def test_delta_sig_from_pipe(ref):
    # 4096-byte writes are atomic on a pipe, so the header arrives whole
    # (a header split across writes can hit the short-read bug above)
    fh, t = _pipe_reader(ref["sig"], 4096)
    with fh:
        got = pydelta.delta(fh, ref["dir"] / "new")
    t.join(10)
    assert got == ref["delta"]


def test_patch_delta_from_pipe(ref, tmp_path):
    fh, t = _pipe_reader(ref["delta"], 3)
    with fh:
        res = pydelta.patch(ref["dir"] / "old", fh, tmp_path / "out")
    t.join(10)
    assert (tmp_path / "out").read_bytes() == ref["new"]
    assert res.size == len(ref["new"])


def test_stdin_and_stdout_dash(ref, monkeypatch, tmp_path):
    class Std:
        def __init__(self, buf):
            self.buffer = buf

    monkeypatch.setattr(sys, "stdin", Std(TinyReader(ref["old"], 7)))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", Std(out))
    pydelta.signature("-", "-", block_size=ref["bs"])
    assert out.getvalue() == ref["sig"]

    monkeypatch.setattr(sys, "stdin", Std(io.BytesIO(ref["new"])))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", Std(out))
    pydelta.delta(ref["dir"] / "sig", "-", "-")
    assert out.getvalue() == ref["delta"]

    monkeypatch.setattr(sys, "stdin", Std(TinyReader(ref["delta"], 2)))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", Std(out))
    pydelta.patch(ref["dir"] / "old", "-", "-")
    assert out.getvalue() == ref["new"]


# ---------------------------------------------------------------- info through short reads


@pytest.mark.parametrize(
    "k",
    [1, 3, 7, 59, 60, 1000],
)
def test_info_delta_short_reads(ref, k):
    want = pydelta.info(ref["dir"] / "delta").fields
    assert pydelta.info(TinyReader(ref["delta"], k)).fields == want


@pytest.mark.parametrize("k", [4, 7, 16, 1000])
def test_info_signature_short_reads(ref, k):
    want = pydelta.info(ref["dir"] / "sig").fields
    assert pydelta.info(TinyReader(ref["sig"], k)).fields == want


# ---------------------------------------------------------------- non-blocking inputs


def _nonblocking_pipe(data: bytes, first: int, buffering: int):
    """A non-blocking pipe holding data[:first] now and the rest 0.3 s later."""
    r, w = os.pipe()
    os.write(w, data[:first])
    os.set_blocking(r, False)

    def writer():
        import time

        time.sleep(0.3)
        try:
            with os.fdopen(w, "wb", buffering=0) as fh:
                fh.write(data[first:])
        except BrokenPipeError:  # the reader already gave up (the bug)
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    return os.fdopen(r, "rb", buffering=buffering), t


@pytest.mark.parametrize("buffering", [0, -1])
def test_signature_nonblocking_pipe_not_silently_truncated(ref, buffering):
    """A non-blocking pipe with nothing ready is waited on, never taken for EOF."""
    fh, t = _nonblocking_pipe(ref["old"], 100, buffering)
    try:
        with fh:
            got = pydelta.signature(fh, block_size=ref["bs"])
    finally:
        t.join(10)
    assert pydelta.load_signature(got).info.basis_size == len(ref["old"])
    assert got == ref["sig"]


def test_delta_nonblocking_pipe_not_silently_truncated(ref):
    fh, t = _nonblocking_pipe(ref["new"], 100, 0)
    try:
        with fh:
            got = pydelta.delta(ref["sig"], fh)
    finally:
        t.join(10)
    assert got == ref["delta"]


def test_patch_nonblocking_pipe_never_publishes_partial(ref, tmp_path):
    """The whole delta is waited for and applied; a partial one would not verify."""
    fh, t = _nonblocking_pipe(ref["delta"], 100, 0)
    try:
        with fh:
            pydelta.patch(ref["dir"] / "old", fh, tmp_path / "out")
    finally:
        t.join(10)
    assert (tmp_path / "out").read_bytes() == ref["new"]
    assert tmp_leftovers(tmp_path) == []


# ---------------------------------------------------------------- property: chunking never matters

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    old_len=st.integers(0, 5000),
    pieces=st.lists(
        st.tuples(st.integers(0, 6000), st.integers(0, 400), st.booleans()), max_size=8
    ),
    bs=st.one_of(st.integers(1, 40), st.sampled_from([64, 100, 257, 1024])),
    k=st.integers(1, 300),
    small_buf=st.booleans(),
)
def test_delta_independent_of_chunking_property(
    monkeypatch, seed, old_len, pieces, bs, k, small_buf
):
    old = rand_bytes(old_len, seed)
    # NEW: runs copied from OLD (at arbitrary offsets) and fresh bytes
    new = b"".join(
        old[a % (old_len + 1) : a % (old_len + 1) + n] if from_old else rand_bytes(n, seed ^ a)
        for a, n, from_old in pieces
    )
    sig = pydelta.signature(io.BytesIO(old), block_size=bs)
    want = pydelta.delta(sig, io.BytesIO(new))
    with monkeypatch.context() as m:
        if small_buf:
            m.setattr(_mod("delta"), "READ_SIZE", 1)  # 4 blocks: constant compaction
        got = pydelta.delta(sig, TinyReader(new, k))
    assert got == want
    out = io.BytesIO()
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "old"), "wb") as fh:
            fh.write(old)
        with pydelta.Patcher(os.path.join(d, "old"), out) as p:
            for i in range(0, len(want), k):
                p.write(want[i : i + k])
    assert out.getvalue() == new


# ---------------------------------------------------------------- threads and file-object outputs


def test_shared_signature_across_threads(ref):
    """One loaded Signature used by several threads at once (the C scan runs
    without the GIL): every delta is the same as the serial one."""
    from concurrent.futures import ThreadPoolExecutor

    sig = pydelta.load_signature(ref["sig"])
    news = [ref["new"][i:] + ref["new"][:i] for i in range(0, 6000, 750)]
    serial = [pydelta.delta(sig, io.BytesIO(n)) for n in news]
    with ThreadPoolExecutor(4) as ex:
        parallel = list(ex.map(lambda n: pydelta.delta(sig, TinyReader(n, 501)), news * 2))
    assert parallel == serial * 2


def test_outputs_to_file_objects(ref):
    out = io.BytesIO()
    si = pydelta.signature(io.BytesIO(ref["old"]), out, block_size=ref["bs"])
    assert out.getvalue() == ref["sig"]
    assert si == pydelta.load_signature(ref["sig"]).info
    out = io.BytesIO()
    stats = pydelta.delta(ref["sig"], io.BytesIO(ref["new"]), out)
    assert out.getvalue() == ref["delta"]
    assert stats.delta_size == len(ref["delta"]) and stats.new_size == len(ref["new"])


def test_unbuffered_file_outputs(ref, tmp_path):
    """Raw (unbuffered) files may write less than asked; nothing is lost."""
    with open(tmp_path / "sig", "wb", buffering=0) as fh:
        pydelta.signature(io.BytesIO(ref["old"]), fh, block_size=ref["bs"])
    assert (tmp_path / "sig").read_bytes() == ref["sig"]
    with open(tmp_path / "out", "wb", buffering=0) as fh:
        pydelta.patch(ref["dir"] / "old", io.BytesIO(ref["delta"]), fh)
    assert (tmp_path / "out").read_bytes() == ref["new"]


class ShortWriter(io.RawIOBase):
    """A writable stream accepting at most 3 bytes per write() call."""

    def __init__(self):
        super().__init__()
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        b = memoryview(b).cast("B")[:3]
        self.data += b
        return len(b)


def test_short_writes_to_stream_outputs(ref):
    w = ShortWriter()
    pydelta.patch(ref["dir"] / "old", io.BytesIO(ref["delta"]), w)
    assert bytes(w.data) == ref["new"]
    w = ShortWriter()
    pydelta.signature(io.BytesIO(ref["old"]), w, block_size=ref["bs"])
    assert bytes(w.data) == ref["sig"]
    w = ShortWriter()
    pydelta.delta(ref["sig"], io.BytesIO(ref["new"]), w)
    assert bytes(w.data) == ref["delta"]
