"""Either end's file system as a sync's plan sees it: :class:`Local` (this
machine) and :class:`Remote` (the serving end, over the channel), with the
same operations (stat, walk, mkdir, symlink, delete).
"""

from __future__ import annotations

from typing import Any, Dict, List, Union

from ..errors import ProtocolError, RemoteError
from . import fs
from .fs import make_link
from .messages import (
    Delete,
    Mkdir,
    Request,
    Stat,
    Symlink,
    Walk,
    check_entry,
    check_listing,
    encode,
    shown,
)
from .wire import Channel


class Local:
    """The local file system, with the same operations as the remote end."""

    remote = False

    def stat(self, path: str) -> Dict[str, Any]:
        return fs.stat_entry(fs.expand(path))

    def walk(self, root: str, links: str = "skip") -> List[Dict[str, Any]]:
        return fs.walk(fs.expand(root), links)

    def mkdir(self, root: str, rel: str = "") -> None:
        fs.mkdir(fs.expand(root), rel)

    def symlink(self, root: str, rel: str, target: str) -> str:
        return make_link(fs.expand(root), rel, target)

    def delete(self, root: str, rel: str) -> None:
        fs.delete(fs.expand(root), rel)


class Remote:
    """The serving end, reached over the channel."""

    remote = True

    def __init__(self, ch: Channel) -> None:
        self.ch = ch

    def _call(self, req: Request) -> Dict[str, Any]:
        self.ch.send_json(encode(req))
        try:
            return self.ch.recv_json()
        except RemoteError as e:
            raise RemoteError(f"{self.ch.peer}: {e}") from None

    def stat(self, path: str) -> Dict[str, Any]:
        return check_entry(self._call(Stat(path)), self.ch.peer, listed=False)

    def walk(self, root: str, links: str = "skip") -> List[Dict[str, Any]]:
        req = Walk(root, None if links == "skip" else links)
        return check_listing(self._call(req).get("entries"), self.ch.peer)

    def mkdir(self, root: str, rel: str = "") -> None:
        self._call(Mkdir(root, rel))

    def symlink(self, root: str, rel: str, target: str) -> str:
        action = self._call(Symlink(root, rel, target)).get("action")
        if action not in ("created", "updated", "unchanged"):
            raise ProtocolError(f"{self.ch.peer} answered a symlink with action {shown(action)}")
        return str(action)

    def delete(self, root: str, rel: str) -> None:
        self._call(Delete(root, rel))


#: Either end's file system, as the plan sees it.
Endpoint = Union[Local, Remote]
