"""The patch's result cut short while it is read back (csrc/copy.c under the
SIGBUS guard of csrc/mapguard.c): the patch fails with one line, the temporary
file is removed and the target is untouched - never a crash.

How the cut is made without a race: after the first part of the result is
written, the test truncates the temporary file and sets O_APPEND on it. On
Linux a pwrite() to a file opened with O_APPEND lands at the file's end, so
the rest of the result goes to the start of the (now short) file, while the
reader maps it at the offsets it was meant for: past the file's end. Those
pages raise SIGBUS when touched, as when another process cuts the file, on
whichever reader (the digest's, its tree-parallel helpers, the signer's)
touches them first.
"""

from __future__ import annotations

import fcntl
import importlib
import io
import os
import random

import pytest

import pydelta
from pydelta.backends import c as C
from pydelta.errors import FileAccessError, message
from pydelta.formats import native as fmt

patch_mod = importlib.import_module("pydelta.patch")

MIB = 1 << 20


def _c_only() -> None:
    """The direct writer and its read-back are the C backend's
    (backends.c.C_ONLY); the numba backend writes through Python."""
    if pydelta.backend != "c":
        pytest.skip(
            "a C-only kernel: the direct writer reads its result back (the C pass runs this test)"
        )


@pytest.fixture(scope="module")
def parts():
    """(old, new, delta, cut): new is old copied whole, then 3 MiB of literal
    bytes; delta[:cut] makes the copy, delta[cut:] the literal bytes."""
    r = random.Random(21)
    old = r.randbytes(6 * MIB)
    new = old + r.randbytes(3 * MIB)
    sig = pydelta.signature(io.BytesIO(old), block_size=4096)
    delta = pydelta.delta(sig, io.BytesIO(new), compress=False)
    return old, new, delta, len(delta) - 3 * MIB


def _cut_and_append(fd: int) -> None:
    os.ftruncate(fd, 0)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)


@pytest.mark.parametrize("hash_threads", [1, 2])
@pytest.mark.parametrize("sign", ["none", "digest_reader", "own_thread"])
def test_result_cut_short_while_read_back_is_one_clear_error(
    tmp_path, monkeypatch, parts, hash_threads, sign
):
    _c_only()
    old, _, delta, cut = parts
    monkeypatch.setattr(patch_mod, "HASH_THREADS", hash_threads)
    monkeypatch.setattr(patch_mod, "SIGN_THREAD", sign == "own_thread")
    (tmp_path / "old").write_bytes(old)
    target = tmp_path / "out"
    target.write_bytes(b"the file before")
    p = pydelta.Patcher(
        tmp_path / "old", target, sign=None if sign == "none" else (4096, 16, 1 << 30)
    )
    with pytest.raises(FileAccessError) as err:
        p.write(delta[:cut])
        assert p._produced >= 6 * MIB - 4096  # the copy is in the file
        _cut_and_append(p._sink.fh.fileno())
        p.write(delta[cut:])
        p.close()
    text = message(err.value)
    assert "read back" in text and "came up short" in text and "\n" not in text
    assert p.signature is None
    assert target.read_bytes() == b"the file before"
    assert sorted(os.listdir(tmp_path)) == ["old", "out"]  # no temporary file left


@pytest.mark.parametrize("hash_threads", [1, 2])
@pytest.mark.parametrize("thread", [True, False])
@pytest.mark.parametrize("own_thread", [True, False])
def test_sink_reports_a_read_back_cut_short(tmp_path, parts, hash_threads, thread, own_thread):
    """The sink itself: inline or threaded reader, signer on either reader."""
    _c_only()
    old, _, delta, cut = parts
    head = fmt.DELTA_HEADER.size
    (tmp_path / "old").write_bytes(old)
    with open(tmp_path / "old", "rb") as fo, open(tmp_path / "out", "w+b") as out:
        job = C.PatchJob(fo.fileno(), len(old))
        sink = C.Sink(out.fileno(), thread=thread, hash_threads=hash_threads)
        sink.sign(4096, 16, 1 << 30, own_thread=own_thread)
        job.attach(sink)
        outbuf = bytearray(8 * MIB)
        for first, part in ((True, delta[head:cut]), (False, delta[cut:])):
            if not first:
                _cut_and_append(out.fileno())
            rest = part
            while rest:
                rc, used, _ = job.step(rest, 0, len(rest), outbuf)
                rest = rest[used:]
                if rc == C.DONE:
                    break
                assert rc in (C.NEED_INPUT, C.NEED_OUTPUT)
        ok, size, _ = sink.finish()
        assert not ok and size == len(parts[1])
        assert not sink.write_failed and sink.errno == 0  # came up short: no errno
        assert sink.signature() is None


def test_a_result_read_back_whole_is_still_signed_and_verified(tmp_path, parts):
    """The guard changes nothing when no page is lost (every hash thread count)."""
    _c_only()
    old, new, delta, _ = parts
    (tmp_path / "old").write_bytes(old)
    want = C.sig_blocks(new, len(new), 4096, 16, C.STRONG_BLAKE3)
    for threads in (1, 2):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(patch_mod, "HASH_THREADS", threads)
            p = pydelta.Patcher(tmp_path / "old", tmp_path / "out", sign=(4096, 16, 1 << 30))
            p.write(delta)
            assert p.close().digest == C.blake3_digest(new)
        assert p.signature is not None and want in p.signature
        assert (tmp_path / "out").read_bytes() == new
