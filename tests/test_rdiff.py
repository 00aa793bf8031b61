"""librsync (rdiff) interop, checked against the real ``rdiff`` binary.

Every edge case of the core round trips goes through all directions:

* rdiff signature -> pydelta delta -> rdiff patch (and pydelta patch);
* pydelta signature --format rdiff -> rdiff delta -> pydelta patch;
* rdiff signature -> rdiff delta -> pydelta patch;
* pydelta's rdiff signature is byte-identical to rdiff's for the same
  -b/-S/-H/-R options.

Deltas are also decoded by an independent parser here and replayed in pure
Python. Corrupt and truncated librsync inputs must give the same kind of
typed, one-line errors as native ones, and never crash or read outside OLD.
Tests that need ``rdiff`` skip with a reason when it is not installed, and
fail instead under PYDELTA_REQUIRE_TOOLS=1 (``.ci/run`` installs it and sets
that).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import TinyReader, rand_bytes, tmp_leftovers

import pydelta
from pydelta.formats import rdiff as prd

RDIFF = shutil.which("rdiff")
needs_rdiff = pytest.mark.skipif(
    RDIFF is None,
    reason="the rdiff binary (librsync) is not installed: apt-get install rdiff "
    "(.ci/run installs it)",
)

REPO = Path(__file__).resolve().parent.parent
DELTA_MAGIC = b"rs\x026"
KINDS = [("rabinkarp", "blake2"), ("rollsum", "blake2"), ("rabinkarp", "md4"), ("rollsum", "md4")]
LIT_MAX = 262144  # PD_RS_LIT_MAX, the longest literal the writer emits


# ---------------------------------------------------------------- helpers


def run_rdiff(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RDIFF, "-f", *[str(a) for a in args]], check=True, capture_output=True, timeout=120
    )


def rdiff_opts(weak="rabinkarp", strong="blake2", block=None, slen=None) -> list:
    opts = ["-R", weak, "-H", strong]
    if block is not None:
        opts += ["-b", str(block)]
    if slen is not None:
        opts += ["-S", str(slen)]
    return opts


def parse_rs_delta(data: bytes) -> list:
    """Decode a librsync delta completely: [('C', off, len) | ('L', bytes)]."""
    assert data[:4] == DELTA_MAGIC
    pos, ops = 4, []
    widths = [1, 2, 4, 8]
    while True:
        op = data[pos]
        pos += 1
        if op == 0:
            break
        if op <= 0x40:
            n = op
        elif op <= 0x44:
            w = widths[op - 0x41]
            n = int.from_bytes(data[pos : pos + w], "big")
            pos += w
        elif op <= 0x54:
            k = op - 0x45
            wo, wl = widths[k // 4], widths[k % 4]
            off = int.from_bytes(data[pos : pos + wo], "big")
            n = int.from_bytes(data[pos + wo : pos + wo + wl], "big")
            pos += wo + wl
            ops.append(("C", off, n))
            continue
        else:  # pragma: no cover - a writer bug
            raise AssertionError(f"reserved opcode {op:#x}")
        ops.append(("L", data[pos : pos + n]))
        assert len(ops[-1][1]) == n
        pos += n
    assert pos == len(data), "bytes after END"
    return ops


def apply_rs(old: bytes, ops: list) -> bytes:
    out = bytearray()
    for op in ops:
        if op[0] == "C":
            assert op[1] + op[2] <= len(old)
            out += old[op[1] : op[1] + op[2]]
        else:
            out += op[1]
    return bytes(out)


def width_of(v: int) -> int:
    return 0 if v < 1 << 8 else 1 if v < 1 << 16 else 2 if v < 1 << 32 else 3


def enc_literal(data: bytes, w=None) -> bytes:
    """A LITERAL command; w (0..3) forces the u8..u64 length form."""
    if w is None:
        if 0 < len(data) <= 64:
            return bytes([len(data)]) + data
        w = width_of(len(data))
    return bytes([0x41 + w]) + len(data).to_bytes(1 << w, "big") + data


def enc_copy(off: int, n: int, wo=None, wl=None) -> bytes:
    wo = width_of(off) if wo is None else wo
    wl = width_of(n) if wl is None else wl
    return bytes([0x45 + 4 * wo + wl]) + off.to_bytes(1 << wo, "big") + n.to_bytes(1 << wl, "big")


def check_writer_encoding(ops_bytes: bytes) -> None:
    """What librsync's writer does: smallest widths, one-byte literal opcodes up to 64."""
    pos = 4
    while ops_bytes[pos] != 0:
        op = ops_bytes[pos]
        if op <= 0x40:
            pos += 1 + op
        elif op <= 0x44:
            w = 1 << (op - 0x41)
            n = int.from_bytes(ops_bytes[pos + 1 : pos + 1 + w], "big")
            assert n > 64 and width_of(n) == op - 0x41 and op != 0x44
            pos += 1 + w + n
        else:
            k = op - 0x45
            wo, wl = 1 << (k // 4), 1 << (k % 4)
            off = int.from_bytes(ops_bytes[pos + 1 : pos + 1 + wo], "big")
            n = int.from_bytes(ops_bytes[pos + 1 + wo : pos + 1 + wo + wl], "big")
            assert width_of(off) == k // 4 and width_of(n) == k % 4 and n > 0
            pos += 1 + wo + wl


def py_patch(old_p, delta_p, out_p) -> pydelta.PatchResult:
    """pydelta.patch, asserting it warns that an rdiff result is unverified."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pydelta.patch(old_p, delta_p, out_p)
    assert result.verified is False
    assert [w.category for w in caught] == [pydelta.UnverifiedWarning]
    assert "no checksum" in str(caught[0].message)
    return result


# ---------------------------------------------------------------- the edge cases


def _edit_cases() -> dict:
    r = rand_bytes
    bs = 64
    base = r(40 * bs + 21, 100)  # not a multiple of the block: a short last block
    mid = 17 * bs + bs // 2
    small = r(50, 101)
    zeros = bytearray(300_000)
    zeros[123_457] = 1
    pattern = r(3 * bs, 102)
    repeated = pattern * 30 + r(10, 103) + pattern * 5
    big = r(20_000, 104)
    odd = r(9_000, 105)
    odd_new = odd[:3000] + b"inserted!" + odd[3000:7000] + odd[7100:]
    return {
        "both-empty": (b"", b"", 64),
        "empty-old": (b"", r(5000, 106), 64),
        "empty-new": (r(5000, 107), b"", 64),
        "one-byte-same": (b"a", b"a", 64),
        "one-byte-changed": (b"a", b"b", 1),
        "one-byte-from-empty": (b"", b"x", 1),
        "one-byte-to-empty": (b"x", b"", 1),
        "smaller-than-block-same": (small, small, 64),
        "smaller-than-block-appended": (small, small + r(30, 108), 64),
        "smaller-than-block-changed": (small, small[:10] + b"!" + small[11:], 64),
        "identical": (big, big, 1000),
        "identical-default-block": (r(300_000, 109), None, None),
        "all-different": (r(200_000, 110), r(150_000, 111), 1000),
        "insert-start": (base, r(5, 112) + base, bs),
        "insert-middle": (base, base[:mid] + r(3 * bs + 1, 113) + base[mid:], bs),
        "insert-end": (base, base + r(2 * bs + 3, 114), bs),
        "delete-start-aligned": (base, base[3 * bs :], bs),
        "delete-start": (base, base[3 * bs + 2 :], bs),
        "delete-middle": (base, base[: 10 * bs + 3] + base[20 * bs + 5 :], bs),
        "delete-end": (base, base[:-1], bs),
        "truncate-to-block": (base, base[: 30 * bs], bs),
        "shift-by-one": (base, b"\x00" + base, bs),
        "drop-first-byte": (base, base[1:], bs),
        "replace-one-byte": (base, base[: 13 * bs + 1] + b"\xff" + base[13 * bs + 2 :], bs),
        "repeated-blocks": (repeated, pattern * 10 + repeated + pattern, bs),
        "zeros-one-change": (bytes(300_000), bytes(zeros), 1000),
        "long-literal": (r(1000, 115), r(2 * LIT_MAX + 777, 116), 64),
        "odd-block-1": (odd[:2000], odd[:700] + b"xy" + odd[700:1500] + odd[1600:2000], 1),
        "odd-block-3": (odd, odd_new, 3),
        "odd-block-7": (odd, odd_new, 7),
        "odd-block-4095": (odd * 3, odd_new * 3, 4095),
        "odd-block-65537": (
            r(200_000, 117),
            r(200_000, 117)[:100_000] + b"!" + r(200_000, 117)[100_000:],
            65537,
        ),
    }


CASES = _edit_cases()
CASES = {k: (o, o if n is None else n, b) for k, (o, n, b) in CASES.items()}
#: A subset run with all four signature magics.
KIND_CASES = [
    "smaller-than-block-appended",
    "insert-middle",
    "insert-end",
    "delete-end",
    "shift-by-one",
    "zeros-one-change",
    "odd-block-7",
]


def _files(tmp_path: Path, case: str) -> tuple:
    old, new, bs = CASES[case]
    old_p, new_p = tmp_path / "old.bin", tmp_path / "new.bin"
    old_p.write_bytes(old)
    new_p.write_bytes(new)
    return old, new, bs, old_p, new_p


# ---------------------------------------------------------------- all directions


@needs_rdiff
@pytest.mark.parametrize("case", list(CASES))
def test_rdiff_signature_pydelta_delta_rdiff_patch(tmp_path, case):
    old, new, bs, old_p, new_p = _files(tmp_path, case)
    sig, dlt = tmp_path / "old.sig", tmp_path / "new.delta"
    run_rdiff(*rdiff_opts(block=bs), "signature", old_p, sig)
    stats = pydelta.delta(sig, new_p, dlt)
    data = dlt.read_bytes()
    ops = parse_rs_delta(data)
    check_writer_encoding(data)
    assert apply_rs(old, ops) == new
    assert stats.new_size == len(new)
    assert stats.copied + stats.literal == len(new)
    assert stats.copied == sum(op[2] for op in ops if op[0] == "C")
    assert stats.delta_size == len(data)
    # adjacent copies are merged; literals never exceed the writer's limit
    for a, b in zip(ops, ops[1:]):
        assert not (a[0] == b[0] == "C" and a[1] + a[2] == b[1])
    assert all(0 < len(op[1]) <= LIT_MAX for op in ops if op[0] == "L")
    # rdiff applies it
    run_rdiff("patch", old_p, dlt, tmp_path / "out.rdiff")
    assert (tmp_path / "out.rdiff").read_bytes() == new
    # and so does pydelta
    result = py_patch(old_p, dlt, tmp_path / "out.py")
    assert (tmp_path / "out.py").read_bytes() == new
    assert result.size == len(new) and result.digest == pydelta.blake3_digest(new)
    assert not tmp_leftovers(tmp_path)


@needs_rdiff
@pytest.mark.parametrize("case", list(CASES))
def test_pydelta_signature_rdiff_delta_pydelta_patch(tmp_path, case):
    old, new, bs, old_p, new_p = _files(tmp_path, case)
    sig, dlt = tmp_path / "old.sig", tmp_path / "new.delta"
    info = pydelta.signature(old_p, sig, format="rdiff", block_size=bs)
    assert info.basis_size == len(old) and info.block_count == -(-len(old) // info.block_len)
    run_rdiff("delta", sig, new_p, dlt)
    py_patch(old_p, dlt, tmp_path / "out.py")
    assert (tmp_path / "out.py").read_bytes() == new


@needs_rdiff
@pytest.mark.parametrize("case", list(CASES))
def test_rdiff_signature_rdiff_delta_pydelta_patch(tmp_path, case):
    old, new, bs, old_p, new_p = _files(tmp_path, case)
    sig, dlt = tmp_path / "old.sig", tmp_path / "new.delta"
    run_rdiff(*rdiff_opts(block=bs), "signature", old_p, sig)
    run_rdiff("delta", sig, new_p, dlt)
    out = tmp_path / "out.py"
    out.write_bytes(b"previous content")
    py_patch(old_p, dlt, out)
    assert out.read_bytes() == new
    # pydelta's decoding of rdiff's delta agrees with the independent parser
    st = pydelta.info(dlt).fields
    ops = parse_rs_delta(dlt.read_bytes())
    assert st["result size"] == len(new)
    assert st["copied bytes"] == sum(op[2] for op in ops if op[0] == "C")
    assert st["copy instructions"] == sum(op[0] == "C" for op in ops)
    assert st["literal instructions"] == sum(op[0] == "L" for op in ops)


@needs_rdiff
@pytest.mark.parametrize("case", list(CASES))
def test_signature_identical_to_rdiff(tmp_path, case):
    old, _, bs, old_p, _ = _files(tmp_path, case)
    run_rdiff(*rdiff_opts(block=bs), "signature", old_p, tmp_path / "r.sig")
    assert (
        pydelta.signature(old_p, format="rdiff", block_size=bs) == (tmp_path / "r.sig").read_bytes()
    )


@needs_rdiff
@pytest.mark.parametrize("weak,strong", KINDS)
@pytest.mark.parametrize("slen", [None, 0, -1, 1, 8, 16])
@pytest.mark.parametrize("bs", [None, 1, 7, 300])
def test_signature_identical_all_options(tmp_path, weak, strong, slen, bs):
    old = rand_bytes(70_001, 7) + bytes(3000)  # > 64 KiB: the sqrt rule; repeated blocks
    old_p = tmp_path / "old.bin"
    old_p.write_bytes(old)
    run_rdiff(*rdiff_opts(weak, strong, bs, slen), "signature", old_p, tmp_path / "r.sig")
    ours = pydelta.signature(
        old_p, format="rdiff", block_size=bs, strong_len=slen, rdiff_weak=weak, rdiff_hash=strong
    )
    assert ours == (tmp_path / "r.sig").read_bytes()


@needs_rdiff
@pytest.mark.parametrize("size", [0, 1, 255, 65536, 65537, 1_000_003, 5_000_000])
def test_default_parameters_follow_rdiff(tmp_path, size):
    """Block length and -S -1 minimum by librsync's rules, for many sizes."""
    old_p = tmp_path / "old.bin"
    old_p.write_bytes(rand_bytes(size, size))
    for slen in (None, -1):
        run_rdiff(*rdiff_opts(slen=slen), "signature", old_p, tmp_path / "r.sig")
        want = (tmp_path / "r.sig").read_bytes()
        assert pydelta.signature(old_p, format="rdiff", strong_len=slen) == want
        assert prd.default_block_len(size) == struct.unpack(">I", want[4:8])[0]


@needs_rdiff
def test_signature_from_a_pipe_like_rdiff(tmp_path):
    """Unknown size (standard input): rdiff uses 2048-byte blocks and a 12-byte minimum."""
    data = rand_bytes(100_000, 8)
    (tmp_path / "old.bin").write_bytes(data)
    for slen, want_slen in (([], 32), (["-S", "-1"], 12)):
        want = subprocess.run(
            [RDIFF, *slen, "signature", "-", "-"], input=data, capture_output=True, check=True
        ).stdout
        p = subprocess.run(
            [sys.executable, "-m", "pydelta", "signature", "--format", "rdiff", *slen, "-", "-"],
            input=data,
            capture_output=True,
            check=True,
            env=_env(),
        )
        assert p.stdout == want
        assert struct.unpack(">II", want[4:12]) == (2048, want_slen)


@needs_rdiff
@pytest.mark.parametrize("weak,strong", KINDS)
@pytest.mark.parametrize("case", KIND_CASES)
def test_all_magics_all_directions(tmp_path, weak, strong, case):
    old, new, bs, old_p, new_p = _files(tmp_path, case)
    opts = rdiff_opts(weak, strong, bs, -1)
    run_rdiff(*opts, "signature", old_p, tmp_path / "r.sig")
    ours = pydelta.signature(
        old_p, format="rdiff", block_size=bs, strong_len=-1, rdiff_weak=weak, rdiff_hash=strong
    )
    assert ours == (tmp_path / "r.sig").read_bytes()
    # pydelta delta from rdiff's signature, applied by rdiff and pydelta
    pydelta.delta(tmp_path / "r.sig", new_p, tmp_path / "p.delta")
    run_rdiff("patch", old_p, tmp_path / "p.delta", tmp_path / "out1")
    assert (tmp_path / "out1").read_bytes() == new
    py_patch(old_p, tmp_path / "p.delta", tmp_path / "out2")
    assert (tmp_path / "out2").read_bytes() == new
    # rdiff delta, applied by pydelta
    run_rdiff("delta", tmp_path / "r.sig", new_p, tmp_path / "r.delta")
    py_patch(old_p, tmp_path / "r.delta", tmp_path / "out3")
    assert (tmp_path / "out3").read_bytes() == new


# ---------------------------------------------------------------- the deltas themselves


def _delta_ops(tmp_path, old, new, bs, weak="rabinkarp", strong="blake2") -> list:
    old_p = tmp_path / "o.bin"
    old_p.write_bytes(old)
    sig = pydelta.signature(
        old_p, format="rdiff", block_size=bs, rdiff_weak=weak, rdiff_hash=strong
    )
    data = pydelta.delta(sig, io.BytesIO(new))
    assert apply_rs(old, parse_rs_delta(data)) == new
    return parse_rs_delta(data)


@pytest.mark.parametrize("weak,strong", KINDS)
def test_delta_is_minimal_on_simple_edits(tmp_path, weak, strong):
    old, _, bs = CASES["insert-start"]
    n = len(old)
    ins = rand_bytes(5, 112)
    d = lambda new: _delta_ops(tmp_path, old, new, bs, weak, strong)
    assert d(old) == [("C", 0, n)]  # identical, short last block included
    assert d(ins + old) == [("L", ins), ("C", 0, n)]
    assert d(old + ins) == [("C", 0, n), ("L", ins)]  # the short last block as a prefix
    assert d(old[3 * bs :]) == [("C", 3 * bs, n - 3 * bs)]
    # the last block found again at the end of NEW after a literal (as a suffix)
    tail = old[n - n % bs :]
    assert d(ins + tail) == [("L", ins), ("C", n - n % bs, len(tail))]
    cut = old[: n - n % bs - 2 * bs]
    assert d(cut) == [("C", 0, len(cut))]


def test_delta_no_bigger_than_rdiffs(tmp_path):
    """Our literal bytes never exceed rdiff's own by more than a block."""
    if RDIFF is None:
        pytest.skip("the rdiff binary (librsync) is not installed: apt-get install rdiff")
    for case in (
        "insert-middle",
        "delete-middle",
        "shift-by-one",
        "repeated-blocks",
        "zeros-one-change",
        "odd-block-7",
        "delete-end",
    ):
        old, new, bs, old_p, new_p = _files(tmp_path, case)
        run_rdiff("-b", bs, "signature", old_p, tmp_path / "r.sig")
        run_rdiff("delta", tmp_path / "r.sig", new_p, tmp_path / "r.delta")
        theirs = sum(
            len(op[1]) for op in parse_rs_delta((tmp_path / "r.delta").read_bytes()) if op[0] == "L"
        )
        stats = pydelta.delta(tmp_path / "r.sig", new_p, tmp_path / "p.delta")
        assert stats.literal <= theirs + bs, case


@pytest.mark.parametrize(
    "case", ["insert-middle", "repeated-blocks", "odd-block-3", "long-literal", "delete-end"]
)
@pytest.mark.parametrize("k", [1, 7, 4096])
def test_delta_independent_of_input_chunking(tmp_path, case, k):
    old, new, bs = CASES[case]
    sig = pydelta.signature(io.BytesIO(old), format="rdiff", block_size=bs)
    whole = pydelta.delta(sig, io.BytesIO(new))
    assert pydelta.delta(sig, TinyReader(new, k)) == whole
    assert b"".join(pydelta.iter_delta(sig, TinyReader(new, k))) == whole
    # one thread (in place) and a reader thread (two buffers) agree
    assert pydelta.delta(sig, TinyReader(new, k), threads=1) == whole
    assert pydelta.delta(sig, TinyReader(new, k), threads=2) == whole


def test_signature_independent_of_threads_and_chunking():
    data = rand_bytes(3_000_000, 9)
    one = pydelta.signature(io.BytesIO(data), format="rdiff", block_size=1000, threads=1)
    assert pydelta.signature(io.BytesIO(data), format="rdiff", block_size=1000, threads=3) == one
    assert pydelta.signature(TinyReader(data, 777), format="rdiff", block_size=1000) == one


def test_patcher_push_style_in_tiny_pieces(tmp_path):
    old, new, bs = CASES["insert-middle"]
    (tmp_path / "old").write_bytes(old)
    data = pydelta.delta(
        pydelta.signature(io.BytesIO(old), format="rdiff", block_size=bs), io.BytesIO(new)
    )
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pydelta.UnverifiedWarning)
        with pydelta.Patcher(tmp_path / "old", out) as p:
            for i in range(0, len(data), 3):
                p.write(data[i : i + 3])
    assert out.getvalue() == new and p.result.verified is False


# ---------------------------------------------------------------- a model-like pair


def _model_pair(size: int, seed: int = 5) -> tuple:
    """A safetensors-shaped pair without numpy: 8-byte header length, JSON header,
    float16-like tensor bytes; new has 3% of tensors retrained and a header one
    byte longer (so all data shifts)."""
    rng = random.Random(seed)
    shapes = [4096 * 2, 256 * 1024 * 2, 64 * 1024 * 2, 128 * 1024 * 2]
    tensors, total = [], 0
    while total < size:
        n = rng.choice(shapes)
        tensors.append(n)
        total += n
    changed = set(rng.sample(range(len(tensors)), max(1, len(tensors) * 3 // 100)))

    def build(rev: str, version: int) -> bytes:
        meta, off = {"__metadata__": {"rev": rev}}, 0
        for i, n in enumerate(tensors):
            meta[f"layers.{i}.weight"] = {"dtype": "F16", "data_offsets": [off, off + n]}
            off += n
        head = json.dumps(meta).encode()
        parts = [struct.pack("<Q", len(head)), head]
        for i, n in enumerate(tensors):
            v = version if i in changed else 0
            parts.append(random.Random(seed * 1000 + i * 10 + v).randbytes(n))
        return b"".join(parts)

    return build("a", 0), build("ab", 1)


@needs_rdiff
def test_model_like_pair_all_directions(tmp_path):
    old, new = _model_pair(8 << 20)
    old_p, new_p = tmp_path / "old.bin", tmp_path / "new.bin"
    old_p.write_bytes(old)
    new_p.write_bytes(new)
    # signatures agree byte for byte
    run_rdiff("signature", old_p, tmp_path / "r.sig")
    pydelta.signature(old_p, tmp_path / "p.sig", format="rdiff")
    assert (tmp_path / "p.sig").read_bytes() == (tmp_path / "r.sig").read_bytes()
    # rdiff signature -> pydelta delta -> rdiff patch
    stats = pydelta.delta(tmp_path / "r.sig", new_p, tmp_path / "p.delta")
    run_rdiff("patch", old_p, tmp_path / "p.delta", tmp_path / "out1")
    assert (tmp_path / "out1").read_bytes() == new
    # pydelta signature -> rdiff delta -> pydelta patch
    run_rdiff("delta", tmp_path / "p.sig", new_p, tmp_path / "r.delta")
    py_patch(old_p, tmp_path / "r.delta", tmp_path / "out2")
    assert (tmp_path / "out2").read_bytes() == new
    # rdiff all the way, pydelta patch in place
    shutil.copy(old_p, tmp_path / "inplace.bin")
    py_patch(tmp_path / "inplace.bin", tmp_path / "r.delta", tmp_path / "inplace.bin")
    assert (tmp_path / "inplace.bin").read_bytes() == new
    # the delta is about as small as rdiff's
    assert stats.delta_size <= (tmp_path / "r.delta").stat().st_size * 1.02 + 4096
    assert stats.literal < len(new) * 0.1


# ---------------------------------------------------------------- corrupt signatures


def _sig(magic=b"rs\x01G", block_len=64, strong_len=8, body=b""):
    return magic + struct.pack(">II", block_len, strong_len) + body


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"rs\x01G\x00\x00\x00", "truncated (header incomplete)"),
        (_sig(block_len=0), "block length 0"),
        (_sig(strong_len=0), "strong sum length 0"),
        (_sig(strong_len=33), "strong sum length 33"),
        (_sig(magic=b"rs\x016", strong_len=17), "strong sum length 17"),
        (_sig(magic=b"rs\x01F", strong_len=17), "strong sum length 17"),
        (_sig(body=b"\x00" * 11), "not a whole number of 12-byte entries"),
        (_sig(block_len=1 << 30), "pydelta supports up to"),
    ],
)
def test_corrupt_signature(tmp_path, data, needle):
    (tmp_path / "new").write_bytes(b"x" * 100)
    for sig in (data, tmp_path / "s.sig"):
        (tmp_path / "s.sig").write_bytes(data)
        with pytest.raises(pydelta.CorruptSignatureError) as e:
            pydelta.delta(sig, tmp_path / "new", tmp_path / "d")
        assert needle in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(pydelta.CorruptSignatureError):
        pydelta.info(tmp_path / "s.sig")
    assert not (tmp_path / "d").exists() and not tmp_leftovers(tmp_path)


def test_truncated_real_signature_is_caught(tmp_path):
    old = rand_bytes(10_000, 3)
    sig = pydelta.signature(io.BytesIO(old), format="rdiff", block_size=100)
    for cut in (6, 11, 12 + 5, len(sig) - 1):
        with pytest.raises(pydelta.CorruptSignatureError):
            pydelta.delta(sig[:cut], io.BytesIO(old))
    with pytest.raises(pydelta.NotASignatureError):  # not even the magic is left
        pydelta.delta(sig[:3], io.BytesIO(old))
    # but a signature cut at an entry boundary is a valid (shorter) signature:
    # librsync's format cannot tell (it has no block count)
    assert pydelta.delta(sig[: 12 + 36 * 10], io.BytesIO(old))[:4] == DELTA_MAGIC


def test_signature_usage_errors(tmp_path):
    (tmp_path / "old").write_bytes(b"abc")
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(tmp_path / "old", format="xdelta")
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(tmp_path / "old", format="rdiff", strong_len=33)
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(tmp_path / "old", format="rdiff", strong_len=17, rdiff_hash="md4")
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(tmp_path / "old", format="rdiff", rdiff_weak="adler32")
    with pytest.raises(pydelta.UsageError):
        pydelta.signature(tmp_path / "old", format="rdiff", block_size=0)


# ---------------------------------------------------------------- corrupt deltas


OLD = rand_bytes(1000, 42)


def _patch_bytes(tmp_path, delta: bytes, old: bytes = OLD):
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "d").write_bytes(delta)
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pydelta.UnverifiedWarning)
            return pydelta.patch(tmp_path / "old", tmp_path / "d", out)
    finally:
        if out.read_bytes() == b"keep me":
            assert not tmp_leftovers(tmp_path)


@pytest.mark.parametrize(
    "body,error,needle",
    [
        (b"\x55\x00", pydelta.CorruptDeltaError, "invalid instruction at byte 4"),
        (b"\xff\x00", pydelta.CorruptDeltaError, "invalid instruction at byte 4"),
        (b"\x03abc\x80\x00", pydelta.CorruptDeltaError, "invalid instruction at byte 8"),
        (b"\x41\x00\x00", pydelta.CorruptDeltaError, "invalid instruction"),  # zero-length literal
        (enc_copy(0, 0) + b"\x00", pydelta.CorruptDeltaError, "invalid instruction"),  # zero copy
        (
            enc_copy(999, 2) + b"\x00",
            pydelta.CorruptDeltaError,
            "reaches outside the 1000-byte old file",
        ),
        (enc_copy(1000, 1) + b"\x00", pydelta.CorruptDeltaError, "reaches outside"),
        (
            enc_copy(2**64 - 1, 2**64 - 1, 3, 3) + b"\x00",
            pydelta.CorruptDeltaError,
            "reaches outside",
        ),
        (enc_copy(1, 2**64 - 1, 0, 3) + b"\x00", pydelta.CorruptDeltaError, "reaches outside"),
        (b"\x44" + (2**64 - 1).to_bytes(8, "big") + b"abc", pydelta.CorruptDeltaError, "truncated"),
        (b"", pydelta.CorruptDeltaError, "truncated"),  # no END
        (b"\x05ab", pydelta.CorruptDeltaError, "truncated"),  # inside a literal
        (b"\x43\x00\x00", pydelta.CorruptDeltaError, "truncated"),  # inside a header
        (enc_copy(0, 10), pydelta.CorruptDeltaError, "truncated"),
        (b"\x00\x00", pydelta.CorruptDeltaError, "data follows its end marker"),
        (b"\x01a\x00junk", pydelta.CorruptDeltaError, "data follows its end marker"),
    ],
)
def test_corrupt_delta(tmp_path, body, error, needle):
    with pytest.raises(error) as e:
        _patch_bytes(tmp_path, DELTA_MAGIC + body)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert (tmp_path / "out").read_bytes() == b"keep me"
    if "reaches outside" not in needle:  # info does not know the old file
        with pytest.raises(pydelta.CorruptDeltaError):
            pydelta.info(tmp_path / "d")


def test_truncated_magic(tmp_path):
    for cut in (1, 2, 3):
        with pytest.raises(pydelta.CorruptDeltaError, match="truncated"):
            _patch_bytes(tmp_path, DELTA_MAGIC[:cut])


def test_every_command_form_is_accepted(tmp_path):
    """All literal and copy encodings librsync defines, not just the ones it writes."""
    body, want = b"", b""
    for w in range(4):
        body += enc_literal(b"lit%d" % w, w)
        want += b"lit%d" % w
    body += enc_literal(b"z" * 64) + enc_literal(b"y")
    want += b"z" * 64 + b"y"
    for wo in range(4):
        for wl in range(4):
            off, n = 17 * wo + wl, 5 + wl
            body += enc_copy(off, n, wo, wl)
            want += OLD[off : off + n]
    body += enc_copy(0, 1000) + b"\x00"
    want += OLD
    result = _patch_bytes(tmp_path, DELTA_MAGIC + body)
    assert (tmp_path / "out").read_bytes() == want
    assert result.size == len(want) and result.verified is False
    fields = pydelta.info(tmp_path / "d").fields
    assert fields["copy instructions"] == 17 and fields["literal instructions"] == 6
    assert fields["result size"] == len(want)


def test_fuzzed_deltas_never_crash(tmp_path):
    """Random damage: every outcome is a result or a typed error, OUT intact on error."""
    old, new, bs = CASES["insert-middle"]
    good = pydelta.delta(
        pydelta.signature(io.BytesIO(old), format="rdiff", block_size=bs), io.BytesIO(new)
    )
    rng = random.Random(7)
    for i in range(300):
        d = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            what = rng.random()
            p = rng.randrange(4, len(d))
            if what < 0.5:
                d[p] = rng.randrange(256)
            elif what < 0.75:
                del d[p : p + rng.randint(1, 50)]
            else:
                d[p:p] = rng.randbytes(rng.randint(1, 20))
        try:
            _patch_bytes(tmp_path, bytes(d), old)
        except (pydelta.CorruptDeltaError, pydelta.FileAccessError):
            assert (tmp_path / "out").read_bytes() == b"keep me"


def test_rdiff_bytes_as_other_inputs(tmp_path):
    old = rand_bytes(5000, 1)
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(tmp_path / "old", format="rdiff")
    (tmp_path / "s").write_bytes(sig)
    delta = pydelta.delta(sig, io.BytesIO(old))
    (tmp_path / "d").write_bytes(delta)
    with pytest.raises(pydelta.NotADeltaError, match="rdiff .librsync. signature"):
        pydelta.patch(tmp_path / "old", tmp_path / "s", tmp_path / "out")
    with pytest.raises(pydelta.NotASignatureError, match="rdiff .librsync. delta"):
        pydelta.delta(tmp_path / "d", tmp_path / "old")


# ---------------------------------------------------------------- info and CLI


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.pop("PYDELTA_DEBUG", None)
    return env


def cli(*args, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [sys.executable, "-m", "pydelta", *[str(a) for a in args]],
        capture_output=True,
        env=_env(),
        timeout=60,
        **kw,
    )
    p.stderr = p.stderr.decode()
    return p


def test_info_describes_rdiff_files(tmp_path):
    old, new, bs = CASES["insert-middle"]
    (tmp_path / "old").write_bytes(old)
    pydelta.signature(
        tmp_path / "old",
        tmp_path / "s",
        format="rdiff",
        block_size=bs,
        rdiff_weak="rollsum",
        rdiff_hash="md4",
        strong_len=-1,
    )
    i = pydelta.info(tmp_path / "s")
    assert i.kind == "signature" and i.format == "rdiff (librsync)"
    assert i.fields["magic"] == "0x72730136"
    assert i.fields["block size"] == bs and i.fields["blocks"] == -(-len(old) // bs)
    assert i.fields["weak sum"].startswith("rollsum") and i.fields["strong hash"].startswith("MD4")
    assert str(len(old) - len(old) % bs + 1) in i.fields["basis size"]
    stats = pydelta.delta(tmp_path / "s", io.BytesIO(new), tmp_path / "d")
    d = pydelta.info(tmp_path / "d")
    assert str(d).startswith("rdiff (librsync) delta")
    assert d.fields["result size"] == len(new)
    assert d.fields["copied bytes"] == stats.copied and d.fields["literal bytes"] == stats.literal
    assert d.fields["delta size"] == stats.delta_size
    assert "no checksum" in d.fields["result digest"]


def test_cli_signature_delta_patch_info(tmp_path):
    old, new, bs = CASES["insert-middle"]
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    p = cli(
        "signature",
        "--format",
        "rdiff",
        "-b",
        bs,
        "-S",
        "-1",
        "-R",
        "rollsum",
        "-H",
        "md4",
        tmp_path / "old",
        tmp_path / "s",
    )
    assert p.returncode == 0 and p.stderr == ""
    assert (tmp_path / "s").read_bytes() == pydelta.signature(
        tmp_path / "old",
        format="rdiff",
        block_size=bs,
        strong_len=-1,
        rdiff_weak="rollsum",
        rdiff_hash="md4",
    )
    p = cli("delta", tmp_path / "s", tmp_path / "new", tmp_path / "d")
    assert p.returncode == 0 and p.stderr == ""
    assert (tmp_path / "d").read_bytes()[:4] == DELTA_MAGIC
    p = cli("patch", tmp_path / "old", tmp_path / "d", tmp_path / "out")
    assert p.returncode == 0
    assert p.stderr == (
        f"pydelta: warning: {tmp_path / 'd'} is an rdiff (librsync) delta, which "
        "carries no checksum: the result could not be verified\n"
    )
    assert (tmp_path / "out").read_bytes() == new
    p = cli("patch", "-q", tmp_path / "old", tmp_path / "d", "-")
    assert p.returncode == 0 and p.stderr == "" and p.stdout == new
    p = cli("info", tmp_path / "d")
    assert p.returncode == 0 and p.stdout.decode().startswith("rdiff (librsync) delta")


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "old").write_bytes(OLD)
    (tmp_path / "bad.sig").write_bytes(_sig(strong_len=0))
    p = cli("delta", tmp_path / "bad.sig", tmp_path / "old", tmp_path / "d")
    assert p.returncode == 3 and p.stderr.count("\n") == 1  # bad input
    assert p.stderr.startswith("pydelta: error: rdiff signature") and "Traceback" not in p.stderr
    (tmp_path / "bad.delta").write_bytes(DELTA_MAGIC + enc_copy(990, 20) + b"\x00")
    (tmp_path / "out").write_bytes(b"keep")
    p = cli("patch", tmp_path / "old", tmp_path / "bad.delta", tmp_path / "out")
    assert p.returncode == 3 and p.stderr.count("\n") == 1 and "reaches outside" in p.stderr
    assert (tmp_path / "out").read_bytes() == b"keep" and not tmp_leftovers(tmp_path)
    (tmp_path / "cut.delta").write_bytes(DELTA_MAGIC + b"\x05ab")
    p = cli("patch", tmp_path / "old", tmp_path / "cut.delta", tmp_path / "out")
    assert p.returncode == 3 and "truncated" in p.stderr and p.stderr.count("\n") == 1
    p = cli("signature", "-R", "rollsum", tmp_path / "old", tmp_path / "s")
    assert (
        p.returncode == 2  # usage
        and p.stderr == "pydelta: error: --rollsum applies to --format rdiff only\n"
    )
    p = cli("signature", "--format", "rdiff", "-S", "40", tmp_path / "old", tmp_path / "s")
    assert p.returncode != 0 and "strong hash length 40 is out of range" in p.stderr


# ---------------------------------------------------------------- property: random edits

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    old=st.binary(max_size=3000),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 300), st.binary(max_size=200)), max_size=4
    ),
    bs=st.sampled_from([1, 2, 3, 16, 64, 700, 5000]),
    kind=st.sampled_from(KINDS),
    k=st.integers(1, 600),
)
def test_random_edits_roundtrip(old, edits, bs, kind, k):
    new = bytearray(old)
    for where, cut, ins in edits:
        p = int(where * len(new))
        new[p : p + cut] = ins
    new = bytes(new)
    sig = pydelta.signature(
        io.BytesIO(old), format="rdiff", block_size=bs, rdiff_weak=kind[0], rdiff_hash=kind[1]
    )
    data = pydelta.delta(sig, io.BytesIO(new))
    ops = parse_rs_delta(data)
    check_writer_encoding(data)
    assert apply_rs(old, ops) == new
    assert pydelta.delta(sig, TinyReader(new, k), threads=1) == data
    assert pydelta.delta(sig, TinyReader(new, k), threads=2) == data
    # everything the old file still holds in whole, aligned blocks is found again
    if old and new == old:
        assert ops == [("C", 0, len(old))]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bs", [1, 7, 700, 5000])
def test_delta_over_many_small_read_chunks(monkeypatch, threads, bs):
    """Buffers smaller than the input: the unused tail crosses every chunk boundary."""
    old = rand_bytes(60_000, bs)
    new = old[:20_000] + b"new bytes" + old[20_000:50_000] + old[:7000] + b"end"
    sig = pydelta.signature(io.BytesIO(old), format="rdiff", block_size=bs)
    want = pydelta.delta(sig, io.BytesIO(new), threads=1)
    prd = importlib.import_module("pydelta.delta")  # the driver that reads NEW (imported)

    monkeypatch.setattr(prd, "READ_SIZE", 4096)
    got = pydelta.delta(sig, io.BytesIO(new), threads=threads)
    assert got == want
    assert apply_rs(old, parse_rs_delta(got)) == new


class _FailingReader(io.RawIOBase):
    def __init__(self, data: bytes, fail_at: int) -> None:
        self._data, self._pos, self._fail_at = data, 0, fail_at

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._pos >= self._fail_at:
            raise OSError(5, "Input/output error")
        n = min(len(b), 5000, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


@pytest.mark.parametrize("threads", [1, 2])
def test_read_error_in_new_is_reported(tmp_path, monkeypatch, threads):
    old = rand_bytes(100_000, 1)
    sig = pydelta.signature(io.BytesIO(old), format="rdiff", block_size=100)
    prd = importlib.import_module("pydelta.delta")  # the driver that reads NEW (imported)

    monkeypatch.setattr(prd, "READ_SIZE", 8192)
    with pytest.raises(pydelta.FileAccessError, match="Input/output error"):
        pydelta.delta(sig, _FailingReader(old, 30_000), tmp_path / "d", threads=threads)
    assert not (tmp_path / "d").exists() and not tmp_leftovers(tmp_path)


@pytest.mark.parametrize("slen", [1, 4, 11, 12, 32])
@pytest.mark.parametrize("weak", ["rabinkarp", "rollsum"])
def test_alternating_blocks_any_strong_len(slen, weak):
    """Runs of copied blocks broken every other block (the batch size adapts),
    with strong sums short enough that the weak sum must be checked too."""
    bs = 100
    old = rand_bytes(100 * bs + 37, 11)
    parts = []
    for i in range(100):
        parts.append(old[i * bs : (i + 1) * bs] if i % 3 != 2 else rand_bytes(bs, 1000 + i))
    new = b"".join(parts) + old[100 * bs :]
    sig = pydelta.signature(
        io.BytesIO(old), format="rdiff", block_size=bs, strong_len=slen, rdiff_weak=weak
    )
    data = pydelta.delta(sig, io.BytesIO(new))
    ops = parse_rs_delta(data)
    assert apply_rs(old, ops) == new
    assert sum(len(op[1]) for op in ops if op[0] == "L") == 33 * bs
    for k in (1, 150, 1000):
        assert pydelta.delta(sig, TinyReader(new, k)) == data
