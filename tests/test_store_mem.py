"""Store memory per chunk: push and pull stay at a few dozen bytes a chunk.

Forced tiny chunks (256 bytes average) give a few MiB file the chunk count
of a multi-GB model. Each operation runs in a child process and its peak
RSS (VmHWM) at two file sizes gives what each more chunk costs. Before the
compact index and the windowed pull plan this was 600-2,700 bytes a chunk.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

#: Bytes a chunk may cost in a push or a pull (measured: 130-230; before: 600+).
LIMIT = 400

CHILD = r"""
import json, sys
spec = json.loads(sys.argv[1])
import pydelta
if spec["op"] == "push":
    r = pydelta.push(spec["src"], spec["store"], tag="t", chunk_avg=256, pack_size=256 << 10,
                     compress=False, jobs=2)
    n = r.new_chunks + r.known_chunks
else:
    r = pydelta.pull(spec["store"], spec["dest"], tag="t", jobs=2)
    n = r.fetched_chunks + r.local_chunks
# VmHWM: this process's own peak (ru_maxrss would count the parent's at fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps([int(hwm.split()[1]), n]))
"""


def _run(op: str, **kw: str) -> tuple:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(dict(kw, op=op))],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYDELTA_CACHE_DIR=kw.get("cache", "")),
    ).stdout
    kib, n = json.loads(out.strip().splitlines()[-1])
    return kib * 1024, n


def _measure(tmp_path, size: int, name: str) -> dict:
    """Peak RSS of a first push, a second push and a pull into a DEST that
    holds the file with its first 64 KiB changed."""
    d = tmp_path / name
    d.mkdir()
    src, store, dest = d / "m.bin", str(d / "store"), str(d / "dest.bin")
    data = random.Random(size).randbytes(size)
    src.write_bytes(data)
    kw = dict(src=str(src), store=store, dest=dest, cache=str(d / "cache"))
    out = {"push": _run("push", **kw), "push2": _run("push", **kw)}
    with open(dest, "wb") as fh:
        fh.write(os.urandom(64 << 10) + data[64 << 10 :])
    out["pull"] = _run("pull", **kw)
    with open(dest, "rb") as fh:
        assert fh.read() == data
    return out


def test_push_and_pull_memory_per_chunk(tmp_path):
    # the growth between two sizes: fixed costs (buffers, threads, the
    # bounded batches of recent chunks) cancel out
    mid = _measure(tmp_path, 3 << 20, "mid")
    big = _measure(tmp_path, 9 << 20, "big")
    for op in ("push", "push2", "pull"):
        rss, n = big[op]
        assert n > 2 * mid[op][1] > 20000, (op, n, mid[op][1])
        per = (rss - mid[op][0]) / (n - mid[op][1])
        print(f"{op}: {n} chunks, {per:.0f} bytes a chunk")
        assert per < LIMIT, f"{op}: {per:.0f} bytes a chunk at {n} chunks (limit {LIMIT})"
