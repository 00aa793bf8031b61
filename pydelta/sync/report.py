"""What a sync did, file by file: the report, and the progress it gives as it goes."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ..results import Frozen, Value


class SyncStatus(Frozen):
    """Where a sync is, as given to its progress callback.

    Attributes:
        path: the file being synced.
        file_done: bytes of it done.
        file_size: its size.
        done: bytes done over all files (those before this one count whole).
        total: bytes of all the source's files.
        phase: "signature" while the receiving end hashes its old copy
            (nothing moves yet: about a second per GiB), then "delta" while
            the file moves.
    """

    path: str
    file_done: int
    file_size: int
    done: int
    total: int
    phase: str
    _fields = ("path", "file_done", "file_size", "done", "total", "phase")

    def __init__(
        self,
        path: str,
        file_done: int,
        file_size: int,
        done: int,
        total: int,
        phase: str = "delta",
    ) -> None:
        vars(self).update(
            path=path,
            file_done=file_done,
            file_size=file_size,
            done=done,
            total=total,
            phase=phase,
        )


#: Progress callback, called with a :class:`SyncStatus` as files move.
SyncProgress = Optional[Callable[[SyncStatus], None]]


class SyncedFile(Value):
    """What happened to one entry of the source.

    Attributes:
        path: path relative to the synced folder (the file name for a single file).
        action: "created", "updated", "unchanged", "deleted", "skipped" or "failed".
        size: bytes of the file.
        sent: bytes this side sent for it.
        received: bytes this side received for it.
        message: why it was skipped or failed.
        kind: "file", "dir" (a directory made) or "link" (a symbolic link).
        target: a link's target.
        changes: what changed, in rsync's 11-character ``--itemize-changes``
            form (e.g. ``<f.st......``, see :mod:`.itemize`); "" when failed
            or skipped.
        literal: bytes of it sent as literal data (None: not known).
        matched: bytes of it rebuilt from the old copy (None: not known).
    """

    _fields = (
        "path",
        "action",
        "size",
        "sent",
        "received",
        "message",
        "kind",
        "target",
        "changes",
        "literal",
        "matched",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        path: str,
        action: str,
        size: int = 0,
        sent: int = 0,
        received: int = 0,
        message: str = "",
        kind: str = "file",
        target: str = "",
        changes: str = "",
        literal: Optional[int] = None,
        matched: Optional[int] = None,
    ) -> None:
        self.path = path
        self.action = action
        self.size = size
        self.sent = sent
        self.received = received
        self.message = message
        self.kind = kind
        self.target = target
        self.changes = changes
        self.literal = literal
        self.matched = matched


class SyncReport(Value):
    """The outcome of a sync: per file, and bytes on the wire against the files' size.

    Attributes:
        src: the source, as given.
        dest: the destination, as given.
        files: what happened to each entry.
        bytes_sent: bytes this side wrote to the connection.
        bytes_received: bytes this side read from it.
        total_size: bytes of the source's regular files.
        seconds: wall time.
        dry_run: nothing was changed: ``files`` says what would be done.
        source_counts: entries of the source considered (after
            --exclude/--include), by kind: "file", "dir", "link" (as for
            rsync --stats' "Number of files").
        bwlimit: bytes/s this side's writes were held to.
        bwlimit_seconds: seconds this side waited for the limit.
    """

    _fields = (
        "src",
        "dest",
        "files",
        "bytes_sent",
        "bytes_received",
        "total_size",
        "seconds",
        "dry_run",
        "source_counts",
        "bwlimit",
        "bwlimit_seconds",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        src: str,
        dest: str,
        files: Optional[List[SyncedFile]] = None,
        bytes_sent: int = 0,
        bytes_received: int = 0,
        total_size: int = 0,
        seconds: float = 0.0,
        dry_run: bool = False,
        source_counts: Optional[Dict[str, int]] = None,
        bwlimit: Optional[int] = None,
        bwlimit_seconds: float = 0.0,
    ) -> None:
        self.src = src
        self.dest = dest
        self.files: List[SyncedFile] = [] if files is None else files
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self.total_size = total_size
        self.seconds = seconds
        self.dry_run = dry_run
        self.source_counts: Dict[str, int] = {} if source_counts is None else source_counts
        self.bwlimit = bwlimit
        self.bwlimit_seconds = bwlimit_seconds

    def as_dict(self) -> Dict[str, Any]:
        """The fields by name, each file's as a dict too (for ``--json``)."""
        out = super().as_dict()
        out["files"] = [f.as_dict() for f in self.files]
        out["source_counts"] = dict(self.source_counts)
        return out

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
