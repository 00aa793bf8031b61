"""The receiving end's signature cache (pydelta/sync/sigcache.py).

Its key (device, inode, size, mtime, ctime) must miss whenever the file may
differ; a damaged entry or an unusable cache directory must be a miss, never
an error; and a sync that uses the cache gives the same result as one that
does not - over the real loopback sshd as well as over local pipes.
"""

from __future__ import annotations

import os
import time

import pytest
from conftest import rand_bytes
from test_sync import Served, model_pair, write

import pydelta
from pydelta.signature import iter_signature
from pydelta.sync import sigcache
from pydelta.sync.sigcache import SigCache, sign_file

#: Files at least this large are cached (sigcache.MIN_FILE, lowered for the tests).
SMALL = 1 << 16


@pytest.fixture
def small_min(monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)


def sig_of(path) -> bytes:
    with open(path, "rb") as fh:
        return b"".join(bytes(p) for p in iter_signature(fh))


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


def test_sync_uses_the_cache_and_stays_exact(tmp_path, monkeypatch):
    """Pull (the local end receives, so the cache is this process's): the
    second sync of an unchanged destination takes the cached signature; a
    forged entry only makes one sync fail, and the entry goes."""
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(cache_dir))
    old, new = model_pair(SMALL * 8, 7)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)

    def pull():
        s = Served(str(tmp_path))
        try:
            return s.client.pull(str(src), str(dest)), s.client._cache
        finally:
            s.close()

    r, cache = pull()
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    assert cache.misses == 1 and cache.hits == 0
    # the destination changed after that (ctime): a new key, so a miss again
    write(tmp_path / "src" / "m.bin", old)
    r, cache = pull()
    assert dest.read_bytes() == old and cache.hits == 0
    # unchanged: signed now (a miss), kept under its new ctime (the time set again)
    r, cache = pull()
    assert r.files[0].action == "unchanged" and (cache.hits, cache.misses) == (0, 1)
    # unchanged since: the cached signature serves
    r, cache = pull()
    assert r.files[0].action == "unchanged" and (cache.hits, cache.misses) == (1, 0)
    # a forged entry (well-formed, but of other content) under the file's key
    st = os.stat(dest)
    entry = cache_dir / f"{st.st_dev:x}-{st.st_ino:x}.sig"
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
    from pydelta.sync import messages  # without "shortsig"'s retry (test_sync_sig_retry.py)

    monkeypatch.setattr(messages, "FEATURES", messages.FEATURES - {"shortsig"})
    s = Served(str(tmp_path))
    try:
        with pytest.raises(pydelta.SyncError):
            s.client.pull(str(src), str(dest))
    finally:
        s.close()
    assert dest.read_bytes() == old  # never a wrong file
    assert not entry.exists()  # the entry that failed is gone
    r, cache = pull()  # and the rerun completes
    assert dest.read_bytes() == new


def test_unwritable_cache_dir_still_syncs(tmp_path, monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    blocked = write(tmp_path / "blocked", b"a file where the cache directory would be")
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(blocked / "sigs"))
    old, new = model_pair(SMALL * 8, 9)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)
    r = _push(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == new


def test_no_sig_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("PYDELTA_SIG_CACHE", str(cache_dir))
    old, new = model_pair(SMALL * 8, 11)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)
    s = Served(str(tmp_path), sig_cache=False)
    try:
        s.client.pull(str(src), str(dest))
    finally:
        s.close()
    assert dest.read_bytes() == new and not cache_dir.exists()


def _wait_for(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_over_ssh_the_written_file_is_signed_for_the_next_sync(sshd, tmp_path):
    """A push over the loopback sshd: the far end signs what it wrote after
    the session (detached), and the next sync of that destination uses it."""
    from test_sync_ssh import REMOTE_CMD

    cache_dir = tmp_path / "remote-cache"
    remote = f"env PYDELTA_SIG_CACHE={cache_dir} {REMOTE_CMD}"
    size = (17 << 20) + 5  # above the default MIN_FILE (16 MiB)
    old, new = model_pair(size, 21)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)
    r = pydelta.sync(str(src), sshd.target(str(dest)), ssh=sshd.ssh_argv, remote_cmd=remote)
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    st = os.stat(dest)
    entry = cache_dir / f"{st.st_dev:x}-{st.st_ino:x}.sig"
    assert _wait_for(entry.exists)
    assert entry.read_bytes().endswith(sig_of(dest))
    # a second small change: the far end's signature comes from the cache
    new2 = bytearray(new)
    new2[size // 2 : size // 2 + 64] = rand_bytes(64, 5)
    write(src, bytes(new2))
    r = pydelta.sync(str(src), sshd.target(str(dest)), ssh=sshd.ssh_argv, remote_cmd=remote)
    assert r.files[0].action == "updated" and dest.read_bytes() == bytes(new2)
    # the far end signs the second result after that session too: wait for
    # its entry before taking the snapshot the third sync must leave alone
    st = os.stat(dest)
    entry = cache_dir / f"{st.st_dev:x}-{st.st_ino:x}.sig"
    assert _wait_for(lambda: entry.exists() and entry.read_bytes().endswith(sig_of(dest)))
    # with --no-sig-cache the far end neither reads nor writes it
    entries = set(cache_dir.iterdir())
    write(src, new)
    r = pydelta.sync(
        str(src), sshd.target(str(dest)), ssh=sshd.ssh_argv, remote_cmd=remote, sig_cache=False
    )
    assert dest.read_bytes() == new
    time.sleep(1.0)
    assert set(cache_dir.iterdir()) == entries
