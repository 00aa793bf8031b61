"""Overlap on the sending end: hash NEW while the far end signs its copy.

The sending end of one file has nothing to do between asking for the far
end's signature and receiving it - the far end is reading and hashing its
whole old copy meanwhile. The delta needs the whole-file BLAKE3 of NEW for
its end record, which the scan otherwise computes on a second thread while
it runs. :class:`PreHash` computes it in that idle time instead (reading
with ``pread``, so the file's position stays where the scan starts), and
the scan then only waits for it at the end of NEW (usually long done).

The digest is of the bytes read here; should NEW change between this read
and the scan's, the receiving end's check of the result against it fails and
nothing is replaced, as for any file that changes while it is sent.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, BinaryIO, Callable, Iterator, Optional

from .._threads import resolve_threads
from ..backends import backend

#: Bytes read per step.
STEP = 8 << 20
#: Bytes read at a time within a step (C backend): reads into a buffer this
#: small cost a fifth of the system time of 8 MiB ones (bench/reads_bench.py).
PIECE = 64 << 10


class PreHash:
    """The BLAKE3 of an open file from offset 0 to its end, on a thread.

    Args:
        fd: an open, readable file descriptor (not closed here).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = max(1, os.fstat(fd).st_size)
        self._done = 0  # bytes hashed so far
        self._digest: Optional[bytes] = None
        self._error: Optional[BaseException] = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pydelta-prehash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            hasher = backend.Blake3()
            in_c = getattr(backend, "blake3_update_fd", None)
            # in C: small pieces into a buffer that stays in the CPU cache
            buf = bytearray(PIECE if in_c is not None else STEP)
            view = memoryview(buf)
            off = 0
            while not self._stop:
                if in_c is not None:
                    n = in_c(hasher, buf, self._fd, off, STEP)
                else:
                    n = os.preadv(self._fd, [view], off)
                    hasher.update(view[:n])
                if not n:
                    self._digest = hasher.digest()
                    return
                off += n
                self._done = off
        except BaseException as e:  # handed to result()
            self._error = e

    def result(self) -> bytes:
        """The digest (waits for it); re-raises what went wrong reading."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._digest is None:
            raise RuntimeError("pre-hash stopped before the end of the file")
        return self._digest

    def take(self) -> Optional[Callable[[], bytes]]:
        """The digest to hand to the scan, when the signature has arrived: this
        one if it is at least half done, else None (stopped: the scan then
        hashes from its own buffer, which reads NEW no second time - what a
        signature from the far end's cache, there at once, makes the better way).
        Once stopped without a digest it stays None (a retried file's second
        take: the thread may have read on past half before it saw the stop)."""
        if self._digest is not None or (not self._stop and self._done * 2 >= self._size):
            return self.result
        self.close()
        return None

    def close(self) -> None:
        """Stop early (the file is not sent after all) and wait for the thread."""
        self._stop = True
        self._thread.join()


def prehash(fd: int, threads: int) -> Optional[PreHash]:
    """A :class:`PreHash` of fd when there is a second core to run it on, else None."""
    if threads < 2 or not hasattr(os, "preadv"):
        return None
    return PreHash(fd)


@contextlib.contextmanager
def prehashing(
    fh: BinaryIO, threads: Optional[int], known: Optional[bytes] = None
) -> Iterator[Callable[[], Any]]:
    """``with prehashing(fh, threads) as take:`` - hash the open file from its
    start while the block runs; once the signature is in, ``take()`` gives
    what to pass as the scan's ``digest`` (see :meth:`PreHash.take`; None
    with one thread). The thread is stopped when the block ends. ``known``:
    the file's digest, already computed (of this very file state): nothing
    is hashed, ``take()`` hands it over."""
    if known is not None:
        yield lambda: lambda: known
        return
    pre = prehash(fh.fileno(), resolve_threads(threads))
    try:
        yield pre.take if pre is not None else (lambda: None)
    finally:
        if pre is not None:
            pre.close()
