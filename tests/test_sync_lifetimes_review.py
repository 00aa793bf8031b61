"""Nothing of a folder push is left running when it breaks off.

The driving end hashes its files in the background (sync/compare.py's
SourceDigests), the far end hashes candidates (compare-ahead) and signs
files ahead (presign.py). When the session ends early - an interrupt on the
driving end (KeyboardInterrupt from its progress callback), the far end
then losing its client mid-pipeline - no thread of either end may still be
running, and the far end leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import threading

import pytest
from conftest import rand_bytes
from test_sync import write

import pydelta
from pydelta.sync import compare, presign, sigcache


def pydelta_threads() -> list:
    return [t.name for t in threading.enumerate() if t.name.startswith("pydelta-")]


@pytest.mark.parametrize("stop_at", [1, 4])
def test_an_interrupted_folder_push_leaves_no_thread_or_temp_file(tmp_path, monkeypatch, stop_at):
    monkeypatch.setattr(sigcache, "MIN_FILE", 1 << 16)
    monkeypatch.setattr(presign, "MIN_FILE", 1 << 16)
    src, dest = tmp_path / "src", tmp_path / "dest"
    for i in range(8):  # same size, changed: candidates, hashed and signed ahead
        old = rand_bytes(300_000, 700 + i)
        write(dest / f"s/{i}.bin", old)
        write(src / f"s/{i}.bin", old[:100] + bytes(b ^ 5 for b in old[100:200]) + old[200:])
    before = set(pydelta_threads())
    c2s_r, c2s_w = os.pipe()
    s2c_r, s2c_w = os.pipe()
    srv = (os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb"))
    cli = (os.fdopen(s2c_r, "rb"), os.fdopen(c2s_w, "wb"))
    errors = []

    def run() -> None:
        try:
            pydelta.serve(*srv, threads=2)
        except BaseException as e:  # the client went away mid-request
            errors.append(e)
        finally:
            for f in srv:
                with contextlib.suppress(OSError):  # (a reply left unsent: the client is gone)
                    f.close()

    server = threading.Thread(target=run, daemon=True)
    server.start()
    seen = []

    def progress(status) -> None:
        if status.path not in seen:
            seen.append(status.path)
        if len(seen) > stop_at:
            raise KeyboardInterrupt

    try:
        client = pydelta.SyncClient(*cli, progress=progress, threads=2)
        assert {compare.AHEAD, presign.FEATURE} <= set(client.features)
        with pytest.raises(KeyboardInterrupt):
            client.push(str(src), str(dest))
    finally:
        for f in cli:
            f.close()
        server.join(60)
    assert not server.is_alive()
    assert all(isinstance(e, pydelta.ConnectionLostError) for e in errors), errors
    assert set(pydelta_threads()) <= before
    left = [n for _, _, names in os.walk(dest) for n in names if n.startswith(".")]
    assert left == []


def test_closing_the_presigner_stops_the_file_being_signed(tmp_path, monkeypatch):
    """The session ends (or loses its client) while a large file is being
    signed ahead: close() stops it at its next piece instead of reading the
    whole file, and nothing half-made is kept. The file's signature here is
    endless: without the stop close() would never return."""
    monkeypatch.setattr(sigcache, "MIN_FILE", 1 << 16)
    monkeypatch.setattr(presign, "MIN_FILE", 1 << 16)
    (tmp_path / "big.bin").write_bytes(b"z" * (1 << 17))
    started = threading.Event()

    def endless(fh, **kw):
        while True:
            yield b"piece"
            started.set()

    monkeypatch.setattr(sigcache, "iter_signature", endless)
    p = presign.Presigner(sigcache.SigCache(str(tmp_path / "cache")))
    assert p.add(str(tmp_path), ["big.bin"]) == 1
    assert started.wait(60)
    closer = threading.Thread(target=p.close, daemon=True)
    closer.start()
    closer.join(60)  # a hang guard only: close returns at the next piece
    assert not closer.is_alive()
    assert not (tmp_path / "cache").exists() or os.listdir(tmp_path / "cache") == []
    assert "pydelta-presign" not in " ".join(pydelta_threads())
