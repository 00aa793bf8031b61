"""The model store's behaviour: push, pull, ls - on a local directory and on S3 (moto).

Every test here runs twice through the ``store`` fixture (tests/store_fixtures.py):
against a local-directory store and against a bucket on a real S3 API server
(moto) on loopback.
"""

from __future__ import annotations

import errno
import importlib
import os
import random

import pytest

import pydelta
from pydelta import errors
from pydelta.store import ls, open_store, pull, push

pull_mod = importlib.import_module("pydelta.store.pull")  # the module, not the function

SMALL = dict(pack_size=256 << 10, chunk_avg=16 << 10, jobs=3)


def rnd(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def finetune(a: bytes, seed: int) -> bytes:
    """A grown header (every byte after it shifts) and 3% of the data rewritten."""
    r = random.Random(seed)
    out = bytearray(a[:100] + b"{grown}" + a[100:])
    for _ in range(3):
        at = r.randrange(200, len(out) - 40000)
        out[at : at + len(a) // 100] = r.randbytes(len(a) // 100)
    return bytes(out)


def model_dir(root, seed: int = 1, size: int = 1 << 20):
    os.makedirs(root / "sub", exist_ok=True)
    (root / "model-1.bin").write_bytes(rnd(size, seed))
    (root / "model-2.bin").write_bytes(rnd(size // 2, seed + 1))
    (root / "sub" / "config.json").write_bytes(b'{"layers": 2}\n')
    (root / "empty").write_bytes(b"")
    os.chmod(root / "model-2.bin", 0o640)
    return root


def same_tree(a, b) -> None:
    def files(root):
        out = {}
        for dp, _, fns in os.walk(root):
            for fn in fns:
                if ".pydelta" in fn:
                    continue
                p = os.path.join(dp, fn)
                out[os.path.relpath(p, root)] = (open(p, "rb").read(), os.stat(p).st_mode & 0o777)
        return out

    assert files(a) == files(b)


# ---------------------------------------------------------------- round trips


def test_file_roundtrip_and_second_push_sends_only_new(store, tmp_path):
    a = rnd(2 << 20, 1)
    src = tmp_path / "m.bin"
    src.write_bytes(a)
    r1 = push(src, store.url, **SMALL, **store.kw)
    assert r1.files == 1 and r1.bytes == len(a) and r1.known_chunks == 0
    assert r1.packs >= 4 and r1.uploaded_bytes >= len(a)
    out = tmp_path / "out.bin"
    p1 = pull(store.url, out, **store.kw)
    assert out.read_bytes() == a
    assert p1.version == r1.version and p1.created == ["out.bin"]

    b = finetune(a, 2)
    src.write_bytes(b)
    r2 = push(src, store.url, tag="v2", **SMALL, **store.kw)
    assert r2.version != r1.version
    assert r2.uploaded_bytes < 0.15 * len(b), r2
    p2 = pull(store.url, out, tag="v2", **store.kw)
    assert out.read_bytes() == b
    assert p2.updated == ["out.bin"]
    assert p2.downloaded_bytes < 0.15 * len(b), p2
    assert p2.local_chunks > 0
    # latest still names the first version
    p3 = pull(store.url, tmp_path / "again.bin", **store.kw)
    assert p3.version == r1.version


def test_folder_roundtrip_modes_and_identical_push(store, tmp_path):
    src = model_dir(tmp_path / "src")
    r1 = push(src, store.url, **SMALL, **store.kw)
    assert r1.files == 4
    dst = tmp_path / "dst"
    pull(store.url, dst, **store.kw)
    same_tree(src, dst)
    # the same content again: the same version, no pack uploaded
    r2 = push(src, store.url, **SMALL, **store.kw)
    assert r2.version == r1.version and r2.packs == 0 and not r2.created
    assert r2.new_chunks == 0
    # an up-to-date DEST downloads nothing but the manifest
    p = pull(store.url, dst, **store.kw)
    assert p.fetched_chunks == 0 and len(p.unchanged) == 4


def test_delete_and_extra_files(store, tmp_path):
    src = model_dir(tmp_path / "src")
    push(src, store.url, **SMALL, **store.kw)
    dst = tmp_path / "dst"
    (dst / "old").mkdir(parents=True)
    (dst / "old" / "stale.bin").write_bytes(b"x" * 100)
    pull(store.url, dst, **store.kw)
    assert (dst / "old" / "stale.bin").exists()
    p = pull(store.url, dst, delete=True, **store.kw)
    assert p.deleted == ["old/stale.bin"]
    assert not (dst / "old").exists()
    same_tree(src, dst)


def test_quick_trusts_the_last_pull(store, tmp_path):
    src = model_dir(tmp_path / "src")
    push(src, store.url, **SMALL, **store.kw)
    dst = tmp_path / "dst"
    pull(store.url, dst, **store.kw)
    p = pull(store.url, dst, quick=True, **store.kw)
    assert p.quick and p.downloaded_bytes == 0 and len(p.unchanged) == 4
    # a file changed behind our back (size differs): quick does not trust it
    (dst / "model-1.bin").write_bytes(b"changed")
    p = pull(store.url, dst, quick=True, **store.kw)
    assert not p.quick and p.updated == ["model-1.bin"]
    same_tree(src, dst)


def test_seed_supplies_chunks(store, tmp_path):
    a = rnd(2 << 20, 3)
    (tmp_path / "m.bin").write_bytes(finetune(a, 4))
    push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "old.bin").write_bytes(a)
    p = pull(store.url, tmp_path / "fresh.bin", seeds=[tmp_path / "seed"], **store.kw)
    assert (tmp_path / "fresh.bin").read_bytes() == finetune(a, 4)
    assert p.downloaded_bytes < 0.15 * len(a) and p.local_chunks > 0


def test_dry_runs_change_nothing(store, tmp_path):
    src = model_dir(tmp_path / "src")
    if store.kind == "local":
        r = push(src, store.url, dry_run=True, **SMALL)
        assert r.dry_run and r.new_chunks > 0 and not os.path.exists(store.url)
    push(src, store.url, **SMALL, **store.kw)
    (src / "model-1.bin").write_bytes(rnd(1 << 20, 99))
    before = sorted(o.key for o in open_store(store.url, **store.kw).list(""))
    r = push(src, store.url, dry_run=True, **SMALL, **store.kw)
    assert r.new_chunks > 0 and r.new_bytes >= 900_000
    assert sorted(o.key for o in open_store(store.url, **store.kw).list("")) == before
    dst = tmp_path / "dst"
    p = pull(store.url, dst, dry_run=True, **store.kw)
    assert not dst.exists() and p.dry_run and p.downloaded_bytes > 1 << 20
    assert sorted(p.created) == ["empty", "model-1.bin", "model-2.bin", "sub/config.json"]


def test_ls_versions_and_tags(store, tmp_path):
    src = model_dir(tmp_path / "src")
    r1 = push(src, store.url, tag="v1", **SMALL, **store.kw)
    (src / "model-1.bin").write_bytes(rnd(1 << 20, 5))
    r2 = push(src, store.url, **SMALL, **store.kw)
    listing = ls(store.url, **store.kw)
    ids = [v.version for v in listing.versions]
    assert set(ids) == {r1.version, r2.version}
    assert listing.tags == {"v1": r1.version, "latest": r2.version}
    v2 = next(v for v in listing.versions if v.version == r2.version)
    assert v2.files == 4 and v2.bytes == r2.bytes and v2.tags == ["latest"]
    # a version by a prefix of its id
    p = pull(store.url, tmp_path / "d1", version=r1.version[:10], **store.kw)
    assert p.version == r1.version


# ---------------------------------------------------------------- interruptions


def test_interrupted_push_leaves_no_version_and_rerun_reuses_packs(store, tmp_path, monkeypatch):
    a = rnd(2 << 20, 6)
    (tmp_path / "m.bin").write_bytes(a)
    calls = {"n": 0}
    real = type(open_store(store.url, create=True, **store.kw)).put_file

    def flaky(self, key, path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise errors.StoreUnreachableError("connection lost (test)")
        return real(self, key, path)

    monkeypatch.setattr(type(open_store(store.url, **store.kw)), "put_file", flaky)
    with pytest.raises(errors.StoreUnreachableError):
        push(tmp_path / "m.bin", store.url, **dict(SMALL, jobs=1), **store.kw)
    st = open_store(store.url, **store.kw)
    assert not list(st.list("versions/")) and not list(st.list("tags/"))
    with pytest.raises(errors.VersionNotFoundError):
        pull(store.url, tmp_path / "o.bin", **store.kw)
    monkeypatch.setattr(type(st), "put_file", real)
    r = push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    assert r.known_chunks > 0 and r.uploaded_bytes < 0.9 * len(a)
    pull(store.url, tmp_path / "o.bin", **store.kw)
    assert (tmp_path / "o.bin").read_bytes() == a


def test_interrupted_pull_keeps_old_file_and_resumes(store, tmp_path, monkeypatch):
    a, b = rnd(2 << 20, 7), rnd(2 << 20, 8)
    (tmp_path / "m.bin").write_bytes(b)
    push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    out = tmp_path / "out.bin"
    out.write_bytes(a)  # an unrelated old version
    st_type = type(open_store(store.url, **store.kw))
    real = st_type.get_range
    calls = {"n": 0}

    def flaky(self, key, start, length):
        calls["n"] += 1
        if calls["n"] > 3:
            raise errors.StoreUnreachableError("connection lost (test)")
        return real(self, key, start, length)

    monkeypatch.setattr(st_type, "get_range", flaky)
    with pytest.raises(errors.StoreUnreachableError):
        pull(store.url, out, jobs=1, **store.kw)
    assert out.read_bytes() == a  # untouched
    assert (tmp_path / ".out.bin.pydelta-partial").exists()
    monkeypatch.setattr(st_type, "get_range", real)
    p = pull(store.url, out, **store.kw)
    assert out.read_bytes() == b
    assert p.local_chunks > 0 and p.downloaded_bytes < 0.95 * len(b)
    assert not (tmp_path / ".out.bin.pydelta-partial").exists()


# ---------------------------------------------------------------- damage


def _objects(store, prefix):
    st = open_store(store.url, **store.kw)
    return st, [o.key for o in st.list(prefix)]


def test_corrupt_pack_is_named_and_dest_untouched(store, tmp_path):
    a = rnd(1 << 20, 9)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    st, keys = _objects(store, "packs/")
    pack = sorted(k for k in keys if k.endswith(".pack"))[0]
    data = bytearray(st.get(pack))
    data[100] ^= 0xFF
    st.put(pack, bytes(data))
    out = tmp_path / "out.bin"
    out.write_bytes(b"old content")
    with pytest.raises(errors.CorruptStoreError, match=pack[6:22]):
        pull(store.url, out, **store.kw)
    assert out.read_bytes() == b"old content"


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_manifest(store, tmp_path, damage):
    (tmp_path / "m.bin").write_bytes(rnd(300_000, 10))
    r = push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    st = open_store(store.url, **store.kw)
    key = f"versions/{r.version}"
    data = bytearray(st.get(key))
    if damage == "flip":
        data[-5] ^= 1
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"not a manifest")
    st.put(key, bytes(data))
    with pytest.raises(errors.CorruptStoreError, match="manifest"):
        pull(store.url, tmp_path / "o.bin", **store.kw)
    assert not (tmp_path / "o.bin").exists()


def test_missing_things(store, tmp_path):
    (tmp_path / "m.bin").write_bytes(b"hello")
    if store.kind == "local":
        with pytest.raises(errors.StoreNotFoundError):
            pull(store.url, tmp_path / "o", **store.kw)
    else:
        with pytest.raises(errors.StoreNotFoundError, match="not a pydelta store"):
            pull(store.url, tmp_path / "o", **store.kw)
    push(tmp_path / "m.bin", store.url, **store.kw)
    with pytest.raises(errors.VersionNotFoundError, match="nope"):
        pull(store.url, tmp_path / "o", tag="nope", **store.kw)
    with pytest.raises(errors.VersionNotFoundError):
        pull(store.url, tmp_path / "o", version="abcdef12", **store.kw)
    with pytest.raises(errors.UsageError):
        pull(store.url, tmp_path / "o", tag="../x", **store.kw)
    with pytest.raises(errors.UsageError):
        pull(store.url, tmp_path / "o", tag="a", version="abcd", **store.kw)
    st = open_store(store.url, **store.kw)
    st.put("tags/bad", b"{not json")
    with pytest.raises(errors.CorruptStoreError, match="bad"):
        pull(store.url, tmp_path / "o", tag="bad", **store.kw)


def test_tag_compare_and_swap(store, tmp_path):
    (tmp_path / "m.bin").write_bytes(b"hello")
    push(tmp_path / "m.bin", store.url, **store.kw)
    st = open_store(store.url, **store.kw)
    data, token = st.get_token("tags/latest")
    assert data is not None
    st.put("tags/latest", data + b" ", mode="swap", token=token)  # unchanged: fine
    with pytest.raises(errors.TagConflictError):
        st.put("tags/latest", data, mode="swap", token=token)  # stale token
    with pytest.raises(errors.TagConflictError):
        st.put("tags/latest", data, mode="swap", token=None)  # must not exist
    assert st.put("versions/x", b"1", mode="create")
    assert not st.put("versions/x", b"2", mode="create")
    assert st.get("versions/x") == b"1"


def test_disk_full_leaves_dest_untouched(store, tmp_path, monkeypatch):
    (tmp_path / "m.bin").write_bytes(rnd(1 << 20, 11))
    push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    out = tmp_path / "out.bin"
    out.write_bytes(b"previous")

    def full(fd, data, off):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pull_mod.os, "pwrite", full)
    with pytest.raises(errors.DiskFullError, match="space"):
        pull(store.url, out, **store.kw)
    assert out.read_bytes() == b"previous"
    assert not (tmp_path / ".out.bin.pydelta-partial").exists()


def test_public_api(store, tmp_path):
    (tmp_path / "m.bin").write_bytes(rnd(500_000, 12))
    events = []
    r = pydelta.push(tmp_path / "m.bin", store.url, progress=events.append, **SMALL, **store.kw)
    assert isinstance(r, pydelta.PushReport) and events and events[-1].bytes_done == 500_000
    events.clear()
    p = pydelta.pull(store.url, tmp_path / "o.bin", progress=events.append, **store.kw)
    assert isinstance(p, pydelta.PullReport) and events
    assert "1 created" in p.summary() and r.version[:16] in r.summary()
    assert pydelta.ls(store.url, **store.kw).tags["latest"] == r.version


def test_local_source_changing_during_pull_is_downloaded_instead(store, tmp_path, monkeypatch):
    a = rnd(1 << 20, 13)
    (tmp_path / "m.bin").write_bytes(a)
    push(tmp_path / "m.bin", store.url, **SMALL, **store.kw)
    seed = tmp_path / "seed.bin"
    seed.write_bytes(a)
    real_plan = pull_mod._Pull.plan

    def plan_then_change(self, seeds):
        real_plan(self, seeds)
        seed.write_bytes(rnd(1 << 20, 14))  # same size, other bytes, new time

    monkeypatch.setattr(pull_mod._Pull, "plan", plan_then_change)
    p = pull(store.url, tmp_path / "o.bin", seeds=[seed], **store.kw)
    assert (tmp_path / "o.bin").read_bytes() == a
    assert p.fetched_chunks > 0
