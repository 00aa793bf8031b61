"""The signature cache under a second reader (pydelta/sync/sigcache.py and
its use by the receiving end, sync/transfer.py).

Two writers of one entry in one process must not share a temporary file,
and an update that replaces a file must leave no entry keyed by the file it
replaced: that entry can never serve again (even a hard link left behind has
a new ctime once the name is replaced), it only takes room until pruning.
"""

from __future__ import annotations

import os
import threading

from conftest import rand_bytes
from test_sigcache import SIGNS, SMALL, _pair_in_cache, _pull, cached, sig_of
from test_sync import write

from pydelta.sync import messages, sigcache
from pydelta.sync.sigcache import SigCache


def test_two_threads_writing_one_entry_do_not_collide(tmp_path, monkeypatch):
    """Thread A has written its temporary file; thread B writes the same entry
    whole before A renames its own: both renames must succeed, the cache stays
    writable and the entry is whole."""
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    f = write(tmp_path / "f.bin", rand_bytes(SMALL * 2, 31))
    sig = sig_of(f)
    cache = SigCache(str(tmp_path / "cache"))
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append(src)
        if len(calls) == 1:  # A, between writing and renaming: B runs to the end
            with open(f, "rb") as fh:
                t = threading.Thread(
                    target=cache.put, args=(os.fstat(fh.fileno()), fh.fileno(), sig)
                )
                t.start()
                t.join()
        real_replace(src, dst)

    monkeypatch.setattr(sigcache.os, "replace", replace)
    with open(f, "rb") as fh:
        cache.put(os.fstat(fh.fileno()), fh.fileno(), sig)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert cache.writable
    monkeypatch.setattr(sigcache.os, "replace", real_replace)
    assert cached(tmp_path / "cache", f) == sig
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")] == []


def test_an_update_leaves_no_entry_of_the_file_it_replaced(tmp_path, monkeypatch):
    """A miss signs the old file; the update replaces it: the cache then holds
    the result's entry only (none where the direct writer does not sign)."""
    cache_dir, old, new, src, dest = _pair_in_cache(tmp_path, monkeypatch, 41)
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and dest.read_bytes() == new
    assert cache.misses == 1
    names = sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []
    st = os.stat(dest)
    assert names == ([f"{st.st_dev:x}-{st.st_ino:x}.sig"] if SIGNS else [])


def test_a_hit_on_a_replaced_file_is_dropped(tmp_path, monkeypatch):
    """The old file's entry was there (a hit: e.g. signed ahead); once the
    update replaced that file the entry is gone."""
    cache_dir, old, new, src, dest = _pair_in_cache(tmp_path, monkeypatch, 43)
    ahead = SigCache(str(cache_dir))
    ahead.strong_hash = "xxh3" if "xxh3" in messages.FEATURES else "blake3"  # as the sync's
    sigcache.sign_file(str(dest), ahead)
    old_st = os.stat(dest)
    old_entry = cache_dir / f"{old_st.st_dev:x}-{old_st.st_ino:x}.sig"
    assert old_entry.exists()
    r, cache = _pull(tmp_path, src, dest)
    assert r.files[0].action == "updated" and cache.hits == 1
    assert not old_entry.exists() or os.stat(dest).st_ino == old_st.st_ino


def test_a_killed_writers_temporary_file_is_pruned(tmp_path, monkeypatch):
    """A temporary entry file older than an hour (its writer was killed
    mid-write) goes at the next write; a recent one (a live writer's) stays."""
    monkeypatch.setattr(sigcache, "MIN_FILE", SMALL)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    old = cache_dir / "fe00-1.sig.123-abc.tmp"
    old.write_bytes(b"x" * 1000)
    os.utime(old, ns=(10**9, 10**9))
    fresh = cache_dir / "fe00-2.sig.124-abd.tmp"
    fresh.write_bytes(b"y")
    f = write(tmp_path / "f.bin", rand_bytes(SMALL * 2, 59))
    sigcache.sign_file(str(f), SigCache(str(cache_dir)))
    assert not old.exists() and fresh.exists()
    assert cached(cache_dir, f) == sig_of(f)
