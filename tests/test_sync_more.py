"""rsync-user options of pydelta sync: symbolic links (-l, -L), --exclude /
--include, --bwlimit, -i/--itemize-changes and --stats.

The end-to-end cases run over the loopback OpenSSH server
(tests/sshd_server.py), with a folder laid out like a Hugging Face hub cache
(blobs/, snapshots/<rev>/ of relative links into ../../blobs, refs/main);
the safety cases also talk to a ``pydelta serve`` subprocess directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from conftest import rand_bytes
from test_sync import Served, write

import pydelta
from pydelta.sync.bwlimit import TokenBucket, parse_rate
from pydelta.sync.filters import Filter, make_filter, order_from_argv
from pydelta.sync.fs import make_link
from pydelta.sync.links import unsafe_reason

PY = sys.executable
REMOTE_CMD = f"{PY} -m pydelta"
REV = "0123456789abcdef0123456789abcdef01234567"


def ssh_sync(sshd, src, dest, **kw):
    kw.setdefault("remote_cmd", REMOTE_CMD)
    return pydelta.sync(src, dest, ssh=sshd.ssh_argv, **kw)


def hub_cache(root):
    """A hub-cache repo folder: blobs named by hash, a snapshot of relative links."""
    blobs = {
        "a1" * 20: rand_bytes(300_000, 1),  # model.safetensors
        "b2" * 20: b'{"model_type": "llama"}\n',  # config.json
        "c3" * 20: rand_bytes(50_000, 2),  # tokenizer.json
    }
    for sha, data in blobs.items():
        write(root / "blobs" / sha, data)
    write(root / "refs" / "main", REV.encode())
    snap = root / "snapshots" / REV
    (snap / "sub").mkdir(parents=True)
    names = {"model.safetensors": "a1", "config.json": "b2", "sub/tokenizer.json": "c3"}
    for name, h in names.items():
        up = "../" * (name.count("/") + 2)
        os.symlink(f"{up}blobs/{h * 20}", snap / name)
    return blobs, names


def tree(root):
    """{path: ("link", target) | ("file", bytes) | ("dir",)} of a tree, links not followed."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", f.read())
    return out


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    "rules, path, is_dir, want",
    [
        ([("exclude", "*.tmp")], "a/b/x.tmp", False, False),
        ([("exclude", "*.tmp")], "x.tmpl", False, True),
        ([("exclude", "/cache/")], "cache", True, False),
        ([("exclude", "/cache/")], "a/cache", True, True),
        ([("exclude", "/cache/")], "cache", False, True),  # trailing '/': folders only
        ([("exclude", "cache/")], "a/cache", True, False),
        ([("exclude", "a/*.bin")], "x/a/m.bin", False, False),
        ([("exclude", "a/*.bin")], "a/b/m.bin", False, True),  # '*' stops at '/'
        ([("exclude", "a/**.bin")], "a/b/m.bin", False, False),
        ([("exclude", "m?.bin")], "m1.bin", False, False),
        ([("exclude", "m[0-4].bin")], "m5.bin", False, True),
        ([("include", "keep.bin"), ("exclude", "*.bin")], "d/keep.bin", False, True),
        ([("exclude", "*.bin"), ("include", "keep.bin")], "keep.bin", False, False),
    ],
)
def test_filter_rules(rules, path, is_dir, want):
    assert Filter(rules).included(path, is_dir) is want


def test_excluded_folder_takes_its_contents_and_bad_patterns():
    f = make_filter(exclude=["/blobs/"], include=["*.json"])
    entries = [
        {"path": "blobs", "type": "dir"},
        {"path": "blobs/x.json", "type": "file"},
        {"path": "a.json", "type": "file"},
    ]
    assert [e["path"] for e in f.apply(entries)] == ["a.json"]
    for bad in ("", "/", "a\0b"):
        with pytest.raises(pydelta.UsageError):
            make_filter(exclude=[bad])
    with pytest.raises(pydelta.UsageError):
        make_filter(exclude="*.bin")  # one string, not a list


@pytest.mark.parametrize(
    "rel, target, ok",
    [
        ("snapshots/r/m.bin", "../../blobs/x", True),
        ("snapshots/r/sub/t.json", "../../../blobs/x", True),
        ("snapshots/r/m.bin", "../../../x", False),
        ("m.bin", "../x", False),
        ("a/m", "b/../../x", False),  # '..' after a name: b may be a link
        ("a/m", "../b/./c", True),
        ("a/m", "../../x/../a", False),  # climbs out on the way
        ("m", "/etc/passwd", False),
        ("m", "", False),
    ],
)
def test_link_safety(rel, target, ok):
    assert (unsafe_reason(rel, target) is None) is ok


def test_parse_rate_and_bucket_accounting():
    assert parse_rate("10M") == 10 << 20 and parse_rate("100") == 102400
    assert parse_rate("1KB") == 1000 and parse_rate("0") is None and parse_rate("2g") == 2 << 30
    for bad in ("fast", "-1", "10X", "0.0001"):
        with pytest.raises(pydelta.UsageError):
            parse_rate(bad)
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    b = TokenBucket(1000, burst=500, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        b.take(250)
    assert b.taken == 2500
    # 2500 bytes at 1000 B/s with 500 in the bucket at the start: 2 s of waiting
    assert abs(now[0] - 2.0) < 1e-9 and abs(b.slept - 2.0) < 1e-9


def test_make_link_replaces_links_and_refuses_escapes(tmp_path):
    root = tmp_path / "root"
    outside = write(tmp_path / "outside.txt", b"keep me")
    write(root / "d" / "f", b"x")
    os.symlink(str(outside), root / "d" / "l")  # an existing link at the destination
    assert make_link(str(root), "d/l", "f") == "updated"
    assert os.readlink(root / "d" / "l") == "f" and outside.read_bytes() == b"keep me"
    assert make_link(str(root), "d/l", "f") == "unchanged"
    assert make_link(str(root), "d/new", "../d/f") == "created"
    with pytest.raises(pydelta.FileAccessError, match="leaves the tree"):
        make_link(str(root), "d/bad", "../../outside.txt")
    with pytest.raises(pydelta.FileAccessError, match="absolute"):
        make_link(str(root), "bad", str(outside))
    os.symlink(str(tmp_path), root / "up")  # a linked parent directory is not traversed
    with pytest.raises(pydelta.FileAccessError, match="symbolic link"):
        make_link(str(root), "up/x", "y")
    assert not (tmp_path / "x").exists()
    (root / "dir").mkdir()
    with pytest.raises(pydelta.FileAccessError, match="directory"):
        make_link(str(root), "dir", "d/f")


def test_receiving_end_rechecks_link_targets(tmp_path):
    """A peer asking the server for an escaping link is refused, and the
    session goes on."""
    s = Served(tmp_path)
    try:
        dest = tmp_path / "dest"
        dest.mkdir()
        with pytest.raises(pydelta.RemoteError, match="refusing path"):
            s.client._remote.symlink(str(dest), "a/../x", "y")  # bad path
        with pytest.raises(pydelta.RemoteError, match="leaves the tree"):
            s.client._remote.symlink(str(dest), "x", "../../etc/passwd")
        assert not os.path.lexists(dest / "x")
        assert s.client._remote.symlink(str(dest), "x", "y") == "created"
        assert os.readlink(dest / "x") == "y"
    finally:
        assert s.close() == 0


def test_file_replaces_a_link_at_the_destination(tmp_path):
    src = write(tmp_path / "src" / "m.bin", rand_bytes(20_000, 5))
    outside = write(tmp_path / "outside.bin", b"not to be written")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(outside), dest / "m.bin")
    s = Served(tmp_path)
    try:
        r = s.client.push(str(tmp_path / "src"), str(dest))
        assert [f.action for f in r.files] == ["created"]
    finally:
        assert s.close() == 0
    assert not os.path.islink(dest / "m.bin") and (dest / "m.bin").read_bytes() == src.read_bytes()
    assert outside.read_bytes() == b"not to be written"


def test_old_peer_skips_links_with_a_message(tmp_path):
    """A server without the "links" feature: links are skipped as before, saying why."""
    root = tmp_path / "repo"
    hub_cache(root)
    old = subprocess.Popen(
        [
            PY,
            "-c",
            "import importlib; m = importlib.import_module('pydelta.sync.messages'); "
            "m.FEATURES = frozenset(); "
            "from pydelta.sync.server import serve_main; raise SystemExit(serve_main())",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        c = pydelta.SyncClient(old.stdout, old.stdin, peer="old")
        assert c.features == frozenset()
        r = c.push(str(root), str(tmp_path / "dest"), links=True)
        skipped = {f.path: f.message for f in r.files if f.action == "skipped"}
        assert len(skipped) == 3 and all("too old" in m for m in skipped.values())
        assert r.count("created") == 4  # the blobs and refs/main
        r = c.pull(str(root), str(tmp_path / "back"), links=True)
        assert {f.path for f in r.files if f.action == "skipped"} == set(skipped)
        assert r.files[0].literal is None  # no "stats" feature: not known
        # -L on a push needs nothing from the far end: the links arrive as files
        r = c.push(str(root), str(tmp_path / "flat"), copy_links=True)
        assert r.count("created") == 4 + 3 and not r.count("skipped")
        assert not os.path.islink(tmp_path / "flat" / "snapshots" / REV / "config.json")
        c.close()
    finally:
        old.stdin.close()
        assert old.wait(timeout=30) == 0
        old.stdout.close()


# ---------------------------------------------------------------- over ssh


def test_hub_cache_push_and_pull_with_links(sshd, tmp_path):
    root = tmp_path / "models--org--m"
    blobs, names = hub_cache(root)
    os.symlink("/etc/hostname", root / "snapshots" / REV / "absolute")
    os.symlink("../../../../outside", root / "snapshots" / REV / "escaping")
    remote = tmp_path / "srv" / "models--org--m"
    r = ssh_sync(sshd, str(root), sshd.target(remote), links=True)
    want = tree(root)
    del want[f"snapshots/{REV}/absolute"], want[f"snapshots/{REV}/escaping"]
    assert tree(remote) == want
    skipped = {f.path: f.message for f in r.files if f.action == "skipped"}
    assert set(skipped) == {f"snapshots/{REV}/absolute", f"snapshots/{REV}/escaping"}
    assert "absolute" in skipped[f"snapshots/{REV}/absolute"]
    assert "leaves the tree" in skipped[f"snapshots/{REV}/escaping"]
    # each blob crossed once (incompressible model bytes: about their size)
    big = sum(len(b) for b in blobs.values())
    assert big <= r.bytes_sent < big + 16_000, str(r)
    assert r.count("created") == 4 + len(names)
    lines = r.itemized()
    assert f"cL+++++++++ snapshots/{REV}/config.json -> ../../blobs/{'b2' * 20}" in lines
    assert f"<f+++++++++ blobs/{'a1' * 20}" in lines and "cd+++++++++ snapshots/" in lines
    # the snapshot resolves at the destination
    assert (remote / "snapshots" / REV / "model.safetensors").read_bytes() == blobs["a1" * 20]

    # again: nothing moves, the links are unchanged (from the listing alone)
    r = ssh_sync(sshd, str(root), sshd.target(remote), links=True, quick=True)
    assert r.count("unchanged") == 4 + len(names) and r.bytes_sent < 4096
    assert r.itemized() == []

    # a link moved to another blob, a stale link at the destination: --delete
    snap = root / "snapshots" / REV
    os.unlink(snap / "config.json")
    os.symlink(f"../../blobs/{'c3' * 20}", snap / "config.json")
    os.symlink("gone", remote / "snapshots" / REV / "stale")
    r = ssh_sync(sshd, str(root), sshd.target(remote), links=True, quick=True, delete=True)
    assert tree(remote) == {
        **want,
        f"snapshots/{REV}/config.json": ("link", f"../../blobs/{'c3' * 20}"),
    }
    assert f"cLc........ snapshots/{REV}/config.json -> ../../blobs/{'c3' * 20}" in r.itemized()
    assert f"*deleting   snapshots/{REV}/stale" in r.itemized()

    # pull it back
    back = tmp_path / "back"
    r = ssh_sync(sshd, sshd.target(remote), str(back), links=True)
    assert tree(back) == tree(remote)
    assert big <= r.bytes_received < big + 16_000
    assert sum(f.literal for f in r.files if f.kind == "file") == sum(
        len(b) for b in blobs.values()
    ) + len(REV)


def test_copy_links_materializes_a_snapshot(sshd, tmp_path):
    root = tmp_path / "models--org--m"
    blobs, names = hub_cache(root)
    write(tmp_path / "outside", b"secret")
    os.symlink("../../../outside", root / "snapshots" / REV / "escaping")
    os.symlink("missing", root / "snapshots" / REV / "dangling")
    os.symlink(".", root / "snapshots" / REV / "sub" / "loop")
    for direction in ("push", "pull"):
        dest = tmp_path / direction
        if direction == "push":
            r = ssh_sync(
                sshd, str(root), sshd.target(dest), copy_links=True, exclude=["/blobs/", "/refs/"]
            )
        else:
            r = ssh_sync(
                sshd, sshd.target(root), str(dest), copy_links=True, exclude=["/blobs/", "/refs/"]
            )
        got = tree(dest)
        assert not [p for p, v in got.items() if v[0] == "link"]
        assert not (dest / "blobs").exists()
        for name, h in names.items():
            assert got[f"snapshots/{REV}/{name}"] == ("file", blobs[h * 20])
        skipped = {f.path: f.message for f in r.files if f.action == "skipped"}
        assert set(skipped) == {
            f"snapshots/{REV}/escaping",
            f"snapshots/{REV}/dangling",
            f"snapshots/{REV}/sub/loop",
        }
        assert "outside the tree" in skipped[f"snapshots/{REV}/escaping"]
        assert "dangling" in skipped[f"snapshots/{REV}/dangling"]
        assert "loop" in skipped[f"snapshots/{REV}/sub/loop"]


def test_exclude_include_and_delete_protection(sshd, tmp_path):
    src = tmp_path / "ckpt"
    write(src / "model.bin", rand_bytes(40_000, 1))
    write(src / "opt.pt", rand_bytes(30_000, 2))
    write(src / "cache" / "x.bin", b"c")
    write(src / "logs" / "keep.json", b"{}")
    write(src / "logs" / "run.log", b"log")
    remote = tmp_path / "srv"
    write(remote / "notes.tmp", b"mine")  # excluded at the destination: kept by --delete
    write(remote / "stale.bin", b"old")
    kw = dict(exclude=["*.pt", "/cache/", "*.tmp", "logs/*"], include=["logs/*.json"])
    r = ssh_sync(sshd, str(src), sshd.target(remote), delete=True, **kw)
    got = {p for p, v in tree(remote).items() if v[0] == "file"}
    assert got == {"model.bin", "logs/keep.json", "notes.tmp"}
    assert [f.path for f in r.files if f.action == "deleted"] == ["stale.bin"]
    assert r.bytes_sent < 40_000 + 8_000  # opt.pt did not move
    assert r.source_counts == {"file": 2, "dir": 1}
    # pull with the same rules
    back = tmp_path / "back"
    ssh_sync(sshd, sshd.target(src), str(back), **kw)
    assert {p for p, v in tree(back).items() if v[0] == "file"} == {"model.bin", "logs/keep.json"}


def test_bwlimit_holds_both_directions(sshd, tmp_path):
    data = rand_bytes(400_000, 9)
    local = write(tmp_path / "a.bin", data)
    remote = tmp_path / "r" / "a.bin"
    t0 = time.monotonic()
    r = ssh_sync(sshd, str(local), sshd.target(remote), bwlimit="256K", compress=False)
    took = time.monotonic() - t0
    assert remote.read_bytes() == data and r.bwlimit == 256 << 10
    # 400 KB at 256 KiB/s with a 64 KiB bucket: at least 1.28 s of wall time; the
    # limiter's own account of its waits is that less the time spent working
    assert took > 1.2 and r.bwlimit_seconds > 0.5, (r.bwlimit_seconds, took)
    # pull: the far end's writes are held (the limit travels in hello)
    back = tmp_path / "back.bin"
    t0 = time.monotonic()
    r = ssh_sync(sshd, sshd.target(remote), str(back), bwlimit=256 << 10, compress=False)
    took = time.monotonic() - t0
    assert back.read_bytes() == data and took > 1.2 and r.bwlimit_seconds < 0.5


def test_bwlimit_accounts_every_byte_written(tmp_path):
    write(tmp_path / "src" / "a.bin", rand_bytes(200_000, 3))
    s = Served(tmp_path, bwlimit="10M")
    try:
        s.client.push(str(tmp_path / "src"), str(tmp_path / "dst"))
        ch = s.client._ch
        assert ch.limiter.taken == ch.sent > 200_000
    finally:
        assert s.close() == 0


def test_cli_itemize_and_stats(sshd, tmp_path):
    src = tmp_path / "m"
    write(src / "a.bin", rand_bytes(100_000, 4))
    write(src / "d" / "b.bin", rand_bytes(10_000, 5))
    remote = tmp_path / "r"

    def run(*args):
        p = subprocess.run(
            [PY, "-m", "pydelta", "sync", "-e", sshd.ssh_cmd, "--remote-cmd", REMOTE_CMD]
            + list(args)
            + [str(src), sshd.target(remote)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        return p.stdout, p.stderr

    os.symlink("/etc/hostname", src / "abs")
    os.symlink("a.bin", src / "d" / "..a")  # a name that only looks like a climb
    out, err = run("-i", "--stats", "-l")
    assert err == (
        "pydelta: skipped abs: symbolic link to /etc/hostname: its target is an "
        "absolute path, not copied\n"
    )
    lines = out.splitlines()
    assert lines[:4] == [
        "<f+++++++++ a.bin",
        "cd+++++++++ d/",
        "cL+++++++++ d/..a -> a.bin",
        "<f+++++++++ d/b.bin",
    ]
    assert "Number of files: 4 (reg: 2, dir: 1, link: 1)" in out
    assert "Number of regular files transferred: 2" in out
    assert "Literal data: 110,000 bytes" in out and "Matched data: 0 bytes" in out
    assert "speedup is" in out
    data = (src / "a.bin").read_bytes()
    (src / "a.bin").write_bytes(data[:50_000] + b"X" + data[50_001:])
    os.utime(src / "d" / "b.bin", ns=(0, 10**18))
    out, _ = run("-ii", "--stats", "-l")
    assert "<fc.t...... a.bin" in out.splitlines()
    assert ".f..t...... d/b.bin" in out.splitlines()  # same bytes, new time
    assert "Matched data: " in out and "Matched data: 0 bytes" not in out


def test_dry_run_with_links_and_filters(tmp_path):
    root = tmp_path / "repo"
    hub_cache(root)
    s = Served(tmp_path)
    try:
        r = s.client.push(
            str(root), str(tmp_path / "d"), links=True, dry_run=True, exclude=["/refs/"]
        )
        assert not (tmp_path / "d").exists()
        made = {f.path for f in r.files if f.action == "created"}
        assert f"snapshots/{REV}/config.json" in made and "refs/main" not in made
        assert r.count("created") == 3 + 3  # blobs and links; folders are not counted
        assert f"cL+++++++++ snapshots/{REV}/config.json -> ../../blobs/{'b2' * 20}" in (
            r.itemized()
        )
    finally:
        assert s.close() == 0


def test_command_line_order_of_filters(sshd, tmp_path):
    assert order_from_argv(["--include", "--exclude", "--exclude=b"], ["b"], ["--exclude"]) == [
        ("include", "--exclude"),
        ("exclude", "b"),
    ]
    assert order_from_argv(["--exclude", "a"], ["other"], []) is None
    src = tmp_path / "m"
    write(src / "d" / "x.json", b"{}")
    write(src / "y.json", b"{}")
    remote = tmp_path / "r"
    p = subprocess.run(
        [PY, "-m", "pydelta", "sync", "-e", sshd.ssh_cmd, "--remote-cmd", REMOTE_CMD, "-i"]
        + ["--exclude", "d/", "--include", "*/", "--include", "*.json", "--exclude", "*"]
        + [str(src), sshd.target(remote)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    # the first --exclude comes first: d/ is left out although '*/' would include it
    assert p.stdout.splitlines()[0] == "<f+++++++++ y.json" and not (remote / "d").exists()


@pytest.mark.parametrize(
    "args, why", [(["--bwlimit", "fast"], "bad --bwlimit"), (["--exclude", ""], "bad exclude")]
)
def test_bad_options_are_usage_errors_before_connecting(tmp_path, args, why):
    p = subprocess.run(
        [PY, "-m", "pydelta", "sync", "-e", "/nonexistent/ssh"] + args + ["a", "host:b"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and why in p.stderr, p.stderr
