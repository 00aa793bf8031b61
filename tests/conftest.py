"""Shared helpers for the pydelta test suite.

Everything random here is seeded, so a failure reproduces exactly.
"""

from __future__ import annotations

import io
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

import pydelta
from pydelta.formats import native as fmt

DELTA_HEADER_LEN = fmt.DELTA_HEADER.size  # 60
SIG_HEADER_LEN = fmt.SIG_HEADER.size  # 16
SIG_TRAILER_LEN = fmt.SIG_TRAILER.size  # 52
END_LEN = 41  # 'E' + u64 size + 32-byte digest

WEAK_M = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- data


def rand_bytes(n: int, seed: int) -> bytes:
    """n deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


@pytest.fixture
def rng() -> random.Random:
    """A seeded random generator, fresh for every test."""
    return random.Random(0xD17A)


@pytest.fixture
def make_bytes():
    """make_bytes(n, seed=...) -> deterministic bytes."""
    return rand_bytes


# ---------------------------------------------------------------- pure-Python oracles


def py_weak(data: bytes) -> int:
    """The weak sum from csrc/internal.h: sum c_i * M^(n-1-i) mod 2^64 (Horner)."""
    h = 0
    for c in data:
        h = (h * WEAK_M + c) & MASK64
    return h


def py_weak_direct(data: bytes) -> int:
    """The same sum, evaluated literally term by term (not Horner)."""
    n = len(data)
    return sum(c * pow(WEAK_M, n - 1 - i, 1 << 64) for i, c in enumerate(data)) & MASK64


# ---------------------------------------------------------------- delta parsing (independent)


def read_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def enc_varint(v: int) -> bytes:
    """Canonical unsigned LEB128."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


@dataclass
class ParsedDelta:
    magic: bytes
    version: int
    strong_len: int
    flags: int
    reserved: int
    block_len: int
    basis_size: int
    sig_digest: bytes
    ops: List[tuple] = field(default_factory=list)  # ('C', off, len) / ('L', bytes)
    result_size: int = -1
    result_digest: bytes = b""

    @property
    def copies(self) -> List[tuple]:
        return [op for op in self.ops if op[0] == "C"]

    @property
    def literals(self) -> List[tuple]:
        return [op for op in self.ops if op[0] == "L"]

    @property
    def copied(self) -> int:
        return sum(op[2] for op in self.copies)

    @property
    def literal(self) -> int:
        return sum(len(op[1]) for op in self.literals)


def _inflate(frame: bytes, n: int, transform: int) -> bytes:
    """Decompress a 'Z' payload independently of pydelta (zstd + optional ungrouping)."""
    import zstandard

    raw = zstandard.ZstdDecompressor().decompress(frame, max_output_size=n)
    assert len(raw) == n
    if transform == 2:  # 16-bit byte grouping: bytes at even offsets, then at odd ones
        evens = (n + 1) // 2
        out = bytearray(n)
        out[0::2] = raw[:evens]
        out[1::2] = raw[evens:]
        raw = bytes(out)
    else:
        assert transform == 1, transform
    return raw


def parse_delta(data: bytes) -> ParsedDelta:
    """Parse a well-formed delta completely (asserting its structure)."""
    magic, ver, sl, flags, res, bl, bs, sd, _check = fmt.DELTA_HEADER.unpack_from(data, 0)
    p = ParsedDelta(magic, ver, sl, flags, res, bl, bs, sd)
    pos = DELTA_HEADER_LEN
    while True:
        op = data[pos]
        pos += 1
        if op == ord("C"):
            off, pos = read_varint(data, pos)
            n, pos = read_varint(data, pos)
            p.ops.append(("C", off, n))
        elif op == ord("L"):
            n, pos = read_varint(data, pos)
            p.ops.append(("L", data[pos : pos + n]))
            assert len(p.ops[-1][1]) == n, "literal runs past the end of the delta"
            pos += n
        elif op == ord("Z"):
            # a compressed LITERAL: raw length, transform, frame length, zstd frame
            assert flags & 1, "compressed literal without the header flag"
            n, pos = read_varint(data, pos)
            transform = data[pos]
            pos += 1
            zlen, pos = read_varint(data, pos)
            raw = _inflate(data[pos : pos + zlen], n, transform)
            pos += zlen
            p.ops.append(("L", raw))
        elif op == ord("E"):
            p.result_size = struct.unpack_from("<Q", data, pos)[0]
            p.result_digest = data[pos + 8 : pos + 40]
            pos += 40
            break
        else:  # pragma: no cover - would be a writer bug
            raise AssertionError(f"unknown opcode {op:#x} at {pos - 1}")
    assert pos == len(data), "bytes after the END trailer"
    return p


def apply_ops(old: bytes, parsed: ParsedDelta) -> bytes:
    """Apply a parsed delta in pure Python (an oracle for patch)."""
    out = bytearray()
    for op in parsed.ops:
        if op[0] == "C":
            assert op[1] + op[2] <= len(old)
            out += old[op[1] : op[1] + op[2]]
        else:
            out += op[1]
    return bytes(out)


# ---------------------------------------------------------------- tiny I/O


class TinyReader(io.RawIOBase):
    """A readable stream returning at most ``k`` bytes per read/readinto call.

    It has no fileno() and no getbuffer(), so pydelta cannot learn its size
    or take shortcuts: it sees a pipe-like stream that dribbles.
    """

    def __init__(self, data: bytes, k: int, name: str = "tiny") -> None:
        super().__init__()
        self._data = bytes(data)
        self._pos = 0
        self._k = k
        self.calls = 0
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        self.calls += 1
        view = memoryview(b).cast("B")
        n = min(self._k, len(view), len(self._data) - self._pos)
        view[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if size is None or size < 0:  # read to EOF, as io defines it
            return self.readall()
        n = min(self._k, size, len(self._data) - self._pos)
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def readall(self) -> bytes:
        # read() / read(-1) must return everything up to EOF (io semantics);
        # gather it through small reads all the same.
        parts = []
        while True:
            piece = self.read(self._k)
            if not piece:
                return b"".join(parts)
            parts.append(piece)


class ReadOnlyTiny:
    """Like TinyReader but with only ``read`` (no readinto) - a minimal duck type."""

    def __init__(self, data: bytes, k: int) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._k = k
        self.name = "read-only tiny"

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # read to EOF, as io defines it
            out = self._data[self._pos :]
            self._pos = len(self._data)
            return out
        n = min(self._k, size, len(self._data) - self._pos)
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out


# ---------------------------------------------------------------- round trip


@dataclass
class Roundtrip:
    old: bytes
    new: bytes
    sig: bytes
    delta: bytes
    stats: "pydelta.DeltaStats"
    info: dict
    parsed: ParsedDelta
    result: "pydelta.PatchResult"
    patched: bytes
    block_len: int


def do_roundtrip(
    directory: Path,
    old: bytes,
    new: bytes,
    block_size: Optional[int] = None,
    strong_len: int = 16,
) -> Roundtrip:
    """signature -> delta -> patch through files in ``directory``; checks the basics."""
    directory = Path(directory)
    old_p, new_p = directory / "old.bin", directory / "new.bin"
    sig_p, delta_p, out_p = directory / "old.sig", directory / "new.delta", directory / "out.bin"
    old_p.write_bytes(old)
    new_p.write_bytes(new)
    sig_info = pydelta.signature(old_p, sig_p, block_size=block_size, strong_len=strong_len)
    stats = pydelta.delta(sig_p, new_p, delta_p)
    result = pydelta.patch(old_p, delta_p, out_p)
    patched = out_p.read_bytes()
    sig = sig_p.read_bytes()
    dbytes = delta_p.read_bytes()
    parsed = parse_delta(dbytes)
    info = pydelta.info(delta_p).fields

    # always-true invariants
    assert patched == new
    assert result.size == len(new)
    assert result.digest == pydelta.blake3_digest(new)
    assert sig_info.basis_size == len(old)
    assert stats.new_size == len(new)
    assert stats.copied + stats.literal == len(new)
    assert stats.delta_size == len(dbytes)
    assert stats.copied == parsed.copied == info["copied bytes"]
    assert stats.literal == parsed.literal == info["literal bytes"]
    assert info["copy instructions"] == len(parsed.copies)
    assert info["literal instructions"] == len(parsed.literals)
    assert info["result size"] == len(new)
    assert apply_ops(old, parsed) == new
    # no zero-length ops, literals never longer than the writer's limit
    assert all(op[2] > 0 for op in parsed.copies)
    assert all(0 < len(op[1]) <= pydelta._backend_module.LIT_MAX for op in parsed.literals)
    # neighbouring copies that continue each other are merged
    for a, b in zip(parsed.ops, parsed.ops[1:]):
        if a[0] == "C" and b[0] == "C":
            assert a[1] + a[2] != b[1], f"unmerged adjacent copies {a} {b}"
    # no temp files left behind
    assert not [p for p in os.listdir(directory) if p.endswith(".pydelta-tmp")]
    return Roundtrip(
        old, new, sig, dbytes, stats, info, parsed, result, patched, sig_info.block_len
    )


@pytest.fixture
def roundtrip(tmp_path):
    """roundtrip(old, new, block_size=None, strong_len=16) -> Roundtrip (files in tmp_path)."""
    counter = [0]

    def run(old: bytes, new: bytes, block_size: Optional[int] = None, strong_len: int = 16):
        counter[0] += 1
        d = tmp_path / f"rt{counter[0]}"
        d.mkdir()
        return do_roundtrip(d, old, new, block_size, strong_len)

    return run


def tmp_leftovers(directory) -> list:
    """Temporary files pydelta may have left in a directory."""
    return sorted(p for p in os.listdir(directory) if p.endswith(".pydelta-tmp"))


@pytest.fixture(autouse=True, scope="session")
def _sig_cache_dir(tmp_path_factory):
    """Sync's signature cache (pydelta/sync/sigcache.py) in a scratch directory, not
    ~/.cache, for this process and the `pydelta serve` it starts (not over sshd)."""
    old = os.environ.get("PYDELTA_SIG_CACHE")
    os.environ["PYDELTA_SIG_CACHE"] = str(tmp_path_factory.mktemp("sigcache"))
    yield
    if old is None:
        os.environ.pop("PYDELTA_SIG_CACHE", None)
    else:
        os.environ["PYDELTA_SIG_CACHE"] = old


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """One loopback OpenSSH server (tests/sshd_server.py) for the whole session.

    Skips when sshd/ssh/ssh-keygen are missing, unless PYDELTA_REQUIRE_SSHD=1 (CI).
    """
    from sshd_server import LoopbackSSHD

    if not LoopbackSSHD.available():
        why = "loopback ssh tests need " + ", ".join(LoopbackSSHD.missing()) + " (openssh-server)"
        if os.environ.get("PYDELTA_REQUIRE_SSHD") == "1":
            pytest.fail(why + " and PYDELTA_REQUIRE_SSHD=1", pytrace=False)
        pytest.skip(why)
    with LoopbackSSHD(str(tmp_path_factory.mktemp("sshd"))) as server:
        yield server


# ---------------------------------------------------------------- strict mode (CI)

#: PYDELTA_REQUIRE_TOOLS=1 (set by .ci/run): a test that would skip fails
#: instead - a missing tool (rdiff, sshd), test dependency (numba, blake3)
#: or resource (free disk) must not quietly shrink what CI checks.
REQUIRE_TOOLS = os.environ.get("PYDELTA_REQUIRE_TOOLS") == "1"

#: Skips that stay skips even then: they depend on who runs the suite, not
#: on anything CI could install (matched against the skip reason).
ALLOWED_SKIPS = (
    "root may write anywhere",  # permission tests, meaningless as root
    "root ignores modes",
    "hashlib has no MD4",  # OpenSSL 3; the RFC 1320 vectors cover MD4
    "needs root and unshare -m",  # a harness self-test, not a pydelta test
    "a C-only kernel",  # the numba pass of a C kernel's test: the C pass runs it
)


def _skip_reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _strict(report) -> None:
    """Turn a skip report into a failure unless its reason is allowed."""
    if not (REQUIRE_TOOLS and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report.longrepr)
    if any(ok in reason for ok in ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped, but PYDELTA_REQUIRE_TOOLS=1 forbids skipping: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _strict(outcome.get_result())


# ---------------------------------------------------------------- model store
# moto S3 server, the local/S3 store parametrisation and the fault proxy
from store_fixtures import fault_proxy, moto_endpoint, store  # noqa: E402,F401
