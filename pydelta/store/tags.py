"""Tags and history: move a tag with a conditional write; compare two versions.

``tag(STORE, VERSION, TAG)`` reads the tag (its content and the store's
token for it: the ETag on S3), checks that VERSION is in the store, and
writes the new tag with a compare-and-swap (``If-Match`` on S3, a locked
compare on a local directory): if anyone moved the tag between our read and
our write, it fails with :class:`~pydelta.errors.TagConflictError` instead
of silently undoing their move. ``expect`` makes the condition span a
whole promotion script: the tag must still name that version. ``force``
writes unconditionally.

``diff(STORE, V1, V2)`` reads the two manifests and says which files were
added, removed, changed or kept, and how many bytes of V2 are in chunks V1
does not have (what a pull holding V1 downloads, before compression).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from ..errors import TagConflictError, UsageError, VersionNotFoundError
from ..formats import manifest as mf
from .base import OVERWRITE, SWAP
from .pull import read_manifest, resolve_version
from .stores import open_store, tag_key, version_key


@dataclass
class TagReport:
    """What ``tag`` did."""

    store: str
    tag: str
    version: str  #: the version the tag names now
    previous: Optional[str]  #: the version it named before (None: a new tag)

    def summary(self) -> str:
        """One line for people."""
        if self.previous == self.version:
            return f"tag {self.tag} already names version {self.version[:16]}"
        was = f" (was {self.previous[:16]})" if self.previous else " (new tag)"
        return f"tag {self.tag} -> version {self.version[:16]}{was}"


def _resolve(st, ref: str) -> str:
    """A version id from a version id, a unique prefix, or a tag name."""
    try:
        return resolve_version(st, None, ref)
    except (UsageError, VersionNotFoundError) as first:
        try:
            mf.check_tag_name(ref)
        except Exception:
            raise first from None
        try:
            return resolve_version(st, ref, None)
        except VersionNotFoundError:
            raise first from None


def tag(
    store: str,
    version: str,
    name: str,
    *,
    force: bool = False,
    expect: Optional[str] = None,
    endpoint_url: Optional[str] = None,
) -> TagReport:
    """Point tag ``name`` at ``version`` (an id, a unique prefix, or another tag).

    Args:
        store: the store's URL or path.
        version: the version to name.
        name: the tag to set or move.
        force: write even if the tag moved meanwhile (no condition).
        expect: only if the tag now names this version (id or prefix);
            ``""`` means only if the tag does not exist yet.
        endpoint_url: the S3 endpoint.

    Raises:
        TagConflictError: the tag moved (or is not ``expect``).

    Example:
        >>> import pydelta.store
        >>> pydelta.store.tag("s3://models/llama", "3f2a9c", "prod")  # doctest: +SKIP
    """
    mf.check_tag_name(name)
    with open_store(os.fspath(store), endpoint_url=endpoint_url) as st:
        vid = _resolve(st, version)
        if not st.exists(version_key(vid)):
            raise VersionNotFoundError(f"version {vid[:16]} is not in store {st.url}")
        data, token = st.get_token(tag_key(name))
        previous = mf.decode_tag(data, f"tag {name!r} in store {st.url}").version if data else None
        if expect is not None and not force:
            want = expect.strip().lower()
            if want == "":
                if previous is not None:
                    raise TagConflictError(f"tag {name!r} already exists (names {previous[:16]})")
            elif previous is None or not previous.startswith(mf.check_version_id(want)):
                now = previous[:16] if previous else "nothing"
                raise TagConflictError(f"tag {name!r} names {now}, not {want[:16]}: not moved")
        report = TagReport(st.url, name, vid, previous)
        if previous == vid:
            return report
        body = mf.encode_tag(mf.Tag(vid, time.time()))
        if force:
            st.put(tag_key(name), body, mode=OVERWRITE)
        else:
            st.put(tag_key(name), body, mode=SWAP, token=token)
        return report


def untag(store: str, name: str, *, endpoint_url: Optional[str] = None) -> str:
    """Remove a tag; returns the version it named."""
    mf.check_tag_name(name)
    with open_store(os.fspath(store), endpoint_url=endpoint_url) as st:
        data, _ = st.get_token(tag_key(name))
        if data is None:
            raise VersionNotFoundError(f"tag {name!r} is not in store {st.url}")
        vid = mf.decode_tag(data, f"tag {name!r} in store {st.url}").version
        st.delete(tag_key(name))
        return vid


# ---------------------------------------------------------------- diff


@dataclass
class FileChange:
    """One file that differs between two versions."""

    path: str
    old_size: Optional[int]  #: None: added
    new_size: Optional[int]  #: None: removed
    new_bytes: int = 0  #: bytes of the new file in chunks the old version lacks


@dataclass
class DiffReport:
    """How version ``new`` differs from version ``old``."""

    store: str
    old: str
    new: str
    added: List[FileChange] = field(default_factory=list)
    removed: List[FileChange] = field(default_factory=list)
    changed: List[FileChange] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    new_bytes: int = 0  #: bytes of ``new`` in chunks ``old`` does not have (each chunk once)
    new_stored: int = 0  #: the same chunks as stored (compressed): what a pull downloads
    new_chunks: int = 0
    old_total: int = 0
    new_total: int = 0

    def summary(self) -> str:
        """Lines for people: one per file that differs, then the totals."""
        lines = []
        for c in self.added:
            lines.append(f"added    {c.path}  ({c.new_size:,} bytes)")
        for c in self.removed:
            lines.append(f"removed  {c.path}  ({c.old_size:,} bytes)")
        for c in self.changed:
            lines.append(
                f"changed  {c.path}  ({c.old_size:,} -> {c.new_size:,} bytes, {c.new_bytes:,} new)"
            )
        pct = 100.0 * self.new_bytes / self.new_total if self.new_total else 0.0
        lines.append(
            f"{self.old[:16]} -> {self.new[:16]}: {len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {len(self.unchanged)} unchanged; "
            f"{self.new_bytes:,} bytes new ({pct:.1f}% of {self.new_total:,}; "
            f"{self.new_stored:,} stored, {self.new_chunks:,} chunks)"
        )
        return "\n".join(lines)


def diff_manifests(old: mf.Manifest, new: mf.Manifest) -> DiffReport:
    """Compare two manifests (no I/O)."""
    r = DiffReport("", "", "")
    have: Set[bytes] = {c.digest for f in old.files for c in f.chunks}
    before: Dict[str, mf.FileEntry] = {f.path: f for f in old.files}
    after: Dict[str, mf.FileEntry] = {f.path: f for f in new.files}
    if old.single_file and new.single_file and len(old.files) == len(new.files) == 1:
        before = {new.files[0].path: old.files[0]}  # one file: its name is not its identity
    r.old_total, r.new_total = old.total_size, new.total_size
    counted: Set[bytes] = set()
    for path, f in sorted(after.items()):
        fresh = 0
        for c in f.chunks:
            if c.digest in have:
                continue
            fresh += c.size
            if c.digest not in counted:
                counted.add(c.digest)
                r.new_bytes += c.size
                r.new_stored += c.stored
                r.new_chunks += 1
        o = before.get(path)
        if o is None:
            r.added.append(FileChange(path, None, f.size, fresh))
        elif o.digest == f.digest and o.size == f.size:
            r.unchanged.append(path)
        else:
            r.changed.append(FileChange(path, o.size, f.size, fresh))
    for path, o in sorted(before.items()):
        if path not in after:
            r.removed.append(FileChange(path, o.size, None))
    return r


def diff(store: str, old: str, new: str, *, endpoint_url: Optional[str] = None) -> DiffReport:
    """What changed from version ``old`` to version ``new`` (ids, prefixes or tags).

    Example:
        >>> import pydelta.store
        >>> print(pydelta.store.diff("s3://models/llama", "v1", "v2").summary())  # doctest: +SKIP
    """
    with open_store(os.fspath(store), endpoint_url=endpoint_url) as st:
        a, b = _resolve(st, old), _resolve(st, new)
        ma, _ = read_manifest(st, a)
        mb, _ = read_manifest(st, b)
        r = diff_manifests(ma, mb)
        r.store, r.old, r.new = st.url, a, b
        return r
