"""Thread helpers: the kernels release the GIL, so plain threads scale.

Work is always split at positions that depend only on the data (whole
blocks), never on the number of threads, so output is the same for any
thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

from ._io import fill
from .errors import UsageError


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
