"""pull's files beside DEST: partial files and the record of the last pull.

A file is built in ``.NAME.pydelta-partial`` beside its target and renamed
over it once verified; ``.pydelta-pull.json`` records the version and each
file's size and modification time, so ``--quick`` can skip a pull that has
nothing to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import Dict, List, Optional, Tuple

STATE_NAME = ".pydelta-pull.json"
PARTIAL_SUFFIX = ".pydelta-partial"


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def partial_path(target: str) -> str:
    """Where a file is built before it replaces ``target``."""
    d, name = os.path.split(target)
    return os.path.join(d, f".{name}{PARTIAL_SUFFIX}")


def state_path(dest: str) -> str:
    """Where the record of the last pull into ``dest`` is kept."""
    if os.path.isdir(dest):
        return os.path.join(dest, STATE_NAME)
    d, name = os.path.split(os.path.abspath(dest))
    return os.path.join(d, f".{name}{STATE_NAME}")


def _is_ours(name: str) -> bool:
    return name == STATE_NAME or name.endswith(PARTIAL_SUFFIX) or name.endswith(STATE_NAME)


# ---------------------------------------------------------------- state


def _load_state(path: str) -> Optional[dict]:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8"))
        if doc.get("format") == "pydelta-pull" and isinstance(doc.get("files"), dict):
            return doc
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        pass
    return None


def _save_state(path: str, store: str, version: str, files: Dict[str, List[int]]) -> None:
    doc = {
        "format": "pydelta-pull",
        "format_version": 1,
        "store": store,
        "version": version,
        "files": files,
    }
    tmp = path + ".tmp"
    with contextlib.suppress(OSError):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, sort_keys=True)
        os.replace(tmp, path)


def _walk_files(root: str) -> List[str]:
    """Relative POSIX paths of the regular files under root (not ours)."""
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            if _is_ours(name):
                continue
            full = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(full).st_mode):
                    out.append(name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}")
    return out


def _quick_ok(dest: str, version: str, delete: bool) -> Optional[Tuple[List[str], int]]:
    """(files, bytes) if the last pull's record says DEST is this version."""
    sp = state_path(dest)
    doc = _load_state(sp)
    if doc is None or doc.get("version") != version:
        return None
    root = os.path.dirname(sp)
    total = 0
    for rel, (size, mtime_ns) in doc["files"].items():
        try:
            s = os.stat(os.path.join(root, *rel.split("/")))
        except OSError:
            return None
        if s.st_size != size or s.st_mtime_ns != mtime_ns:
            return None
        total += size
    if delete and os.path.isdir(dest) and sorted(_walk_files(dest)) != sorted(doc["files"]):
        return None
    return sorted(doc["files"]), total
