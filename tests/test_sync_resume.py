"""Resuming an interrupted update (sync/resume.py).

Over the real loopback sshd: ssh killed half-way through an update of an
existing file, both directions; the rerun ships only the rest. Then a
partial file that does not fit (another version, damaged, not a regular
file) is dropped and the update runs in full, still verified.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import rand_bytes
from test_sync import served, write  # noqa: F401
from test_sync_ssh import REMOTE_CMD, ssh_recording_pid, sync

import pydelta

SIZE = 40 << 20


def wait_for(path, timeout=20.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("direction", ["push", "pull"])
def test_killed_update_resumes_from_what_arrived(sshd, tmp_path, direction):
    old, new = rand_bytes(SIZE, 11), rand_bytes(SIZE, 12)  # all different: all literal
    src = write(tmp_path / "src" / "f.bin", new)
    dst = write(tmp_path / "dst" / "f.bin", old)
    partial = dst.parent / ".f.bin.pydelta-partial"
    sidecar = dst.parent / ".f.bin.pydelta-partial.json"
    pidfile = tmp_path / "ssh.pid"
    killed = []

    def kill_midway(st):
        if not killed and st.file_done > SIZE // 2:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
            killed.append(st.file_done)

    ends = (sshd.target(src), str(dst)) if direction == "pull" else (str(src), sshd.target(dst))
    with pytest.raises(pydelta.ConnectionLostError):
        pydelta.sync(
            *ends,
            ssh=ssh_recording_pid(sshd, pidfile),
            remote_cmd=REMOTE_CMD,
            progress=kill_midway,
            compress=False,
        )
    assert killed and dst.read_bytes() == old  # the old content stays
    assert wait_for(sidecar), os.listdir(dst.parent)  # the far end saw the hang-up
    kept = json.loads(sidecar.read_text())
    assert kept["size"] == SIZE and kept["have"] >= 4 << 20
    assert partial.read_bytes()[: kept["have"]] == new[: kept["have"]]

    r = sync(sshd, *ends, compress=False)
    assert dst.read_bytes() == new
    assert r.files[0].action == "updated"
    shipped = r.bytes_sent if direction == "push" else r.bytes_received
    # only the rest crossed the wire (plus the old file's signature the other way)
    assert shipped < SIZE - kept["have"] + (1 << 20), (r, kept)
    assert not partial.exists() and not sidecar.exists()


def _leave_partial(dst, prefix: bytes, size: int, mtime_ns: int, have=None):
    partial = dst.parent / ".f.bin.pydelta-partial"
    partial.write_bytes(prefix)
    sidecar = dst.parent / ".f.bin.pydelta-partial.json"
    info = {"format": "pydelta-partial", "version": 1, "size": size, "mtime_ns": mtime_ns}
    info["have"] = len(prefix) if have is None else have
    sidecar.write_text(json.dumps(info))
    return partial, sidecar


@pytest.mark.parametrize("damage", ["none", "flipped", "other version", "too long", "junk"])
def test_a_partial_is_used_only_when_its_prefix_is_right(served, tmp_path, damage):  # noqa: F811
    old, new = rand_bytes(4 << 20, 1), rand_bytes(4 << 20, 2)
    src = write(tmp_path / "src" / "f.bin", new)
    dst = write(tmp_path / "dst" / "f.bin", old)
    mtime = os.stat(src).st_mtime_ns
    prefix = bytearray(new[: 2 << 20])
    size = len(new)
    have = None
    if damage == "flipped":
        prefix[12345] ^= 1
    elif damage == "other version":
        size += 1
    elif damage == "too long":
        have = 1 << 40
    partial, sidecar = _leave_partial(dst, bytes(prefix), size, mtime, have)
    if damage == "junk":
        sidecar.write_text("{not json")
    s = served(compress=False)
    r = s.client.push(str(src), str(dst))
    s.close()
    assert dst.read_bytes() == new
    assert not partial.exists() and not sidecar.exists()
    if damage in ("none", "too long"):  # (a claim past the file's end is cut to it)
        assert r.bytes_sent < len(new) - (2 << 20) + (64 << 10), r
    else:
        assert r.bytes_sent > len(new), r


def test_a_partial_that_is_a_link_is_not_followed(served, tmp_path):  # noqa: F811
    old, new = rand_bytes(1 << 20, 3), rand_bytes(1 << 20, 4)
    src = write(tmp_path / "src" / "f.bin", new)
    dst = write(tmp_path / "dst" / "f.bin", old)
    elsewhere = write(tmp_path / "elsewhere", new[: 512 << 10])
    _leave_partial(dst, b"", len(new), os.stat(src).st_mtime_ns, have=512 << 10)
    partial = dst.parent / ".f.bin.pydelta-partial"
    partial.unlink()
    os.symlink(elsewhere, partial)
    s = served(compress=False)
    r = s.client.push(str(src), str(dst))
    s.close()
    assert dst.read_bytes() == new and r.bytes_sent > len(new)
    assert elsewhere.read_bytes() == new[: 512 << 10]  # untouched


def test_a_resumed_result_is_hashed_whole_before_it_replaces_the_target(tmp_path):
    """The prefix and the rest each verified, but put together wrong: refused."""
    from pydelta.sync.resume import UpdateResume

    new = rand_bytes(1 << 20, 7)
    dst = write(tmp_path / "f.bin", b"old")
    _leave_partial(dst, new[: 256 << 10], len(new), 5)
    d = os.open(tmp_path, os.O_RDONLY)
    try:
        res = UpdateResume(d, "f.bin")
        offer = res.offer(len(new), 5)
        assert offer["offset"] == 256 << 10
        whole = pydelta.blake3(new).digest()
        res.accepted({"resume": True, "digest": whole.hex()})
        out = res.output(str(dst), fsync=False)
        out.write(new[(256 << 10) + 1 :] + b"?")  # the rest, one byte off
        with pytest.raises(pydelta.VerificationError, match="whole file"):
            out.commit()
    finally:
        os.close(d)
    assert dst.read_bytes() == b"old"
    assert not (tmp_path / ".f.bin.pydelta-partial").exists()
