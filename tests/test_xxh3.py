"""XXH3-128, the per-block strong sum of signatures with strong hash id 2.

Both kernels (csrc/xxh3.c and backends/numba/xxh3.py) against the ``xxhash``
package (a test dependency only) at every length of the specification's
paths (0-16, 17-128, 129-240, longer: stripes, 1 KiB blocks, the last
stripe), the C kernel's baseline build too; then the signature entries,
tables and deltas made with them, identical on both backends.
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys

import pytest
from test_backends_agree import BACKENDS, C, N, run_delta

import pydelta
from pydelta.formats import native as fmt

xxhash = pytest.importorskip("xxhash")

LONG = [4095, 4096, 4097, 65_536, 100_003, (1 << 20) + 7, 3 << 20]


def ref(data: bytes) -> bytes:
    return xxhash.xxh3_128(data).digest()


@pytest.mark.parametrize("mod", BACKENDS, ids=lambda m: m.NAME)
def test_every_length_to_2048(mod):
    data = random.Random(1).randbytes(2048)
    for n in range(2049):
        assert mod.xxh3_128(data[:n]) == ref(data[:n]), n


@pytest.mark.parametrize("mod", BACKENDS, ids=lambda m: m.NAME)
def test_long_and_patterned_inputs(mod):
    for n in LONG:
        data = random.Random(n).randbytes(n)
        assert mod.xxh3_128(data) == ref(data), n
    for n in (0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65_536):
        for fill in (b"\x00", b"\xff", b"\x80"):
            assert mod.xxh3_128(fill * n) == ref(fill * n), (n, fill)
    # a buffer that is not bytes, and one not starting on an 8-byte boundary
    raw = bytearray(random.Random(2).randbytes(5000))
    assert mod.xxh3_128(memoryview(raw)[3:4003]) == ref(bytes(raw[3:4003]))


def test_random_lengths_both_backends_agree():
    rng = random.Random(3)
    for _ in range(200):
        n = rng.choice([rng.randrange(0, 300), rng.randrange(0, 40_000)])
        data = rng.randbytes(n)
        assert C.xxh3_128(data) == N.xxh3_128(data) == ref(data), n


def test_c_baseline_build_without_avx2():
    """The stripe loop's baseline build (what a CPU without AVX2 runs)."""
    lengths = list(range(230, 1300, 7)) + LONG
    script = (
        "import random, sys, xxhash\n"
        "from pydelta.backends import c\n"
        f"for n in {lengths!r}:\n"
        "    d = random.Random(n).randbytes(n)\n"
        "    if c.xxh3_128(d) != xxhash.xxh3_128(d).digest():\n"
        "        sys.exit(f'differs at {n}')\n"
    )
    env = dict(os.environ, PYDELTA_XXH3_SIMD="portable")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize("mod", BACKENDS, ids=lambda m: m.NAME)
@pytest.mark.parametrize("bl,slen", [(1, 8), (17, 16), (240, 12), (241, 16), (4096, 8), (3001, 16)])
def test_sig_blocks_hold_truncated_xxh3(mod, bl, slen):
    data = random.Random(bl).randbytes(5 * bl + bl // 2 + 1)
    got = mod.sig_blocks(data, len(data), bl, slen, mod.STRONG_XXH3)
    entry = 8 + slen
    blocks = [data[i : i + bl] for i in range(0, len(data), bl)]
    assert len(got) == len(blocks) * entry
    for k, blk in enumerate(blocks):
        e = got[k * entry : (k + 1) * entry]
        assert int.from_bytes(e[:8], "little") == mod.weak(blk)
        assert e[8:] == ref(blk)[:slen], k


@pytest.mark.parametrize("mod", BACKENDS, ids=lambda m: m.NAME)
def test_bad_kinds_and_lengths_rejected(mod):
    for kind, slen in ((mod.STRONG_XXH3, 17), (mod.STRONG_XXH3, 7), (3, 16), (0, 16)):
        assert mod.sig_blocks(b"abc", 3, 1, slen, kind) == b""
        t = mod.SigTable(bytes(8 + slen), 1, 64, slen, 64, kind)
        assert t.error == mod.ERR_PARAM
    # BLAKE3 keeps 8..32
    assert len(mod.sig_blocks(b"abc", 3, 1, 32, mod.STRONG_BLAKE3)) == 3 * 40


@pytest.mark.parametrize("bl", [64, 1000, 4096])
def test_tables_and_deltas_agree(tmp_path, bl):
    """An XXH3 signature's table and the delta against it: the same bytes on
    both backends, matching where BLAKE3's would, and patching back to NEW."""
    rng = random.Random(bl)
    old = rng.randbytes(40 * bl + 5)
    new = bytearray(old[bl:])
    new[3 * bl : 3 * bl + 10] = rng.randbytes(10)
    new = bytes(new) + old[: 7 * bl + 5] + rng.randbytes(333)
    deltas = {}
    for kind in (C.STRONG_BLAKE3, C.STRONG_XXH3):
        for mod in BACKENDS:
            entries = mod.sig_blocks(old, len(old), bl, 16, kind)
            t = mod.SigTable(entries, len(entries) // 24, bl, 16, len(old), kind)
            assert t.error == 0
            for k in (0, 5, 39):
                assert t.find(old[k * bl : (k + 1) * bl]) == k
            # a table of one kind never matches by the other kind's sums
            other = mod.SigTable(entries, len(entries) // 24, bl, 16, len(old), 3 - kind)
            assert other.find(old[:bl]) is None
            deltas[kind, mod.NAME] = run_delta(mod, t, new, "rand", seed=bl)[0]
    first = deltas[C.STRONG_BLAKE3, "c"]
    assert all(d == first for d in deltas.values())


def test_pydelta_roundtrip_with_xxh3_signature(tmp_path):
    rng = random.Random(9)
    old = rng.randbytes(300_000)
    new = old[:100_000] + rng.randbytes(5000) + old[100_000:]
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(tmp_path / "old", block_size=2048)
    assert sig[6] == fmt.STRONG_XXH3
    assert pydelta.load_signature(sig).info.strong_hash == "xxh3"
    d = pydelta.delta(sig, io.BytesIO(new))
    pydelta.patch(tmp_path / "old", io.BytesIO(d), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == new
    # the same delta as from a BLAKE3 signature of OLD (the ops do not
    # depend on the strong sum), but for the header's signature digest
    sig_b = pydelta.signature(tmp_path / "old", block_size=2048, strong_hash="blake3")
    d_b = pydelta.delta(sig_b, io.BytesIO(new))
    head = fmt.DELTA_HEADER.size
    assert d[head:] == d_b[head:]
