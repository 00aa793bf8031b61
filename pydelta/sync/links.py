"""Symbolic links in a synced tree: ``-l/--links`` and ``-L/--copy-links``.

With ``links="keep"`` (``-l``) a symbolic link is recreated as a link, but
only a *safe* one: a relative target that, read from the link's directory,
never climbs above the root of the transfer (a Hugging Face hub cache's
``snapshots/<rev>/f -> ../../blobs/<sha>`` is safe when the whole repo
folder is synced). An absolute or escaping target is skipped and reported
by the sending end, and refused by the receiving end, which re-checks every
target it is asked to create (a peer is never trusted).

With ``links="copy"`` (``-L``) the sending end follows links and sends what
they point to as regular files and directories, as long as the target, once
resolved, is inside the tree; a dangling, escaping or looping link is
skipped and reported.

On the receiving end (:func:`.fs.make_link`) a link is created under a
temporary name in the directory opened without following links and renamed
over the target: an existing file or link there is replaced, never written
through, and a directory in the way is not touched.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

from ..errors import UsageError, os_reason

#: What a walk does with a symbolic link: report it as skipped ("skip", the
#: default and what an older peer does), list it as a link ("keep", -l), or
#: follow it ("copy", -L).
LINK_MODES = ("skip", "keep", "copy")

#: The longest link target accepted (Linux's PATH_MAX).
MAX_TARGET = 4096


def check_mode(mode: Optional[str]) -> str:
    """A link mode from a request or an argument (None: "skip")."""
    if mode is None:
        return "skip"
    if mode not in LINK_MODES:
        raise UsageError(f"unknown link mode {mode!r} (one of {', '.join(LINK_MODES)})")
    return mode


def unsafe_reason(rel: str, target: str) -> Optional[str]:
    """Why the link at ``rel`` (relative to the root) to ``target`` may not be
    recreated, or None if its target is relative and stays inside the tree.

    Lexical, as rsync's ``--safe-links``: from the link's directory, each
    '..' climbs one level and the path may never climb above the root. And
    every '..' comes before the first name: the kernel resolves a name that
    is itself a link before the '..' after it, so ``sub/up/..`` with
    ``sub/up -> ..`` would be the root's parent although, read as text, it
    stays inside. With '..' only in front, a link leads to a directory
    above it inside the tree, then down through names whose links (made
    under the same rule) lead inside the tree too.

    Example:
        >>> unsafe_reason("snapshots/main/model.bin", "../../blobs/ab12") is None
        True
        >>> unsafe_reason("snapshots/main/model.bin", "../../../etc/passwd")
        'its target leaves the tree'
    """
    if not isinstance(target, str) or not target:
        return "its target is empty"
    if "\0" in target or len(target.encode("utf-8", "surrogateescape")) > MAX_TARGET:
        return "its target is not a valid path"
    if target.startswith("/"):
        return "its target is an absolute path"
    depth = rel.count("/")  # directories between the root and the link
    named = False  # a name came before: a '..' now climbs out of what it resolves to
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if named:
                return "its target climbs back out of a name ('..' after it)"
            depth -= 1
            if depth < 0:
                return "its target leaves the tree"
        else:
            named = True
    return None


def followed_reason(root_real: str, path: str) -> Optional[str]:
    """Why the link at ``path`` is not followed by ``-L``, or None.

    ``root_real`` is the real path of the tree's root; the link's target,
    resolved, must exist and lie inside it.
    """
    try:
        target = os.readlink(path)
    except OSError as e:
        return f"cannot read the link: {os_reason(e)}"
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"symbolic link to {target}: a loop, not followed"
        return f"dangling symbolic link to {target}: not copied"
    real = os.path.realpath(path)
    if real != root_real and not real.startswith(root_real.rstrip("/") + "/"):
        return f"symbolic link to {target}: it leads outside the tree, not copied"
    return None


def link_entry(rel: str, path: str) -> dict:
    """The listing entry of the link at ``path`` for ``-l``: a link, or an
    "other" entry saying why it is skipped."""
    try:
        target = os.readlink(path)
    except OSError as e:
        return {"path": rel, "type": "other", "why": f"cannot read the link: {os_reason(e)}"}
    why = unsafe_reason(rel, target)
    if why is not None:
        return {
            "path": rel,
            "type": "other",
            "why": f"symbolic link to {target}: {why}, not copied",
        }
    return {"path": rel, "type": "link", "target": target}
