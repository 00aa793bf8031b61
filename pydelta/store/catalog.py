"""ls: the versions and tags of a store.

One listing of ``versions/`` and ``tags/``, then per version only the
fixed-size manifest header (a ranged GET of its first bytes: files, bytes)
and per tag its small object - in parallel.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Tuple

from ..errors import CorruptStoreError, StoreNotFoundError
from ..formats import manifest as mf
from .report import StoreListing, VersionInfo
from .stores import CONFIG_KEY, TAGS, VERSIONS, open_store, tag_key, version_key


def ls(store: str, *, endpoint_url: Optional[str] = None, jobs: int = 8) -> StoreListing:
    """The versions (oldest first) and tags of a store.

    Example:
        >>> import pydelta
        >>> for v in pydelta.ls("s3://models/llama-7b").versions:  # doctest: +SKIP
        ...     print(v.version[:16], v.bytes, v.tags)
    """
    with open_store(os.fspath(store), endpoint_url=endpoint_url, jobs=jobs) as st:
        versions = [o for o in st.list(VERSIONS) if len(o.key) == len(VERSIONS) + 64]
        tags = [o.key[len(TAGS) :] for o in st.list(TAGS)]
        if not versions and not tags and st.get_token(CONFIG_KEY)[0] is None:
            raise StoreNotFoundError(f"{st.url} is not a pydelta store (no {CONFIG_KEY})")

        def head(o) -> VersionInfo:
            vid = o.key[len(VERSIONS) :]
            n = min(mf.MANIFEST_HEADER.size, o.size)
            data = st.get_range(version_key(vid), 0, n) if n else b""
            h = mf.decode_manifest_header(data, f"manifest of version {vid[:16]} in store {st.url}")
            return VersionInfo(vid, h.files, h.total_size, o.mtime)

        def tag(name: str) -> Tuple[str, Optional[mf.Tag]]:
            data, _ = st.get_token(tag_key(name))
            if data is None:
                return name, None  # removed meanwhile
            try:
                return name, mf.decode_tag(data, f"tag {name!r} in store {st.url}")
            except CorruptStoreError:
                return name, None

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            infos = list(pool.map(head, versions))
            named = list(pool.map(tag, tags))
        by_id: Dict[str, VersionInfo] = {v.version: v for v in infos}
        out_tags: Dict[str, str] = {}
        times: Dict[str, float] = {}
        for name, t in sorted(named):
            if t is None:
                continue
            out_tags[name] = t.version
            times[name] = t.time
            if t.version in by_id:
                by_id[t.version].tags.append(name)
        infos.sort(key=lambda v: (v.time, v.version))
        return StoreListing(st.url, infos, out_tags, times)
