"""Direct patch output (csrc/copy.c): copy_file_range, its read/write
fallback and the digest hashed beside the writing give the same file and
the same result as the buffered path, for both delta formats and backends."""

from __future__ import annotations

import importlib
import io
import os
import random
import shutil
import subprocess
import sys

import pytest

import pydelta
from pydelta.backends import c as C
from pydelta.errors import CorruptDeltaError, FileAccessError
from pydelta.formats import native as fmt

patch_mod = importlib.import_module("pydelta.patch")

MODES = {
    "copy_range": {},
    "read_write": {patch_mod.COPY_RANGE_ENV: "0"},
    "buffered": {patch_mod.DIRECT_ENV: "0"},
}


def _pair(seed: int = 3, size: int = 3_000_000) -> tuple:
    r = random.Random(seed)
    old = r.randbytes(size)
    new = bytearray(old[:1000] + r.randbytes(77) + old[1000:])
    for _ in range(30):
        at = r.randrange(len(new))
        new[at : at + 100] = r.randbytes(100)
    new += old[5000:900_000]  # a long copy from far back
    return old, bytes(new)


@pytest.fixture
def pair(tmp_path):
    old, new = _pair()
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    sig = pydelta.signature(io.BytesIO(old), block_size=2048)
    (tmp_path / "d").write_bytes(pydelta.delta(sig, io.BytesIO(new), compress=False))
    return tmp_path, new


@pytest.mark.parametrize("fsync", [True, False])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_modes_give_the_same_file_and_digest(pair, monkeypatch, mode, fsync):
    tmp, new = pair
    for k, v in MODES[mode].items():
        monkeypatch.setenv(k, v)
    res = pydelta.patch(tmp / "old", tmp / "d", tmp / "out", fsync=fsync)
    assert (tmp / "out").read_bytes() == new
    assert res.size == len(new)
    assert res.digest == C.blake3_digest(new)


def test_in_place_and_stream_output(pair):
    tmp, new = pair
    shutil.copyfile(tmp / "old", tmp / "same")
    pydelta.patch(tmp / "same", tmp / "d", tmp / "same")
    assert (tmp / "same").read_bytes() == new
    buf = io.BytesIO()
    pydelta.patch(tmp / "old", tmp / "d", buf)  # a file object: the buffered path
    assert buf.getvalue() == new


@pytest.mark.parametrize(
    "backend, mode", [("c", m) for m in sorted(MODES)] + [("numba", "copy_range")]
)
def test_cli_backends_modes_and_pipe(pair, mode, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    tmp, new = pair
    env = dict(os.environ, PYDELTA_BACKEND=backend, **MODES[mode])
    cmd = [sys.executable, "-m", "pydelta", "patch", "--no-progress"]
    subprocess.run([*cmd, str(tmp / "old"), str(tmp / "d"), str(tmp / "o")], env=env, check=True)
    assert (tmp / "o").read_bytes() == new
    # standard output is a pipe here: never the direct path
    got = subprocess.run(
        [*cmd, str(tmp / "old"), str(tmp / "d"), "-"], env=env, check=True, capture_output=True
    )
    assert got.stdout == new


def test_rdiff_delta_direct(tmp_path, monkeypatch):
    old, new = _pair(5, 400_000)
    (tmp_path / "old").write_bytes(old)
    rsig = pydelta.signature(io.BytesIO(old), format="rdiff", block_size=1024)
    rd = pydelta.delta(rsig, io.BytesIO(new))
    digests = set()
    for mode in sorted(MODES):
        for k in (patch_mod.COPY_RANGE_ENV, patch_mod.DIRECT_ENV):
            monkeypatch.delenv(k, raising=False)
        for k, v in MODES[mode].items():
            monkeypatch.setenv(k, v)
        with pytest.warns(pydelta.UnverifiedWarning):
            res = pydelta.patch(tmp_path / "old", io.BytesIO(rd), tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == new
        digests.add(res.digest)
    assert digests == {C.blake3_digest(new)}


@pytest.mark.parametrize("copy_range", [True, False])
@pytest.mark.parametrize("thread", [True, False])
@pytest.mark.parametrize("mapped", [True, False])
def test_sink_job_digest_and_kernel_copies(pair, copy_range, thread, mapped):
    tmp, new = pair
    delta = (tmp / "d").read_bytes()
    head = fmt.DELTA_HEADER.size
    assert not fmt.parse_delta_header(delta[:head], "d").flags
    with open(tmp / "old", "rb") as old, open(tmp / "out", "w+b") as out:
        job = C.PatchJob(old.fileno(), os.fstat(old.fileno()).st_size)
        sink = C.Sink(out.fileno(), copy_range=copy_range, thread=thread, mapped=mapped)
        job.attach(sink)
        rest, made = delta[head:], 0
        outbuf = bytearray(1 << 16)  # small: many calls, copies cut across them
        while True:
            rc, used, produced = job.step(rest, 0, len(rest), outbuf)
            rest, made = rest[used:], made + produced
            if rc == C.DONE:
                break
            assert rc == C.NEED_OUTPUT
        ok, size, digest = sink.finish()
        assert ok and size == made == len(new)
        assert job.result()[:2] == (len(new), digest)
        assert digest == C.blake3_digest(new)
        if not copy_range:
            assert sink.kernel_copied == 0
    assert (tmp / "out").read_bytes() == new


@pytest.mark.parametrize("mode", sorted(MODES))
def test_basis_shrinking_during_patch_is_an_error(pair, monkeypatch, mode):
    tmp, _ = pair
    for k, v in MODES[mode].items():
        monkeypatch.setenv(k, v)
    delta = (tmp / "d").read_bytes()
    p = pydelta.Patcher(tmp / "old", tmp / "out")
    os.truncate(tmp / "old", 100_000)
    with pytest.raises(FileAccessError, match="cannot read old file"):
        p.write(delta)
        p.close()
    assert not (tmp / "out").exists()
    assert not [n for n in os.listdir(tmp) if n.endswith(".pydelta-tmp")]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_max_size_refused_before_the_file_grows(pair, monkeypatch, mode):
    tmp, new = pair
    for k, v in MODES[mode].items():
        monkeypatch.setenv(k, v)
    p = pydelta.Patcher(tmp / "old", tmp / "out", max_size=len(new) // 2)
    with pytest.raises(CorruptDeltaError, match="makes more than"):
        p.write((tmp / "d").read_bytes())
        p.close()
    assert not (tmp / "out").exists()


def test_direct_output_starts_at_the_file_position(pair):
    """An AtomicFile the caller already wrote to: the result follows it."""
    from pydelta._io import AtomicFile

    tmp, new = pair
    out = AtomicFile(tmp / "out")
    out.write(b"prefix")
    with pydelta.Patcher(tmp / "old", out) as p:
        p.write((tmp / "d").read_bytes())
    assert p.result.digest == C.blake3_digest(new)
    assert (tmp / "out").read_bytes() == b"prefix" + new


# -- the result's signature, made from the same read-back (Patcher(sign=...)) --


def _c_only() -> None:
    """Signing the result is the direct writer's (csrc/copy.c, backends.c.C_ONLY):
    on the numba backend the patch writes through the buffered path and
    returns no signature (documented), so these run in the C pass."""
    if pydelta.backend != "c":
        pytest.skip(
            "a C-only kernel: the direct writer signs the result (the C pass runs this test)"
        )


def _signature_of(path, block_len: int, strong_len: int = 16, kind: str = "blake3") -> bytes:
    with open(path, "rb") as fh:
        return b"".join(
            bytes(p)
            for p in pydelta.iter_signature(
                fh, block_size=block_len, strong_len=strong_len, strong_hash=kind
            )
        )


@pytest.mark.parametrize("kind", ["blake3", "xxh3"])
@pytest.mark.parametrize("own_thread", [False, True])
@pytest.mark.parametrize("mode", ["copy_range", "read_write"])
def test_signature_of_the_result_is_byte_identical(pair, monkeypatch, mode, own_thread, kind):
    """Blocks cut across writes, copies and mappings: the same bytes as
    `pydelta signature` of the result, for odd and even block lengths."""
    _c_only()
    tmp, new = pair
    for k, v in MODES[mode].items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(patch_mod, "SIGN_THREAD", own_thread)
    delta = (tmp / "d").read_bytes()
    sid = fmt.STRONG_IDS[kind]
    for block_len, strong_len in (
        (61, 8),
        (777, 16),
        (4096, fmt.STRONG_MAX[sid]),
        (1 << 20, 16),
        (8 << 20, 16),
    ):
        sign = (block_len, strong_len, 1 << 30, sid)
        p = pydelta.Patcher(tmp / "old", tmp / "out", sign=sign)
        for at in range(0, len(delta), 100_003):  # fed in pieces: many job steps
            p.write(delta[at : at + 100_003])
        p.close()
        assert (tmp / "out").read_bytes() == new
        assert p.signature == _signature_of(tmp / "out", block_len, strong_len, kind)


@pytest.mark.parametrize("kind", ["blake3", "xxh3"])
@pytest.mark.parametrize("size", [1, 1023, 1024, 1025, 4095, 4096, 4097, 65_537])
def test_signature_of_small_results(tmp_path, size, kind):
    """Results shorter than, equal to and just past a block; all literal."""
    _c_only()
    new = random.Random(size).randbytes(size)
    (tmp_path / "old").write_bytes(b"")
    d = pydelta.delta(pydelta.signature(io.BytesIO(b"")), io.BytesIO(new), compress=False)
    sign = (1024, 16, 1 << 20, fmt.STRONG_IDS[kind])
    p = pydelta.Patcher(tmp_path / "old", tmp_path / "out", sign=sign)
    p.write(d)
    p.close()
    assert p.signature == _signature_of(tmp_path / "out", 1024, 16, kind)


@pytest.mark.parametrize("kind", [C.STRONG_BLAKE3, C.STRONG_XXH3])
@pytest.mark.parametrize("thread", [True, False])
@pytest.mark.parametrize("mapped", [True, False])
def test_sink_signs_on_every_reader_path(pair, thread, mapped, kind):
    """Inline (no thread) and pread read-backs sign the same entries."""
    tmp, new = pair
    delta = (tmp / "d").read_bytes()
    head = fmt.DELTA_HEADER.size
    with open(tmp / "old", "rb") as old, open(tmp / "out", "w+b") as out:
        job = C.PatchJob(old.fileno(), os.fstat(old.fileno()).st_size)
        sink = C.Sink(out.fileno(), thread=thread, mapped=mapped)
        sink.sign(3000, 16, 1 << 30, own_thread=True, strong=kind)
        with pytest.raises(ValueError):
            sink.sign(3000, 16, 1 << 30)  # once only
        job.attach(sink)
        rest = delta[head:]
        outbuf = bytearray(1 << 16)
        while True:
            rc, used, _ = job.step(rest, 0, len(rest), outbuf)
            rest = rest[used:]
            if rc == C.DONE:
                break
        assert sink.finish()[0]
    assert sink.signature() == C.sig_blocks(new, len(new), 3000, 16, kind)


def test_sign_parameters_are_checked(tmp_path):
    with open(tmp_path / "o", "w+b") as out:
        for bad in ((0, 16), (1024, 7), (1024, 33), ((1 << 30) + 1, 16)):
            sink = C.Sink(out.fileno())
            with pytest.raises(ValueError):
                sink.sign(*bad, 1 << 20)
            sink.finish()
            assert sink.signature() is None  # not asked: none
        for strong, sl in ((C.STRONG_XXH3, 17), (3, 16), (0, 16)):
            sink = C.Sink(out.fileno())
            with pytest.raises(ValueError):
                sink.sign(1024, sl, 1 << 20, strong=strong)
            sink.finish()
            assert sink.signature() is None  # not asked: none


def test_signature_past_its_limit_is_none_and_the_patch_goes_on(pair):
    _c_only()
    tmp, new = pair
    delta = (tmp / "d").read_bytes()
    entries = -(-len(new) // 1024) * 24
    fits = fmt.SIG_HEADER.size + entries + fmt.SIG_TRAILER.size
    for limit, signed in ((fits - 1, False), (fits, True), (64, False)):
        p = pydelta.Patcher(tmp / "old", tmp / "out", sign=(1024, 16, limit))
        p.write(delta)
        assert p.close().digest == C.blake3_digest(new)
        assert (p.signature is not None) == signed
    assert (tmp / "out").read_bytes() == new


@pytest.mark.parametrize("how", ["buffered", "stream"])
def test_no_signature_without_the_direct_writer(pair, monkeypatch, how):
    """PYDELTA_PATCH_DIRECT=0 or a stream output: the result is not signed."""
    tmp, new = pair
    out = tmp / "out"
    if how == "buffered":
        monkeypatch.setenv(patch_mod.DIRECT_ENV, "0")
    else:
        out = io.BytesIO()
    p = pydelta.Patcher(tmp / "old", out, sign=(1024, 16, 1 << 30))
    p.write((tmp / "d").read_bytes())
    p.close()
    assert p.signature is None


def test_failed_patch_has_no_signature(pair):
    tmp, _ = pair
    delta = bytearray((tmp / "d").read_bytes())
    delta[-10] ^= 1  # the digest in the trailer
    p = pydelta.Patcher(tmp / "old", tmp / "out", sign=(1024, 16, 1 << 30))
    with pytest.raises(pydelta.PydeltaError):
        p.write(bytes(delta))
        p.close()
    assert p.signature is None


# -- the tree-parallel digest (pd_blake3_update_par, the sink's hash threads) --

MIB = 1 << 20
TREE_LENGTHS = [0, 1, 1023, 1024, 1025, 2047, MIB - 1, MIB, MIB + 1, 2 * MIB - 1, 2 * MIB]
TREE_LENGTHS += [2 * MIB + 1, 3 * MIB + 517, 4 * MIB - 1024, 4 * MIB + 1023, 5 * MIB + 12345]


@pytest.fixture(scope="module")
def tree_data():
    return random.Random(13).randbytes(TREE_LENGTHS[-1])


@pytest.mark.parametrize("n", TREE_LENGTHS)
def test_tree_parallel_digest_equals_one_thread(tree_data, n):
    want = C.blake3_digest(tree_data[:n])
    for threads in (2, 3, 16, 1000):  # (more than it uses: capped)
        h = C.Blake3()
        h.update(tree_data[:n], threads=threads)
        assert h.digest() == want, threads
    # after a first update that ends anywhere: a kept chunk, an unaligned start
    for cut in (1, 1000, 1024, 3072, MIB - 1, MIB, MIB + 7):
        if cut <= n:
            h = C.Blake3()
            h.update(tree_data[:cut])
            h.update(tree_data[cut:n], threads=2)
            assert h.digest() == want, cut


def test_tree_parallel_digest_over_many_batches():
    """More subtrees than one round of threads takes (64 MiB), odd length."""
    data = random.Random(14).randbytes(65 * MIB + 3)
    h = C.Blake3()
    h.update(data, threads=2)
    assert h.digest() == C.blake3_digest(data)


@pytest.mark.parametrize("hash_threads", [2, 5])
def test_sink_digest_on_several_threads(tmp_path, hash_threads):
    """A result of many MiB through the sink, published in odd pieces."""
    r = random.Random(hash_threads)
    new = r.randbytes(9 * MIB + 333)
    (tmp_path / "old").write_bytes(new[: 4 * MIB])
    sig = pydelta.signature(io.BytesIO(new[: 4 * MIB]), block_size=4096)
    delta = pydelta.delta(sig, io.BytesIO(new), compress=False)
    head = fmt.DELTA_HEADER.size
    with open(tmp_path / "old", "rb") as old, open(tmp_path / "out", "w+b") as out:
        job = C.PatchJob(old.fileno(), 4 * MIB)
        sink = C.Sink(out.fileno(), hash_threads=hash_threads)
        job.attach(sink)
        rest = delta[head:]
        while True:
            rc, used, _ = job.step(rest, 0, len(rest), bytearray(r.randrange(1000, 300_000)))
            rest = rest[used:]
            if rc == C.DONE:
                break
        ok, size, digest = sink.finish()
    assert ok and size == len(new) and digest == C.blake3_digest(new)
