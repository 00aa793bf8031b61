"""Folder pushes that settle unchanged files by digest first (sync/compare.py,
feature "compare"): the same trees, modes and times as file by file, clean
per-file failures (the others still right, a partial-sync error), and an
older far end (no feature) still served the plain way."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import rand_bytes
from test_sync import Served, tree_files, write

import pydelta
from pydelta.sync import compare


def shards(root, n=8, size=40_000, seed=0, changed=()):
    files = {}
    for i in range(n):
        data = rand_bytes(size, seed + i)
        if i in changed:
            data = data[: size // 2] + rand_bytes(64, 999 + i) + data[size // 2 + 64 :]
        files[f"s/{i:02d}.bin"] = data
        write(root / f"s/{i:02d}.bin", data)
    return files


def test_folder_push_settles_the_same_files_by_digest(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    shards(dest)
    files = shards(src, changed=(2, 5))
    write(src / "s/new.bin", b"new")
    files["s/new.bin"] = b"new"
    write(dest / "s/03.bin", rand_bytes(100, 3))  # another size: not a candidate
    files["s/03.bin"] = (src / "s/03.bin").read_bytes()
    for i, p in enumerate(sorted((src / "s").iterdir())):
        os.chmod(p, 0o640 if i % 2 else 0o604)
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + i))
    s = Served(str(tmp_path))
    try:
        assert compare.FEATURE in s.client.features
        r = s.client.push(str(src), str(dest))
    finally:
        s.close()
    assert tree_files(dest) == tree_files(src)
    actions = {f.path: f.action for f in r.files if f.kind != "dir"}
    assert actions["s/02.bin"] == actions["s/05.bin"] == actions["s/03.bin"] == "updated"
    assert actions["s/new.bin"] == "created"
    assert [p for p, a in actions.items() if a == "unchanged"] == [
        f"s/{i:02d}.bin" for i in (0, 1, 4, 6, 7)
    ]
    for p in (src / "s").iterdir():  # the sender's mode and time, touched or written
        q = dest / "s" / p.name
        assert stat.S_IMODE(q.stat().st_mode) == stat.S_IMODE(p.stat().st_mode)
        assert q.stat().st_mtime_ns == p.stat().st_mtime_ns


def test_one_file_failing_leaves_the_others_right(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    shards(dest)
    files = shards(src, changed=(1,))
    write(src / "s/big.bin", rand_bytes(400_000, 77))  # past the far end's file size limit
    s = Served(str(tmp_path), file_limit=250_000)
    try:
        with pytest.raises(pydelta.SyncError) as e:
            s.client.push(str(src), str(dest))
    finally:
        s.close()
    report = e.value.report
    assert [f.path for f in report.failed] == ["s/big.bin"]
    assert not (dest / "s/big.bin").exists()
    got = tree_files(dest)
    assert {k: got[k] for k in files} == files


def test_without_the_feature_the_plain_exchange(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    shards(dest)
    shards(src, changed=(4,))
    s = Served(str(tmp_path))
    try:
        s.client.features = s.client.features - {compare.FEATURE}  # as with an older far end
        r = s.client.push(str(src), str(dest))
    finally:
        s.close()
    assert tree_files(dest) == tree_files(src)
    assert sum(f.action == "unchanged" for f in r.files) == 7


def test_touch_refuses_a_file_changed_since_hashed(tmp_path):
    root = tmp_path / "r"
    write(root / "a.bin", b"x" * 1000)
    d = compare.Digests(1)
    (digest,) = d.digests(str(root), [("a.bin", 1000)])
    assert d.digests(str(root), [("a.bin", 999), ("missing", 1), ("../etc", 1)]) == [None] * 3
    write(root / "a.bin", b"y" * 1000)  # same size, new content (and ctime)
    assert d.touch(str(root), "a.bin", digest, 0o600, 5) is False
    assert d.touch(str(root), "a.bin", "00" * 32, 0o600, 5) is False
    (digest,) = d.digests(str(root), [("a.bin", 1000)])
    assert d.touch(str(root), "a.bin", digest, 0o600, 5_000_000_000) is True
    assert (root / "a.bin").stat().st_mtime_ns == 5_000_000_000


def test_malformed_requests_are_refused(tmp_path):
    d = compare.Digests(1)
    for bad in (
        {"root": 1, "files": []},
        {"root": "x", "files": [["a"]]},
        {"root": "x", "files": [["a", -1]]},
        {"root": "x", "files": [["a", True]]},
    ):
        with pytest.raises(ValueError):
            compare.serve_digests(d, bad)
    with pytest.raises(ValueError):
        compare.serve_touch(d, {"root": "x", "files": [[1, 2, 3, 4]]})


def test_over_ssh_a_failing_file_is_a_partial_sync(sshd, tmp_path):
    """Over the loopback sshd, with the CLI: the same files settled by digest,
    the changed one sent, one that cannot be written fails alone (exit 7)."""
    import subprocess
    import sys

    from test_sync_ssh import REMOTE_CMD

    src, dest = tmp_path / "src", tmp_path / "dest"
    shards(dest)
    files = shards(src, changed=(6,))
    (dest / "s/03.bin").unlink()
    (dest / "s/03.bin").mkdir()  # a directory where a file goes: that file fails
    argv = [sys.executable, "-m", "pydelta", "sync", "-e", sshd.ssh_cmd, "--remote-cmd"]
    p = subprocess.run(
        argv + [REMOTE_CMD, "-v", str(src), sshd.target(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 7, p.stderr
    assert "failed s/03.bin" in p.stderr
    got = tree_files(dest)
    assert {k: v for k, v in got.items() if k != "s/03.bin"} == {
        k: v for k, v in files.items() if k != "s/03.bin"
    }


def test_prehash_gives_the_scan_the_digest_of_new(tmp_path):
    from pydelta.sync import pipeline

    data = rand_bytes(3 << 20, 5)
    f = write(tmp_path / "n.bin", data)
    with open(f, "rb") as fh:
        assert pipeline.prehash(fh.fileno(), 1) is None  # one thread: the scan hashes
        pre = pipeline.PreHash(fh.fileno())
        assert pre.result() == pydelta.blake3_digest(data)
        take = pre.take()  # done: handed over
        assert take is not None and take() == pydelta.blake3_digest(data)
        assert fh.tell() == 0  # pread: the scan's position untouched
