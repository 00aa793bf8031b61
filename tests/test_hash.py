"""Tests of pydelta's BLAKE3 (csrc/blake3.c) through its Python surface.

``pydelta.blake3`` is a hashlib-shaped hasher with an extendable output and
``pydelta.blake3_digest`` is the one-shot form. Most tests compare against
the ``blake3`` package from PyPI (imported as the oracle ``_ref``); the
known-answer tests hold digests of the official test-vector inputs and run
without it. Everything is deterministic: random data comes from seeded RNGs.

The C core picks its BLAKE3 implementation (portable, SSE4.1, AVX2 or
AVX-512) once per process, so the tests at the end run one subprocess per
implementation with ``PYDELTA_BLAKE3_SIMD`` set to force it.
"""

import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import pytest

import pydelta

# Lengths of the inputs in the official BLAKE3 test vectors: byte i of the
# input is i % 251. They cover one block, one chunk, and trees of 2..100
# chunks with and without a partial last chunk.
VECTOR_LENGTHS = [
    0,
    1,
    1023,
    1024,
    1025,
    2048,
    2049,
    3072,
    3073,
    4096,
    4097,
    5120,
    5121,
    6144,
    6145,
    7168,
    7169,
    8192,
    8193,
    16384,
    31744,
    102400,
]

# The first 32 bytes of the hash of each vector input (from the spec's
# test vectors; the default digest length).
KNOWN_32 = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1023: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    2048: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    2049: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
    3072: "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
    3073: "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
    4096: "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
    4097: "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
    5120: "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833",
    5121: "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
    6144: "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205",
    6145: "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f",
    7168: "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a",
    7169: "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817",
    8192: "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63",
    8193: "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b",
    16384: "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4",
    31744: "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
    102400: "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
}

# Full 131-byte extended outputs of two vector inputs (three root output
# blocks, so the output block counter is exercised).
KNOWN_131 = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    "e00f03e7b69af26b7faaf09fcd333050338ddfe085b8cc869ca98b206c08243a"
    "26f5487789e8f660afe6c99ef9e0c52b92e7393024a80459cf91f476f9ffdbda"
    "7001c22e159b402631f277ca96f2defdf1078282314e763699a31c5363165421"
    "cce14d",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"
    "f4c4a22b4b399155358a994e52bf255de60035742ec71bd08ac275a1b51cc6bf"
    "e332b0ef84b409108cda080e6269ed4b3e2c3f7d722aa4cdc98d16deb554e562"
    "7be8f955c98e1d5f9565a9194cad0c4285f93700062d9595adb992ae68ff1280"
    "0ab67a",
}

# Output lengths around the 32-byte default and the 64-byte output blocks.
XOF_LENGTHS = [1, 16, 31, 32, 33, 63, 64, 65, 127, 128, 129, 131, 1000]


def vector_input(n):
    return bytes(i % 251 for i in range(n))


@pytest.fixture(scope="module")
def ref():
    """The reference implementation's hasher class (PyPI ``blake3``)."""
    oracle = pytest.importorskip("blake3")
    return oracle.blake3


def ref_digest(ref, data, length=32):
    return ref(data).digest(length=length)


# ---- known answers (no oracle needed) ------------------------------------


@pytest.mark.parametrize("n", VECTOR_LENGTHS)
def test_known_vectors(n):
    data = vector_input(n)
    want = KNOWN_32[n]
    assert pydelta.blake3_digest(data).hex() == want
    assert pydelta.blake3(data).hexdigest() == want
    h = pydelta.blake3()
    h.update(data)
    assert h.hexdigest() == want


@pytest.mark.parametrize("n", sorted(KNOWN_131))
def test_known_xof_vectors(n):
    data = vector_input(n)
    assert pydelta.blake3_digest(data, 131).hex() == KNOWN_131[n]
    assert pydelta.blake3(data).hexdigest(131) == KNOWN_131[n]


def test_default_and_keyword_length():
    data = b"abc"
    want = "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    h = pydelta.blake3(data)
    assert h.digest() == bytes.fromhex(want)
    assert h.digest(length=32) == bytes.fromhex(want)
    assert h.hexdigest(length=32) == want
    assert pydelta.blake3_digest(data, length=32).hex() == want
    assert len(h.digest(length=5)) == 5
    assert len(pydelta.blake3_digest(data, length=200)) == 200


# ---- against the oracle --------------------------------------------------


@pytest.mark.parametrize("n", VECTOR_LENGTHS)
def test_vector_inputs_xof(ref, n):
    data = vector_input(n)
    full = ref_digest(ref, data, max(XOF_LENGTHS))
    h = pydelta.blake3(data)
    for length in XOF_LENGTHS:
        assert h.digest(length) == full[:length], length
        assert pydelta.blake3_digest(data, length) == full[:length], length
        assert h.hexdigest(length) == full[:length].hex(), length


def test_every_length(ref):
    """Every input length from 0 to 3000 (one-shot and incremental), which
    crosses every block and chunk boundary of the first three chunks."""
    rng = random.Random(0xB1A4E3)
    src = rng.randbytes(3000)
    for n in range(3001):
        data = src[:n]
        want = ref_digest(ref, data)
        assert pydelta.blake3_digest(data) == want, n
        h = pydelta.blake3()
        h.update(data[: n // 2])
        h.update(data[n // 2 :])
        assert h.digest() == want, n


def test_long_xof_prefixes(ref):
    """Longer outputs extend shorter ones; many root output blocks."""
    data = random.Random(7).randbytes(5000)
    want = ref_digest(ref, data, 10000)
    h = pydelta.blake3(data)
    assert h.digest(10000) == want
    for length in (1, 64, 65, 4096, 4097, 9999):
        assert h.digest(length) == want[:length]


def split_updates(h, data, rng, mode):
    """Feed data to h in pieces chosen by mode; return the pieces' ends."""
    pos = 0
    ends = []
    while pos < len(data):
        if mode == "bytes":
            k = 1
        elif mode == "small":
            k = rng.randrange(0, 200)
        elif mode == "edges":
            k = rng.choice([0, 1, 63, 64, 65, 1023, 1024, 1025, 4096, 17000])
        else:
            k = rng.randrange(0, len(data) - pos + 1)
        h.update(data[pos : pos + k])
        pos += k
        ends.append(pos)
    return ends


@pytest.mark.parametrize("mode", ["bytes", "small", "edges", "any"])
def test_random_splits(ref, mode):
    rng = random.Random(f"splits-{mode}")
    sizes = [0, 1, 64, 1024, 1025, 2048, 3000, 4097]
    if mode != "bytes":
        sizes += [rng.randrange(5000, 70000) for _ in range(4)]
        sizes += [rng.randrange(100000, 300000)]
    for n in sizes:
        data = rng.randbytes(n)
        h = pydelta.blake3()
        split_updates(h, data, rng, mode)
        assert h.digest(65) == ref_digest(ref, data, 65), n


def test_digest_between_updates(ref):
    """Asking for a digest midway does not disturb the running state."""
    rng = random.Random(99)
    data = rng.randbytes(40000)
    h = pydelta.blake3()
    pos = 0
    while pos < len(data):
        k = rng.choice([1, 7, 64, 1000, 1024, 3000])
        h.update(data[pos : pos + k])
        pos = min(pos + k, len(data))
        assert h.digest() == ref_digest(ref, data[:pos]), pos
    assert h.digest(100) == ref_digest(ref, data, 100)


def test_digest_does_not_change_state(ref):
    data = random.Random(3).randbytes(5000)
    h = pydelta.blake3(data[:2500])
    first = h.digest()
    assert h.digest() == first
    assert h.digest(300)[:32] == first
    assert h.hexdigest() == first.hex()
    h.update(data[2500:])
    assert h.digest() == ref_digest(ref, data)
    assert first == ref_digest(ref, data[:2500])


def test_copy_independence(ref):
    data = random.Random(4).randbytes(9000)
    a = pydelta.blake3(data[:3000])
    b = a.copy()
    assert b.digest() == a.digest()
    a.update(data[3000:6000])
    assert b.digest() == ref_digest(ref, data[:3000])
    b.update(b"different tail")
    assert a.digest() == ref_digest(ref, data[:6000])
    assert b.digest() == ref_digest(ref, data[:3000] + b"different tail")
    c = a.copy()
    a.update(data[6000:])
    c.update(data[6000:])
    assert a.digest(77) == c.digest(77) == ref_digest(ref, data, 77)


def test_copy_mid_block_and_chunk(ref):
    """Copies taken with a partial block, a full buffered block and a full
    chunk pending all continue correctly."""
    data = random.Random(5).randbytes(6000)
    for cut in (1, 63, 64, 65, 1023, 1024, 1025, 2048, 4097):
        h = pydelta.blake3(data[:cut])
        c = h.copy()
        c.update(data[cut:])
        assert c.digest() == ref_digest(ref, data), cut
        assert h.digest() == ref_digest(ref, data[:cut]), cut


def test_bytes_like_inputs(ref):
    data = random.Random(6).randbytes(5000)
    want = ref_digest(ref, data)
    assert pydelta.blake3(bytearray(data)).digest() == want
    assert pydelta.blake3_digest(memoryview(data)) == want
    h = pydelta.blake3()
    h.update(bytearray(data[:1000]))
    h.update(memoryview(data)[1000:])
    assert h.digest() == want


def test_large_input(ref):
    """8 MiB: a tree of 8192 chunks, one-shot and in odd-sized pieces."""
    data = random.Random(8).randbytes(8 << 20)
    want = ref_digest(ref, data, 1000)
    assert pydelta.blake3_digest(data, 1000) == want
    h = pydelta.blake3()
    view = memoryview(data)
    step = (1 << 20) + 12345
    for pos in range(0, len(data), step):
        h.update(view[pos : pos + step])
    assert h.digest(1000) == want
    # One byte less and one more change the tree shape at the right edge.
    assert pydelta.blake3_digest(data[:-1]) == ref_digest(ref, data[:-1])
    assert pydelta.blake3_digest(data + b"\x00") == ref_digest(ref, data + b"\x00")


# ---- every SIMD implementation, one subprocess each ----------------------

REPO = Path(__file__).resolve().parents[1]

# In order of preference: a request for one the CPU lacks gets the best
# supported one below it.
SIMD_PATHS = ["portable", "sse41", "avx2", "avx512"]


def best_simd_path():
    """The best implementation this machine should get, judged from the
    CPU flags; None where that cannot be told (x86 without /proc/cpuinfo)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"):
        return "portable"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next(
                (line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), None
            )
    except OSError:
        flags = None
    if flags is None:
        return None
    best = "portable"
    if "sse4_1" in flags:
        best = "sse41"
        if "avx2" in flags:
            best = "avx2"
            if "avx512f" in flags:
                best = "avx512"
    return best


def expected_simd_path(requested):
    """What pd_blake3_impl() should report for PYDELTA_BLAKE3_SIMD set to
    requested (None: unset), or None if unknown."""
    best = best_simd_path()
    if best is None:
        return None
    if requested not in SIMD_PATHS:
        return best
    return SIMD_PATHS[min(SIMD_PATHS.index(requested), SIMD_PATHS.index(best))]


# Runs in the subprocess: print the implementation in use, then (given a
# seed) check it against the oracle; any mismatch fails an assert.
SIMD_CHILD = r"""
import random, sys
import blake3
import pydelta
from pydelta._core import ffi, lib

print(ffi.string(lib.pd_blake3_impl()).decode(), flush=True)
if len(sys.argv) < 2:
    sys.exit(0)

ref = blake3.blake3
rng = random.Random(sys.argv[1])
src = rng.randbytes(600_000)
view = memoryview(src)

# Every length up to 5000, and each side of every chunk multiple up to
# 40 chunks, one-shot and split in two at a random point.
lengths = set(range(5001))
for k in range(1, 41):
    lengths |= {1024 * k - 1, 1024 * k, 1024 * k + 1}
for n in sorted(lengths):
    data = src[:n]
    want = ref(data).digest()
    assert pydelta.blake3_digest(data) == want, ("one-shot", n)
    cut = rng.randrange(n + 1)
    h = pydelta.blake3(data[:cut])
    h.update(data[cut:])
    assert h.digest() == want, ("split", n, cut)

# Power-of-two numbers of chunks (the tree's subtree sizes, past the
# 128-chunk batches) and one byte either side, at unaligned addresses.
for j in range(10):
    for n in ((1024 << j) - 1, 1024 << j, (1024 << j) + 1):
        for off in (0, 1, 7):
            data = view[off:off + n]
            assert (pydelta.blake3_digest(data, 65)
                    == ref(data).digest(length=65)), ("subtree", n, off)

# Large random inputs, one-shot and in uneven pieces.
for n in (rng.randrange(1 << 20, 3 << 20), (4 << 20) + rng.randrange(2048)):
    data = rng.randbytes(n)
    want = ref(data).digest(length=100)
    assert pydelta.blake3_digest(data, 100) == want, ("large", n)
    h = pydelta.blake3()
    pos = 0
    while pos < n:
        k = rng.choice([1000, 65536, 131072 + 5, 1 << 20, rng.randrange(1, 1 << 21)])
        h.update(memoryview(data)[pos:pos + k])
        pos += k
    assert h.digest(100) == want, ("large pieces", n)

# Random incremental splits, with digests taken along the way.
sizes = [0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4096, 16384, 131072]
for trial in range(60):
    n = rng.choice([rng.randrange(300_000), 1024 * rng.randrange(1, 300)])
    data = src[:n]
    h = pydelta.blake3()
    pos = 0
    while pos < n:
        k = rng.choice(sizes + [rng.randrange(70_000)])
        h.update(data[pos:pos + k])
        pos = min(pos + k, n)
        if rng.random() < 0.2:
            assert h.digest() == ref(data[:pos]).digest(), ("midway", n, pos)
    assert h.digest(65) == ref(data).digest(length=65), ("splits", n)
"""


def run_simd_child(requested, seed=None):
    """Run SIMD_CHILD with PYDELTA_BLAKE3_SIMD=requested (None: unset);
    return the implementation it reported."""
    env = dict(os.environ)
    env.pop("PYDELTA_BLAKE3_SIMD", None)
    if requested is not None:
        env["PYDELTA_BLAKE3_SIMD"] = requested
    env["PYDELTA_BACKEND"] = "c"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    args = [sys.executable, "-c", SIMD_CHILD]
    if seed is not None:
        args.append(seed)
    proc = subprocess.run(args, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def check_reported(requested, got):
    want = expected_simd_path(requested)
    if want is not None:
        assert got == want, (requested, got)
    else:
        assert got in SIMD_PATHS
        if requested in SIMD_PATHS:
            assert SIMD_PATHS.index(got) <= SIMD_PATHS.index(requested)


@pytest.mark.parametrize("path", SIMD_PATHS)
def test_simd_path_matches_oracle(ref, path):
    """Each implementation the CPU has, forced, hashes every input exactly
    like the oracle; one it lacks falls back (and is checked all the same)."""
    got = run_simd_child(path, seed=f"simd-{path}")
    check_reported(path, got)


@pytest.mark.parametrize("requested", [None, "", "bogus", "AVX2"])
def test_simd_default_choice(requested):
    """Unset or unknown values (names are lower-case) get the best one."""
    got = run_simd_child(requested)
    check_reported(requested, got)
    if expected_simd_path(None) is not None:
        assert got == expected_simd_path(None)
