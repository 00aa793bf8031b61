"""A silent peer: reads from the far end give up after an idle timeout.

A peer that answers hello (agreeing every feature) and then says nothing, or
a client that stops inside a request, must end the session with a one-line
ConnectionLostError - never a hang - and leave nothing behind. Between
requests the serving end waits for as long as the client likes. The peers
are hand-written over pipes (tests/evil_peer.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from evil_peer import MAGIC, EvilServer, Frames, PeerGone

import pydelta
from pydelta.errors import ConnectionLostError
from pydelta.sync import messages, wire
from pydelta.sync.wire import Channel

#: Short enough for a test, long enough that an honest peer on a loaded
#: machine is never cut (only the silent ones here wait for it).
TIMEOUT = 0.3


def silent_after_hello(p: Frames) -> None:
    """Agree every feature the client offers, then read (and never answer)."""
    p.raw(MAGIC)
    p.expect_magic()
    hello = p.recv_json()
    p.send_json({"ok": True, "proto": 1, "version": "mute", "features": hello.get("features")})
    try:
        while True:
            p.recv()
    except PeerGone:
        pass


@pytest.mark.parametrize("verb", ["push", "pull"])
def test_a_peer_silent_after_hello_times_out(tmp_path, verb):
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(5000))
    with EvilServer(silent_after_hello, handshake=False) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="mute", timeout=TIMEOUT)
        assert set(client.features) == set(messages.FEATURES)
        with pytest.raises(ConnectionLostError, match=r"no data from mute for 0\.3 s"):
            if verb == "push":
                client.push(str(src), str(tmp_path / "out" / "a.bin"))
            else:
                client.pull("a.bin", str(tmp_path / "b.bin"))
    assert sorted(os.listdir(tmp_path)) == ["a.bin"]  # nothing written or left
    assert srv.error is None


def test_a_peer_silent_before_hello_times_out():
    def mute(p: Frames) -> None:
        p.raw(MAGIC)
        try:
            while p.rfile.read(1 << 16):
                pass
        except (OSError, ValueError):
            pass

    with EvilServer(mute, handshake=False) as srv:
        with pytest.raises(ConnectionLostError, match="no data from mute"):
            pydelta.SyncClient(srv.rfile, srv.wfile, peer="mute", timeout=TIMEOUT)


def test_a_peer_stopping_inside_a_frame_times_out():
    """The frame's head came, its payload never does."""

    def half(p: Frames) -> None:
        silent_hello = p.recv_json()
        assert silent_hello["op"] == "stat"
        p.raw(b"J\x00\x00\x01\x00{")  # 256 bytes promised, 1 sent
        while p.rfile.read(1 << 16):
            pass

    with EvilServer(half) as srv:
        client = pydelta.SyncClient(srv.rfile, srv.wfile, peer="half", timeout=TIMEOUT)
        with pytest.raises(ConnectionLostError, match="no data from half"):
            client.pull("x", "/nonexistent/never")


class ServedOnPipes:
    """pydelta.serve with a timeout on a thread; the test speaks raw frames."""

    def __init__(self, timeout: float) -> None:
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        self.srv = (os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
        self.error = None
        self.done = threading.Event()

        def run() -> None:
            try:
                pydelta.serve(*self.srv, threads=1, timeout=timeout)
            except BaseException as e:  # kept for the test
                self.error = e
            finally:
                for f in self.srv:  # the test's reads then end instead of waiting
                    f.close()
                self.done.set()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.p = Frames(os.fdopen(s2c_r, "rb", buffering=0), os.fdopen(c2s_w, "wb", buffering=0))
        self.p.raw(MAGIC)
        self.p.expect_magic()
        self.p.send_json({"op": "hello", "proto": 1, "version": "t", "features": []})
        self.hello = self.p.recv_json()

    def close(self) -> None:
        for f in (self.p.wfile, self.p.rfile):
            f.close()
        self.thread.join(10)


def test_a_client_silent_inside_a_put_times_out_and_leaves_nothing(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    s = ServedOnPipes(TIMEOUT)
    try:
        s.p.send_json({"op": "put", "root": str(dest), "path": "f.bin", "size": 100})
        assert s.p.recv_json()["ok"] is True
        s.p.recv_stream()  # the (empty) basis's signature
        s.p.raw(b"D\x00\x00\x00\x64" + b"x" * 10)  # 100 bytes of delta promised, 10 sent
        assert s.done.wait(60)  # it gives up by itself
    finally:
        s.close()
    assert isinstance(s.error, ConnectionLostError), s.error
    assert "no data from the client" in str(s.error)
    assert os.listdir(dest) == []


def test_a_client_may_pause_between_requests(tmp_path):
    """Only a request in progress is timed: a pause of several timeouts between
    two requests is fine (the event waited for is the pause's end)."""
    s = ServedOnPipes(0.05)
    try:
        s.p.send_json({"op": "stat", "path": str(tmp_path)})
        assert s.p.recv_json()["ok"] is True
        assert not s.done.wait(0.5)  # a pause: the server is still there
        s.p.send_json({"op": "stat", "path": str(tmp_path)})
        assert s.p.recv_json()["ok"] is True
        s.p.send_json({"op": "bye"})
        assert s.p.recv_json()["ok"] is True
    finally:
        s.close()
    assert s.error is None


def test_the_timeout_reads_in_non_blocking_mode_and_puts_it_back():
    r, w = os.pipe()
    r2, w2 = os.pipe()
    rf, wf = os.fdopen(r, "rb"), os.fdopen(w2, "wb")
    os.close(w)
    os.close(r2)
    try:
        ch = Channel(rf, wf, "p", timeout=5)
        assert not os.get_blocking(r)
        ch.release()
        assert os.get_blocking(r)
        ch = Channel(rf, wf, "p", timeout=0)  # no timeout: the stream as it was
        assert os.get_blocking(r)
        ch = Channel(rf, rf, "p", timeout=5)  # one stream both ways: never non-blocking
        assert os.get_blocking(r)
    finally:
        rf.close()
        wf.close()


def test_timeout_from_the_environment(monkeypatch):
    monkeypatch.delenv("PYDELTA_SYNC_TIMEOUT", raising=False)
    assert wire.default_timeout() == wire.DEFAULT_TIMEOUT
    for value, want in (
        ("0", 0.0),
        ("2.5", 2.5),
        ("-1", wire.DEFAULT_TIMEOUT),
        ("x", wire.DEFAULT_TIMEOUT),
    ):
        monkeypatch.setenv("PYDELTA_SYNC_TIMEOUT", value)
        assert wire.default_timeout() == want


def test_serve_process_gives_up_on_a_silent_client(tmp_path):
    """``pydelta serve`` itself: a client that stops inside a request gets a
    one-line error on standard error and exit status 1, no traceback."""
    env = dict(os.environ, PYDELTA_SYNC_TIMEOUT=str(TIMEOUT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydelta", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    p = Frames(proc.stdout, proc.stdin)
    p.raw(MAGIC)
    p.expect_magic()
    p.send_json({"op": "hello", "proto": 1, "version": "t", "features": []})
    p.recv_json()
    p.raw(b"J\x00\x00\x01\x00{")  # a request begun, never finished (stdin stays open)
    try:
        assert proc.wait(timeout=120) == 1
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.communicate()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "no data from the client for 0.3 s" in lines[0], err


MUTE_SSH = r"""
import json, struct, sys
r, w = sys.stdin.buffer, sys.stdout.buffer
w.write(b"PDSYNC1\n"); w.flush()
assert r.read(8) == b"PDSYNC1\n"
kind, n = struct.unpack(">cI", r.read(5))
hello = json.loads(r.read(n))
reply = json.dumps({"ok": True, "proto": 1, "version": "mute", "features": hello["features"]})
w.write(struct.pack(">cI", b"J", len(reply)) + reply.encode()); w.flush()
while r.read(1 << 16):  # never answers again
    pass
"""


def test_cli_sync_timeout_exit_status(tmp_path):
    """``pydelta sync --timeout 1`` against a far end that goes mute after
    hello: one line on standard error, the connection's exit status (6)."""
    fake = tmp_path / "mute_ssh.py"
    fake.write_text(MUTE_SSH)
    src = tmp_path / "m.bin"
    src.write_bytes(os.urandom(3000))
    proc = subprocess.run(
        [sys.executable, "-m", "pydelta", "sync", "--timeout", "1", "--ssh"]
        + [f"{sys.executable} {fake}", str(src), "host:/nowhere/m.bin"],
        capture_output=True,
        timeout=120,
    )
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 6, proc.stderr
    assert len(lines) == 1 and "no data from host for 1 s" in lines[0], lines
    bad = subprocess.run(
        [sys.executable, "-m", "pydelta", "sync", "--timeout", "-1", str(src), "h:x"],
        capture_output=True,
        timeout=120,
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr
