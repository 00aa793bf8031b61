"""Compressed literals: the 'Z' op, the header flag, writer and reader.

Deltas are parsed here independently of pydelta (zstandard directly, a
plain-loop ungrouping), so a writer bug cannot hide behind a matching
reader bug.
"""

from __future__ import annotations

import importlib
import io
import os
import random
import resource
import struct

import pytest
from conftest import (
    DELTA_HEADER_LEN,
    TinyReader,
    enc_varint,
    rand_bytes,
    read_varint,
    tmp_leftovers,
)

import pydelta
from pydelta.formats import native as fmt

zstandard = pytest.importorskip("zstandard")
lits = importlib.import_module("pydelta.formats.literals")

LIT_MAX = 262144
SENTINEL = b"an existing output that must survive\n"


# ---------------------------------------------------------------- data


def fp16_bytes(n_values: int, seed: int, scale: float = 0.02) -> bytes:
    """float16 values like a model's weights (normal, small), little-endian."""
    r = random.Random(seed)
    return struct.pack(f"<{n_values}e", *(r.gauss(0.0, scale) for _ in range(n_values)))


def text_bytes(n: int, seed: int) -> bytes:
    r = random.Random(seed)
    words = [b"tensor", b"layer", b"weight", b"bias", b"model", b"attention", b"norm", b"{", b"}"]
    out = bytearray()
    while len(out) < n:
        out += r.choice(words) + b" " + str(r.randrange(1000)).encode() + b", "
    return bytes(out[:n])


# ---------------------------------------------------------------- independent parser


def ungroup_loop(g: bytes) -> bytes:
    n = len(g)
    half = (n + 1) // 2
    out = bytearray(n)
    for i in range(n):
        out[i] = g[i // 2] if i % 2 == 0 else g[half + i // 2]
    return bytes(out)


def parse(d: bytes):
    """(flags, ops): ops are ('C', off, len), ('L', data), ('Z', data, transform, frame), ('E', size, digest)."""
    flags = d[6]
    pos = DELTA_HEADER_LEN
    ops = []
    while True:
        op = d[pos]
        pos += 1
        if op == ord("C"):
            off, pos = read_varint(d, pos)
            n, pos = read_varint(d, pos)
            ops.append(("C", off, n))
        elif op == ord("L"):
            n, pos = read_varint(d, pos)
            ops.append(("L", d[pos : pos + n]))
            pos += n
        elif op == ord("Z"):
            raw, pos = read_varint(d, pos)
            transform = d[pos]
            pos += 1
            clen, pos = read_varint(d, pos)
            frame = d[pos : pos + clen]
            pos += clen
            assert frame[:4] == b"\x28\xb5\x2f\xfd"
            fp = zstandard.get_frame_parameters(frame)
            assert fp.content_size == raw and not fp.has_checksum and not fp.dict_id
            data = zstandard.ZstdDecompressor().decompress(frame)
            assert transform in (1, 2)
            if transform == 2:
                data = ungroup_loop(data)
            assert len(data) == raw
            ops.append(("Z", data, transform, frame))
        elif op == ord("E"):
            ops.append(("E", struct.unpack_from("<Q", d, pos)[0], d[pos + 8 : pos + 40]))
            pos += 40
            break
        else:
            raise AssertionError(f"opcode {op:#x} at {pos - 1}")
    assert pos == len(d)
    return flags, ops


def apply(old: bytes, ops) -> bytes:
    out = bytearray()
    for op in ops:
        if op[0] == "C":
            out += old[op[1] : op[1] + op[2]]
        elif op[0] in "LZ":
            out += op[1]
    return bytes(out)


def expand(d: bytes) -> bytes:
    """The delta with every 'Z' op replaced by its 'L' op and the flag cleared."""
    _, ops = parse(d)
    out = bytearray(header_with(d, 0))
    for op in ops:
        if op[0] == "C":
            out += b"C" + enc_varint(op[1]) + enc_varint(op[2])
        elif op[0] in "LZ":
            out += b"L" + enc_varint(len(op[1])) + op[1]
        else:
            out += b"E" + struct.pack("<Q", op[1]) + op[2]
    return bytes(out)


def header_with(d: bytes, flags: int, recheck: bool = True) -> bytes:
    head = bytearray(d[:DELTA_HEADER_LEN])
    head[6] = flags
    if recheck:
        head[fmt.DELTA_CHECKED :] = fmt._header_check(bytes(head))
    return bytes(head)


# ---------------------------------------------------------------- helpers


class Guard:
    """An existing OUT that every failed patch must leave as it was."""

    def __init__(self, directory):
        self.dir = directory
        self.path = directory / "out.bin"
        self.path.write_bytes(SENTINEL)
        st = os.stat(self.path)
        self.key = (st.st_ino, st.st_mtime_ns, st.st_size)

    def check(self):
        assert self.path.read_bytes() == SENTINEL
        st = os.stat(self.path)
        assert (st.st_ino, st.st_mtime_ns, st.st_size) == self.key
        assert tmp_leftovers(self.dir) == []


def patch_bytes(old_path, d: bytes, feed=None) -> bytes:
    out = io.BytesIO()
    if feed is None:
        pydelta.patch(old_path, io.BytesIO(d), out)
    else:
        with pydelta.Patcher(old_path, out) as p:
            for i in range(0, len(d), feed):
                p.write(d[i : i + feed])
    return out.getvalue()


def fails(old_path, d: bytes, guard: Guard, exc=pydelta.CorruptDeltaError, match=None, feed=None):
    with pytest.raises(exc, match=match) as info:
        if feed is None:
            pydelta.patch(old_path, io.BytesIO(d), guard.path)
        else:
            with pydelta.Patcher(old_path, guard.path) as p:
                for i in range(0, len(d), feed):
                    p.write(d[i : i + feed])
    guard.check()
    return info.value


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """OLD/NEW whose delta has copies and literals of every kind: fp16, text,
    random, a short one, and a literal longer than LIT_MAX (cut in pieces)."""
    d = tmp_path_factory.mktemp("pair")
    old = fp16_bytes(150_000, 1)  # 300 KB
    new = (
        old[:40_000]
        + fp16_bytes(60_000, 2)  # 120 KB of new fp16 values
        + old[60_000:120_000]
        + text_bytes(30_000, 3)
        + old[150_000:200_000]
        + rand_bytes(20_000, 4)  # incompressible: stays raw
        + old[200_000:230_000]
        + b"short"
        + old[230_000:]
        + fp16_bytes(170_000, 5)  # 340 KB: more than one literal op
    )
    (d / "old").write_bytes(old)
    (d / "new").write_bytes(new)
    sig = pydelta.signature(d / "old", block_size=1024)
    (d / "sig").write_bytes(sig)
    stats = pydelta.delta(sig, d / "new", d / "delta")
    plain = pydelta.delta(sig, d / "new", compress=False)
    return {
        "dir": d,
        "old": old,
        "new": new,
        "sig": sig,
        "delta": (d / "delta").read_bytes(),
        "stats": stats,
        "plain": plain,
    }


# ---------------------------------------------------------------- round trips


def test_roundtrip_compressed(pair):
    d, new = pair["delta"], pair["new"]
    flags, ops = parse(d)
    assert flags == fmt.FLAG_ZLITERALS
    assert apply(pair["old"], ops) == new
    assert patch_bytes(pair["dir"] / "old", d) == new
    kinds = [op[0] for op in ops]
    assert "C" in kinds and "L" in kinds and "Z" in kinds
    zops = [op for op in ops if op[0] == "Z"]
    # the fp16 literals chose the grouping, the text did not
    assert {op[2] for op in zops} == {1, 2}
    # random data and short literals stay raw
    assert any(len(op[1]) == 20_000 + 0 or len(op[1]) > 10_000 for op in ops if op[0] == "L")
    assert all(len(op[1]) < lits.THRESHOLD for op in ops if op[0] == "L" and len(op[1]) < 1000)
    assert all(0 < len(op[1]) <= LIT_MAX for op in ops if op[0] in "LZ")
    # every compressed literal saves at least 3%
    for op in zops:
        zlen = 1 + len(enc_varint(len(op[1]))) + 1 + len(enc_varint(len(op[3]))) + len(op[3])
        llen = 1 + len(enc_varint(len(op[1]))) + len(op[1])
        assert zlen <= llen - 0.03 * len(op[1])
    assert len(d) < len(pair["plain"])


def test_stats_and_info(pair):
    d, st = pair["delta"], pair["stats"]
    _, ops = parse(d)
    zops = [op for op in ops if op[0] == "Z"]
    assert st.delta_size == len(d)
    assert st.new_size == len(pair["new"])
    assert st.literal == sum(len(op[1]) for op in ops if op[0] in "LZ")
    assert st.copied == sum(op[2] for op in ops if op[0] == "C")
    assert st.compressed_literal == sum(len(op[1]) for op in zops)
    assert st.compressed_size == sum(len(op[3]) for op in zops)
    f = pydelta.info(pair["dir"] / "delta").fields
    assert f["delta size"] == len(d)
    assert f["literal instructions"] == sum(1 for op in ops if op[0] in "LZ")
    assert f["literal bytes"] == st.literal
    assert f["copy instructions"] == sum(1 for op in ops if op[0] == "C")
    assert f["compressed literal instructions"] == len(zops)
    assert f["compressed literal bytes"] == st.compressed_literal
    assert f["compressed literal size"] == st.compressed_size
    assert f["result size"] == len(pair["new"])
    text = str(pydelta.info(pair["dir"] / "delta"))
    assert "compressed literal instructions" in text
    # an uncompressed delta is described exactly as before
    f0 = pydelta.info(io.BytesIO(pair["plain"])).fields
    assert not any(k.startswith("compressed") for k in f0)


def test_writer_only_substitutes_ops(pair):
    """compress=False gives the old format byte for byte: the compressed delta
    with its 'Z' ops expanded (and the flag cleared) is exactly it."""
    plain = pair["plain"]
    assert plain[6] == 0
    assert all(op[0] != "Z" for op in parse(plain)[1])
    assert expand(pair["delta"]) == plain
    assert b"".join(pydelta.iter_delta(pair["sig"], pair["dir"] / "new", compress=False)) == plain


def test_fp16_grouping_wins():
    data = fp16_bytes(100_000, 9)
    head, frame = lits.Compressor(3).op(data)
    assert head[0:1] == b"Z" and head[-len(enc_varint(len(frame))) - 1] == fmt.Z_ZSTD_GROUP16
    plain = zstandard.ZstdCompressor(level=3).compress(data)
    assert len(frame) < len(plain)


def test_random_literal_kept_raw(tmp_path):
    old = rand_bytes(50_000, 1)
    new = rand_bytes(400_000, 2)
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(io.BytesIO(old))
    d = pydelta.delta(sig, io.BytesIO(new))
    flags, ops = parse(d)
    assert flags == fmt.FLAG_ZLITERALS  # "may contain": compression was on
    assert [op[0] for op in ops] == ["L", "L", "E"]
    assert patch_bytes(tmp_path / "old", d) == new
    assert expand(d) == pydelta.delta(sig, io.BytesIO(new), compress=False)


@pytest.mark.parametrize(
    "n", [1, 2, 3, 1023, 1024, 1025, 4096, 4097, LIT_MAX - 1, LIT_MAX, LIT_MAX + 1]
)
def test_literal_lengths(tmp_path, n):
    """Literals around the threshold and the cut, odd lengths for the grouping."""
    old = rand_bytes(4096, 7)
    new = old[:2048] + fp16_bytes((n + 1) // 2, n)[:n] + old[2048:]
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(io.BytesIO(old), block_size=512)
    d = pydelta.delta(sig, io.BytesIO(new))
    _, ops = parse(d)
    assert apply(old, ops) == new
    for feed in (None, 3):
        assert patch_bytes(tmp_path / "old", d, feed) == new
    if n < lits.THRESHOLD:
        assert all(op[0] != "Z" for op in ops)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 1000, 1001])
def test_group16_inverse(n):
    data = rand_bytes(n, n)
    g = lits.group16(data)
    assert g == data[0::2] + data[1::2]
    assert ungroup_loop(g) == data
    out = bytearray(n + 3)
    lits.ungroup16(g, out, 3)
    assert bytes(out[3:]) == data


def test_empty_and_tiny_new(tmp_path):
    old = rand_bytes(3000, 1)
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(io.BytesIO(old), block_size=256)
    for new in (b"", b"x", old):
        d = pydelta.delta(sig, io.BytesIO(new))
        assert d[6] == fmt.FLAG_ZLITERALS
        assert patch_bytes(tmp_path / "old", d) == new
        assert patch_bytes(tmp_path / "old", d, 1) == new


# ---------------------------------------------------------------- determinism


def test_same_bytes_every_run(pair):
    for _ in range(2):
        assert pydelta.delta(pair["sig"], pair["dir"] / "new") == pair["delta"]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_same_bytes_any_thread_count(pair, threads):
    assert pydelta.delta(pair["sig"], pair["dir"] / "new", threads=threads) == pair["delta"]


@pytest.mark.parametrize("k", [1, 7, 4096])
def test_same_bytes_tiny_reads(k):
    old = fp16_bytes(20_000, 11)
    new = (
        old[:9000]
        + fp16_bytes(6000, 12)
        + text_bytes(5000, 13)
        + old[15000:]
        + fp16_bytes(3000, 14)
    )
    sig = pydelta.signature(io.BytesIO(old), block_size=512)
    ref = pydelta.delta(sig, io.BytesIO(new))
    assert any(op[0] == "Z" for op in parse(ref)[1])
    assert pydelta.delta(sig, TinyReader(new, k), threads=1) == ref
    assert b"".join(pydelta.iter_delta(sig, TinyReader(new, k), threads=2)) == ref


def test_pool_keeps_order_under_pressure(monkeypatch):
    """Many literals in flight (small queue limits): the pooled writer gives the
    inline writer's bytes."""
    old = rand_bytes(8192, 1)
    parts = [old]
    for i in range(40):
        parts.append(fp16_bytes(2000 + 37 * i, 100 + i) if i % 3 else rand_bytes(3000, i))
        parts.append(old[1024 * (i % 6) : 1024 * (i % 6) + 2048])
    new = b"".join(parts)
    sig = pydelta.signature(io.BytesIO(old), block_size=1024)
    ref = pydelta.delta(sig, io.BytesIO(new), threads=1)
    monkeypatch.setattr(lits, "_DEPTH", 1)
    monkeypatch.setattr(lits, "_QUEUE_BYTES", 1000)
    for threads in (2, 4):
        assert pydelta.delta(sig, io.BytesIO(new), threads=threads) == ref
    assert apply(old, parse(ref)[1]) == new


def test_level(pair):
    d1 = pydelta.delta(pair["sig"], pair["dir"] / "new", level=1)
    d19 = pydelta.delta(pair["sig"], pair["dir"] / "new", level=19)
    for d in (d1, d19):
        assert apply(pair["old"], parse(d)[1]) == pair["new"]
        assert expand(d) == pair["plain"]
    for bad in (0, 23, -1, 3.0, True, "3"):
        with pytest.raises(pydelta.UsageError, match="compression level"):
            pydelta.delta(pair["sig"], pair["dir"] / "new", level=bad)


# ---------------------------------------------------------------- Patcher feeding


@pytest.mark.parametrize("feed", [1, 2, 3, 7, 64, 100_003])
def test_patcher_any_feed(pair, feed):
    assert patch_bytes(pair["dir"] / "old", pair["delta"], feed) == pair["new"]


def test_random_op_streams(small, small_buffers):
    """Random mixes of hand-made ops (all three transforms of spelling), fed in
    random pieces: the result is what the ops say."""
    old = small["old"]
    h = _header(small["sig"])
    r = random.Random(77)
    for trial in range(60):
        body = bytearray()
        want = bytearray()
        for _ in range(r.randrange(1, 12)):
            kind = r.choice("CLZz")  # z: grouped
            if kind == "C":
                off = r.randrange(len(old))
                n = r.randrange(1, len(old) - off + 1)
                body += b"C" + enc_varint(off) + enc_varint(n)
                want += old[off : off + n]
            elif kind == "L":
                data = rand_bytes(r.randrange(1, 300), trial)
                body += b"L" + enc_varint(len(data)) + data
                want += data
            else:
                data = (b"%d," % r.randrange(10**6)) * r.randrange(30, 3000)
                t = 1 if kind == "Z" else 2
                frame = _frame(data if t == 1 else lits.group16(data))
                body += _z(len(data), t, frame)
                want += data
        d = h + bytes(body) + _end(bytes(want))
        out = io.BytesIO()
        with pydelta.Patcher(small["dir"] / "old", out) as p:
            i = 0
            while i < len(d):
                k = r.choice([1, 2, 3, 5, 8, 13, 22, 23, 100, 1000, 10**6])
                p.write(d[i : i + k])
                i += k
        assert out.getvalue() == want, trial


def test_patcher_irregular_feed(pair):
    d = pair["delta"]
    r = random.Random(5)
    out = io.BytesIO()
    with pydelta.Patcher(pair["dir"] / "old", out) as p:
        i = 0
        while i < len(d):
            k = r.choice([1, 2, 5, 21, 22, 23, 4000, 70_000])
            p.write(memoryview(d)[i : i + k])
            i += k
    assert out.getvalue() == pair["new"]


# ---------------------------------------------------------------- damaged deltas


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small compressed delta: copy, a grouped literal, copy, a zstd literal."""
    d = tmp_path_factory.mktemp("small")
    old = rand_bytes(3000, 1)
    ramp = struct.pack("<700H", *range(3000, 3700))  # 16-bit values: grouping wins
    new = old[:1000] + ramp + old[1000:2000] + b"abc" * 500 + old[2000:]
    (d / "old").write_bytes(old)
    sig = pydelta.signature(io.BytesIO(old), block_size=100)
    delta = pydelta.delta(sig, io.BytesIO(new))
    _, ops = parse(delta)
    assert sorted(op[2] for op in ops if op[0] == "Z") == [1, 2]
    return {"dir": d, "old": old, "new": new, "sig": sig, "delta": delta}


@pytest.fixture
def small_buffers(monkeypatch):
    patch_mod = importlib.import_module("pydelta.patch")
    monkeypatch.setattr(patch_mod, "READ_SIZE", 1 << 14)
    monkeypatch.setattr(patch_mod, "OUT_SIZE", 1 << 14)


def test_every_cut_point(small, tmp_path, small_buffers):
    d = small["delta"]
    g = Guard(tmp_path)
    for cut in range(len(d)):
        e = fails(small["dir"] / "old", d[:cut], g, pydelta.PydeltaError)
        if cut >= DELTA_HEADER_LEN:
            assert isinstance(e, pydelta.CorruptDeltaError)
            assert "truncated" in str(e), (cut, e)
            assert f"ends after {cut} bytes" in str(e)


def test_every_cut_point_tiny_feed(small, tmp_path, small_buffers):
    d = small["delta"]
    g = Guard(tmp_path)
    for cut in range(DELTA_HEADER_LEN, len(d)):
        e = fails(small["dir"] / "old", d[:cut], g, feed=3)
        assert f"ends after {cut} bytes" in str(e)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_byte_flip(small, tmp_path, mask, small_buffers):
    d = small["delta"]
    g = Guard(tmp_path)
    for i in range(len(d)):
        bad = bytearray(d)
        bad[i] ^= mask
        for feed in (None, 5) if i % 7 == 0 else (None,):
            fails(small["dir"] / "old", bytes(bad), g, pydelta.PydeltaError, feed=feed)


def test_appended_data(small, tmp_path):
    g = Guard(tmp_path)
    for extra in (b"E", b"Z", small["delta"][60:]):
        for feed in (None, 1):
            fails(small["dir"] / "old", small["delta"] + extra, g, match="data follows", feed=feed)


# ---------------------------------------------------------------- hand-made 'Z' ops


def _header(sig: bytes, flags: int = fmt.FLAG_ZLITERALS) -> bytes:
    return fmt.pack_delta_header(pydelta.load_signature(sig).info, flags)


def _end(result: bytes) -> bytes:
    return b"E" + struct.pack("<Q", len(result)) + pydelta.blake3_digest(result)


def _z(raw_len: int, transform: int, frame: bytes, clen=None) -> bytes:
    return (
        b"Z"
        + enc_varint(raw_len)
        + bytes([transform])
        + enc_varint(len(frame) if clen is None else clen)
        + frame
    )


def _frame(data: bytes, **kw) -> bytes:
    kw.setdefault("write_checksum", False)
    return zstandard.ZstdCompressor(level=3, **kw).compress(data)


def test_handmade_z_ops_accepted(small, tmp_path):
    """Positive controls: other spellings a reader accepts."""
    old, h = small["old"], _header(small["sig"])
    data = b"hello, world! " * 100
    g = lits.group16(data)
    for body, want in [
        (_z(len(data), 1, _frame(data)), data),
        (_z(len(data), 2, _frame(g)), data),
        (_z(len(data), 1, _frame(data, write_checksum=True)), data),
        (
            b"C\x00\x05"
            + _z(len(data), 1, _frame(data))
            + b"L\x01x"
            + _z(len(data), 1, _frame(data)),
            old[:5] + data + b"x" + data,
        ),
    ]:
        for feed in (None, 1, 2, 3, 7):
            assert patch_bytes(small["dir"] / "old", h + body + _end(want), feed) == want


BAD_Z = {
    "zero raw length": (b"Z\x00\x01\x05" + b"12345", "zero length"),
    "zero compressed length": (b"Z\x05\x01\x00", "zero length"),
    "unknown transform 0": (_z(1000, 0, _frame(b"a" * 1000)), "unknown literal transform 0"),
    "unknown transform 3": (_z(1000, 3, _frame(b"a" * 1000)), "unknown literal transform 3"),
    "unknown transform 255": (_z(1000, 255, _frame(b"a" * 1000)), "unknown literal transform 255"),
    "raw over the cap": (_z(fmt.Z_MAX_RAW + 1, 1, b"x" * 20), "more than"),
    "raw 2**63": (_z(2**63, 1, b"x" * 20), "more than"),
    "compressed larger than raw": (_z(5, 1, _frame(b"abcde")), "larger"),
    "overlong varint": (b"Z\x85\x00\x01\x05", "invalid instruction"),
    "varint over 64 bits": (b"Z" + b"\xff" * 9 + b"\x02" + b"\x01\x05", "invalid instruction"),
    "not a zstd frame": (_z(1000, 1, b"\x00" * 50), "not a zstd frame"),
    "frame without content size": (
        _z(1000, 1, _frame(b"a" * 1000, write_content_size=False)),
        "does not hold the 1000 bytes",
    ),
    "frame holding more": (_z(900, 1, _frame(b"a" * 1000)), "does not hold the 900 bytes"),
    "frame holding less": (_z(1100, 1, _frame(b"a" * 1000)), "does not hold the 1100 bytes"),
    "trailing bytes after the frame": (
        _z(1000, 1, _frame(b"a" * 1000) + b"\x00\x00"),
        "does not decompress",
    ),
    "two frames": (_z(1000, 1, _frame(b"a" * 500) + _frame(b"a" * 500)), "does not hold"),
    "frame cut short": (_z(4000, 1, _frame(rand_bytes(1000, 3) * 4)[:-3]), "does not decompress"),
    "skippable frame": (
        _z(100, 1, b"\x50\x2a\x4d\x18" + struct.pack("<I", 10) + b"\x00" * 10),
        "not a zstd frame",
    ),
    "damaged frame header": (_z(1000, 1, b"\x28\xb5\x2f\xfd\xff"), "damaged zstd frame header"),
}


@pytest.mark.parametrize("name", list(BAD_Z))
@pytest.mark.parametrize("feed", [None, 1, 4])
def test_bad_z_op(small, tmp_path, name, feed, small_buffers):
    body, match = BAD_Z[name]
    prefix = b"C\x00\x0a" + b"L\x03abc"  # the bad op is at byte 60 + 8
    d = _header(small["sig"]) + prefix + body + _end(b"whatever")
    g = Guard(tmp_path)
    e = fails(small["dir"] / "old", d, g, feed=feed)
    assert match in str(e)
    assert f"at byte {DELTA_HEADER_LEN + len(prefix)}" in str(e)
    assert "\n" not in str(e)


def test_decompression_bomb(small, tmp_path):
    """A frame that says 262144 bytes and expands to 1 GiB: rejected, memory bounded."""
    big = 1 << 30
    cctx = zstandard.ZstdCompressor(level=3, write_checksum=False)
    chunks = []
    co = cctx.compressobj(size=big)
    zero = bytes(1 << 20)
    for _ in range(big >> 20):
        chunks.append(co.compress(zero))
    chunks.append(co.flush())
    frame = bytearray(b"".join(chunks))
    assert len(frame) < LIT_MAX and zstandard.get_frame_parameters(bytes(frame)).content_size == big
    # rewrite the frame's content size field (4 bytes after the descriptor) to 262144
    fhd = frame[4]
    assert fhd >> 6 == 2  # a 4-byte Frame_Content_Size field
    at = 5 + (0 if fhd & 0x20 else 1) + [0, 1, 2, 4][fhd & 3]
    assert struct.unpack_from("<I", frame, at)[0] == big
    struct.pack_into("<I", frame, at, LIT_MAX)
    assert zstandard.get_frame_parameters(bytes(frame)).content_size == LIT_MAX
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = Guard(tmp_path)
    for f, raw in ((bytes(frame), LIT_MAX), (bytes(frame), big)):
        d = _header(small["sig"]) + _z(raw, 1, f) + _end(b"x")
        e = fails(small["dir"] / "old", d, g)
        assert "compressed literal" in str(e)
    # a frame without a content size that expands beyond the literal
    co = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    unsized = co.compress(bytes(LIT_MAX * 64)) + co.flush()
    d = _header(small["sig"]) + _z(LIT_MAX, 1, unsized) + _end(b"x")
    fails(small["dir"] / "old", d, g, match="does not hold")
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    assert grew < 200_000, f"peak memory grew by {grew} KiB"


def test_z_without_flag_is_corrupt(small, tmp_path):
    d = small["delta"]
    unflagged = header_with(d, 0) + d[DELTA_HEADER_LEN:]
    _, ops = parse(d)
    first_z = DELTA_HEADER_LEN + 0
    # where the first 'Z' op starts
    pos = DELTA_HEADER_LEN
    for op in ops:
        if op[0] == "Z":
            first_z = pos
            break
        pos += (
            len(b"C" + enc_varint(op[1]) + enc_varint(op[2]))
            if op[0] == "C"
            else 1 + len(enc_varint(len(op[1]))) + len(op[1])
        )
    assert unflagged[first_z] == ord("Z")
    g = Guard(tmp_path)
    for feed in (None, 1, 7):
        e = fails(small["dir"] / "old", unflagged, g, match="invalid instruction", feed=feed)
        assert f"at byte {first_z}" in str(e)
    with pytest.raises(pydelta.CorruptDeltaError, match="invalid instruction"):
        pydelta.info(io.BytesIO(unflagged))


def test_header_check_covers_flag(small, tmp_path):
    d = small["delta"]
    g = Guard(tmp_path)
    cleared = header_with(d, 0, recheck=False) + d[DELTA_HEADER_LEN:]
    fails(small["dir"] / "old", cleared, g, match="header checksum mismatch")
    plain = pydelta.delta(small["sig"], io.BytesIO(small["new"]), compress=False)
    set_ = header_with(plain, 1, recheck=False) + plain[DELTA_HEADER_LEN:]
    fails(small["dir"] / "old", set_, g, match="header checksum mismatch")
    # with a recomputed check the flag may be set on a delta without 'Z' ops
    flagged = header_with(plain, 1) + plain[DELTA_HEADER_LEN:]
    assert patch_bytes(small["dir"] / "old", flagged) == small["new"]


@pytest.mark.parametrize("flags", [0x02, 0x03, 0x80, 0xFF])
def test_unknown_flags_rejected(small, tmp_path, flags):
    d = small["delta"]
    bad = header_with(d, flags) + d[DELTA_HEADER_LEN:]
    g = Guard(tmp_path)
    e = fails(
        small["dir"] / "old", bad, g, pydelta.UnsupportedVersionError, match="upgrade pydelta"
    )
    assert f"{flags:#04x}" in str(e)
    with pytest.raises(pydelta.UnsupportedVersionError):
        pydelta.info(io.BytesIO(bad))


def test_error_positions_after_z_ops(small, tmp_path):
    """Errors the patch job finds after 'Z' ops name the delta's byte, not the
    position in the expanded stream."""
    h = _header(small["sig"])
    data = b"0123456789" * 300
    z = _z(len(data), 1, _frame(data))
    g = Guard(tmp_path)
    body = z + b"C\x00\x05" + z
    at = DELTA_HEADER_LEN + len(body)
    for feed in (None, 1, 3, 50):
        e = fails(
            small["dir"] / "old",
            h + body + b"C" + enc_varint(5000) + b"\x01" + _end(b""),
            g,
            feed=feed,
        )
        assert f"a copy at byte {at} reaches outside" in str(e)
        e = fails(small["dir"] / "old", h + body + b"Q" + _end(b""), g, feed=feed)
        assert f"invalid instruction at byte {at}" in str(e)
        e = fails(small["dir"] / "old", h + body + b"L\x00" + _end(b""), g, feed=feed)
        assert f"invalid instruction at byte {at}" in str(e)
        e = fails(small["dir"] / "old", h + body + b"C\x80\x00\x01" + _end(b""), g, feed=feed)
        assert f"invalid instruction at byte {at}" in str(e)
        e = fails(small["dir"] / "old", h + body + _end(b"nope"), g, feed=feed)
        assert "does not match the digest" in str(e)
        e = fails(
            small["dir"] / "old", h + body + _end(b"") + b"x", g, match="data follows", feed=feed
        )


def test_wrong_basis_with_compression(small, tmp_path):
    other = bytearray(small["old"])
    other[50] ^= 1
    (tmp_path / "other").write_bytes(other)
    g = Guard(tmp_path)
    fails(tmp_path / "other", small["delta"], g, pydelta.WrongBasisError)


# ---------------------------------------------------------------- without zstandard


def test_without_zstandard(small, tmp_path, monkeypatch):
    monkeypatch.setattr(lits, "zstandard", None)
    # default: off, no error, the old format
    d = pydelta.delta(small["sig"], io.BytesIO(small["new"]))
    assert d[6] == 0 and d == expand(small["delta"])
    with pytest.raises(pydelta.UsageError, match="zstandard"):
        pydelta.delta(small["sig"], io.BytesIO(small["new"]), compress=True)
    g = Guard(tmp_path)
    fails(
        small["dir"] / "old", small["delta"], g, pydelta.UnsupportedVersionError, match="zstandard"
    )
    # a delta that needs nothing from zstandard still patches
    assert patch_bytes(small["dir"] / "old", d) == small["new"]


# ---------------------------------------------------------------- CLI


def test_cli(small, tmp_path, capsys):
    from pydelta.cli import main

    d = tmp_path
    (d / "old").write_bytes(small["old"])
    (d / "new").write_bytes(small["new"])
    (d / "sig").write_bytes(small["sig"])

    def run(*args):
        with pytest.raises(SystemExit) as e:
            main(list(args))
        return e.value.code

    assert run("delta", "-q", str(d / "sig"), str(d / "new"), str(d / "z")) in (0, None)
    assert (d / "z").read_bytes() == small["delta"]
    assert run("delta", "--no-compress", str(d / "sig"), str(d / "new"), str(d / "p")) in (0, None)
    assert (d / "p").read_bytes() == expand(small["delta"])
    assert run(
        "delta", "--compress", "--level", "19", str(d / "sig"), str(d / "new"), str(d / "z19")
    ) in (0, None)
    assert expand((d / "z19").read_bytes()) == expand(small["delta"])
    capsys.readouterr()
    assert run("delta", "-v", str(d / "sig"), str(d / "new"), str(d / "z2")) in (0, None)
    assert "compressed to" in capsys.readouterr().err
    assert run("delta", "--level", "0", str(d / "sig"), str(d / "new"), str(d / "bad")) == 2
    assert not (d / "bad").exists()
    assert run("patch", str(d / "old"), str(d / "z"), str(d / "out")) in (0, None)
    assert (d / "out").read_bytes() == small["new"]
    capsys.readouterr()
    assert run("info", str(d / "z")) in (0, None)
    out = capsys.readouterr().out
    assert "compressed literal instructions  2" in out
    assert run("info", str(d / "p")) in (0, None)
    assert "compressed" not in capsys.readouterr().out


def test_transform_choice_by_estimate():
    """Model-like bytes (skewed high bytes) are compressed grouped only;
    bytes whose halves look alike (text, random) try both transforms."""
    import random as _random

    rng = _random.Random(5)
    weights = bytes(
        rng.getrandbits(8) if i % 2 == 0 else 60 + rng.getrandbits(3) for i in range(1 << 18)
    )
    text = (b"the quick brown fox jumps over the lazy dog %d\n" * 2000)[: 1 << 16]
    noise = rand_bytes(1 << 16, 9)
    comp = lits.Compressor()
    both = tuple(lits.TRANSFORMS)
    assert comp._candidates(weights) == (2,)
    assert comp._candidates(text) == both and comp._candidates(noise) == both
    assert comp._candidates(weights[: lits.PICK_MIN - 1]) == both
    # on such data the grouping is the smaller frame (zstd gives each half
    # its own entropy tables once they fill separate 128 KiB blocks)
    t, frame = comp.best(weights)
    assert t == 2 and len(frame) < 0.9 * len(_frame_of(weights, 1))


def _frame_of(data: bytes, transform: int) -> bytes:
    c = lits.Compressor()
    return c._cctx().compress(data if transform == 1 else bytes(lits.group16(data)))
