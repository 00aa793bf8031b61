"""pull: make a local file or folder exactly one version of a store.

1. Resolve the tag (or version prefix) to a version id; with ``quick``,
   stop right there if the record of the last pull says DEST is that
   version and every file still has the size and modification time it
   recorded.
2. Read the manifest and check it against its id (its BLAKE3).
3. Find what is already here: each target file is chunked (the same
   content-defined cut points as push) - if its digest matches, it is
   unchanged; otherwise its chunks, those of the other files in DEST and of
   the ``seeds``, become sources. A half-built file from an interrupted
   pull (``.NAME.pydelta-partial``) is checked in place, chunk by chunk,
   and reused as the file being built.
4. Build every changed file in its partial file beside the target: local
   chunks are copied (and re-verified), missing ones downloaded with ranged
   GETs grouped by pack, nearby ranges merged (at most
   :data:`~.pull_plan.MAX_REQUEST` bytes a request), ``jobs`` requests at a time. Every
   chunk is checked against its BLAKE3 before it is written.
5. Check each finished file's whole BLAKE3, then rename it over the target.
   Only then are files not in the version removed (``delete``), and the
   record of this pull written (``.pydelta-pull.json``).

Any failure leaves the targets as they were; the partial files keep the
verified chunks that arrived, so a rerun fetches only the rest.

Modules: this one resolves and reads the version and runs the steps;
:mod:`.pull_state` keeps the files beside DEST (partials, the record),
:mod:`.pull_plan` does step 3 and plans step 4 in windows of chunks,
:mod:`.pull_build` does steps 4 and 5.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import (
    CorruptStoreError,
    StoreNotFoundError,
    UsageError,
    VersionNotFoundError,
)
from ..formats import manifest as mf
from .base import Store
from .lock import dest_lock
from .near import open_pull_store
from .packs import blake3
from .pull_build import _Pull
from .pull_state import PARTIAL_SUFFIX, STATE_NAME, _quick_ok, partial_path, state_path
from .report import Progress, PullReport
from .stores import CONFIG_KEY, TAGS, VERSIONS, tag_key, version_key

__all__ = [
    "pull",
    "resolve_version",
    "read_manifest",
    "read_manifest_bytes",
    "list_tags",
    "partial_path",
    "state_path",
    "PARTIAL_SUFFIX",
    "STATE_NAME",
]

ProgressFn = Callable[[Progress], None]


# ---------------------------------------------------------------- resolving


def resolve_version(st: Store, tag: Optional[str], version: Optional[str]) -> str:
    """The full version id a tag or a version (prefix) names."""
    if version is not None:
        v = mf.check_version_id(version)
        if len(v) == 64:
            return v
        found = [o.key[len(VERSIONS) :] for o in st.list(VERSIONS + v)]
        found = [f for f in found if len(f) == 64]
        if len(found) == 1:
            return found[0]
        if not found:
            raise VersionNotFoundError(f"no version {v} in store {st.url}")
        raise UsageError(f"version prefix {v} is ambiguous in store {st.url}: give more digits")
    name = mf.check_tag_name(tag or "latest")
    data, _ = st.get_token(tag_key(name))
    if data is None:
        if st.get_token(CONFIG_KEY)[0] is None:
            raise StoreNotFoundError(
                f"{st.url} is not a pydelta store (no {CONFIG_KEY}): push to it first"
            )
        raise VersionNotFoundError(f"tag {name!r} is not in store {st.url}")
    return mf.decode_tag(data, f"tag {name!r} in store {st.url}").version


def read_manifest(st: Store, version: str) -> Tuple[mf.Manifest, int]:
    """(manifest, its size in bytes), checked against its id."""
    man, data = read_manifest_bytes(st, version)
    return man, len(data)


def read_manifest_bytes(st: Store, version: str) -> Tuple[mf.Manifest, bytes]:
    """(manifest, its bytes), checked against its id (mirror copies the bytes)."""
    try:
        data = st.get(version_key(version))
    except StoreNotFoundError:
        raise VersionNotFoundError(f"version {version[:16]} is not in store {st.url}") from None
    what = f"manifest of version {version[:16]} in store {st.url}"
    if blake3(data).hex() != version:
        raise CorruptStoreError(f"{what} is damaged or tampered with (its BLAKE3 is not its id)")
    return mf.decode_manifest(data, what), data


def pull(
    store: str,
    dest: "str | os.PathLike[str]",
    *,
    tag: Optional[str] = None,
    version: Optional[str] = None,
    seeds: Sequence["str | os.PathLike[str]"] = (),
    delete: bool = False,
    quick: bool = False,
    jobs: int = 8,
    dry_run: bool = False,
    endpoint_url: Optional[str] = None,
    progress: Optional[ProgressFn] = None,
    near: Sequence[str] = (),
    lock: bool = True,
    timeout: Optional[float] = None,
) -> PullReport:
    """Make DEST (a file or a folder) exactly one version of a store.

    Only chunks that neither DEST nor the seeds hold are downloaded. Every
    chunk and every file is verified (BLAKE3) before a file replaces its
    target; a failure leaves the targets as they were.

    Args:
        store: a local directory, ``file://`` URL or ``s3://bucket/prefix``.
        dest: the file or folder to update (created if missing).
        tag: the tag to pull (default ``latest``).
        version: a version id (or a unique prefix) instead of a tag.
        seeds: more local files or folders to take chunks from.
        delete: remove files in DEST that are not in the version.
        quick: trust the sizes and modification times recorded by the last
            pull into DEST (read no file data if they still match).
        jobs: parallel requests.
        dry_run: change nothing; report what would be downloaded.
        endpoint_url: the S3 endpoint (default: AWS config / environment).
        progress: called with a :class:`Progress` as the pull goes.
        near: stores to read before ``store`` (tried in order; see
            :mod:`pydelta.store.near`): the manifest and each pack come from
            the first that has them, tags from ``store`` unless it is
            unreachable.
        lock: hold the lock beside DEST (:mod:`pydelta.store.lock`) so
            concurrent pulls into one place download once; a pull that
            waited for another checks the record it left (``quick``) first.
        timeout: give up after this many seconds (waiting for the lock
            included) with PullTimeoutError; what arrived is kept.

    Returns:
        A :class:`PullReport`.

    Example:
        >>> import pydelta
        >>> r = pydelta.pull("s3://models/llama-7b", "/models/llama-7b", tag="v2")  # doctest: +SKIP
        >>> print(r.summary())  # doctest: +SKIP
    """
    t0 = time.monotonic()
    if tag is not None and version is not None:
        raise UsageError("give a tag or a version, not both")
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs must be a positive number, not {jobs!r}")
    dest = os.fspath(dest)
    deadline = None if timeout is None else t0 + timeout
    st = open_pull_store(
        os.fspath(store), [os.fspath(n) for n in near], endpoint_url=endpoint_url, jobs=jobs
    )
    with st, _locked(dest, lock and not dry_run, timeout) as waited:
        quick = quick or waited
        vid = resolve_version(st, tag, version)
        if quick:
            hit = _quick_ok(dest, vid, delete)
            if hit is not None:
                r = PullReport(st.url, dest, vid, len(hit[0]), hit[1], quick=True, dry_run=dry_run)
                r.unchanged = hit[0]
                r.seconds = time.monotonic() - t0
                return r
        man, man_size = read_manifest(st, vid)
        report = PullReport(st.url, dest, vid, len(man.files), man.total_size, dry_run=dry_run)
        report.downloaded_bytes = man_size
        report.requests = 2
        run = _Pull(st, man, dest, report, jobs, progress)
        run.deadline = deadline
        try:
            run.plan(seeds)
            if dry_run:
                run.estimate()
            else:
                run.execute(delete)
        finally:
            run.close()
        report.seconds = time.monotonic() - t0
        return report


def _locked(
    dest: str, enabled: bool, timeout: Optional[float]
) -> "contextlib.AbstractContextManager[bool]":
    """The destination's lock (yields True if we waited for another pull), or nothing."""
    return dest_lock(dest, timeout) if enabled else contextlib.nullcontext(False)


def list_tags(st: Store) -> List[str]:
    """Names of the tags in a store."""
    return sorted(o.key[len(TAGS) :] for o in st.list(TAGS))
