"""The weak rolling sum: rolling equals direct, and both equal the formula
of csrc/internal.h  h(c_0..c_{n-1}) = sum c_i * M^(n-1-i) mod 2^64."""

from __future__ import annotations

import pytest
from conftest import MASK64, WEAK_M, py_weak, py_weak_direct, rand_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from pydelta.backends import backend


def py_rolling(data: bytes, w: int) -> list:
    """Independent rolling implementation (Python ints, reduced mod 2^64)."""
    if w <= 0 or w > len(data):
        return []
    mw = pow(WEAK_M, w, 1 << 64)
    h = py_weak(data[:w])
    out = [h]
    for i in range(1, len(data) - w + 1):
        h = (h * WEAK_M + data[i - 1 + w] - data[i - 1] * mw) & MASK64
        out.append(h)
    return out


def test_oracles_agree():
    for n in range(0, 40):
        data = rand_bytes(n, n)
        assert py_weak(data) == py_weak_direct(data)


def test_small_known_values():
    assert backend.weak(b"") == 0
    assert backend.weak(b"\x00") == 0
    assert backend.weak(b"\x07") == 7
    assert backend.weak(b"\x01\x02") == (WEAK_M + 2) & MASK64
    assert backend.weak(b"\x01\x00\x00") == pow(WEAK_M, 2, 1 << 64)
    assert (
        backend.weak(b"\xff" * 5) == sum(255 * pow(WEAK_M, k, 1 << 64) for k in range(5)) & MASK64
    )
    for n in range(0, 70):
        assert backend.weak(bytes(n)) == 0
        assert backend.weak(b"\x01" * n) == sum(pow(WEAK_M, k, 1 << 64) for k in range(n)) & MASK64


@pytest.mark.parametrize("n", list(range(0, 34)) + [63, 64, 65, 1000, 4095, 4096, 4097])
def test_weak_matches_formula(n):
    for seed in range(3):
        data = rand_bytes(n, 1000 * n + seed)
        assert backend.weak(data) == py_weak_direct(data) == py_weak(data)


def test_weak_large_window():
    data = rand_bytes(300_000, 5)
    assert backend.weak(data) == py_weak(data)
    assert backend.weak(memoryview(data)[1000:2000]) == py_weak(data[1000:2000])
    assert backend.weak(bytearray(data[:77])) == py_weak(data[:77])


def test_rolling_equals_direct_every_window_size():
    data = rand_bytes(700, 6)
    for w in range(1, 301):
        rolled = backend.weak_rolling(data, w)
        assert len(rolled) == len(data) - w + 1
        direct = [backend.weak(data[i : i + w]) for i in range(len(data) - w + 1)]
        assert rolled == direct, w


def test_rolling_equals_python_oracle():
    data = rand_bytes(2000, 7)
    for w in list(range(1, 40)) + [64, 100, 255, 256, 257, 999, 1999, 2000]:
        assert backend.weak_rolling(data, w) == py_rolling(data, w), w
    # spot-check rolling against the literal formula
    rolled = backend.weak_rolling(data, 333)
    for i in (0, 1, 2, 500, 1000, len(data) - 333):
        assert rolled[i] == py_weak_direct(data[i : i + 333])


@pytest.mark.parametrize("fill", [0x00, 0x01, 0x80, 0xFF])
def test_rolling_constant_data(fill):
    data = bytes([fill]) * 1000
    for w in (1, 2, 3, 4, 5, 17, 64, 999, 1000):
        rolled = backend.weak_rolling(data, w)
        assert len(set(rolled)) == 1
        assert rolled[0] == py_weak(bytes([fill]) * w)
        if fill == 0:
            assert rolled[0] == 0


def test_rolling_bytes_with_high_bit():
    # c_out * M^w must wrap correctly for bytes >= 0x80
    data = bytes([0xFF, 0x80, 0x00, 0x7F] * 200)
    for w in (1, 3, 4, 7, 100):
        assert backend.weak_rolling(data, w) == py_rolling(data, w)


def test_rolling_edge_windows():
    data = rand_bytes(50, 8)
    assert backend.weak_rolling(data, 50) == [backend.weak(data)]
    assert backend.weak_rolling(data, 51) == []
    assert backend.weak_rolling(data, 1000) == []
    assert backend.weak_rolling(data, 0) == []
    assert backend.weak_rolling(b"", 1) == []
    assert backend.weak_rolling(b"", 0) == []
    assert backend.weak_rolling(b"x", 1) == [ord("x")]
    assert backend.weak_rolling(data, 1) == list(data)


def test_rolling_buffer_types():
    data = rand_bytes(300, 9)
    want = py_rolling(data, 10)
    assert backend.weak_rolling(bytearray(data), 10) == want
    assert backend.weak_rolling(memoryview(data), 10) == want
    assert backend.weak_rolling(memoryview(data)[5:], 10) == want[5:]


def test_weak_is_position_sensitive():
    # a polynomial hash: the order of the bytes matters
    assert backend.weak(b"ab") != backend.weak(b"ba")
    assert backend.weak(b"abc") != backend.weak(b"cba")
    assert backend.weak(b"\x01\x00") != backend.weak(b"\x00\x01")


def test_leading_zeros_do_not_change_weak():
    # h(0, c...) = h(c...): a property of the polynomial form, used as a sanity check
    data = rand_bytes(100, 10)
    for k in (1, 2, 5, 64):
        assert backend.weak(bytes(k) + data) == backend.weak(data)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=st.binary(min_size=0, max_size=400), w=st.integers(0, 420))
def test_rolling_property(data, w):
    assert backend.weak_rolling(data, w) == py_rolling(data, w)
