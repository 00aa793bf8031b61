"""Resuming an update (pydelta/sync/resume.py) with two runs at once.

The partial file has a well-known name beside its target, so a second sync
of the same destination (an overlapping cron run, a rerun started by hand)
can reach it. A run that resumes from it must take it out of that name's
reach before writing: another run may then neither truncate what it writes
(a mapped read-back of the cut pages would be a SIGBUS) nor put another
file under the name it renames over the target.
"""

from __future__ import annotations

import json
import os

import pytest

from pydelta.errors import PydeltaError
from pydelta.sync import resume
from pydelta.sync.resume import UpdateResume

SIZE = resume.MIN_PREFIX * 4
MTIME = 1_700_000_000 * 10**9


def left_partial(d, have: int) -> None:
    """What an update that broke off after ``have`` bytes leaves beside m.bin."""
    (d / ".m.bin.pydelta-partial").write_bytes(b"p" * have)
    info = {"format": "pydelta-partial", "version": 1, "size": SIZE, "mtime_ns": MTIME}
    (d / ".m.bin.pydelta-partial.json").write_text(json.dumps({**info, "have": have}))


def taking(dir_fd: int) -> UpdateResume:
    """A run that offers the partial file and has its offer accepted."""
    r = UpdateResume(dir_fd, "m.bin")
    offer = r.offer(SIZE, MTIME)
    assert offer is not None and offer["offset"] == resume.MIN_PREFIX * 2
    r.accepted({"resume": True, "digest": "ab" * 32})
    return r


def test_a_second_run_cannot_cut_or_swap_the_file_a_first_one_resumes_into(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"old")
    left_partial(tmp_path, resume.MIN_PREFIX * 2)
    dfd = os.open(tmp_path, os.O_RDONLY)
    try:
        a, b = taking(dfd), taking(dfd)  # both offered it: the worst order
        out = a.output(str(tmp_path / "m.bin"), fsync=False)
        out.write(b"n" * resume.MIN_PREFIX)  # A writes on after the prefix
        out.fh.flush()
        assert not (tmp_path / ".m.bin.pydelta-partial").exists()  # out of the name's reach
        with pytest.raises(PydeltaError, match="another run"):
            b.output(str(tmp_path / "m.bin"), fsync=False)
        assert os.fstat(out.fh.fileno()).st_size == resume.MIN_PREFIX * 3  # not cut
        b.drop()  # B's clean-up cannot reach it either
        assert os.fstat(out.fh.fileno()).st_nlink == 1
        out.abort(keep_as=str(tmp_path / ".m.bin.pydelta-partial"))  # A breaks off: kept
        assert (tmp_path / ".m.bin.pydelta-partial").stat().st_size == resume.MIN_PREFIX * 3
        a.close()
        b.close()
    finally:
        os.close(dfd)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.bin.pydelta-partial", "m.bin"]


def _leftover(d, name: str, have: int, size: int) -> None:
    (d / f".{name}.pydelta-partial").write_bytes(b"p" * have)
    info = {"format": "pydelta-partial", "version": 1, "size": size, "mtime_ns": 1, "have": have}
    (d / f".{name}.pydelta-partial.json").write_text(json.dumps(info))


def test_leftover_partials_go_with_the_next_sync_of_their_file_or_delete(tmp_path):
    """What a failed update leaves (a partial file and its sidecar) is kept
    only until the next sync of that file - which resumes from it or drops it
    - and a folder sync with delete removes those of files no longer sent."""
    from test_sync import Served

    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    data = os.urandom(300_000)
    (src / "a.bin").write_bytes(data)
    (dest / "a.bin").write_bytes(data[:1000] + b"x" * 1000 + data[2000:])
    (dest / "gone.bin").write_bytes(b"old")
    _leftover(dest, "a.bin", resume.MIN_PREFIX, 999)  # of another version of a.bin
    _leftover(dest, "gone.bin", resume.MIN_PREFIX, 5)  # of a file the source no longer has
    s = Served(str(tmp_path))
    try:
        r = s.client.push(str(src), str(dest), delete=True)
    finally:
        s.close()
    assert not r.failed
    assert sorted(os.listdir(dest)) == ["a.bin"]
    assert (dest / "a.bin").read_bytes() == data
