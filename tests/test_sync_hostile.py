"""The newer sync features against a lying far end (either direction).

Features negotiated in hello (links, refine, resume, shortsig, compare) and
the signature cache, each fed what an honest peer or an intact cache entry
never says. The peers are hand-written: :class:`LyingClient` drives a real
``Server`` over two pipes with raw frames; tests/evil_peer.py's
``EvilServer`` stands in for ``pydelta serve``.
"""

from __future__ import annotations

import os
import threading

import pytest
from conftest import rand_bytes
from evil_peer import MAGIC, EvilServer, Frames

import pydelta
from pydelta.errors import ConnectionLostError, ProtocolError
from pydelta.sync.links import unsafe_reason
from pydelta.sync.refine import pack_windows
from pydelta.sync.server import Server
from pydelta.sync.wire import Channel


class LyingClient:
    """A hand-written client speaking raw frames to a real Server on a thread."""

    def __init__(self, features: list) -> None:
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        srv_r, srv_w = os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb")
        self.error = None

        def run() -> None:
            try:
                Server(Channel(srv_r, srv_w, "the client"), 1).run()
            except BaseException as e:  # kept for the test
                self.error = e
            finally:
                for f in (srv_w, srv_r):
                    try:
                        f.close()
                    except OSError:
                        pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.p = Frames(os.fdopen(s2c_r, "rb", buffering=0), os.fdopen(c2s_w, "wb", buffering=0))
        self.p.raw(MAGIC)
        self.p.expect_magic()
        self.p.send_json({"op": "hello", "proto": 1, "version": "liar", "features": features})
        self.hello = self.p.recv_json()

    def call(self, msg: dict) -> tuple:
        """Send one request; its reply frame (kind, payload)."""
        self.p.send_json(msg)
        return self.p.recv()

    def close(self) -> None:
        try:
            self.p.send_json({"op": "bye"})
            self.p.recv()
        except Exception:
            pass
        for f in (self.p.wfile, self.p.rfile):
            f.close()
        self.thread.join(10)

    def __enter__(self) -> "LyingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HonestServer:
    """``pydelta.serve`` on a thread over two pipes; yields the client's (rfile, wfile)."""

    def __enter__(self):
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        self._srv = (os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
        self._cli = (os.fdopen(s2c_r, "rb"), os.fdopen(c2s_w, "wb"))

        def run() -> None:
            try:
                pydelta.serve(*self._srv, threads=1)
            finally:
                for f in self._srv:
                    f.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self._cli

    def __exit__(self, *exc) -> None:
        for f in self._cli:
            try:
                f.close()
            except OSError:
                pass
        self.thread.join(10)


# ---------------------------------------------------------------- links


def test_a_link_through_another_link_may_not_climb_out(tmp_path):
    """``up -> ..`` one level down is safe, and so, read as text, is
    ``esc -> sub/up/..``; but the kernel resolves ``sub/up`` first, to the
    root, and its '..' is then the root's parent: a '..' after a name is
    refused."""
    root = tmp_path / "dst"
    (root / "sub").mkdir(parents=True)
    with LyingClient(["links"]) as c:
        assert "links" in c.hello["features"]
        kind, body = c.call({"op": "symlink", "root": str(root), "path": "sub/up", "target": ".."})
        assert kind == b"J", body
        for target in ("sub/up/..", "sub/up/../x", "sub/../sub/up/../.."):
            kind, body = c.call(
                {"op": "symlink", "root": str(root), "path": "esc", "target": target}
            )
            assert kind == b"X", (target, body)
            assert b"refusing symbolic link" in body
        assert not os.path.lexists(root / "esc")
    # what the checker still lets through: the hub cache's layout
    assert unsafe_reason("snapshots/main/model.bin", "../../blobs/ab12") is None
    assert unsafe_reason("a/b", "./../c/./d") is None
    assert unsafe_reason("a/b", "c/../d") is not None


def test_a_nested_escaping_link_is_skipped_by_the_sending_end(tmp_path):
    """The sending end lists such a link as skipped (it applies the same rule)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_bytes(b"data")
    os.symlink("..", src / "sub" / "up")
    os.symlink("sub/up/..", src / "esc")
    dst = tmp_path / "dst"
    with HonestServer() as (rfile, wfile):
        c = pydelta.SyncClient(rfile, wfile, peer="srv")
        r = c.push(str(src), str(dst), links=True)
        c.close()
    assert os.readlink(dst / "sub" / "up") == ".."
    assert not os.path.lexists(dst / "esc")
    skipped = {f.path: f.message for f in r.files if f.action == "skipped"}
    assert "climbs back" in skipped["esc"]


# ---------------------------------------------------------------- refine


def _refine_server(old: bytes, requests: int, seen: list):
    """An evil server that agrees ``refine``, sends a delta the client fails
    on, then refine requests: counts the declines until the client hangs up."""

    def run(p):
        p.raw(MAGIC)
        p.expect_magic()
        p.recv_json()
        p.send_json({"ok": True, "proto": 1, "version": "evil", "features": ["refine"]})
        p.recv_json()  # stat
        p.send_json({"ok": True, "type": "file", "size": len(old), "mode": 0o644})
        p.recv_json()  # get
        p.send_json({"ok": True, "size": len(old), "mode": 0o644, "mtime_ns": 0})
        p.recv_stream()  # the signature
        p.send_data(b"not a delta at all" * 200)  # the client's patch fails here
        for _ in range(requests):
            p.send_json({"op": "refine", "block": 64, "windows": pack_windows([(0, 128)])})
            if p.recv_kind() != b"e":
                break
            seen.append("declined")

    return EvilServer(run, handshake=False)


def test_refine_requests_after_a_decline_end_the_session(tmp_path):
    """An honest sender stops asking once declined; a peer that goes on could
    keep the receiver answering for ever (the requests are not data, so the
    delta's size limit never ends them)."""
    old = rand_bytes(1 << 16, 5)
    dst = tmp_path / "x"
    dst.write_bytes(old)
    seen: list = []
    with _refine_server(old, 50, seen) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(ProtocolError, match="after .* declined"):
            client.pull("x", str(dst))
    assert seen == ["declined"]
    assert dst.read_bytes() == old


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_a_deeply_nested_sidecar_is_dropped_not_a_traceback(tmp_path, direction):
    """A damaged sidecar beside the target (or one a lying peer wrote there as
    an ordinary file of its tree): JSON nested deeper than the parser goes."""
    old, new = rand_bytes(1 << 17, 1), rand_bytes(1 << 17, 2)
    src = tmp_path / "src" / "x"
    src.parent.mkdir()
    src.write_bytes(new)
    dst = tmp_path / "dst" / "x"
    dst.parent.mkdir()
    dst.write_bytes(old)
    (dst.parent / ".x.pydelta-partial").write_bytes(new[:80000])
    (dst.parent / ".x.pydelta-partial.json").write_bytes(b"[" * 4000)
    with HonestServer() as (rfile, wfile):
        c = pydelta.SyncClient(rfile, wfile, peer="srv")
        assert "resume" in c.features
        if direction == "push":
            r = c.push(str(src), str(dst))
        else:
            r = c.pull(str(src), str(dst))
        c.close()
    assert [f.action for f in r.files] == ["updated"], r.files
    assert dst.read_bytes() == new
    assert sorted(os.listdir(dst.parent)) == ["x"]


def test_a_refine_request_naming_no_window_is_refused():
    import io

    from pydelta.sync.refine import Answerer

    ans = Answerer(Channel(io.BytesIO(), io.BytesIO(), "evil"), io.BytesIO(b"x" * 80), 80)
    with pytest.raises(ProtocolError, match="no windows"):
        ans({"op": "refine", "block": 16, "windows": ""})


# ---------------------------------------------------------------- the same elsewhere


def test_store_json_nested_past_the_parser_is_a_corrupt_store_not_a_traceback(tmp_path):
    """A tag, relocation record or store marker from a store is JSON from
    outside: nested deeper than the parser goes it is corrupt like any other."""
    from pydelta import errors
    from pydelta.formats import store_objects as mf
    from pydelta.store import relocate, stores
    from pydelta.store.local import LocalStore

    deep = b"[" * 4000
    with pytest.raises(errors.CorruptStoreError):
        mf.decode_tag(deep)
    with pytest.raises(errors.CorruptStoreError):
        relocate.decode_moved(deep, bytes(32), "record")
    root = tmp_path / "store"
    root.mkdir()
    (root / stores.CONFIG_KEY).write_bytes(deep)
    with pytest.raises(errors.CorruptStoreError, match="store marker"):
        stores.read_config(LocalStore(str(root)))


# ---------------------------------------------------------------- both ends fail


def test_a_pull_failing_at_both_ends_does_not_wait_for_stats(tmp_path):
    """The client fails on the delta (here: not a delta) and the server then
    gives up too (FAIL): the server sends no stats after a FAIL, so the
    client must not wait for them (it waited for ever; here the server then
    hangs up, so the wait ends as a lost connection)."""
    old = rand_bytes(1 << 16, 7)
    dst = tmp_path / "x"
    dst.write_bytes(old)

    def run(p):
        p.raw(MAGIC)
        p.expect_magic()
        p.recv_json()
        p.send_json({"ok": True, "proto": 1, "version": "evil", "features": ["stats"]})
        p.recv_json()  # stat
        p.send_json({"ok": True, "type": "file", "size": len(old), "mode": 0o644})
        p.recv_json()  # get
        p.send_json({"ok": True, "size": len(old), "mode": 0o644, "mtime_ns": 0})
        p.recv_stream()  # the signature
        p.send_data(b"not a delta at all" * 200)
        p.send_fail("the file went away here")  # no stats follow a FAIL

    with EvilServer(run, handshake=False) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="evil")
        with pytest.raises(pydelta.SyncError, match="went away .*not a pydelta delta") as e:
            client.pull("x", str(dst))
    assert not isinstance(e.value, ConnectionLostError)
    assert dst.read_bytes() == old


def test_a_push_failing_at_both_ends_gets_no_reply(tmp_path):
    """The server fails on the delta and the client then gives up (FAIL): the
    client waits for no reply to that put, so the server sends none (it sent
    a FAIL, which the client then took as the answer to its next request)."""
    old = rand_bytes(1 << 16, 8)
    root = tmp_path / "dst"
    root.mkdir()
    (root / "x").write_bytes(old)
    with LyingClient([]) as c:
        c.p.send_json({"op": "put", "root": str(root), "path": "x", "size": len(old)})
        assert c.p.recv_json()["ok"] is True
        c.p.recv_stream()  # the signature
        c.p.send_data(b"not a delta at all" * 200)
        c.p.send_fail("gave up")
        kind, body = c.call({"op": "stat", "path": str(root / "x")})
        assert kind == b"J", body
        assert b'"type":"file"' in body
    assert (root / "x").read_bytes() == old


# ---------------------------------------------------------------- nested values


def _nested(depth: int = 960) -> list:
    """A list nested nearly as deep as the JSON parser goes: its repr, made
    deeper in the stack than the parse, recursed past Python's limit."""
    out: list = []
    for _ in range(depth):
        out = [out]
    return out


def test_a_nested_value_in_a_listing_is_a_protocol_error_not_a_recursion(tmp_path):
    from pydelta.sync.messages import check_entry
    from pydelta.sync.shortsig import put_action, retried

    def deep(n, f):
        return deep(n - 1, f) if n else f()

    e = deep(80, lambda: check_entry({"type": "other", "path": "a", "why": _nested()}, "p", True))
    assert e["why"] == "not a regular file or directory"
    with pytest.raises(ProtocolError, match="unknown type a JSON array"):
        deep(80, lambda: check_entry({"type": _nested(), "path": "a"}, "p", True))
    with pytest.raises(ProtocolError, match="action a JSON array"):
        deep(80, lambda: put_action({"action": _nested()}, "p", False))
    with pytest.raises(pydelta.RemoteError, match="did not match"):
        deep(80, lambda: put_action({"ok": False, "retry": True, "error": _nested()}, "p", False))
    assert "did not match" in deep(80, lambda: retried(_nested()))


# ---------------------------------------------------------------- -L


def test_a_ladder_of_folder_links_is_walked_a_bounded_number_of_times(tmp_path):
    """Folders d0..d11, each with two links to the next: followed (-L), the
    walk listed 2 + 4 + ... + 4096 folders; each folder is now walked at most
    MAX_FOLLOWED_COPIES times through links, the rest reported."""
    from pydelta.sync import fs

    root = tmp_path / "t"
    depth = 12
    for k in range(depth):
        (root / f"d{k}").mkdir(parents=True)
    (root / f"d{depth}").mkdir()
    (root / f"d{depth}" / "f").write_bytes(b"x")
    for k in range(depth):
        for name in ("a", "b"):
            os.symlink(f"../d{k + 1}", root / f"d{k}" / name)
    entries = fs.walk(str(root), "copy")
    assert len(entries) < 2 * fs.MAX_FOLLOWED_COPIES * (depth + 1) * 2
    skipped = [e for e in entries if e["type"] == "other"]
    assert skipped and all("copied 16 times already" in e["why"] for e in skipped)
    # a folder linked from a few places is copied each time
    small = tmp_path / "s"
    (small / "blobs").mkdir(parents=True)
    (small / "blobs" / "f").write_bytes(b"x")
    for k in range(3):
        os.symlink("blobs", small / f"l{k}")
    files = sorted(e["path"] for e in fs.walk(str(small), "copy") if e["type"] == "file")
    assert files == ["blobs/f", "l0/f", "l1/f", "l2/f"]
