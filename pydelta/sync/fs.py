"""The file system operations both ends of a sync share.

Paths inside a tree travel as '/'-separated relative paths. :func:`resolve`
refuses absolute paths, '.' and '..' components, and any existing symbolic
link on the way, so nothing is written outside the tree and no link is
followed out of it - whichever end sent the path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from ..errors import FileAccessError, UsageError, os_reason
from .links import check_mode, followed_reason, link_entry, unsafe_reason

#: With links followed (-L), how many times one folder may be walked through
#: links: a few links to one folder are copies of it, but a ladder of folders
#: each linking twice to the next one would list 2^depth paths.
MAX_FOLLOWED_COPIES = 16


def expand(path: str) -> str:
    return os.path.expanduser(path) if path else "."


def describe_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "not a regular file or directory"


def stat_entry(path: str) -> Dict[str, Any]:
    """What a top-level path is (symlinks followed: the user named it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"type": "missing"}
    except NotADirectoryError:
        return {"type": "missing"}
    except OSError as e:
        raise FileAccessError(f"cannot access {path}: {os_reason(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir"}
    if stat.S_ISREG(st.st_mode):
        return {
            "type": "file",
            "size": st.st_size,
            "mode": stat.S_IMODE(st.st_mode),
            "mtime_ns": st.st_mtime_ns,
        }
    return {"type": "other", "why": describe_mode(st.st_mode)}


def _file_entry(rel: str, st: os.stat_result) -> Dict[str, Any]:
    return {
        "path": rel,
        "type": "file",
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
        "mtime_ns": st.st_mtime_ns,
    }


def walk(root: str, links: str = "skip") -> List[Dict[str, Any]]:
    """Every entry under root, parents before children.

    Symbolic links are not followed: they are listed as skipped ("other"),
    or with ``links="keep"`` as links (if safe, see :mod:`.links`), or with
    ``links="copy"`` replaced by what they point to when that is inside the
    tree (a linked directory is walked as a directory, loops refused).
    """
    links = check_mode(links)
    out: List[Dict[str, Any]] = []
    root_real = os.path.realpath(root) if links == "copy" else ""
    # (prefix of the paths below it, its path, the real paths of it and its
    # ancestors when links are followed: a link back to one of them is a loop)
    stack: List[Tuple[str, str, Tuple[str, ...]]] = [("", root, (root_real,))]
    copies: Dict[str, int] = {}  # real path of a folder reached through a link: times walked
    while stack:
        prefix, dirpath, seen = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            out.append(
                {
                    "path": prefix.rstrip("/") or ".",
                    "type": "other",
                    "why": f"cannot list it: {os_reason(e)}",
                }
            )
            continue
        subdirs = []
        for e in children:
            rel = prefix + e.name
            try:
                st = e.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode) and links == "keep":
                    out.append(link_entry(rel, e.path))
                    continue
                if stat.S_ISLNK(st.st_mode) and links == "copy":
                    why = followed_reason(root_real, e.path)
                    if why is None:
                        real = os.path.realpath(e.path)
                        if real in seen:
                            why = f"symbolic link to {os.readlink(e.path)}: a loop, not followed"
                        elif os.path.isdir(real):
                            copies[real] = copies.get(real, 0) + 1
                            if copies[real] > MAX_FOLLOWED_COPIES:
                                why = (
                                    f"symbolic link to {os.readlink(e.path)}: that folder is "
                                    f"copied {MAX_FOLLOWED_COPIES} times already, not again"
                                )
                    if why is not None:
                        out.append({"path": rel, "type": "other", "why": why})
                        continue
                    st = os.stat(e.path)
            except OSError as ex:
                out.append(
                    {"path": rel, "type": "other", "why": f"cannot stat it: {os_reason(ex)}"}
                )
                continue
            if stat.S_ISDIR(st.st_mode):
                out.append({"path": rel, "type": "dir"})
                inner = seen + (os.path.realpath(e.path),) if links == "copy" else seen
                subdirs.append((rel + "/", e.path, inner))
            elif stat.S_ISREG(st.st_mode):
                out.append(_file_entry(rel, st))
            else:
                out.append({"path": rel, "type": "other", "why": describe_mode(st.st_mode)})
        stack.extend(reversed(subdirs))
    return out


def _parts(rel: Any) -> List[str]:
    """The components of a '/'-separated path inside a tree (no '', '.', '..')."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        raise UsageError(f"refusing path {rel!r}: not a relative path inside the tree")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"refusing path {rel!r}: not a relative path inside the tree")
    return parts


def resolve_followed(root: str, rel: Any) -> str:
    """root/rel for reading with ``-L``: links on the way may be followed, but
    the path, resolved, must stay inside the tree's real path."""
    path = os.path.join(root, *_parts(rel))
    base = os.path.realpath(root)
    real = os.path.realpath(path)
    if real != base and not real.startswith(base.rstrip("/") + "/"):
        raise FileAccessError(f"{path} leads outside the tree: not followed")
    return path


def resolve(root: str, rel: Any) -> str:
    """root/rel, refusing anything that could leave the tree."""
    parts = _parts(rel)
    cur = root
    for p in parts[:-1]:
        cur = os.path.join(cur, p)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            break
        except OSError as e:
            raise FileAccessError(f"cannot access {cur}: {os_reason(e)}") from None
        if stat.S_ISLNK(st.st_mode):
            raise FileAccessError(f"{cur} is a symbolic link: not followed")
        if not stat.S_ISDIR(st.st_mode):
            raise FileAccessError(f"{cur} is not a directory")
    return os.path.join(root, *parts)


_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_parent(root: str, rel: Any) -> Tuple[int, str]:
    """Open the directory that holds root/rel without following any link.

    Returns (descriptor of that directory, the last component of rel). The
    root itself is opened as named (the user named it; a link there is
    followed); every component below it is opened relative to the one
    before with O_NOFOLLOW, so a directory swapped for a symbolic link,
    before or after this call, cannot lead outside the tree: what is done
    through the descriptor stays in the directory that was checked.
    """
    resolve(root, rel)  # the same refusals and messages for bad paths
    parts = rel.split("/")
    try:
        fd = os.open(root, _O_DIR)
    except OSError as e:
        raise FileAccessError(f"cannot open directory {root}: {os_reason(e)}") from None
    cur = root
    try:
        for p in parts[:-1]:
            cur = os.path.join(cur, p)
            try:
                nxt = os.open(p, _O_DIR | _NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise FileAccessError(
                    f"cannot write {os.path.join(root, *parts)}: directory {cur} does not exist"
                ) from None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    try:
                        link = stat.S_ISLNK(os.stat(p, dir_fd=fd, follow_symlinks=False).st_mode)
                    except OSError:
                        link = False
                    why = "is a symbolic link: not followed" if link else "is not a directory"
                    raise FileAccessError(f"{cur} {why}") from None
                raise FileAccessError(f"cannot open directory {cur}: {os_reason(e)}") from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def open_in(dir_fd: int, name: str, display: str) -> BinaryIO:
    """Open the regular file ``name`` in an open directory, refusing a link."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    except OSError as e:
        raise FileAccessError(f"cannot open {display}: {os_reason(e)}") from None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise FileAccessError(f"{display} is not a regular file")
    return fh


def mkdir(root: str, rel: str) -> None:
    """Create root (with parents) if rel is empty, else the directory root/rel."""
    path = root if not rel else resolve(root, rel)
    try:
        if not rel:
            os.makedirs(path, exist_ok=True)
        else:
            os.mkdir(path)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise FileAccessError(f"cannot create directory {path}: a file is in the way") from None
    except OSError as e:
        raise FileAccessError(f"cannot create directory {path}: {os_reason(e)}") from None


def delete(root: str, rel: str) -> None:
    path = resolve(root, rel)
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise FileAccessError(f"cannot delete {path}: {os_reason(e)}") from None


def open_source(path: str, follow: bool = False) -> BinaryIO:
    """Open a regular file to send, refusing a symbolic link in its place
    (unless ``follow``: ``-L`` sends what a link points to)."""
    try:
        fd = os.open(path, os.O_RDONLY | (0 if follow else getattr(os, "O_NOFOLLOW", 0)))
    except OSError as e:
        raise FileAccessError(f"cannot open {path}: {os_reason(e)}") from None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise FileAccessError(f"{path} is not a regular file")
    return fh


def make_link(root: str, rel: str, target: str) -> str:
    """Make root/rel a symbolic link to ``target``; returns the action taken
    ("created", "updated" or "unchanged").

    The target is checked again here (:func:`unsafe_reason`); the link is
    made beside the destination and renamed over it, through the directory
    opened without following links, so an existing link or file there is
    replaced rather than followed, and nothing outside the tree is touched.

    Raises:
        FileAccessError: the target is unsafe, a directory is in the way, or
            the file system refused.
    """
    _parts(rel)  # a bad path is refused as such first
    why = unsafe_reason(rel, target)
    if why is not None:
        raise FileAccessError(f"refusing symbolic link {rel} -> {target!r}: {why}")
    dir_fd, name = open_parent(root, rel)
    display = os.path.join(root, *rel.split("/"))
    try:
        try:
            st: Optional[os.stat_result] = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise FileAccessError(f"cannot access {display}: {os_reason(e)}") from None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise FileAccessError(f"{display} is a directory: not replaced by a link")
            if stat.S_ISLNK(st.st_mode):
                with contextlib.suppress(OSError):
                    if os.readlink(name, dir_fd=dir_fd) == target:
                        return "unchanged"
        tmp = f".{name}.pydelta-link-{os.urandom(4).hex()}"  # not secrets: start-up
        try:
            os.symlink(target, tmp, dir_fd=dir_fd)
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise FileAccessError(f"cannot make link {display}: {os_reason(e)}") from None
        return "created" if st is None else "updated"
    finally:
        os.close(dir_fd)
