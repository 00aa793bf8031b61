"""The librsync-interop kernels against oracles: BLAKE2b against hashlib
(every kernel the CPU has: portable, AVX2, AVX-512), MD4 against RFC 1320's
test vectors (and hashlib where OpenSSL still has it), RabinKarp and rollsum
against pure-Python definitions and librsync's own published test vectors
(tests/rabinkarp_test.c, tests/rollsum_test.c), rolling against direct
computation, and signature entries against a pure-Python signature."""

from __future__ import annotations

import hashlib
import struct

import pytest
from conftest import rand_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from pydelta.backends import rdiff as _rs

IMPLS = [name for name in ("portable", "avx2", "avx512") if _rs.set_impl(name)]
_BEST = IMPLS[-1]
_rs.set_impl(_BEST)


@pytest.fixture(params=IMPLS)
def impl(request):
    assert _rs.set_impl(request.param)
    assert _rs.impl() == request.param
    yield request.param
    _rs.set_impl(_BEST)


# ---------------------------------------------------------------- BLAKE2b


LENGTHS = list(range(0, 300)) + [383, 384, 385, 1000, 4095, 4096, 65537]


def test_blake2b_one_shot_matches_hashlib():
    for n in LENGTHS:
        data = rand_bytes(n, n)
        for size in (32, 64, 1, 16, 20, 33):
            assert _rs.blake2b(data, size) == hashlib.blake2b(data, digest_size=size).digest(), (
                n,
                size,
            )


def test_blake2b_256_is_not_truncated_512():
    data = b"abc"
    assert _rs.blake2b(data, 32) != hashlib.blake2b(data).digest()[:32]


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 256, 1000, 16384])
def test_blake2b_many_matches_hashlib(impl, n):
    for count in (0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17):
        stride = n + 5
        data = rand_bytes(stride * count + 5, n * 100 + count)
        got = _rs.blake2b_many(data, stride, count, n)
        want = [
            hashlib.blake2b(data[i * stride : i * stride + n], digest_size=32).digest()
            for i in range(count)
        ]
        assert got == want, (impl, n, count)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 12))
def test_blake2b_many_property(data, count):
    n = len(data) // count
    got = _rs.blake2b_many(data, n, count, n)
    assert got == [
        hashlib.blake2b(data[i * n : (i + 1) * n], digest_size=32).digest() for i in range(count)
    ]


# ---------------------------------------------------------------- MD4

RFC1320 = {
    b"": "31d6cfe0d16ae931b73c59d7e0c089c0",
    b"a": "bde52cb31de33e46245e05fbdbd6fb24",
    b"abc": "a448017aaf21d8525fc10ae87aa6729d",
    b"message digest": "d9130a8164549fe818874806e1c7014b",
    b"abcdefghijklmnopqrstuvwxyz": "d79e1c308aa5bbcdeea8ed63df412da9",
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789": "043f8582f241db351ce627e153e7f0e4",
    b"1234567890" * 8: "e33b4ddc9c38f2199c3e7b164fcc0536",
}


@pytest.mark.parametrize("msg", list(RFC1320))
def test_md4_rfc1320_vectors(msg):
    assert _rs.md4(msg).hex() == RFC1320[msg]


def _hashlib_md4():
    try:
        return hashlib.new("md4")
    except ValueError:
        return None


@pytest.mark.skipif(
    _hashlib_md4() is None, reason="hashlib has no MD4 here (OpenSSL 3); RFC 1320 vectors cover it"
)
def test_md4_matches_hashlib():
    for n in list(range(0, 200)) + [1000, 4096, 65537]:
        data = rand_bytes(n, n)
        assert _rs.md4(data) == hashlib.new("md4", data).digest()


def test_md4_padding_boundaries_consistent():
    # 55/56/63/64 bytes sit on MD4's one- vs two-block padding boundary;
    # a message and the same message split differently must agree with the
    # RFC vector for "1234567890"*8 (80 bytes, two blocks).
    assert _rs.md4(b"1234567890" * 8) == bytes.fromhex(RFC1320[b"1234567890" * 8])
    digests = {_rs.md4(b"x" * n) for n in (55, 56, 63, 64, 65)}
    assert len(digests) == 5


# ---------------------------------------------------------------- weak sums

RK, RS = _rs.WEAK_RABINKARP, _rs.WEAK_ROLLSUM
MULT = 0x08104225


def py_rabinkarp(data: bytes) -> int:
    h = 1
    for b in data:
        h = (h * MULT + b) & 0xFFFFFFFF
    return h


def py_rollsum(data: bytes) -> int:
    s1 = s2 = 0
    for b in data:
        s1 = (s1 + b + 31) & 0xFFFF
        s2 = (s2 + s1) & 0xFFFF
    return (s2 << 16) | s1


# librsync's tests/rabinkarp_test.c and tests/rollsum_test.c
LIBRSYNC_VECTORS = {
    RK: [
        (b"", 0x00000001),
        (bytes([0]), 0x08104225),
        (bytes([0, 1, 2, 3]), 0xAF981E97),
        (bytes([1, 2, 3, 4]), 0xE2EF15F3),
        (bytes([4, 5, 6, 7]), 0x7CF3FC07),
        (bytes([5, 6, 7]), 0xF284A77F),
        (bytes(range(256)), 0xC1972381),
    ],
    RS: [
        (b"", 0x00000000),
        (bytes([0]), 0x001F001F),
        (bytes([0, 1, 2, 3]), 0x01400082),
        (bytes([1, 2, 3, 4]), 0x014A0086),
        (bytes([4, 5, 6, 7]), 0x01680092),
        (bytes([5, 6, 7]), 0x00DC006F),
        (bytes(range(256)), 0x3A009E80),
    ],
}


@pytest.mark.parametrize("kind", [RK, RS])
def test_weak_librsync_vectors(kind):
    for data, want in LIBRSYNC_VECTORS[kind]:
        assert _rs.weak(kind, data) == want, (kind, data[:8])
    # rolling [0,1,2,3] -> [1,2,3,4] -> ... -> [4,5,6,7], as librsync's rotate tests do
    rolled = _rs.weak_rolling(kind, bytes(range(8)), 4)
    assert rolled[0] == LIBRSYNC_VECTORS[kind][2][1]
    assert rolled[1] == LIBRSYNC_VECTORS[kind][3][1]
    assert rolled[4] == LIBRSYNC_VECTORS[kind][4][1]


@pytest.mark.parametrize("kind,oracle", [(RK, py_rabinkarp), (RS, py_rollsum)])
def test_weak_matches_definition(kind, oracle):
    for n in list(range(0, 300)) + [511, 512, 513, 4096, 65536, 100_003]:
        data = rand_bytes(n, n + 1)
        assert _rs.weak(kind, data) == oracle(data), (kind, n)
    for n in (0, 1, 200, 5000, 70_000):  # extremes: all 0xff, all zero
        assert _rs.weak(kind, b"\xff" * n) == oracle(b"\xff" * n)
        assert _rs.weak(kind, bytes(n)) == oracle(bytes(n))


@pytest.mark.parametrize("kind", [RK, RS])
@pytest.mark.parametrize("window", [1, 2, 7, 64, 300, 4095])
def test_rolling_matches_direct(kind, window):
    data = rand_bytes(9000, window) + b"\xff" * 300 + bytes(300)
    rolled = _rs.weak_rolling(kind, data, window)
    assert len(rolled) == len(data) - window + 1
    for i in list(range(0, len(rolled), 97)) + [len(rolled) - 1]:
        assert rolled[i] == _rs.weak(kind, data[i : i + window]), (kind, window, i)


def test_rolling_degenerate():
    assert _rs.weak_rolling(RK, b"abc", 0) == []
    assert _rs.weak_rolling(RK, b"abc", 4) == []
    assert _rs.weak_rolling(RS, b"abc", 3) == [_rs.weak(RS, b"abc")]


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=600), st.integers(1, 130))
def test_rolling_property(data, window):
    window = min(window, len(data))
    for kind, oracle in ((RK, py_rabinkarp), (RS, py_rollsum)):
        rolled = _rs.weak_rolling(kind, data, window)
        assert rolled == [oracle(data[i : i + window]) for i in range(len(data) - window + 1)]


# ---------------------------------------------------------------- signature entries


MAGICS = {
    _rs.MD4_MAGIC: (py_rollsum, lambda b: _rs.md4(b)),
    _rs.BLAKE2_MAGIC: (py_rollsum, lambda b: hashlib.blake2b(b, digest_size=32).digest()),
    _rs.RK_MD4_MAGIC: (py_rabinkarp, lambda b: _rs.md4(b)),
    _rs.RK_BLAKE2_MAGIC: (py_rabinkarp, lambda b: hashlib.blake2b(b, digest_size=32).digest()),
}


@pytest.mark.parametrize("magic", list(MAGICS))
@pytest.mark.parametrize("block_len,strong_len", [(1, 1), (7, 5), (128, 16), (1000, 8), (4096, 16)])
def test_sig_blocks_match_python(impl, magic, block_len, strong_len):
    weak, strong = MAGICS[magic]
    data = rand_bytes(20 * block_len + block_len // 2 + 1, block_len)
    got = _rs.sig_blocks(magic, data, len(data), block_len, strong_len)
    want = b"".join(
        struct.pack(">I", weak(data[i : i + block_len]))
        + strong(data[i : i + block_len])[:strong_len]
        for i in range(0, len(data), block_len)
    )
    assert got == want


def test_sig_blocks_rejects_bad_parameters():
    assert _rs.sig_blocks(_rs.RK_BLAKE2_MAGIC, b"abc", 3, 1, 33) == b""
    assert _rs.sig_blocks(_rs.RK_MD4_MAGIC, b"abc", 3, 1, 17) == b""
    assert _rs.sig_blocks(_rs.DELTA_MAGIC, b"abc", 3, 1, 8) == b""


def test_table_finds_blocks_and_dedups():
    bl = 64
    a, b = rand_bytes(bl, 1), rand_bytes(bl, 2)
    data = a + b + a + a + b + b"tail"
    entries = _rs.sig_blocks(_rs.RK_BLAKE2_MAGIC, data, len(data), bl, 8)
    t = _rs.SigTable(_rs.RK_BLAKE2_MAGIC, entries, 6, bl, 8)
    assert t.error == 0
    assert t.find(a) == 0 and t.find(b) == 1  # lowest index of identical blocks
    assert t.find(rand_bytes(bl, 3)) is None
    assert t.unique == 3  # a, b and the short tail
    bad = _rs.SigTable(_rs.RK_BLAKE2_MAGIC, entries, 6, 0, 8)
    assert bad.error != 0


def test_python_side_constants_match_the_c_header():
    from pydelta.formats import rdiff

    assert rdiff.DELTA_MAGIC == struct.pack(">I", _rs.DELTA_MAGIC)
    kinds = {
        _rs.MD4_MAGIC: ("rollsum", "md4"),
        _rs.BLAKE2_MAGIC: ("rollsum", "blake2"),
        _rs.RK_MD4_MAGIC: ("rabinkarp", "md4"),
        _rs.RK_BLAKE2_MAGIC: ("rabinkarp", "blake2"),
    }
    assert rdiff.SIG_MAGICS == {struct.pack(">I", m): k for m, k in kinds.items()}
    assert rdiff._STRONG_MAX == {"blake2": _rs.BLAKE2_LEN, "md4": _rs.MD4_LEN}
    assert _rs.LIT_MAX == 262144  # tests/test_rdiff.py relies on it
