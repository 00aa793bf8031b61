"""The receiving end's signature cache (pydelta/sync/sigcache.py).

Its key (device, inode, size, mtime, ctime) must miss whenever the file may
differ; a damaged entry or an unusable cache directory must be a miss, never
an error; a sync that uses the cache gives the same result as one that does
not; and the result a sync writes is signed by the patch as it writes it
(C backend, direct writer): its entry is there when the sync returns, byte
for byte `pydelta signature` of the file as it stands, and the next sync is
served from it - over the real loopback sshd as well as over local pipes.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import rand_bytes
from test_sync import Served, model_pair, write

import pydelta
from pydelta.backends import backend
from pydelta.signature import iter_signature
from pydelta.sync import sigcache
from pydelta.sync.sigcache import SigCache, sign_file

#: Files at least this large are cached (sigcache.MIN_FILE, lowered for the tests).
SMALL = 1 << 16


@pytest.fixture
def small_min(monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)


#: This process's patches sign what they write (the direct writer is the C backend's).
SIGNS = backend.NAME == "c"


def sig_of(path, kind: str = "blake3") -> bytes:
    with open(path, "rb") as fh:
        return b"".join(bytes(p) for p in iter_signature(fh, strong_hash=kind))


def test_hit_then_miss_when_rewritten_with_restored_mtime(tmp_path, small_min):
    f = write(tmp_path / "f.bin", rand_bytes(SMALL * 3, 1))
    cache = SigCache(str(tmp_path / "cache"))
    sign_file(str(f), cache)
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno()) == sig_of(f)
    st = os.stat(f)
    time.sleep(0.01)
    with open(f, "r+b") as fh:  # same size, different bytes, mtime put back
        fh.seek(100)
        fh.write(b"changed!")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(f)
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert st2.st_ctime_ns != st.st_ctime_ns
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno()) is None


def entry_of(cache_dir, path):
    st = os.stat(path)
    return cache_dir / f"{st.st_dev:x}-{st.st_ino:x}.sig"


def cached(cache_dir, path, kind: str = "blake3"):
    """What a fresh cache at cache_dir serves for the file at path to a request
    for block sums of that kind (None: a miss)."""
    with open(path, "rb") as fh:
        return SigCache(str(cache_dir)).get(fh.fileno(), kind)


def test_damaged_entry_is_a_miss_and_removed(tmp_path, small_min):
    f = write(tmp_path / "f.bin", rand_bytes(SMALL * 2, 2))
    cache = SigCache(str(tmp_path / "cache"))
    sign_file(str(f), cache)
    (entry,) = (tmp_path / "cache").iterdir()
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF  # inside the signature
    entry.write_bytes(bytes(data))
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno()) is None
    assert not entry.exists()
    for junk in (b"", b"PDSIGC1\n", os.urandom(300)):  # truncated or garbage
        sign_file(str(f), cache)
        entry.write_bytes(junk)
        with open(f, "rb") as fh:
            assert cache.get(fh.fileno()) is None


def test_small_files_and_pruning(tmp_path, small_min, monkeypatch):
    cache = SigCache(str(tmp_path / "cache"))
    tiny = write(tmp_path / "tiny", b"x" * 100)
    sign_file(str(tiny), cache)
    assert not (tmp_path / "cache").exists()  # below MIN_FILE: not worth an entry
    files = [write(tmp_path / f"f{i}", rand_bytes(SMALL, 10 + i)) for i in range(4)]
    one = len(sig_of(files[0])) + 200
    monkeypatch.setattr(sigcache, "MAX_TOTAL", 2 * one)
    for f in files:
        sign_file(str(f), cache)
        time.sleep(0.01)
    kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(kept) == 2  # the newest two
    with open(files[-1], "rb") as fh:
        assert cache.get(fh.fileno()) is not None


def test_environment_and_opt_out(monkeypatch, tmp_path):
    monkeypatch.setenv("PYDELTA_SIG_CACHE", "off")
    assert SigCache.open() is None
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(tmp_path))
    assert SigCache.open().root == str(tmp_path)
    assert SigCache.open(enabled=False) is None
    monkeypatch.delenv("PYDELTA_SIG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert SigCache.open().root == str(tmp_path / "xdg" / "pydelta" / "sigs")


def _push(tmp_path, src, dest, **kw):
    s = Served(str(tmp_path), **kw)
    try:
        return s.client.push(str(src), str(dest))
    finally:
        s.close()


def _pull(tmp_path, src, dest, **kw):
    s = Served(str(tmp_path), **kw)
    try:
        return s.client.pull(str(src), str(dest)), s.client._cache
    finally:
        s.close()


def _pair_in_cache(tmp_path, monkeypatch, seed: int) -> tuple:
    """A model pair (src NEW, dest OLD) and this process's cache directory."""
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(cache_dir))
    old, new = model_pair(SMALL * 8, seed)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)
    return cache_dir, old, new, src, dest


def test_sync_result_signed_as_written_and_served_next(tmp_path, monkeypatch):
    """Pull (the local end receives, so the cache is this process's): the
    result's entry is there when the sync returns, keyed by the file as it
    stands and byte-identical to its signature; the next sync is served from
    it; a file changed since is a miss; a forged entry only makes one sync
    fail, and the entry goes."""
    cache_dir, old, new, src, dest = _pair_in_cache(tmp_path, monkeypatch, 7)

    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    assert (cache.misses, cache.hits) == (1, 0)
    # the result's entry, under the identity it has after the rename, mode and time
    # both ends speak "xxh3": the result is signed in the kind the next sync asks for
    assert cached(cache_dir, dest, "xxh3") == (sig_of(dest, "xxh3") if SIGNS else None)
    assert cached(cache_dir, dest, "blake3") is None  # never served as another kind
    write(tmp_path / "src" / "m.bin", old)
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == old
    assert (cache.hits, cache.misses) == ((1, 0) if SIGNS else (0, 1))
    # changed after its entry was written (a new ctime): a miss
    assert cached(cache_dir, dest, "xxh3") == (sig_of(dest, "xxh3") if SIGNS else None)
    os.chmod(dest, 0o640)
    assert cached(cache_dir, dest, "xxh3") is None
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "unchanged" and (cache.hits, cache.misses) == (0, 1)
    # unchanged since (the entry kept under its new ctime): served
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "unchanged" and (cache.hits, cache.misses) == (1, 0)
    # a forged entry (well-formed, but of other content) under the file's key
    st = os.stat(dest)
    entry = entry_of(cache_dir, dest)
    assert entry.exists()
    other = write(tmp_path / "other.bin", new)  # claims the blocks of NEW are there
    forged = SigCache(str(tmp_path / "forge"))
    sign_file(str(other), forged)
    body = next((tmp_path / "forge").iterdir()).read_bytes()
    sig = body[sigcache._HEAD.size + 64 :]
    head = sigcache._HEAD.pack(
        sigcache.MAGIC, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, len(sig)
    )
    entry.write_bytes(head + pydelta.blake3_digest(head) + pydelta.blake3_digest(sig) + sig)
    write(tmp_path / "src" / "m.bin", new)
    # an old peer's sync: BLAKE3, and without "shortsig"'s retry (test_sync_sig_retry.py)
    from pydelta.sync import messages

    monkeypatch.setattr(messages, "FEATURES", messages.FEATURES - {"shortsig", "xxh3"})
    s = Served(str(tmp_path))
    try:
        with pytest.raises(pydelta.SyncError):
            s.client.pull(str(src), str(dest))
    finally:
        s.close()
    assert dest.read_bytes() == old  # never a wrong file
    assert not entry.exists()  # the entry that failed is gone
    r, cache = _pull(tmp_path, src, dest)  # and the rerun completes
    assert dest.read_bytes() == new


def test_results_written_without_the_direct_writer_get_no_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("PYDELTA_PATCH_DIRECT", "0")
    cache_dir, old, new, src, dest = _pair_in_cache(tmp_path, monkeypatch, 8)
    r, _ = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    assert cached(cache_dir, dest) is None


def test_unwritable_cache_dir_still_syncs(tmp_path, monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    blocked = write(tmp_path / "blocked", b"a file where the cache directory would be")
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(blocked / "sigs"))
    old, new = model_pair(SMALL * 8, 9)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)
    r, _ = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == new


def test_no_sig_cache_writes_nothing(tmp_path, monkeypatch):
    cache_dir, old, new, src, dest = _pair_in_cache(tmp_path, monkeypatch, 11)
    _pull(tmp_path, src, dest, sig_cache=False)
    assert dest.read_bytes() == new and not cache_dir.exists()


def _age(entries) -> dict:
    """Date the entries back (their time says when they last served a sync)."""
    for e in entries:
        os.utime(e, ns=(10**9, 10**9))
    return {e: e.stat().st_mtime_ns for e in entries}


def entry_with_blocks(cache_dir, path, block_size: int) -> None:
    """Write path's entry as a signature of its content with blocks of
    block_size (valid, but of another size than a sync makes): a sync served
    from it receives a signature of that size, which shows the entry served."""
    with open(path, "rb") as fh:
        sig = b"".join(bytes(p) for p in iter_signature(fh, block_size=block_size))
        SigCache(str(cache_dir)).put(os.fstat(fh.fileno()), fh.fileno(), sig)


def test_over_ssh_the_written_file_is_signed_for_the_next_sync(sshd, tmp_path):
    """A push over the loopback sshd: the far end's entry for the result is
    there when the sync returns, identical to `pydelta signature` of it, and
    the next sync is served from it (then dropped: its file was replaced)."""
    from test_sync_ssh import REMOTE_CMD

    cache_dir = tmp_path / "remote-cache"
    remote = f"env PYDELTA_SIG_CACHE={cache_dir} {REMOTE_CMD}"
    size = (17 << 20) + 5  # above the default MIN_FILE (16 MiB)
    old, new = model_pair(size, 21)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)

    def push(**kw):
        return pydelta.sync(
            str(src), sshd.target(str(dest)), ssh=sshd.ssh_argv, remote_cmd=remote, **kw
        )

    r = push()
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    # both ends speak "xxh3": the result is signed in the kind the next sync asks for
    assert cached(cache_dir, dest, "xxh3") == sig_of(dest, "xxh3")  # the far end runs the C backend
    first = entry_of(cache_dir, dest)
    received = r.files[0].received
    # a second small change: the far end's signature comes from its entry
    # (rewritten with blocks 4x the size: a quarter of the signature arrives)
    entry_with_blocks(cache_dir, dest, 4 * pydelta.default_block_len(size))
    new2 = bytearray(new)
    new2[size // 2 : size // 2 + 64] = rand_bytes(64, 5)
    write(src, bytes(new2))
    r = push()
    assert r.files[0].action == "updated" and dest.read_bytes() == bytes(new2)
    assert r.files[0].received < received / 2  # it served the sync
    assert not first.exists()  # and went with the file it was of
    assert cached(cache_dir, dest, "xxh3") == sig_of(dest, "xxh3")  # the new result has its own
    # with --no-sig-cache the far end neither reads nor writes it
    aged = _age(list(cache_dir.iterdir()))
    write(src, new)
    r = push(sig_cache=False)
    assert dest.read_bytes() == new
    assert {e: e.stat().st_mtime_ns for e in cache_dir.iterdir()} == aged


def test_over_ssh_a_pulled_file_is_signed_for_the_next_sync(sshd, tmp_path, monkeypatch):
    """A pull over the loopback sshd: this end's entry for the result, then served."""
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(cache_dir))
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    from test_sync_ssh import REMOTE_CMD

    old, new = model_pair(SMALL * 8, 31)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)

    def pull():
        return pydelta.sync(
            sshd.target(str(src)), str(dest), ssh=sshd.ssh_argv, remote_cmd=REMOTE_CMD
        )

    assert pull().files[0].action == "updated" and dest.read_bytes() == new
    assert cached(cache_dir, dest, "xxh3") == (sig_of(dest, "xxh3") if SIGNS else None)
    if not SIGNS:
        return
    entry = entry_of(cache_dir, dest)
    misses = []
    monkeypatch.setattr(SigCache, "_miss", lambda self: misses.append(1))
    write(src, old)
    assert pull().files[0].action == "updated" and dest.read_bytes() == old
    assert misses == [] and not entry.exists()  # it served, and went with its file
    assert cached(cache_dir, dest, "xxh3") == sig_of(dest, "xxh3")


def test_unchanged_file_verified_in_place_and_re_keyed(tmp_path, monkeypatch):
    """An identical file of several MiB (its digest hashed tree-parallel): left
    as it is, and its entry kept under the ctime the sync gave it."""
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(cache_dir))
    data = rand_bytes((5 << 20) + 3, 41)
    src = write(tmp_path / "src" / "m.bin", data)
    dest = write(tmp_path / "dest" / "m.bin", data)
    ino = os.stat(dest).st_ino
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "unchanged" and dest.read_bytes() == data
    assert os.stat(dest).st_ino == ino and cached(cache_dir, dest, "xxh3") == sig_of(dest, "xxh3")
