"""pydelta sync without ssh: the protocol over local pipes, path safety, failures.

The serving end runs as a real ``python -m pydelta serve`` subprocess (or,
for hand-made misbehaving peers, as a thread speaking raw frames); the
command line is driven through a stand-in "ssh" that runs the remote command
locally. tests/test_sync_ssh.py does the same over a real OpenSSH server.
"""

from __future__ import annotations

import io
import json
import os
import resource
import stat
import subprocess
import sys
import threading
import time

import pytest
from conftest import rand_bytes, tmp_leftovers

import pydelta
from pydelta.sync import parse_location
from pydelta.sync import wire as _wire
from pydelta.sync.fs import resolve as _resolve
from pydelta.sync.transfer import identity_digest as _identity_digest

PY = sys.executable


# ---------------------------------------------------------------- helpers


class Served:
    """A ``pydelta serve`` subprocess and a SyncClient talking to it."""

    def __init__(self, cwd, file_limit=None, **client_kw) -> None:
        def limit():  # RLIMIT_FSIZE: writing past it fails with EFBIG, even as root
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

        self.proc = subprocess.Popen(
            [PY, "-m", "pydelta", "serve"],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit if file_limit else None,
        )
        self.client = pydelta.SyncClient(
            self.proc.stdout, self.proc.stdin, peer="server", **client_kw
        )

    def close(self) -> int:
        self.client.close()
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


@pytest.fixture
def served(tmp_path):
    made = []

    def make(**kw):
        s = Served(tmp_path, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for f in (s.proc.stdin, s.proc.stdout, s.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


FAKE_SSH = """#!/bin/sh
# stands in for ssh: drop the host, run the command here
shift
exec sh -c "$*"
"""


@pytest.fixture
def fake_ssh(tmp_path):
    path = tmp_path / "fake-ssh"
    path.write_text(FAKE_SSH)
    path.chmod(0o755)
    return str(path)


REMOTE_CMD = f"{PY} -m pydelta"


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def model_pair(size: int, seed: int):
    """A model-like pair: 1 byte more header (everything shifts), 3 of 40 tensors retrained."""
    header = json.dumps({"t%d" % i: [i, i + 1] for i in range(40)}).encode()
    per = size // 40
    tensors = [rand_bytes(per, seed + i) for i in range(40)]
    old = len(header).to_bytes(8, "little") + header + b"".join(tensors)
    for i in (5, 17, 33):
        tensors[i] = rand_bytes(per, seed + 1000 + i)
    header2 = header[:-1] + b" }"
    new = len(header2).to_bytes(8, "little") + header2 + b"".join(tensors)
    return old, new


# ---------------------------------------------------------------- locations


@pytest.mark.parametrize(
    "arg, want",
    [
        ("host:path/x", ("host", "path/x")),
        ("me@host:/abs", ("me@host", "/abs")),
        ("host:", ("host", "")),
        ("local/file", (None, "local/file")),
        ("./a:b", (None, "./a:b")),
        ("/abs/a:b", (None, "/abs/a:b")),
        ("[::1]:m.bin", ("::1", "m.bin")),
        ("u@[fe80::1]:m", ("u@fe80::1", "m")),
        ("plain", (None, "plain")),
    ],
)
def test_parse_location(arg, want):
    assert parse_location(arg) == want


def test_sync_needs_exactly_one_remote_side(tmp_path):
    with pytest.raises(pydelta.UsageError, match="exactly one"):
        pydelta.sync(str(tmp_path / "a"), str(tmp_path / "b"))
    with pytest.raises(pydelta.UsageError, match="both be remote"):
        pydelta.sync("h1:a", "h2:b")


# ---------------------------------------------------------------- path safety


@pytest.mark.parametrize(
    "rel", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\0b", 7, None]
)
def test_resolve_refuses_paths_outside_the_tree(tmp_path, rel):
    with pytest.raises(pydelta.UsageError, match="refusing path"):
        _resolve(str(tmp_path), rel)


def test_resolve_refuses_symlinked_directories(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "sub")
    with pytest.raises(pydelta.FileAccessError, match="symbolic link"):
        _resolve(str(root), "sub/file")
    assert _resolve(str(root), "new/file") == str(root / "new" / "file")


# ---------------------------------------------------------------- identity deltas


def test_identity_digest_only_for_the_old_file_unchanged(tmp_path):
    data = rand_bytes(200_000, 1)
    sig = pydelta.signature(write(tmp_path / "o", data))  # the signature as bytes
    same = pydelta.delta(sig, write(tmp_path / "n", data), compress=False)
    assert _identity_digest(same, len(data)) == pydelta.blake3_digest(data)
    assert _identity_digest(same, len(data) + 1) is None
    # a rotation copies every byte of the old file too, in two pieces: not identity
    rotated = data[100_000:] + data[:100_000]
    d = pydelta.delta(sig, write(tmp_path / "r", rotated), compress=False)
    assert _identity_digest(d, len(data)) is None
    grown = pydelta.delta(sig, write(tmp_path / "g", data + b"x"), compress=False)
    assert _identity_digest(grown, len(data)) is None


# ---------------------------------------------------------------- push / pull over a pipe


def test_push_creates_updates_and_leaves_unchanged(served, tmp_path):
    old, new = model_pair(2_000_000, 10)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = tmp_path / "dst" / "m.bin"
    s = served()
    r = s.client.push(str(src), str(dest))
    assert [(f.path, f.action) for f in r.files] == [("m.bin", "created")]
    assert dest.read_bytes() == new
    assert r.total_size == len(new)

    dest.write_bytes(old)
    r = s.client.push(str(src), str(dest))
    assert [f.action for f in r.files] == ["updated"]
    assert dest.read_bytes() == new
    assert r.wire_bytes < len(new) * 0.15, r  # 3 of 40 tensors and a signature
    assert r.bytes_sent < len(new) * 0.12

    ino = dest.stat().st_ino
    r = s.client.push(str(src), str(dest))
    assert [f.action for f in r.files] == ["unchanged"]
    assert dest.stat().st_ino == ino  # verified in place, not rewritten
    assert r.bytes_sent < 1024  # the request and an all-COPY delta
    assert s.close() == 0
    assert tmp_leftovers(dest.parent) == []


def test_pull_creates_updates_and_leaves_unchanged(served, tmp_path):
    old, new = model_pair(1_500_000, 20)
    remote = write(tmp_path / "remote" / "m.bin", new)
    local = tmp_path / "local" / "m.bin"
    s = served()
    r = s.client.pull(str(remote), str(local))
    assert [f.action for f in r.files] == ["created"] and local.read_bytes() == new
    local.write_bytes(old)
    r = s.client.pull(str(remote), str(local))
    assert [f.action for f in r.files] == ["updated"] and local.read_bytes() == new
    assert r.bytes_received < len(new) * 0.12
    ino = local.stat().st_ino
    r = s.client.pull(str(remote), str(local))
    assert [f.action for f in r.files] == ["unchanged"] and local.stat().st_ino == ino
    s.close()


def test_push_keeps_mode_and_mtime(served, tmp_path):
    src = write(tmp_path / "a" / "run.sh", b"#!/bin/sh\necho hi\n" * 100)
    src.chmod(0o750)
    os.utime(src, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    dest = tmp_path / "b" / "run.sh"
    s = served()
    s.client.push(str(src), str(dest))
    st = dest.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    # unchanged content, changed metadata: the metadata follows
    src.chmod(0o644)
    os.utime(src, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    r = s.client.push(str(src), str(dest))
    assert r.files[0].action == "unchanged"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert dest.stat().st_mtime_ns == 1_700_000_000_000_000_000
    s.close()


def test_file_into_existing_directory_or_trailing_slash(served, tmp_path):
    src = write(tmp_path / "m.bin", b"abc" * 1000)
    (tmp_path / "d1").mkdir()
    s = served()
    s.client.push(str(src), str(tmp_path / "d1"))
    s.client.push(str(src), str(tmp_path / "d2") + "/")
    s.client.push(str(src), str(tmp_path / "d3" / "deep" / "renamed.bin"))
    s.close()
    assert (tmp_path / "d1" / "m.bin").read_bytes() == src.read_bytes()
    assert (tmp_path / "d2" / "m.bin").read_bytes() == src.read_bytes()
    assert (tmp_path / "d3" / "deep" / "renamed.bin").read_bytes() == src.read_bytes()


def make_tree(root, seed=0):
    files = {
        "config.json": b'{"layers": 2}',
        "tokenizer/vocab.txt": b"a\nb\nc\n" * 500,
        "shards/model-00001.bin": rand_bytes(300_000, seed + 1),
        "shards/model-00002.bin": rand_bytes(200_000, seed + 2),
        "shards/empty.bin": b"",
        "tokenizer/spécial file [1].txt": b"names with spaces and more",
    }
    for rel, data in files.items():
        write(root / rel, data)
    (root / "emptydir").mkdir(parents=True, exist_ok=True)
    return files


def tree_files(root):
    out = {}
    for dirpath, _dirs, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_push_folder_then_delete_extras(served, tmp_path):
    src = tmp_path / "model"
    files = make_tree(src)
    os.symlink("/etc/passwd", src / "escape-link")
    os.mkfifo(src / "pipe")
    dest = tmp_path / "mirror" / "model"
    s = served()
    r = s.client.push(str(src), str(dest))
    assert tree_files(dest) == files
    assert (dest / "emptydir").is_dir()
    assert not os.path.lexists(dest / "escape-link") and not os.path.lexists(dest / "pipe")
    skipped = {f.path: f.message for f in r.files if f.action == "skipped"}
    assert set(skipped) == {"escape-link", "pipe"}
    assert "symbolic link" in skipped["escape-link"] and "FIFO" in skipped["pipe"]
    assert r.count("created") == len(files)

    # change one shard, remove a file from the source, add strays on the destination
    shard = src / "shards/model-00001.bin"
    shard.write_bytes(shard.read_bytes()[:100_000] + b"new" + shard.read_bytes()[100_000:])
    (src / "config.json").unlink()
    write(dest / "stray.txt", b"x")
    write(dest / "olddir/deep/f", b"y")
    r = s.client.push(str(src), str(dest))  # no --delete: strays stay
    assert (dest / "stray.txt").exists() and (dest / "config.json").exists()
    assert r.count("updated") == 1 and r.count("unchanged") == len(files) - 2
    r = s.client.push(str(src), str(dest), delete=True)
    assert {f.path for f in r.files if f.action == "deleted"} == {
        "stray.txt",
        "olddir/deep/f",
        "olddir/deep",
        "olddir",
        "config.json",
    }
    files.pop("config.json")
    files["shards/model-00001.bin"] = shard.read_bytes()
    assert tree_files(dest) == files
    assert (dest / "emptydir").is_dir()
    s.close()


def test_pull_folder(served, tmp_path):
    remote = tmp_path / "remote"
    files = make_tree(remote, seed=5)
    local = tmp_path / "local"
    s = served()
    r = s.client.pull(str(remote), str(local))
    assert tree_files(local) == files and r.count("created") == len(files)
    write(local / "stray", b"z")
    (local / "shards/model-00002.bin").write_bytes(b"damaged")
    r = s.client.pull(str(remote), str(local), delete=True)
    assert tree_files(local) == files
    assert r.count("updated") == 1 and r.count("deleted") == 1
    s.close()


def test_pull_deletes_nothing_unless_every_file_synced(served, tmp_path):
    """--delete on a pull: one file fails locally, so no stray is deleted."""
    remote = tmp_path / "remote"
    files = make_tree(remote, seed=7)
    local = tmp_path / "local"
    write(local / "stray.bin", b"kept")
    write(local / "olddir/f", b"kept too")
    (local / "config.json").mkdir(parents=True)  # a folder where the remote has a file
    write(local / "config.json/inside", b"x")
    s = served()
    with pytest.raises(pydelta.SyncError, match="config.json") as ei:
        s.client.pull(str(remote), str(local), delete=True)
    r = ei.value.report
    assert [f.path for f in r.failed] == ["config.json"]
    assert r.count("deleted") == 0
    assert (local / "stray.bin").read_bytes() == b"kept"
    assert (local / "olddir/f").read_bytes() == b"kept too"
    # the other files did sync
    for rel, data in files.items():
        if rel != "config.json":
            assert (local / rel).read_bytes() == data, rel
    # once the obstacle is gone, the same pull deletes the strays
    (local / "config.json/inside").unlink()
    (local / "config.json").rmdir()
    r = s.client.pull(str(remote), str(local), delete=True)
    assert {f.path for f in r.files if f.action == "deleted"} == {"stray.bin", "olddir/f", "olddir"}
    assert tree_files(local) == files
    s.close()


def test_destination_symlink_is_never_followed(served, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "shards")  # a link where the source has a folder
    os.symlink(outside / "cfg", dest / "config.json")  # a link where the source has a file
    s = served()
    with pytest.raises(pydelta.SyncError) as ei:
        s.client.push(str(src), str(dest), delete=True)
    s.close()
    assert os.listdir(outside) == []
    failed = {f.path: f.message for f in ei.value.report.failed}
    # a link in a file's place is replaced by the file (not written through)
    assert "config.json" not in failed and not os.path.islink(dest / "config.json")
    assert any("symbolic link" in m for p, m in failed.items() if p.startswith("shards"))
    # the rest went through, and nothing was deleted after the failures
    assert (dest / "tokenizer/vocab.txt").exists()
    assert os.path.islink(dest / "shards")


def test_failed_file_keeps_old_content_and_others_sync(served, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    dest = tmp_path / "dest"
    make_tree(dest, seed=99)  # every shard differs
    old_big = (dest / "shards/model-00001.bin").read_bytes()
    write(dest / "stray", b"kept: no deletions after a failure")
    # the serving end cannot write files over 250 kB: the 300 kB shard fails
    s = served(file_limit=250_000)
    with pytest.raises(pydelta.SyncError, match="model-00001.bin") as ei:
        s.client.push(str(src), str(dest), delete=True)
    assert s.close() == 0
    r = ei.value.report
    assert [f.path for f in r.failed] == ["shards/model-00001.bin"]
    assert "File too large" in r.failed[0].message
    assert (dest / "shards/model-00001.bin").read_bytes() == old_big
    assert (dest / "shards/model-00002.bin").read_bytes() == files["shards/model-00002.bin"]
    assert r.count("deleted") == 0 and (dest / "stray").exists()
    assert tmp_leftovers(dest / "shards") == []


def test_missing_source_is_a_clear_error(served, tmp_path):
    s = served()
    with pytest.raises(pydelta.FileAccessError, match="no such file"):
        s.client.push(str(tmp_path / "nope"), str(tmp_path / "x"))
    with pytest.raises(pydelta.FileAccessError, match="server:.*no such file"):
        s.client.pull(str(tmp_path / "nope"), str(tmp_path / "x"))
    s.close()  # the session is still usable after both


def test_progress_reports_files_and_total(served, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    seen = []
    s = served(progress=seen.append)
    r = s.client.push(str(src), str(tmp_path / "dst"))
    s.close()
    total = sum(len(v) for v in files.values())
    assert {st.total for st in seen} == {total} == {r.total_size}
    assert [st.done for st in seen] == sorted(st.done for st in seen)
    assert seen[-1].done == total
    for path, data in files.items():
        mine = [st for st in seen if st.path == path]
        assert mine[0].phase == "signature" and {st.phase for st in mine[1:]} == {"delta"}
        assert mine[0].file_done == 0 and mine[-1].file_done == len(data) == mine[-1].file_size


def test_report_summary_reads_like_rsync():
    r = pydelta.SyncReport(
        "a",
        "h:b",
        [pydelta.SyncedFile("x", "updated", 1000, 10, 20)],
        bytes_sent=100,
        bytes_received=25,
        total_size=10_000,
        seconds=0.5,
    )
    text = str(r)
    assert "1 file: 0 created, 1 updated, 0 unchanged, 0 deleted" in text
    assert "sent 100 bytes  received 25 bytes  250.00 bytes/sec" in text
    assert "total size is 10,000  speedup is 80.00" in text


# ---------------------------------------------------------------- broken peers and channels


def send_data(ch, data: bytes) -> None:
    """Data frames of at most DATA_CHUNK bytes, as pydelta sends them (larger ones are refused)."""
    for i in range(0, len(data), _wire.DATA_CHUNK):
        ch.send(_wire.DATA, data[i : i + _wire.DATA_CHUNK])


def raw_session():
    """A ``pydelta serve`` subprocess and a raw channel to it, past the hello."""
    proc = subprocess.Popen(
        [PY, "-m", "pydelta", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ch = _wire.Channel(proc.stdout, proc.stdin, "server")
    ch.send_magic()
    ch.send_json({"op": "hello", "proto": 1})
    ch.expect_magic()
    ch.recv_json()
    return proc, ch


def test_connection_cut_mid_delta_keeps_old_file(tmp_path):
    """The client dies after part of a delta: the server drops its temp file, the old file stays."""
    old, new = rand_bytes(3_000_000, 1), rand_bytes(3_000_000, 2)
    target = write(tmp_path / "dst" / "f.bin", old)
    proc, ch = raw_session()
    ch.send_json({"op": "put", "root": str(target.parent), "path": "f.bin"})
    assert ch.recv_json()["have"] is True
    sig = b"".join(ch.recv_stream())
    d = pydelta.delta(sig, io.BytesIO(new), compress=False)
    send_data(ch, d[: len(d) // 2])
    ch.flush()
    deadline = time.time() + 20
    while not tmp_leftovers(target.parent) and time.time() < deadline:
        time.sleep(0.05)
    assert len(tmp_leftovers(target.parent)) == 1  # the half-written temp file
    proc.stdin.close()  # the connection drops
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 1
    assert "connection to the client lost" in err and "Traceback" not in err
    assert target.read_bytes() == old
    assert tmp_leftovers(target.parent) == []
    proc.stdout.close()
    proc.stderr.close()


def test_broken_first_copy_resumes_from_what_arrived(tmp_path, served):
    """A first copy cut off keeps what it wrote as .NAME.pydelta-partial; the rerun copies from it."""
    new = rand_bytes(6_000_000, 5)
    target = tmp_path / "dst" / "f.bin"
    target.parent.mkdir()
    partial = target.parent / ".f.bin.pydelta-partial"
    proc, ch = raw_session()
    ch.send_json({"op": "put", "root": str(target.parent), "path": "f.bin"})
    assert ch.recv_json()["have"] is False
    sig = b"".join(ch.recv_stream())
    d = pydelta.delta(sig, io.BytesIO(new), compress=False)
    send_data(ch, d[: len(d) * 2 // 3])
    ch.flush()
    deadline = time.time() + 20
    while not tmp_leftovers(target.parent) and time.time() < deadline:
        time.sleep(0.05)
    proc.stdin.close()  # the connection drops two thirds in
    assert proc.wait(timeout=30) == 1
    proc.stdout.close()
    proc.stderr.close()
    assert not target.exists() and tmp_leftovers(target.parent) == []
    got = partial.read_bytes()
    assert len(got) >= 3_000_000 and new.startswith(got)

    src = write(tmp_path / "f.bin", new)
    s = served()
    r = s.client.push(str(src), str(target))
    assert r.files[0].action == "created" and target.read_bytes() == new
    assert r.bytes_sent < len(new) - len(got) + 100_000  # the rest, not the whole file
    assert not partial.exists()
    # a partial that is no prefix at all is only a poor basis: still verified
    write(partial, rand_bytes(1_000_000, 6))
    target.unlink()
    r = s.client.push(str(src), str(target))
    assert target.read_bytes() == new and not partial.exists()
    s.close()


def test_corrupt_delta_is_refused_and_session_goes_on(tmp_path):
    old, new = rand_bytes(500_000, 3), rand_bytes(500_000, 4)
    target = write(tmp_path / "f.bin", old)
    proc, ch = raw_session()
    for _ in range(2):
        ch.send_json({"op": "put", "root": str(tmp_path), "path": "f.bin"})
        ch.recv_json()
        sig = b"".join(ch.recv_stream())
        d = bytearray(pydelta.delta(sig, io.BytesIO(new), compress=False))
        d[-5] ^= 1  # the result digest no longer matches
        send_data(ch, bytes(d))
        ch.send(_wire.END)
        with pytest.raises(pydelta.RemoteError, match="corrupted"):
            ch.recv_json()
    ch.send_json({"op": "put", "root": str(tmp_path), "path": "../escape.bin"})
    with pytest.raises(pydelta.RemoteError, match="refusing path"):
        ch.recv_json()
    ch.send_json({"op": "frobnicate"})
    with pytest.raises(pydelta.RemoteError, match="unknown operation"):
        ch.recv_json()
    ch.send_json({"op": "bye"})
    assert ch.recv_json()["ok"]
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert target.read_bytes() == old and tmp_leftovers(tmp_path) == []
    assert not (tmp_path.parent / "escape.bin").exists()
    proc.stdout.close()
    proc.stderr.close()


def fake_server(script):
    """A thread speaking raw frames on the far end of two pipes; returns (rfile, wfile)."""
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()

    def run():
        with os.fdopen(c2s_r, "rb") as rf, os.fdopen(s2c_w, "wb") as wf:
            try:
                script(rf, wf)
            except Exception:
                pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return os.fdopen(s2c_r, "rb"), os.fdopen(c2s_w, "wb")


def test_chatty_shell_startup_is_recognized():
    def script(rf, wf):
        wf.write(b"Welcome to the cluster!\n")
        wf.flush()
        rf.read()

    r, w = fake_server(script)
    with pytest.raises(pydelta.ProtocolError, match="shell startup file"):
        pydelta.SyncClient(r, w)
    w.close()
    r.close()


def test_malicious_listing_cannot_write_outside(tmp_path):
    """A serving end that lists '../x' gets nothing written outside the destination."""

    def script(rf, wf):
        ch = _wire.Channel(rf, wf, "client")
        ch.send_magic()
        ch.expect_magic()
        ch.recv_json()
        ch.send_json({"ok": True, "proto": 1})
        while True:
            m = ch.recv_json()
            if m["op"] == "stat":
                ch.send_json({"ok": True, "type": "dir"})
            elif m["op"] == "walk":
                ch.send_json(
                    {
                        "ok": True,
                        "entries": [
                            {"path": "../escape", "type": "file", "size": 3},
                            {"path": "/tmp/abs", "type": "file", "size": 3},
                        ],
                    }
                )
            elif m["op"] == "bye":
                ch.send_json({"ok": True})
                ch.flush()
                return
            else:
                ch.send_fail("unexpected")

    r, w = fake_server(script)
    dest = tmp_path / "dest"
    c = pydelta.SyncClient(r, w, peer="evil")
    with pytest.raises(pydelta.SyncError) as ei:
        c.pull("whatever", str(dest))
    c.close()
    assert {f.path for f in ei.value.report.failed} == {"../escape", "/tmp/abs"}
    assert all("refusing path" in f.message for f in ei.value.report.failed)
    assert not (tmp_path / "escape").exists()
    w.close()
    r.close()


# ---------------------------------------------------------------- the command line, through a stand-in ssh


def run_cli(*args, cwd=None):
    return subprocess.run(
        [PY, "-m", "pydelta", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_cli_push_and_summary(fake_ssh, tmp_path):
    old, new = model_pair(1_000_000, 30)
    src = write(tmp_path / "new.bin", new)
    dest = write(tmp_path / "remote" / "m.bin", old)
    p = run_cli("sync", "-e", fake_ssh, "--remote-cmd", REMOTE_CMD, "-v", str(src), f"host:{dest}")
    assert p.returncode == 0, p.stderr
    assert dest.read_bytes() == new
    assert "updated   m.bin" in p.stdout
    assert "1 file: 0 created, 1 updated, 0 unchanged, 0 deleted" in p.stdout
    assert "speedup is" in p.stdout and p.stderr == ""
    p = run_cli(
        "sync",
        "-q",
        "-e",
        fake_ssh,
        "--remote-cmd",
        REMOTE_CMD,
        f"host:{dest}",
        str(tmp_path / "back.bin"),
    )
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    assert (tmp_path / "back.bin").read_bytes() == new


def test_cli_remote_without_pydelta(fake_ssh, tmp_path):
    src = write(tmp_path / "a.bin", b"x" * 100)
    p = run_cli(
        "sync", "-e", fake_ssh, "--remote-cmd", "/nonexistent/bin/pydelta", str(src), "host:b.bin"
    )
    assert p.returncode == 6  # remote/connection
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "pydelta: error: pydelta is not installed on host"
    )
    assert "--remote-cmd" in lines[0] and "Traceback" not in p.stderr


def test_cli_json_report(fake_ssh, tmp_path):
    old, new = model_pair(200_000, 31)
    src = write(tmp_path / "new.bin", new)
    dest = write(tmp_path / "remote" / "m.bin", old)
    p = run_cli(
        "sync", "-e", fake_ssh, "--remote-cmd", REMOTE_CMD, "--json", str(src), f"host:{dest}"
    )
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    (f,) = report["files"]
    assert f["path"] == "m.bin" and f["action"] == "updated" and f["size"] == len(new)
    assert f["sent"] <= report["bytes_sent"] and f["message"] == ""
    assert report["total_size"] == len(new) and report["speedup"] > 1 and not report["dry_run"]
    assert dest.read_bytes() == new


def test_cli_failures_are_one_line(fake_ssh, tmp_path):
    p = run_cli(
        "sync", "-e", fake_ssh, "--remote-cmd", REMOTE_CMD, str(tmp_path / "missing"), "host:x"
    )
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "no such file" in p.stderr
    p = run_cli("sync", str(tmp_path / "a"), str(tmp_path / "b"))
    assert p.returncode == 2 and "exactly one of SRC and DEST must be remote" in p.stderr
    p = run_cli("sync", "-e", "/nonexistent/ssh", str(tmp_path), "host:x")
    assert p.returncode == 6 and "cannot run /nonexistent/ssh" in p.stderr


def test_cli_reports_skipped_and_failed_files(fake_ssh, tmp_path):
    src = tmp_path / "src"
    make_tree(src)
    os.symlink("/etc", src / "etc-link")
    dest = tmp_path / "dest"
    (dest / "shards" / "model-00001.bin").mkdir(parents=True)  # a folder where a file goes
    p = run_cli("sync", "-e", fake_ssh, "--remote-cmd", REMOTE_CMD, str(src), f"h:{dest}")
    assert p.returncode == 7  # some files not synced
    assert "pydelta: skipped etc-link: symbolic link" in p.stderr
    assert "pydelta: failed shards/model-00001.bin:" in p.stderr and "is a directory" in p.stderr
    assert "pydelta: error: 1 file not synced (they keep their old content)" in p.stderr
    assert "1 failed" in p.stdout
    assert (dest / "config.json").exists()


def test_quick_check_skips_files_with_same_size_and_time(served, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    dest = tmp_path / "dest"
    s = served()
    s.client.push(str(src), str(dest))
    # same size and time, different content: only a full compare notices
    victim = dest / "shards/model-00002.bin"
    st = victim.stat()
    victim.write_bytes(bytes(len(files["shards/model-00002.bin"])))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = s.client.push(str(src), str(dest), quick=True)
    assert r.count("unchanged") == len(files) and r.bytes_received < 4096  # no signatures
    assert all("quick check" in f.message for f in r.files if f.action == "unchanged")
    assert victim.read_bytes() != files["shards/model-00002.bin"]
    r = s.client.push(str(src), str(dest))  # by content: repaired
    assert r.count("updated") == 1 and victim.read_bytes() == files["shards/model-00002.bin"]
    # a changed time is enough to look at the content again
    one = src / "config.json"
    os.utime(one, ns=(0, 1_000_000_000))
    r = s.client.pull(str(dest), str(tmp_path / "pulled"), quick=True)
    assert r.count("created") == len(files)
    r = s.client.push(str(one), str(dest / "config.json"), quick=True)
    assert r.files[0].action == "unchanged" and not r.files[0].message  # compared, same bytes
    s.close()


# ---------------------------------------------------------------- adaptive compression


class FakeLink:
    def __init__(self):
        self.sent = 0
        self.write_seconds = 0.0

    def push(self, nbytes, rate):
        self.sent += nbytes
        self.write_seconds += nbytes / rate


def test_link_gate_compresses_only_while_zstd_outruns_the_link():
    from pydelta.sync.transfer import LinkGate as _LinkGate

    link = FakeLink()
    gate = _LinkGate(link, workers=2)
    assert gate()  # nothing measured yet: small deltas are always compressed
    for _ in range(8):
        gate.record(256 << 10, (256 << 10) / 100e6)  # 100 MB/s per worker: 200 MB/s
    link.push(8 << 20, 50e6)  # a 400 Mbit/s link
    assert gate()
    link.push(64 << 20, 2e9)  # a link faster than we compress
    assert not gate()
    link.push(64 << 20, 30e6)  # slow again: the window forgets the fast part
    assert gate()
    for _ in range(64):
        gate.record(256 << 10, (256 << 10) / 10e6)  # busy cores: 20 MB/s in all
    assert not gate()  # plain is faster than compressing for a 30 MB/s link now
    link.push(64 << 20, 1e12)  # writes that never block: the link is not the limit
    assert not gate()


THROTTLED_SSH = """#!{py}
# stands in for ssh over a slow link: our stdin reaches the remote command
# at {rate} bytes/s; the remote command's output comes back unthrottled
import subprocess, sys, time
p = subprocess.Popen(["sh", "-c", " ".join(sys.argv[2:])], stdin=subprocess.PIPE)
start, sent = time.monotonic(), 0
while True:
    chunk = sys.stdin.buffer.read1(65536)
    if not chunk:
        break
    p.stdin.write(chunk)
    p.stdin.flush()
    sent += len(chunk)
    ahead = sent / {rate} - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
    elif ahead < -0.01:  # idle time earns no burst
        start += -0.01 - ahead
p.stdin.close()
sys.exit(p.wait())
"""


def test_slow_link_gets_compressed_literals(tmp_path, fake_ssh):
    """End to end over a throttled stand-in ssh, independent of measured speeds.

    The file compresses about 700:1, so its whole compressed delta fits in
    the gate's warm-up (the first bytes sent are always compressed): no
    measurement of zstd or link speed takes part. The gate's decisions from
    measurements are test_link_gate_compresses_only_while_zstd_outruns_the_link
    (a fake link) and test_each_literal_asks_the_gate (wiring).
    """
    from pydelta.sync.transfer import LinkGate as _LinkGate

    script = tmp_path / "slow-ssh"
    script.write_text(THROTTLED_SSH.format(py=PY, rate=40e6))
    script.chmod(0o755)
    pieces = [rand_bytes(64, i) for i in range(97)]
    data = b"".join(pieces[(i * i) % 97] for i in range((16 << 20) // 64))  # zstd: fast, ~1/700
    src = write(tmp_path / "m.bin", data)
    dest = tmp_path / "remote" / "m.bin"
    r = pydelta.sync(str(src), f"h:{dest}", ssh=[str(script)], remote_cmd=REMOTE_CMD)
    assert dest.read_bytes() == data
    assert r.bytes_sent < _LinkGate.WARMUP // 4, r  # well inside the warm-up
    # asked for plainly, the literals go plain whatever the link (no throttle needed)
    dest.unlink()
    r = pydelta.sync(str(src), f"h:{dest}", ssh=[fake_ssh], remote_cmd=REMOTE_CMD, compress=False)
    assert dest.read_bytes() == data and r.bytes_sent > len(data)


@pytest.mark.parametrize("answer", [True, False])
def test_each_literal_asks_the_gate(served, tmp_path, monkeypatch, answer):
    """compress=None: every literal goes as the gate says (scripted here, not measured)."""
    from pydelta.sync.transfer import LinkGate as _LinkGate

    asked = []

    def scripted(self):
        asked.append(1)
        return answer

    monkeypatch.setattr(_LinkGate, "__call__", scripted)
    data = bytes(8 << 20)  # compresses to almost nothing
    src = write(tmp_path / "z.bin", data)
    s = served()
    r = s.client.push(str(src), str(tmp_path / "dest" / "z.bin"))
    s.close()
    assert (tmp_path / "dest" / "z.bin").read_bytes() == data
    assert len(asked) >= (8 << 20) // (256 << 10)  # once per literal at least
    assert (r.bytes_sent < 1 << 20) if answer else (r.bytes_sent > len(data))


def test_dry_run_changes_nothing_and_says_what_would_happen(served, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    dest = tmp_path / "dest"
    s = served()
    r = s.client.push(str(src), str(dest), delete=True, dry_run=True)
    assert not dest.exists() and r.dry_run
    assert r.count("created") == len(files) and r.bytes_sent < 4096
    s.client.push(str(src), str(dest))
    (src / "config.json").write_bytes(b'{"layers": 3}')
    write(dest / "stray.bin", b"x")
    before = tree_files(dest)
    r = s.client.push(str(src), str(dest), delete=True, quick=True, dry_run=True)
    assert tree_files(dest) == before
    assert {f.path: f.action for f in r.files if f.action != "unchanged"} == {
        "config.json": "updated",
        "stray.bin": "deleted",
    }
    assert str(r).startswith("dry run, nothing changed - would be: ")
    assert "speedup" not in str(r)  # nothing moved: no speed-up to report
    r = s.client.pull(str(dest), str(tmp_path / "local"), dry_run=True)
    assert not (tmp_path / "local").exists() and r.count("created") == len(files) + 1
    s.close()


def test_broken_pipe_to_ssh_is_reported_not_silenced(tmp_path):
    """An ssh that exits at once breaks the pipe we write to: that is a sync error with a message."""
    src = write(tmp_path / "a.bin", b"x" * 100)
    script = tmp_path / "gone-ssh"
    script.write_text("#!/bin/sh\nexec 0<&-\necho 'sh: 1: pydelta: not found' >&2\nexit 127\n")
    script.chmod(0o755)
    for _ in range(3):
        p = run_cli("sync", "-e", str(script), str(src), "host:b.bin")
        assert p.returncode == 6  # remote/connection
        assert p.stderr.startswith("pydelta: error: pydelta is not installed on host"), p.stderr
