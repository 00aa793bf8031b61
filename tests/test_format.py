"""The file formats byte by byte (format.py docstring / docs/FORMAT.md)."""

from __future__ import annotations

import io
import math
import struct

import pytest
from conftest import SIG_HEADER_LEN, SIG_TRAILER_LEN, parse_delta, py_weak, rand_bytes

import pydelta
from pydelta.formats import native as fmt

blake3 = pytest.importorskip("blake3")
xxhash = pytest.importorskip("xxhash")


def b3(data: bytes, n: int = 32) -> bytes:
    return blake3.blake3(data).digest(length=n)


# ---------------------------------------------------------------- signature


@pytest.mark.parametrize(
    "size,bs,sl,kind",
    [
        (size, bs, sl, kind)
        for size, bs, sl in [
            (0, 64, 16),
            (1, 64, 16),
            (64, 64, 8),
            (1000, 64, 32),
            (4097, 1024, 16),
            (10, 1, 12),
        ]
        for kind in ("blake3", "xxh3", None)
        if not (kind == "xxh3" and sl > 16)  # XXH3-128 sums are at most 16 bytes
    ],
)
def test_signature_layout(size, bs, sl, kind):
    old = rand_bytes(size, size + bs)
    s = pydelta.signature(io.BytesIO(old), block_size=bs, strong_len=sl, strong_hash=kind)
    # the default: XXH3-128, or BLAKE3 for sums longer than 16 bytes
    xxh3 = kind == "xxh3" or (kind is None and sl <= 16)
    # header
    assert s[:4] == b"PDSG"
    assert s[4] == 1  # version
    assert s[5] == 1  # weak sum id: RK64
    assert s[6] == (2 if xxh3 else 1)  # strong hash id: XXH3-128 or BLAKE3
    assert s[7] == sl
    assert struct.unpack_from("<I", s, 8)[0] == bs
    assert struct.unpack_from("<I", s, 12)[0] == 0  # reserved
    # body: one entry per block, the last one possibly short
    blocks = [old[i : i + bs] for i in range(0, size, bs)]
    entry = 8 + sl
    body = s[SIG_HEADER_LEN:-SIG_TRAILER_LEN]
    assert len(body) == len(blocks) * entry
    for k, blk in enumerate(blocks):
        e = body[k * entry : (k + 1) * entry]
        assert struct.unpack_from("<Q", e)[0] == py_weak(blk), k
        assert e[8:] == (xxhash.xxh3_128(blk).digest()[:sl] if xxh3 else b3(blk, sl)), k
    # trailer
    count, basis, digest, end = struct.unpack("<QQ32s4s", s[-SIG_TRAILER_LEN:])
    assert count == len(blocks) == math.ceil(size / bs)
    assert basis == size
    assert end == b"PDSE"
    assert digest == b3(s[:-36])
    assert len(s) == 16 + len(blocks) * entry + 52


def test_signature_info_matches_file(tmp_path):
    old = rand_bytes(10_000, 1)
    (tmp_path / "old").write_bytes(old)
    si = pydelta.signature(tmp_path / "old", tmp_path / "sig", block_size=1000, strong_len=20)
    s = (tmp_path / "sig").read_bytes()
    assert isinstance(si, pydelta.SignatureInfo)
    assert si == pydelta.SignatureInfo(1000, 20, 10, 10_000, s[-36:-4])
    assert pydelta.load_signature(s).info == si
    assert pydelta.Signature.load(tmp_path / "sig").info == si
    f = pydelta.info(tmp_path / "sig")
    assert f.kind == "signature"
    assert f.fields["block size"] == 1000
    assert f.fields["blocks"] == 10
    assert f.fields["distinct blocks"] == 10
    assert f.fields["basis size"] == 10_000
    assert f.fields["signature digest"] == b3(s[:-36]).hex()
    assert f.fields["strong hash"] == "BLAKE3, 20 bytes"
    text = str(f)
    assert text.startswith("pydelta signature\n")
    assert "basis size" in text and "10000" in text


def test_signature_identifies_basis():
    a = rand_bytes(5000, 2)
    b = bytearray(a)
    b[2500] ^= 1
    sa = pydelta.signature(io.BytesIO(a), block_size=512)
    sb = pydelta.signature(io.BytesIO(bytes(b)), block_size=512)
    assert sa[-36:-4] != sb[-36:-4]
    assert sa == pydelta.signature(io.BytesIO(a), block_size=512)  # deterministic


# ---------------------------------------------------------------- delta


def test_delta_layout(tmp_path):
    old = rand_bytes(5000, 3)
    new = old[:2000] + b"inserted" + old[2000:]
    s = pydelta.signature(io.BytesIO(old), block_size=256, strong_len=24)
    d = pydelta.delta(s, io.BytesIO(new), compress=False)
    assert pydelta.delta(s, io.BytesIO(new), compress=True)[6] == 1  # flag: 'Z' ops allowed
    assert d[:4] == b"PDDL"
    assert d[4] == 1  # version
    assert d[5] == 24  # strong_len
    assert d[6] == 0 and d[7] == 0  # flags, reserved
    assert struct.unpack_from("<I", d, 8)[0] == 256
    assert struct.unpack_from("<Q", d, 12)[0] == len(old)  # basis size
    assert d[20:52] == s[-36:-4]  # the signature's digest ties the delta to it
    # END trailer: 'E', u64 size, blake3 of the result
    assert d[-41] == ord("E")
    assert struct.unpack_from("<Q", d, len(d) - 40)[0] == len(new)
    assert d[-32:] == b3(new)
    p = parse_delta(d)
    # offset 2000 lies in block 7 (1792..2047), which goes as literal
    assert p.ops == [("C", 0, 1792), ("L", new[1792 : 2048 + 8]), ("C", 2048, 5000 - 2048)]
    f = pydelta.info(io.BytesIO(d)).fields
    assert f == {
        "format version": 1,
        "delta size": len(d),
        "block size": 256,
        "basis size": 5000,
        "signature digest": s[-36:-4].hex(),
        "result size": len(new),
        "result digest": b3(new).hex(),
        "copy instructions": 2,
        "copied bytes": 5000 - 256,  # all but block 7
        "literal instructions": 1,
        "literal bytes": 264,
    }
    assert str(pydelta.info(io.BytesIO(d))).startswith("pydelta delta\n")


def test_delta_varints_are_canonical_leb128():
    old = rand_bytes(300_000, 4)
    new = old[200_000:] + old[:200_000]  # big offsets, several varint widths
    d = pydelta.delta(pydelta.signature(io.BytesIO(old), block_size=1024), io.BytesIO(new))
    p = parse_delta(d)
    assert p.ops == [
        ("L", old[200_000:200_704]),
        ("C", 200_704, 300_000 - 200_704),
        ("C", 0, 195 * 1024),
        ("L", old[195 * 1024 : 200_000]),
    ]
    # walk the raw bytes: each varint is minimal (no trailing 0x80 0x00)
    pos = 60
    widths = []

    def varint():
        nonlocal pos
        start, value, shift = pos, 0, 0
        while True:
            value |= (d[pos] & 0x7F) << shift
            shift += 7
            pos += 1
            if not d[pos - 1] & 0x80:
                break
        assert pos - start == 1 or d[pos - 1] != 0
        assert pos - start == max(1, -(-value.bit_length() // 7))
        widths.append(pos - start)
        return value

    while d[pos] != ord("E"):
        op = d[pos]
        pos += 1
        if op == ord("C"):
            varint()
            varint()
        else:
            assert op == ord("L")
            n = varint()
            pos += n
    assert pos == len(d) - 41
    assert sorted(set(widths)) == [1, 2, 3]  # 0 / 704, 3392 / 99296, 200704


def test_delta_header_constants():
    assert fmt.SIG_HEADER.size == 16
    assert fmt.SIG_TRAILER.size == 52
    assert fmt.DELTA_HEADER.size == 60
    assert (fmt.SIG_MAGIC, fmt.SIG_END_MAGIC, fmt.DELTA_MAGIC) == (b"PDSG", b"PDSE", b"PDDL")
    assert fmt.VERSION == 1
    be = pydelta._backend_module
    assert be.HASH_LEN == 32
    assert be.LIT_MAX == 262144
    assert be.DELTA_MIN_OUT >= be.LIT_MAX + 64


def test_pack_and_parse_delta_header_roundtrip():
    info = pydelta.SignatureInfo(4096, 16, 3, 12000, bytes(range(32)))
    h = fmt.pack_delta_header(info)
    assert len(h) == 60
    got = fmt.parse_delta_header(h, "x")
    assert got == fmt.DeltaHeader(4096, 16, 12000, bytes(range(32)))


def test_basis_size_is_64_bit():
    info = pydelta.SignatureInfo(1 << 20, 16, 5 << 12, 5 << 32, b"\x01" * 32)
    h = fmt.pack_delta_header(info)
    assert struct.unpack_from("<Q", h, 12)[0] == 5 << 32
    assert fmt.parse_delta_header(h, "x").basis_size == 5 << 32


# ---------------------------------------------------------------- describe_magic


@pytest.mark.parametrize(
    "head,kind",
    [
        (b"PDSG\x01", "a pydelta signature"),
        (b"PDDL\x01", "a pydelta delta"),
        (b"rs\x016\x00", "an rdiff (librsync) signature"),
        (b"rs\x017", "an rdiff (librsync) signature"),
        (b"rs\x01G", "an rdiff (librsync) signature"),
        (b"rs\x01F", "an rdiff (librsync) signature"),  # RabinKarp + MD4 (0x72730146)
        (b"rs\x026", "an rdiff (librsync) delta"),
        (b"\xd6\xc3\xc4\x00", "an xdelta3/VCDIFF delta"),
        (b"\x28\xb5\x2f\xfd\x00", "a zstd-compressed file"),
        (b"\x1f\x8b\x08\x00", "a gzip file"),
        (b"", "an empty file"),
        (b"P", "not a pydelta file"),
        (b"PDS", "not a pydelta file"),
        (b"PDSE", "not a pydelta file"),
        (b"\x7fELF", "not a pydelta file"),
    ],
)
def test_describe_magic(head, kind):
    assert fmt.describe_magic(head) == kind


# ---------------------------------------------------------------- default_block_len


@pytest.mark.parametrize(
    "size,want",
    [
        (None, 32768),
        (0, 1024),
        (1, 1024),
        (1024 * 1024, 1024),  # sqrt = 1024 exactly
        (1024 * 1024 + 1, 1024),  # integer sqrt 1024
        (1025 * 1025 - 1, 1024),
        (1025 * 1025, 2048),  # integer sqrt 1025: rounded up
        (2048 * 2048, 2048),
        (3_000_000, 2048),
        (5_000_000, 3072),
        (1 << 30, 32768),
        (1 << 32, 65536),
        (int(4.5 * (1 << 30)), 69632),  # isqrt 69511 -> 68 KiB
        ((1 << 20) ** 2, 1 << 20),
        ((1 << 20) ** 2 + 1, 1 << 20),  # capped
        (1 << 60, 1 << 20),
        (-5, 1024),
    ],
)
def test_default_block_len_values(size, want):
    assert pydelta.default_block_len(size) == want


def test_default_block_len_rule():
    prev = 0
    for size in [
        0,
        1,
        10,
        999_999,
        1 << 20,
        7 << 20,
        123_456_789,
        1 << 34,
        1 << 40,
        1 << 41,
        1 << 50,
    ]:
        b = pydelta.default_block_len(size)
        assert b % 1024 == 0
        assert 1024 <= b <= 1 << 20
        assert b >= prev  # monotonic in the size
        prev = b
        root = math.isqrt(size)
        if 1024 <= root <= 1 << 20:
            assert b - 1024 < root <= b  # smallest KiB multiple >= sqrt(size)


def test_default_block_len_used_by_signature(tmp_path):
    for size in (0, 100, 1_100_000, 5_000_000):
        (tmp_path / "f").write_bytes(bytes(size))
        s = pydelta.signature(tmp_path / "f")
        assert struct.unpack_from("<I", s, 8)[0] == pydelta.default_block_len(size)


def test_block_len_validation_helpers():
    assert fmt.check_block_len(1) == 1
    assert fmt.check_block_len(1 << 26) == 1 << 26
    for bad in (0, -1, (1 << 26) + 1, 2.0, True, None):
        with pytest.raises(pydelta.UsageError):
            fmt.check_block_len(bad)
    assert fmt.check_strong_len(8) == 8 and fmt.check_strong_len(32) == 32
    for bad in (7, 33, None, "16"):
        with pytest.raises(pydelta.UsageError):
            fmt.check_strong_len(bad)


# ---------------------------------------------------------------- header parsing errors


def test_parse_sig_header_errors():
    good = fmt.pack_sig_header(1024, 16)
    assert fmt.parse_sig_header(good, "s") == (1024, 16)
    with pytest.raises(pydelta.UnsupportedVersionError, match="format version 9"):
        fmt.parse_sig_header(good[:4] + b"\x09" + good[5:], "s")
    for i, v in [(5, 2), (6, 0), (7, 7), (7, 33), (12, 1)]:
        bad = bytearray(good)
        bad[i] = v
        with pytest.raises(pydelta.CorruptSignatureError, match="invalid header fields"):
            fmt.parse_sig_header(bytes(bad), "s")
    with pytest.raises(pydelta.CorruptSignatureError, match="invalid header fields"):
        fmt.parse_sig_header(good[:8] + struct.pack("<I", 0) + good[12:], "s")
    # XXH3-128 (id 2): 8..16 bytes; an id this pydelta does not know asks for an upgrade
    x = fmt.pack_sig_header(1024, 16, fmt.STRONG_XXH3)
    assert fmt.parse_sig_header(x, "s") == (1024, 16) and fmt.sig_strong_kind(x) == 2
    with pytest.raises(pydelta.CorruptSignatureError, match="invalid header fields"):
        fmt.parse_sig_header(fmt.pack_sig_header(1024, 17, fmt.STRONG_XXH3), "s")
    with pytest.raises(pydelta.UnsupportedVersionError, match="strong hash id 3.*upgrade pydelta"):
        fmt.parse_sig_header(fmt.pack_sig_header(1024, 16, 3), "s")
    with pytest.raises(pydelta.CorruptSignatureError, match="header incomplete"):
        fmt.parse_sig_header(good[:15], "s")
    with pytest.raises(pydelta.NotASignatureError, match="wrong order"):
        fmt.parse_sig_header(b"PDDL" + good[4:], "s")
