"""Nearby stores first: ``pull STORE DEST --near NEAR [--near NEAR2 ...]``.

A :class:`NearStore` reads through a list of stores - the ``--near`` ones in
the order given, then the origin STORE - and presents them to pull as one
read-only store:

* immutable objects (manifests ``versions/<id>``, packs and their indexes,
  relocation records) come from the first store that has them: a near
  store that answers "not found" (it lags behind the origin), is
  unreachable or refuses us is passed over, and one that is unreachable is
  not asked again during this pull;
* mutable objects (tags, the store marker) come from the origin - a mirror
  may lag - and from the near stores, in order, only when the origin cannot
  be reached or does not answer within :data:`ORIGIN_BUDGET` seconds. So with the origin down a pull still succeeds from a
  complete mirror, and with the origin up it gets the current tag and
  whatever the mirror lacks from the origin.

Everything read is verified by pull as from any single store (manifest id,
chunk and file BLAKE3), so a near store need not be trusted either.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterator, List, Optional, Sequence, TypeVar

from ..errors import ReadOnlyStoreError, StoreAccessError, StoreNotFoundError, StoreUnreachableError
from .base import Data, ObjectInfo, Store
from .stores import CONFIG_KEY, TAGS, open_store

T = TypeVar("T")

#: seconds the origin has to answer about a tag before the near stores are asked
ORIGIN_BUDGET = 5.0

#: failures that send a read on to the next store
_PASS_OVER = (StoreNotFoundError, StoreUnreachableError, StoreAccessError)


class _Slow(Exception):
    """The origin did not answer in time (it is not marked dead: packs a near
    store lacks are still asked of it)."""


_LISTING = "\0listing"  # the pseudo-key of listings (never an object's key)


def _mutable(key: str) -> bool:
    return key.startswith(TAGS) or key in (CONFIG_KEY, _LISTING)


class _Unavailable(Store):
    """An origin that could not even be opened (a directory not mounted):
    every read fails as unreachable, so the near stores serve the pull."""

    writable = False

    def __init__(self, url: str, why: Exception) -> None:
        self.url = url
        self.why = why

    def _fail(self) -> StoreUnreachableError:
        return StoreUnreachableError(f"store {self.url} is unavailable: {self.why}")

    def get(self, key: str) -> bytes:
        raise self._fail()

    def get_range(self, key: str, start: int, length: int) -> bytes:
        raise self._fail()

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        raise self._fail()

    def exists(self, key: str) -> bool:
        raise self._fail()

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        raise self._fail()


class NearStore(Store):
    """Read-through over near stores, then the origin (see the module doc)."""

    writable = False

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("NearStore needs at least the origin store")
        self.stores: List[Store] = list(stores)
        self.origin = self.stores[-1]
        self.url = self.origin.url
        self._dead: set = set()
        self._where: Dict[str, int] = {}  # key -> the store that had it
        self._lock = threading.Lock()
        #: bytes read from each store (by URL), for reports and tests
        self.read_bytes: Dict[str, int] = {s.url: 0 for s in self.stores}

    def _order(self, key: str) -> List[int]:
        n = len(self.stores)
        if _mutable(key):
            order = [n - 1] + list(range(n - 1))
        else:
            order = list(range(n))
            hit = self._where.get(key)
            if hit is not None:
                order.remove(hit)
                order.insert(0, hit)
        return [i for i in order if i not in self._dead]

    def _each(self, key: str, op: Callable[[Store], T]) -> T:
        last: Optional[Exception] = None
        order = self._order(key)
        if not order:
            order = [len(self.stores) - 1]  # everything failed before: try the origin once more
        origin = len(self.stores) - 1
        for i in order:
            st = self.stores[i]
            try:
                if i == origin and _mutable(key) and len(self.stores) > 1:
                    out = self._bounded(op, st, key)
                else:
                    out = op(st)
            except _Slow as e:
                last = StoreUnreachableError(str(e))
                continue
            except StoreUnreachableError as e:
                with self._lock:
                    self._dead.add(i)
                last = e
                continue
            except _PASS_OVER as e:
                # a not-found from a near store is expected (it lags); remember the origin's
                if (
                    last is None
                    or not isinstance(e, StoreNotFoundError)
                    or i == len(self.stores) - 1
                ):
                    last = e
                continue
            with self._lock:
                if not _mutable(key):
                    self._where[key] = i
                if isinstance(out, (bytes, bytearray)):
                    self.read_bytes[st.url] = self.read_bytes.get(st.url, 0) + len(out)
            return out
        assert last is not None
        raise last

    def _bounded(self, op: Callable[[Store], T], st: Store, key: str) -> T:
        """``op(st)``, unless it takes longer than ORIGIN_BUDGET: then _Slow (the
        near stores answer instead; a blackholed origin would otherwise cost
        every retry's connect timeout before the fallback)."""
        box: list = []

        def run() -> None:
            try:
                box.append((True, op(st)))
            except BaseException as e:  # handed to the caller
                box.append((False, e))

        t = threading.Thread(target=run, name="pydelta-origin", daemon=True)
        t.start()
        t.join(ORIGIN_BUDGET)
        if not box:
            raise _Slow(f"store {st.url} did not answer about {key} within {ORIGIN_BUDGET:g} s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    # -- reads

    def get(self, key: str) -> bytes:
        return self._each(key, lambda s: s.get(key))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        return self._each(key, lambda s: s.get_range(key, start, length))

    def get_token(self, key: str) -> "tuple[Optional[bytes], Optional[str]]":
        def op(s: Store) -> "tuple[Optional[bytes], Optional[str]]":
            data, token = s.get_token(key)
            if data is None:
                raise StoreNotFoundError(f"{key} is not in store {s.url}")
            return data, token

        try:
            return self._each(key, op)
        except StoreNotFoundError:
            return None, None

    def exists(self, key: str) -> bool:
        def op(s: Store) -> bool:
            if not s.exists(key):
                raise StoreNotFoundError(f"{key} is not in store {s.url}")
            return True

        try:
            return self._each(key, op)
        except StoreNotFoundError:
            return False

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        # a listing (a version prefix to resolve) is mutable: the origin first
        def op(s: Store) -> List[ObjectInfo]:
            try:
                return list(s.list(prefix))
            except ReadOnlyStoreError as e:  # HTTP cannot list
                raise StoreNotFoundError(str(e)) from None

        return iter(self._each(_LISTING, op))

    # -- writes: a pull never writes to its stores

    def put(
        self, key: str, data: Data, *, mode: str = "overwrite", token: Optional[str] = None
    ) -> bool:
        raise ReadOnlyStoreError(f"cannot write {key}: stores read through --near are read-only")

    def put_file(self, key: str, path: str) -> None:
        raise ReadOnlyStoreError(f"cannot write {key}: stores read through --near are read-only")

    def delete(self, key: str) -> None:
        raise ReadOnlyStoreError(f"cannot delete {key}: stores read through --near are read-only")

    def close(self) -> None:
        for s in self.stores:
            s.close()


def open_pull_store(
    store: str, near: Sequence[str] = (), *, endpoint_url: Optional[str] = None, jobs: int = 8
) -> Store:
    """The store a pull reads: STORE itself, or the near stores then STORE.

    A near store that does not exist (a local directory not mounted yet) is
    left out; an origin that does not exist counts as unreachable when near
    stores are given.
    """
    if not near:
        return open_store(store, endpoint_url=endpoint_url, jobs=jobs)

    def one(url: str) -> Store:
        ep = endpoint_url if str(url).startswith("s3://") else None
        return open_store(url, endpoint_url=ep, jobs=jobs)

    stores: List[Store] = []
    try:
        for url in near:
            try:
                stores.append(one(url))
            except StoreNotFoundError:
                continue
        try:
            stores.append(one(store))
        except StoreNotFoundError as e:
            if not stores:
                raise
            stores.append(_Unavailable(store, e))
    except BaseException:
        for s in stores:
            s.close()
        raise
    return NearStore(stores)
