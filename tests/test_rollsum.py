"""The weak rolling sum: rolling equals direct, and both equal the formula
of csrc/internal.h  h(c_0..c_{n-1}) = sum c_i * M^(n-1-i) mod 2^64.

The C whole-window sum (pd_weak_more) runs an AVX2 kernel where the CPU has
one and the portable code otherwise or with ``PYDELTA_WEAK_SIMD=portable``:
both give the formula's sums at every length and every split into pieces.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

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


# ---------------------------------------------------------------- C kernels, whole and in pieces

#: lengths around the kernels' edges (16-byte steps, 1 KiB spans, 8-byte groups)
LONG_LENGTHS = [1023, 1024, 1025, 2047, 2048, 2064, 4095, 4096, 4097, 100_003, (1 << 20) + 7]


def _splits(n: int, rng: random.Random) -> list:
    """Cut points of 0..n into random pieces (some empty, some single bytes)."""
    cuts = sorted(rng.randrange(0, n + 1) for _ in range(rng.randrange(0, 9)))
    if rng.random() < 0.3:
        cuts += [min(n, cuts[-1] + 1) if cuts else min(n, 1)]
    return [0] + sorted(cuts) + [n]


def c_weak_cases() -> list:
    """(data seed, length, cut points) of every case checked against the formula."""
    rng = random.Random(1313)
    cases = [(n, n, [0, n]) for n in range(0, 301)]
    cases += [(7 * n + 1, n, [0, n]) for n in LONG_LENGTHS]
    for k in range(120):
        n = rng.choice([rng.randrange(0, 300), rng.randrange(0, 5000), rng.randrange(0, 70_000)])
        cases.append((10_000 + k, n, _splits(n, rng)))
    return cases


def c_weak_results() -> dict:
    """The C kernel in use and its sum of each case, fed piece by piece."""
    from pydelta._core import ffi, lib

    sums = []
    for seed, n, cuts in c_weak_cases():
        data = rand_bytes(n, seed)
        h = 0
        for a, b in zip(cuts, cuts[1:]):
            h = lib.pd_weak_more(h, ffi.from_buffer(data[a:b]), b - a)
        sums.append(h)
    return {"impl": ffi.string(lib.pd_weak_impl()).decode(), "sums": sums}


@pytest.fixture(scope="module")
def weak_wanted() -> list:
    """The formula's sum of each case (Python, Horner)."""
    return [py_weak(rand_bytes(n, seed)) for seed, n, _ in c_weak_cases()]


def _cpu_has_avx2() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and " avx2" in line for line in text.splitlines())


def _child_results(simd) -> dict:
    env = dict(os.environ)
    env.pop("PYDELTA_WEAK_SIMD", None)
    if simd is not None:
        env["PYDELTA_WEAK_SIMD"] = simd
    tests = str(Path(__file__).resolve().parent)
    script = (
        f"import json, sys; sys.path.insert(0, {tests!r}); import test_rollsum as t; "
        "print(json.dumps(t.c_weak_results()))"
    )
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_c_weak_in_pieces_matches_formula(weak_wanted):
    """Whichever kernel this process picked: every length, every split."""
    got = c_weak_results()
    assert got["impl"] in ("avx2", "portable")
    bad = [c for c, g, w in zip(c_weak_cases(), got["sums"], weak_wanted) if g != w]
    assert not bad, bad[:3]


@pytest.mark.parametrize("simd", [None, "portable"], ids=["default", "portable"])
def test_c_weak_kernels_match_formula(weak_wanted, simd):
    """The CPU's best kernel (AVX2 where it has it) and the forced portable one."""
    got = _child_results(simd)
    if simd == "portable" or not _cpu_has_avx2():
        assert got["impl"] == "portable"
    else:
        assert got["impl"] == "avx2"
    bad = [c for c, g, w in zip(c_weak_cases(), got["sums"], weak_wanted) if g != w]
    assert not bad, bad[:3]


def test_c_weak_extreme_bytes():
    """All-0xFF and all-0x80 windows: the largest products in every lane."""
    from pydelta._core import ffi, lib

    for fill in (0xFF, 0x80, 0x7F):
        for n in (16, 1024, 1040, 5000, 65_536 + 3):
            data = bytes([fill]) * n
            assert lib.pd_weak(ffi.from_buffer(data), n) == py_weak(data), (fill, n)
