"""The serving end of a sync (``pydelta serve``): answers one client's requests."""

from __future__ import annotations

import os
import signal
import stat
import sys
from typing import IO, Any, Callable, Dict, Optional

from .._version import __version__
from ..errors import ConnectionLostError, PeerSilentError, PydeltaError, RemoteError, message
from . import compare, fs, presign, shortsig
from .bwlimit import TokenBucket
from .fs import make_link
from .messages import (
    PROTOCOL,
    Bye,
    Delete,
    Get,
    Hello,
    Mkdir,
    Put,
    Request,
    Stat,
    Symlink,
    UnknownRequest,
    Walk,
    agree_features,
    decode,
)
from .pipeline import prehashing
from .resume import OfferTaker, answer_offer
from .sigcache import SigCache
from .transfer import Incoming, receive, recv_signature, send_delta
from .wire import DEFAULT_TIMEOUT, Channel, Failed, default_timeout

#: The requests of features "compare" and "compare-ahead" (.compare): op -> (feature, handler).
COMPARE_OPS = {
    "digests": (compare.FEATURE, compare.serve_digests),
    "touch": (compare.FEATURE, compare.serve_touch),
    "hash": (compare.AHEAD, compare.serve_hash),
    "hashed": (compare.AHEAD, compare.serve_hashed),
}


class Server:
    """One session with a client over a channel."""

    def __init__(self, ch: Channel, threads: Optional[int]) -> None:
        self.ch = ch
        self.threads = threads
        self._handlers: Dict[type, Callable[[Any], None]] = {
            Stat: self.stat,
            Walk: self.walk,
            Mkdir: self.mkdir,
            Delete: self.delete,
            Put: self.put,
            Get: self.get,
            Symlink: self.symlink,
        }
        self.features: frozenset = frozenset()
        #: the receiving end's signature cache (None: off); the results this
        #: session writes are signed into it as they are written
        self.cache = SigCache.open()
        self.digests = compare.Digests(threads)  # folder pushes (feature "compare")
        self.presigner = presign.Presigner(self.cache)  # ... and feature "presign"

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.digests.close()  # background hashing (feature "compare-ahead")
            self.presigner.close()

    def _run(self) -> None:
        ch = self.ch
        ch.send_magic()
        ch.expect_magic()
        hello = ch.recv_json()
        if hello.get("op") != Hello.op or hello.get("proto") != PROTOCOL:
            ch.send_fail(
                f"unsupported sync protocol {hello.get('proto')!r} (this end speaks {PROTOCOL})"
            )
            ch.flush()
            return
        #: the optional protocol features both ends speak (see messages.FEATURES)
        self.features = agree_features(hello.get("features"))
        if self.cache is not None:  # sign and serve in the kind the peer asks for
            self.cache.strong_hash = shortsig.signing_hash(self.features)
        bwlimit = Hello.parse(hello).bwlimit
        if bwlimit and "bwlimit" in self.features:
            ch.limiter = TokenBucket(bwlimit)  # the client's --bwlimit holds our writes too
        ch.send_json(
            {
                "ok": True,
                "proto": PROTOCOL,
                "version": __version__,
                "features": sorted(self.features),
            }
        )
        while True:
            try:
                ch.wait_untimed()  # a client may pause between requests; not inside one
                raw = ch.recv_json()
            except PeerSilentError:
                raise  # it began a request and stopped
            except ConnectionLostError:
                return  # the client went away between requests
            op = raw.get("op")
            try:
                with Failed() as f:  # the handlers fail this way only before their first reply
                    if op == "presign" and presign.FEATURE in self.features:
                        ch.send_json(presign.serve_presign(self.presigner, raw))
                        continue
                    if op in COMPARE_OPS and COMPARE_OPS[op][0] in self.features:
                        ch.send_json(COMPARE_OPS[op][1](self.digests, raw))
                        continue
                    req: Request = decode(raw)
                    if isinstance(req, Bye):
                        ch.send_json({"ok": True})
                        ch.flush()
                        return
                    handler = self._handlers.get(type(req))
                    if handler is None:
                        raise UnknownRequest(f"unknown operation {op!r}")
                    handler(req)
                if f.error is not None:
                    ch.send_fail(message(f.error))
            except UnknownRequest as e:
                ch.send_fail(str(e))
            except (KeyError, TypeError, ValueError) as e:
                ch.send_fail(f"malformed {op} request: {type(e).__name__}: {e}")

    def stat(self, req: Stat) -> None:
        self.ch.send_json({"ok": True, **fs.stat_entry(fs.expand(req.path))})

    def walk(self, req: Walk) -> None:
        self.ch.send_json(
            {"ok": True, "entries": fs.walk(fs.expand(req.root), req.links or "skip")}
        )

    def mkdir(self, req: Mkdir) -> None:
        fs.mkdir(fs.expand(req.root), req.path)
        self.ch.send_json({"ok": True})

    def delete(self, req: Delete) -> None:
        fs.delete(fs.expand(req.root), req.path)
        self.ch.send_json({"ok": True})

    def symlink(self, req: Symlink) -> None:
        action = make_link(fs.expand(req.root), req.path, req.target)
        self.ch.send_json({"ok": True, "action": action})

    def put(self, req: Put) -> None:
        ch = self.ch
        self.presigner.wait(fs.expand(req.root), req.path)  # signed ahead (.presign)
        inc = Incoming(
            fs.expand(req.root),
            req.path,
            fsync=req.fsync,
            threads=self.threads,
            name=f"from {ch.peer}",
            max_size=req.size,
            cache=self.cache if req.cache else None,
        )
        try:
            inc.mode = req.mode
            inc.mtime_ns = req.mtime_ns
            offer = inc.resume_offer() if "resume" in self.features else None
            ch.send_json({"ok": True, "have": inc.have, **({"resume": offer} if offer else {})})
            short = req.strong_len if shortsig.FEATURE in self.features else None
            kind = req.strong_hash if shortsig.XXH3 in self.features else None
            kind = kind or "blake3"
            with Failed() as f:
                ch.send_stream(inc.signature(short, kind))
            if f.error is not None:
                ch.send_fail(message(f.error))  # ends the signature stream
                return
            with Failed() as f:
                try:
                    if offer is not None:  # the client's answer comes before the delta
                        inc.resume_answer(ch.recv_json())
                    action = receive(ch, inc, refine="refine" in self.features)
                except RemoteError:
                    return  # the client gave up on this file: no reply
            if f.error is not None:
                if shortsig.may_retry(short, kind) and shortsig.retryable(f.error):  # tried again
                    ch.send_json(shortsig.retry_reply(message(f.error)))
                else:
                    ch.send_fail(message(f.error))
                return
            ch.send_json({"ok": True, "action": action})
        finally:
            inc.close()

    def get(self, req: Get) -> None:
        ch = self.ch
        root = fs.expand(req.root)
        path = fs.resolve_followed(root, req.path) if req.follow else fs.resolve(root, req.path)
        fh = fs.open_source(path, follow=req.follow)
        try:
            st = os.fstat(fh.fileno())
            ch.send_json(
                {
                    "ok": True,
                    "size": st.st_size,
                    "mode": stat.S_IMODE(st.st_mode),
                    "mtime_ns": st.st_mtime_ns,
                }
            )
            with prehashing(fh, self.threads) as take:  # while the client signs
                taker = OfferTaker() if "resume" in self.features else None
                try:
                    sig = recv_signature(ch, taker)
                except RemoteError:
                    return  # the client could not make its signature
                skip = answer_offer(ch, fh, taker and taker.offer, st.st_size)
                with Failed() as f:
                    stats = send_delta(
                        ch,
                        sig,
                        fh,
                        progress=None,
                        threads=self.threads,
                        compress=req.compress,
                        level=req.level,
                        digest=take(),
                        refine="refine" in self.features,
                    )
            if f.error is not None:
                ch.send_fail(message(f.error))
            elif "stats" in self.features:  # after the stream: what it was made of
                ch.send_json({"ok": True, "literal": stats.literal, "matched": stats.copied + skip})
        finally:
            fh.close()


def serve(
    rfile: IO[bytes],
    wfile: IO[bytes],
    *,
    threads: Optional[int] = None,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
) -> None:
    """Run the remote end of the sync protocol over a pair of binary streams.

    This is what ``pydelta serve`` runs on standard input and output when
    ``pydelta sync`` starts it over ssh; run it over any other channel (a
    socket, a paramiko channel, a subprocess pipe) and point a
    :class:`~pydelta.SyncClient` at the other end. Returns when the client
    says goodbye or closes the channel between requests.

    ``timeout``: the most seconds the client may stay silent inside a
    request (between requests it may pause for as long as it likes); 0 or
    None: no limit (see :class:`~pydelta.sync.wire.Channel`).

    Raises:
        ConnectionLostError: the channel broke in the middle of a request, or
            the client was silent there for ``timeout`` seconds (any file
            being written is dropped; its old content stays).
        ProtocolError: the client does not speak the sync protocol.

    Example:
        >>> import sys, pydelta
        >>> pydelta.serve(sys.stdin.buffer, sys.stdout.buffer)  # doctest: +SKIP
    """
    ch = Channel(rfile, wfile, "the client", timeout)
    try:
        Server(ch, threads).run()
    finally:
        ch.release()


def _serve_stdio() -> None:
    """Serve on standard input and output."""
    serve(sys.stdin.buffer, sys.stdout.buffer, timeout=default_timeout())


def serve_main() -> int:
    """``pydelta serve``: serve on standard input and output; returns the exit status.

    A hang-up or termination unwinds like an error (any unfinished file is
    dropped); errors are one line on standard error, as in the CLI.
    """

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(1)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        _serve_stdio()
        return 0
    except KeyboardInterrupt:
        text, code = "interrupted", 130
    except (PydeltaError, OSError) as e:
        text, code = message(e), 1
    try:
        sys.stderr.write(f"pydelta: error: {' '.join(text.split())}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return code
