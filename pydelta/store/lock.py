"""One puller at a time per destination: an ``flock`` on a lock file beside DEST.

Many containers on one node often share one model directory (a host path or
a persistent volume) and start at the same moment. The first puller takes
an exclusive ``flock`` on ``.NAME.pydelta-lock`` beside DEST and does the
download; the others block on the lock, and when they get it they find the
record of the pull that just finished (``.pydelta-pull.json``) naming the
version they want, so they check sizes and times only (``quick``) and fetch
nothing.

The lock belongs to the open file description, so the kernel releases it
when its holder exits for any reason (a crash, ``kill -9``, an OOM kill):
a dead puller never blocks the rest, and what it fetched stays in its
partial files for the next holder to reuse. The lock file itself is never
removed (removing it would let two pullers hold locks on two different
files); it is empty and harmless.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from typing import Iterator, Optional

from ..errors import FileAccessError, PullTimeoutError

LOCK_SUFFIX = ".pydelta-lock"
#: how often a waiter with a deadline tries the lock again (seconds)
POLL = 0.05
POLL_MAX = 0.5


def lock_path(dest: str) -> str:
    """The lock file of a destination: ``.NAME.pydelta-lock`` beside it."""
    d, name = os.path.split(os.path.abspath(dest.rstrip("/" + os.sep) or dest))
    return os.path.join(d, f".{name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def dest_lock(dest: str, timeout: Optional[float] = None) -> Iterator[bool]:
    """Hold the exclusive lock of ``dest`` for the duration of the block.

    Yields True if another process held the lock when we asked for it (we
    waited for a pull to finish), else False.

    Args:
        dest: the pull's destination (file or folder; need not exist).
        timeout: seconds to wait at most (None: as long as it takes); then
            :class:`~pydelta.errors.PullTimeoutError`.
    """
    path = lock_path(dest)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        if e.errno == errno.EROFS:
            # a read-only filesystem: nobody can change DEST, so there is nothing to
            # serialise (a --quick check may still succeed; a real pull fails as it should)
            yield False
            return
        raise FileAccessError(f"cannot create the lock file {path}: {e.strerror or e}") from None
    try:
        waited = not _try(fd)
        if waited:
            _wait(fd, path, timeout)
        yield waited
    finally:
        os.close(fd)  # releases the lock


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise FileAccessError(f"cannot lock: {e.strerror or e}") from None


def _wait(fd: int, path: str, timeout: Optional[float]) -> None:
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    delay = POLL
    while not _try(fd):
        left = deadline - time.monotonic()
        if left <= 0:
            raise PullTimeoutError(
                f"gave up after {timeout:g} s waiting for another pull into the same place "
                f"(lock {path})"
            )
        time.sleep(min(delay, left))
        delay = min(delay * 2, POLL_MAX)
