"""Thread helpers: the kernels release the GIL, so plain threads scale.

Work is always split at positions that depend only on the data (whole
blocks), never on the number of threads, so output is the same for any
thread count.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Deque, Iterator, Optional, Tuple

from ._io import fill
from .errors import UsageError

#: A kernel over a file range: ``(buf, fd, offset, length) -> (entries,
#: bytes read)``, reading with pread into ``buf`` (one per thread) in
#: pieces of ``len(buf)`` bytes; fewer bytes than ``length`` only at EOF.
FileKernel = Callable[[bytearray, int, int, int], Tuple[bytes, int]]

#: Target size of a thread's read buffer when hashing a regular file: reads
#: this small land in cache that the hashing then finds hot (bench/reads_bench.py).
PIECE = 64 << 10
#: Bytes of the file a thread takes at a time (whole blocks).
FILE_PART = 2 << 20


def resolve_threads(threads: Optional[int]) -> int:
    """The thread count to use: ``None`` or 0 means all cores."""
    if threads is None or threads == 0:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
        raise UsageError(f"threads must be a non-negative integer, not {threads!r}")
    return threads


def pool(threads: int) -> Optional[ThreadPoolExecutor]:
    """An executor for threads > 1, else None (run inline)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="pydelta") if threads > 1 else None


def hash_blocks(
    fh: BinaryIO,
    name: str,
    block_len: int,
    read_size: int,
    threads: int,
    kernel: Callable[[memoryview, int], bytes],
) -> Iterator[Tuple[bytes, int]]:
    """Yield (entries, bytes read) per chunk of fh, hashed block by block.

    Two buffers: the next chunk is read while this one is hashed, split
    into whole-block parts across the threads (so the entries do not
    depend on the thread count). ``kernel(view, length)`` returns the
    entries of view[:length].
    """
    chunk = max(block_len, read_size // block_len * block_len)
    bufs = [bytearray(chunk), bytearray(chunk)]
    executor = pool(threads)
    try:
        n = fill(fh, bufs[0], name)
        cur = 0
        while n:
            view = memoryview(bufs[cur])
            blocks = -(-n // block_len)
            per = -(-blocks // threads) * block_len
            futures = None
            if executor is not None and blocks > 1:
                futures = [
                    executor.submit(kernel, view[a:], min(per, n - a)) for a in range(0, n, per)
                ]
            nxt = fill(fh, bufs[1 - cur], name) if n == chunk else 0
            if futures is not None:
                entries = b"".join(f.result() for f in futures)
            else:
                entries = kernel(view, n)
            yield entries, n
            n, cur = nxt, 1 - cur
    finally:
        if executor is not None:
            executor.shutdown(wait=True)


def file_range(fh: BinaryIO) -> Optional[Tuple[int, int]]:
    """(descriptor, position) when fh reads a regular file directly, else None.

    Only plain files qualify (``io.FileIO``, or a buffered reader over
    one): a wrapper that decodes (gzip, ...) has a descriptor whose bytes
    are not the ones it reads. Pipes and other non-regular files are None.
    """
    raw = fh.raw if isinstance(fh, (io.BufferedReader, io.BufferedRandom)) else fh
    if not isinstance(raw, io.FileIO) or "r" not in raw.mode and "+" not in raw.mode:
        return None
    try:
        fd = raw.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return fd, fh.tell()
    except (OSError, ValueError):
        return None


def hash_file_blocks(
    fh: BinaryIO,
    where: Tuple[int, int],
    block_len: int,
    threads: int,
    kernel: FileKernel,
    min_blocks: int = 1,
) -> Iterator[Tuple[bytes, int]]:
    """Yield (entries, bytes read) per part of a regular file, as :func:`hash_blocks`.

    The file is cut into parts of whole blocks (about FILE_PART bytes); the
    threads take the parts as they come free, a few ahead of the one being
    yielded, so a thread the machine holds back does not stall the others.
    A thread reads its part in pieces into its own small buffer and hashes
    each piece at once (``kernel``); a piece holds at least ``min_blocks``
    blocks (a kernel that hashes several blocks side by side wants them).
    The entries are those of the whole
    blocks, so the same for any thread count. The file is read to its end
    as it is then (a part coming up short ends it); fh is left positioned
    after the bytes hashed.
    """
    fd, start = where
    piece = max(min_blocks, PIECE // block_len) * block_len
    part = max(piece, FILE_PART // piece * piece)
    local = threading.local()

    def run(offset: int) -> Tuple[bytes, int]:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(piece)
        return kernel(buf, fd, offset, part)

    pos = start
    executor = pool(threads)
    try:
        if executor is None:
            while True:
                entries, n = run(pos)
                pos += n
                if n:
                    yield entries, n
                if n < part:
                    return
        ahead: Deque[Future] = deque()
        queued = start
        while True:
            while len(ahead) < 4 * threads:
                ahead.append(executor.submit(run, queued))
                queued += part
            entries, n = ahead.popleft().result()
            pos += n
            if n:
                yield entries, n
            if n < part:
                return  # end of file: a later part read after a growth is not ours
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        try:
            fh.seek(pos)
        except (OSError, ValueError):
            pass
