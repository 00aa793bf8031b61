"""Thread helpers: the kernels release the GIL, so plain threads scale.

Work is always split at positions that depend only on the data (whole
blocks), never on the number of threads, so output is the same for any
thread count.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

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
