"""Opening a store from its URL, and the store's layout of keys.

Layout of a store (docs/FORMAT.md, "Model store")::

    pydelta-store.json        format marker and the chunker's sizes
    packs/<id>.pack           chunk payloads (id: BLAKE3 of the object)
    packs/<id>.idx            the pack's index, written after the pack
    versions/<id>             a version's manifest (id: BLAKE3 of it)
    tags/<name>               a tag: which version it names

The chunk sizes are fixed per store by its marker (written by the first
push), so every push cuts files the same way and finds the chunks earlier
pushes stored.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

from ..errors import CorruptStoreError, UsageError
from .base import CREATE, Store
from .chunker import DEFAULT_PARAMS, ChunkParams, check_params

CONFIG_KEY = "pydelta-store.json"
CONFIG_FORMAT = "pydelta-store"
CONFIG_VERSION = 1
VERSIONS = "versions/"
TAGS = "tags/"
PACKS = "packs/"


def version_key(version: str) -> str:
    """The key of a version's manifest."""
    return VERSIONS + version


def tag_key(tag: str) -> str:
    """The key of a tag."""
    return TAGS + tag


def open_store(
    url: str, *, endpoint_url: Optional[str] = None, jobs: int = 8, create: bool = False
) -> Store:
    """The store a URL names: ``s3://bucket/prefix``, ``file:///path``, a path, or
    ``http(s)://host/path`` (read-only).

    ``create`` makes a missing local directory (push); S3 buckets are never
    created.
    """
    if not isinstance(url, (str, os.PathLike)):
        raise UsageError(f"a store is a URL or a path, not {type(url).__name__}")
    url = os.fspath(url)
    if url.startswith("s3://"):
        from .s3 import S3Store

        return S3Store(url, endpoint_url=endpoint_url, jobs=jobs)
    if url.startswith(("http://", "https://")):
        from .http import HttpStore  # read-only (issue 12)

        return HttpStore(url)
    if "://" in url and not url.startswith("file://"):
        scheme = url.split("://", 1)[0]
        raise UsageError(
            f"unsupported store URL scheme {scheme!r} in {url}: "
            "use a path, file://, s3:// or http(s)://"
        )
    if endpoint_url:
        raise UsageError("--endpoint-url applies to s3:// stores only")
    from .local import LocalStore

    return LocalStore(url, create=create)


def read_config(store: Store) -> Optional[ChunkParams]:
    """The chunk sizes the store was created with, or None for an empty store."""
    raw, _ = store.get_token(CONFIG_KEY)
    if raw is None:
        return None
    try:
        doc = json.loads(raw.decode("utf-8"))
        if doc.get("format") != CONFIG_FORMAT:
            raise ValueError
        if doc.get("format_version") != CONFIG_VERSION:
            raise CorruptStoreError(
                f"store {store.url} has format version {doc.get('format_version')!r}: upgrade pydelta"
            )
        lo, avg, hi = (int(v) for v in doc["chunker"])
        return check_params(ChunkParams(lo, avg, hi))
    except CorruptStoreError:
        raise
    except (ValueError, KeyError, TypeError, UsageError, RecursionError):
        raise CorruptStoreError(
            f"{CONFIG_KEY} in store {store.url} is not a pydelta store marker"
        ) from None


def ensure_config(store: Store, params: Optional[ChunkParams]) -> Tuple[ChunkParams, bool]:
    """The store's chunk sizes, writing the marker first if the store is new.

    ``params`` (the caller's wish) must agree with an existing store's.
    Returns (sizes, marker written now).
    """
    have = read_config(store)
    if have is not None:
        if params is not None and params != have:
            raise UsageError(
                f"store {store.url} chunks with sizes {have.as_tuple()}, not {params.as_tuple()}"
            )
        return have, False
    want = check_params(params or DEFAULT_PARAMS)
    doc = {
        "format": CONFIG_FORMAT,
        "format_version": CONFIG_VERSION,
        "chunker": list(want.as_tuple()),
    }
    if not store.put(CONFIG_KEY, (json.dumps(doc, sort_keys=True) + "\n").encode(), mode=CREATE):
        return ensure_config(store, params)  # another push created it meanwhile
    return want, True
