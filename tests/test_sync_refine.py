"""Refinement rounds (sync/refine.py): finer signatures where blocks did not match.

Over the real loopback sshd: scattered 64-byte edits cost a few hundred
bytes each instead of a block, both directions; a model pair is no worse
than one round; a peer that does not speak ``refine`` still syncs. Then the
receiving end's checks of a request, and a hostile peer's requests and
answers.
"""

from __future__ import annotations

import io
import json
import os
import random
import threading

import pytest
from conftest import rand_bytes
from evil_peer import MAGIC, EvilServer
from test_sync import model_pair, write
from test_sync_ssh import sync

import pydelta
from pydelta.errors import ProtocolError
from pydelta.sync import messages
from pydelta.sync.refine import (
    ENTRY_LEN,
    MAX_BLOCKS,
    Answerer,
    pack_windows,
    unpack_windows,
    window_blocks,
)
from pydelta.sync.server import Server
from pydelta.sync.wire import Channel


def scattered_pair(size: int, edits: int, seed: int):
    """Random OLD; NEW with ``edits`` 64-byte edits in place at 64-byte offsets."""
    rnd = random.Random(seed)
    old = rand_bytes(size, seed)
    new = bytearray(old)
    for at in rnd.sample(range(size // 64), edits):
        new[at * 64 : at * 64 + 64] = rnd.randbytes(64)
    return old, bytes(new)


# ---------------------------------------------------------------- over ssh


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_scattered_edits_cost_hundreds_of_bytes_not_blocks(sshd, tmp_path, direction):
    old, new = scattered_pair(24 << 20, 40, 1)  # 5 KiB blocks: 40 edits ~ 200+ KiB in one round
    src = write(tmp_path / "src" / "m.bin", new)
    dst = tmp_path / "dst" / "m.bin"
    ends = (sshd.target(src), str(dst)) if direction == "pull" else (str(src), sshd.target(dst))
    got = {}
    for refine in (False, True):
        write(dst, old)
        r = sync(sshd, *ends, refine=refine)
        assert dst.read_bytes() == new
        assert [f.action for f in r.files] == ["updated"]
        got[refine] = r
    one, two = got[False], got[True]
    # the delta: one round ships a 5 KiB block per edit, refined a few hundred bytes
    delta_one = one.bytes_sent if direction == "push" else one.bytes_received
    delta_two = two.bytes_sent if direction == "push" else two.bytes_received
    assert delta_one > 40 * 5000
    assert delta_two < 40 * 200, two
    # everything on the wire (signatures both rounds included) under half of one round
    assert two.wire_bytes < 0.5 * one.wire_bytes, (str(one), str(two))


def test_model_pair_is_no_worse_than_one_round(sshd, tmp_path):
    old, new = model_pair(24 << 20, 7)  # 3 of 40 tensors retrained, everything shifted
    src = write(tmp_path / "src" / "m.bin", new)
    dst = tmp_path / "dst" / "m.bin"
    wire = {}
    for refine in (False, True):
        write(dst, old)
        r = sync(sshd, str(src), sshd.target(dst), refine=refine, compress=False)
        assert dst.read_bytes() == new
        wire[refine] = r.wire_bytes
    assert wire[True] <= wire[False]


def test_all_new_and_first_copies_ask_nothing(sshd, tmp_path):
    new = rand_bytes(3 << 20, 4)
    src = write(tmp_path / "src" / "a.bin", new)
    dst = tmp_path / "dst" / "a.bin"
    r = sync(sshd, str(src), sshd.target(dst))  # a first copy: an empty basis
    assert dst.read_bytes() == new and r.files[0].action == "created"
    write(dst, rand_bytes(3 << 20, 5))  # all different: no copy to anchor a window
    r2 = sync(sshd, str(src), sshd.target(dst))
    assert dst.read_bytes() == new
    assert r2.bytes_sent <= r.bytes_sent + 64


# ---------------------------------------------------------------- an older peer


def test_a_server_without_the_feature_still_syncs(tmp_path, monkeypatch):
    """The client offers refine, an older server knows no features: one round."""
    monkeypatch.setattr(messages, "FEATURES", frozenset())
    old, new = scattered_pair(4 << 20, 10, 2)
    src = write(tmp_path / "src" / "m.bin", new)
    dst = write(tmp_path / "dst" / "m.bin", old)
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    srv = Server(Channel(os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"), "client"), None)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    with pydelta.SyncClient(os.fdopen(s2c_r, "rb"), os.fdopen(c2s_w, "wb")) as c:
        assert c.features == frozenset()
        r = c.push(str(src), str(dst))
    t.join(10)
    assert dst.read_bytes() == new
    assert r.bytes_sent > 10 * 2048  # whole 2 KiB blocks: no refinement happened


# ---------------------------------------------------------------- the requests


def test_windows_round_trip_and_blocks():
    wins = [(0, 100), (100 + 64, 300), (1000, 1064)]
    # adjacent windows are one window: a zero gap after the first is refused
    assert unpack_windows(pack_windows(wins), 2000, 64) == wins
    assert window_blocks(wins, 64) == [0, 36, 164, 228, 236, 1000]
    with pytest.raises(ProtocolError):
        unpack_windows(pack_windows([(0, 64), (64, 128)]), 2000, 64)


@pytest.mark.parametrize(
    "text, why",
    [
        (pack_windows([(0, 100)]), "outside"),  # past the basis of 80 bytes
        (pack_windows([(0, 10)]), "outside"),  # shorter than a block
        ("%%%", "base64"),
        ("gA==", "cut off"),  # a varint that does not end
        (12, "windows"),
    ],
)
def test_malformed_requests_end_the_session(text, why):
    ch = Channel(io.BytesIO(), io.BytesIO(), "evil")
    ans = Answerer(ch, io.BytesIO(b"x" * 80), 80)
    with pytest.raises(ProtocolError, match=why):
        ans({"op": "refine", "block": 16, "windows": text})


def test_too_many_blocks_and_bad_block_lengths_are_refused():
    with pytest.raises(ProtocolError, match="too many"):
        unpack_windows(pack_windows([(0, (MAX_BLOCKS + 1) * 64)]), 1 << 40, 64)
    ch = Channel(io.BytesIO(), io.BytesIO(), "evil")
    ans = Answerer(ch, io.BytesIO(), 0)
    for block in (0, -5, True, "64", 1 << 30):
        with pytest.raises(ProtocolError, match="block length"):
            ans({"op": "refine", "block": block, "windows": ""})
    with pytest.raises(ProtocolError, match="inside a delta stream"):
        ans({"op": "put"})


def test_answers_hold_the_entries_of_the_named_blocks_and_decline_past_the_budget(tmp_path):
    data = rand_bytes(1 << 16, 9)
    basis = write(tmp_path / "old", data).open("rb")
    out = io.BytesIO()
    ch = Channel(io.BytesIO(), out, "peer")
    ans = Answerer(ch, basis, len(data))
    ans({"op": "refine", "block": 64, "windows": pack_windows([(100, 300)])})
    ch.flush()
    frames = out.getvalue()
    want = pydelta.backends.backend.sig_blocks(data[100:292], 192, 64, 8)
    want += pydelta.backends.backend.sig_blocks(data[236:300], 64, 64, 8)
    assert len(want) == 4 * ENTRY_LEN
    assert frames == b"D" + len(want).to_bytes(4, "big") + want + b"e\0\0\0\0"
    basis.close()  # the file failed here: further requests are declined
    out.seek(0)
    out.truncate()
    ans({"op": "refine", "block": 64, "windows": pack_windows([(100, 300)])})
    ch.flush()
    assert out.getvalue() == b"e\0\0\0\0"


# ---------------------------------------------------------------- hostile peers


def _agreeing(script):
    """An evil server that agrees the refine feature, then runs ``script``."""

    def run(p):
        p.raw(MAGIC)
        p.expect_magic()
        p.recv_json()
        p.send_json({"ok": True, "proto": 1, "version": "evil", "features": ["refine"]})
        script(p)

    return EvilServer(run, handshake=False)


def test_a_hostile_request_ends_the_session_and_keeps_the_file(tmp_path):
    old = rand_bytes(1 << 16, 3)
    dst = write(tmp_path / "x", old)

    def script(p):
        p.recv_json()  # stat
        p.send_json({"ok": True, "type": "file", "size": len(old), "mode": 0o644})
        p.recv_json()  # get
        p.send_json({"ok": True, "size": len(old), "mode": 0o644, "mtime_ns": 0})
        p.recv_stream()  # the signature
        p.send_json({"op": "refine", "block": 64, "windows": pack_windows([(0, 1 << 20)])})
        p.recv()

    with _agreeing(script) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(ProtocolError, match="outside the old file"):
            client.pull("x", str(dst))
    assert dst.read_bytes() == old


@pytest.mark.parametrize("answer", ["too much", "too little", "fail"])
def test_a_hostile_answer_ends_the_session(tmp_path, answer):
    old, new = scattered_pair(1 << 16, 4, 6)  # 1 KiB blocks
    src = write(tmp_path / "m.bin", new)
    sig = pydelta.signature(io.BytesIO(old))

    def script(p):
        p.recv_json()  # stat
        p.send_json({"ok": True, "type": "missing"})
        p.recv_json()  # mkdir
        p.send_json({"ok": True})
        p.recv_json()  # put
        p.send_json({"ok": True, "have": True})
        p.send_stream(sig)
        while True:
            kind, payload = p.recv()
            if kind == b"J":
                break
        n = len(window_blocks(unpack_windows(json.loads(payload)["windows"], len(old), 128), 128))
        if answer == "fail":
            p.send_fail("no")
        else:
            p.send_stream(b"\0" * (n * ENTRY_LEN + (1 if answer == "too much" else -1)))
        p.recv()

    with _agreeing(script) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(ProtocolError, match="refine request"):
            client.push(str(src), "m.bin")
