"""Round trips: signature -> delta -> patch reproduces NEW exactly, and the
delta is as small as the edit allows."""

from __future__ import annotations

import os
import tempfile

import pytest
from conftest import do_roundtrip, rand_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pydelta

BLOCK_SIZES = [1, 2, 3, 7, 64, 1000, 4095, 65537, 1 << 20]


# ---------------------------------------------------------------- trivial sizes


@pytest.mark.parametrize("bs", [None, 1, 7, 64, 4096])
def test_both_empty(roundtrip, bs):
    rt = roundtrip(b"", b"", bs)
    assert rt.parsed.ops == []
    assert rt.stats.copied == rt.stats.literal == 0
    assert rt.result.size == 0
    assert len(rt.delta) == 60 + 41


@pytest.mark.parametrize("bs", [None, 1, 7, 64])
def test_empty_old(roundtrip, bs):
    new = rand_bytes(5000, 1)
    rt = roundtrip(b"", new, bs)
    assert rt.stats.copied == 0 and rt.stats.literal == len(new)
    assert [op[0] for op in rt.parsed.ops] == ["L"]


@pytest.mark.parametrize("bs", [None, 1, 7, 64])
def test_empty_new(roundtrip, bs):
    rt = roundtrip(rand_bytes(5000, 2), b"", bs)
    assert rt.parsed.ops == []
    assert rt.result.size == 0


@pytest.mark.parametrize("old,new", [(b"a", b"a"), (b"a", b"b"), (b"", b"x"), (b"x", b"")])
@pytest.mark.parametrize("bs", [1, 2, 1024])
def test_one_byte(roundtrip, old, new, bs):
    rt = roundtrip(old, new, bs)
    if old == new and old:
        assert rt.parsed.ops == [("C", 0, 1)]
    elif new:
        assert rt.parsed.ops == [("L", new)]


@pytest.mark.parametrize("bs", [64, 1000, 4096, 1 << 20])
def test_smaller_than_a_block_identical(roundtrip, bs):
    data = rand_bytes(50, 3)
    rt = roundtrip(data, data, bs)
    # the short (tail) block is matched as the continuation of offset 0
    assert rt.parsed.ops == [("C", 0, 50)]


def test_smaller_than_a_block_appended(roundtrip):
    old = rand_bytes(50, 4)
    new = old + rand_bytes(30, 5)
    rt = roundtrip(old, new, 64)
    assert rt.parsed.ops == [("C", 0, 50), ("L", new[50:])]


def test_smaller_than_a_block_changed(roundtrip):
    old = rand_bytes(50, 4)
    new = old[:10] + b"!" + old[11:]
    rt = roundtrip(old, new, 64)
    assert rt.stats.copied == 0 and rt.stats.literal == 50


# ---------------------------------------------------------------- identical / all different


@pytest.mark.parametrize("bs", BLOCK_SIZES)
def test_identical_is_one_copy(roundtrip, bs):
    size = 3 * bs + bs // 2 + 1 if bs < 100_000 else bs + 12345
    size = min(size, 2_500_000)
    data = rand_bytes(size, 6)
    rt = roundtrip(data, data, bs)
    assert rt.parsed.ops == [("C", 0, size)]
    assert rt.stats.literal == 0
    assert len(rt.delta) < 60 + 1 + 10 + 10 + 41


def test_identical_default_block_size(roundtrip):
    data = rand_bytes(3_000_000, 7)
    rt = roundtrip(data, data)
    assert rt.block_len == pydelta.default_block_len(len(data)) == 2048
    assert rt.parsed.ops == [("C", 0, len(data))]


@pytest.mark.parametrize("bs", [64, 1000, 4095])
def test_all_different_is_all_literal(roundtrip, bs):
    old = rand_bytes(200_000, 8)
    new = rand_bytes(150_000, 9)
    rt = roundtrip(old, new, bs)
    assert rt.stats.copied == 0
    assert rt.stats.literal == len(new)
    assert all(op[0] == "L" for op in rt.parsed.ops)
    # overhead of an all-literal delta is tiny
    assert len(rt.delta) - len(new) < 60 + 41 + 16


def test_long_literal_is_split_at_lit_max(roundtrip):
    lit_max = pydelta._backend_module.LIT_MAX
    new = rand_bytes(2 * lit_max + 777, 10)
    rt = roundtrip(rand_bytes(1000, 11), new, 64)
    assert [len(op[1]) for op in rt.parsed.ops] == [lit_max, lit_max, 777]


# ---------------------------------------------------------------- edits


def _sizes(bs):
    size = 40 * bs + bs // 3 + 1  # not a multiple of the block: has a tail
    assert size % bs
    return size


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_insert_at_start(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 12)
    ins = rand_bytes(5, 13)
    rt = roundtrip(old, ins + old, bs)
    assert rt.stats.literal == 5
    assert rt.parsed.ops == [("L", ins), ("C", 0, len(old))]


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_shift_by_one_byte(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 14)
    rt = roundtrip(old, b"\x00" + old, bs)
    assert rt.parsed.ops == [("L", b"\x00"), ("C", 0, len(old))]
    rt = roundtrip(old, old[1:], bs)  # dropped first byte
    assert rt.stats.literal == bs - 1
    assert rt.stats.copied == len(old) - bs


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_delete_at_start(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 15)
    rt = roundtrip(old, old[3 * bs :], bs)  # block-aligned delete
    assert rt.parsed.ops == [("C", 3 * bs, len(old) - 3 * bs)]
    rt = roundtrip(old, old[3 * bs + 2 :], bs)  # unaligned
    assert rt.stats.literal == bs - 2


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_insert_in_middle(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 16)
    mid = 17 * bs + bs // 2
    ins = rand_bytes(3 * bs + 1, 17)
    new = old[:mid] + ins + old[mid:]
    rt = roundtrip(old, new, bs)
    # at most the broken block around the insertion point is re-sent
    assert len(ins) <= rt.stats.literal <= len(ins) + bs
    assert rt.stats.copied >= len(old) - bs


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_delete_in_middle(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 18)
    a, b = 10 * bs + 3, 20 * bs + 5
    new = old[:a] + old[b:]
    rt = roundtrip(old, new, bs)
    assert rt.stats.literal <= 2 * bs
    assert len(rt.parsed.copies) <= 3


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_insert_and_delete_at_end(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 19)
    tail = rand_bytes(2 * bs + 3, 20)
    rt = roundtrip(old, old + tail, bs)  # append: whole old incl. its tail block copied
    assert rt.parsed.ops == [("C", 0, len(old)), ("L", tail)]
    cut = len(old) - (len(old) % bs) - 2 * bs  # truncate to a block boundary
    rt = roundtrip(old, old[:cut], bs)
    assert rt.parsed.ops == [("C", 0, cut)]
    rt = roundtrip(old, old[:-1], bs)  # drop the last byte: the tail block is lost
    assert rt.stats.literal == len(old) % bs - 1
    assert rt.parsed.ops[0] == ("C", 0, len(old) - len(old) % bs)


@pytest.mark.parametrize("bs", [7, 64, 1000])
def test_replace_one_byte(roundtrip, bs):
    old = rand_bytes(_sizes(bs), 21)
    p = 13 * bs + 1
    new = bytearray(old)
    new[p] ^= 0xFF
    rt = roundtrip(old, bytes(new), bs)
    assert rt.stats.literal == bs
    assert [op[0] for op in rt.parsed.ops] == ["C", "L", "C"]
    assert rt.parsed.ops[0] == ("C", 0, 13 * bs)
    assert rt.parsed.ops[2] == ("C", 14 * bs, len(old) - 14 * bs)


@pytest.mark.parametrize("bs", [64, 1000])
def test_reordered_halves(roundtrip, bs):
    half = 20 * bs
    a, b = rand_bytes(half, 22), rand_bytes(half + bs // 2, 23)
    rt = roundtrip(a + b, b + a, bs)
    # b has a short tail block; it is matched as continuation, a is block aligned
    assert rt.stats.literal == 0
    assert rt.parsed.ops == [("C", half, len(b)), ("C", 0, half)]
    # unaligned halves: at most a block or two lost around the seam
    a, b = rand_bytes(half + 5, 24), rand_bytes(half + 9, 25)
    rt = roundtrip(a + b, b + a, bs)
    assert rt.stats.literal <= 2 * bs


@pytest.mark.parametrize("bs", [1, 3, 64, 1000])
def test_repeated_blocks(roundtrip, bs):
    x = rand_bytes(bs, 26)
    old = x * 10
    rt = roundtrip(old, x * 25, bs)
    assert rt.stats.literal == 0
    # continuation makes long copies: 10 + 10 + 5 blocks
    assert rt.parsed.ops == [("C", 0, 10 * bs), ("C", 0, 10 * bs), ("C", 0, 5 * bs)]
    sig = pydelta.load_signature(rt.sig)
    assert sig.table.unique == 1


def test_repeated_blocks_dedup_in_info(roundtrip, tmp_path):
    x, y = rand_bytes(64, 27), rand_bytes(64, 28)
    rt = roundtrip(x * 5 + y * 3 + x, x, 64)
    (tmp_path / "s.sig").write_bytes(rt.sig)
    fields = pydelta.info(tmp_path / "s.sig").fields
    assert fields["blocks"] == 9
    assert fields["distinct blocks"] == 2


@pytest.mark.parametrize("bs", [1, 64, 4096])
def test_all_zeros_one_byte_changed(roundtrip, bs):
    size = 64 * 4096 + 17
    old = bytes(size)
    for p in (0, size // 2, size - 1):
        new = bytearray(old)
        new[p] = 1
        rt = roundtrip(old, bytes(new), bs)
        assert rt.stats.literal <= 2 * bs
        assert len(rt.parsed.copies) <= 3
        assert len(rt.delta) < 60 + 41 + 3 * 21 + 2 * (2 * bs + 11)


@pytest.mark.parametrize("bs", BLOCK_SIZES)
def test_block_sizes_with_edits(roundtrip, bs):
    size = min(max(5 * bs + bs // 2 + 1, 3000), 3_000_000)
    old = rand_bytes(size, 29 + bs % 1000)
    new = bytearray(old)
    p = size // 3
    new[p : p + 3] = b"XYZ"
    new = b"head" + bytes(new) + b"tail"
    rt = roundtrip(old, new, bs)
    assert rt.stats.literal <= 8 + 3 + 2 * bs
    if bs <= 4095:
        assert rt.stats.copied >= size - 2 * bs - 3


@pytest.mark.parametrize("bs", [3, 64, 4095])
@pytest.mark.parametrize("tail", [1, 2])
def test_tails_shorter_than_block(roundtrip, bs, tail):
    old = rand_bytes(10 * bs + tail, 30)
    rt = roundtrip(old, old, bs)
    assert rt.parsed.ops == [("C", 0, len(old))]
    new = old[: 5 * bs] + rand_bytes(bs, 31) + old[6 * bs :]
    rt = roundtrip(old, new, bs)
    assert rt.stats.literal == bs
    assert rt.parsed.ops[-1] == ("C", 6 * bs, 4 * bs + tail)


def test_tail_block_only_matched_as_continuation(roundtrip):
    # The tail of OLD appearing somewhere in NEW without its predecessor
    # block is not found (documented: short tails are only continuations).
    bs = 64
    old = rand_bytes(10 * bs + 20, 32)
    tail = old[-20:]
    new = rand_bytes(100, 33) + tail + rand_bytes(100, 34)
    rt = roundtrip(old, new, bs)
    assert rt.stats.copied == 0


@pytest.mark.parametrize("strong_len", [8, 16, 32])
def test_strong_lengths(roundtrip, strong_len):
    old = rand_bytes(50_000, 35)
    new = old[:20_000] + b"insert" + old[20_000:]
    rt = roundtrip(old, new, 512, strong_len)
    assert rt.parsed.strong_len == strong_len
    assert rt.stats.literal <= 512 + 6


# ---------------------------------------------------------------- patch targets


def test_patch_in_place(tmp_path):
    old = rand_bytes(300_000, 36)
    new = old[:100_000] + b"changed" + old[100_007:] + b"more"
    p = tmp_path / "file.bin"
    p.write_bytes(old)
    pydelta.signature(p, tmp_path / "s", block_size=1024)
    pydelta.delta(tmp_path / "s", _write(tmp_path / "n", new), tmp_path / "d")
    p.chmod(0o640)
    res = pydelta.patch(p, tmp_path / "d", p)
    assert p.read_bytes() == new
    assert res.size == len(new)
    assert oct(p.stat().st_mode & 0o777) == oct(0o640)  # mode kept
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d", "file.bin", "n", "s"]


def test_patch_in_place_through_symlink(tmp_path):
    old = rand_bytes(50_000, 42)
    new = old[:20_000] + b"edit" + old[20_000:]
    real = tmp_path / "data" / "model.bin"
    real.parent.mkdir()
    real.write_bytes(old)
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    sig = pydelta.signature(link, block_size=1024)
    (tmp_path / "d").write_bytes(pydelta.delta(sig, _write(tmp_path / "n", new)))
    pydelta.patch(link, tmp_path / "d", link)
    assert link.is_symlink()  # the link is kept, the file it names is updated
    assert real.read_bytes() == new
    assert [p.name for p in real.parent.iterdir()] == ["model.bin"]


def test_new_output_file_mode_follows_umask(tmp_path):
    old = rand_bytes(1000, 41)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "old").chmod(0o600)
    d = pydelta.delta(pydelta.signature(tmp_path / "old"), _write(tmp_path / "n", old[::-1]))
    (tmp_path / "d").write_bytes(d)
    umask = os.umask(0o027)
    try:
        pydelta.patch(tmp_path / "old", tmp_path / "d", tmp_path / "out")
        pydelta.signature(tmp_path / "old", tmp_path / "sig")
    finally:
        os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "sig").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "out").read_bytes() == old[::-1]


def test_patch_result_matches_blake3_oracle(tmp_path):
    blake3 = pytest.importorskip("blake3")
    old = rand_bytes(2_000_000, 37)
    new = old[500:] + rand_bytes(70_000, 38)
    rt = do_roundtrip(tmp_path, old, new, 4096)
    assert rt.result.digest == blake3.blake3(new).digest()
    assert rt.result.size == len(new)
    assert rt.parsed.result_digest == blake3.blake3(new).digest()
    assert rt.info["result digest"] == blake3.blake3(new).hexdigest()


def test_patch_to_file_object_and_bytes_api(tmp_path):
    import io

    old = rand_bytes(100_000, 39)
    new = old[:40_000] + old[60_000:]
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(tmp_path / "old", block_size=1000)
    assert isinstance(sig, bytes)
    d = pydelta.delta(sig, io.BytesIO(new))
    assert isinstance(d, bytes)
    assert d == pydelta.delta(pydelta.load_signature(sig), io.BytesIO(new))
    sink = io.BytesIO()
    res = pydelta.patch(tmp_path / "old", io.BytesIO(d), sink)
    assert sink.getvalue() == new
    assert res.digest == pydelta.blake3_digest(new)


def test_signature_reuse_for_many_deltas(tmp_path):
    old = rand_bytes(200_000, 40)
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.Signature(pydelta.signature(tmp_path / "old", block_size=2048))
    for i in range(5):
        new = old[: i * 1000] + bytes([i]) * 50 + old[i * 1000 :]
        import io

        d = pydelta.delta(sig, io.BytesIO(new))
        out = io.BytesIO()
        pydelta.patch(tmp_path / "old", io.BytesIO(d), out)
        assert out.getvalue() == new


def test_blake3_export_matches_oracle():
    blake3 = pytest.importorskip("blake3")
    sizes = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4097, 1 << 16, 100_003]
    # chunk-batch boundaries (SIMD paths hash several 1 KiB chunks at once)
    sizes += [k * 1024 + d for k in (3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 64) for d in (-1, 0, 1)]
    sizes += [1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 777]
    for n in sizes:
        data = rand_bytes(n, n)
        want = blake3.blake3(data).digest()
        assert pydelta.blake3_digest(data) == want, n
        h = pydelta.blake3()
        for i in range(0, n, 333):
            h.update(data[i : i + 333])
        assert h.digest() == want, n
        assert h.digest(100) == blake3.blake3(data).digest(length=100), n
        # uneven splits: a byte, then a long run, then the rest
        h = pydelta.blake3(data[:1])
        h.update(data[1 : n // 2 + 7])
        c = h.copy()
        h.update(data[n // 2 + 7 :])
        assert h.digest() == want, n
        assert c.digest() == blake3.blake3(data[: n // 2 + 7]).digest(), n


def _write(path, data):
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- property test

edit = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "duplicate", "move"]),
    st.floats(0, 1),
    st.integers(0, 3000),
    st.integers(0, 2**32 - 1),
)


def apply_edits(old: bytes, edits) -> bytes:
    data = bytearray(old)
    for kind, where, length, seed in edits:
        pos = int(where * len(data))
        if kind == "insert":
            data[pos:pos] = rand_bytes(length, seed)
        elif kind == "delete":
            del data[pos : pos + length]
        elif kind == "replace":
            chunk = rand_bytes(min(length, len(data) - pos), seed)
            data[pos : pos + len(chunk)] = chunk
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + length]
        elif kind == "move":
            piece = data[pos : pos + length]
            del data[pos : pos + length]
            dest = seed % (len(data) + 1)
            data[dest:dest] = piece
    return bytes(data)


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    old_len=st.integers(0, 40_000),
    old_seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["random", "zeros", "pattern"]),
    edits=st.lists(edit, max_size=6),
    bs=st.one_of(st.integers(1, 300), st.sampled_from([512, 1024, 4095, 4096, 65537])),
)
def test_random_edit_sequences(old_len, old_seed, kind, edits, bs):
    if kind == "random":
        old = rand_bytes(old_len, old_seed)
    elif kind == "zeros":
        old = bytes(old_len)
    else:
        old = (rand_bytes(97, old_seed) * (old_len // 97 + 1))[:old_len]
    new = apply_edits(old, edits)
    with tempfile.TemporaryDirectory() as d:
        rt = do_roundtrip(d, old, new, bs)
    if not edits and old:
        assert rt.parsed.ops == [("C", 0, len(old))]
    if kind == "random" and bs >= 16:
        # every edit costs its new bytes (a duplicate may copy inserted,
        # new bytes) plus under a block of literal at each seam it makes (a
        # move makes up to four), plus OLD's tail block
        budget = bs + sum(
            (length if k in ("insert", "replace", "duplicate") else 0) + 4 * bs
            for k, _, length, _ in edits
        )
        assert rt.stats.literal <= min(len(new), budget)
