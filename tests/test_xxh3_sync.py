"""Feature "xxh3" over the loopback sshd: the receiving end's signature holds
XXH3-128 block sums when both ends have it (BLAKE3 with an old peer), a
result that fails its digest is tried once more with full-length BLAKE3 sums,
and the signature cache records each entry's kind and serves it only to a
request of that kind (pydelta/sync/shortsig.py, sigcache.py).

The failed digest is made as in test_sync_sig_retry.py: the receiving end's
old file is changed after its signature went out, no timing.
"""

from __future__ import annotations

import os

import pytest
from conftest import rand_bytes, tmp_leftovers
from test_sigcache import cached, sig_of
from test_sync import model_pair, write
from test_sync_sig_retry import SIZE, pair, pull_hook, push_hook  # noqa: F401 (fixtures)
from test_sync_ssh import REMOTE_CMD, sync

import pydelta
from pydelta.errors import SyncError
from pydelta.formats import native as fmt
from pydelta.sync import messages, sigcache
from pydelta.sync.messages import Put, decode, encode
from pydelta.sync.sigcache import SigCache, sign_file


def test_push_signs_xxh3_and_retries_with_blake3(sshd, tmp_path, push_hook):  # noqa: F811
    old, new, src, dst = pair(tmp_path)
    r = sync(sshd, str(src), sshd.target(dst))
    assert dst.read_bytes() == new and [f.action for f in r.files] == ["updated"]
    assert push_hook["kinds"] == ["xxh3"] and push_hook["strong"] == [8]
    # a failed digest: once more with full-length BLAKE3 sums, and right
    dst.write_bytes(old)
    push_hook.update(path=dst, size=len(old), spoil={1}, strong=[], kinds=[])
    r = sync(sshd, str(src), sshd.target(dst), sig_cache=False)
    assert dst.read_bytes() == new and [f.action for f in r.files] == ["updated"]
    assert push_hook["kinds"] == ["xxh3", "blake3"]
    assert push_hook["strong"] == [8, fmt.DEFAULT_STRONG_LEN]
    assert "does not match the digest" in r.files[0].message
    assert os.listdir(dst.parent) == ["m.bin"]


def test_push_fails_after_the_blake3_retry_fails_too(sshd, tmp_path, push_hook):  # noqa: F811
    old, new, src, dst = pair(tmp_path)
    push_hook.update(path=dst, size=len(old), spoil={1, 2})
    with pytest.raises(SyncError) as e:
        sync(sshd, str(src), sshd.target(dst), sig_cache=False)
    assert e.value.report.files[0].action == "failed"
    assert push_hook["kinds"] == ["xxh3", "blake3"]
    assert dst.read_bytes() == push_hook["after"]  # never a wrong file
    assert not tmp_leftovers(dst.parent)


@pytest.mark.parametrize("without", [{"xxh3"}, {"xxh3", "shortsig"}])
def test_old_peer_without_the_feature_gets_blake3(
    sshd,
    tmp_path,
    push_hook,  # noqa: F811
    monkeypatch,
    without,
):
    """This end offers no "xxh3" (as a pydelta before it): the far end signs BLAKE3."""
    monkeypatch.setattr(messages, "FEATURES", messages.FEATURES - without)
    old, new, src, dst = pair(tmp_path)
    r = sync(sshd, str(src), sshd.target(dst), sig_cache=False)
    assert dst.read_bytes() == new and [f.action for f in r.files] == ["updated"]
    assert push_hook["kinds"] == ["blake3"]
    short = "shortsig" not in without
    assert push_hook["strong"] == [8 if short else fmt.DEFAULT_STRONG_LEN]


def test_pull_signs_xxh3_and_retries_with_blake3(sshd, tmp_path, pull_hook):  # noqa: F811
    old, new = model_pair(SIZE, 14)
    remote = write(tmp_path / "remote" / "m.bin", new)
    here = write(tmp_path / "here" / "m.bin", old)
    pull_hook["spoil"] = {1}
    r = sync(sshd, sshd.target(remote), str(here), sig_cache=False)
    assert [f.action for f in r.files] == ["updated"] and here.read_bytes() == new
    assert pull_hook["kinds"] == ["xxh3", "blake3"]
    assert pull_hook["strong"] == [8, fmt.DEFAULT_STRONG_LEN]
    assert not tmp_leftovers(here.parent)


def test_push_result_cached_as_xxh3_and_served_to_xxh3_only(sshd, tmp_path, push_hook):  # noqa: F811
    """The far end signs its result in XXH3 (what the next sync asks for);
    an old peer's sync (BLAKE3) is not served that entry."""
    cache_dir = tmp_path / "remote-cache"
    remote = f"env PYDELTA_SIG_CACHE={cache_dir} {REMOTE_CMD}"
    size = (17 << 20) + 5  # above the default MIN_FILE (16 MiB)
    old, new = model_pair(size, 22)
    src = write(tmp_path / "src" / "m.bin", new)
    dest = write(tmp_path / "dest" / "m.bin", old)

    def push():
        return pydelta.sync(str(src), sshd.target(str(dest)), ssh=sshd.ssh_argv, remote_cmd=remote)

    assert push().files[0].action == "updated" and dest.read_bytes() == new
    assert cached(cache_dir, dest, "xxh3") == sig_of(dest, "xxh3")  # the far end runs C
    assert cached(cache_dir, dest, "blake3") is None
    new2 = bytearray(new)
    new2[size // 2 : size // 2 + 64] = rand_bytes(64, 6)
    write(src, bytes(new2))
    push_hook["kinds"] = []
    assert push().files[0].action == "updated" and dest.read_bytes() == bytes(new2)
    assert push_hook["kinds"] == ["xxh3"]


def test_cache_records_the_kind_and_never_serves_another(tmp_path, monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", 1 << 16)
    f = write(tmp_path / "f.bin", rand_bytes(3 << 16, 7))
    cache = SigCache(str(tmp_path / "cache"))
    sign_file(str(f), cache)  # the cache's kind: BLAKE3 until a session agrees "xxh3"
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno(), "xxh3") is None
        assert cache.get(fh.fileno(), "blake3") == sig_of(f, "blake3")
        assert cache.get(fh.fileno()) == sig_of(f, "blake3")
    cache.strong_hash = "xxh3"
    assert cache.sign_params(3 << 16)[3] == fmt.STRONG_XXH3
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno()) is None  # the entry is BLAKE3's
        # a result signed in another kind than the cache's is not kept
        cache.put_written(fh.fileno(), sig_of(f, "blake3"))
        assert cache.get(fh.fileno(), "blake3") == sig_of(f, "blake3")  # the old entry
    sign_file(str(f), cache)  # signs again, in XXH3: replaces it
    with open(f, "rb") as fh:
        assert cache.get(fh.fileno(), "xxh3") == sig_of(f, "xxh3")
        assert cache.get(fh.fileno(), "blake3") is None


def test_put_carries_the_kind_and_rejects_others():
    m = encode(Put("r", "p", strong_len=8, strong_hash="xxh3"))
    assert m["strong_hash"] == "xxh3" and decode(m) == Put(
        "r", "p", strong_len=8, strong_hash="xxh3"
    )
    assert decode({**m, "strong_hash": None}).strong_hash is None
    del m["strong_hash"]  # an old client's put: BLAKE3
    assert decode(m).strong_hash is None
    for bad in ("md5", 2, ["xxh3"]):
        with pytest.raises(ValueError):
            decode({**m, "strong_hash": bad})


def test_a_stopped_prehash_stays_stopped(tmp_path):
    """A file's second attempt (the retry) takes the pre-hash again: once it
    was stopped without a digest, the scan hashes NEW itself - even if the
    thread read past half before it saw the stop (what a fast XXH3 signature
    made likely: the first take came before the first read was done)."""
    from pydelta.sync.pipeline import PreHash

    f = write(tmp_path / "n.bin", rand_bytes(1 << 20, 8))
    with open(f, "rb") as fh:
        pre = PreHash(fh.fileno())
        pre.close()
        pre._digest = None  # stopped before the end (as the race leaves it)...
        pre._done = pre._size  # ...after reading past half
        assert pre.take() is None
