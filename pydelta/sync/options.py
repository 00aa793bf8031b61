"""The rsync-like options of one sync run (filters, links) and the steps they add.

Kept out of :mod:`.client` so the plan there stays readable: the client
calls :func:`listings` for the two filtered listings and :func:`sync_link`
for each symbolic link of the source.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import message
from .filters import Filter, make_filter
from .report import SyncedFile
from .wire import Failed

#: What an older far end (without the "links" feature) makes us say.
OLD_PEER = "the far end's pydelta is too old for symbolic links (-l/-L): skipped"


class RunOptions:
    """Filters and the link mode of a run (``links``: "skip", "keep" (-l) or
    "copy" (-L))."""

    def __init__(self, filter: Optional[Filter] = None, links: str = "skip") -> None:
        self.filter = Filter() if filter is None else filter
        self.links = links

    @classmethod
    def make(
        cls,
        exclude: Optional[Sequence[str]] = None,
        include: Optional[Sequence[str]] = None,
        links: bool = False,
        copy_links: bool = False,
        rules: Optional[Sequence[Tuple[str, str]]] = None,
    ) -> "RunOptions":
        """From the API's arguments (``copy_links`` wins over ``links``, as in rsync)."""
        mode = "copy" if copy_links else ("keep" if links else "skip")
        return cls(make_filter(exclude, include, rules), mode)


def listings(
    s_ep: Any,
    d_ep: Any,
    src: str,
    dest: str,
    dest_is_dir: bool,
    opts: RunOptions,
    linkable: bool,
) -> Tuple[List[Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """The source's entries and the destination's (by path), both filtered.

    ``linkable``: the far end speaks the "links" feature. Without it a
    remote walk cannot list links, and a pushed link cannot be made: those
    entries become skips saying so. An excluded entry at the destination is
    left out of its listing, so ``--delete`` does not remove it.
    """
    s_mode = opts.links if (linkable or not s_ep.remote) else "skip"
    entries = s_ep.walk(src, s_mode)
    if s_mode != "keep":  # links only when asked for (a peer may send them anyway)
        for e in entries:
            if e["type"] == "link":
                e.update(type="other", why="symbolic link (not followed)")
                e.pop("target", None)
    if opts.links != "skip" and not linkable:
        for e in entries:
            # a link we cannot make over there, or one the far end could not list
            unlisted = s_mode == "skip" and e.get("why", "").startswith("symbolic link")
            if e["type"] == "link" or (e["type"] == "other" and unlisted):
                e.update(type="other", why=OLD_PEER)
                e.pop("target", None)
    entries = opts.filter.apply(entries)
    have: Dict[str, Dict[str, Any]] = {}
    if dest_is_dir:
        d_mode = "keep" if (linkable or not d_ep.remote) else "skip"
        have = {e["path"]: e for e in opts.filter.apply(d_ep.walk(dest, d_mode))}
    return entries, have


def sync_link(
    d_ep: Any, dest: str, e: Dict[str, Any], have: Optional[Dict[str, Any]], dry_run: bool
) -> SyncedFile:
    """Make the link entry ``e`` at the destination; its line of the report."""
    rel, target = e["path"], e["target"]
    entry = SyncedFile(rel, "failed", kind="link", target=target)
    if have is not None and have.get("type") == "link" and have.get("target") == target:
        entry.action = "unchanged"
        return entry
    if dry_run:
        entry.action = "created" if have is None else "updated"
        entry.message = "dry run: would be made"
        return entry
    with Failed() as f:
        entry.action = d_ep.symlink(dest, rel, target)
    if f.error is not None:
        entry.action, entry.message = "failed", message(f.error)
    return entry


def got_stats(reply: Dict[str, Any], entry: SyncedFile) -> None:
    """The server's literal/matched bytes of a file it sent (feature "stats");
    values that are not sane integers are ignored."""
    lit, mat = reply.get("literal"), reply.get("matched")
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (lit, mat)):
        entry.literal, entry.matched = lit, mat
