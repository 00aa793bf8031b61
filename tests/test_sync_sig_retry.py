"""Short strong sums over the loopback sshd, and the retry of a file whose
result failed its digest (pydelta/sync/shortsig.py).

A false block match is what a short strong sum risks; its effect - a result
that does not match the sender's digest - is made here deterministically by
changing the receiving end's old file (same size, other bytes) after its
signature went out and before the delta comes back: the test wraps the
driving end's own steps (the push's delta, the pull's receive), no timing.
The file must be tried once more with full-length sums and come out right;
a second failure fails that file with today's error and leaves the old
content, never a wrong file; without the feature there is no retry.
"""

from __future__ import annotations

import os

import pytest
from conftest import tmp_leftovers
from test_sync import model_pair, write
from test_sync_ssh import sync

from pydelta.errors import SyncError
from pydelta.formats import native as fmt
from pydelta.sync import exchange, messages, transfer

SIZE = 4 << 20


def spoil(path, size: int, k: int = 1) -> bytes:
    """Change 16 bytes of path in a region model_pair leaves alone (one place
    per attempt k: a block spoiled once is no longer matched): same size."""
    at = size // 2 + (k - 1) * 100_000
    with open(path, "r+b") as fh:
        fh.seek(at)
        old = fh.read(16)
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in old))
    with open(path, "rb") as fh:
        return fh.read()


@pytest.fixture
def push_hook(monkeypatch):
    """Wrap the push's delta: record the strong length of each signature it
    scans against, and spoil the far end's old file before the attempts listed."""
    real = exchange.send_delta
    state = {"strong": [], "spoil": set(), "path": None, "size": 0, "after": None}

    def wrapped(ch, sig, new, **kw):
        state["strong"].append(fmt.parse_sig_header(sig[: fmt.SIG_HEADER.size], "sig")[1])
        state.setdefault("kinds", []).append(fmt.STRONG_NAMES[fmt.sig_strong_kind(sig)])
        if len(state["strong"]) in state["spoil"]:
            state["after"] = spoil(state["path"], state["size"], len(state["strong"]))
        return real(ch, sig, new, **kw)

    monkeypatch.setattr(exchange, "send_delta", wrapped)
    return state


def pair(tmp_path):
    old, new = model_pair(SIZE, 11)
    src = write(tmp_path / "src" / "m.bin", new)
    dst = write(tmp_path / "dst" / "m.bin", old)
    return old, new, src, dst


def test_push_signs_short_and_retries_a_failed_digest(sshd, tmp_path, push_hook):
    old, new, src, dst = pair(tmp_path)
    push_hook.update(path=dst, size=len(old), spoil={1})
    r = sync(sshd, str(src), sshd.target(dst))
    assert dst.read_bytes() == new
    assert [f.action for f in r.files] == ["updated"]
    assert push_hook["strong"] == [8, fmt.DEFAULT_STRONG_LEN]  # short, then full length
    assert "does not match the digest" in r.files[0].message  # the report says why
    assert os.listdir(dst.parent) == ["m.bin"]  # nothing of the failed attempt left


def test_push_fails_after_the_second_mismatch_and_keeps_the_old_file(sshd, tmp_path, push_hook):
    old, new, src, dst = pair(tmp_path)
    push_hook.update(path=dst, size=len(old), spoil={1, 2})
    with pytest.raises(SyncError) as e:
        sync(sshd, str(src), sshd.target(dst))
    (f,) = e.value.report.files
    assert f.action == "failed" and "does not match the digest" in f.message
    assert push_hook["strong"] == [8, fmt.DEFAULT_STRONG_LEN]
    assert dst.read_bytes() == push_hook["after"]  # the old file as it was spoiled: no wrong file
    assert not tmp_leftovers(dst.parent)


def test_short_signature_is_a_third_smaller_on_the_wire(sshd, tmp_path, monkeypatch):
    old, new, src, dst = pair(tmp_path)
    r = sync(sshd, str(src), sshd.target(dst), sig_cache=False)
    assert dst.read_bytes() == new
    dst.write_bytes(old)
    monkeypatch.setattr(messages, "FEATURES", messages.FEATURES - {"shortsig"})
    r_full = sync(sshd, str(src), sshd.target(dst), sig_cache=False)
    assert dst.read_bytes() == new
    blocks = -(-len(old) // fmt.default_block_len(len(old)))
    # the signature is what the far end sends on a push: 16 bytes a block instead of 24
    assert r_full.bytes_received - r.bytes_received >= blocks * 7  # (+ framing, refinement)
    assert r.bytes_received < r_full.bytes_received * 0.7


def test_without_the_feature_a_mismatch_fails_as_before(sshd, tmp_path, push_hook, monkeypatch):
    monkeypatch.setattr(messages, "FEATURES", messages.FEATURES - {"shortsig", "xxh3"})
    old, new, src, dst = pair(tmp_path)
    push_hook.update(path=dst, size=len(old), spoil={1})
    with pytest.raises(SyncError) as e:
        sync(sshd, str(src), sshd.target(dst))
    assert e.value.report.files[0].action == "failed"
    assert push_hook["strong"] == [fmt.DEFAULT_STRONG_LEN]  # one attempt, full sums
    assert dst.read_bytes() == push_hook["after"]


@pytest.fixture
def pull_hook(monkeypatch):
    """Wrap the pull's receive: record each signature's strong length, spoil
    our own old file before the attempts listed."""
    real_receive, real_sig = exchange.receive, transfer.Incoming.signature
    state = {"strong": [], "spoil": set(), "calls": 0, "after": None}

    def signature(self, strong_len=None, strong_hash="blake3"):
        state["strong"].append(strong_len or fmt.DEFAULT_STRONG_LEN)
        state.setdefault("kinds", []).append(strong_hash)
        return real_sig(self, strong_len, strong_hash)

    def receive(ch, inc, refine=False):
        state["calls"] += 1
        if state["calls"] in state["spoil"]:
            state["after"] = spoil(inc.target, inc.basis_size, state["calls"])
        return real_receive(ch, inc, refine=refine)

    monkeypatch.setattr(exchange, "receive", receive)
    monkeypatch.setattr(transfer.Incoming, "signature", signature)
    return state


@pytest.mark.parametrize("twice", [False, True])
def test_pull_retries_a_failed_digest(sshd, tmp_path, pull_hook, twice):
    old, new = model_pair(SIZE, 12)
    remote = write(tmp_path / "remote" / "m.bin", new)
    here = write(tmp_path / "here" / "m.bin", old)
    pull_hook["spoil"] = {1, 2} if twice else {1}
    if twice:
        with pytest.raises(SyncError) as e:
            sync(sshd, sshd.target(remote), str(here))
        (f,) = e.value.report.files
        assert f.action == "failed" and "does not match the digest" in f.message
        assert here.read_bytes() == pull_hook["after"]
    else:
        r = sync(sshd, sshd.target(remote), str(here))
        assert [f.action for f in r.files] == ["updated"]
        assert here.read_bytes() == new
        assert os.listdir(here.parent) == ["m.bin"]
        assert r.files[0].message.startswith("tried again with full-length strong sums")
    assert pull_hook["strong"] == [8, fmt.DEFAULT_STRONG_LEN]
    assert not tmp_leftovers(here.parent)


def test_folder_push_retries_only_the_spoiled_file(sshd, tmp_path, push_hook):
    old, new = model_pair(SIZE, 13)
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name in ("a.bin", "b.bin"):
        write(src / name, new)
        write(dst / name, old)
    push_hook.update(path=dst / "a.bin", size=len(old), spoil={1})
    r = sync(sshd, str(src) + "/", sshd.target(dst))
    assert sorted(f.action for f in r.files) == ["updated", "updated"]
    assert (dst / "a.bin").read_bytes() == new and (dst / "b.bin").read_bytes() == new
    assert sorted(push_hook["strong"]) == [8, 8, fmt.DEFAULT_STRONG_LEN]
