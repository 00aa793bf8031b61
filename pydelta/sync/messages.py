"""The requests of the sync protocol, as typed value classes.

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

The classes are written out (:class:`~pydelta.results.Frozen`: equality,
``repr``, hash over the fields) rather than made by :mod:`dataclasses`, whose
import and per-class code generation cost the far end of every sync ~10 ms
before its hello (issue 13.4).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type, Union

from ..errors import ProtocolError, UsageError
from ..formats.literals import DEFAULT_LEVEL
from ..formats.native import MAX_STRONG_LEN, MIN_STRONG_LEN
from ..results import Frozen

#: The protocol version both ends must speak.
PROTOCOL = 1

#: Optional protocol features this end can do, named by short strings. The
#: client lists its own in ``hello``; the server answers with the ones both ends
#: know, and from then on both use exactly those (an older peer lists none, so
#: the plain protocol-1 exchange stays the fallback). Add a name here when an
#: extension lands, next to the code that speaks it.
FEATURES: frozenset = frozenset(
    {
        # symbolic links: walk lists/follows them (Walk.links), get follows
        # them (Get.follow), "symlink" makes one (see .links)
        "links",
        # the client's --bwlimit in hello also limits what the server writes
        "bwlimit",
        # after a get's delta stream the server sends {"literal", "matched"}
        "stats",
        # refinement rounds inside a delta stream (see .refine)
        "refine",
        # an interrupted update's prefix offered and reused (see .resume)
        "resume",
        # a folder push asks for every file's digest first, "touch"es the same
        # ones and sends only the others (see .compare)
        "compare",
        # ... with the far end hashing in the background ("hash", then "hashed"
        # for the digests as they come) while the different files are sent
        "compare-ahead",
        # ... and the far end signs the files about to be updated ahead, into
        # its signature cache (see .presign)
        "presign",
        # the receiving end's signature carries 8-byte strong sums (Put.strong_len
        # on a push); a result that fails its digest is tried once more with
        # full-length ones (see .shortsig)
        "shortsig",
        # the receiving end's signature carries XXH3-128 block sums (Put.strong_hash
        # on a push); a result that fails its digest is tried once more with
        # full-length BLAKE3 ones (see .shortsig)
        "xxh3",
    }
)


def agree_features(offered: Any) -> frozenset:
    """The features both ends speak, from what a peer offered (junk is ignored)."""
    if not isinstance(offered, list):
        return frozenset()
    return FEATURES.intersection(f for f in offered if isinstance(f, str))


def shown(value: Any) -> str:
    """A peer's value as a message shows it: the repr of a scalar (cut to 200
    characters), else its kind (the repr of a deeply nested list or object
    would recurse past Python's limit)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)[:200]
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def peer_text(value: Any, default: str) -> str:
    """Free text from a peer (a reason, an error): a non-empty string, cut to
    500 characters, else ``default``."""
    return value[:500] if isinstance(value, str) and value else default


def _str(m: Dict[str, Any], key: str, default: Optional[str] = None) -> str:
    value = m[key] if default is None else (m.get(key) or default)
    if not isinstance(value, str):
        raise TypeError(f"{key} must be a string, not {type(value).__name__}")
    return value


#: What a peer may say about a file: a size, permission bits, a time (ns).
MAX_SIZE = (1 << 63) - 1
MAX_MODE = 0o7777
MIN_MTIME_NS, MAX_MTIME_NS = -(1 << 63), (1 << 63) - 1


def _strong_hash(m: Dict[str, Any]) -> Optional[str]:
    """A put's ``strong_hash``: absent/null, "xxh3" or "blake3" (ValueError otherwise)."""
    v = m.get("strong_hash")
    if v is None or v in ("xxh3", "blake3"):
        return v
    raise ValueError(f"strong_hash {shown(v)} is not xxh3 or blake3")


def _opt_int(m: Dict[str, Any], key: str, lo: int = 0, hi: int = MAX_SIZE) -> Optional[int]:
    """An optional integer field within [lo, hi] (a ValueError/TypeError otherwise)."""
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{key} {value} is out of range")
    return value


class FileMeta(Frozen):
    """What a peer says about a regular file: checked, so nothing downstream
    meets a string for a size or a mode that chmod cannot take."""

    size: int
    mode: Optional[int]
    mtime_ns: Optional[int]
    _fields = ("size", "mode", "mtime_ns")

    def __init__(
        self, size: int, mode: Optional[int] = None, mtime_ns: Optional[int] = None
    ) -> None:
        vars(self).update(size=size, mode=mode, mtime_ns=mtime_ns)

    @classmethod
    def parse(cls, m: Dict[str, Any], peer: str, what: str = "file") -> "FileMeta":
        """The size, mode and time of ``m``; ProtocolError if any is malformed."""
        try:
            size = _opt_int(m, "size")
            if size is None:
                raise KeyError("size")
            return cls(
                size,
                _opt_int(m, "mode", 0, MAX_MODE),
                _opt_int(m, "mtime_ns", MIN_MTIME_NS, MAX_MTIME_NS),
            )
        except (KeyError, TypeError, ValueError) as e:
            why = f"no {e.args[0]}" if isinstance(e, KeyError) else str(e)
            raise ProtocolError(f"{peer} described {what} malformedly ({why})") from None


#: The kinds of entry a stat or walk reply may hold ("link" only from a walk
#: asked for links, with the "links" feature).
ENTRY_TYPES = ("missing", "dir", "file", "other", "link")


def check_entry(m: Any, peer: str, listed: bool) -> Dict[str, Any]:
    """A stat reply (``listed`` False) or a walk entry, checked: ``type`` is
    one of ENTRY_TYPES, a listed entry has a string ``path``, a file has a
    valid size/mode/time, ``why`` is a string. ProtocolError otherwise."""
    if not isinstance(m, dict):
        raise ProtocolError(f"{peer} sent a malformed listing entry ({type(m).__name__})")
    kind = m.get("type")
    if kind not in ENTRY_TYPES or (listed and kind == "missing"):
        raise ProtocolError(f"{peer} sent an entry of unknown type {shown(kind)}")
    out: Dict[str, Any] = {"type": kind}
    if listed:
        path = m.get("path")
        if not isinstance(path, str):
            raise ProtocolError(f"{peer} sent an entry whose path is not a string")
        out["path"] = path
    if kind == "file":
        meta = FileMeta.parse(m, peer, repr(out.get("path", "the file")))
        out.update(size=meta.size, mode=meta.mode, mtime_ns=meta.mtime_ns)
    if kind == "other":
        out["why"] = peer_text(m.get("why"), "not a regular file or directory")
    if kind == "link":
        target = m.get("target")
        if not listed or not isinstance(target, str):
            raise ProtocolError(f"{peer} sent a link entry without a target")
        out["target"] = target
    return out


def check_listing(entries: Any, peer: str) -> list:
    """A walk reply's entries, each checked by :func:`check_entry`."""
    if not isinstance(entries, list):
        raise ProtocolError(f"{peer} sent a malformed listing")
    return [check_entry(e, peer, listed=True) for e in entries]


class Hello(Frozen):
    """The client's first message."""

    proto: Any
    version: Optional[str]
    features: Optional[list]
    #: bytes/s the server may write (feature "bwlimit"; None: no limit)
    bwlimit: Optional[int]
    _fields = ("proto", "version", "features", "bwlimit")
    op = "hello"

    def __init__(
        self,
        proto: Any,
        version: Optional[str] = None,
        features: Optional[list] = None,
        bwlimit: Optional[int] = None,
    ) -> None:
        vars(self).update(proto=proto, version=version, features=features, bwlimit=bwlimit)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Hello":
        bw = m.get("bwlimit")
        if not isinstance(bw, int) or isinstance(bw, bool) or not 0 < bw <= MAX_SIZE:
            bw = None
        return cls(m.get("proto"), m.get("version"), m.get("features"), bw)


class Stat(Frozen):
    """What a top-level path is."""

    path: str
    _fields = ("path",)
    op = "stat"

    def __init__(self, path: str) -> None:
        vars(self)["path"] = path

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Stat":
        return cls(_str(m, "path"))


class Walk(Frozen):
    """Every entry under a tree."""

    root: str
    #: symbolic links: "skip", "keep" (-l) or "copy" (-L) (feature "links")
    links: Optional[str]
    _fields = ("root", "links")
    op = "walk"

    def __init__(self, root: str, links: Optional[str] = None) -> None:
        vars(self).update(root=root, links=links)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Walk":
        links = m.get("links")
        if links is not None and links not in ("skip", "keep", "copy"):
            raise ValueError(f"unknown link mode {links!r}")
        return cls(_str(m, "root"), links)


class Mkdir(Frozen):
    """Create a tree's root (``path`` empty) or a directory inside it."""

    root: str
    path: str
    _fields = ("root", "path")
    op = "mkdir"

    def __init__(self, root: str, path: str = "") -> None:
        vars(self).update(root=root, path=path)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Mkdir":
        return cls(_str(m, "root"), _str(m, "path", ""))


class Delete(Frozen):
    """Remove one entry of a tree."""

    root: str
    path: str
    _fields = ("root", "path")
    op = "delete"

    def __init__(self, root: str, path: str) -> None:
        vars(self).update(root=root, path=path)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Delete":
        return cls(_str(m, "root"), _str(m, "path"))


class Put(Frozen):
    """Receive one file (the server sends its signature, then takes the delta)."""

    root: str
    path: str
    mode: Optional[int]
    mtime_ns: Optional[int]
    fsync: bool
    #: the size of the file being sent: the result may not be larger
    size: Optional[int]
    #: the receiver may use its signature cache (false: --no-sig-cache)
    cache: bool
    #: bytes of strong sum per block in the receiver's signature (feature "shortsig")
    strong_len: Optional[int]
    #: the receiver's block sums: "xxh3" or "blake3" (feature "xxh3"; None: BLAKE3)
    strong_hash: Optional[str]
    _fields = (
        "root",
        "path",
        "mode",
        "mtime_ns",
        "fsync",
        "size",
        "cache",
        "strong_len",
        "strong_hash",
    )
    op = "put"

    def __init__(
        self,
        root: str,
        path: str,
        mode: Optional[int] = None,
        mtime_ns: Optional[int] = None,
        fsync: bool = True,
        size: Optional[int] = None,
        cache: bool = True,
        strong_len: Optional[int] = None,
        strong_hash: Optional[str] = None,
    ) -> None:
        vars(self).update(
            root=root,
            path=path,
            mode=mode,
            mtime_ns=mtime_ns,
            fsync=fsync,
            size=size,
            cache=cache,
            strong_len=strong_len,
            strong_hash=strong_hash,
        )

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Put":
        return cls(
            _str(m, "root"),
            _str(m, "path"),
            _opt_int(m, "mode", 0, MAX_MODE),
            _opt_int(m, "mtime_ns", MIN_MTIME_NS, MAX_MTIME_NS),
            bool(m.get("fsync", True)),
            _opt_int(m, "size"),
            m.get("cache", True) is not False,
            _opt_int(m, "strong_len", MIN_STRONG_LEN, MAX_STRONG_LEN),
            _strong_hash(m),
        )


class Get(Frozen):
    """Send one file (the server takes the client's signature, sends the delta)."""

    root: str
    path: str
    compress: Optional[bool]
    level: int
    #: follow symbolic links inside the tree (-L, feature "links")
    follow: bool
    _fields = ("root", "path", "compress", "level", "follow")
    op = "get"

    def __init__(
        self,
        root: str,
        path: str,
        compress: Optional[bool] = None,
        level: int = DEFAULT_LEVEL,
        follow: bool = False,
    ) -> None:
        vars(self).update(root=root, path=path, compress=compress, level=level, follow=follow)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Get":
        compress = m.get("compress")
        if compress not in (None, True, False):
            raise UsageError(f"compress must be true, false or null, not {compress!r}")
        level = m.get("level", DEFAULT_LEVEL)
        if not isinstance(level, int) or isinstance(level, bool):
            raise TypeError(f"level must be an integer, not {type(level).__name__}")
        return cls(_str(m, "root"), _str(m, "path"), compress, level, m.get("follow") is True)


class Symlink(Frozen):
    """Make ``path`` a symbolic link to ``target`` (feature "links"; the
    server re-checks that the target stays inside the tree)."""

    root: str
    path: str
    target: str
    _fields = ("root", "path", "target")
    op = "symlink"

    def __init__(self, root: str, path: str, target: str) -> None:
        vars(self).update(root=root, path=path, target=target)

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Symlink":
        return cls(_str(m, "root"), _str(m, "path"), _str(m, "target"))


class Bye(Frozen):
    """The end of the session."""

    _fields = ()
    op = "bye"

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "Bye":
        return cls()


Request = Union[Hello, Stat, Walk, Mkdir, Delete, Put, Get, Symlink, Bye]

#: op name -> request class.
REQUESTS: Dict[str, Type[Any]] = {
    c.op: c for c in (Hello, Stat, Walk, Mkdir, Delete, Put, Get, Symlink, Bye)
}


def encode(msg: Request) -> Dict[str, Any]:
    """The JSON object of a request."""
    return {"op": msg.op, **msg.as_dict()}


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
