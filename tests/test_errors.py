"""Bad input of every kind: the exact exception class, the key words of its
message, and nothing lost - a failed patch leaves an existing OUT untouched
and no temporary files behind."""

from __future__ import annotations

import errno
import io
import os
import stat
import struct

import pytest
from conftest import (
    DELTA_HEADER_LEN,
    TinyReader,
    enc_varint,
    parse_delta,
    rand_bytes,
    tmp_leftovers,
)

import pydelta
from pydelta.formats import native as fmt

SENTINEL = b"precious existing output - must survive\n"


# ---------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A small OLD/NEW pair whose delta has copies, literals and a tail."""
    d = tmp_path_factory.mktemp("case")
    old = rand_bytes(3000, 1)
    new = old[:1000] + b"abcdefgh" + old[1100:] + b"tail"
    (d / "old").write_bytes(old)
    (d / "new").write_bytes(new)
    pydelta.signature(d / "old", d / "sig", block_size=64)
    pydelta.delta(d / "sig", d / "new", d / "delta")
    sig = (d / "sig").read_bytes()
    delta = (d / "delta").read_bytes()
    ops = [op[0] for op in parse_delta(delta).ops]
    assert "C" in ops and "L" in ops
    return {"dir": d, "old": old, "new": new, "sig": sig, "delta": delta}


class OutGuard:
    """An existing OUT file that every failed patch must leave untouched."""

    def __init__(self, directory):
        self.dir = directory
        self.path = directory / "out.bin"
        self.path.write_bytes(SENTINEL)
        self.stat = os.stat(self.path)

    def check(self):
        assert self.path.read_bytes() == SENTINEL
        st = os.stat(self.path)
        assert (st.st_ino, st.st_mtime_ns, st.st_size) == (
            self.stat.st_ino,
            self.stat.st_mtime_ns,
            self.stat.st_size,
        )
        assert tmp_leftovers(self.dir) == []


def expect_patch_fails(old_path, delta_bytes, guard: OutGuard, exc, match=None, feed=None):
    """patch() (or Patcher fed ``feed``-byte pieces) must raise exc; OUT survives."""
    if feed is None:
        with pytest.raises(exc, match=match) as info:
            pydelta.patch(old_path, io.BytesIO(delta_bytes), guard.path)
    else:
        with pytest.raises(exc, match=match) as info:
            with pydelta.Patcher(old_path, guard.path) as p:
                for i in range(0, len(delta_bytes), feed):
                    p.write(delta_bytes[i : i + feed])
    guard.check()
    return info.value


@pytest.fixture
def small_buffers(monkeypatch):
    """Shrink the drivers' multi-MiB buffers: loops of hundreds of patches of a
    3 KB file otherwise spend their time zeroing fresh buffers."""
    import importlib

    for mod in ("patch", "signature"):
        m = importlib.import_module("pydelta." + mod)
        monkeypatch.setattr(m, "READ_SIZE", 1 << 16)
    monkeypatch.setattr(importlib.import_module("pydelta.patch"), "OUT_SIZE", 1 << 16)


# ---------------------------------------------------------------- wrong basis


def test_wrong_basis_same_size(case, tmp_path):
    other = bytearray(case["old"])
    other[1500] ^= 1  # inside a block the delta copies
    (tmp_path / "other").write_bytes(other)
    g = OutGuard(tmp_path)
    e = expect_patch_fails(tmp_path / "other", case["delta"], g, pydelta.WrongBasisError)
    msg = str(e)
    assert "is not the file the signature was made from" in msg
    assert "its content differs" in msg
    assert str(tmp_path / "other") in msg
    assert not isinstance(e, pydelta.CorruptError)


def test_wrong_basis_same_size_patcher_tiny_pieces(case, tmp_path):
    other = rand_bytes(len(case["old"]), 99)
    (tmp_path / "other").write_bytes(other)
    g = OutGuard(tmp_path)
    expect_patch_fails(
        tmp_path / "other", case["delta"], g, pydelta.WrongBasisError, "content differs", feed=3
    )


@pytest.mark.parametrize("delta_size", [-1, +1, -3000])
def test_wrong_basis_different_size(case, tmp_path, delta_size):
    other = (case["old"] + b"x")[: len(case["old"]) + delta_size]
    (tmp_path / "other").write_bytes(other)
    g = OutGuard(tmp_path)
    e = expect_patch_fails(tmp_path / "other", case["delta"], g, pydelta.WrongBasisError)
    assert f"has {len(other)} bytes" in str(e)
    assert f"against a {len(case['old'])}-byte file" in str(e)


def test_wrong_basis_in_place_leaves_old(case, tmp_path):
    other = bytearray(case["old"])
    other[10] ^= 0x40
    p = tmp_path / "file"
    p.write_bytes(other)
    with pytest.raises(pydelta.WrongBasisError):
        pydelta.patch(p, io.BytesIO(case["delta"]), p)
    assert p.read_bytes() == other
    assert tmp_leftovers(tmp_path) == []


def test_basis_changed_during_patch(case, tmp_path):
    p = tmp_path / "old"
    p.write_bytes(case["old"])
    patcher = pydelta.Patcher(p, tmp_path / "out")
    patcher.write(case["delta"][:DELTA_HEADER_LEN])
    with open(p, "r+b") as fh:
        fh.truncate(10)  # the basis shrinks under the patcher
    with pytest.raises(pydelta.FileAccessError, match="shorter than it was"):
        patcher.write(case["delta"][DELTA_HEADER_LEN:])
        patcher.close()
    assert not (tmp_path / "out").exists()
    assert tmp_leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="aborted"):
        patcher.close()


# ---------------------------------------------------------------- truncated / corrupted delta


def test_truncated_delta_every_cut_point(case, tmp_path):
    d = case["delta"]
    g = OutGuard(tmp_path)
    fresh = tmp_path / "fresh.bin"
    for cut in range(len(d)):
        part = d[:cut]
        if cut < 4:
            exc, match = pydelta.CorruptDeltaError, "empty" if cut == 0 else "header incomplete"
        elif cut < DELTA_HEADER_LEN:
            exc, match = pydelta.CorruptDeltaError, "truncated \\(header incomplete\\)"
        else:
            exc = pydelta.CorruptDeltaError
            match = f"truncated \\(ends after {cut} bytes, before its end marker\\)"
        expect_patch_fails(case["dir"] / "old", part, g, exc, match)
        # a new output path is never created
        with pytest.raises(exc):
            pydelta.patch(case["dir"] / "old", io.BytesIO(part), fresh)
        assert not fresh.exists()
        # info agrees that it is not a whole delta
        with pytest.raises((pydelta.CorruptDeltaError, pydelta.NotADeltaError)):
            pydelta.info(io.BytesIO(part))
    g.check()


@pytest.mark.parametrize("piece", [1, 7])
def test_truncated_delta_patcher_pieces(case, tmp_path, piece):
    d = case["delta"]
    g = OutGuard(tmp_path)
    for cut in range(DELTA_HEADER_LEN, len(d), 5):
        expect_patch_fails(
            case["dir"] / "old", d[:cut], g, pydelta.CorruptDeltaError, "truncated", feed=piece
        )


# Header bytes the result digest does not cover (strong_len, block_len, the
# signature digest) are covered by the header's own check field (52..59).
HEADER_FIELDS = {5, 8, 9, 10, 11} | set(range(20, 52))
UNVERIFIED_HEADER: set = set()


def _flip_positions(d):
    return [i for i in range(len(d)) if i not in UNVERIFIED_HEADER]


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_flipped_byte_always_detected(case, tmp_path, mask, small_buffers):
    d = case["delta"]
    g = OutGuard(tmp_path)
    fresh = tmp_path / "fresh.bin"
    for i in _flip_positions(d):
        bad = bytearray(d)
        bad[i] ^= mask
        try:
            pydelta.patch(case["dir"] / "old", io.BytesIO(bytes(bad)), g.path)
        except pydelta.PydeltaError as e:
            if i < 4:
                assert isinstance(e, pydelta.NotADeltaError), i
            elif i == 4:
                assert isinstance(e, pydelta.UnsupportedVersionError), i
            else:
                assert isinstance(e, pydelta.CorruptDeltaError), (i, e)
        else:
            pytest.fail(f"flipping byte {i} of the delta with {mask:#x} was not detected")
        g.check()
        with pytest.raises(pydelta.PydeltaError):
            pydelta.patch(case["dir"] / "old", io.BytesIO(bytes(bad)), fresh)
        assert not fresh.exists()


def test_flipped_header_byte_detected(case, tmp_path):
    d = case["delta"]
    undetected = []
    for i in sorted(HEADER_FIELDS):
        bad = bytearray(d)
        bad[i] ^= 0x01
        sink = io.BytesIO()
        try:
            pydelta.patch(case["dir"] / "old", io.BytesIO(bytes(bad)), sink)
        except pydelta.PydeltaError:
            continue
        assert sink.getvalue() == case["new"]  # harmless: the result is still right
        undetected.append(i)
    assert undetected == []


def test_flipped_byte_patcher_tiny_pieces(case, tmp_path, small_buffers):
    d = case["delta"]
    g = OutGuard(tmp_path)
    for i in _flip_positions(d)[::3]:
        bad = bytearray(d)
        bad[i] ^= 0x10
        expect_patch_fails(case["dir"] / "old", bytes(bad), g, pydelta.PydeltaError, feed=2)


def test_patcher_exception_in_with_block(case, tmp_path):
    g = OutGuard(tmp_path)
    with pytest.raises(RuntimeError, match="caller failed"):
        with pydelta.Patcher(case["dir"] / "old", g.path) as p:
            p.write(case["delta"])  # complete and valid, but never closed
            raise RuntimeError("caller failed")
    g.check()
    with pytest.raises(ValueError, match="closed"):
        p.write(b"x")
    with pytest.raises(ValueError, match="aborted"):
        p.close()


def test_patcher_write_after_error(case, tmp_path):
    g = OutGuard(tmp_path)
    p = pydelta.Patcher(case["dir"] / "old", g.path)
    with pytest.raises(pydelta.NotADeltaError):
        p.write(b"GARBAGE!")
    with pytest.raises(ValueError, match="closed"):
        p.write(case["delta"])
    g.check()


def test_data_after_end(case, tmp_path):
    g = OutGuard(tmp_path)
    for extra in (b"\x00", b"E", case["delta"]):
        e = expect_patch_fails(
            case["dir"] / "old", case["delta"] + extra, g, pydelta.CorruptDeltaError
        )
        assert "data follows its end marker" in str(e)
        e = expect_patch_fails(
            case["dir"] / "old", case["delta"] + extra, g, pydelta.CorruptDeltaError, feed=1
        )
        assert "data follows its end marker" in str(e)
    with pytest.raises(pydelta.CorruptDeltaError, match="data follows"):
        pydelta.info(io.BytesIO(case["delta"] + b"E"))


# ---------------------------------------------------------------- hand-made malicious deltas


def _header(old: bytes, sig: bytes, **over) -> bytes:
    info = pydelta.load_signature(sig).info
    fields = dict(
        magic=b"PDDL",
        version=1,
        strong_len=info.strong_len,
        flags=0,
        reserved=0,
        block_len=info.block_len,
        basis_size=info.basis_size,
        digest=info.digest,
    )
    fields.update(over)
    head = fmt.DELTA_HEADER.pack(*fields.values(), bytes(8))
    return head[: fmt.DELTA_CHECKED] + fmt._header_check(head)


def _end(result: bytes) -> bytes:
    return b"E" + struct.pack("<Q", len(result)) + pydelta.blake3_digest(result)


def _copy(off: int, n: int) -> bytes:
    return b"C" + enc_varint(off) + enc_varint(n)


def _lit(data: bytes) -> bytes:
    return b"L" + enc_varint(len(data)) + data


def test_handmade_valid_deltas(case, tmp_path):
    """Positive controls: the crafting helpers make deltas patch accepts."""
    old, sig = case["old"], case["sig"]
    h = _header(old, sig)
    for body, want in [
        (_end(b""), b""),
        (_copy(0, len(old)) + _end(old), old),
        (
            _copy(len(old) - 1, 1) + _lit(b"xy") + _copy(0, 1) + _end(old[-1:] + b"xy" + old[:1]),
            old[-1:] + b"xy" + old[:1],
        ),
        (
            b"".join(_lit(bytes([i])) for i in range(200)) + _end(bytes(range(200))),
            bytes(range(200)),
        ),
        (_copy(5, 10) * 3 + _end(old[5:15] * 3), old[5:15] * 3),
    ]:
        sink = io.BytesIO()
        res = pydelta.patch(case["dir"] / "old", io.BytesIO(h + body), sink)
        assert sink.getvalue() == want
        assert res.size == len(want)


N = 3000  # len(case["old"])
BOUNDS = "reaches outside the 3000-byte old file"
INVALID = "invalid instruction at byte"

MALICIOUS = {
    "copy past end": (_copy(N - 10, 20), BOUNDS),
    "copy starting at end": (_copy(N, 1), BOUNDS),
    "copy offset far past end": (_copy(N + 1, 1), BOUNDS),
    "copy offset 2**64-1": (_copy(2**64 - 1, 1), BOUNDS),
    "copy offset+len wraps 2**64": (_copy(2**64 - 5, 10), BOUNDS),
    "copy len 2**64-1": (_copy(5, 2**64 - 1), BOUNDS),
    "copy 2**63 + 2**63": (_copy(2**63, 2**63), BOUNDS),
    "copy len wraps with small offset": (_copy(1, 2**64 - 1), BOUNDS),
    "zero-length copy": (_copy(0, 0), INVALID),
    "zero-length copy at end": (_copy(N, 0), INVALID),
    "zero-length literal": (b"L\x00", INVALID),
    "overlong varint offset": (b"C\x80\x00\x05", INVALID),
    "overlong varint length": (b"C\x05\x85\x80\x00", INVALID),
    "overlong literal length": (b"L\x81\x00x", INVALID),
    "varint over 64 bits (10th byte 2)": (b"C" + b"\xff" * 9 + b"\x02" + b"\x01", INVALID),
    "varint of 11 bytes": (b"C" + b"\x80" * 10 + b"\x01" + b"\x01", INVALID),
    "unknown opcode X": (b"X", INVALID),
    "unknown opcode NUL": (b"\x00", INVALID),
    "unknown opcode 0xff": (b"\xff" * 50, INVALID),
    "lowercase c": (b"c\x00\x01", INVALID),
    "valid then unknown": (_copy(0, 10) + b"?", INVALID),
    "huge literal, little data": (b"L" + enc_varint(2**40) + b"x" * 100, "truncated"),
    "literal of 2**63 bytes": (b"L" + enc_varint(2**63) + b"y" * 10, "truncated"),
    "literal swallowing the end": (b"L" + enc_varint(41 + 5) + b"abcde", "truncated"),
    "no end op": (_copy(0, 100), "truncated"),
    "end trailer cut short": (b"E" + b"\x00" * 39, "truncated"),
}


@pytest.mark.parametrize("name", list(MALICIOUS))
@pytest.mark.parametrize("feed", [None, 1, 4])
def test_malicious_delta(case, tmp_path, name, feed, small_buffers):
    body, match = MALICIOUS[name]
    d = _header(case["old"], case["sig"]) + body
    if match != "truncated":
        d += _end(b"whatever")
    g = OutGuard(tmp_path)
    e = expect_patch_fails(case["dir"] / "old", d, g, pydelta.CorruptDeltaError, feed=feed)
    assert match in str(e)
    if match == INVALID:
        assert f"at byte {DELTA_HEADER_LEN}" in str(e) or "valid then" in name


def test_malicious_bounds_reports_position(case, tmp_path):
    d = _header(case["old"], case["sig"]) + _lit(b"abc") + _copy(0, 5) + _copy(N, 7) + _end(b"")
    g = OutGuard(tmp_path)
    e = expect_patch_fails(case["dir"] / "old", d, g, pydelta.CorruptDeltaError)
    assert f"a copy at byte {DELTA_HEADER_LEN + 5 + 3}" in str(e)


def test_copy_on_empty_basis(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    sig = pydelta.signature(tmp_path / "empty")
    for body in (_copy(0, 1), _copy(1, 1), _copy(0, 0)):
        d = _header(b"", sig) + body + _end(b"x")
        g = OutGuard(tmp_path)
        expect_patch_fails(tmp_path / "empty", d, g, pydelta.CorruptDeltaError)


def test_wrong_end_size_or_digest(case, tmp_path):
    old, h = case["old"], _header(case["old"], case["sig"])
    g = OutGuard(tmp_path)
    ok = _copy(0, 100)
    for end in (
        b"E" + struct.pack("<Q", 101) + pydelta.blake3_digest(old[:100]),
        b"E" + struct.pack("<Q", 100) + pydelta.blake3_digest(old[:99]),
        b"E" + struct.pack("<Q", 2**64 - 1) + b"\x00" * 32,
    ):
        e = expect_patch_fails(case["dir"] / "old", h + ok + end, g, pydelta.CorruptDeltaError)
        assert "does not match the digest it carries" in str(e)
        assert "100 bytes made" in str(e)


@pytest.mark.parametrize(
    "over,exc,match",
    [
        (dict(version=2), pydelta.UnsupportedVersionError, "format version 2"),
        (dict(version=0), pydelta.UnsupportedVersionError, "format version 0"),
        (dict(flags=2), pydelta.UnsupportedVersionError, "does not know"),
        (dict(reserved=7), pydelta.CorruptDeltaError, "invalid header fields"),
        (dict(strong_len=7), pydelta.CorruptDeltaError, "invalid header fields"),
        (dict(strong_len=33), pydelta.CorruptDeltaError, "invalid header fields"),
        (dict(block_len=0), pydelta.CorruptDeltaError, "invalid header fields"),
        (dict(block_len=(1 << 26) + 1), pydelta.CorruptDeltaError, "invalid header fields"),
        (dict(basis_size=2**64 - 1), pydelta.WrongBasisError, "18446744073709551615-byte"),
        (dict(magic=b"PDDX"), pydelta.NotADeltaError, "not a pydelta delta"),
    ],
)
def test_bad_delta_header(case, tmp_path, over, exc, match):
    d = _header(case["old"], case["sig"], **over) + _copy(0, 10) + _end(case["old"][:10])
    g = OutGuard(tmp_path)
    expect_patch_fails(case["dir"] / "old", d, g, exc, match)
    expect_patch_fails(case["dir"] / "old", d, g, exc, match, feed=1)


# ---------------------------------------------------------------- signatures


def _sig_error(data: bytes):
    """The error loading ``data`` as a signature, three ways; all must agree."""
    errs = []
    for load in (
        lambda: pydelta.load_signature(data),
        lambda: pydelta.delta(io.BytesIO(data), io.BytesIO(b"new")),
        lambda: pydelta.Signature.load(io.BytesIO(data)),
    ):
        with pytest.raises(pydelta.PydeltaError) as info:
            load()
        errs.append(info.value)
    assert len({type(e) for e in errs}) == 1, errs
    return errs[0]


def test_truncated_signature_every_cut_point(case):
    s = case["sig"]
    for cut in range(len(s)):
        e = _sig_error(s[:cut])
        if cut < 4:
            assert isinstance(e, pydelta.NotASignatureError), cut
            assert ("an empty file" if cut == 0 else "not a pydelta file") in str(e)
        elif cut < 16:
            assert isinstance(e, pydelta.CorruptSignatureError), cut
            assert "truncated (header incomplete)" in str(e)
        else:
            assert isinstance(e, pydelta.CorruptSignatureError), cut
            assert "truncated" in str(e) or "corrupted" in str(e)


def test_truncated_signature_file_path(case, tmp_path):
    p = tmp_path / "sig"
    for cut in (0, 3, 10, 16, 40, len(case["sig"]) - 1):
        p.write_bytes(case["sig"][:cut])
        with pytest.raises((pydelta.CorruptSignatureError, pydelta.NotASignatureError)):
            pydelta.delta(p, case["dir"] / "new", tmp_path / "d")
        assert not (tmp_path / "d").exists()
        assert tmp_leftovers(tmp_path) == []
        # info cannot tell what a file of under 4 bytes was meant to be
        with pytest.raises(
            (pydelta.CorruptSignatureError, pydelta.NotADeltaError)
            if cut < 4
            else pydelta.CorruptSignatureError
        ):
            pydelta.info(p)


@pytest.mark.parametrize("mask", [0x01, 0x80])
def test_flipped_signature_byte(case, mask):
    s = case["sig"]
    for i in range(len(s)):
        bad = bytearray(s)
        bad[i] ^= mask
        e = _sig_error(bytes(bad))
        if i < 4:
            assert isinstance(e, pydelta.NotASignatureError), i
        elif i == 4:
            assert isinstance(e, pydelta.UnsupportedVersionError), i
            assert "format version" in str(e)
        elif i == 6:
            # an unknown strong hash id reads as a newer pydelta's signature
            assert isinstance(e, pydelta.UnsupportedVersionError), i
            assert "strong hash id" in str(e) and "remake the signature" in str(e)
        else:
            assert isinstance(e, pydelta.CorruptSignatureError), (i, e)
            assert "corrupted" in str(e) or "truncated" in str(e)


def test_signature_checksum_message(case):
    bad = bytearray(case["sig"])
    bad[100] ^= 1  # an entry
    e = _sig_error(bytes(bad))
    assert "checksum mismatch" in str(e)


def test_signature_trailing_garbage(case, tmp_path):
    """Bytes after the end marker: an error in bytes or a file given by path;
    from a file object the signature ends at its trailer (it can be read off a
    live channel) and what follows stays unread, for the caller."""
    data = case["sig"] + b"\x00"
    for load in (
        lambda: pydelta.load_signature(data),
        lambda: pydelta.delta(data, io.BytesIO(b"new")),
    ):
        with pytest.raises(pydelta.CorruptSignatureError):
            load()
    (tmp_path / "g.sig").write_bytes(data)
    with pytest.raises(pydelta.CorruptSignatureError, match="data after its end marker"):
        pydelta.Signature.load(tmp_path / "g.sig")
    stream = io.BytesIO(data)
    sig = pydelta.Signature.load(stream)
    assert sig.info.digest == pydelta.Signature.load(io.BytesIO(case["sig"])).info.digest
    assert stream.read() == b"\x00"


# ---------------------------------------------------------------- wrong kinds of file


@pytest.mark.parametrize(
    "head,kind",
    [
        (b"", "an empty file"),
        (b"hello world, plain data", "not a pydelta file"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 30, "a gzip file"),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 30, "a zstd-compressed file"),
        # rdiff (librsync) signatures and deltas are read since issue 4: tests/test_rdiff.py
        (b"\xd6\xc3\xc4\x00" + b"\x00" * 30, "an xdelta3/VCDIFF delta"),
    ],
)
def test_data_file_as_signature(tmp_path, head, kind):
    p = tmp_path / "notasig"
    p.write_bytes(head)
    (tmp_path / "new").write_bytes(b"new data")
    with pytest.raises(pydelta.NotASignatureError) as info:
        pydelta.delta(p, tmp_path / "new", tmp_path / "out")
    msg = str(info.value)
    assert f"{p} is not a pydelta signature: it is {kind};" in msg
    assert "pydelta signature OLD" in msg
    assert "wrong order" not in msg
    assert isinstance(info.value, pydelta.FormatError)
    assert not (tmp_path / "out").exists() and tmp_leftovers(tmp_path) == []
    # the same file as a delta
    (tmp_path / "old").write_bytes(b"old")
    with pytest.raises((pydelta.NotADeltaError, pydelta.CorruptDeltaError)) as info:
        pydelta.patch(tmp_path / "old", p, tmp_path / "out")
    if len(head) >= 4:
        assert isinstance(info.value, pydelta.NotADeltaError)
        assert f"is not a pydelta delta: it is {kind};" in str(info.value)
    with pytest.raises(pydelta.NotADeltaError, match="neither a pydelta signature nor a delta"):
        pydelta.info(p)


def test_signature_and_delta_swapped(case, tmp_path):
    d = case["dir"]
    with pytest.raises(pydelta.NotASignatureError) as info:
        pydelta.delta(d / "delta", d / "new", tmp_path / "x")
    assert "it is a pydelta delta (arguments in the wrong order?)" in str(info.value)
    g = OutGuard(tmp_path)
    with pytest.raises(pydelta.NotADeltaError) as info:
        pydelta.patch(d / "old", d / "sig", g.path)
    assert "it is a pydelta signature (arguments in the wrong order?)" in str(info.value)
    g.check()
    # old and delta swapped: the delta is not the right size to be the basis
    with pytest.raises((pydelta.NotADeltaError, pydelta.WrongBasisError)):
        pydelta.patch(d / "delta", d / "old", g.path)
    g.check()
    # NEW given as the delta
    with pytest.raises(pydelta.NotADeltaError, match="not a pydelta file"):
        pydelta.patch(d / "old", d / "new", g.path)
    g.check()


def test_delta_bytes_passed_as_signature_bytes(case):
    with pytest.raises(pydelta.NotASignatureError, match="wrong order"):
        pydelta.delta(case["delta"], io.BytesIO(b"x"))


# ---------------------------------------------------------------- files and paths


def test_missing_inputs(case, tmp_path):
    d, missing = case["dir"], tmp_path / "missing"
    with pytest.raises(pydelta.FileAccessError) as info:
        pydelta.signature(missing, tmp_path / "s")
    assert f"cannot open old file {missing}: No such file or directory" == str(info.value)
    assert isinstance(info.value, OSError)
    with pytest.raises(pydelta.FileAccessError, match=f"cannot open signature {missing}"):
        pydelta.delta(missing, d / "new")
    with pytest.raises(pydelta.FileAccessError, match=f"cannot open new file {missing}"):
        pydelta.delta(d / "sig", missing, tmp_path / "dd")
    with pytest.raises(pydelta.FileAccessError, match=f"cannot open old file {missing}"):
        pydelta.patch(missing, d / "delta", tmp_path / "o")
    with pytest.raises(pydelta.FileAccessError, match=f"cannot open delta {missing}"):
        pydelta.patch(d / "old", missing, tmp_path / "o")
    with pytest.raises(pydelta.FileAccessError, match=f"cannot open file {missing}"):
        pydelta.info(missing)
    assert sorted(os.listdir(tmp_path)) == []


def test_directory_as_input(case, tmp_path):
    with pytest.raises(pydelta.FileAccessError, match="cannot open old file .*: Is a directory"):
        pydelta.signature(tmp_path)
    with pytest.raises(pydelta.FileAccessError, match="cannot open new file .*: Is a directory"):
        pydelta.delta(case["dir"] / "sig", tmp_path)
    with pytest.raises(pydelta.FileAccessError, match="cannot open delta .*: Is a directory"):
        pydelta.patch(case["dir"] / "old", tmp_path, io.BytesIO())


def _char_device():
    """A character device path to use as a non-regular file (not /dev/null:
    patch takes that as the empty old file, as rdiff does)."""
    for p in ("/dev/zero", "/dev/urandom"):
        try:
            if stat.S_ISCHR(os.stat(p).st_mode):
                return p
        except OSError:
            pass
    pytest.skip("no character device available")


def test_old_not_a_regular_file(case, tmp_path):
    g = OutGuard(tmp_path)
    dev = _char_device()
    with pytest.raises(pydelta.FileAccessError, match="is not a regular file"):
        pydelta.patch(dev, case["dir"] / "delta", g.path)
    g.check()
    with pytest.raises(pydelta.FileAccessError, match="cannot open old file"):
        pydelta.patch(tmp_path, case["dir"] / "delta", g.path)  # a directory
    g.check()
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf, os.fdopen(w, "wb"):
        with pytest.raises(pydelta.FileAccessError, match="is not a regular file"):
            pydelta.patch(rf, case["dir"] / "delta", g.path)
    g.check()
    with pytest.raises(pydelta.FileAccessError, match="must be a regular file with a descriptor"):
        pydelta.patch(io.BytesIO(case["old"]), case["dir"] / "delta", g.path)
    g.check()
    with pytest.raises(pydelta.FileAccessError, match="is not a regular file"):
        pydelta.Patcher(dev, io.BytesIO())


def test_unwritable_outputs(case, tmp_path):
    d = case["dir"]
    nodir = tmp_path / "no" / "such" / "dir" / "out"
    for call, what in [
        (lambda out: pydelta.signature(d / "old", out), "signature"),
        (lambda out: pydelta.delta(d / "sig", d / "new", out), "delta"),
        (lambda out: pydelta.patch(d / "old", d / "delta", out), "output"),
    ]:
        with pytest.raises(pydelta.FileAccessError) as info:
            call(nodir)
        assert f"cannot write {what} {nodir}: No such file or directory" in str(info.value)
        assert isinstance(info.value, OSError)
        # parent is a regular file
        with pytest.raises(pydelta.FileAccessError, match="Not a directory"):
            call(d / "old" / "out")
        # target is a directory
        with pytest.raises(pydelta.FileAccessError, match="it is a directory"):
            call(tmp_path)
    assert tmp_leftovers(d) == [] and tmp_leftovers(tmp_path) == []


def test_output_to_fifo_path(case, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # hold the read end open (non-blocking) so a writer can open it at once
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            pydelta.signature(case["dir"] / "old", fifo, block_size=64)
        except pydelta.FileAccessError:
            pass  # refusing is acceptable
        else:
            got = b""
            while chunk := _read_nb(rfd):
                got += chunk
            assert got == case["sig"]
        assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a regular file"
    finally:
        os.close(rfd)
    assert tmp_leftovers(tmp_path) == []


def _read_nb(fd):
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""


def test_output_to_device_path(case, tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except (PermissionError, OSError):
        pytest.xfail("cannot create a device node here")  # pragma: no cover
    try:
        pydelta.delta(case["dir"] / "sig", case["dir"] / "new", dev)
    except pydelta.FileAccessError:
        pass
    assert stat.S_ISCHR(os.stat(dev).st_mode), "the device was replaced by a regular file"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_output_dir(case, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(pydelta.FileAccessError, match="Permission denied"):
            pydelta.patch(case["dir"] / "old", case["dir"] / "delta", ro / "out")
    finally:
        ro.chmod(0o755)


class FailingReader(io.RawIOBase):
    def __init__(self, data: bytes, fail_at: int):
        self._r = TinyReader(data, 1 << 30)
        self._left = fail_at
        self.name = "flaky"

    def readable(self):
        return True

    def readinto(self, b):
        if self._left <= 0:
            raise OSError(errno.EIO, "Input/output error")
        view = memoryview(b)[: self._left]
        n = self._r.readinto(view)
        self._left -= n
        return n


def test_read_errors_become_file_access_errors(case, tmp_path):
    with pytest.raises(pydelta.FileAccessError, match="cannot read flaky: Input/output error"):
        pydelta.signature(FailingReader(case["old"], 100), tmp_path / "s", block_size=64)
    with pytest.raises(pydelta.FileAccessError, match="cannot read flaky"):
        pydelta.delta(case["sig"], FailingReader(case["new"], 500), tmp_path / "d")
    g = OutGuard(tmp_path)
    with pytest.raises(pydelta.FileAccessError, match="cannot read flaky"):
        pydelta.patch(case["dir"] / "old", FailingReader(case["delta"], 60), g.path)
    g.check()
    assert not (tmp_path / "s").exists() and not (tmp_path / "d").exists()


def test_bad_argument_types(case, tmp_path):
    with pytest.raises(TypeError, match="old file must be a path or a binary file object"):
        pydelta.signature(12345)
    with pytest.raises(TypeError, match="signature must be a path or a binary file object"):
        pydelta.signature(case["dir"] / "old", 3.5)
    assert tmp_leftovers(tmp_path) == []


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize("bs", [0, -1, -4096, (1 << 26) + 1, 1 << 40])
def test_block_size_out_of_range(case, tmp_path, bs):
    with pytest.raises(pydelta.UsageError) as info:
        pydelta.signature(case["dir"] / "old", block_size=bs)
    assert isinstance(info.value, ValueError)
    assert f"block size {bs} is out of range: use 1..{1 << 26} bytes" == str(info.value)
    with pytest.raises(ValueError, match="out of range"):
        pydelta.signature(case["dir"] / "old", tmp_path / "s", block_size=bs)
    assert not (tmp_path / "s").exists() and tmp_leftovers(tmp_path) == []
    with pytest.raises(pydelta.UsageError):
        list(pydelta.iter_signature(case["dir"] / "old", block_size=bs))


@pytest.mark.parametrize("bs", [1.5, "64", True, b"x"])
def test_block_size_wrong_type(case, bs):
    with pytest.raises(pydelta.UsageError, match="block size must be an integer"):
        pydelta.signature(case["dir"] / "old", block_size=bs)


def test_block_size_limits_accepted(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    for bs in (1, 1 << 26):
        s = pydelta.signature(tmp_path / "f", block_size=bs)
        assert pydelta.load_signature(s).info.block_len == bs


@pytest.mark.parametrize("sl", [0, 7, 33, -16, 1000, True, 16.0])  # None: the default, 16
def test_strong_len_out_of_range(case, sl):
    with pytest.raises(pydelta.UsageError) as info:
        pydelta.signature(case["dir"] / "old", strong_len=sl)
    assert isinstance(info.value, ValueError)
    # the default hash is XXH3-128 (8..16 bytes); a longer integer length picks BLAKE3
    if type(sl) is int and sl > 16:
        want = f"strong hash length {sl!r} is out of range for BLAKE3: use 8..32 bytes"
    else:
        want = (
            f"strong hash length {sl!r} is out of range for XXH3-128: use 8..16 bytes"
            " (up to 32 with BLAKE3: --hash blake3)"
        )
    assert want == str(info.value)


def test_unknown_backend_is_usage_error(monkeypatch):
    from pydelta import backends as _backend

    stand_in, notice = _backend._select("rust")  # never raises at import
    assert stand_in.NAME == "none" and notice is None
    with pytest.raises(pydelta.UsageError, match="unknown PYDELTA_BACKEND 'rust'"):
        stand_in.Blake3()


def test_error_hierarchy():
    assert issubclass(pydelta.UsageError, ValueError)
    assert issubclass(pydelta.FileAccessError, OSError)
    for cls in (
        pydelta.NotASignatureError,
        pydelta.NotADeltaError,
        pydelta.UnsupportedVersionError,
    ):
        assert issubclass(cls, pydelta.FormatError)
    for cls in (pydelta.CorruptSignatureError, pydelta.CorruptDeltaError):
        assert issubclass(cls, pydelta.CorruptError)
    for cls in (
        pydelta.WrongBasisError,
        pydelta.VerificationError,
        pydelta.FormatError,
        pydelta.CorruptError,
        pydelta.UsageError,
        pydelta.FileAccessError,
    ):
        assert issubclass(cls, pydelta.PydeltaError)


# ---------------------------------------------------------------- fuzzing: only PydeltaError, ever

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_big = st.one_of(st.integers(0, 4000), st.integers(0, 2**64 - 1))
_op = st.one_of(
    st.tuples(_big, _big).map(lambda t: _copy(*t)),
    st.binary(max_size=40).map(_lit),
    st.tuples(st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32)).map(
        lambda t: b"E" + struct.pack("<Q", t[0]) + t[1]
    ),
    st.binary(max_size=12),  # raw junk
    st.sampled_from([b"C", b"L", b"E", b"\x80", b"\xff" * 10]),
)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, max_size=8), piece=st.sampled_from([None, 1, 5]))
def test_fuzz_patch_only_pydelta_errors(case, tmp_path, small_buffers, ops, piece):
    d = _header(case["old"], case["sig"]) + b"".join(ops)
    sink = io.BytesIO()
    try:
        if piece is None:
            pydelta.patch(case["dir"] / "old", io.BytesIO(d), sink)
        else:
            with pydelta.Patcher(case["dir"] / "old", sink) as p:
                for i in range(0, len(d), piece):
                    p.write(d[i : i + piece])
    except pydelta.PydeltaError:
        pass
    else:
        # accepted: then it really is a well-formed delta for what it produced
        parsed = parse_delta(d)
        assert parsed.result_digest == pydelta.blake3_digest(sink.getvalue())
    try:
        pydelta.info(io.BytesIO(d))
    except pydelta.PydeltaError:
        pass


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzz_signature_only_pydelta_errors(case, edits, cut):
    s = bytearray(case["sig"])
    for pos, val in edits:
        s[pos % len(s)] = val
    if cut is not None:
        s = s[: cut % (len(s) + 1)]
    try:
        sig = pydelta.load_signature(bytes(s))
    except pydelta.PydeltaError:
        return
    assert bytes(s) == case["sig"]  # only the unmodified signature loads
    assert sig.info.basis_size == len(case["old"])
