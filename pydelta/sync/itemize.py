"""``-i/--itemize-changes`` and ``--stats``: what a sync changed, as rsync says it.

Each entry of a report gets an 11-character code ``YXcstpoguax`` in
rsync's form, followed on its line by a space and the path (a directory's
with a trailing '/', a link's with `` -> target``):

* ``Y``: ``<`` a file sent to the far end (push), ``>`` received from it
  (pull), ``c`` a directory or link made, ``.`` nothing transferred (only
  attributes changed, or nothing), ``*`` a message: ``*deleting`` fills the
  whole code;
* ``X``: ``f`` file, ``d`` directory, ``L`` symbolic link;
* then ``c`` the content (a link: its target) differs, ``s`` the size,
  ``t`` the modification time, ``p`` the permission bits; ``o g u a x``
  (owner, group, access time, ACL, xattrs) are always ``.``, as pydelta
  keeps none of them. ``+`` in every place for a new entry; an entry with
  nothing changed shows spaces (listed only with ``-ii``).

``--stats`` prints rsync's totals: the number of entries by kind, created,
deleted, regular files transferred, total and transferred size, literal
and matched data (the bytes of the files sent as literal data and rebuilt
from the old copies), the bytes on the wire and the speed-up.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

# (the report's classes are taken as they come: report.py imports this module)
SyncedFile = SyncReport = Any

_KIND = {"file": "f", "dir": "d", "link": "L"}
NEW = "+" * 9
SAME = " " * 9
DELETING = "*deleting  "


def _differs(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]], key: str) -> bool:
    if not a or not b:
        return False
    x, y = a.get(key), b.get(key)
    return x is not None and y is not None and x != y


def code(
    f: SyncedFile, push: bool, src: Optional[Dict[str, Any]], dst: Optional[Dict[str, Any]]
) -> str:
    """The 11-character code of one report entry ("" when failed or skipped).

    ``src`` and ``dst`` are the entry's listing entries on the sending and
    the receiving end (``dst`` None if it was missing).

    Example:
        >>> from pydelta.sync.report import SyncedFile
        >>> code(SyncedFile("a.bin", "created", 10), True, {"size": 10}, None)
        '<f+++++++++'
    """
    x = _KIND.get(f.kind, "f")
    if f.action == "deleted":
        return DELETING
    if f.action == "created" or (dst is not None and dst.get("type") not in (None, f.kind)):
        y = "c" if f.kind in ("dir", "link") else ("<" if push else ">")
        return y + x + NEW
    if f.action == "updated":
        if f.kind == "link":
            return "cLc" + "." * 8
        attrs = "c" + ("s" if _differs(src, dst, "size") else ".")
    elif f.action == "unchanged":
        attrs = ".."
    else:  # failed, skipped
        return ""
    quick = bool(f.message) and "quick check" in f.message
    t = "t" if not quick and _differs(src, dst, "mtime_ns") else "."
    p = "p" if not quick and _differs(src, dst, "mode") else "."
    attrs += t + p + "....."
    if f.action == "unchanged":
        if attrs == "." * 9:
            return "." + x + SAME
        return "." + x + attrs
    return ("<" if push else ">") + x + attrs


def annotate(
    report: SyncReport,
    src: Dict[str, Dict[str, Any]],
    dst: Dict[str, Dict[str, Any]],
    push: bool,
) -> None:
    """Give each entry of the report its code, and count the source's entries.

    ``src`` and ``dst`` map a report path (without a directory's '/') to the
    listing entry on the sending and the receiving end.
    """
    counts: Dict[str, int] = {}
    for e in src.values():
        kind = e.get("type")
        if kind in ("file", "dir", "link"):
            counts[kind] = counts.get(kind, 0) + 1
    report.source_counts = counts
    for f in report.files:
        key = f.path.rstrip("/") if f.kind == "dir" else f.path
        f.changes = code(f, push, src.get(key), dst.get(key))


def lines(report: SyncReport, all_entries: bool = False) -> List[str]:
    """The ``--itemize-changes`` lines of a report.

    Example:
        >>> from pydelta.sync.report import SyncReport, SyncedFile
        >>> r = SyncReport("a", "h:b", [SyncedFile("x", "created", 3, changes="<f+++++++++")])
        >>> lines(r)
        ['<f+++++++++ x']
    """
    out = [line(f, all_entries) for f in report.files]
    return [x for x in out if x]


def line(f: SyncedFile, all_entries: bool = False) -> Optional[str]:
    """One entry's ``--itemize-changes`` line, or None (not itemized, or
    nothing changed and not ``all_entries``)."""
    if not f.changes or (not all_entries and f.changes[2:] == SAME):
        return None
    path = f.path + ("/" if f.kind == "dir" and not f.path.endswith("/") else "")
    return f"{f.changes} {path}" + (f" -> {f.target}" if f.kind == "link" else "")


def _n(value: Optional[int]) -> str:
    return "unknown (the far end is older)" if value is None else f"{value:,} bytes"


def stats_text(report: SyncReport) -> str:
    """rsync-like ``--stats`` lines (without the closing summary)."""
    counts = report.source_counts
    total = sum(counts.values())
    kinds = ", ".join(
        f"{name}: {counts[k]:,}"
        for k, name in (("file", "reg"), ("dir", "dir"), ("link", "link"))
        if counts.get(k)
    )
    made: Dict[str, int] = {}
    for f in report.files:
        if f.action == "created":
            made[f.kind] = made.get(f.kind, 0) + 1
    made_kinds = ", ".join(
        f"{name}: {made[k]:,}"
        for k, name in (("file", "reg"), ("dir", "dir"), ("link", "link"))
        if made.get(k)
    )
    moved = [f for f in report.files if f.kind == "file" and f.action in ("created", "updated")]
    literal: Optional[int] = 0
    matched: Optional[int] = 0
    for f in moved if not report.dry_run else ():  # a dry run moves nothing
        if f.literal is None or f.matched is None or literal is None or matched is None:
            literal = matched = None
        else:
            literal += f.literal
            matched += f.matched
    lines = [
        f"Number of files: {total:,}" + (f" ({kinds})" if kinds else ""),
        f"Number of created files: {sum(made.values()):,}"
        + (f" ({made_kinds})" if made_kinds else ""),
        f"Number of deleted files: {report.count('deleted'):,}",
        f"Number of regular files transferred: {len(moved):,}",
        f"Total file size: {report.total_size:,} bytes",
        f"Total transferred file size: {sum(f.size for f in moved):,} bytes",
        f"Literal data: {_n(literal)}",
        f"Matched data: {_n(matched)}",
        f"Total bytes sent: {report.bytes_sent:,}",
        f"Total bytes received: {report.bytes_received:,}",
    ]
    if report.bwlimit:
        lines.append(
            f"Bandwidth limit: {report.bwlimit:,} bytes/sec "
            f"(waited {report.bwlimit_seconds:.2f} s for it)"
        )
    return "\n".join(lines)
