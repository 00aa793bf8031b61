"""Fleet delivery (issue 12): many pullers, near stores and mirrors, HTTP stores,
tags and diff, gc against concurrent pushes.

Tests taking the ``store`` fixture run against a local-directory store and
against a bucket on moto's S3 server on loopback (tests/store_fixtures.py);
the HTTP store is a store directory served by tests/http_range_server.py.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
from http_range_server import RangeServer

from pydelta import errors
from pydelta.store import diff, mirror, open_store, pull, push, tag
from pydelta.store.lock import dest_lock, lock_path
from pydelta.store.stores import tag_key, version_key

gc_mod = importlib.import_module("pydelta.store.gc")
push_mod = importlib.import_module("pydelta.store.push")
base_mod = importlib.import_module("pydelta.store.base")
gc = gc_mod.gc

SMALL = dict(pack_size=256 << 10, chunk_avg=16 << 10, jobs=3)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rnd(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def edit(a: bytes, seed: int, share: float = 0.1) -> bytes:
    """A grown header and ``share`` of the bytes rewritten in one place."""
    r = random.Random(seed)
    out = bytearray(a[:64] + b"{more header}" + a[64:])
    n = int(len(a) * share)
    at = r.randrange(1000, len(out) - n)
    out[at : at + n] = r.randbytes(n)
    return bytes(out)


@pytest.fixture
def fast_retries(monkeypatch):
    """Short backoff, so an unreachable store is given up on quickly."""
    monkeypatch.setattr(base_mod, "BACKOFF", 0.01)
    monkeypatch.setattr(base_mod, "RETRIES", 1)


@pytest.fixture
def served(tmp_path):
    """Serve a directory over HTTP (with Range); yields a factory."""
    servers = []

    def start(root, rate=None) -> RangeServer:
        s = RangeServer(str(root), rate=rate).start()
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def env_for_children(store) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ---------------------------------------------------------------- many pullers

PULLER = r"""
import json, os, sys, time
import pydelta
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.005)
kw = json.loads(sys.argv[4])
r = pydelta.pull(sys.argv[2], sys.argv[3], tag="v1", jobs=2, **kw)
print(json.dumps({"downloaded": r.downloaded_bytes, "fetched": r.fetched_chunks, "quick": r.quick}))
"""


def _run_pullers(n, store_url, dest, kw, tmp_path, env):
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PULLER, str(go), store_url, str(dest), json.dumps(kw)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(n)
    ]
    time.sleep(0.5)  # let them all start and wait for the signal
    go.write_bytes(b"")
    out = []
    for p in procs:
        so, se = p.communicate(timeout=120)
        assert p.returncode == 0, se.decode()
        out.append(json.loads(so.decode().strip().splitlines()[-1]))
    return out


def test_concurrent_pullers_download_once(store, tmp_path):
    data = rnd(3 << 20, 1)
    (tmp_path / "m.bin").write_bytes(data)
    r = push(tmp_path / "m.bin", store.url, tag="v1", **SMALL, **store.kw)
    dest = tmp_path / "node" / "model.bin"
    res = _run_pullers(5, store.url, dest, store.kw, tmp_path, env_for_children(store))
    assert dest.read_bytes() == data
    assert sum(1 for x in res if x["fetched"]) == 1, (
        res
    )  # one downloaded, the others found it ready
    assert sum(x["downloaded"] for x in res) < len(data) * 1.05 + 5 * 4096, res
    assert r.version
    assert os.path.exists(lock_path(str(dest)))


def test_concurrent_pullers_over_http_count_bytes_served(tmp_path, served):
    """Five pullers against a slow HTTP server: the server sends the model once."""
    data = rnd(2 << 20, 2)
    (tmp_path / "m.bin").write_bytes(data)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    srv = served(tmp_path / "store", rate=4e6)  # ~0.5 s for the model: the pullers overlap
    dest = tmp_path / "node" / "model.bin"
    env = dict(os.environ)
    res = _run_pullers(5, srv.url, dest, {}, tmp_path, env)
    assert dest.read_bytes() == data
    waited = [x for x in res if x["quick"]]
    assert len(waited) >= 3, res  # they waited on the lock and trusted the record left
    pack_bytes = sum(
        os.path.getsize(tmp_path / "store" / "packs" / f)
        for f in os.listdir(tmp_path / "store" / "packs")
        if f.endswith(".pack")
    )
    manifest = sum(
        os.path.getsize(tmp_path / "store" / "versions" / f)
        for f in os.listdir(tmp_path / "store" / "versions")
    )
    # one copy of the packs, one manifest, a few small tag reads
    assert srv.sent <= pack_bytes + manifest + 5 * 1024, (srv.sent, pack_bytes)


def test_killed_puller_releases_lock_and_rerun_fetches_the_rest(tmp_path, served):
    data = rnd(4 << 20, 3)
    (tmp_path / "m.bin").write_bytes(data)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    srv = served(tmp_path / "store", rate=2e6)
    dest = tmp_path / "model.bin"
    p = subprocess.Popen(
        [sys.executable, "-m", "pydelta", "pull", srv.url, str(dest), "-t", "v1", "-j", "1", "-q"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while srv.sent < len(data) // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "the pull finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    first = srv.sent
    assert not dest.exists()
    srv.rate = None
    # the kernel released the dead puller's lock: this one does not wait
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pydelta",
            "pull",
            srv.url,
            str(dest),
            "-t",
            "v1",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    # (exit 0 within --timeout 20: the dead puller's lock did not hold it up)
    assert dest.read_bytes() == data
    second = srv.sent - first
    assert second < len(data) * 0.85, (first, second)  # the chunks that had arrived were kept
    assert "chunks from local files" in r.stdout


def test_killed_puller_on_s3_then_restarted(moto_endpoint, tmp_path, monkeypatch):
    """The same against moto: kill -9 while the pull's requests go one at a time."""
    from store_fixtures import make_bucket

    monkeypatch.setenv("PYDELTA_CACHE_DIR", str(tmp_path / "cache"))
    data = rnd(6 << 20, 31)
    (tmp_path / "m.bin").write_bytes(data)
    url = f"s3://{make_bucket(moto_endpoint)}/m"
    push(tmp_path / "m.bin", url, tag="v1", endpoint_url=moto_endpoint, **SMALL)
    dest = tmp_path / "model.bin"
    partial = tmp_path / ".model.bin.pydelta-partial"
    cmd = [
        sys.executable,
        "-m",
        "pydelta",
        "pull",
        url,
        str(dest),
        "-t",
        "v1",
        "--endpoint-url",
        moto_endpoint,
    ]
    p = subprocess.Popen([*cmd, "-j", "1", "-q"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not partial.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL)
    p.wait()
    r = subprocess.run([*cmd, "--timeout", "60"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == data and not partial.exists()


def test_waiting_for_the_lock_times_out_with_its_exit_status(tmp_path):
    data = rnd(100_000, 4)
    (tmp_path / "m.bin").write_bytes(data)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    dest = tmp_path / "model.bin"
    with dest_lock(str(dest)):
        t0 = time.monotonic()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pydelta",
                "pull",
                str(tmp_path / "store"),
                str(dest),
                "--timeout",
                "1",
            ],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 13, r.stderr
        assert "lock" in r.stderr and time.monotonic() - t0 < 60  # not forever
    assert not dest.exists()


# ---------------------------------------------------------------- near stores and mirrors


def test_mirror_then_pull_with_the_origin_unreachable(store, tmp_path, fast_retries):
    a = rnd(2 << 20, 5)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", store.url, tag="v1", **SMALL, **store.kw)
    m = mirror(store.url, tmp_path / "mirror", **store.kw)
    assert m.packs_copied > 0 and m.tags == {"v1": m.versions[0]}
    # the origin goes away
    if store.kind == "s3":
        origin, kw = store.url, {"endpoint_url": "http://127.0.0.1:9"}
    else:
        os.rename(store.url, store.url + ".gone")
        origin, kw = store.url, {}
    out = tmp_path / "out.bin"
    r = pull(origin, out, tag="v1", near=[str(tmp_path / "mirror")], **kw)
    assert out.read_bytes() == a and r.fetched_chunks > 0
    # without the mirror: unreachable (S3) or missing (local)
    with pytest.raises((errors.StoreUnreachableError, errors.StoreNotFoundError)):
        pull(origin, tmp_path / "other.bin", tag="v1", **kw)


def test_a_silent_origin_does_not_hold_up_a_pull_from_a_mirror(tmp_path, monkeypatch):
    """An origin that accepts connections and never answers (a blackhole):
    the tag comes from the mirror after the origin's time budget."""
    import socket

    near_mod = importlib.import_module("pydelta.store.near")
    monkeypatch.setattr(near_mod, "ORIGIN_BUDGET", 0.5)
    a = rnd(1 << 20, 55)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # never accepted, never answered
    try:
        t0 = time.monotonic()
        out = tmp_path / "out.bin"
        pull(
            f"http://127.0.0.1:{silent.getsockname()[1]}/m",
            out,
            tag="v1",
            near=[str(tmp_path / "store")],
        )
        assert out.read_bytes() == a
        assert time.monotonic() - t0 < 25  # not the origin's 30 s timeout, retried
    finally:
        silent.close()


def test_near_store_lagging_falls_back_to_the_origin(store, tmp_path):
    a = rnd(2 << 20, 6)
    src = tmp_path / "m.bin"
    src.write_bytes(a)
    push(src, store.url, tag="v1", **SMALL, **store.kw)
    mirror(store.url, tmp_path / "mirror", **store.kw)
    b = edit(a, 7)
    src.write_bytes(b)
    push(src, store.url, tag="v1", **SMALL, **store.kw)  # the tag moves; the mirror lags
    out = tmp_path / "out.bin"
    pull(store.url, out, tag="v1", near=[str(tmp_path / "mirror")], **store.kw)
    assert out.read_bytes() == b  # the origin's tag, chunks from both


def test_mirror_sends_only_missing_packs_and_tags_last(store, tmp_path):
    a = rnd(2 << 20, 8)
    src = tmp_path / "m.bin"
    src.write_bytes(a)
    push(src, store.url, tag="v1", **SMALL, **store.kw)
    dst = tmp_path / "mirror"
    m1 = mirror(store.url, dst, **store.kw)
    src.write_bytes(edit(a, 9, 0.05))
    push(src, store.url, tag="v2", **SMALL, **store.kw)
    m2 = mirror(store.url, dst, **store.kw)
    assert m2.new_versions == 1 and m2.packs_present >= m1.packs_copied - 1
    assert 0 < m2.bytes_copied < m1.bytes_copied * 0.5, (m1, m2)
    assert set(m2.tags) == {"v1", "v2"}
    m3 = mirror(store.url, dst, **store.kw)
    assert m3.packs_copied == 0 and m3.new_versions == 0
    out = tmp_path / "out.bin"
    pull(str(dst), out, tag="v2")
    assert out.read_bytes() == src.read_bytes()
    dry = mirror(store.url, tmp_path / "empty", dry_run=True, **store.kw)
    assert (
        dry.packs_copied == m1.packs_copied + m2.packs_copied and not (tmp_path / "empty").exists()
    )


def test_mirror_never_shows_a_version_it_cannot_serve(tmp_path):
    a = rnd(1 << 20, 10)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    packs = sorted((tmp_path / "store" / "packs").glob("*.pack"))
    blob = bytearray(packs[-1].read_bytes())
    blob[-10] ^= 1
    packs[-1].write_bytes(bytes(blob))
    with pytest.raises(errors.CorruptStoreError, match="wrong bytes"):
        mirror(tmp_path / "store", tmp_path / "mirror", jobs=1)
    assert not list((tmp_path / "mirror").glob("versions/*")) and not list(
        (tmp_path / "mirror").glob("tags/*")
    )


def test_http_store_pull_mirror_and_read_only(tmp_path, served, fast_retries):
    a = rnd(2 << 20, 11)
    (tmp_path / "m.bin").write_bytes(a)
    r = push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    srv = served(tmp_path / "store")
    out = tmp_path / "out.bin"
    p = pull(srv.url, out, tag="v1")
    assert out.read_bytes() == a and p.requests > 2
    # a full version id needs no listing; a prefix does (HTTP cannot list)
    pull(srv.url, tmp_path / "byid.bin", version=r.version)
    with pytest.raises(errors.ReadOnlyStoreError, match="cannot list"):
        pull(srv.url, tmp_path / "prefix.bin", version=r.version[:8])
    m = mirror(srv.url, tmp_path / "mirror", tag="v1")
    assert m.packs_copied > 0
    with pytest.raises(errors.ReadOnlyStoreError):
        mirror(srv.url, tmp_path / "mirror2")
    with pytest.raises((errors.ReadOnlyStoreError, errors.UsageError)):
        push(tmp_path / "m.bin", srv.url)
    with pytest.raises(errors.VersionNotFoundError):
        pull(srv.url, tmp_path / "x.bin", tag="nope")
    srv.down = True
    with pytest.raises(errors.StoreUnreachableError):
        pull(srv.url, tmp_path / "y.bin", tag="v1")


def test_http_store_verifies_what_it_serves(tmp_path, served):
    a = rnd(1 << 20, 12)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    pack = sorted((tmp_path / "store" / "packs").glob("*.pack"))[0]
    blob = bytearray(pack.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    pack.write_bytes(bytes(blob))
    srv = served(tmp_path / "store")
    out = tmp_path / "out.bin"
    out.write_bytes(b"old model")
    with pytest.raises(errors.CorruptStoreError):
        pull(srv.url, out, tag="v1")
    assert out.read_bytes() == b"old model"


def test_http_server_ignoring_range_is_read_as_a_stream(tmp_path):
    from pydelta.store.http import HttpStore

    (tmp_path / "obj").write_bytes(bytes(range(256)) * 4096)
    srv = RangeServer(str(tmp_path)).start()
    try:
        st = HttpStore(srv.url)
        assert st.get_range("obj", 1000, 300) == ((bytes(range(256)) * 4096)[1000:1300])
        # a server that answers 200 with the whole object
        st2 = HttpStore(srv.url)
        orig = st2._request

        def no_range(method, key, headers):
            return orig(method, key, {})

        st2._request = no_range  # type: ignore[method-assign]
        assert st2.get_range("obj", 5000, 777) == (bytes(range(256)) * 4096)[5000:5777]
        with pytest.raises(errors.CorruptStoreError):
            st.get_range("obj", 4096 * 256 - 10, 100)
        assert not st.exists("nope") and st.exists("obj")
        st.close()
        st2.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------- tags and diff


def test_tag_compare_and_swap(store, tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(rnd(300_000, 13))
    v1 = push(src, store.url, tag="v1", **SMALL, **store.kw).version
    src.write_bytes(rnd(300_000, 14))
    v2 = push(src, store.url, tag="v2", **SMALL, **store.kw).version
    r = tag(store.url, v1[:10], "prod", **store.kw)
    assert r.previous is None and r.version == v1
    assert tag(store.url, "v2", "prod", expect=v1[:8], **store.kw).previous == v1
    with pytest.raises(errors.TagConflictError):
        tag(store.url, "v1", "prod", expect=v1[:8], **store.kw)  # it names v2 now
    with pytest.raises(errors.TagConflictError):
        tag(store.url, "v1", "prod", expect="", **store.kw)  # it exists
    assert tag(store.url, "v1", "prod", expect=v1[:8], force=True, **store.kw).version == v1
    with pytest.raises(errors.VersionNotFoundError):
        tag(store.url, "ffffffff", "prod", **store.kw)
    # someone moves the tag between our read and our write
    with open_store(store.url, **store.kw) as st:
        _, token = st.get_token(tag_key("prod"))
        tag(store.url, v2, "prod", **store.kw)
        from pydelta.formats import manifest as mf
        from pydelta.store.base import SWAP

        with pytest.raises(errors.TagConflictError):
            st.put(tag_key("prod"), mf.encode_tag(mf.Tag(v1, time.time())), mode=SWAP, token=token)


def test_diff_reports_files_and_new_bytes(store, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    a = rnd(1 << 20, 15)
    (d / "w.bin").write_bytes(a)
    (d / "gone.txt").write_bytes(b"bye")
    (d / "same.json").write_bytes(b"{}")
    push(d, store.url, tag="v1", **SMALL, **store.kw)
    (d / "w.bin").write_bytes(edit(a, 16, 0.1))
    (d / "gone.txt").unlink()
    (d / "new.txt").write_bytes(b"hello")
    push(d, store.url, tag="v2", **SMALL, **store.kw)
    r = diff(store.url, "v1", "v2", **store.kw)
    assert [c.path for c in r.added] == ["new.txt"]
    assert [c.path for c in r.removed] == ["gone.txt"]
    assert [c.path for c in r.changed] == ["w.bin"] and r.unchanged == ["same.json"]
    assert 0.1 * len(a) <= r.new_bytes < 0.3 * len(a), r
    assert "1 added, 1 removed, 1 changed, 1 unchanged" in r.summary()


# ---------------------------------------------------------------- gc


def _versions(store):
    with open_store(store.url, **store.kw) as st:
        return sorted(o.key.split("/")[1] for o in st.list("versions/"))


def _pack_objects(store):
    with open_store(store.url, **store.kw) as st:
        return sorted(o.key for o in st.list("packs/"))


def _push_series(store, tmp_path, n, seed):
    src = tmp_path / "series.bin"
    data = rnd(1 << 20, seed)
    out = []
    for i in range(n):
        data = edit(data, seed + i, 0.3)
        src.write_bytes(data)
        out.append((push(src, store.url, tag=f"v{i}", **SMALL, **store.kw).version, data))
    return out


def test_gc_policy_two_steps_and_pulls_keep_working(store, tmp_path):
    series = _push_series(store, tmp_path, 4, 20)
    before = _pack_objects(store)
    dry = gc(store.url, keep_last=2, grace=0, dry_run=True, **store.kw)
    assert len(dry.versions_deleted) == 2 and dry.packs_condemned > 0
    assert _pack_objects(store) == before and len(_versions(store)) == 4
    r1 = gc(store.url, keep_last=2, grace=0, **store.kw)
    assert sorted(r1.versions_deleted) == sorted(v for v, _ in series[:2])
    assert sorted(r1.tags_deleted) == ["v0", "v1"]
    assert r1.packs_condemned > 0 and r1.packs_deleted == 0
    for v, data in series[2:]:
        out = tmp_path / f"{v}.bin"
        pull(store.url, out, version=v, **store.kw)
        assert out.read_bytes() == data
    r2 = gc(store.url, keep_last=2, grace=0, **store.kw)
    assert r2.packs_deleted + r2.packs_restored >= r1.packs_condemned - r1.packs_repacked
    assert len(_pack_objects(store)) < len(before)
    for v, data in series[2:]:
        out = tmp_path / f"again-{v}.bin"
        pull(store.url, out, version=v, **store.kw)
        assert out.read_bytes() == data
    # nothing left to do
    r3 = gc(store.url, keep_last=2, grace=0, **store.kw)
    assert (
        r3.packs_deleted == r3.packs_condemned == r3.packs_restored == 0 and not r3.versions_deleted
    )


def test_gc_keeps_tagged_young_and_everything_without_a_policy(store, tmp_path):
    series = _push_series(store, tmp_path, 3, 30)
    r = gc(store.url, **store.kw)  # no policy: no version goes
    assert not r.versions_deleted and r.versions_kept == 3
    r = gc(store.url, keep_last=1, **store.kw)  # default grace: all are young
    assert not r.versions_deleted and r.packs_condemned == 0
    with open_store(store.url, **store.kw) as st:
        st.delete(tag_key("v1"))
    r = gc(store.url, keep_last=1, keep_tagged=True, grace=0, **store.kw)
    assert r.versions_deleted == [series[1][0]]


def test_gc_repacks_mostly_dead_packs_and_old_versions_still_pull(store, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    files = [rnd(600_000, 40 + i) for i in range(2)]
    for i, f in enumerate(files):
        (d / f"f{i}").write_bytes(f)
    big = dict(pack_size=700 << 10, chunk_avg=16 << 10, jobs=2)
    push(d, store.url, tag="v0", **big, **store.kw)
    for i, f in enumerate(files):
        (d / f"f{i}").write_bytes(f[:150_000] + rnd(450_000, 50 + i))
    v1 = push(d, store.url, tag="v1", **big, **store.kw).version
    r = gc(store.url, keep_last=1, grace=0, **store.kw)
    assert r.packs_repacked >= 1 and r.packs_written >= 1, r.summary()
    r2 = gc(store.url, keep_last=1, grace=0, **store.kw)
    assert r2.packs_deleted >= 1
    keys = _pack_objects(store)
    assert any(k.endswith(".moved") for k in keys)
    out = tmp_path / "out"
    pull(store.url, out, version=v1, **store.kw)  # through the relocation record
    for i in range(2):
        assert (out / f"f{i}").read_bytes() == (d / f"f{i}").read_bytes()
    # a mirror copies the record and the packs it names
    mirror(store.url, tmp_path / "mirror", **store.kw)
    pull(str(tmp_path / "mirror"), tmp_path / "out2", version=v1)
    # a push of the same content finds the repacked chunks
    assert push(d, store.url, tag="v2", **big, **store.kw).packs == 0


def test_gc_racing_a_push_restores_what_the_push_uses(store, tmp_path, monkeypatch):
    """A push loads the index, gc hides an unused pack the push then uses; the
    next gc (a grace period later) restores it instead of deleting it."""
    grace = 2.5
    a = rnd(1 << 20, 60)
    src = tmp_path / "m.bin"
    src.write_bytes(a)
    old = push(src, store.url, tag="old", **SMALL, **store.kw).version
    with open_store(store.url, **store.kw) as st:  # the version goes; its packs stay unused
        st.delete(version_key(old))
        st.delete(tag_key("old"))
    real = push_mod.load_index
    seen = {}

    def load_then_gc(st, jobs, *a_, **k):
        idx = real(st, jobs, *a_, **k)
        time.sleep(grace + 1.2)  # the unused packs are older than the grace period
        seen["gc"] = gc(store.url, grace=grace, **store.kw)
        return idx

    monkeypatch.setattr(push_mod, "load_index", load_then_gc)
    b = edit(a, 61, 0.05)
    src.write_bytes(b)
    r = push(src, store.url, tag="new", **SMALL, **store.kw)
    monkeypatch.setattr(push_mod, "load_index", real)
    assert seen["gc"].packs_condemned > 0  # hidden while the push was running
    assert r.known_chunks > 0  # and the push used chunks in them
    time.sleep(grace + 1.2)
    r2 = gc(store.url, grace=grace, **store.kw)
    assert r2.packs_restored > 0, r2.summary()
    out = tmp_path / "out.bin"
    pull(store.url, out, tag="new", **store.kw)
    assert out.read_bytes() == b
    r3 = gc(store.url, grace=grace, **store.kw)
    assert r3.packs_deleted == 0 or r3.packs_restored == 0
    pull(store.url, tmp_path / "out2.bin", tag="new", **store.kw)
    assert (tmp_path / "out2.bin").read_bytes() == b


def test_gc_running_beside_pushes_leaves_every_version_complete(store, tmp_path):
    """gc in a loop while versions are pushed: every version that remains is
    complete, and gc did delete things meanwhile (pushes here take well under
    the grace period, as the rule asks)."""
    grace = 3.0
    stop = threading.Event()
    errs = []
    reports = []

    def collector():
        while not stop.is_set():
            try:
                reports.append(gc(store.url, keep_last=2, grace=grace, jobs=2, **store.kw))
            except Exception as e:  # noqa: BLE001 - reported below
                errs.append(e)
            time.sleep(0.2)

    src = tmp_path / "m.bin"
    data = rnd(300_000, 70)
    src.write_bytes(data)
    pushed = [(push(src, store.url, tag="latest", **SMALL, **store.kw).version, data)]
    t = threading.Thread(target=collector)
    t.start()
    try:
        for i in range(6):
            data = edit(data, 71 + i, 0.3)
            src.write_bytes(data)
            pushed.append((push(src, store.url, tag="latest", **SMALL, **store.kw).version, data))
            time.sleep(0.8)
    finally:
        stop.set()
        t.join()
    assert not errs, errs
    for _ in range(2):
        time.sleep(grace + 1.1)
        reports.append(gc(store.url, keep_last=2, grace=grace, **store.kw))
    assert sum(r.packs_deleted for r in reports) > 0
    assert sum(len(r.versions_deleted) for r in reports) > 0
    present = set(_versions(store))
    assert pushed[-1][0] in present
    for v, want in pushed:
        if v in present:
            out = tmp_path / f"{v[:8]}.bin"
            pull(store.url, out, version=v, **store.kw)
            assert out.read_bytes() == want


def test_gc_keep_last_orders_pushes_within_one_second(tmp_path):
    """S3 listings give times to the second: two pushes in one second tie
    there, and the time the tags record orders them (else gc may keep the
    older and delete the newer version). Both orders of the same two models,
    so a tie broken by anything else (the version ids) fails one of them."""
    a, b = rnd(200_000, 87), rnd(200_000, 88)
    for name, first, last in (("ab", a, b), ("ba", b, a)):
        store = tmp_path / name
        src = tmp_path / f"{name}.bin"
        src.write_bytes(first)
        older = push(src, store, tag="v1", **SMALL).version
        src.write_bytes(last)
        newer = push(src, store, tag="v2", **SMALL).version
        second = int(time.time()) - 10
        for d in ("versions", "tags"):
            for f in os.listdir(store / d):
                os.utime(store / d / f, (second, second))
        r = gc(store, keep_last=1, grace=0)
        assert r.versions_deleted == [older]
        with open_store(str(store)) as st:
            assert [o.key for o in st.list("versions/")] == [f"versions/{newer}"]


def test_gc_then_the_deleted_content_pushed_again(store, tmp_path):
    """A condemned pack re-created byte for byte by a new push (the same model
    pushed again) is kept: the push made it visible and a version uses it."""
    src = tmp_path / "m.bin"
    a = rnd(600_000, 85)
    src.write_bytes(a)
    push(src, store.url, tag="v1", **SMALL, **store.kw)
    src.write_bytes(rnd(600_000, 86))
    push(src, store.url, tag="v2", **SMALL, **store.kw)
    r = gc(store.url, keep_last=1, grace=0, **store.kw)
    assert r.packs_condemned > 0
    src.write_bytes(a)
    again = push(src, store.url, tag="v3", **SMALL, **store.kw)
    assert again.new_chunks > 0  # the condemned chunks are not offered to pushes
    for _ in range(2):
        gc(store.url, keep_last=2, grace=0, **store.kw)
    out = tmp_path / "out.bin"
    pull(store.url, out, tag="v3", **store.kw)
    assert out.read_bytes() == a
    with open_store(store.url, **store.kw) as st:
        assert not list(st.list("gc/condemned/"))


def test_gc_deletes_packs_of_interrupted_pushes(store, tmp_path):
    src = tmp_path / "m.bin"
    src.write_bytes(rnd(300_000, 80))
    push(src, store.url, tag="v", **SMALL, **store.kw)
    with open_store(store.url, **store.kw) as st:
        st.put("packs/" + "ab" * 32 + ".pack", b"PDPK\x01\x00\x00\x00" + b"x" * 100)
    r = gc(store.url, grace=0, **store.kw)
    assert r.orphans_deleted == 1
    assert not any(k.startswith("packs/" + "ab" * 32) for k in _pack_objects(store))
    pull(store.url, tmp_path / "out.bin", tag="v", **store.kw)


# ---------------------------------------------------------------- CLI


def test_cli_exit_statuses(tmp_path, served):
    from pydelta._cliutil import exit_code

    assert exit_code(errors.DiskFullError("x")) == 12
    assert exit_code(errors.VerificationError("x")) == 5
    assert exit_code(errors.CorruptStoreError("x")) == 5
    assert exit_code(errors.VersionNotFoundError("x")) == 11
    assert exit_code(errors.StoreUnreachableError("x")) == 10
    assert exit_code(errors.PullTimeoutError("x")) == 13
    assert exit_code(errors.StoreAccessError("x")) == 8
    assert exit_code(errors.TagConflictError("x")) == 9
    assert exit_code(errors.UsageError("x")) == 2
    (tmp_path / "m.bin").write_bytes(rnd(200_000, 90))
    push(tmp_path / "m.bin", tmp_path / "store", tag="v1", **SMALL)
    srv = served(tmp_path / "store")

    def run(*args, **env):
        e = dict(os.environ)
        e.update(env)
        return subprocess.run(
            [sys.executable, "-m", "pydelta", *args], capture_output=True, text=True, env=e
        )

    assert run("pull").returncode == 2  # no STORE, in the arguments or the environment
    r = run(
        "pull",
        PYDELTA_STORE=srv.url,
        PYDELTA_DEST=str(tmp_path / "o.bin"),
        PYDELTA_TAG="v1",
        PYDELTA_JOBS="2",
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()
    r = run("pull", PYDELTA_STORE=srv.url, PYDELTA_DEST=str(tmp_path / "o.bin"), PYDELTA_TAG="v9")
    assert r.returncode == 11 and r.stderr.count("\n") == 1
    # a full disk at DEST (every write fails with ENOSPC): 12, DEST untouched
    (tmp_path / "full.bin").write_bytes(b"old")
    full = (
        "import errno, os, sys\n"
        "def pwrite(*a):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "os.pwrite = pwrite\n"
        "from pydelta.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            full,
            "pull",
            str(tmp_path / "store"),
            str(tmp_path / "full.bin"),
            "-t",
            "v1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 12 and "space" in r.stderr, r.stderr
    assert (tmp_path / "full.bin").read_bytes() == b"old"
    pack = sorted((tmp_path / "store" / "packs").glob("*.pack"))[0]
    pack.write_bytes(pack.read_bytes()[:-1] + b"\0")
    r = run("pull", srv.url, str(tmp_path / "o2.bin"), "-t", "v1")
    assert r.returncode == 5, r.stderr
    r = run("ls", str(tmp_path / "store"))
    assert "v1 -> " in r.stdout
    r = run("tag", str(tmp_path / "store"), "v1", "prod")
    assert r.returncode == 0 and "new tag" in r.stdout
    r = run("tag", str(tmp_path / "store"), "v1", "prod", "--expect", "")
    assert r.returncode == 9
    r = run("diff", str(tmp_path / "store"), "v1", "prod")
    assert r.returncode == 0 and "0 changed" in r.stdout
    r = run("gc", str(tmp_path / "store"), "--keep-last", "1", "--dry-run")
    assert r.returncode == 0 and "dry run" in r.stdout
    r = run("mirror", str(tmp_path / "store"), str(tmp_path / "mirror"), "--tag", "prod")
    assert r.returncode == 5  # the damaged pack is refused
