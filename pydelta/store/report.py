"""What push, pull and ls return: plain dataclasses, and the progress event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


def _rate(nbytes: int, seconds: float) -> str:
    if seconds <= 0:
        return "-"
    mb = nbytes / seconds / 1e6
    return f"{mb:,.1f} MB/s"


@dataclass
class Progress:
    """One progress event, passed to a ``progress`` callback.

    ``phase`` is "scan" (chunking local files), "upload" (push) or "fetch"
    (pull: downloading and copying chunks). ``bytes_done`` of
    ``bytes_total`` is the work of that phase; ``transferred`` counts bytes
    sent to or received from the store so far, ``chunks`` chunks handled.
    """

    phase: str
    bytes_done: int
    bytes_total: int
    chunks: int = 0
    transferred: int = 0


@dataclass
class PushReport:
    """What a push did (or, with dry_run, would do)."""

    store: str
    version: str  #: the version id (hex BLAKE3 of its manifest)
    tag: Optional[str]  #: the tag now pointing at it (None: no tag moved)
    files: int
    bytes: int  #: bytes of all files of the version
    new_chunks: int  #: chunks the store did not hold
    new_bytes: int  #: their bytes before compression
    known_chunks: int  #: chunks already stored (or repeated in this version)
    uploaded_bytes: int  #: bytes written to the store (packs, indexes, manifest, tag)
    packs: int  #: pack objects written
    seconds: float
    dry_run: bool = False
    created: bool = True  #: False if the store already had this exact version
    skipped: List[str] = field(default_factory=list)  #: symlinks and special files

    def summary(self) -> str:
        """A few lines for people."""
        what = "would upload" if self.dry_run else "uploaded"
        head = (
            "dry run: nothing written"
            if self.dry_run
            else f"version {self.version[:16]}"
            + (f" (tag {self.tag})" if self.tag else "")
            + ("" if self.created else " (already in the store)")
        )
        lines = [
            head,
            f"{self.files} file{'s' if self.files != 1 else ''}, {self.bytes:,} bytes; "
            f"chunks: {self.new_chunks:,} new, {self.known_chunks:,} already stored",
        ]
        if self.dry_run:
            lines.append(f"{what} about {self.new_bytes:,} bytes (before compression)")
        else:
            lines.append(
                f"{what} {self.uploaded_bytes:,} bytes in {self.packs} pack"
                f"{'s' if self.packs != 1 else ''}, {self.seconds:.2f} s "
                f"({_rate(self.bytes, self.seconds)} of version data)"
            )
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} (symbolic links or special files)")
        return "\n".join(lines)


@dataclass
class PullReport:
    """What a pull did (or, with dry_run, would do)."""

    store: str
    dest: str
    version: str
    files: int  #: files in the version
    bytes: int  #: bytes of the version
    created: List[str] = field(default_factory=list)
    updated: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    deleted: List[str] = field(default_factory=list)
    downloaded_bytes: int = 0  #: bytes fetched from the store (manifest included)
    fetched_chunks: int = 0  #: chunks downloaded
    local_chunks: int = 0  #: chunks taken from DEST, seeds or a partial file
    requests: int = 0  #: GET requests made
    seconds: float = 0.0
    dry_run: bool = False
    quick: bool = False  #: answered from the last pull's record, nothing read

    def summary(self) -> str:
        """A few lines for people."""
        what = "would download" if self.dry_run else "downloaded"
        lines = [
            f"version {self.version[:16]}: {self.files} file{'s' if self.files != 1 else ''}, "
            f"{self.bytes:,} bytes",
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deleted)} deleted"
            + (" (quick check)" if self.quick else ""),
            f"{what} {self.downloaded_bytes:,} bytes ({self.fetched_chunks:,} chunks, "
            f"{self.requests} requests); {self.local_chunks:,} chunks from local files",
        ]
        if not self.dry_run:
            lines.append(
                f"{self.seconds:.2f} s ({_rate(self.bytes, self.seconds)} of version data)"
            )
        return "\n".join(lines)


@dataclass
class VersionInfo:
    """One version in a store listing."""

    version: str
    files: int
    bytes: int
    time: float  #: when the version was first stored (seconds since the epoch)
    tags: List[str] = field(default_factory=list)


@dataclass
class StoreListing:
    """The versions and tags of a store."""

    store: str
    versions: List[VersionInfo]  #: oldest first
    tags: Dict[str, str]  #: tag -> version id
    tag_times: Dict[str, float] = field(default_factory=dict)
