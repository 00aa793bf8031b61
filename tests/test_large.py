"""A round trip past 4 GiB, with sparse inputs: 64-bit sizes and offsets
everywhere, and bounded memory in each step.

Slow (minutes) and needs ~12 GiB of free disk: run with ``-m slow``
or deselect with ``-m 'not slow'``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import parse_delta, rand_bytes

import pydelta

pytestmark = pytest.mark.slow

GiB = 1 << 30
MiB = 1 << 20
OLD_SIZE = int(4.5 * GiB)
RSS_LIMIT_KIB = 200 * 1024
REPO = str(Path(__file__).resolve().parent.parent)

# (offset, bytes) written into the sparse OLD; two straddle or lie past 4 GiB
OLD_WRITES = [
    (GiB, rand_bytes(100, 1)),
    ((1 << 32) - 3, rand_bytes(64, 2)),  # straddles the 4 GiB boundary
    ((1 << 32) + 12345, rand_bytes(200, 3)),
    (int(4.25 * GiB), rand_bytes(5000, 4)),
    (OLD_SIZE - 10, rand_bytes(10, 5)),  # the very end
]
# NEW = OLD with these changes, then APPEND at the end
NEW_CHANGES = [
    ((1 << 32) + 12345 + 50, b"CHANGED!"),
    (int(4.4 * GiB), b"\xff\xfe\xfd"),
]
APPEND = rand_bytes(MiB, 6)
NEW_SIZE = OLD_SIZE + len(APPEND)


def _make_sparse(path: Path, size: int, writes) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off, data in writes:
            fh.seek(off)
            fh.write(data)


def _file_digest(path: Path):
    blake3 = pytest.importorskip("blake3")
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    n = 0
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(16 * MiB)
        view = memoryview(buf)
        while True:
            k = fh.readinto(view)
            if not k:
                break
            h.update(view[:k])
            n += k
    return n, h.digest()


def _read_at(path: Path, off: int, n: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(off)
        return fh.read(n)


def _report(msg: str) -> None:
    sys.__stdout__.write(f"\n[large] {msg}\n")
    sys.__stdout__.flush()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("large")
    free = shutil.disk_usage(d).free
    if free < 12 * GiB:
        pytest.skip(f"needs 12 GiB of free disk, {free / GiB:.1f} GiB free")
    old, new = d / "old.bin", d / "new.bin"
    _make_sparse(old, OLD_SIZE, OLD_WRITES)
    _make_sparse(new, OLD_SIZE, OLD_WRITES + NEW_CHANGES)
    with open(new, "ab") as fh:
        fh.write(APPEND)
    assert old.stat().st_size == OLD_SIZE and new.stat().st_size == NEW_SIZE
    t0 = time.perf_counter()
    want = _file_digest(new)
    _report(f"hashing NEW with the blake3 package took {time.perf_counter() - t0:.1f}s")
    yield {"dir": d, "old": old, "new": new, "want": want}
    shutil.rmtree(d, ignore_errors=True)


def _check_delta(delta_path: Path):
    data = delta_path.read_bytes()
    p = parse_delta(data)
    bs = p.block_len
    assert bs == pydelta.default_block_len(OLD_SIZE)
    assert p.basis_size == OLD_SIZE > 1 << 32
    assert p.result_size == NEW_SIZE
    # small: the appended MiB plus about a block around each change/data run
    assert p.literal >= len(APPEND)
    assert p.literal <= len(APPEND) + 12 * bs
    assert len(data) < len(APPEND) + 12 * bs + 4096
    # copies start and end past 4 GiB (64-bit varints, pread offsets)
    assert any(off > 1 << 32 for _, off, _ in p.copies)
    assert max(off + n for _, off, n in p.copies) > 1 << 32
    assert max(n for _, _, n in p.copies) > 1 << 32  # one COPY longer than 4 GiB
    return p


def _check_output(files, out: Path):
    assert out.stat().st_size == NEW_SIZE
    for off, data in OLD_WRITES + NEW_CHANGES:
        expect = bytearray(_read_at(files["new"], off, len(data)))
        assert _read_at(out, off, len(data)) == expect, off
    assert _read_at(out, OLD_SIZE, len(APPEND)) == APPEND
    assert _file_digest(out) == files["want"]
    return True


@pytest.fixture(scope="module")
def inproc(files):
    """signature, delta and patch in this process (the delta is kept as the reference)."""
    d = files["dir"]
    sig, delta, out = d / "in.sig", d / "in.delta", d / "in.out"
    t0 = time.perf_counter()
    si = pydelta.signature(files["old"], sig)
    t1 = time.perf_counter()
    stats = pydelta.delta(sig, files["new"], delta)
    t2 = time.perf_counter()
    try:
        res = pydelta.patch(files["old"], delta, out)
        t3 = time.perf_counter()
        ok = _check_output(files, out)
    finally:
        out.unlink(missing_ok=True)
    return {
        "si": si,
        "stats": stats,
        "res": res,
        "delta": delta,
        "sig": sig,
        "ok": ok,
        "times": (t1 - t0, t2 - t1, t3 - t2),
    }


def test_large_roundtrip(files, inproc):
    si, stats, res, delta, sig = (inproc[k] for k in ("si", "stats", "res", "delta", "sig"))
    assert si.basis_size == OLD_SIZE
    assert si.block_count == -(-OLD_SIZE // si.block_len)
    assert stats.new_size == NEW_SIZE
    assert stats.copied + stats.literal == NEW_SIZE
    p = _check_delta(delta)
    assert stats.literal == p.literal and stats.copied == p.copied
    assert res.size == NEW_SIZE
    assert res.digest == files["want"][1]
    assert inproc["ok"]
    f = pydelta.info(delta).fields
    assert f["result size"] == NEW_SIZE and f["basis size"] == OLD_SIZE
    ts, td, tp = inproc["times"]
    _report(
        f"in-process: signature {ts:.1f}s ({sig.stat().st_size} B), "
        f"delta {td:.1f}s ({delta.stat().st_size} B, {len(p.ops)} ops), "
        f"patch {tp:.1f}s"
    )


CHILD = textwrap.dedent(
    """
    import sys, time
    import pydelta
    step, args = sys.argv[1], sys.argv[2:]
    t = time.perf_counter()
    getattr(pydelta, step)(*args)
    t = time.perf_counter() - t
    # VmHWM is the peak RSS of this process image only; ru_maxrss would also
    # count the forked parent's memory from before exec
    with open("/proc/self/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    print(hwm, t)
    """
)


def test_large_subprocess_memory(files, inproc):
    d = files["dir"]
    sig, delta, out = d / "sub.sig", d / "sub.delta", d / "sub.out"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    steps = [
        ("signature", [files["old"], sig]),
        ("delta", [sig, files["new"], delta]),
        ("patch", [files["old"], delta, out]),
    ]
    lines = []
    try:
        for step, args in steps:
            r = subprocess.run(
                [sys.executable, "-c", CHILD, step, *map(str, args)],
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
            assert r.returncode == 0, r.stderr
            self_rss, secs = r.stdout.split()
            self_rss = int(self_rss)
            lines.append(f"{step}: {float(secs):.1f}s, peak RSS {self_rss / 1024:.0f} MiB")
            assert self_rss < RSS_LIMIT_KIB, lines[-1]
        _report("subprocesses: " + "; ".join(lines))
        _check_delta(delta)
        # the same delta as the in-process run (the fixture made it if needed)
        assert inproc["delta"].read_bytes() == delta.read_bytes()
        _check_output(files, out)
    finally:
        out.unlink(missing_ok=True)
