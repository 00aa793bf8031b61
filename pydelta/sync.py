"""``pydelta sync``: bring a remote file or folder up to date, shipping only deltas.

One end runs :class:`SyncClient` (the ``pydelta sync`` command, or a script),
the other runs :func:`serve` (``pydelta serve``, started over ssh). Per file,
the receiving end sends the signature of its old copy, the sending end scans
its new file against it and streams back a delta, and the receiving end
patches into a temporary file beside the target that replaces it only once
its size and BLAKE3 digest are verified. So only signatures and deltas cross
the wire, and a failure anywhere - a dropped connection, a remote error, a
result that does not verify - leaves the destination as it was.

The protocol (frames: see :mod:`pydelta._wire`) is driven by the client, one
request at a time, over a single connection:

``hello``   versions; ``stat`` a path; ``walk`` a tree (its regular files,
directories, and the rest, which is skipped); ``mkdir``; ``delete``;
``put`` (push one file: the server answers with the signature of its copy
and then receives the delta) and ``get`` (pull one file: the client sends
the signature and receives the delta); ``bye``.

Paths inside a tree travel as '/'-separated relative paths. The receiving
end refuses absolute paths, '.' and '..' components, and any existing
symbolic link on the way, so nothing is written outside the tree and no
link is followed out of it - whichever end sent the path.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import format as fmt
from ._backend import backend
from ._literals import DEFAULT_LEVEL
from ._wire import END, Channel, DataWriter
from .delta import DeltaStats
from .errors import (
    ConnectionLostError,
    FileAccessError,
    ProtocolError,
    PydeltaError,
    RemoteCommandError,
    RemoteError,
    SyncError,
    UsageError,
)
from .patch import Patcher
from .signature import Signature, iter_signature

PROTOCOL = 1



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

#: A delta no longer than this is held back to see whether it only says
#: "the whole old file, unchanged": then the target is verified in place
#: (hashed) instead of being rewritten.
_IDENTITY_MAX = 1024

#: Errors that end the session (the frames are out of step or the channel is gone).
_FATAL = (ConnectionLostError, ProtocolError)

__all__ = [
    "sync",
    "serve",
    "SyncClient",
    "SyncReport",
    "SyncedFile",
    "SyncStatus",
    "parse_location",
]


def _message(e: BaseException) -> str:
    if isinstance(e, PydeltaError):
        return str(e)
    if isinstance(e, OSError):
        where = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
        return where + (e.strerror or str(e))
    return f"{type(e).__name__}: {e}"


# -- the report ----------------------------------------------------------------


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

    def count(self, action: str) -> int:
        return sum(1 for f in self.files if f.action == action)

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
        nfiles = sum(1 for f in self.files if f.action not in ("deleted", "skipped"))
        rate = self.wire_bytes / self.seconds if self.seconds > 0 else 0.0
        return (
            ("dry run, nothing changed - would be: " if self.dry_run else "")
            + f"{nfiles} file{'s' if nfiles != 1 else ''}: {', '.join(parts)}\n"
            f"sent {self.bytes_sent:,} bytes  received {self.bytes_received:,} bytes  "
            f"{rate:,.2f} bytes/sec\n"
            f"total size is {self.total_size:,}  speedup is {self.speedup:,.2f}"
        )

    def __str__(self) -> str:
        return self.summary()


# -- locations -----------------------------------------------------------------


def parse_location(arg: Union[str, "os.PathLike[str]"]) -> Tuple[Optional[str], str]:
    """Split ``[user@]host:path`` into (host, path); a local path gives (None, path).

    As with rsync and scp, a colon before the first slash makes a remote
    location (write ``./a:b`` for a local file named ``a:b``); ``[::1]:path``
    names an IPv6 host. An empty remote path is the remote home directory.
    """
    s = os.fspath(arg)
    if not isinstance(s, str):
        s = os.fsdecode(s)
    m = re.match(r"(?:([^@/:\[]+)@)?\[([^\]/]+)\]:(.*)\Z", s, re.S)
    if m:  # [v6addr]:path, user@[v6addr]:path
        user, host, path = m.groups()
        return (f"{user}@{host}" if user else host), path
    colon = s.find(":")
    slash = s.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return s[:colon], s[colon + 1 :]
    return None, s


# -- file system helpers, the same on both ends -------------------------------


def _expand(path: str) -> str:
    return os.path.expanduser(path) if path else "."


def _describe_mode(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "not a regular file or directory"


def _stat_entry(path: str) -> Dict[str, Any]:
    """What a top-level path is (symlinks followed: the user named it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"type": "missing"}
    except NotADirectoryError:
        return {"type": "missing"}
    except OSError as e:
        raise FileAccessError(f"cannot access {path}: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir"}
    if stat.S_ISREG(st.st_mode):
        return {"type": "file", "size": st.st_size, "mode": stat.S_IMODE(st.st_mode),
                "mtime_ns": st.st_mtime_ns}
    return {"type": "other", "why": _describe_mode(st.st_mode)}


def _walk(root: str) -> List[Dict[str, Any]]:
    """Every entry under root, parents before children, links not followed."""
    out: List[Dict[str, Any]] = []
    stack = [("", root)]
    while stack:
        prefix, dirpath = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            out.append({"path": prefix.rstrip("/") or ".", "type": "other",
                        "why": f"cannot list it: {e.strerror or e}"})
            continue
        subdirs = []
        for e in children:
            rel = prefix + e.name
            try:
                st = e.stat(follow_symlinks=False)
            except OSError as ex:
                out.append({"path": rel, "type": "other", "why": f"cannot stat it: {ex.strerror or ex}"})
                continue
            if stat.S_ISDIR(st.st_mode):
                out.append({"path": rel, "type": "dir"})
                subdirs.append((rel + "/", e.path))
            elif stat.S_ISREG(st.st_mode):
                out.append({"path": rel, "type": "file", "size": st.st_size,
                            "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns})
            else:
                out.append({"path": rel, "type": "other", "why": _describe_mode(st.st_mode)})
        stack.extend(reversed(subdirs))
    return out


def _resolve(root: str, rel: Any) -> str:
    """root/rel, refusing anything that could leave the tree."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\0" in rel:
        raise UsageError(f"refusing path {rel!r}: not a relative path inside the tree")
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"refusing path {rel!r}: not a relative path inside the tree")
    cur = root
    for p in parts[:-1]:
        cur = os.path.join(cur, p)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            break
        except OSError as e:
            raise FileAccessError(f"cannot access {cur}: {e.strerror or e}") from None
        if stat.S_ISLNK(st.st_mode):
            raise FileAccessError(f"{cur} is a symbolic link: not followed")
        if not stat.S_ISDIR(st.st_mode):
            raise FileAccessError(f"{cur} is not a directory")
    return os.path.join(root, *parts)


def _mkdir(root: str, rel: str) -> None:
    """Create root (with parents) if rel is empty, else the directory root/rel."""
    path = root if not rel else _resolve(root, rel)
    try:
        if not rel:
            os.makedirs(path, exist_ok=True)
        else:
            os.mkdir(path)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise FileAccessError(f"cannot create directory {path}: a file is in the way") from None
    except OSError as e:
        raise FileAccessError(f"cannot create directory {path}: {e.strerror or e}") from None


def _delete(root: str, rel: str) -> None:
    path = _resolve(root, rel)
    try:
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise FileAccessError(f"cannot delete {path}: {e.strerror or e}") from None


def _open_source(path: str) -> BinaryIO:
    """Open a regular file to send, refusing a symbolic link in its place."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise FileAccessError(f"cannot open {path}: {e.strerror or e}") from None
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise FileAccessError(f"{path} is not a regular file")
    return fh


_QUICK = "same size and modification time (quick check)"


def _planned(rel: str, src: Dict[str, Any], dst: Optional[Dict[str, Any]], quick: bool) -> SyncedFile:
    """What a dry run says would happen to one file."""
    size = src.get("size", 0)
    if dst is None:
        return SyncedFile(rel, "created", size, message="dry run: would be sent whole")
    if dst.get("type") != "file":
        what = "a directory" if dst.get("type") == "dir" else "something other than a file"
        return SyncedFile(rel, "failed", size, message=f"dry run: {what} is in the way")
    if quick and _same_size_and_time(src, dst):
        return SyncedFile(rel, "unchanged", size, message=_QUICK)
    return SyncedFile(rel, "updated", size, message="dry run: would be compared by content and updated if it differs")


def _same_size_and_time(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    """The quick check: both regular files of the same size and modification time."""
    return bool(a and b and a.get("type") == b.get("type") == "file"
                and a.get("size") == b.get("size") and a.get("mtime_ns") == b.get("mtime_ns"))


def _identity_digest(head: bytes, basis_size: int) -> Optional[bytes]:
    """If this whole delta says "the old file unchanged", the digest it promises."""
    hs = fmt.DELTA_HEADER.size
    try:
        h = fmt.parse_delta_header(head[:hs], "delta")
    except PydeltaError:
        return None
    if h.basis_size != basis_size:
        return None
    pos = hs
    if basis_size:
        if head[pos : pos + 1] != b"C":
            return None
        pos += 1
        vals = []
        for _ in range(2):
            v = shift = 0
            while pos < len(head) and shift < 70:
                b = head[pos]
                pos += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            else:
                return None
            vals.append(v)
        if vals != [0, basis_size]:
            return None
    if head[pos : pos + 1] != b"E" or len(head) != pos + 41:
        return None
    if int.from_bytes(head[pos + 1 : pos + 9], "little") != basis_size:
        return None
    return bytes(head[pos + 9 : pos + 41])


class _Incoming:
    """The receiving end of one file: its basis, the signature, the patch.

    The basis is the existing target or, when there is none, what an
    earlier attempt left of it (``.NAME.pydelta-partial`` beside it: a first
    copy that broke off resumes from there) or else an empty file (the delta
    is then all literal). Nothing replaces the target before :meth:`finish`
    has verified the result; a first copy that fails keeps what it wrote as
    the partial file, when that is more than the partial file had.
    """

    def __init__(self, target: str, *, fsync: bool, threads: Optional[int],
                 progress: Optional[Callable[[int], None]] = None, name: str = "delta") -> None:
        self.target = target
        self.mode: Optional[int] = None
        self.mtime_ns: Optional[int] = None
        self._fsync = fsync
        self._threads = threads
        self._progress = progress
        self._name = name
        try:
            st: Optional[os.stat_result] = os.lstat(target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise FileAccessError(f"cannot access {target}: {e.strerror or e}") from None
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise FileAccessError(f"{target} is a symbolic link: not replaced")
            if stat.S_ISDIR(st.st_mode):
                raise FileAccessError(f"{target} is a directory: cannot replace it with a file")
            if not stat.S_ISREG(st.st_mode):
                raise FileAccessError(f"{target} is not a regular file: not replaced")
        self.have = st is not None
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            raise FileAccessError(f"cannot write {target}: directory {parent} does not exist")
        self.partial = os.path.join(parent, "." + os.path.basename(target) + ".pydelta-partial")
        self.resumed = False  #: the basis is what an earlier attempt left
        if self.have:
            self.basis: BinaryIO = _open_source(target)
        else:
            try:
                self.basis = _open_source(self.partial)
                self.resumed = True
            except FileAccessError:  # none (or not a regular file): start from nothing
                self.basis = tempfile.TemporaryFile()
        self.basis_size = os.fstat(self.basis.fileno()).st_size
        self._head = bytearray()
        self._patcher: Optional[Patcher] = None

    def signature(self) -> Iterator[bytes]:
        self.basis.seek(0)
        return iter_signature(self.basis, threads=self._threads)

    def feed(self, data: bytes) -> None:
        if self._patcher is None:
            self._head += data
            if len(self._head) > _IDENTITY_MAX:
                self._start_patch()
            return
        self._patcher.write(data)

    def _start_patch(self) -> None:
        self._patcher = Patcher(self.basis, self.target, progress=self._progress,
                                delta_name=self._name, fsync=self._fsync,
                                mode=self.mode, mtime_ns=self.mtime_ns)
        head, self._head = self._head, bytearray()
        self._patcher.write(head)

    def finish(self) -> str:
        """End of the delta: verify and publish; returns the action taken."""
        if self._patcher is None:
            if self.have and self._unchanged():
                return "unchanged"
            self._start_patch()
        assert self._patcher is not None
        self._patcher.close()
        with contextlib.suppress(OSError):
            os.unlink(self.partial)  # done with (and a leftover beside an existing file is stale)
        return "updated" if self.have else "created"

    def _unchanged(self) -> bool:
        """The delta is "old file as is": verify the old file against its digest in place."""
        want = _identity_digest(bytes(self._head), self.basis_size)
        if want is None:
            return False
        hasher = backend.Blake3()
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        self.basis.seek(0)
        off = 0
        while off < self.basis_size:
            n = self.basis.readinto(view)
            if not n:
                return False
            hasher.update(view[:n])
            off += n
            if self._progress is not None:
                self._progress(off)
        if hasher.digest() != want:
            return False  # the patch then says what is wrong
        try:
            if self.mode is not None:
                os.chmod(self.target, self.mode)
            if self.mtime_ns is not None:
                os.utime(self.target, ns=(time.time_ns(), self.mtime_ns))
        except OSError as e:
            raise FileAccessError(f"cannot set the times or mode of {self.target}: {e.strerror or e}") from None
        return True

    def close(self) -> None:
        """Drop any unfinished output (a published result stays) and the basis.

        An unfinished first copy is kept as the partial file if it got further
        than the partial file it started from.
        """
        p = self._patcher
        if p is not None and p.result is None:
            further = not self.have and p.produced > self.basis_size
            p.abort(keep_as=self.partial if further else None)
        self.basis.close()


def _receive(ch: Channel, inc: _Incoming) -> str:
    """Feed the delta stream on ch into inc and finish it; reads the stream to its end."""
    failure: Optional[BaseException] = None
    try:
        for piece in ch.recv_stream():
            if failure is None:
                try:
                    inc.feed(piece)
                except _FATAL:
                    raise
                except (PydeltaError, OSError) as e:
                    failure = e
                    inc.close()
    except RemoteError:  # the sender gave up on this file
        if failure is None:
            raise
    if failure is not None:
        raise failure
    return inc.finish()


class _LinkGate:
    """Whether to compress the next literal: only while zstd outruns the link.

    Sent plain, literal bytes go at the link's speed L; compressed, at the
    speed C at which we compress them (the link then carries fewer bytes
    than it could). So compressing pays exactly when C > L: on a WAN or a
    1 Gbit/s link with cores to spare, not on a fast LAN or loopback, nor
    when the cores are busy. Both are measured as the data goes:

    * L: the channel counts the seconds spent blocked in write(); over the
      last WINDOW bytes sent, bytes / those seconds. While we produce faster
      than the link takes, that is the link's speed; while compressing makes
      us the bottleneck, writes do not block and L looks high, so the gate
      turns compression off again - it settles where the two balance.
    * C: the compressor reports each literal's size and wall time; times
      the worker threads.

    The first WARMUP bytes are always compressed (small deltas cost little
    to compress, and this gives C). Each literal goes as 'L' or 'Z' either
    way, and the result is verified against its digest as always.
    """

    WARMUP = 4 << 20
    WINDOW = 32 << 20

    def __init__(self, ch: Channel, workers: int) -> None:
        self._ch = ch
        self._workers = max(1, workers)
        self._start = (ch.sent, ch.write_seconds)
        self._hist: "collections.deque[Tuple[int, float]]" = collections.deque([self._start])
        self._comp: "collections.deque[Tuple[int, float]]" = collections.deque(maxlen=64)
        self._lock = threading.Lock()

    def record(self, nbytes: int, seconds: float) -> None:
        """One literal of nbytes took seconds to compress (on one worker)."""
        with self._lock:
            self._comp.append((nbytes, seconds))

    def link_rate(self) -> float:
        """Bytes/s the link drains (infinite while writes never block)."""
        sent, secs = self._ch.sent, self._ch.write_seconds
        with self._lock:
            hist = self._hist
            hist.append((sent, secs))
            while len(hist) > 2 and sent - hist[1][0] >= self.WINDOW:
                hist.popleft()
            dsent, dsecs = sent - hist[0][0], secs - hist[0][1]
        return dsent / dsecs if dsecs > 0 else float("inf")

    def compress_rate(self) -> float:
        """Bytes/s we compress, over the recent literals and all workers."""
        with self._lock:
            n = sum(b for b, _ in self._comp)
            s = sum(t for _, t in self._comp)
        return self._workers * n / s if s > 0 else float("inf")

    def __call__(self) -> bool:
        if self._ch.sent - self._start[0] < self.WARMUP:
            return True
        return self.compress_rate() > self.link_rate()


def _send_delta(ch: Channel, sig_data: bytes, new: Union[str, BinaryIO], *,
                progress: Optional[Callable[[int], None]], threads: Optional[int],
                compress: Optional[bool], level: int) -> DeltaStats:
    """Make the delta of new against the received signature and stream it, then END.

    ``compress=None`` compresses literals adaptively (see :class:`_LinkGate`).
    """
    from ._threads import resolve_threads
    from .delta import _stream, _use_compression

    name = f"signature from {ch.peer}"
    fmt.parse_sig_header(sig_data[: fmt.SIG_HEADER.size], name)
    sig = Signature(sig_data, name)
    zlit = _use_compression(compress, level)
    nthreads = resolve_threads(threads)
    gate = _LinkGate(ch, nthreads) if compress is None and zlit else None
    writer = DataWriter(ch)
    stats = DeltaStats()
    for piece in _stream(sig, new, progress, stats, nthreads, zlit, level, gate):
        writer.write(piece)
    writer.flush()
    ch.send(END)
    return stats


# -- the serving end -------------------------------------------------------------


class _Server:
    def __init__(self, ch: Channel, threads: Optional[int]) -> None:
        self.ch = ch
        self.threads = threads

    def run(self) -> None:
        ch = self.ch
        ch.send_magic()
        ch.expect_magic()
        hello = ch.recv_json()
        if hello.get("op") != "hello" or hello.get("proto") != PROTOCOL:
            ch.send_fail(f"unsupported sync protocol {hello.get('proto')!r} (this end speaks {PROTOCOL})")
            ch.flush()
            return
        from . import __version__

        ch.send_json({"ok": True, "proto": PROTOCOL, "version": __version__})
        while True:
            try:
                msg = ch.recv_json()
            except ConnectionLostError:
                return  # the client went away between requests
            op = msg.get("op")
            if op == "bye":
                ch.send_json({"ok": True})
                ch.flush()
                return
            handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
            if handler is None:
                ch.send_fail(f"unknown operation {op!r}")
                continue
            try:
                handler(msg)
            except _FATAL:
                raise
            except (PydeltaError, OSError) as e:
                # the handlers fail this way only before their first reply
                ch.send_fail(_message(e))
            except (KeyError, TypeError, ValueError) as e:
                ch.send_fail(f"malformed {op} request: {type(e).__name__}: {e}")

    def op_stat(self, m: Dict[str, Any]) -> None:
        self.ch.send_json({"ok": True, **_stat_entry(_expand(m["path"]))})

    def op_walk(self, m: Dict[str, Any]) -> None:
        self.ch.send_json({"ok": True, "entries": _walk(_expand(m["root"]))})

    def op_mkdir(self, m: Dict[str, Any]) -> None:
        _mkdir(_expand(m["root"]), m.get("path") or "")
        self.ch.send_json({"ok": True})

    def op_delete(self, m: Dict[str, Any]) -> None:
        _delete(_expand(m["root"]), m["path"])
        self.ch.send_json({"ok": True})

    def op_put(self, m: Dict[str, Any]) -> None:
        ch = self.ch
        target = _resolve(_expand(m["root"]), m["path"])
        inc = _Incoming(target, fsync=bool(m.get("fsync", True)), threads=self.threads,
                        name=f"delta from {ch.peer}")
        try:
            inc.mode = m.get("mode")
            inc.mtime_ns = m.get("mtime_ns")
            ch.send_json({"ok": True, "have": inc.have})
            try:
                ch.send_stream(inc.signature())
            except _FATAL:
                raise
            except (PydeltaError, OSError) as e:
                ch.send_fail(_message(e))  # ends the signature stream
                return
            try:
                action = _receive(ch, inc)
            except RemoteError:
                return  # the client gave up on this file: no reply
            except _FATAL:
                raise
            except (PydeltaError, OSError) as e:
                ch.send_fail(_message(e))
                return
            ch.send_json({"ok": True, "action": action})
        finally:
            inc.close()

    def op_get(self, m: Dict[str, Any]) -> None:
        ch = self.ch
        path = _resolve(_expand(m["root"]), m["path"])
        compress, level = m.get("compress"), int(m.get("level", DEFAULT_LEVEL))
        if compress not in (None, True, False):
            raise UsageError(f"compress must be true, false or null, not {compress!r}")
        fh = _open_source(path)
        try:
            st = os.fstat(fh.fileno())
            ch.send_json({"ok": True, "size": st.st_size, "mode": stat.S_IMODE(st.st_mode),
                          "mtime_ns": st.st_mtime_ns})
            try:
                sig = b"".join(ch.recv_stream())
            except RemoteError:
                return  # the client could not make its signature
            try:
                _send_delta(ch, sig, fh, progress=None, threads=self.threads,
                            compress=compress, level=level)
            except _FATAL:
                raise
            except (PydeltaError, OSError) as e:
                ch.send_fail(_message(e))
        finally:
            fh.close()


def serve(rfile: BinaryIO, wfile: BinaryIO, *, threads: Optional[int] = None) -> None:
    """Run the remote end of the sync protocol over a pair of binary streams.

    This is what ``pydelta serve`` runs on standard input and output when
    ``pydelta sync`` starts it over ssh; run it over any other channel (a
    socket, a paramiko channel, a subprocess pipe) and point a
    :class:`SyncClient` at the other end. Returns when the client says
    goodbye or closes the channel between requests.

    Raises:
        ConnectionLostError: the channel broke in the middle of a request
            (any file being written is dropped; its old content stays).
        ProtocolError: the client does not speak the sync protocol.

    Example:
        >>> import sys, pydelta
        >>> pydelta.serve(sys.stdin.buffer, sys.stdout.buffer)  # doctest: +SKIP
    """
    _Server(Channel(rfile, wfile, "the client"), threads).run()


def serve_main() -> int:
    """``pydelta serve``: serve on standard input and output; returns the exit status.

    A hang-up or termination unwinds like an error (any unfinished file is
    dropped); errors are one line on standard error, as in the CLI.
    """
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(1)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
        return 0
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    except (PydeltaError, OSError) as e:
        message, code = _message(e), 1
    try:
        sys.stderr.write(f"pydelta: error: {' '.join(message.split())}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code


# -- the driving end --------------------------------------------------------------


class _Local:
    """The local file system, with the same operations as the remote end."""

    remote = False

    def stat(self, path: str) -> Dict[str, Any]:
        return _stat_entry(_expand(path))

    def walk(self, root: str) -> List[Dict[str, Any]]:
        return _walk(_expand(root))

    def mkdir(self, root: str, rel: str = "") -> None:
        _mkdir(_expand(root), rel)

    def delete(self, root: str, rel: str) -> None:
        _delete(_expand(root), rel)


class _Remote:
    """The serving end, reached over the channel."""

    remote = True

    def __init__(self, ch: Channel) -> None:
        self.ch = ch

    def _call(self, **msg: Any) -> Dict[str, Any]:
        self.ch.send_json(msg)
        try:
            return self.ch.recv_json()
        except RemoteError as e:
            raise RemoteError(f"{self.ch.peer}: {e}") from None

    def stat(self, path: str) -> Dict[str, Any]:
        return self._call(op="stat", path=path)

    def walk(self, root: str) -> List[Dict[str, Any]]:
        entries = self._call(op="walk", root=root).get("entries")
        if not isinstance(entries, list):
            raise ProtocolError(f"{self.ch.peer} sent a malformed listing")
        return entries

    def mkdir(self, root: str, rel: str = "") -> None:
        self._call(op="mkdir", root=root, path=rel)

    def delete(self, root: str, rel: str) -> None:
        self._call(op="delete", root=root, path=rel)


class SyncClient:
    """The driving end of a sync over a channel you provide.

    :func:`sync` uses this over ssh; use it directly over a channel of your
    own whose other end runs :func:`serve` (``pydelta serve``). Paths on the
    far end are as that end sees them (relative ones from its working
    directory, ``~`` expanded).

    Args:
        rfile: readable binary stream from the serving end.
        wfile: writable binary stream to the serving end.
        peer: how messages name the far end.
        progress: called with a :class:`SyncStatus` as files move.
        threads: threads for hashing and scanning on this side (default all cores).
        compress: zstd-compress literal data: ``None`` (default) while the link
            is slower than compressing, ``True`` always, ``False`` never.
        level: zstd level.
        fsync: make each written file durable before it replaces its target.

    Example:
        >>> import paramiko, pydelta  # doctest: +SKIP
        >>> stdin, stdout, _ = ssh_client.exec_command("pydelta serve")  # doctest: +SKIP
        >>> with pydelta.SyncClient(stdout, stdin, peer="gpu-node") as c:  # doctest: +SKIP
        ...     print(c.push("models/llama", "/data/models/llama"))
    """

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO, *, peer: str = "the remote side",
                 progress: SyncProgress = None, threads: Optional[int] = None,
                 compress: Optional[bool] = None, level: int = DEFAULT_LEVEL,
                 fsync: bool = True) -> None:
        self._init(Channel(rfile, wfile, peer), progress, threads, compress, level, fsync)

    def _init(self, ch: Channel, progress: SyncProgress, threads: Optional[int],
              compress: Optional[bool], level: int, fsync: bool) -> None:
        from ._threads import resolve_threads
        from .delta import _use_compression

        resolve_threads(threads)
        _use_compression(compress, level)
        self._ch = ch
        self._progress = progress
        self._threads = threads
        self._compress = compress
        self._level = level
        self._fsync = fsync
        self._closed = False
        self.remote_version: Optional[str] = None
        ch.send_magic()
        from . import __version__

        ch.send_json({"op": "hello", "proto": PROTOCOL, "version": __version__})
        ch.expect_magic()
        reply = ch.recv_json()
        self.remote_version = reply.get("version")
        self._local = _Local()
        self._remote = _Remote(ch)

    # -- public -----------------------------------------------------------------
    def push(self, src: str, dest: str, *, delete: bool = False, quick: bool = False,
             dry_run: bool = False) -> SyncReport:
        """Make ``dest`` on the far end a copy of the local ``src`` (file or folder).

        ``delete``, ``quick`` and ``dry_run`` are as for :func:`sync`.
        """
        return self._run(self._local, self._remote, os.fspath(src), dest, delete, quick, dry_run)

    def pull(self, src: str, dest: str, *, delete: bool = False, quick: bool = False,
             dry_run: bool = False) -> SyncReport:
        """Make the local ``dest`` a copy of ``src`` on the far end (file or folder).

        ``delete``, ``quick`` and ``dry_run`` are as for :func:`sync`.
        """
        return self._run(self._remote, self._local, src, os.fspath(dest), delete, quick, dry_run)

    def close(self) -> None:
        """Say goodbye to the serving end (it then exits)."""
        if self._closed:
            return
        self._closed = True
        self._ch.send_json({"op": "bye"})
        self._ch.recv_json()

    def __enter__(self) -> "SyncClient":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()

    # -- the plan ---------------------------------------------------------------
    def _run(self, s_ep: Any, d_ep: Any, src: str, dest: str, delete: bool, quick: bool,
             dry_run: bool = False) -> SyncReport:
        push = not s_ep.remote
        peer = self._ch.peer
        report = SyncReport(src=src if push else f"{peer}:{src}", dest=f"{peer}:{dest}" if push else dest,
                            dry_run=dry_run)
        t0 = time.perf_counter()
        sent0, recv0 = self._ch.sent, self._ch.received
        self._bytes_done = 0  # bytes of the source's files dealt with, for progress
        try:
            self._plan_and_go(s_ep, d_ep, src, dest, delete, quick, push, report)
        finally:
            report.seconds = time.perf_counter() - t0
            report.bytes_sent = self._ch.sent - sent0
            report.bytes_received = self._ch.received - recv0
        if report.failed and not report.dry_run:
            first = report.failed[0]
            more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
            raise SyncError(f"{first.path}: {first.message}{more}", report)
        return report

    def _plan_and_go(self, s_ep: Any, d_ep: Any, src: str, dest: str, delete: bool,
                     quick: bool, push: bool, report: SyncReport) -> None:
        where = "" if push else f"{self._ch.peer}:"
        s = s_ep.stat(src)
        if s["type"] == "missing":
            raise FileAccessError(f"{where}{src}: no such file or directory")
        if s["type"] == "other":
            raise FileAccessError(f"{where}{src}: {s.get('why', 'not a regular file or directory')}")
        d = d_ep.stat(dest)
        if s["type"] == "file":
            if d["type"] == "dir" or dest.endswith("/"):
                root, name = dest, os.path.basename(src.rstrip("/"))
            else:
                root, name = os.path.dirname(dest) or ".", os.path.basename(dest)
            report.total_size = s["size"]
            if report.dry_run:
                t = d if d["type"] != "dir" and not dest.endswith("/") else d_ep.stat(os.path.join(root, name))
                report.files.append(_planned(name, s, t if t["type"] != "missing" else None, quick))
                return
            d_ep.mkdir(root)
            if quick and d["type"] != "dir" and _same_size_and_time(s, d):
                report.files.append(SyncedFile(name, "unchanged", s["size"], message=_QUICK))
            elif push:
                self._push_file(src, root, name, name, s, report)
            else:
                self._pull_file(os.path.dirname(src) or ".", os.path.basename(src), root, name, s, report)
            return
        # a folder
        if d["type"] not in ("dir", "missing"):
            raise FileAccessError(f"{dest} exists and is not a directory")
        entries = s_ep.walk(src)
        report.total_size = sum(e["size"] for e in entries if e["type"] == "file")
        have = {e["path"]: e for e in d_ep.walk(dest)} if d["type"] == "dir" else {}
        if not report.dry_run:
            d_ep.mkdir(dest)
        for e in entries:
            rel = e["path"]
            if e["type"] == "other":
                report.files.append(SyncedFile(rel, "skipped", message=e.get("why", "")))
            elif report.dry_run:
                if e["type"] == "file":
                    report.files.append(_planned(rel, e, have.get(rel), quick))
            elif e["type"] == "dir":
                if have.get(rel, {}).get("type") != "dir":
                    try:
                        d_ep.mkdir(dest, rel)
                    except _FATAL:
                        raise
                    except (PydeltaError, OSError) as ex:
                        report.files.append(SyncedFile(rel + "/", "failed", message=_message(ex)))
            elif quick and _same_size_and_time(e, have.get(rel)):
                report.files.append(SyncedFile(rel, "unchanged", e["size"], message=_QUICK))
                self._bytes_done += e["size"]
            else:
                if push:
                    self._push_file(os.path.join(src, rel), dest, rel, rel, e, report)
                else:
                    self._pull_file(src, rel, dest, rel, e, report)
                self._bytes_done += e["size"]
        if delete and not report.failed:
            keep = {e["path"]: e["type"] for e in entries}
            blocked = [p + "/" for p, t in keep.items() if t != "dir"]
            for rel in sorted(have, reverse=True):  # children before their parent
                if rel in keep or any(rel.startswith(b) for b in blocked):
                    continue
                if report.dry_run:
                    report.files.append(SyncedFile(rel, "deleted", message="dry run: would be deleted"))
                    continue
                try:
                    d_ep.delete(dest, rel)
                    report.files.append(SyncedFile(rel, "deleted"))
                except _FATAL:
                    raise
                except (PydeltaError, OSError) as ex:
                    report.files.append(SyncedFile(rel, "failed", message=_message(ex)))

    def _file_progress(self, label: str, size: int, report: SyncReport) -> Optional[Callable[[int], None]]:
        """The file's progress callback (bytes of it done); says "signature" at once."""
        cb = self._progress
        if cb is None:
            return None
        before = self._bytes_done
        total = report.total_size

        def update(done: int) -> None:
            cb(SyncStatus(label, done, size, before + min(done, size), total))

        cb(SyncStatus(label, 0, size, before, total, "signature"))
        return update

    @contextlib.contextmanager
    def _entry(self, label: str, size: int, report: SyncReport) -> Iterator[SyncedFile]:
        """One file's line of the report: a failure of this file alone (the
        session still in step) is recorded there; a broken session is raised."""
        ch = self._ch
        sent0, recv0 = ch.sent, ch.received
        entry = SyncedFile(label, "failed", size=size)
        report.files.append(entry)
        try:
            yield entry
        except _FATAL:
            raise
        except RemoteError as e:
            entry.message = f"{ch.peer}: {e}"
        except (PydeltaError, OSError) as e:
            entry.message = _message(e)
        finally:
            entry.sent, entry.received = ch.sent - sent0, ch.received - recv0

    def _push_file(self, local: str, root: str, rel: str, label: str, meta: Dict[str, Any],
                   report: SyncReport) -> None:
        ch = self._ch
        with self._entry(label, meta.get("size", 0), report) as entry:
            with _open_source(_expand(local)) as fh:
                ch.send_json({"op": "put", "root": root, "path": rel, "mode": meta.get("mode"),
                              "mtime_ns": meta.get("mtime_ns"), "fsync": self._fsync})
                progress = self._file_progress(label, entry.size, report)
                ch.recv_json()
                sig = b"".join(ch.recv_stream())
                try:
                    stats = _send_delta(ch, sig, fh, progress=progress, threads=self._threads,
                                        compress=self._compress, level=self._level)
                except _FATAL:
                    raise
                except (PydeltaError, OSError) as e:
                    ch.send_fail(_message(e))  # the server drops the file
                    raise
                entry.size = stats.new_size
                entry.action = ch.recv_json()["action"]
                if progress is not None:
                    progress(entry.size)

    def _pull_file(self, root: str, rel: str, local_root: str, local_rel: str,
                   meta: Dict[str, Any], report: SyncReport) -> None:
        ch = self._ch
        with self._entry(local_rel, meta.get("size", 0), report) as entry:
            target = _resolve(_expand(local_root), local_rel)
            inc = _Incoming(target, fsync=self._fsync, threads=self._threads,
                            name=f"delta from {ch.peer}")
            try:
                ch.send_json({"op": "get", "root": root, "path": rel,
                              "compress": self._compress, "level": self._level})
                meta = ch.recv_json()
                entry.size = int(meta.get("size", 0))
                inc.mode = meta.get("mode")
                inc.mtime_ns = meta.get("mtime_ns")
                inc._progress = progress = self._file_progress(local_rel, entry.size, report)
                try:
                    ch.send_stream(inc.signature())
                except _FATAL:
                    raise
                except (PydeltaError, OSError) as e:
                    ch.send_fail(_message(e))  # the server sends no delta
                    raise
                entry.action = _receive(ch, inc)
                if progress is not None:
                    progress(entry.size)
            finally:
                inc.close()


# -- over ssh ---------------------------------------------------------------------


class _SSHChannel(Channel):
    """A channel to ``<remote-cmd> serve`` run by ssh, that explains ssh's failures."""

    def __init__(self, argv: List[str], host: str, remote_cmd: str) -> None:
        self.argv = argv
        self.host = host
        self.remote_cmd = remote_cmd
        self.started = False
        self._errlines: "collections.deque[str]" = collections.deque(maxlen=40)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=False)
        except OSError as e:
            raise RemoteCommandError(f"cannot run {argv[0]}: {e.strerror or e}") from None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        super().__init__(self.proc.stdout, self.proc.stdin, host)  # type: ignore[arg-type]

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._errlines.append(line)

    def stderr_text(self) -> str:
        return " / ".join(self._errlines)

    def lost(self, why: str) -> SyncError:
        try:
            rc: Optional[int] = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        self._reader.join(timeout=2)
        said = self.stderr_text()
        said_part = f" (ssh said: {said})" if said else ""
        if not self.started:
            low = said.lower()
            if rc == 255:  # ssh's own failure (ssh's warnings may say "No such file" too)
                return RemoteCommandError(f"ssh to {self.host} failed{said_part or ' (exit 255)'}")
            if rc == 127 or "command not found" in low or "no such file or directory" in low \
                    or "no module named pydelta" in low \
                    or "not found" in low and self.remote_cmd.split()[0] in said:
                return RemoteCommandError(
                    f"pydelta is not installed on {self.host}, or not on the PATH of ssh "
                    f"commands there ('{self.remote_cmd}' not found{said_part}): install it "
                    "there (pip install pydelta), or give its path with --remote-cmd, "
                    "e.g. --remote-cmd ~/venv/bin/pydelta"
                )
            if "no such command" in low and "serve" in low:
                return RemoteCommandError(
                    f"the pydelta on {self.host} has no 'serve' command (too old): "
                    "upgrade it there"
                )
            return RemoteCommandError(
                f"'{self.remote_cmd} serve' on {self.host} did not start "
                f"(exit {rc}){said_part}"
            )
        if rc is not None and rc < 0:
            how = f"ssh was killed by signal {-rc}"
        elif rc is not None:
            how = f"ssh exited with status {rc}"
        else:
            how = why
        return ConnectionLostError(f"connection to {self.host} lost: {how}{said_part}")

    def finish(self, timeout: float = 30.0) -> None:
        """After goodbye: let ssh exit."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass


def _ssh_argv(ssh: Union[str, Sequence[str]]) -> List[str]:
    argv = shlex.split(ssh) if isinstance(ssh, str) else [str(a) for a in ssh]
    if not argv:
        raise UsageError("the ssh command is empty")
    return argv


def sync(
    src: Union[str, "os.PathLike[str]"],
    dest: Union[str, "os.PathLike[str]"],
    *,
    ssh: Union[str, Sequence[str]] = "ssh",
    remote_cmd: str = "pydelta",
    delete: bool = False,
    quick: bool = False,
    dry_run: bool = False,
    progress: SyncProgress = None,
    threads: Optional[int] = None,
    compress: Optional[bool] = None,
    level: int = DEFAULT_LEVEL,
    fsync: bool = True,
) -> SyncReport:
    """Make ``dest`` a copy of ``src`` where one of them is ``[user@]host:path``.

    Over one ssh connection the far end runs ``<remote_cmd> serve``; per
    file only its signature and the delta cross the wire. A missing file is
    sent whole (compressed, verified), an unchanged one costs its signature.
    A folder is synced recursively: missing directories are created,
    symbolic links and special files are skipped (and reported), never
    followed. Each file replaces its target only once verified, with the
    source's permission bits and modification time.

    ``dest`` names what the source becomes (``sync model/ host:models/model``
    mirrors the folder into ``models/model``); a single file whose ``dest``
    is an existing directory, or ends in '/', goes inside it. Missing parent
    directories are created.

    Args:
        src, dest: local path and ``[user@]host:path``, either way round.
        ssh: the ssh command and options, like rsync's ``-e``
            (e.g. ``"ssh -p 2222 -i key"``), as one string or a list.
        remote_cmd: how to run pydelta on the far end (a path or a shell
            command, e.g. ``"~/venv/bin/pydelta"``).
        delete: remove files and folders in ``dest`` that are not in ``src``
            (only if every file synced).
        quick: skip files whose size and modification time already match
            (rsync's default quick check; sync keeps modification times, so
            after one sync only changed files are read). Without it every
            file is compared by content (its signature).
        dry_run: change nothing; the report lists what would be created,
            compared/updated, skipped and deleted (from the listings alone).
        progress: called with a :class:`SyncStatus` (file and total bytes done).
        compress: ``None`` (default) compresses literal data only while the
            link is slower than compressing it (measured as it goes);
            ``True`` always, ``False`` never.
        threads, level: as for :func:`pydelta.delta`.
        fsync: make each result durable before it replaces its target.

    Returns:
        :class:`SyncReport`: per file, bytes sent and received, size of the
        files, time; ``str(report)`` is an rsync-like summary.

    Raises:
        SyncError: some files failed (``e.report`` says which); the others
            were synced, the failed ones keep their old content.
        RemoteCommandError: ssh failed, or pydelta is not installed there.
        ConnectionLostError: the connection broke; a rerun completes.

    Example:
        >>> import pydelta
        >>> r = pydelta.sync("model.safetensors", "gpu1:/models/model.safetensors")  # doctest: +SKIP
        >>> print(r)  # doctest: +SKIP
        1 file: 0 created, 1 updated, 0 unchanged, 0 deleted
        sent 23,458,905 bytes  received 787,204 bytes  3,067,513.88 bytes/sec
        total size is 1,073,562,897  speedup is 44.28
    """
    s_host, s_path = parse_location(src)
    d_host, d_path = parse_location(dest)
    if (s_host is None) == (d_host is None):
        raise UsageError(
            "exactly one of SRC and DEST must be remote ([user@]host:path)"
            if s_host is None else "SRC and DEST cannot both be remote"
        )
    host = s_host or d_host
    assert host is not None
    if not remote_cmd or not remote_cmd.strip():
        raise UsageError("the remote command is empty")
    argv = _ssh_argv(ssh) + [host, f"{remote_cmd} serve"]
    ch = _SSHChannel(argv, host, remote_cmd)
    clean = False  # the far end was told goodbye: let ssh exit by itself
    try:
        client = SyncClient.__new__(SyncClient)
        client._init(ch, progress, threads, compress, level, fsync)
        ch.started = True
        try:
            if s_host is None:
                report = client.push(s_path, d_path, delete=delete, quick=quick, dry_run=dry_run)
            else:
                report = client.pull(s_path, d_path, delete=delete, quick=quick, dry_run=dry_run)
        except _FATAL:
            raise
        except (PydeltaError, OSError):
            client.close()  # the session is still in step: end it politely
            clean = True
            raise
        client.close()
        clean = True
    finally:
        if clean:
            ch.finish()
        else:
            ch.kill()
    return report
