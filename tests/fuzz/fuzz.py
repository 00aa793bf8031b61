"""Mutation fuzzing of pydelta's inputs through its public API.

Targets (``--target``):

``sig``          native signatures: load_signature, info, delta against them
``rdiff-sig``    librsync signatures, the same
``delta``        native deltas (plain and with zstd 'Z' literals): patch, info
``rdiff-delta``  librsync deltas: patch, info
``sync-client``  what a serving end sends to a pulling SyncClient (frames,
                 JSON, signature and delta streams), replayed with mutations
``sync-server``  what a client sends to ``pydelta.serve`` (put and get)

Each input is a seed (made at start-up from small deterministic files) with
one to four mutations: bit flips, interesting bytes and integers (0, 1,
2**31, 2**32-1, 2**63, 2**64-1 as u32/u64, little and big endian, and as
LEB128 varints), inserted, deleted, duplicated or spliced ranges, and
truncation. The oracles, for every input:

* nothing escapes but :class:`pydelta.PydeltaError` subclasses (no other
  exception, no crash of the interpreter);
* no hang: each input gets ``--timeout`` seconds (SIGALRM); a C loop that
  never returns is caught by the ``--watchdog`` parent, which kills the
  worker and keeps the input;
* a result that verifies is right: a patched file equals what its delta's
  END digest promises (and the new file, when the delta was honest in that
  part); a file a sync reports as created or updated holds the source's
  bytes; nothing is written outside the destination;
* the outcome does not depend on how the input is chunked (patch fed in
  random pieces, NEW read through a reader returning a few bytes at a time,
  frames written in random pieces).

Run:

    .venv/bin/python tests/fuzz/fuzz.py --seconds 60                # all targets, 60 s each
    .venv/bin/python tests/fuzz/fuzz.py --target delta --iterations 100000 --seed 7
    PYDELTA_BACKEND=numba .venv/bin/python tests/fuzz/fuzz.py --seconds 600 --watchdog

Failing inputs are written to ``--out`` (default tests/fuzz/findings/) with
the target and the reason, and the exit status is 1. tests/fuzz/test_fuzz.py
runs a short bounded campaign (a few hundred inputs per target) in the test
suite; docs/FUZZING.md describes the longer campaign.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: evil_peer

import evil_peer as E  # noqa: E402

import pydelta  # noqa: E402

TARGETS = ("sig", "rdiff-sig", "delta", "rdiff-delta", "sync-client", "sync-server")


class Finding(Exception):
    """An oracle failed for this input."""


class InputTimeout(BaseException):
    """The per-input time limit passed (raised by SIGALRM)."""


# ---------------------------------------------------------------- data


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _pair(seed: int, size: int = 12_000) -> Tuple[bytes, bytes]:
    """An old/new pair with shifts, edits, repeats and a compressible run."""
    r = random.Random(seed)
    old = _rand(size, seed)
    new = bytearray(old)
    for _ in range(3):
        p = r.randrange(len(new))
        new[p : p + r.randrange(1, 200)] = _rand(r.randrange(0, 300), r.random())
    new = b"hdr" + bytes(new[: size // 2]) + bytes(2500) + bytes(new[size // 2 :]) + old[:900]
    return old, bytes(new)


class Seeds:
    """Valid inputs to mutate (built once, deterministic)."""

    def __init__(self) -> None:
        self.pairs = [_pair(1), _pair(2, 5000), (b"", _pair(3, 3000)[1]), (_pair(4, 4000)[0], b"")]
        self.sigs: List[Tuple[bytes, int]] = []  # (native sig, pair index)
        self.rsigs: List[Tuple[bytes, int]] = []
        self.deltas: List[Tuple[bytes, int]] = []  # (native delta, pair index)
        self.rdeltas: List[Tuple[bytes, int]] = []
        for i, (old, new) in enumerate(self.pairs):
            for bs in (64, 1024, 5000):
                sig = pydelta.signature(io.BytesIO(old), block_size=bs, strong_len=8 + (bs % 25))
                self.sigs.append((sig, i))
                for compress in (False, True):
                    d = pydelta.delta(sig, io.BytesIO(new), compress=compress)
                    self.deltas.append((d, i))
            for weak, strong in (("rabinkarp", "blake2"), ("rollsum", "md4")):
                rsig = pydelta.signature(
                    io.BytesIO(old),
                    block_size=256,
                    format="rdiff",
                    rdiff_weak=weak,
                    rdiff_hash=strong,
                )
                self.rsigs.append((rsig, i))
                self.rdeltas.append((pydelta.delta(rsig, io.BytesIO(new)), i))


# ---------------------------------------------------------------- mutation

_INTS = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    1 << 32,
    (1 << 63) - 1,
    1 << 63,
    (1 << 64) - 1,
]


def _varint(v: int) -> bytes:
    return E.varint(v)


def mutate(data: bytes, r: random.Random, others: List[bytes]) -> bytes:
    """One to four random mutations of ``data``."""
    b = bytearray(data)
    for _ in range(r.choice((1, 1, 1, 2, 2, 3, 4))):
        op = r.randrange(11)
        n = len(b)
        if op == 0 and n:  # flip a bit
            p = r.randrange(n)
            b[p] ^= 1 << r.randrange(8)
        elif op == 1 and n:  # an interesting byte
            b[r.randrange(n)] = r.choice((0, 1, 0x7F, 0x80, 0xFF, r.randrange(256)))
        elif op == 2 and n:  # an interesting integer, LE or BE, 4 or 8 bytes
            v = r.choice(_INTS)
            w = r.choice((4, 8))
            enc = (v & ((1 << (8 * w)) - 1)).to_bytes(w, r.choice(("little", "big")))
            p = r.randrange(n)
            b[p : p + w] = enc
        elif op == 3 and n:  # an interesting varint in place of whatever was there
            p = r.randrange(n)
            b[p : p + r.randrange(1, 10)] = _varint(r.choice(_INTS))
        elif op == 4:  # insert random bytes
            p = r.randrange(n + 1)
            b[p:p] = r.randbytes(r.choice((1, 2, 8, 100, 3000)))
        elif op == 5 and n:  # delete a range
            p = r.randrange(n)
            del b[p : p + r.choice((1, 2, 8, 100, 5000))]
        elif op == 6 and n:  # duplicate a range
            p = r.randrange(n)
            k = r.choice((1, 8, 100, 2000))
            b[p:p] = b[p : p + k]
        elif op == 7 and n:  # truncate
            del b[r.randrange(n) :]
        elif op == 8 and others:  # splice from another seed
            o = r.choice(others)
            if o:
                p, q = r.randrange(n + 1), r.randrange(len(o))
                b[p:] = o[q:]
        elif op == 9 and n:  # random bytes over a range
            p = r.randrange(n)
            k = r.choice((1, 4, 16))
            b[p : p + k] = r.randbytes(k)
        elif op == 10 and n > 1:  # swap two bytes
            p, q = r.randrange(n), r.randrange(n)
            b[p], b[q] = b[q], b[p]
    return bytes(b)


def fix_checks(data: bytes, r: random.Random) -> bytes:
    """Half the time, recompute the integrity checks a mutation broke, so the
    input gets past them into the parsers and kernels behind: a native
    signature's trailer digest, a native delta's header check."""
    if r.random() < 0.5:
        return data
    if data[:4] == b"PDSG" and len(data) >= 68 and data[-4:] == b"PDSE":
        return data[:-36] + pydelta.blake3_digest(data[:-36]) + b"PDSE"
    if data[:4] == b"PDDL" and len(data) >= 60:
        return data[:52] + pydelta.blake3_digest(data[:52], 8) + data[60:]
    return data


_JSON_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1 << 31,
    1 << 63,
    1 << 70,
    1.5,
    1e308,
    "",
    "x" * 300,
    "../../etc/passwd",
    "/abs",
    "a/../b",
    "a\x00b",
    [],
    {},
    [1, 2],
    {"a": 1},
]


def _mutate_json(obj: object, r: random.Random, depth: int = 0) -> object:
    if isinstance(obj, dict) and obj:
        obj = dict(obj)
        k = r.choice(sorted(obj))
        how = r.randrange(4)
        if how == 0:
            del obj[k]
        elif how == 1:
            obj[k] = r.choice(_JSON_VALUES)
        elif how == 2 and depth < 3:
            obj[k] = _mutate_json(obj[k], r, depth + 1)
        else:
            obj[r.choice(("extra", "op", "type", "size", "path", "entries"))] = r.choice(
                _JSON_VALUES
            )
        return obj
    if isinstance(obj, list) and obj:
        obj = list(obj)
        i = r.randrange(len(obj))
        obj[i] = _mutate_json(obj[i], r, depth + 1) if depth < 3 else r.choice(_JSON_VALUES)
        return obj
    return r.choice(_JSON_VALUES)


def mutate_frames(data: bytes, r: random.Random, others: List[bytes]) -> bytes:
    """A sync transcript (magic, then frames) with one JSON message changed
    structurally (half the time), or byte-level mutations (the other half)."""
    if r.random() < 0.5:
        return mutate(data, r, others)
    frames, pos = [], len(E.MAGIC)
    while pos + 5 <= len(data):
        kind, n = E.HEAD.unpack_from(data, pos)
        frames.append((kind, data[pos + 5 : pos + 5 + n]))
        pos += 5 + n
    js = [i for i, (k, _) in enumerate(frames) if k == E.JSON]
    if not js:
        return mutate(data, r, others)
    i = r.choice(js)
    payload = json.dumps(_mutate_json(json.loads(frames[i][1]), r)).encode()
    if r.random() < 0.03:
        payload = b"[" * 50_000 + b"]" * 50_000  # deeper than the JSON decoder recurses
    frames[i] = (E.JSON, payload)
    return data[: len(E.MAGIC)] + b"".join(E.HEAD.pack(k, len(p)) + p for k, p in frames)


# ---------------------------------------------------------------- helpers


class Tiny(io.RawIOBase):
    """Returns at most k bytes per read (no fileno: pydelta sees a dribbling pipe)."""

    def __init__(self, data: bytes, k: int) -> None:
        super().__init__()
        self._d, self._p, self._k = data, 0, k

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        v = memoryview(b).cast("B")
        n = min(self._k, len(v), len(self._d) - self._p)
        v[:n] = self._d[self._p : self._p + n]
        self._p += n
        return n


def _outcome(fn: Callable[[], object]) -> Tuple[str, object]:
    """("ok", value) or ("err", error class name); other exceptions propagate."""
    try:
        return "ok", fn()
    except pydelta.PydeltaError as e:
        str(e)  # messages must render
        return "err", type(e).__name__


def _end_record(delta: bytes) -> Optional[Tuple[int, bytes]]:
    """(size, digest) from a native delta's last 41 bytes, if it ends in 'E'."""
    if len(delta) >= 41 and delta[-41:-40] == b"E":
        return struct.unpack_from("<Q", delta, len(delta) - 40)[0], delta[-32:]
    return None


# ---------------------------------------------------------------- targets


_SEEDS: List[Seeds] = []


def seeds() -> Seeds:
    """The seed corpus, built once per process."""
    if not _SEEDS:
        _SEEDS.append(Seeds())
    return _SEEDS[0]


class Fuzzer:
    def __init__(self, workdir: str) -> None:
        self.dir = workdir
        self.seeds = seeds()
        self.olds: List[str] = []
        for i, (old, _new) in enumerate(self.seeds.pairs):
            p = os.path.join(workdir, f"old{i}")
            with open(p, "wb") as f:
                f.write(old)
            self.olds.append(p)

    # -- signatures ------------------------------------------------------
    def _sig_input(self, data: bytes, pair: int, r: random.Random, native: bool) -> None:
        new = self.seeds.pairs[pair][1]
        _outcome(lambda: pydelta.info(io.BytesIO(data)))
        loaded: object = data
        if native:  # load_signature reads native signatures only
            st, loaded = _outcome(lambda: pydelta.load_signature(data))
            if st != "ok":
                # delta must refuse it too
                st2, _ = _outcome(lambda: pydelta.delta(data, io.BytesIO(new)))
                if st2 == "ok":
                    raise Finding("load_signature refused the signature but delta accepted it")
                return
        st, d = _outcome(lambda: pydelta.delta(loaded, io.BytesIO(new), compress=r.random() < 0.5))
        if st != "ok":
            return
        k = r.choice((1, 7, 100, 4096))
        st2, d2 = _outcome(lambda: pydelta.delta(loaded, Tiny(new, k), compress=False))
        st3, d3 = _outcome(lambda: pydelta.delta(loaded, io.BytesIO(new), compress=False))
        if (st2, d2) != (st3, d3):
            raise Finding(f"delta depends on read chunking ({k}-byte reads)")
        # the delta claims NEW's digest: patching the real old file either
        # verifies to exactly NEW or fails
        self._patch_check(d, pair, expect=new)

    def t_sig(self, r: random.Random) -> bytes:
        sig, pair = r.choice(self.seeds.sigs)
        data = fix_checks(mutate(sig, r, [s for s, _ in self.seeds.sigs]), r)
        self._sig_input(data, pair, r, native=True)
        return data

    def t_rdiff_sig(self, r: random.Random) -> bytes:
        sig, pair = r.choice(self.seeds.rsigs)
        data = mutate(sig, r, [s for s, _ in self.seeds.rsigs])
        self._sig_input(data, pair, r, native=False)
        return data

    # -- deltas ----------------------------------------------------------
    def _patch_check(
        self,
        delta: bytes,
        pair: int,
        expect: Optional[bytes] = None,
        r: Optional[random.Random] = None,
    ) -> None:
        old = self.olds[pair]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pydelta.UnverifiedWarning)
            out = io.BytesIO()
            st, res = _outcome(lambda: pydelta.patch(old, io.BytesIO(delta), out))
            if st == "ok":
                got = out.getvalue()
                assert isinstance(res, pydelta.PatchResult)
                if len(got) != res.size:
                    raise Finding(f"patch says {res.size} bytes but wrote {len(got)}")
                if res.verified:
                    end = _end_record(delta)
                    if end is None or end != (len(got), pydelta.blake3_digest(got)):
                        raise Finding(
                            "patch verified a result that is not what the delta's END says"
                        )
                    if pydelta.blake3_digest(got) != res.digest:
                        raise Finding("PatchResult.digest is not the result's digest")
                if expect is not None and res.verified and got != expect:
                    raise Finding("a verified result differs from NEW")
            if r is None:
                return
            # fed in random pieces through a Patcher: the same outcome and bytes
            out2 = io.BytesIO()

            def pieces() -> object:
                p = pydelta.Patcher(old, out2)
                try:
                    i = 0
                    least = len(delta) // 300  # at most ~300 writes per input
                    while i < len(delta):
                        k = max(least, r.choice((1, 2, 3, 7, 41, 60, 61, 1000, 65536)))
                        p.write(delta[i : i + k])
                        i += k
                except BaseException:
                    p.abort()
                    raise
                return p.close()

            st2, res2 = _outcome(pieces)
            if st2 != st or (st == "ok" and out2.getvalue() != out.getvalue()):
                raise Finding(f"patch depends on chunking: {st}/{res} vs {st2}/{res2}")
            if st == "err" and st2 == "err" and res != res2:
                raise Finding(f"patch error depends on chunking: {res} vs {res2}")

    def t_delta(self, r: random.Random) -> bytes:
        d, pair = r.choice(self.seeds.deltas)
        data = fix_checks(mutate(d, r, [x for x, _ in self.seeds.deltas]), r)
        _outcome(lambda: pydelta.info(io.BytesIO(data)))
        self._patch_check(data, pair, r=r)
        return data

    def t_rdiff_delta(self, r: random.Random) -> bytes:
        d, pair = r.choice(self.seeds.rdeltas)
        data = mutate(d, r, [x for x, _ in self.seeds.rdeltas])
        _outcome(lambda: pydelta.info(io.BytesIO(data)))
        self._patch_check(data, pair, r=r)
        return data

    # -- sync: the client side -------------------------------------------
    def _client_transcript(self, pair: int, have_old: bool) -> bytes:
        """What an honest server sends for a one-file pull (non-reactive)."""
        old, new = self.seeds.pairs[pair]
        basis = old if have_old else b""
        sig = pydelta.signature(io.BytesIO(basis))  # the client's, as sync makes it
        meta = {
            "ok": True,
            "type": "file",
            "size": len(new),
            "mode": 0o640,
            "mtime_ns": 1_700_000_000_123_456_789,
        }
        frames = [E.MAGIC]

        def j(o: object) -> None:
            frames.append(E.HEAD.pack(E.JSON, len(json.dumps(o))) + json.dumps(o).encode())

        j({"ok": True, "proto": 1, "version": "fuzz"})  # hello
        j(meta)  # stat of the source
        j(meta)  # get
        d = pydelta.delta(sig, io.BytesIO(new))
        for i in range(0, len(d), 4000):
            frames.append(E.HEAD.pack(E.DATA, len(d[i : i + 4000])) + d[i : i + 4000])
        frames.append(E.HEAD.pack(E.END, 0))
        j({"ok": True})  # bye
        return b"".join(frames)

    def t_sync_client(self, r: random.Random) -> bytes:
        pair = r.randrange(len(self.seeds.pairs))
        have_old = r.random() < 0.5
        key = (pair, have_old)
        cache = self.__dict__.setdefault("_transcripts", {})
        if key not in cache:
            cache[key] = self._client_transcript(pair, have_old)
        data = mutate_frames(cache[key], r, list(cache.values()))
        old, new = self.seeds.pairs[pair]
        root = tempfile.mkdtemp(dir=self.dir)
        try:
            dest = os.path.join(root, "dest")
            os.mkdir(dest)
            target = os.path.join(dest, "f.bin")
            if have_old:
                with open(target, "wb") as f:
                    f.write(old)
            before = old if have_old else None
            self._replay_to_client(data, target, r)
            entries = sorted(os.listdir(root))
            if entries != ["dest"]:
                raise Finding(f"something was written outside the destination: {entries}")
            for name in os.listdir(dest):
                if name != "f.bin" and not name.endswith(".pydelta-partial"):
                    raise Finding(f"a stray file was left in the destination: {name}")
            if os.path.exists(target):
                with open(target, "rb") as f:
                    got = f.read()
                if got != before and got != new:
                    raise Finding("the synced file is neither the old nor the new content")
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return data

    def _replay_to_client(self, data: bytes, target: str, r: random.Random) -> None:
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()

        def server() -> None:
            # drain what the client sends, write the transcript in random pieces
            def drain() -> None:
                with contextlib.suppress(OSError):
                    while os.read(c2s_r, 1 << 16):
                        pass

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            try:
                i = 0
                while i < len(data):
                    k = r.choice((1, 5, 100, 4096, 1 << 16))
                    i += os.write(s2c_w, data[i : i + k])
            except OSError:
                pass
            finally:
                os.close(s2c_w)
            t.join()
            os.close(c2s_r)

        t = threading.Thread(target=server, daemon=True)
        t.start()
        rf, wf = os.fdopen(s2c_r, "rb"), os.fdopen(c2s_w, "wb")
        try:

            def run() -> object:
                c = pydelta.SyncClient(rf, wf, peer="fuzz")
                c.pull("src.bin", target)
                c.close()
                return None

            _outcome(run)
        finally:
            with contextlib.suppress(OSError):
                wf.close()
            with contextlib.suppress(OSError):
                rf.close()
            t.join(5)

    # -- sync: the server side -------------------------------------------
    def _server_transcript(self, root: str, pair: int, op: str) -> bytes:
        old, new = self.seeds.pairs[pair]
        frames = [E.MAGIC]

        def j(o: object) -> None:
            frames.append(E.HEAD.pack(E.JSON, len(json.dumps(o))) + json.dumps(o).encode())

        def stream(d: bytes) -> None:
            for i in range(0, len(d), 3000):
                frames.append(E.HEAD.pack(E.DATA, len(d[i : i + 3000])) + d[i : i + 3000])
            frames.append(E.HEAD.pack(E.END, 0))

        j({"op": "hello", "proto": 1, "version": "fuzz"})
        j({"op": "stat", "path": "f.bin"})
        j({"op": "walk", "root": "."})
        if op == "put":
            sig = pydelta.signature(io.BytesIO(old))  # the server's signature of its copy
            j(
                {
                    "op": "put",
                    "root": ".",
                    "path": "f.bin",
                    "mode": 0o644,
                    "mtime_ns": 1_600_000_000_000_000_000,
                    "size": len(new),
                    "fsync": False,
                }
            )
            stream(pydelta.delta(sig, io.BytesIO(new)))
        else:
            j({"op": "get", "root": ".", "path": "f.bin", "compress": True, "level": 1})
            stream(pydelta.signature(io.BytesIO(new[: len(new) // 2])))
        j({"op": "mkdir", "root": ".", "path": "sub"})
        j({"op": "delete", "root": ".", "path": "sub"})
        j({"op": "bye"})
        return b"".join(frames)

    def t_sync_server(self, r: random.Random) -> bytes:
        pair = r.randrange(len(self.seeds.pairs))
        op = r.choice(("put", "get"))
        key = (pair, op)
        cache = self.__dict__.setdefault("_stranscripts", {})
        if key not in cache:
            cache[key] = self._server_transcript(".", pair, op)
        data = mutate_frames(cache[key], r, list(cache.values()))
        old, new = self.seeds.pairs[pair]
        root = tempfile.mkdtemp(dir=self.dir)
        tree = os.path.join(root, "tree")
        os.mkdir(tree)
        with open(os.path.join(tree, "f.bin"), "wb") as f:
            f.write(old)
        cwd = os.getcwd()
        try:
            os.chdir(tree)
            self._replay_to_server(data, r)
            os.chdir(cwd)
            if sorted(os.listdir(root)) != ["tree"]:
                raise Finding(f"something was written outside the tree: {os.listdir(root)}")
            target = os.path.join(tree, "f.bin")
            if os.path.exists(target):
                with open(target, "rb") as f:
                    got = f.read()
                if got != old and got != new:
                    raise Finding("the served file is neither the old nor the new content")
        finally:
            os.chdir(cwd)
            shutil.rmtree(root, ignore_errors=True)
        return data

    def _replay_to_server(self, data: bytes, r: random.Random) -> None:
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()

        def client() -> None:
            def drain() -> None:
                with contextlib.suppress(OSError):
                    while os.read(s2c_r, 1 << 16):
                        pass

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            try:
                i = 0
                while i < len(data):
                    k = r.choice((1, 5, 100, 4096, 1 << 16))
                    i += os.write(c2s_w, data[i : i + k])
            except OSError:
                pass
            finally:
                os.close(c2s_w)
            t.join()
            os.close(s2c_r)

        t = threading.Thread(target=client, daemon=True)
        t.start()
        rf, wf = os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb")
        try:
            _outcome(lambda: pydelta.serve(rf, wf))
        finally:
            with contextlib.suppress(OSError):
                wf.close()
            with contextlib.suppress(OSError):
                rf.close()
            t.join(5)


# ---------------------------------------------------------------- the loop


def _alarm(signum, frame):  # noqa: ANN001
    raise InputTimeout()


def run(
    target: str,
    *,
    iterations: Optional[int],
    seconds: Optional[float],
    seed: int,
    timeout: float,
    out: Optional[str],
    heartbeat: Optional[str] = None,
    quiet: bool = False,
) -> Dict[str, object]:
    """Fuzz one target; returns counts and the findings (as (reason, path or hex))."""
    work = tempfile.mkdtemp(prefix="pydelta-fuzz-")
    fz = Fuzzer(work)
    fn = getattr(fz, "t_" + target.replace("-", "_"))
    rng = random.Random(seed)
    findings: List[Tuple[str, str]] = []
    n = 0
    t0 = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, _alarm)
    try:
        while True:
            if iterations is not None and n >= iterations:
                break
            if seconds is not None and time.monotonic() - t0 >= seconds:
                break
            r = random.Random(rng.getrandbits(64))
            case_seed = r.getrandbits(64)
            if heartbeat:
                with open(heartbeat, "w") as f:
                    f.write(f"{target} {seed} {n} {case_seed}\n")
            signal.setitimer(signal.ITIMER_REAL, timeout)
            data = b""
            try:
                data = fn(random.Random(case_seed))
                reason = None
            except InputTimeout:
                reason = f"hang: no answer within {timeout} s"
            except Finding as e:
                reason = str(e)
            except Exception as e:  # noqa: BLE001 - any other exception is a finding
                import traceback

                reason = f"uncaught {type(e).__name__}: {e}\n" + traceback.format_exc()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            n += 1
            if reason is not None:
                where = _save(out, target, case_seed, data, reason)
                findings.append((reason.splitlines()[0], where))
                if not quiet:
                    print(
                        f"[{target}] FINDING #{n} (case seed {case_seed}): {reason}",
                        file=sys.stderr,
                    )
    finally:
        signal.signal(signal.SIGALRM, old_handler)
        shutil.rmtree(work, ignore_errors=True)
    return {"target": target, "inputs": n, "seconds": time.monotonic() - t0, "findings": findings}


def _save(out: Optional[str], target: str, case_seed: int, data: bytes, reason: str) -> str:
    if not out:
        return f"case seed {case_seed}"
    os.makedirs(out, exist_ok=True)
    h = hashlib.sha256(data).hexdigest()[:16]
    path = os.path.join(out, f"{target}-{h}")
    with open(path + ".bin", "wb") as f:
        f.write(data)
    with open(path + ".txt", "w") as f:
        f.write(f"target {target}\ncase seed {case_seed}\nbackend {pydelta.backend}\n{reason}\n")
    return path + ".bin"


def replay(target: str, case_seed: int) -> None:
    """Run one case again (by its case seed) and let any exception through."""
    work = tempfile.mkdtemp(prefix="pydelta-fuzz-")
    try:
        fz = Fuzzer(work)
        getattr(fz, "t_" + target.replace("-", "_"))(random.Random(case_seed))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _watchdog(argv: List[str], hang_after: float, out: str) -> int:
    """Run this script as a worker; kill it when its heartbeat stops, keep the case."""
    hb = tempfile.mktemp(prefix="pydelta-fuzz-hb-")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--heartbeat", hb])
    last, seen = time.monotonic(), ""
    while proc.poll() is None:
        time.sleep(0.5)
        try:
            with open(hb) as f:
                cur = f.read()
        except OSError:
            cur = ""
        if cur != seen:
            seen, last = cur, time.monotonic()
        elif time.monotonic() - last > hang_after:
            proc.kill()
            proc.wait()
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, f"hang-{int(time.time())}.txt"), "w") as f:
                f.write(f"worker stuck for {hang_after} s on: {cur}")
            print(f"HANG (worker killed): {cur.strip()}; replay with --replay", file=sys.stderr)
            return 1
    with contextlib.suppress(OSError):
        os.unlink(hb)
    return proc.returncode


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description="mutation fuzzing of pydelta through its public API")
    ap.add_argument("--target", default="all", choices=("all",) + TARGETS)
    ap.add_argument("--iterations", type=int, help="inputs per target")
    ap.add_argument("--seconds", type=float, help="seconds per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    ap.add_argument("--out", default=os.path.join(HERE, "findings"))
    ap.add_argument("--replay", type=int, metavar="CASE_SEED", help="rerun one case of --target")
    ap.add_argument(
        "--watchdog",
        action="store_true",
        help="run in a worker process and catch hangs that SIGALRM cannot interrupt",
    )
    ap.add_argument("--heartbeat", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.replay is not None:
        replay(args.target, args.replay)
        print("no finding")
        return 0
    if args.watchdog:
        rest = [a for a in argv if a != "--watchdog"]
        return _watchdog(rest, max(30.0, 3 * args.timeout), args.out)
    if args.iterations is None and args.seconds is None:
        args.seconds = 10.0
    targets = TARGETS if args.target == "all" else (args.target,)
    bad = 0
    for t in targets:
        res = run(
            t,
            iterations=args.iterations,
            seconds=args.seconds,
            seed=args.seed,
            timeout=args.timeout,
            out=args.out,
            heartbeat=args.heartbeat,
        )
        found = res["findings"]
        bad += len(found)  # type: ignore[arg-type]
        rate = res["inputs"] / max(res["seconds"], 1e-9)  # type: ignore[operator]
        print(
            f"{t:12s} {res['inputs']:8d} inputs in {res['seconds']:7.1f}s "
            f"({rate:6.0f}/s, backend {pydelta.backend}): {len(found)} findings",
            flush=True,
        )  # type: ignore[arg-type]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
