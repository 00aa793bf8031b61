"""Refinement rounds: finer signatures over what did not match, while it pays.

A one-round delta pays a whole block for any change inside it: on a 1 GiB
file (32 KiB blocks) a 64-byte edit costs 32 KiB. Sync has a channel both
ways, so the sending end can ask for more: after the first scan it knows
which stretches of NEW are literal and which copies surround them. For a
literal run between a copy ending at old offset ``p`` and one starting at
``q`` the old bytes in ``[p, q)`` are where an edit in place came from
(for a long run only its two edges are worth a look: the interior is new
data). The sender names those old *windows* and a smaller block length;
the receiver answers with the signature entries of the blocks of the
windows (:func:`window_blocks`: whole blocks from each window's start, and
one more ending at its end); the sender rescans just its literal runs
against them with the C delta scan and turns what matched into copies.
This recurses, 8 times finer each round (32 KiB -> 4 KiB -> 512 -> 64 bytes),
for runs that gained in the round before, and stops when the entries would
cost more than half the literal bytes they could replace. A 64-byte edit
then costs a few hundred bytes instead of a block.

Both ends use this only when they agreed the ``refine`` feature in hello.
The requests travel inside the delta stream as JSON frames (the receiver
answers each with a data stream of entries, or an empty one to decline), so
the receiver keeps patching what came before. The sender holds back only
the part of the delta from a literal run that follows a copy up to a
segment's end (:data:`SEGMENT` bytes of NEW, or :data:`HOLD_LITERAL`
literal bytes), as records without their data: literal bytes are read
again from NEW when the segment is written out. Everything else streams as
before, so a file with no copies (a first copy, a retune) is unaffected.
The result is verified by its BLAKE3 digest as always: a refined copy that
were wrong would fail the file, never corrupt it.
"""

from __future__ import annotations

import base64
import os
import stat
import struct
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

from ..backends import backend
from ..delta import delta_pieces
from ..errors import ProtocolError, RemoteError
from ..formats import literals
from ..formats import native as fmt
from ..formats.native import get_varint, read_op, varint
from ..results import DeltaStats, Progress
from ..signature import Signature
from .wire import END, Channel

#: The feature name agreed in hello (messages.FEATURES).
FEATURE = "refine"
#: Strong hash bytes per refinement entry (the result's digest still guards it).
STRONG_LEN = 8
ENTRY_LEN = 8 + STRONG_LEN
#: Each round's block length is the previous one's divided by this.
FACTOR = 8
#: No round uses blocks shorter than this (an entry would cost a quarter of one).
MIN_BLOCK = 64
#: A round runs only if its entries cost at most this fraction of the
#: literal bytes they could replace.
COST_RATIO = 0.5
#: A literal run longer than this many blocks is refined only at its edges.
LONG_RUN = 4
#: NEW bytes spanned by a held segment before it is refined and sent.
SEGMENT = 32 << 20
#: Literal bytes a held segment may hold before it is refined and sent.
HOLD_LITERAL = 32 << 20
#: Blocks one request may name (its reply is at most 4 MiB).
MAX_BLOCKS = 1 << 18
#: Requests one file may make, and bytes of windows beyond the basis size
#: the receiver hashes for one file, before it declines further requests.
MAX_REQUESTS = 4096
EXTRA_BUDGET = 64 << 20

#: A record of the held delta: (NEW offset, length, old offset or -1 for a literal).
Rec = Tuple[int, int, int]
Window = Tuple[int, int]


# -- the windows: both ends --------------------------------------------------------


def pack_windows(windows: List[Window]) -> str:
    """Sorted, disjoint [start, end) windows as text: varints (gap, length), base64."""
    out = bytearray()
    prev = 0
    for s, e in windows:
        out += varint(s - prev) + varint(e - s)
        prev = e
    return base64.b64encode(bytes(out)).decode("ascii")


def unpack_windows(text: Any, basis_size: int, block: int) -> List[Window]:
    """The windows of a request, checked: sorted, disjoint, inside the basis,
    each at least a block long, at most MAX_BLOCKS blocks in all.

    Raises:
        ProtocolError: anything else.
    """
    if not isinstance(text, str) or len(text) > 16 * MAX_BLOCKS:
        raise ProtocolError("malformed refine request (windows)")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ProtocolError("malformed refine request (windows not base64)") from None
    out: List[Window] = []
    pos = prev = blocks = 0
    try:
        while pos < len(raw):
            gap = get_varint(raw, pos, len(raw))
            n = gap and get_varint(raw, gap[1], len(raw))
            if not n:
                raise ProtocolError("malformed refine request (windows cut off)")
            s = prev + gap[0]
            e = s + n[0]
            if (out and gap[0] == 0) or n[0] < block or e > basis_size:
                raise ProtocolError("refine request names a window outside the old file")
            blocks += -(-n[0] // block)
            if blocks > MAX_BLOCKS:
                raise ProtocolError("refine request names too many blocks")
            out.append((s, e))
            prev, pos = e, n[1]
    except fmt.BadInstruction:
        raise ProtocolError("malformed refine request (bad varint)") from None
    return out


def window_blocks(windows: List[Window], block: int) -> List[int]:
    """Old offsets of the blocks a request stands for: from each window's
    start every whole block, then one ending at the window's end if the
    window is not a whole number of blocks."""
    offs: List[int] = []
    for s, e in windows:
        whole = (e - s) // block
        offs.extend(range(s, s + whole * block, block))
        if (e - s) % block:
            offs.append(e - block)
    return offs


# -- the receiving end ---------------------------------------------------------------


class Answerer:
    """Answers the refine requests that arrive inside a delta stream.

    Called with each JSON frame found in the stream; the entries are read
    from ``basis`` (the old file whose signature was sent). Declines (an
    empty reply) once the basis is closed (the file failed here) or the
    file's budget of requests and hashed bytes is spent.
    """

    def __init__(self, ch: Channel, basis: BinaryIO, basis_size: int) -> None:
        self._ch = ch
        self._basis = basis
        self._size = basis_size
        self._requests = 0
        self._budget = basis_size + EXTRA_BUDGET
        self._declined = False  # an honest sender asks no more after a decline

    def __call__(self, msg: Dict[str, Any]) -> None:
        if msg.get("op") != "refine":
            raise ProtocolError(f"{self._ch.peer} sent a message inside a delta stream")
        if self._declined:  # (requests are not data: no size limit would end them)
            raise ProtocolError(f"{self._ch.peer} asked to refine again after it was declined")
        block = msg.get("block")
        if not isinstance(block, int) or isinstance(block, bool) or not 1 <= block <= (1 << 20):
            raise ProtocolError("malformed refine request (block length)")
        windows = unpack_windows(msg.get("windows"), self._size, block)
        if not windows:  # (its empty answer would read as a decline)
            raise ProtocolError("malformed refine request (no windows)")
        hashed = sum(e - s for s, e in windows)
        self._requests += 1
        if self._basis.closed or self._requests > MAX_REQUESTS or hashed > self._budget:
            self._ch.send(END)  # declined
            self._declined = True
            return
        self._budget -= hashed
        self._ch.send_stream(self._entries(windows, block))

    def _entries(self, windows: List[Window], block: int) -> Iterator[bytes]:
        fd = self._basis.fileno()
        step = max(block, (4 << 20) // block * block)
        out = bytearray()
        for s, e in windows:
            whole_end = s + (e - s) // block * block
            pos = s
            while pos < whole_end:
                n = min(step, whole_end - pos)
                data = _pread(fd, n, pos)
                out += backend.sig_blocks(data, n, block, STRONG_LEN)
                pos += n
            if whole_end < e:
                out += backend.sig_blocks(_pread(fd, block, e - block), block, block, STRONG_LEN)
            if len(out) >= 1 << 20:
                yield bytes(out)
                out.clear()
        if out:
            yield bytes(out)


def _pread(fd: int, n: int, off: int) -> bytes:
    data = os.pread(fd, n, off)
    if len(data) != n:
        raise ProtocolError("the old file changed while refining")  # ends the session cleanly
    return data


# -- the sending end ---------------------------------------------------------------


class _Ranges:
    """A readable file over the concatenation of byte ranges of a descriptor."""

    def __init__(self, fd: int, ranges: List[Tuple[int, int]]) -> None:
        self._fd = fd
        self._ranges = ranges
        self._i = 0
        self._off = 0

    def readinto(self, view: memoryview) -> int:
        while self._i < len(self._ranges):
            start, length = self._ranges[self._i]
            if self._off < length:
                n = min(len(view), length - self._off)
                data = os.pread(self._fd, n, start + self._off)
                if not data:
                    raise OSError("the file got shorter while it was being sent")
                view[: len(data)] = data
                self._off += len(data)
                return len(data)
            self._i += 1
            self._off = 0
        return 0

    def read(self, n: int = -1) -> bytes:
        buf = bytearray(n if n >= 0 else 1 << 20)
        got = self.readinto(memoryview(buf))
        return bytes(buf[:got])


def _ops(pieces: Iterator[Any]) -> Iterator[Tuple[Any, memoryview]]:
    """(op, its bytes) of a delta scan's output after its header."""
    carry = b""
    for piece in pieces:
        view = memoryview(piece).cast("B")
        if carry:
            view = memoryview(carry + bytes(view))
        n, pos = len(view), 0
        while True:
            op = read_op(view, pos, n)
            if op is None or pos + op.head + op.payload > n:
                break
            end = pos + op.head + op.payload
            yield op, view[pos:end]
            pos = end
        carry = bytes(view[pos:])
    if carry:
        raise AssertionError("the delta scan ended inside an instruction")


class Refiner:
    """The sending end of one file's delta with refinement rounds.

    :meth:`pieces` yields the delta (header first, uncompressed ops) as
    :func:`~pydelta.delta.delta_pieces` would, asking ``ch`` for finer
    signatures of the old file where that pays.
    """

    def __init__(
        self,
        ch: Channel,
        sig: Signature,
        new: BinaryIO,
        *,
        progress: Progress,
        stats: DeltaStats,
        threads: int,
        flags: int,
        flush: Callable[[], None],
        digest: Optional[Callable[[], bytes]] = None,
    ) -> None:
        self._digest = digest  # NEW's BLAKE3 from elsewhere (sync/pipeline.py), or None
        self._ch = ch
        self._flush = flush
        self._sig = sig
        self._new = new
        self._fd = new.fileno()
        self._base = new.tell()  # the scan starts here (a resumed file: past its prefix)
        self._progress = progress
        self._stats = stats
        self._threads = threads
        self._flags = flags
        self._asking = True  # False once the receiver declined
        self.rounds = 0  #: requests made
        self.sig_bytes = 0  #: entry bytes received

    # -- the stream ------------------------------------------------------------
    def pieces(self) -> Iterator[Any]:
        self._stats.delta_size = 0
        for piece in self._pieces():
            self._stats.delta_size += len(piece)
            yield piece

    def _pieces(self) -> Iterator[Any]:
        sig = self._sig
        yield fmt.pack_delta_header(sig.info, self._flags)
        scan_stats = DeltaStats()
        scan = delta_pieces(
            sig,
            self._new,
            progress=self._progress,
            stats=scan_stats,
            threads=self._threads,
            compress=False,
            level=literals.DEFAULT_LEVEL,
            digest=self._digest,
        )
        next(scan)  # its own header (flags 0): ours replaces it
        held: List[Rec] = []
        held_lit = 0
        run = 0  # bytes of the literal run being held
        run_start = 0  # where in NEW that run began
        prev_end = left = -1  # old end of the last copy; of the one before the held part
        long_run = LONG_RUN * sig.info.block_len
        npos = 0
        last_copy = False  # the previous op was a copy: a literal now has a left anchor
        copied = literal = 0
        ended = False
        for op, raw in _ops(scan):  # (read to its end: the scan then closes its threads)
            if ended:
                raise AssertionError("the delta scan wrote past its END")
            if op.code == fmt.OP_END:
                if held:
                    c, lit = yield from self._refine_and_emit(held, left)
                    copied += c
                    literal += lit
                yield bytes(raw)
                ended = True
                continue
            if op.code == fmt.OP_COPY:
                length = op.b
                rec: Rec = (npos, length, op.a)
            else:
                length = op.a
                rec = (npos, length, -1)
            if held or (rec[2] < 0 and last_copy and self._asking):
                if not held:
                    left = prev_end  # the copy just before: the segment's left anchor
                held.append(rec)
                if rec[2] < 0:
                    held_lit += length
                    if last_copy:
                        run, run_start = length, npos
                    else:
                        run += length
                long = rec[2] < 0 and run > long_run
                if (
                    (rec[2] >= 0 and npos + length - held[0][0] >= SEGMENT)
                    or held_lit >= HOLD_LITERAL
                    # a long run (new data: a retrained tensor) is not refined:
                    # its edges could save at most a block or two, and each
                    # round's question would stall the stream until the
                    # receiver has caught up (measured: +30% time on the
                    # 1 GiB finetune push for 1.7% fewer bytes). The short
                    # runs held before it are; the rest of it streams.
                    or long
                ):
                    c, lit = yield from self._refine_and_emit(
                        held, left, skip_from=run_start if long else None
                    )
                    copied += c
                    literal += lit
                    held, held_lit = [], 0
            else:
                yield raw
                if rec[2] >= 0:
                    copied += length
                else:
                    literal += length
            last_copy = rec[2] >= 0
            if last_copy:
                prev_end = rec[2] + length
            npos += length
        if not ended:  # pragma: no cover - the scan always ends with END
            raise AssertionError("the delta scan ended without END")
        st = self._stats
        st.new_size = scan_stats.new_size
        st.copied, st.literal = copied, literal

    # -- one held segment ----------------------------------------------------------
    def _refine_and_emit(
        self, recs: List[Rec], left: int, skip_from: Optional[int] = None
    ) -> Iterator[Any]:
        """Refine the held records while it pays, then yield their ops.
        ``left``: the old end of the copy just before them (-1: none);
        ``skip_from``: literal runs starting at or after this NEW offset are
        emitted as they are (a long run). Returns (bytes copied, bytes literal)."""
        block = self._sig.info.block_len
        as_scanned = recs
        refined = False
        recs = _merge(recs)
        live_runs = {  # literal runs worth a look
            r[0] for r in recs if r[2] < 0 and (skip_from is None or r[0] < skip_from)
        }
        while self._asking:
            sub = block // FACTOR
            if sub < MIN_BLOCK:
                break
            plan = _plan(recs, live_runs, block, sub, self._sig.info.basis_size, left)
            if plan is None:
                break
            runs, windows, nblocks, gain = plan
            packed = pack_windows(windows)
            if nblocks * ENTRY_LEN + len(packed) > COST_RATIO * gain:
                break
            entries = self._ask(sub, packed, nblocks)
            if entries is None:
                break
            recs, live_runs = self._rescan(recs, runs, window_blocks(windows, sub), sub, entries)
            refined = True
            block = sub
        if not refined:  # the scan's own ops: byte for byte what one round sends
            recs = as_scanned
        copied = sum(r[1] for r in recs if r[2] >= 0)
        literal = sum(r[1] for r in recs if r[2] < 0)
        yield from self._emit(recs)
        if refined:
            # send it now, so the receiver patches while we scan on (the
            # segment's few ops would otherwise wait in the writer's buffer)
            self._flush()
        return copied, literal

    def _ask(self, block: int, packed: str, nblocks: int) -> Optional[bytes]:
        """Send a request; the entries, or None if the receiver declined."""
        ch = self._ch
        ch.send_json({"op": "refine", "block": block, "windows": packed})
        want = nblocks * ENTRY_LEN
        got = bytearray()
        try:
            for piece in ch.recv_stream():
                got += piece
                if len(got) > want:
                    raise ProtocolError(f"{ch.peer} answered a refine request with too much")
        except RemoteError as e:
            raise ProtocolError(f"{ch.peer} failed a refine request: {e}") from None
        self.rounds += 1
        self.sig_bytes += len(got)
        if not got:
            self._asking = False
            return None
        if len(got) != want:
            raise ProtocolError(f"{ch.peer} answered a refine request with too little")
        return bytes(got)

    def _rescan(
        self,
        recs: List[Rec],
        runs: List[int],
        offs: List[int],
        block: int,
        entries: bytes,
    ) -> Tuple[List[Rec], set]:
        """Scan the literal runs (indexes into recs) against the entries of
        the blocks at old offsets ``offs``; the records with what matched."""
        n = len(offs)
        body = fmt.pack_sig_header(block, STRONG_LEN) + entries + struct.pack("<QQ", n, n * block)
        sig = Signature(body + backend.blake3_digest(body) + fmt.SIG_END_MAGIC, "refinement")
        ranges = [(self._base + recs[i][0], recs[i][1]) for i in runs]
        found: List[Rec] = []  # (virtual NEW offset, length, real old offset or -1)
        vpos = 0
        for op, _ in _ops(_skip_header(self._subscan(sig, ranges))):
            if op.code == fmt.OP_END:
                continue  # (read to the end, so the scan finishes)
            if op.code == fmt.OP_LITERAL:
                found.append((vpos, op.a, -1))
                vpos += op.a
                continue
            voff, left = op.a, op.b
            while left:  # split at virtual block edges: blocks are not contiguous in OLD
                k, within = divmod(voff, block)
                take = min(left, block - within)
                found.append((vpos, take, offs[k] + within))
                vpos += take
                voff += take
                left -= take
        # back to real NEW offsets, run by run
        out: List[Rec] = []
        live: set = set()
        fi = 0
        vstart = 0
        run_set = set(runs)
        for i, r in enumerate(recs):
            if i not in run_set:
                out.append(r)
                continue
            start, length, _ = r
            vend = vstart + length
            pieces: List[Rec] = []
            while fi < len(found) and found[fi][0] < vend:
                v, ln, old = found[fi]
                cut = min(ln, vend - v)
                pieces.append((start + v - vstart, cut, old))
                if cut < ln:  # a copy or literal running into the next run
                    found[fi] = (v + cut, ln - cut, old + cut if old >= 0 else -1)
                    break
                fi += 1
            gained = any(p[2] >= 0 for p in pieces)
            merged = _merge(pieces)
            for p in merged:
                if p[2] < 0 and gained:
                    live.add(p[0])
            out.extend(merged)
            vstart = vend
        return _merge(out), live

    def _subscan(self, sig: Signature, ranges: List[Tuple[int, int]]) -> Iterator[Any]:
        return delta_pieces(
            sig,
            _Ranges(self._fd, ranges),  # type: ignore[arg-type]
            progress=None,
            stats=DeltaStats(),
            threads=1,
            compress=False,
            level=literals.DEFAULT_LEVEL,
        )

    def _emit(self, recs: List[Rec]) -> Iterator[bytes]:
        """The ops of the records (literal bytes read again from NEW)."""
        out = bytearray()
        for start, length, old in recs:
            if old >= 0:
                out += b"C" + varint(old) + varint(length)
            else:
                pos = 0
                while pos < length:
                    n = min(backend.LIT_MAX, length - pos)
                    data = os.pread(self._fd, n, self._base + start + pos)
                    if len(data) != n:
                        raise OSError("the file got shorter while it was being sent")
                    out += b"L" + varint(n)
                    out += data
                    pos += n
                    if len(out) >= 1 << 20:
                        yield bytes(out)
                        out.clear()
            if len(out) >= 1 << 20:
                yield bytes(out)
                out.clear()
        if out:
            yield bytes(out)


def _skip_header(pieces: Iterator[Any]) -> Iterator[Any]:
    it = iter(pieces)
    next(it)
    return it


def _merge(recs: List[Rec]) -> List[Rec]:
    """Adjacent literals joined, adjacent copies contiguous in OLD joined."""
    out: List[Rec] = []
    for r in recs:
        if out:
            s, ln, old = out[-1]
            if old < 0 and r[2] < 0:
                out[-1] = (s, ln + r[1], -1)
                continue
            if old >= 0 and r[2] == old + ln:
                out[-1] = (s, ln + r[1], old)
                continue
        out.append(r)
    return out


def _plan(
    recs: List[Rec], live: set, block: int, sub: int, basis_size: int, left: int = -1
) -> Optional[Tuple[List[int], List[Window], int, int]]:
    """The next round: (indexes of the runs to rescan, old windows, blocks, literal bytes).
    ``left``: the old end of the copy before the first record (-1: none)."""
    runs: List[int] = []
    wins: List[Window] = []
    gain = 0
    for i, (start, length, old) in enumerate(recs):
        if old >= 0 or start not in live or length < sub:
            continue
        if i:
            p = recs[i - 1][2] + recs[i - 1][1] if recs[i - 1][2] >= 0 else None
        else:
            p = left if left >= 0 else None
        q = recs[i + 1][2] if i + 1 < len(recs) and recs[i + 1][2] >= 0 else None
        mine: List[Window] = []
        span = min(length, LONG_RUN * block)
        if p is not None and q is not None and 0 <= q - p <= 2 * length and length <= span:
            mine.append((p, q))
        else:
            if p is not None:
                mine.append((p, p + span))
            if q is not None:
                mine.append((q - span, q))
        mine = [(max(0, s), min(basis_size, e)) for s, e in mine]
        mine = [(s, e) for s, e in mine if e - s >= sub]
        if mine:
            runs.append(i)
            wins.extend(mine)
            gain += min(length, sum(e - s for s, e in mine))
    if not runs:
        return None
    wins.sort()
    union: List[Window] = []
    for s, e in wins:
        if union and s <= union[-1][1]:
            union[-1] = (union[-1][0], max(union[-1][1], e))
        else:
            union.append((s, e))
    nblocks = len(window_blocks(union, sub))
    if nblocks > MAX_BLOCKS:
        return None
    return runs, union, nblocks, gain


def can_refine(new: Any) -> bool:
    """Whether ``new`` can be read again at offsets (a regular file): refinement needs that."""
    try:
        return stat.S_ISREG(os.fstat(new.fileno()).st_mode) and new.tell() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def refined_pieces(
    ch: Channel,
    sig: Signature,
    new: BinaryIO,
    *,
    progress: Progress,
    stats: DeltaStats,
    threads: int,
    compress: bool,
    level: int,
    gate: Optional[Callable[[], bool]] = None,
    flush: Callable[[], None],
    digest: Optional[Callable[[], bytes]] = None,
) -> Iterator[Any]:
    """The delta of ``new`` against ``sig`` with refinement rounds over ``ch``
    (as :func:`~pydelta.delta.delta_pieces`, literals compressed if asked).
    ``flush`` sends what the consumer has written so far (after a segment)."""
    flags = fmt.FLAG_ZLITERALS if compress else 0
    ops = Refiner(
        ch,
        sig,
        new,
        progress=progress,
        stats=stats,
        threads=threads,
        flags=flags,
        flush=flush,
        digest=digest,
    ).pieces()
    if not compress:
        return ops
    return literals.compress_ops(ops, stats, level, threads, gate)
