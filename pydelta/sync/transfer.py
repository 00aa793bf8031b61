"""Moving one file: the receiving end's basis, signature and patch, and the
sending end's delta stream, with its adaptive compression gate.

The receiving end sends the signature of its old copy (or of what an earlier
attempt left), the sending end scans its new file against it and streams
back a delta, and the receiving end patches into a temporary file beside the
target that replaces it only once its size and BLAKE3 digest are verified.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import stat
import threading
import time
from typing import Any, BinaryIO, Callable, Dict, Iterator, Optional, Tuple, Union

from .._io import AtomicFile, current_umask
from .._threads import resolve_threads
from ..backends import backend
from ..delta import delta_pieces, use_compression
from ..errors import FileAccessError, ProtocolError, PydeltaError, RemoteError, message, os_reason
from ..formats import native as fmt
from ..formats.native import BadInstruction, read_op
from ..patch import Patcher
from ..results import DeltaStats, Progress
from ..signature import Signature, iter_signature
from .fs import open_in, open_parent
from .refine import Answerer, can_refine, refined_pieces
from .resume import UpdateResume, after_prefix
from .shortsig import shorten
from .sigcache import SigCache
from .wire import END, Channel, DataWriter, Failed

#: A delta no longer than this is held back to see whether it only says
#: "the whole old file, unchanged": then the target is verified in place
#: (hashed) instead of being rewritten.
IDENTITY_MAX = 1024


def identity_digest(head: bytes, basis_size: int) -> Optional[bytes]:
    """If this whole delta says "the old file unchanged", the digest it promises."""
    hs = fmt.DELTA_HEADER.size
    try:
        h = fmt.parse_delta_header(head[:hs], "delta")
    except PydeltaError:
        return None
    if h.basis_size != basis_size:
        return None
    pos, end = hs, len(head)
    try:
        op = read_op(head, pos, end)
        if basis_size:
            if op is None or op.code != fmt.OP_COPY or (op.a, op.b) != (0, basis_size):
                return None
            pos += op.head
            op = read_op(head, pos, end)
    except BadInstruction:
        return None
    if op is None or op.code != fmt.OP_END or pos + op.head != end or op.a != basis_size:
        return None
    return op.digest


def applied_mode(mode: Optional[int], new_file: bool) -> Optional[int]:
    """The permission bits a received file gets from the ones its sender sent.

    As rsync does by default: set-user-ID, set-group-ID and sticky bits are
    dropped, and a file created here also loses the bits this process's
    umask masks. ``None`` (no mode sent) leaves the default: an existing
    file keeps its mode, a new one gets 0o666 & ~umask.
    """
    if mode is None:
        return None
    mode &= 0o777
    if new_file:
        mode &= ~current_umask()
    return mode


class Incoming:
    """The receiving end of one file: its basis, the signature, the patch.

    The basis is the existing target or, when there is none, what an
    earlier attempt left of it (``.NAME.pydelta-partial`` beside it: a first
    copy that broke off resumes from there) or else an empty file (the delta
    is then all literal). Nothing replaces the target before :meth:`finish`
    has verified the result; a first copy that fails keeps what it wrote as
    the partial file, when that is more than the partial file had.

    The target's directory is opened once, here, without following links
    below ``root`` (:func:`.fs.open_parent`); the basis, the temporary
    output, the partial file and the final rename all go through that
    descriptor, so the file cannot land outside the tree even if a directory
    is swapped for a symbolic link while the delta is on its way.

    Args:
        root, rel: the tree and the '/'-separated path of the file in it.
        fsync, threads, progress: as for the patch and signature.
        name: how messages name the delta.
        max_size: the size announced for the result; a delta that makes
            more is refused as soon as it does.
        cache: the signature cache for an existing target (see .sigcache).
    """

    def __init__(
        self,
        root: str,
        rel: str,
        *,
        fsync: bool,
        threads: Optional[int],
        progress: Progress = None,
        name: str = "delta",
        max_size: Optional[int] = None,
        cache: Optional[SigCache] = None,
    ) -> None:
        self.cache = cache
        self._sig: Optional[bytes] = None  # the signature sent, kept for the cache
        self._ok = False  # finished: the result (or the old file) verified
        self.target = os.path.join(root, *str(rel).split("/"))
        self.mode: Optional[int] = None  #: the mode the sender sent (see applied_mode)
        self.mtime_ns: Optional[int] = None
        self.max_size = max_size
        self.full_size: Optional[int] = None  #: the announced size, once a resume cut max_size
        self._fsync = fsync
        self._threads = threads
        self.progress = progress  #: called with the bytes of the result done
        self._name = name
        self._dir, self._base = open_parent(root, rel)
        try:
            self._open_basis()
        except BaseException:
            os.close(self._dir)
            raise
        self._head = bytearray()
        self._patcher: Optional[Patcher] = None
        self._out_fd = -1  # the result's inode, to key its signature by (.sigcache)
        self._sig_tail = b""  # the last bytes of the signature sent: its digest

    def _open_basis(self) -> None:
        target = self.target
        try:
            st: Optional[os.stat_result] = os.stat(
                self._base, dir_fd=self._dir, follow_symlinks=False
            )
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise FileAccessError(f"cannot access {target}: {os_reason(e)}") from None
        if st is not None and stat.S_ISLNK(st.st_mode):
            st = None  # a link is replaced by the file (the rename), never written through
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise FileAccessError(f"{target} is a directory: cannot replace it with a file")
            if not stat.S_ISREG(st.st_mode):
                raise FileAccessError(f"{target} is not a regular file: not replaced")
        self.have = st is not None
        #: an existing file's interrupted update (see .resume)
        self.resume = UpdateResume(self._dir, self._base) if self.have else None
        self._partial = "." + self._base + ".pydelta-partial"
        self.partial = os.path.join(os.path.dirname(target), self._partial)
        self.resumed = False  #: the basis is what an earlier attempt left
        if self.have:
            self.basis: BinaryIO = open_in(self._dir, self._base, target)
        else:
            try:
                self.basis = open_in(self._dir, self._partial, self.partial)
                self.resumed = True
            except FileAccessError:  # none (or not a regular file): start from nothing
                import tempfile  # here: it loads shutil and random (start-up)

                self.basis = tempfile.TemporaryFile()
        self.basis_size = os.fstat(self.basis.fileno()).st_size

    def resume_offer(self) -> Optional[Dict[str, Any]]:
        """What an interrupted update left to offer the sender (see .resume), or None."""
        if self.resume is None:
            return None
        return self.resume.offer(self.max_size, self.mtime_ns)

    def resume_answer(self, answer: Any) -> None:
        """The sender's answer: the delta then makes only the rest after the prefix."""
        if self.resume is None:
            return
        self.full_size = self.max_size
        self.resume.accepted(answer)
        if self.resume.offset and self.max_size is not None:
            self.max_size -= self.resume.offset

    def signature(
        self, strong_len: Optional[int] = None, strong_hash: str = "blake3"
    ) -> Iterator[bytes]:
        """The signature of the basis, as sent (its digest is kept to check the delta by).

        ``strong_len``: bytes of strong sum per block on the wire (default
        16); a shorter signature is the full one with its sums cut
        (.shortsig), so the cache serves and keeps full-length entries either
        way. ``strong_hash``: the block sums, "blake3" or "xxh3" (the cache
        serves only an entry of that kind).
        """
        pieces = self._signature(strong_hash)
        if strong_len is not None and strong_len != fmt.DEFAULT_STRONG_LEN:
            pieces = shorten(pieces, strong_len)
        for piece in pieces:
            self._sig_tail = (self._sig_tail + bytes(piece[-36:]))[-36:]
            yield piece

    def _signature(self, strong_hash: str) -> Iterator[bytes]:
        """The basis's full-length signature: an existing target's comes from
        the signature cache when it holds one of that kind."""
        self.basis.seek(0)
        cache = self.cache if self.have else None
        hit = cache.get(self.basis.fileno(), strong_hash) if cache is not None else None
        pieces = (
            [hit]
            if hit is not None
            else iter_signature(self.basis, threads=self._threads, strong_hash=strong_hash)
        )
        kept = []
        for piece in pieces:
            if cache is not None:
                kept.append(bytes(piece))
            yield piece
        if cache is not None:
            # kept, not yet written: an entry for this file only if finish()
            # finds it unchanged (an update replaces it, its entry never serves)
            self._sig = b"".join(kept)

    def feed(self, data: bytes) -> None:
        if self._patcher is None:
            self._head += data
            if len(self._head) > IDENTITY_MAX:
                self._start_patch()
            return
        self._patcher.write(data)

    def _start_patch(self) -> None:
        skip = self.resume.offset if self.resume is not None else 0
        if skip:  # the delta makes the rest after the partial file's verified prefix
            out = self.resume.output(self.target, self._fsync)  # type: ignore[union-attr]
        else:
            out = AtomicFile(self.target, fsync=self._fsync, dir_fd=self._dir)
        progress = self.progress
        if skip and progress is not None:
            progress = functools.partial(after_prefix, progress, skip)
        out.mode = applied_mode(self.mode, new_file=not self.have)
        out.mtime_ns = self.mtime_ns
        sig_digest = self._sig_tail[:32] if len(self._sig_tail) == 36 else None
        # the patch signs the result as it writes it, for the next sync (.sigcache)
        sign = self.cache.sign_params(self.max_size) if self.cache and not skip else None
        try:
            self._patcher = Patcher(
                self.basis,
                out,
                progress=progress,
                delta_name=self._name,
                fsync=self._fsync,
                max_size=self.max_size,
                native_only=True,
                old_name=self.target,
                sig_digest=sig_digest,
                sign=sign,
            )
            if sign is not None:
                self._out_fd = os.dup(out.fh.fileno())  # type: ignore[union-attr]
        except BaseException:
            if self._patcher is not None:
                self._patcher.abort()
            out.abort()
            raise
        head, self._head = self._head, bytearray()
        self._patcher.write(head)

    def finish(self) -> str:
        """End of the delta: verify and publish; returns the action taken."""
        if self._patcher is None:
            resumed = self.resume is not None and self.resume.offset
            if self.have and not resumed and self._unchanged():
                if self.resume is not None:
                    self.resume.drop()  # stale
                self._ok = True
                if self.cache is not None and self._sig is not None:
                    # the mode/time just set changed its ctime: same content, new key
                    with contextlib.suppress(OSError):
                        fd = self.basis.fileno()
                        self.cache.put(os.fstat(fd), fd, self._sig)
                return "unchanged"
            self._start_patch()
        assert self._patcher is not None
        self._patcher.close()
        self._ok = True
        if self.cache is not None and self.have:
            # the old file is replaced: its entry (a hit, or signed ahead) is stale
            self.cache.forget(self.basis.fileno())
        if self._out_fd >= 0 and self.cache is not None and self._patcher.signature:
            # keyed by the file as it stands now, renamed, its mode and time set
            self.cache.put_written(self._out_fd, self._patcher.signature)
        with contextlib.suppress(OSError):
            # done with (and a leftover beside an existing file is stale)
            os.unlink(self._partial, dir_fd=self._dir)
        if self.resume is not None:
            self.resume.drop()
        return "updated" if self.have else "created"

    def _unchanged(self) -> bool:
        """The delta is "old file as is": verify the old file against its digest in place."""
        want = identity_digest(bytes(self._head), self.basis_size)
        if want is None:
            return False
        hasher = backend.Blake3()
        nthreads = resolve_threads(self._threads)
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        self.basis.seek(0)
        off = 0
        while off < self.basis_size:
            n = self.basis.readinto(view)
            if not n:
                return False
            hasher.update(view[:n], threads=nthreads)  # tree-parallel: the same digest
            off += n
            if self.progress is not None:
                self.progress(off)
        if hasher.digest() != want:
            return False  # the patch then says what is wrong
        # on the open file (the target itself): no path to be redirected
        fd = self.basis.fileno()
        try:
            mode = applied_mode(self.mode, new_file=False)
            if mode is not None:
                os.fchmod(fd, mode)
            if self.mtime_ns is not None:
                os.utime(fd, ns=(time.time_ns(), self.mtime_ns))
        except (OSError, OverflowError, ValueError) as e:
            why = os_reason(e) if isinstance(e, OSError) else str(e)
            raise FileAccessError(f"cannot set the times or mode of {self.target}: {why}") from None
        return True

    def close(self) -> None:
        """Drop any unfinished output (a published result stays) and the basis.

        An unfinished first copy is kept as the partial file if it got further
        than the partial file it started from; an unfinished update, with a
        sidecar that says what it is a prefix of (see .resume).
        """
        p = self._patcher
        try:
            if not self._ok and self.cache is not None and self._sig is not None:
                # this sync failed: the cached signature may be the cause, drop it
                with contextlib.suppress(OSError, ValueError):
                    self.cache.forget(self.basis.fileno())
            if p is not None and not p.done:
                if self.resume is not None:
                    size = self.max_size if self.full_size is None else self.full_size
                    keep = self.resume.keep(p.produced, size, self.mtime_ns)
                else:
                    keep = self._partial if p.produced > self.basis_size else None
                p.abort(keep_as=keep)
            if self.resume is not None:
                self.resume.close()
            self.basis.close()
        finally:
            if self._out_fd >= 0:
                os.close(self._out_fd)
                self._out_fd = -1
            if self._dir >= 0:
                os.close(self._dir)
                self._dir = -1


#: The most bytes a received signature may hold when its blocks are of the
#: largest automatic size (1 MiB): the signature of a ~44 TiB basis.
MAX_SIGNATURE = 1 << 30


def signature_limit(block_len: int, strong_len: int) -> int:
    """The most bytes a signature sync makes with these parameters can hold.

    sync signs its basis with the automatic block length (see
    :func:`~pydelta.default_block_len`), which below its 1 MiB cap is at
    least the square root of the basis size: such a basis has at most
    block_len + 3 blocks, so its signature has at most that many entries.
    With 1 MiB blocks the basis can be any size; then MAX_SIGNATURE.
    """
    if block_len >= fmt.AUTO_MAX_BLOCK:
        return MAX_SIGNATURE
    return fmt.SIG_HEADER.size + (block_len + 3) * (8 + strong_len) + fmt.SIG_TRAILER.size


def recv_signature(
    ch: Channel, on_json: Optional[Callable[[Dict[str, Any]], None]] = None
) -> bytes:
    """Receive a signature stream, checking it as it arrives.

    Its magic and header are checked as soon as they are in, and what is
    held never exceeds :func:`signature_limit` of its header: a peer that
    sends something else, or a signature without end, ends the session
    (ProtocolError) instead of filling memory. ``on_json`` takes a JSON frame
    inside the stream (a resume offer, see .resume). A FAIL frame raises
    RemoteError as for any stream.
    """
    buf = bytearray()
    limit: Optional[int] = None
    name = f"the signature from {ch.peer}"
    for piece in ch.recv_stream(on_json):
        buf += piece
        if limit is None:
            if buf[:4] != fmt.SIG_MAGIC[: len(buf[:4])]:
                kind = fmt.describe_magic(bytes(buf[:4]))
                what = "data that is not a pydelta file" if kind.startswith("not ") else kind
                raise ProtocolError(f"{ch.peer} sent {what} where a pydelta signature was expected")
            if len(buf) >= fmt.SIG_HEADER.size:
                try:
                    block_len, strong_len = fmt.parse_sig_header(
                        bytes(buf[: fmt.SIG_HEADER.size]), name
                    )
                except PydeltaError as e:
                    raise ProtocolError(str(e)) from None
                limit = signature_limit(block_len, strong_len)
        if limit is not None and len(buf) > limit:
            raise ProtocolError(
                f"{ch.peer} sent a signature of more than {limit} bytes, more than any "
                f"basis can have with its block size of {block_len} bytes: refused"
            )
    return bytes(buf)


def delta_limit(size: int) -> int:
    """The most bytes an honest delta of a ``size``-byte result can take.

    Every byte of the result comes from a literal (its bytes plus a few of
    op header per 256 KiB) or a copy (at most 21 bytes per block of at least
    1 KiB), so a delta is never much longer than its result.
    """
    return size + size // 16 + (16 << 20)


def receive(ch: Channel, inc: Incoming, refine: bool = False) -> str:
    """Feed the delta stream on ch into inc and finish it; reads the stream to its end.

    With an announced size (``inc.max_size``) a stream longer than
    :func:`delta_limit` of it ends the session (ProtocolError): after a
    failure the rest of the stream is read and dropped, but not forever.
    ``refine`` (the feature agreed): answer the sender's refine requests
    inside the stream (:class:`.refine.Answerer`).
    """
    failure: Optional[BaseException] = None
    limit = None if inc.max_size is None else delta_limit(inc.max_size)
    got = 0
    answer = Answerer(ch, inc.basis, inc.basis_size) if refine else None
    try:
        for piece in ch.recv_stream(answer):
            got += len(piece)
            if limit is not None and got > limit:
                inc.close()
                raise ProtocolError(
                    f"{ch.peer} sent more than {limit} bytes of delta for a "
                    f"{inc.max_size}-byte file: refused"
                )
            if failure is None:
                with Failed() as f:
                    inc.feed(piece)
                if f.error is not None:
                    failure = f.error
                    inc.close()
    except RemoteError as e:  # the sender gave up on this file
        if failure is None:
            raise
        # both ends failed: the sender's FAIL decides what follows (no reply
        # to a put, no stats after a get), so it is what is raised
        raise RemoteError(f"{e} (and here: {message(failure)})") from None
    if failure is not None:
        raise failure
    return inc.finish()


class LinkGate:
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


def _position(new: Union[str, BinaryIO]) -> Optional[int]:
    """Where the scan of new starts (None: a path, opened at its start)."""
    try:
        return None if isinstance(new, str) else new.tell()
    except (AttributeError, OSError, ValueError):
        return -1


def send_delta(
    ch: Channel,
    sig_data: bytes,
    new: Union[str, BinaryIO],
    *,
    progress: Progress,
    threads: Optional[int],
    compress: Optional[bool],
    level: int,
    digest: Optional[Callable[[], bytes]] = None,
    refine: bool = False,
) -> DeltaStats:
    """Make the delta of new against the received signature and stream it, then END.

    ``compress=None`` compresses literals adaptively (see :class:`LinkGate`).
    ``digest``: NEW's BLAKE3 computed meanwhile (:mod:`.pipeline`).
    ``refine`` (the feature agreed, ``new`` a regular file): with refinement
    rounds (:mod:`.refine`).
    """
    name = f"signature from {ch.peer}"
    fmt.parse_sig_header(sig_data[: fmt.SIG_HEADER.size], name)
    sig = Signature(sig_data, name)
    zlit = use_compression(compress, level)
    nthreads = resolve_threads(threads)
    gate = LinkGate(ch, nthreads) if compress is None and zlit else None
    writer = DataWriter(ch)
    stats = DeltaStats()
    if digest is not None and _position(new) != 0:
        digest = None  # the pre-hash covers NEW from its start; the scan starts elsewhere
    kw = dict(progress=progress, stats=stats, threads=nthreads, compress=zlit, level=level)
    if refine and can_refine(new):

        def flush() -> None:
            writer.flush()
            ch.flush()

        pieces = refined_pieces(ch, sig, new, gate=gate, flush=flush, digest=digest, **kw)  # type: ignore[arg-type]
    else:
        pieces = delta_pieces(sig, new, gate=gate, digest=digest, **kw)  # type: ignore[arg-type]
    for piece in pieces:
        writer.write(piece)
    writer.flush()
    ch.send(END)
    return stats
