"""Framing for the sync protocol: typed frames over any pair of byte streams.

``pydelta sync`` talks to ``pydelta serve`` on the other end of an ssh
connection (or of any channel a caller supplies). Each direction carries
frames of one kind byte, a big-endian u32 payload length and the payload:

* ``J`` a JSON object (requests and replies);
* ``D`` a piece of a data stream (signature or delta bytes);
* ``e`` the end of a data stream;
* ``X`` a failure of the current operation, with a one-line message (in
  place of a reply, or ending a data stream early).

Both ends first send :data:`MAGIC`, so anything else on the stream (a shell
startup file printing to standard output, an old pydelta) is recognized
before a single frame is parsed. A stream that ends mid-frame, or a frame
of an unknown kind or an absurd length, ends the session with a typed error;
the channel never guesses.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import stat
import struct
import time
from types import TracebackType
from typing import Any, BinaryIO, Callable, Dict, Iterator, Optional, Tuple, Type, Union

from .._io import read_exact
from ..errors import (
    ConnectionLostError,
    FileAccessError,
    PeerSilentError,
    ProtocolError,
    PydeltaError,
    RemoteError,
    SyncError,
)

#: First bytes each end sends: protocol name and version.
MAGIC = b"PDSYNC1\n"

JSON = b"J"
DATA = b"D"
END = b"e"
FAIL = b"X"

_HEAD = struct.Struct(">cI")
#: Largest frame accepted (a JSON listing of a large tree is the biggest).
MAX_FRAME = 256 << 20
#: Payload of the data frames we send (and the most a data frame may hold).
DATA_CHUNK = 1 << 20
#: Largest failure message accepted.
MAX_FAIL = 64 << 10
#: Most bytes of a frame's payload read (and held) per step: a frame's
#: buffer grows with what actually arrived, never with what its header claims.
READ_STEP = 1 << 20
#: The largest payload of each kind of frame.
_LIMITS = {JSON: MAX_FRAME, DATA: DATA_CHUNK, END: 0, FAIL: MAX_FAIL}

Buffer = Union[bytes, bytearray, memoryview]

#: Errors that end the session (the frames are out of step or the channel is gone).
FATAL = (ConnectionLostError, ProtocolError)

#: Seconds a read from the peer may wait for its next byte before the
#: session is given up (``pydelta sync --timeout``; 0 or None: wait for
#: ever). A peer is legitimately silent while it verifies or hashes a file
#: in place, for about the file's size over its disk's speed (100 GiB at
#: 100 MB/s: ~18 minutes): the default leaves room for that.
DEFAULT_TIMEOUT = 3600.0


def default_timeout() -> float:
    """:data:`DEFAULT_TIMEOUT`, or ``$PYDELTA_SYNC_TIMEOUT`` (seconds; 0: none)
    when set to a number - the far end's only setting (e.g. ``--remote-cmd
    'env PYDELTA_SYNC_TIMEOUT=0 pydelta'``)."""
    env = os.environ.get("PYDELTA_SYNC_TIMEOUT", "").strip()
    try:
        value = float(env) if env else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value >= 0 and value == value else DEFAULT_TIMEOUT


class Failed:
    """Catch a failure of one operation that leaves the session in step.

    A PydeltaError or OSError raised in the ``with`` body is kept in
    :attr:`error` (the caller reports it, e.g. with a FAIL frame); a broken
    session (:data:`FATAL`) and anything else propagate::

        with Failed() as f:
            ch.send_stream(inc.signature())
        if f.error is not None:
            ch.send_fail(message(f.error))
    """

    def __init__(self) -> None:
        self.error: Optional[BaseException] = None

    def __enter__(self) -> "Failed":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool:
        if exc is None or isinstance(exc, FATAL):
            return False
        if isinstance(exc, (PydeltaError, OSError)):
            self.error = exc
            return True
        return False


#: Size asked for the pipes of a channel (Linux F_SETPIPE_SZ): with the
#: default 64 KiB, a 1 MiB frame costs 16 wake-ups of each end.
PIPE_SIZE = 1 << 20


def widen_pipes(*files: object) -> None:
    """Ask for PIPE_SIZE-byte buffers on those of files that are pipes (best effort)."""
    try:
        import fcntl

        setsz = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    except ImportError:  # not on this platform
        return
    for f in files:
        try:
            fd = f.fileno()  # type: ignore[attr-defined]
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, setsz, PIPE_SIZE)
        except (AttributeError, OSError, ValueError):
            pass  # not a pipe with a descriptor, or the limit is lower: fine


class Channel:
    """Frames over a readable and a writable binary stream, with byte counts.

    Args:
        rfile: what the peer writes (e.g. ssh's standard output).
        wfile: what the peer reads (e.g. ssh's standard input).
        peer: how messages name the other end, e.g. ``"host"``.
        timeout: the most seconds a read waits for the peer's next byte
            (an idle timeout, not a deadline): then ConnectionLostError.
            0 or None waits for ever. Only a pipe or socket read through a
            standard file object (a subprocess's pipes, standard input) can
            be timed; the channel then reads it in non-blocking mode
            (:meth:`release` puts that back).
    """

    def __init__(
        self,
        rfile: BinaryIO,
        wfile: BinaryIO,
        peer: str = "the remote side",
        timeout: Optional[float] = None,
    ) -> None:
        self.rfile = rfile
        self.wfile = wfile
        self.peer = peer
        self.sent = 0  #: bytes written to wfile
        self.received = 0  #: bytes read from rfile
        #: seconds spent inside write() and flush(): when the link is the
        #: bottleneck, sent / write_seconds is about its speed
        self.write_seconds = 0.0
        #: a --bwlimit token bucket (.bwlimit.TokenBucket) every write goes through
        self.limiter: Optional[Any] = None
        self._dirty = False
        widen_pipes(rfile, wfile)
        self.timeout: Optional[float] = timeout if timeout and timeout > 0 else None
        self._timed_fd = self._nonblocking(rfile, wfile) if self.timeout is not None else -1

    @staticmethod
    def _nonblocking(rfile: object, wfile: object) -> int:
        """rfile's descriptor, set non-blocking, if its reads can be timed; else -1.

        Only a standard file object over a pipe or socket of its own (not
        shared with wfile: its writes would then stop blocking too).
        """
        if not isinstance(rfile, (io.BufferedReader, io.FileIO)):
            return -1  # e.g. a library's channel object: its descriptor may not be the data's
        try:
            fd = rfile.fileno()
            st = os.fstat(fd)
            if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
                return -1
            try:
                wst = os.fstat(wfile.fileno())  # type: ignore[attr-defined]
                if (wst.st_dev, wst.st_ino) == (st.st_dev, st.st_ino):
                    return -1
            except (AttributeError, OSError, ValueError):
                pass
            if os.get_blocking(fd):
                os.set_blocking(fd, False)
                return fd
            return -1  # already non-blocking: someone else's choice, not ours to undo
        except (OSError, ValueError):
            return -1

    def release(self) -> None:
        """Put the read descriptor back in blocking mode, if the timeout changed it."""
        fd, self._timed_fd = self._timed_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                os.set_blocking(fd, True)

    def timed_out(self) -> SyncError:
        """The error for a peer silent for longer than the timeout."""
        return PeerSilentError(
            f"no data from {self.peer} for {self.timeout:g} s: it may be stuck; "
            "giving up (raise --timeout if it needs longer, 0 waits for ever)"
        )

    # -- raw bytes -------------------------------------------------------
    def _write(self, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        lim = self.limiter
        t0 = time.perf_counter()
        try:
            while view:
                n = self.wfile.write(view if lim is None else view[: lim.burst])
                if n is None:  # a non-blocking stream that is full
                    select.select([], [self.wfile], [])
                    continue
                view = view[n:]
                self.sent += n
                if lim is not None:
                    lim.take(n)  # (its wait counts as blocked: the link is that slow)
        except (OSError, ValueError) as e:
            raise self.lost(f"writing failed: {getattr(e, 'strerror', None) or e}") from None
        finally:
            self.write_seconds += time.perf_counter() - t0
        self._dirty = True

    def _read(self, n: int) -> bytes:
        if self._timed_fd >= 0:
            return self._read_timed(n)
        try:
            data = read_exact(self.rfile, n, self.peer)
        except (FileAccessError, OSError, ValueError) as e:
            raise self.lost(str(e)) from None
        self.received += len(data)
        return data

    def _poll_ms(self) -> int:
        if self.timeout is None:
            return -1
        return min(int(self.timeout * 1000) + 1, 2**31 - 1)  # poll's int: ~24 days at most

    def wait_untimed(self) -> None:
        """Wait, for as long as it takes, until the peer sends something or
        closes the channel (a server between requests: a client may
        legitimately pause there); the frame then read is timed as usual.
        Flushes what we wrote first (the peer may be waiting for it)."""
        if self._timed_fd < 0:
            return
        self.flush()
        try:
            if self.rfile.peek(1):  # type: ignore[attr-defined]
                return
        except (OSError, ValueError):
            return  # the read that follows reports it
        poller = select.poll()
        poller.register(self._timed_fd, select.POLLIN)
        poller.poll()

    def _read_timed(self, n: int) -> bytes:
        """n bytes (fewer only at the end of the stream), waiting at most
        ``timeout`` seconds at a time for the peer's next byte."""
        buf = bytearray(n)
        view = memoryview(buf)
        have = 0
        poller = None
        while have < n:
            try:
                got = self.rfile.readinto(view[have:])  # type: ignore[attr-defined]
            except BlockingIOError:
                got = None
            except (OSError, ValueError) as e:
                raise self.lost(f"reading failed: {getattr(e, 'strerror', None) or e}") from None
            if got is None:  # nothing there yet: wait for it, for so long
                if poller is None:
                    poller = select.poll()
                    poller.register(self._timed_fd, select.POLLIN)
                if not poller.poll(self._poll_ms()):
                    raise self.timed_out()
                continue
            if not got:
                break  # the end of the stream
            have += got
        self.received += have
        return bytes(view[:have])

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            t0 = time.perf_counter()
            try:
                self.wfile.flush()
            except (OSError, ValueError) as e:
                raise self.lost(f"writing failed: {getattr(e, 'strerror', None) or e}") from None
            finally:
                self.write_seconds += time.perf_counter() - t0

    def lost(self, why: str) -> SyncError:
        """The error for a broken channel (overridden to add ssh's own words)."""
        return ConnectionLostError(f"connection to {self.peer} lost: {why}")

    # -- handshake -------------------------------------------------------
    def send_magic(self) -> None:
        self._write(MAGIC)
        self.flush()

    def expect_magic(self) -> None:
        head = self._read(len(MAGIC))
        if head != MAGIC:
            if not head:
                raise self.lost("it closed the connection before saying anything")
            raise ProtocolError(
                f"{self.peer} did not answer as pydelta serve (it sent {head!r}): "
                "does a shell startup file there print to standard output?"
            )

    # -- frames ------------------------------------------------------------
    def send(self, kind: bytes, payload: Buffer = b"") -> None:
        self._write(_HEAD.pack(kind, len(payload)))
        if len(payload):
            self._write(payload)

    def send_json(self, obj: Dict[str, Any]) -> None:
        self.send(JSON, json.dumps(obj, separators=(",", ":")).encode())

    def send_fail(self, message: str) -> None:
        self.send(FAIL, " ".join(str(message).split()).encode("utf-8", "replace"))

    def send_stream(self, pieces: Iterator[Buffer]) -> None:
        """Send the pieces as data frames of at most DATA_CHUNK bytes, then END."""
        for piece in pieces:
            view = memoryview(piece).cast("B")
            for i in range(0, len(view), DATA_CHUNK):
                self.send(DATA, view[i : i + DATA_CHUNK])
        self.send(END)

    def recv(self) -> Tuple[bytes, bytes]:
        """The next frame as (kind, payload); flushes what we wrote first."""
        self.flush()
        head = self._read(_HEAD.size)
        if len(head) < _HEAD.size:
            if not head:
                raise self.lost("it closed the connection")
            raise self.lost("the stream ended inside a frame")
        kind, size = _HEAD.unpack(head)
        if kind not in _LIMITS or size > _LIMITS[kind]:
            raise ProtocolError(f"{self.peer} sent a malformed frame (kind {kind!r}, {size} bytes)")
        if size <= READ_STEP:
            payload = self._read(size) if size else b""
            if len(payload) < size:
                raise self.lost("the stream ended inside a frame")
            return kind, payload
        parts = []
        left = size
        while left:
            part = self._read(min(left, READ_STEP))
            if not part:
                raise self.lost("the stream ended inside a frame")
            parts.append(part)
            left -= len(part)
        return kind, b"".join(parts)

    def recv_json(self) -> Dict[str, Any]:
        """The next frame, which must be a JSON object; a FAIL raises RemoteError."""
        kind, payload = self.recv()
        if kind == FAIL:
            raise RemoteError(payload.decode("utf-8", "replace"))
        if kind != JSON:
            raise ProtocolError(f"{self.peer} sent a {kind!r} frame where a message was expected")
        return self._json(payload)

    def _json(self, payload: bytes) -> Dict[str, Any]:
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than we parse
            raise ProtocolError(f"{self.peer} sent a message that is not JSON") from None
        if not isinstance(obj, dict):
            raise ProtocolError(f"{self.peer} sent a message that is not a JSON object")
        return obj

    def recv_stream(
        self, on_json: Optional[Callable[[Dict[str, Any]], None]] = None
    ) -> Iterator[bytes]:
        """Yield the payloads of a data stream up to its END; a FAIL raises RemoteError.

        A JSON frame inside the stream is a ProtocolError, unless ``on_json``
        takes it (a request the sender makes while streaming, see refine.py).
        """
        while True:
            kind, payload = self.recv()
            if kind == DATA:
                yield payload
            elif kind == END:
                return
            elif kind == FAIL:
                raise RemoteError(payload.decode("utf-8", "replace"))
            elif on_json is not None:
                on_json(self._json(payload))
            else:
                raise ProtocolError(f"{self.peer} sent a message inside a data stream")

    def drain_stream(self) -> None:
        """Skip the rest of a data stream (after a local failure), keeping frames in step."""
        try:
            for _ in self.recv_stream():
                pass
        except RemoteError:
            pass


class DataWriter:
    """A writable binary file object that sends what it is given as data frames.

    Small writes are gathered into frames of DATA_CHUNK bytes; :meth:`flush`
    sends what is gathered (it does not end the stream: the caller sends END
    or FAIL).
    """

    def __init__(self, channel: Channel) -> None:
        self._ch = channel
        self._buf = bytearray()
        self.name = f"the connection to {channel.peer}"

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        if not self._buf and n >= DATA_CHUNK:
            whole = n - n % DATA_CHUNK
            for i in range(0, whole, DATA_CHUNK):
                self._ch.send(DATA, view[i : i + DATA_CHUNK])
            view = view[whole:]
        self._buf += view
        while len(self._buf) >= DATA_CHUNK:
            self._ch.send(DATA, self._buf[:DATA_CHUNK])
            del self._buf[:DATA_CHUNK]
        return n

    def flush(self) -> None:
        if self._buf:
            self._ch.send(DATA, self._buf)
            self._buf = bytearray()

    def writable(self) -> bool:
        return True
