"""Hostile inputs and hostile sync peers (issue 10, items 2-9).

Each test reproduces one way a crafted delta, signature or sync peer could
make pydelta eat memory or disk, hang, place a file where it should not,
publish something unverified, or crash with a traceback. The peers are
scripted with tests/evil_peer.py; blow-ups run in a guarded subprocess
(killed past a memory bound or a time limit) so a regression fails fast
instead of taking the machine down.
"""

from __future__ import annotations

import io
import os
import select
import stat
import threading
import warnings

import pytest
from conftest import rand_bytes
from evil_peer import (
    FAIL,
    MAGIC,
    EvilServer,
    Frames,
    copy_op,
    end_op,
    native_delta,
    run_guarded,
    zero_z_op,
)

import pydelta

MiB = 1 << 20

#: Most a victim may grow while handling any hostile input below (the honest
#: work involved needs a few MiB).
GROWTH_MIB = 96


def _file_meta(size, mode=0o644, mtime_ns=1_600_000_000 * 10**9):
    return {"ok": True, "type": "file", "size": size, "mode": mode, "mtime_ns": mtime_ns}


def pull_script(deliver, meta, replies=None):
    """An evil server for a one-file pull: answers stat/mkdir, then on ``get``
    sends ``meta``, reads the client's signature and calls deliver(p, sig)."""

    def script(p: Frames):
        base = {"stat": None, "mkdir": {"ok": True}}
        base.update(replies or {})
        while True:
            m = p.recv_json()
            op = m.get("op")
            if op == "stat":
                # the source is a file; the destination's stat is answered by
                # the client itself on a pull, so every stat here is the source
                p.send_json(base["stat"] or meta)
            elif op == "get":
                p.send_json(meta)
                sig = p.recv_stream()
                deliver(p, sig)
            elif op == "bye":
                p.send_json({"ok": True})
                return
            else:
                p.send_json(base.get(op, {"ok": True}))

    return script


def evil_pull(tmp_path, deliver, meta, dest_name="f.bin"):
    """Pull one file from an evil server into tmp_path/dest; returns (report or error)."""
    dest = tmp_path / "dest"
    dest.mkdir(exist_ok=True)
    with EvilServer(pull_script(deliver, meta)) as srv:
        c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        try:
            r = c.pull("src.bin", str(dest / dest_name))
        except pydelta.SyncError as e:
            r = e
        try:
            c.close()
        except pydelta.PydeltaError:
            pass
    return r


def failed_message(r) -> str:
    assert isinstance(r, pydelta.SyncError), r
    if r.report is None:
        return str(r)
    return " | ".join(f.message for f in r.report.failed)


# ---------------------------------------------------------------- item 2


def test_failed_patch_diagnosis_uses_bounded_memory(tmp_path):
    """A 107-byte delta (block_len 1, wrong END digest) against 16 MiB of OLD."""
    n = 16 * MiB
    old = tmp_path / "old"
    old.write_bytes(rand_bytes(n, 1))
    d = tmp_path / "d"
    d.write_bytes(native_delta(n, [copy_op(0, n)], end=end_op(n, bytes(32)), block_len=1))
    assert len(d.read_bytes()) < 120
    g = run_guarded(
        f"""
import pydelta
ready()
try:
    pydelta.patch({str(old)!r}, {str(d)!r}, {str(tmp_path / "out")!r})
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, e)
""",
        max_growth_mib=GROWTH_MIB,
        timeout=60,
    )
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("ERR "), g
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 3


PUSH_VICTIM = """
import pydelta, evil_peer as E
src = {src!r}
def script(p):
    E.answer_until(p, "put", {{"stat": {{"ok": True, "type": "missing"}}}})
    p.send_json({{"ok": True, "have": True}})
    {send}
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.push(src, "remote/f.bin")
    print("OK")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:300])
"""


@pytest.mark.parametrize(
    "send",
    [
        "p.endless(b'\\0' * (1 << 20))",  # not even a signature's magic
        # a valid signature header, then entries without end
        "p.send_data(bytes.fromhex('5044534701010110') + (1024).to_bytes(4, 'little') + bytes(4));"
        " p.endless(bytes(24 * 43690))",
    ],
    ids=["garbage", "valid-header"],
)
def test_client_does_not_buffer_an_endless_signature(tmp_path, send):
    src = tmp_path / "src.bin"
    src.write_bytes(rand_bytes(100_000, 2))
    g = run_guarded(
        PUSH_VICTIM.format(src=str(src), send=send), max_growth_mib=GROWTH_MIB, timeout=60
    )
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("ERR "), g


SERVE_VICTIM = """
import os, threading, pydelta, evil_peer as E
root = {root!r}
c2s_r, c2s_w = os.pipe(); s2c_r, s2c_w = os.pipe()
def client():
    p = E.Frames(os.fdopen(s2c_r, "rb", buffering=0), os.fdopen(c2s_w, "wb", buffering=0))
    try:
        p.raw(E.MAGIC); p.send_json({{"op": "hello", "proto": 1}})
        p.expect_magic(); p.recv_json()
        p.send_json({{"op": "get", "root": root, "path": "f.bin"}})
        p.recv_json()
        {send}
    except E.PeerGone:
        pass
threading.Thread(target=client, daemon=True).start()
ready()
try:
    pydelta.serve(os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
    print("RETURNED")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:300])
"""


def test_server_does_not_buffer_an_endless_signature(tmp_path):
    (tmp_path / "f.bin").write_bytes(rand_bytes(100_000, 3))
    g = run_guarded(
        SERVE_VICTIM.format(root=str(tmp_path), send="p.endless(b'\\0' * (1 << 20))"),
        max_growth_mib=GROWTH_MIB, timeout=60,
    )  # fmt: skip
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("ERR ProtocolError"), g


def test_frame_header_does_not_preallocate(tmp_path):
    """A 5-byte frame header claiming 256 MiB, then silence, then hang-up."""
    g = run_guarded(
        """
import time, pydelta, evil_peer as E
def script(p):
    p.recv_json()
    p.frame(E.JSON, b"{", claim=(256 << 20) - 1)
    time.sleep(1.5)
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.pull("x", "y")
    print("OK")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:300])
""",
        max_growth_mib=64,
        timeout=60,
    )
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("ERR "), g


# ---------------------------------------------------------------- item 4


PULL_VICTIM = """
import pydelta, evil_peer as E
dest = {dest!r}
meta = {meta!r}
delta = open({delta!r}, "rb").read()
def script(p):
    while True:
        m = p.recv_json()
        if m["op"] == "stat":
            p.send_json(meta)
        elif m["op"] == "get":
            p.send_json(meta)
            sig = p.recv_stream()
            # made for the very signature the client sent (its digest in the header)
            head = E.delta_header({basis}, flags={flags}, sig_digest=sig[-36:-4])
            p.send_stream(head + delta)
        elif m["op"] == "bye":
            p.send_json({{"ok": True}})
            return
        else:
            p.send_json({{"ok": True}})
srv = E.EvilServer(script)
c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
ready()
try:
    c.pull("src.bin", dest)
    print("OK")
except pydelta.SyncError as e:
    print("ERR", type(e).__name__, " | ".join(f.message for f in e.report.failed) if e.report else e)
"""


@pytest.mark.parametrize("how", ["zstd-zeros", "repeated-copies"])
def test_pull_output_is_capped_by_the_announced_size(tmp_path, how):
    dest = tmp_path / "dest"
    dest.mkdir()
    if how == "zstd-zeros":  # a new file: 4 bytes announced, 30 x 4 MiB of 'Z' zeros sent
        basis, ops, flags = 0, [zero_z_op()] * 30, 1
    else:  # an existing 1 MiB file, copied 300 times
        (dest / "f.bin").write_bytes(rand_bytes(MiB, 4))
        basis, ops, flags = MiB, [copy_op(0, MiB)] * 300, 0
    delta = tmp_path / "evil.delta"  # its ops and END; the header is made for the signature
    delta.write_bytes(native_delta(basis, ops, b"abcd", flags=flags)[60:])
    meta = _file_meta(4)
    g = run_guarded(
        PULL_VICTIM.format(dest=str(dest / "f.bin"), meta=meta, delta=str(delta), basis=basis,
                           flags=flags),
        max_growth_mib=GROWTH_MIB, timeout=60, fsize=64 * MiB,
    )  # fmt: skip
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("ERR "), g
    assert "announced" in g.stdout and "File too large" not in g.stdout, g
    assert sorted(os.listdir(dest)) == (["f.bin"] if basis else [])


# ---------------------------------------------------------------- item 5


def _deliver_whole(content):
    """Deliver ``content`` as an honest whole-file delta against the client's signature."""

    def deliver(p, sig):
        p.send_stream(pydelta.delta(sig, io.BytesIO(content)))

    return deliver


def test_pulled_file_drops_setuid_and_gets_the_umask(tmp_path):
    content = b"#!/bin/sh\necho hi\n" * 100
    old = os.umask(0o027)
    try:
        r = evil_pull(tmp_path, _deliver_whole(content), _file_meta(len(content), mode=0o6777))
    finally:
        os.umask(old)
    assert not isinstance(r, Exception), r
    f = tmp_path / "dest" / "f.bin"
    assert f.read_bytes() == content
    assert stat.S_IMODE(f.stat().st_mode) == 0o750  # 0o777 & ~0o027, no setuid/setgid


@pytest.mark.parametrize(
    "meta",
    [
        {"mode": "rwxr-xr-x"},
        {"mode": [420]},
        {"mode": 1 << 40},
        {"mode": -1},
        {"mtime_ns": 1 << 70},
        {"mtime_ns": "yesterday"},
        {"mtime_ns": 1.5e300},
        {"size": "12"},
        {"size": -5},
    ],
    ids=lambda m: "-".join(f"{k}={v!r}"[:24] for k, v in m.items()),
)
def test_bad_file_metadata_is_a_clear_error(tmp_path, meta):
    content = b"x" * 3000
    full = {**_file_meta(len(content)), **meta}
    r = evil_pull(tmp_path, _deliver_whole(content), full)
    assert isinstance(r, pydelta.SyncError), r
    msg = failed_message(r)
    assert "TypeError" not in msg and "OverflowError" not in msg and "ValueError" not in msg, msg
    assert not (tmp_path / "dest" / "f.bin").exists()


# ---------------------------------------------------------------- item 6


def test_directory_swapped_for_a_symlink_mid_transfer(tmp_path):
    """The pull's target folder becomes a symlink to elsewhere between the
    request and the write: nothing may land in the link's target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = tmp_path / "dest" / "sub"
    sub.mkdir(parents=True)
    content = rand_bytes(200_000, 6)

    def deliver(p, sig):
        os.rename(sub, tmp_path / "dest" / "sub-moved")
        os.symlink(outside, sub)
        p.send_stream(pydelta.delta(sig, io.BytesIO(content)))

    evil_pull(tmp_path, deliver, _file_meta(len(content)), dest_name="sub/f.bin")
    assert os.listdir(outside) == []


# ---------------------------------------------------------------- item 7


def test_sync_refuses_an_rdiff_delta(tmp_path):
    content = rand_bytes(50_000, 7)
    rsig = pydelta.signature(io.BytesIO(b""), format="rdiff")
    rdelta = pydelta.delta(rsig, io.BytesIO(content))
    assert rdelta[:4] == b"rs\x026"

    def deliver(p, sig):
        p.send_stream(rdelta)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UnverifiedWarning either
        r = evil_pull(tmp_path, deliver, _file_meta(len(content)))
    assert isinstance(r, pydelta.SyncError), r
    assert "rdiff" in failed_message(r)
    assert not (tmp_path / "dest" / "f.bin").exists()


# ---------------------------------------------------------------- item 8


SIG_VICTIM = """
import io, pydelta
sig = bytes.fromhex({sig!r})
ready()
try:
    pydelta.delta(sig, {new!r}, {out!r})
    print("OK")
except pydelta.PydeltaError as e:
    print("ERR", type(e).__name__, str(e)[:300])
"""


def _native_empty_sig(block_len: int) -> bytes:
    import struct

    head = struct.pack("<4sBBBBII", b"PDSG", 1, 1, 1, 16, block_len, 0)
    body = struct.pack("<QQ", 0, 0)
    return head + body + pydelta.blake3_digest(head + body) + b"PDSE"


@pytest.mark.parametrize("kind", ["rdiff", "native"])
def test_huge_block_length_costs_no_memory_up_front(tmp_path, kind):
    if kind == "rdiff":  # 12 bytes: magic (BLAKE2, RabinKarp), block_len 2**26, strong_len 32
        sig = bytes.fromhex("72730147") + (1 << 26).to_bytes(4, "big") + (32).to_bytes(4, "big")
    else:
        sig = _native_empty_sig(1 << 26)
    pydelta.info(io.BytesIO(sig))  # a valid signature
    new = tmp_path / "new"
    new.write_bytes(rand_bytes(3 * MiB, 8))
    g = run_guarded(
        SIG_VICTIM.format(sig=sig.hex(), new=str(new), out=str(tmp_path / "d")),
        max_growth_mib=64, timeout=60,
    )  # fmt: skip
    assert g.killed is None and g.returncode == 0, g
    assert g.stdout.startswith("OK"), g
    (tmp_path / "empty").write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pydelta.UnverifiedWarning)  # rdiff: no digest
        res = pydelta.patch(tmp_path / "empty", tmp_path / "d", tmp_path / "out")
    assert res.size == 3 * MiB


# ---------------------------------------------------------------- item 9


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    "reply",
    [
        {"ok": True},  # no type
        {"ok": True, "type": "file"},  # no size
        {"ok": True, "type": 7},
        [1, 2, 3],  # not an object
        DEEP,
        {"ok": True, "type": "dir", "walk": [1]},
        {"ok": True, "type": "dir", "walk": [{"path": 5, "type": "file", "size": 1}]},
        {"ok": True, "type": "dir", "walk": [{"path": "a", "type": "file", "size": "big"}]},
        {"ok": True, "type": "dir", "walk": [{"path": "a", "type": "file"}]},
        {"ok": True, "type": "dir", "walk": [{"path": "a"}]},
    ],
    ids=lambda r: repr(r)[:40],
)
def test_malformed_replies_are_protocol_errors(tmp_path, reply):
    def script(p: Frames):
        while True:
            m = p.recv_json()
            op = m.get("op")
            if op == "stat":
                if isinstance(reply, dict) and "walk" in reply:
                    p.send_json({"ok": True, "type": "dir"})
                else:
                    p.send_json(reply)
            elif op == "walk":
                p.send_json({"ok": True, "entries": reply["walk"]})
            elif op == "bye":
                p.send_json({"ok": True})
                return
            else:
                p.send_json({"ok": True})

    with EvilServer(script) as srv:
        c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(pydelta.SyncError) as ei:
            c.pull("src", str(tmp_path / "dest"))
    msg = str(ei.value) + " " + (failed_message(ei.value) if ei.value.report else "")
    for bad in ("KeyError", "TypeError", "RecursionError", "AttributeError"):
        assert bad not in msg, msg


def test_serve_answers_a_deeply_nested_request(tmp_path):
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    out = {}

    def server():
        try:
            pydelta.serve(os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
            out["ok"] = True
        except BaseException as e:  # noqa: BLE001 - what escapes is the point
            out["exc"] = e

    t = threading.Thread(target=server, daemon=True)
    t.start()
    p = Frames(os.fdopen(s2c_r, "rb", buffering=0), os.fdopen(c2s_w, "wb", buffering=0))
    p.raw(MAGIC)
    p.send_json({"op": "hello", "proto": 1})
    p.expect_magic()
    p.recv_json()
    p.send_json(DEEP)
    kind = None
    if select.select([p.rfile], [], [], 20)[0]:  # an answer, or the server hung up
        try:
            kind = p.recv_kind()
        except Exception:  # noqa: BLE001 - the server hung up
            pass
    p.wfile.close()
    t.join(10)
    p.rfile.close()
    assert not t.is_alive() and ("ok" in out or "exc" in out)
    assert kind in (FAIL, None)
    exc = out.get("exc")
    assert exc is None or isinstance(exc, pydelta.ProtocolError), repr(exc)


def test_corrupt_delta_in_sync_names_the_file_and_blames_the_delta(tmp_path):
    old = rand_bytes(100_000, 9)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "f.bin").write_bytes(old)

    def deliver(p, sig):
        # a delta made for another file of the same size: its copies give a
        # wrong result, and its signature digest is not that of our signature
        other = pydelta.signature(io.BytesIO(rand_bytes(100_000, 99)))
        d = pydelta.delta(other, io.BytesIO(rand_bytes(100_000, 99)[:50_000] + b"new"))
        p.send_stream(d)

    r = evil_pull(tmp_path, deliver, _file_meta(100_003))
    msg = failed_message(r)
    assert "old file" not in msg or str(dest / "f.bin") in msg, msg
    assert "corrupt" in msg and "not the file the signature was made from" not in msg, msg
    assert (dest / "f.bin").read_bytes() == old


def test_rdiff_info_result_size_does_not_wrap(tmp_path):
    """COPY of 2**64 - 1 bytes and a 1-byte literal: 'result size 0' would be a lie."""
    # librsync delta: magic, COPY with 8-byte offset and length (0x54), LITERAL 1 (0x01), END (0)
    cmd = bytes([0x54]) + (0).to_bytes(8, "big") + ((1 << 64) - 1).to_bytes(8, "big")
    d = tmp_path / "d"
    d.write_bytes(b"rs\x026" + cmd + b"\x01x" + b"\x00")
    try:
        f = pydelta.info(d).fields
    except pydelta.CorruptDeltaError:
        return  # refusing it is right too
    assert f["result size"] == 1 << 64, f


def test_evil_peer_helper_speaks_the_protocol(tmp_path):
    """The helper itself: an honest pull through EvilServer works."""
    content = rand_bytes(30_000, 10)
    r = evil_pull(tmp_path, _deliver_whole(content), _file_meta(len(content)))
    assert not isinstance(r, Exception), r
    assert (tmp_path / "dest" / "f.bin").read_bytes() == content


def test_signature_limit_covers_every_honest_signature():
    """The cap on received signatures never refuses one that sync itself makes."""
    import random

    from pydelta.sync.transfer import MAX_SIGNATURE, signature_limit

    sizes = {0, 1, 1023, 1024, 1 << 20, (1 << 20) + 1, 1025**2 - 1, 1025**2, (1 << 40) - 1}
    r = random.Random(5)
    sizes |= {r.randrange(1 << 42) for _ in range(2000)}
    sizes |= {(k * 1024) ** 2 + d for k in range(1, 1025, 7) for d in (-1, 0, 1)}
    for b in sorted(s for s in sizes if s >= 0):
        bl = pydelta.default_block_len(b)
        blocks = -(-b // bl)
        honest = 16 + blocks * (8 + 16) + 52
        assert honest <= signature_limit(bl, 16), b
        if bl < 1 << 20:
            assert signature_limit(bl, 32) < 48 << 20
    assert signature_limit(1 << 20, 16) == MAX_SIGNATURE


def test_data_frame_larger_than_pydelta_sends_is_refused(tmp_path):
    def script(p: Frames):
        p.recv_json()  # stat
        p.frame(b"D", bytes(64), claim=(1 << 20) + 1)

    with EvilServer(script) as srv:
        c = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(pydelta.ProtocolError, match="malformed frame"):
            c.pull("x", str(tmp_path / "y"))


def test_endless_delta_after_a_failure_ends_the_session(tmp_path):
    """The delta goes wrong at once, then never ends: dropped, but not forever."""
    from evil_peer import delta_header

    def deliver(p, sig):
        p.send_data(delta_header(0, sig_digest=sig[-36:-4]) + b"L\x05abcdefgh")  # 8 > 4 bytes
        p.endless(bytes(1 << 20))

    r = evil_pull(tmp_path, deliver, _file_meta(4))
    assert isinstance(r, pydelta.ProtocolError), r
    assert "more than" in str(r)
    assert os.listdir(tmp_path / "dest") == []
