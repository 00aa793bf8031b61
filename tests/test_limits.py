"""Resource limits and durability, checked fast enough for every run.

* bounded memory: signature, delta and patch of a 193 MiB pair each grow
  the process by well under the file size (a subprocess per step, peak RSS
  measured after the kernels are compiled); the multi-GiB test in
  test_large.py is the slow version;
* 64-bit offsets on every backend: a hand-made delta copying from past
  4 GiB of a sparse old file (the run.sh numba pass leaves out the slow
  tests, so this is where numba meets offsets above 2**32);
* durability: the result is fsynced before the rename that publishes it
  (patch, Patcher, and a file received by sync).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import enc_varint, fmt, rand_bytes

import pydelta

MiB = 1 << 20
GiB = 1 << 30
REPO = str(Path(__file__).resolve().parent.parent)

# ---------------------------------------------------------------- bounded memory

#: Most a step may grow the process while handling the 193 MiB pair (it
#: uses a few MiB of buffers; holding either file would take 190+ MiB).
GROWTH_LIMIT_KIB = 64 * 1024

CHILD = textwrap.dedent(
    """
    import os, sys
    import pydelta

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))

    step, args = sys.argv[1], sys.argv[2:]
    # warm up on small files: numba compiles its kernels on first use
    w = os.path.join(os.path.dirname(args[-1]), "warm")
    for suffix, seed in ((".old", b"o"), (".new", b"n")):
        with open(w + suffix, "wb") as f:
            f.write(seed * 300_000)
    pydelta.signature(w + ".old", w + ".sig")
    pydelta.delta(w + ".sig", w + ".new", w + ".delta")
    pydelta.patch(w + ".old", w + ".delta", w + ".out")
    # from here on VmHWM counts only this step (Linux >= 4.0: "5" resets it)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    getattr(pydelta, step)(*args)
    print(status("VmHWM") - base)
    """
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("limits")
    n = 192 * MiB
    old = bytearray(rand_bytes(n, 11))
    (d / "old").write_bytes(old)
    new = old
    for i in range(40):  # scattered changes, a shifted start, appended data
        p = (i * 4_999_999) % (n - 4096)
        new[p : p + 3000] = rand_bytes(3000, 100 + i)
    (d / "new").write_bytes(b"hdr" + bytes(new) + rand_bytes(MiB, 12))
    return d


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_memory_stays_bounded(pair):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    d = pair
    steps = [
        ("signature", [d / "old", d / "sig"]),
        ("delta", [d / "sig", d / "new", d / "delta"]),
        ("patch", [d / "old", d / "delta", d / "out"]),
    ]
    for step, args in steps:
        r = subprocess.run(
            [sys.executable, "-c", CHILD, step, *map(str, args)],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        grew = int(r.stdout.split()[-1])
        assert grew < GROWTH_LIMIT_KIB, f"{step} grew the process by {grew} KiB"
    assert (d / "out").read_bytes() == (d / "new").read_bytes()


# ---------------------------------------------------------------- 64-bit offsets


def _native_delta(basis_size: int, ops: list, result: bytes) -> bytes:
    """A hand-made native delta (its signature digest is never checked on success)."""
    info = fmt.SignatureInfo(1 << 20, 16, -(-basis_size // (1 << 20)), basis_size, bytes(32))
    out = bytearray(fmt.pack_delta_header(info))
    for op in ops:
        if op[0] == "C":
            out += b"C" + enc_varint(op[1]) + enc_varint(op[2])
        else:
            out += b"L" + enc_varint(len(op[1])) + op[1]
    out += b"E" + len(result).to_bytes(8, "little") + pydelta.blake3_digest(result)
    return bytes(out)


def test_patch_copies_from_past_4_gib(tmp_path):
    """COPY offsets and lengths above 2**32, on whichever backend runs the suite."""
    size = int(4.5 * GiB)
    old = tmp_path / "old"
    pieces = {
        (1 << 32) - 7: rand_bytes(4096, 1),  # straddles 4 GiB
        (1 << 32) + 123_456_789: rand_bytes(70_000, 2),
        size - 1000: rand_bytes(1000, 3),  # the very end
    }
    with open(old, "wb") as f:
        f.truncate(size)
        for off, data in pieces.items():
            f.seek(off)
            f.write(data)
    ops, result = [], b""
    for off, data in pieces.items():
        ops += [("C", off, len(data)), ("L", b"|")]
        result += data + b"|"
    ops.append(("C", (1 << 32) + 10_000_000, 3000))  # zeros of the hole past 4 GiB
    result += bytes(3000)
    delta = tmp_path / "d"
    delta.write_bytes(_native_delta(size, ops, result))
    res = pydelta.patch(old, delta, tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == result and res.size == len(result)
    f = pydelta.info(delta).fields
    assert f["basis size"] == size and f["copied bytes"] == len(result) - 3
    # a copy that ends one byte past the file is refused, not read as zeros
    delta.write_bytes(_native_delta(size, [("C", size - 10, 11)], bytes(11)))
    with pytest.raises(pydelta.CorruptDeltaError, match="reaches outside"):
        pydelta.patch(old, delta, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


# ---------------------------------------------------------------- durability


class _Recorder:
    """Records fsync (by the path of the descriptor) and renames, in order."""

    def __init__(self, monkeypatch) -> None:
        self.events: list = []
        real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

        def fsync(fd):
            fd = fd if isinstance(fd, int) else fd.fileno()
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            return real_fsync(fd)

        def where(name, dir_fd):
            """A name relative to a directory descriptor, as a path."""
            name = os.fspath(name)
            if dir_fd is None:
                return name
            return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)

        def replace(src, dst, **kw):
            self.events.append(("rename", where(src, kw.get("src_dir_fd")),
                                where(dst, kw.get("dst_dir_fd"))))  # fmt: skip
            return real_replace(src, dst, **kw)

        def rename(src, dst, **kw):
            self.events.append(("rename", where(src, kw.get("src_dir_fd")),
                                where(dst, kw.get("dst_dir_fd"))))  # fmt: skip
            return real_rename(src, dst, **kw)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "rename", rename)

    def check_published(self, target: Path) -> None:
        """The rename onto target came after an fsync of the file renamed."""
        target = os.path.realpath(target)
        renames = [
            (i, e) for i, e in enumerate(self.events)
            if e[0] == "rename" and os.path.realpath(e[2]) == target
        ]  # fmt: skip
        assert len(renames) == 1, self.events
        i, (_, src, _) = renames[0]
        # the renamed file is gone from its temp name now; compare names
        synced = [e[1] for e in self.events[:i] if e[0] == "fsync"]
        assert any(os.path.basename(p).startswith(os.path.basename(src)) for p in synced), (
            f"{src} was renamed onto {target} without an fsync first: {self.events}"
        )


@pytest.fixture
def recorder(monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs Linux /proc")
    return _Recorder(monkeypatch)


def test_patch_fsyncs_before_the_rename(tmp_path, recorder):
    old, new = rand_bytes(300_000, 1), rand_bytes(300_000, 2)
    (tmp_path / "old").write_bytes(old)
    sig = pydelta.signature(tmp_path / "old")
    (tmp_path / "d").write_bytes(pydelta.delta(sig, io.BytesIO(new)))
    pydelta.patch(tmp_path / "old", tmp_path / "d", tmp_path / "old")  # in place
    assert (tmp_path / "old").read_bytes() == new
    recorder.check_published(tmp_path / "old")
    recorder.events.clear()
    with pydelta.Patcher(tmp_path / "old", tmp_path / "out") as p:
        p.write(pydelta.delta(pydelta.signature(tmp_path / "old"), tmp_path / "old"))
    recorder.check_published(tmp_path / "out")


def test_no_fsync_means_none(tmp_path, recorder):
    (tmp_path / "old").write_bytes(b"x" * 5000)
    sig = pydelta.signature(tmp_path / "old")
    (tmp_path / "d").write_bytes(pydelta.delta(sig, tmp_path / "old"))
    pydelta.patch(tmp_path / "old", tmp_path / "d", tmp_path / "out", fsync=False)
    assert not [e for e in recorder.events if e[0] == "fsync"]


def test_sync_pull_fsyncs_before_the_rename(tmp_path, recorder):
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "a.bin").write_bytes(rand_bytes(200_000, 3))
    local = tmp_path / "local"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydelta", "serve"], cwd=tmp_path,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with pydelta.SyncClient(proc.stdout, proc.stdin, peer="server") as c:
            c.pull(str(remote / "a.bin"), str(local / "a.bin"))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert (local / "a.bin").read_bytes() == (remote / "a.bin").read_bytes()
    recorder.check_published(local / "a.bin")
