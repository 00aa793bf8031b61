"""The requests of the sync protocol, as typed dataclasses.

On the wire each request is a JSON object whose ``op`` names it (see
:mod:`.wire` for the framing); :func:`encode` and :func:`decode` turn one
into the other, and nothing else in pydelta builds or reads request
dictionaries. Replies stay small JSON objects (``{"ok": true, ...}``) read
where they are expected.

``hello``   versions; ``stat`` a path; ``walk`` a tree (its regular files,
directories, and the rest, which is skipped); ``mkdir``; ``delete``;
``put`` (push one file: the server answers with the signature of its copy
and then receives the delta) and ``get`` (pull one file: the client sends
the signature and receives the delta); ``bye``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Type, Union

from ..errors import UsageError
from ..formats.literals import DEFAULT_LEVEL

#: The protocol version both ends must speak.
PROTOCOL = 1


def _str(m: Dict[str, Any], key: str, default: Optional[str] = None) -> str:
    value = m[key] if default is None else (m.get(key) or default)
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {type(value).__name__}")
    return value


def _opt_int(m: Dict[str, Any], key: str) -> Optional[int]:
    value = m.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{key} must be an integer, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Hello:
    """The client's first message."""

    proto: Any
    version: Optional[str] = None
    op = "hello"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Hello":
        return cls(m.get("proto"), m.get("version"))


@dataclass(frozen=True)
class Stat:
    """What a top-level path is."""

    path: str
    op = "stat"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Stat":
        return cls(_str(m, "path"))


@dataclass(frozen=True)
class Walk:
    """Every entry under a tree."""

    root: str
    op = "walk"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Walk":
        return cls(_str(m, "root"))


@dataclass(frozen=True)
class Mkdir:
    """Create a tree's root (``path`` empty) or a directory inside it."""

    root: str
    path: str = ""
    op = "mkdir"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Mkdir":
        return cls(_str(m, "root"), _str(m, "path", ""))


@dataclass(frozen=True)
class Delete:
    """Remove one entry of a tree."""

    root: str
    path: str
    op = "delete"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Delete":
        return cls(_str(m, "root"), _str(m, "path"))


@dataclass(frozen=True)
class Put:
    """Receive one file (the server sends its signature, then takes the delta)."""

    root: str
    path: str
    mode: Optional[int] = None
    mtime_ns: Optional[int] = None
    fsync: bool = True
    op = "put"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Put":
        return cls(
            _str(m, "root"),
            _str(m, "path"),
            _opt_int(m, "mode"),
            _opt_int(m, "mtime_ns"),
            bool(m.get("fsync", True)),
        )


@dataclass(frozen=True)
class Get:
    """Send one file (the server takes the client's signature, sends the delta)."""

    root: str
    path: str
    compress: Optional[bool] = None
    level: int = DEFAULT_LEVEL
    op = "get"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Get":
        compress = m.get("compress")
        if compress not in (None, True, False):
            raise UsageError(f"compress must be true, false or null, not {compress!r}")
        return cls(_str(m, "root"), _str(m, "path"), compress, int(m.get("level", DEFAULT_LEVEL)))


@dataclass(frozen=True)
class Bye:
    """The end of the session."""

    op = "bye"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Bye":
        return cls()


Request = Union[Hello, Stat, Walk, Mkdir, Delete, Put, Get, Bye]

#: op name -> request class.
REQUESTS: Dict[str, Type[Any]] = {
    c.op: c for c in (Hello, Stat, Walk, Mkdir, Delete, Put, Get, Bye)
}


def encode(msg: Request) -> Dict[str, Any]:
    """The JSON object of a request."""
    return {"op": msg.op, **asdict(msg)}


class UnknownRequest(ValueError):
    """A request whose ``op`` this end does not know."""


def decode(m: Dict[str, Any]) -> Request:
    """The request a JSON object holds.

    Raises:
        UnknownRequest: its ``op`` is not one of :data:`REQUESTS`.
        KeyError, TypeError, ValueError: a field is missing or malformed.
    """
    op = m.get("op")
    cls = REQUESTS.get(op) if isinstance(op, str) else None
    if cls is None:
        raise UnknownRequest(f"unknown operation {op!r}")
    return cls.parse(m)  # type: ignore[no-any-return]
