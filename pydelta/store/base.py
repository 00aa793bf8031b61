"""The one small interface every model store implements, and retries.

A store is a flat namespace of immutable-once-written objects addressed by
keys such as ``packs/<id>.pack``. Push and pull need only these operations:

* ``get(key)`` and ``get_range(key, start, length)`` (one byte range; the
  caller merges nearby ranges itself, since S3 has no multi-range GET);
* ``put(key, data, mode=...)`` with three modes: overwrite, create-only
  (``If-None-Match: *``) and compare-and-swap (SWAP) on a token from
  :meth:`Store.get_token` (``If-Match: <etag>``), used for tags;
* ``put_file(key, path)``, which may move the file (local store) or stream
  it (S3) - packs are spooled to disk, so memory stays small;
* ``list(prefix)`` and ``delete(key)``.

Issue 12 adds read-only stores (plain HTTP) and mirrors: a read-only store
implements ``get``/``get_range``/``head`` and raises on writes; a pull needs
nothing else (tag, manifest, ranges - no listing).

:func:`retry` wraps one operation with exponential backoff and jitter for
the failures worth retrying (5xx, throttling, dropped connections,
truncated bodies): :class:`Transient` from the store implementations.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TypeVar, Union

from ..errors import StoreUnreachableError

T = TypeVar("T")

Data = Union[bytes, bytearray, memoryview]

#: put() modes
OVERWRITE = "overwrite"
CREATE = "create"  #: fail with False if the key exists
SWAP = "swap"  #: compare-and-swap: the object must still have ``token``
#: retries after the first attempt, and the first backoff delay (seconds)
RETRIES = 5
BACKOFF = 0.2
BACKOFF_MAX = 5.0


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object."""

    key: str  #: the key relative to the store's root
    size: int
    mtime: float  #: last modification (seconds since the epoch)


class Transient(Exception):
    """A failure worth retrying (raised by store implementations)."""


class Store:
    """A model store: a local directory, an S3 prefix, ... (see module doc)."""

    #: the URL the user gave (for messages)
    url: str = ""
    #: conditional writes (create-only, compare-and-swap) are atomic here
    conditional: bool = False
    #: the store accepts writes
    writable: bool = True

    def get(self, key: str) -> bytes:
        """The whole object; :class:`~pydelta.errors.StoreNotFoundError` if absent."""
        raise NotImplementedError

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes at ``start`` (exactly that many, or an error)."""
        raise NotImplementedError

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        """(content, token) of an object, (None, None) if it does not exist.

        The token is what :meth:`put` with ``if_match`` compares against.
        """
        raise NotImplementedError

    def put(
        self, key: str, data: Data, *, mode: str = OVERWRITE, token: Optional[str] = None
    ) -> bool:
        """Write an object. ``mode=CREATE`` returns False if it already exists;
        ``mode=SWAP`` writes only if the object still has ``token`` (from
        get_token; None: it must not exist), else raises
        :class:`~pydelta.errors.TagConflictError`."""
        raise NotImplementedError

    def put_file(self, key: str, path: str) -> None:
        """Store the file at ``path`` as ``key``; the file may be moved or removed."""
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (any order)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        """True if the object exists."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object (no error if it is absent)."""
        raise NotImplementedError

    def spool_dir(self) -> Optional[str]:
        """A directory where pack files can be built so put_file can move them
        (None: the system's temporary directory)."""
        return None

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def retry(
    op: Callable[[], T],
    what: str,
    url: str,
    retries: int = RETRIES,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``op``; on :class:`Transient` wait (exponential backoff with full
    jitter) and try again, up to ``retries`` more times, then raise
    :class:`~pydelta.errors.StoreUnreachableError` naming ``what``."""
    delay = BACKOFF
    for attempt in range(retries + 1):
        try:
            return op()
        except Transient as e:
            if attempt == retries:
                raise StoreUnreachableError(
                    f"{what} failed after {retries + 1} attempts: {e} ({url})"
                ) from None
            sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, BACKOFF_MAX)
    raise AssertionError("unreachable")  # pragma: no cover


class EmptyStore(Store):
    """A store that holds nothing and accepts no writes (a dry run's stand-in
    for a store that does not exist yet)."""

    writable = False

    def __init__(self, url: str) -> None:
        self.url = url

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        return None, None

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        return iter(())

    def exists(self, key: str) -> bool:
        return False
