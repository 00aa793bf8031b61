"""Folder pushes with the far end hashing in the background (sync/compare.py,
feature "compare-ahead"): this end hashes its files while ssh connects, the
far end hashes the candidates while the other files are sent, and each
candidate found different is sent as soon as both digests are in. Over the
loopback sshd: mixed trees, one file failing mid-way, the far end dying
mid-way; and the protocol pieces against a peer that lies."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading

import pytest
from conftest import rand_bytes
from test_sync import Served, tree_files, write
from test_sync_ssh import PY, REMOTE_CMD, sync

import pydelta
from pydelta.errors import ProtocolError, RemoteError
from pydelta.signature import iter_signature
from pydelta.sync import compare, presign
from pydelta.sync import fs as sync_fs
from pydelta.sync.sigcache import SigCache


def mixed_trees(src, dest):
    """Source and destination: unchanged, changed (same size and not), new,
    deleted files, many small and a few large, in nested folders. Returns
    the source's files and the expected action per file."""
    want = {}
    for i in range(60):  # small ones
        rel = f"small/{i // 20}/f{i:02d}.bin"
        data = rand_bytes(1000 + 37 * i, i)
        write(dest / rel, data)
        if i % 10 == 3:  # changed in place, same size
            data = data[:500] + bytes(b ^ 0xFF for b in data[500:520]) + data[520:]
            want[rel] = "updated"
        elif i % 10 == 7:  # changed and grown
            data = data + b"more"
            want[rel] = "updated"
        else:
            want[rel] = "unchanged"
        write(src / rel, data)
    for i in range(3):  # large ones
        rel = f"large/{i}.bin"
        data = rand_bytes(3 << 20, 100 + i)
        write(dest / rel, data)
        if i == 1:  # 64 KiB retrained in the middle
            data = data[: 1 << 20] + rand_bytes(64 << 10, 200) + data[(1 << 20) + (64 << 10) :]
            want[rel] = "updated"
        else:
            want[rel] = "unchanged"
        write(src / rel, data)
    for rel in ("new/a.bin", "small/0/new.bin"):
        write(src / rel, rand_bytes(5000, hash(rel) & 0xFFFF))
        want[rel] = "created"
    write(dest / "small/1/gone.bin", b"old")
    write(dest / "gone/deep.bin", b"old")
    for i, p in enumerate(sorted(src.rglob("*.bin"))):
        os.chmod(p, 0o640 if i % 2 else 0o604)
        os.utime(p, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + i))
    return tree_files(src), want


def test_mixed_folder_over_ssh(sshd, tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    files, want = mixed_trees(src, dest)
    r = sync(sshd, str(src), sshd.target(dest), delete=True)
    assert tree_files(dest) == files
    got = {f.path: f.action for f in r.files if f.kind != "dir" and f.action != "deleted"}
    assert got == want
    assert sorted(f.path for f in r.files if f.action == "deleted") == [
        "gone",
        "gone/deep.bin",
        "small/1/gone.bin",
    ]
    for p in src.rglob("*.bin"):  # the sender's mode and time, touched or written
        q = dest / p.relative_to(src)
        assert stat.S_IMODE(q.stat().st_mode) == stat.S_IMODE(p.stat().st_mode)
        assert q.stat().st_mtime_ns == p.stat().st_mtime_ns
    # the report lists the source's entries in the order of its listing,
    # whatever order they were settled in
    listed = [f.path.rstrip("/") for f in r.files if f.action != "deleted"]
    walked = [e["path"] for e in sync_fs.walk(str(src), "skip")]
    assert listed == [p for p in walked if p in set(listed)]
    assert len(listed) == len(want) + 1  # and the folder created, "new"
    # a second sync finds everything the same
    r = sync(sshd, str(src), sshd.target(dest), delete=True)
    assert {f.action for f in r.files if f.kind != "dir"} == {"unchanged"}


def test_a_file_failing_mid_pipeline_over_ssh(sshd, tmp_path):
    """A changed file of the same size that the far end cannot write (its file
    size limit) fails alone; the others are right; exit status 7."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = {}
    for i in range(12):
        data = rand_bytes(2000 if i != 5 else 2 << 20, 300 + i)
        write(dest / f"d/{i:02d}.bin", data)
        if i in (2, 5, 9):  # changed, same size: found different as the digests come
            data = data[:100] + bytes(b ^ 1 for b in data[100:200]) + data[200:]
        files[f"d/{i:02d}.bin"] = data
        write(src / f"d/{i:02d}.bin", data)
    old5 = (dest / "d/05.bin").read_bytes()
    remote = f"ulimit -f 1000; exec {REMOTE_CMD}"  # <= 1 MB: 05 cannot be written
    argv = [PY, "-m", "pydelta", "sync", "-e", sshd.ssh_cmd, "--remote-cmd", remote]
    p = subprocess.run(
        argv + ["-v", str(src), sshd.target(dest)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 7, p.stderr
    assert "failed d/05.bin" in p.stderr
    got = tree_files(dest)
    assert got.pop("d/05.bin") == old5  # not replaced
    assert got == {k: v for k, v in files.items() if k != "d/05.bin"}


def test_far_end_dying_mid_pipeline(sshd, tmp_path):
    """The far end killed while the changed files go: a clean connection
    error, and every destination file holds its old or its new content."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    old, new = {}, {}
    for i in range(10):
        rel = f"d/{i:02d}.bin"
        old[rel] = rand_bytes(200_000, 400 + i)
        new[rel] = old[rel][:1000] + rand_bytes(5000, 500 + i) + old[rel][6000:]
        write(dest / rel, old[rel])
        write(src / rel, new[rel])
    pidfile = tmp_path / "serve.pid"
    remote = f"echo $$ > {pidfile}; exec {REMOTE_CMD}"
    started = []

    def kill_at_the_third(st):
        if st.phase == "signature" and st.path not in started:
            started.append(st.path)
            if len(started) == 3:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)

    with pytest.raises(pydelta.ConnectionLostError):
        pydelta.sync(
            str(src),
            sshd.target(dest),
            ssh=sshd.ssh_argv,
            remote_cmd=remote,
            progress=kill_at_the_third,
        )
    assert len(started) == 3
    got = tree_files(dest)
    assert {k for k in got if not os.path.basename(k).startswith(".")} == set(old)
    done = [k for k in old if got[k] == new[k]]
    assert len(done) == 2 and all(got[k] == old[k] for k in old if k not in done)


def test_a_candidate_failing_in_process(tmp_path):
    """Over a local serve with a file size limit: the changed candidate that
    cannot be written fails alone, before and after it the others go on."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = {}
    for i in range(8):
        data = rand_bytes(300_000 if i == 4 else 30_000, 600 + i)
        write(dest / f"s/{i}.bin", data)
        if i in (1, 4, 6):
            data = data[:10] + bytes(b ^ 7 for b in data[10:40]) + data[40:]
        files[f"s/{i}.bin"] = data
        write(src / f"s/{i}.bin", data)
    s = Served(str(tmp_path), file_limit=250_000)
    try:
        assert compare.AHEAD in s.client.features
        with pytest.raises(pydelta.SyncError) as e:
            s.client.push(str(src), str(dest))
    finally:
        s.close()
    report = e.value.report
    assert [f.path for f in report.failed] == ["s/4.bin"]
    got = tree_files(dest)
    assert got["s/4.bin"] != files["s/4.bin"]
    assert {k: got[k] for k in files if k != "s/4.bin"} == {
        k: v for k, v in files.items() if k != "s/4.bin"
    }
    actions = {f.path: f.action for f in report.files if f.kind != "dir"}
    assert [k for k, a in actions.items() if a == "updated"] == ["s/1.bin", "s/6.bin"]


# ---------------------------------------------------------------- the pieces


def test_background_digests_in_order(tmp_path):
    root = tmp_path / "r"
    data = {f"{i}.bin": rand_bytes(1000 * (i + 1), 700 + i) for i in range(6)}
    for k, v in data.items():
        write(root / k, v)
    d = compare.Digests(2)
    try:
        ask = [[k, len(v)] for k, v in data.items()] + [["missing", 5], ["0.bin", 1]]
        assert compare.serve_hash(d, {"op": "hash", "root": str(root), "files": ask}) == {
            "ok": True
        }
        got = []
        while True:
            part = compare.serve_hashed(d, {"op": "hashed"})["digests"]
            if not part:
                break
            got += part
        assert got == [pydelta.blake3_digest(v).hex() for v in data.values()] + [None, None]
        # what was hashed in the background can be touched
        assert d.touch(str(root), "2.bin", got[2], 0o600, 7_000_000_000) is True
    finally:
        d.close()
    with pytest.raises(ValueError):
        compare.serve_hash(d, {"op": "hash", "root": "x", "files": [["a", -1]]})
    with pytest.raises(ValueError):
        compare.serve_hash(d, {"op": "hash", "root": 3, "files": []})


def test_closing_stops_background_hashing(tmp_path):
    root = tmp_path / "r"
    for i in range(4):
        write(root / f"{i}.bin", rand_bytes(1 << 20, 800 + i))
    d = compare.Digests(1)
    d.start(str(root), [(f"{i}.bin", 1 << 20) for i in range(4)])
    d.close()  # returns once the running one stopped; the rest never start
    assert all(x is None or len(x) == 64 for x in d.ready())
    assert d.ready() == []


class LyingPeer:
    """A far end's replies, scripted: each call returns the next one."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.asked = []

    def __call__(self, msg):
        self.asked.append(msg["op"])
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def _cands(tmp_path, n=3):
    src = tmp_path / "src"
    entries = []
    for i in range(n):
        write(src / f"{i}.bin", rand_bytes(100, 900 + i))
        entries.append({"path": f"{i}.bin", "type": "file", "size": 100})
    return src, entries


@pytest.mark.parametrize(
    "reply",
    [
        {"ok": True, "digests": []},  # none, though some are owed
        {"ok": True, "digests": ["00" * 32] * 4},  # more than asked for
        {"ok": True, "digests": "x"},
        {"ok": True},
    ],
)
def test_a_lying_peer_is_a_protocol_error(tmp_path, reply):
    src, entries = _cands(tmp_path)
    mine = compare.SourceDigests(str(src), 1, walk=False)
    try:
        c = compare.Comparison(LyingPeer({"ok": True}, reply), "d", entries, mine, compare.Known())
        with pytest.raises(ProtocolError):
            list(c.different())
    finally:
        mine.close()


def test_digests_that_differ_or_fail_leave_files_to_the_exchange(tmp_path):
    src, entries = _cands(tmp_path)
    same = pydelta.blake3_digest((src / "0.bin").read_bytes()).hex()
    known = compare.Known()
    mine = compare.SourceDigests(str(src), 2, walk=False)
    try:
        peer = LyingPeer(
            {"ok": True},
            {"ok": True, "digests": [same, None]},
            RemoteError("cannot"),  # the far end gave up: the rest the usual way
            {"ok": True, "done": [True]},
        )
        c = compare.Comparison(peer, "d", entries, mine, known)
        assert [e["path"] for e in c.different()] == ["1.bin", "2.bin"]
        lines, refused = c.touch()
        assert list(lines) == ["0.bin"] and refused == []
        assert peer.asked == ["hash", "hashed", "hashed", "touch"]
        with open(src / "1.bin", "rb") as fh:  # our digest serves its delta
            assert known.take("1.bin", fh.fileno()) == pydelta.blake3_digest(
                (src / "1.bin").read_bytes()
            )
    finally:
        mine.close()


def test_known_digest_only_for_the_same_file_state(tmp_path):
    f = write(tmp_path / "s/a.bin", b"a" * 5000)
    ahead = compare.SourceDigests(str(tmp_path / "s"), 1)
    try:
        got = ahead.get("a.bin")
        assert got is not None and got[1] == pydelta.blake3_digest(b"a" * 5000)
        known = compare.Known(ahead)
        with open(f, "rb") as fh:
            assert known.take("a.bin", fh.fileno()) == got[1]
        write(f, b"b" * 5000)  # same size, new content: another ctime
        with open(f, "rb") as fh:
            assert known.take("a.bin", fh.fileno()) is None
    finally:
        ahead.close()
    assert ahead.get("nothing/there") is None


def test_hashing_ahead_runs_at_a_lower_priority(tmp_path):
    """The threads that hash ahead yield the cores to the transfer they overlap."""
    write(tmp_path / "s/a.bin", b"a")
    ahead = compare.SourceDigests(str(tmp_path / "s"), 1)
    try:
        nice = ahead._pool.submit(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        ).result()
    finally:
        ahead.close()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert nice == max(here, compare.BACKGROUND_NICE)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here


# ---------------------------------------------------------------- presign

BIG = presign.MIN_FILE + 4096  # large enough to be signed ahead


def test_presigner_signs_into_the_cache_in_order(tmp_path):
    root = tmp_path / "r"
    a = write(root / "a.bin", rand_bytes(BIG, 1000))
    b = write(root / "d/b.bin", rand_bytes(BIG, 1001))
    write(root / "small.bin", b"x" * 1000)
    cache = SigCache(str(tmp_path / "cache"))
    p = presign.Presigner(cache)
    try:
        reply = presign.serve_presign(
            p, {"op": "presign", "root": str(root), "files": ["a.bin", "d/b.bin", "small.bin"]}
        )
        assert reply == {"ok": True, "queued": 3}
        assert presign.serve_presign(p, {"root": str(root), "files": ["../out", "a.bin"]}) == {
            "ok": True,
            "queued": 1,  # ../out (refused when its turn comes); a.bin was queued already
        }
        for rel in ("a.bin", "d/b.bin", "small.bin", "../out", "never-asked"):
            p.wait(str(root), rel)
    finally:
        p.close()
    for f in (a, b):
        with open(f, "rb") as fh:
            want = b"".join(bytes(x) for x in iter_signature(str(f), strong_hash="blake3"))
            assert cache.get(fh.fileno()) == want
    with open(root / "small.bin", "rb") as fh:
        assert cache.get(fh.fileno()) is None
    assert presign.Presigner(None).add(str(root), ["a.bin"]) == 0  # no cache: nothing
    for bad in ({"root": 1, "files": []}, {"root": "x", "files": [1]}, {"root": "x"}):
        with pytest.raises(ValueError):
            presign.serve_presign(p, bad)


def test_folder_push_with_files_signed_ahead(tmp_path):
    """Grown large files (signed ahead while the first goes) and changed ones
    of the same size (signed ahead as their digests come): all right."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    files = {}
    for i in range(3):
        old = rand_bytes(BIG, 1100 + i)
        write(dest / f"g{i}.bin", old)
        files[f"g{i}.bin"] = old[:5000] + b"grown" + old[5000:]
        old = rand_bytes(BIG, 1200 + i)
        write(dest / f"s{i}.bin", old)
        files[f"s{i}.bin"] = old[:7000] + bytes(x ^ 3 for x in old[7000:9000]) + old[9000:]
    for k, v in files.items():
        write(src / k, v)
    s = Served(str(tmp_path))
    try:
        assert presign.FEATURE in s.client.features
        r = s.client.push(str(src), str(dest))
    finally:
        s.close()
    assert tree_files(dest) == files
    assert {f.action for f in r.files} == {"updated"}
    assert [f.path for f in r.files] == sorted(files)
