"""What a sync did, file by file: the report, and the progress it gives as it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional


@dataclass(frozen=True)
class SyncStatus:
    """Where a sync is, as given to its progress callback."""

    path: str  #: the file being synced
    file_done: int  #: bytes of it done
    file_size: int  #: its size
    done: int  #: bytes done over all files (those before this one count whole)
    total: int  #: bytes of all the source's files
    #: "signature" while the receiving end hashes its old copy (nothing moves
    #: yet: about a second per GiB), then "delta" while the file moves
    phase: str = "delta"


#: Progress callback, called with a :class:`SyncStatus` as files move.
SyncProgress = Optional[Callable[[SyncStatus], None]]


@dataclass
class SyncedFile:
    """What happened to one entry of the source."""

    path: str  #: path relative to the synced folder (the file name for a single file)
    #: "created", "updated", "unchanged", "deleted", "skipped" or "failed"
    action: str
    size: int = 0  #: bytes of the file
    sent: int = 0  #: bytes this side sent for it
    received: int = 0  #: bytes this side received for it
    message: str = ""  #: why it was skipped or failed
    kind: str = "file"  #: "file", "dir" (a directory made) or "link" (a symbolic link)
    target: str = ""  #: a link's target
    #: what changed, in rsync's 11-character ``--itemize-changes`` form
    #: (e.g. ``<f.st......``, see :mod:`.itemize`); "" when failed or skipped
    changes: str = ""
    literal: Optional[int] = None  #: bytes of it sent as literal data (None: not known)
    matched: Optional[int] = None  #: bytes of it rebuilt from the old copy (None: not known)


@dataclass
class SyncReport:
    """The outcome of a sync: per file, and bytes on the wire against the files' size."""

    src: str
    dest: str
    files: List[SyncedFile] = field(default_factory=list)
    bytes_sent: int = 0  #: bytes this side wrote to the connection
    bytes_received: int = 0  #: bytes this side read from it
    total_size: int = 0  #: bytes of the source's regular files
    seconds: float = 0.0  #: wall time
    dry_run: bool = False  #: nothing was changed: ``files`` says what would be done
    #: entries of the source considered (after --exclude/--include), by kind:
    #: "file", "dir", "link" (as for rsync --stats' "Number of files")
    source_counts: Dict[str, int] = field(default_factory=dict)
    bwlimit: Optional[int] = None  #: bytes/s this side's writes were held to
    bwlimit_seconds: float = 0.0  #: seconds this side waited for the limit

    def count(self, action: str) -> int:
        """Entries with this action (directories made do not count as files)."""
        return sum(
            1
            for f in self.files
            if f.action == action and not (f.kind == "dir" and action == "created")
        )

    def itemized(self, all_entries: bool = False) -> List[str]:
        """``--itemize-changes`` lines: what changed, then the path (see :mod:`.itemize`).

        Only entries that changed, unless ``all_entries``.
        """
        from .itemize import lines

        return lines(self, all_entries)

    def stats(self) -> str:
        """``--stats``: rsync-like totals (see :mod:`.itemize`)."""
        from .itemize import stats_text

        return stats_text(self)

    @property
    def failed(self) -> List[SyncedFile]:
        return [f for f in self.files if f.action == "failed"]

    @property
    def wire_bytes(self) -> int:
        """Bytes sent plus received."""
        return self.bytes_sent + self.bytes_received

    @property
    def speedup(self) -> float:
        """Size of the files over the bytes on the wire (like rsync's)."""
        return self.total_size / max(1, self.wire_bytes)

    def summary(self) -> str:
        """rsync-style closing lines."""
        parts = [f"{self.count(a)} {a}" for a in ("created", "updated", "unchanged", "deleted")]
        for a in ("skipped", "failed"):
            if self.count(a):
                parts.append(f"{self.count(a)} {a}")
        nfiles = sum(
            1
            for f in self.files
            if f.action not in ("deleted", "skipped")
            and not (f.kind == "dir" and f.action == "created")
        )
        rate = self.wire_bytes / self.seconds if self.seconds > 0 else 0.0
        return (
            ("dry run, nothing changed - would be: " if self.dry_run else "")
            + f"{nfiles} file{'s' if nfiles != 1 else ''}: {', '.join(parts)}\n"
            f"sent {self.bytes_sent:,} bytes  received {self.bytes_received:,} bytes  "
            f"{rate:,.2f} bytes/sec\n"
            f"total size is {self.total_size:,}"
            # a dry run moves no data: no speed-up to speak of (rsync -n says "(DRY RUN)")
             + ("" if self.dry_run else f"  speedup is {self.speedup:,.2f}")
        )

    def __str__(self) -> str:
        return self.summary()


QUICK = "same size and modification time (quick check)"


def planned(
    rel: str, src: Dict[str, Any], dst: Optional[Dict[str, Any]], quick: bool
) -> SyncedFile:
    """What a dry run says would happen to one file."""
    size = src.get("size", 0)
    if dst is None:
        return SyncedFile(rel, "created", size, message="dry run: would be sent whole")
    if dst.get("type") != "file":
        what = "a directory" if dst.get("type") == "dir" else "something other than a file"
        return SyncedFile(rel, "failed", size, message=f"dry run: {what} is in the way")
    if quick and same_size_and_time(src, dst):
        return SyncedFile(rel, "unchanged", size, message=QUICK)
    return SyncedFile(
        rel,
        "updated",
        size,
        message="dry run: would be compared by content and updated if it differs",
    )


def same_size_and_time(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    """The quick check: both regular files of the same size and modification time."""
    return bool(
        a
        and b
        and a.get("type") == b.get("type") == "file"
        and a.get("size") == b.get("size")
        and a.get("mtime_ns") == b.get("mtime_ns")
    )
