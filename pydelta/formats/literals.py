"""Compressed literals: the 'Z' instruction of a delta.

A delta whose header has flag bit 0 (``native.FLAG_ZLITERALS``) may carry
LITERAL data compressed::

    'Z' (0x5A)  varint raw length
                u8 transform: 1 = zstd, 2 = 16-bit byte grouping then zstd
                varint compressed length
                compressed length bytes: one zstd frame

Transform 2 stores the literal's bytes at even offsets first, then those at
odd offsets, which puts the low and the high bytes of 16-bit values
(float16, bfloat16) in separate runs that compress better.

Writer side (:func:`compress_ops`): a filter over the op stream of the
delta scan. Every LITERAL of at least :data:`THRESHOLD` bytes is
compressed both ways and replaced by the smaller 'Z' op if that saves at
least :data:`MIN_SAVING` of its bytes; everything else passes through
untouched. Each literal is compressed on its own with pinned parameters
(level, no checksum, content size written, no multithreading inside zstd),
so the delta bytes depend only on the inputs and the level - not on I/O
chunking nor the thread count - for a given zstd library version.

Reader side (:class:`Inflater`): turns a flagged delta's op stream back into
plain 'C'/'L'/'E' ops for the C patch job, at any feed chunking, holding at
most one decompressed literal in memory. Every 'Z' op is checked before
anything is allocated for it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

from ..backends import backend
from ..errors import CorruptDeltaError, UnsupportedVersionError, UsageError
from . import native as fmt
from .native import BadInstruction, read_op, varint, zliteral_problem

#: Not looked for yet (see _zstd).
_UNSET: Any = object()
#: The zstandard module once imported (None: not installed). Imported on
#: first use, not with this module: it pulls in ``platform`` (~3.5 ms of
#: every command's start-up).
zstandard: Any = _UNSET

Buffer = Union[bytes, bytearray, memoryview]

#: Literals shorter than this are never compressed.
THRESHOLD = 1024
#: A compressed literal must be at least this fraction smaller to be kept.
MIN_SAVING = 0.03
#: Default zstd level: on model weights level 1 compresses as well as 3
#: (the entropy is in the float bytes, not in repeats) at twice the speed.
DEFAULT_LEVEL = 1
MIN_LEVEL = 1
MAX_LEVEL = 22
#: Literals of at least this many bytes try only the grouping when its
#: order-0 entropy estimate is lower by more than PICK_MARGIN_Q16 / 2**16
#: bits a byte (Compressor._candidates).
PICK_MIN = 16384
PICK_MARGIN_Q16 = 6554  # 0.1 bit a byte
#: The 4 bytes every zstd frame starts with.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Transforms the writer tries (bench/compress_bench.py narrows this to compare).
TRANSFORMS = (fmt.Z_ZSTD, fmt.Z_ZSTD_GROUP16)

_OP_L = fmt.OP_LITERAL


def _zstd() -> Any:
    """The zstandard module, imported on first use; None if not installed."""
    global zstandard
    if zstandard is _UNSET:
        try:
            import zstandard as module
        except ImportError:  # pragma: no cover - zstandard is a runtime dependency
            module = None
        zstandard = module
    return zstandard


def available() -> bool:
    """True if the zstandard package is installed (compression possible);
    looked up without importing it."""
    if zstandard is _UNSET:
        from importlib.util import find_spec

        return find_spec("zstandard") is not None
    return zstandard is not None


def check_level(level: int) -> int:
    """Validate a user-given compression level."""
    if not isinstance(level, int) or isinstance(level, bool) or not MIN_LEVEL <= level <= MAX_LEVEL:
        raise UsageError(
            f"compression level {level!r} is out of range: use {MIN_LEVEL}..{MAX_LEVEL}"
        )
    return level


def group16(data: Buffer) -> bytearray:
    """Transform 2: the bytes at even offsets, then those at odd offsets
    (a kernel of the backend: Python's stepped slices ran at ~150 MB/s)."""
    return backend.group16(data)


def ungroup16(grouped: Buffer, out: bytearray, start: int = 0) -> None:
    """Undo :func:`group16` into ``out[start:start + len(grouped)]``."""
    backend.ungroup16(grouped, out, start)


# ---------------------------------------------------------------- writer


class Compressor:
    """Compresses one literal payload at a time; safe to share between threads."""

    def __init__(
        self, level: int = DEFAULT_LEVEL, gate: Optional[Callable[[], bool]] = None
    ) -> None:
        if _zstd() is None:
            raise UsageError(
                "compressed deltas need the 'zstandard' package: pip install zstandard "
                "(or turn compression off)"
            )
        self.level = check_level(level)
        self.transforms = tuple(TRANSFORMS)
        self._local = threading.local()
        #: asked before each literal whether to try at all (adaptive senders
        #: such as sync; if it has a ``record(nbytes, seconds)`` method, that
        #: is told how long each compression took); None always tries, which
        #: keeps deltas deterministic
        self.gate = gate

    def _cctx(self):
        c = getattr(self._local, "cctx", None)
        if c is None:
            # every parameter that changes the output is pinned here
            c = self._local.cctx = zstandard.ZstdCompressor(
                level=self.level,
                write_checksum=False,  # the END digest covers the result
                write_content_size=True,  # the reader demands it
                write_dict_id=False,
                threads=0,  # no zstd worker threads
            )
        return c

    def _candidates(self, data: Buffer) -> Tuple[int, ...]:
        """The transforms worth trying on ``data``. Splitting bytes into two
        streams never raises their order-0 entropy, so the grouping (2) is
        tried alone when it lowers the estimate by more than PICK_MARGIN_Q16
        (model weights: ~0.6 bit a byte, half the compression work), and
        both are tried otherwise (text, random bytes: LZ matches decide). The
        estimates are integer arithmetic: the choice, and so the delta, is
        the same on every machine."""
        ts = self.transforms
        if len(data) < PICK_MIN or set(ts) != {fmt.Z_ZSTD, fmt.Z_ZSTD_GROUP16}:
            return ts
        plain, grouped = backend.lit_costs(data)
        if grouped + len(data) * PICK_MARGIN_Q16 < plain:
            return (fmt.Z_ZSTD_GROUP16,)
        return ts

    def best(self, data: Buffer) -> Tuple[int, bytes]:
        """(transform, frame): the smallest zstd frame of ``data`` over the
        transforms (a tie goes to the first). Also the model store's chunk
        codec (its codecs are these transforms' numbers)."""
        cctx = self._cctx()
        best, transform = b"", 0
        for t in self._candidates(data):
            frame = cctx.compress(data if t == fmt.Z_ZSTD else group16(data))
            if not transform or len(frame) < len(best):
                best, transform = frame, t
        return transform, best

    def op(self, raw: Buffer) -> Optional[Tuple[bytes, bytes]]:
        """(header, frame) of the 'Z' op for LITERAL bytes ``raw``, or None if
        compression does not save at least MIN_SAVING of them (or the gate
        says not to try)."""
        if self.gate is not None and not self.gate():
            return None
        t0 = time.perf_counter()
        # no copy: zstd and the kernels read the caller's buffer, which
        # stays put until this returns
        data = memoryview(raw).cast("B") if not isinstance(raw, bytes) else raw
        n = len(data)
        transform, best = self.best(data)
        record = getattr(self.gate, "record", None)
        if record is not None:  # an adaptive gate learns how fast we compress
            record(n, time.perf_counter() - t0)
        head = b"Z" + varint(n) + bytes((transform,)) + varint(len(best))
        # both ops carry varint(n); compare what differs
        if len(head) + len(best) - len(varint(n)) - 1 > n * (1.0 - MIN_SAVING):
            return None
        return head, best


def _find_literals(v: memoryview, n: int) -> Tuple[List[Tuple[int, int, int]], int]:
    """Locate the LITERAL ops of at least THRESHOLD bytes in v[:n].

    Returns ([(op start, payload start, op end), ...], end of the last whole op).
    """
    found = []
    pos = 0
    while pos < n:
        try:
            op = read_op(v, pos, n)
        except BadInstruction as e:  # pragma: no cover - the scan writes only C, L and E
            raise AssertionError(f"the delta scan wrote an invalid instruction: {e}") from None
        if op is None:
            break
        end = pos + op.head + op.payload
        if end > n:
            break
        if op.code == _OP_L and op.a >= THRESHOLD:
            found.append((pos, pos + op.head, end))
        pos = end
    return found, pos


def compress_ops(
    pieces: Iterator[Buffer],
    stats,
    level: int = DEFAULT_LEVEL,
    threads: int = 1,
    gate: Optional[Callable[[], bool]] = None,
) -> Iterator[Buffer]:
    """Filter the delta scan's output: large literals become 'Z' ops.

    ``pieces`` is what delta._scan yields: the header (passed through; it
    must carry FLAG_ZLITERALS), then views of whole ops in a reused buffer.
    Yielded views are valid until the next item is requested.
    ``stats.delta_size`` is reduced by what compression saves and
    ``stats.compressed_literal`` / ``stats.compressed_size`` are filled in.
    With threads > 1 literals are compressed on a pool while the scan goes
    on; the output is the same. ``gate``, if given, is asked before each
    literal whether to try compressing it (the output then depends on it).
    """
    comp = Compressor(level, gate)
    it = iter(pieces)
    for header in it:
        yield header
        break
    if threads > 1:
        yield from _compress_pooled(it, stats, comp, threads)
    else:
        yield from _compress_inline(it, stats, comp)


def _account(stats, n: int, head: bytes, frame: bytes) -> None:
    stats.delta_size -= 1 + len(varint(n)) + n - len(head) - len(frame)
    stats.compressed_literal += n
    stats.compressed_size += len(frame)


def _joined(it: Iterator[Buffer]) -> Iterator[memoryview]:
    """The chunks of ``it`` as views; an op cut between two chunks (the scan
    never does that) is carried into the next chunk."""
    carry = b""
    for piece in it:
        view = memoryview(piece).cast("B")
        if carry:
            view = memoryview(carry + bytes(view))
        n = len(view)
        found, done = _find_literals(view, n)
        carry = bytes(view[done:]) if done < n else b""
        yield view, n, found, done  # type: ignore[misc]
    if carry:
        raise AssertionError("the delta scan ended inside an instruction")


def _compress_inline(it, stats, comp: Compressor) -> Iterator[Buffer]:
    for view, _n, found, done in _joined(it):
        run = 0
        for start, pay, end in found:
            z = comp.op(view[pay:end])
            if z is None:
                continue
            if start > run:
                yield view[run:start]
            yield z[0]
            yield z[1]
            _account(stats, end - pay, z[0], z[1])
            run = end
        if done > run:
            yield view[run:done]


#: Compression jobs in flight per worker, and bytes queued behind them.
_DEPTH = 4
_QUEUE_BYTES = 16 << 20


def _compress_pooled(it, stats, comp: Compressor, threads: int) -> Iterator[Buffer]:
    pool = ThreadPoolExecutor(threads, thread_name_prefix="pydelta-zstd")
    queue: deque = deque()  # bytes to pass through, or (future, op bytes, payload start)
    jobs = queued = 0

    def emit(item) -> Iterator[Buffer]:
        if isinstance(item, tuple):
            fut, op, pay = item
            z = fut.result()
            if z is None:
                yield op
            else:
                _account(stats, len(op) - pay, z[0], z[1])
                yield z[0]
                yield z[1]
        else:
            yield item

    try:
        for view, _n, found, done in _joined(it):
            if not found and not queue:  # nothing to compress nor to wait for
                yield view[:done]
                continue
            run = 0
            for start, pay, end in found:
                if start > run:
                    queue.append(bytes(view[run:start]))
                    queued += start - run
                op = bytes(view[start:end])
                queue.append((pool.submit(comp.op, memoryview(op)[pay - start :]), op, pay - start))
                jobs += 1
                queued += end - start
                run = end
            if done > run:
                queue.append(bytes(view[run:done]))
                queued += done - run
            # pass on everything finished; wait only when too much is queued
            while queue:
                head = queue[0]
                busy = isinstance(head, tuple) and not head[0].done()
                if busy and jobs <= _DEPTH * threads and queued <= _QUEUE_BYTES:
                    break
                queue.popleft()
                if isinstance(head, tuple):
                    jobs -= 1
                    queued -= len(head[1])
                else:
                    queued -= len(head)
                yield from emit(head)
        while queue:
            yield from emit(queue.popleft())
    finally:
        for item in queue:
            if isinstance(item, tuple):
                item[0].cancel()
        pool.shutdown(wait=True)


# ---------------------------------------------------------------- reader


_MAX_HEAD = fmt.MAX_OP_HEAD

_HEAD, _SKIP, _ZDATA, _ALL = range(4)


class Inflater:
    """Turn a flagged delta's ops (the bytes after its header) into the plain
    form the C patch job reads: each 'Z' op becomes the 'L' op it stands for,
    all other bytes pass through unchanged.

    Feed it the delta in pieces of any size with :meth:`feed`, which yields
    the pieces to pass on. Only 'Z' ops are checked here; any other
    malformed op is passed on from its first byte, for the patch job to
    reject, and :meth:`delta_offset` maps the job's position back to the
    delta's for messages.
    """

    def __init__(self, name: str, base: int = fmt.DELTA_HEADER.size) -> None:
        if _zstd() is None:
            raise UnsupportedVersionError(
                f"delta {name} holds compressed literals and the 'zstandard' package is "
                "not installed: pip install zstandard"
            )
        self._name = name
        self._base = base
        self._dctx = zstandard.ZstdDecompressor(max_window_size=fmt.Z_MAX_RAW)
        self._state = _HEAD
        self._hb = b""  # an op header split across feeds
        self._left = 0  # bytes left of an 'L' payload or a 'Z' frame
        self._z: Tuple[int, int, int] = (0, 0, 0)  # raw length, transform, delta offset
        self._zbuf: Optional[bytearray] = None  # a 'Z' frame split across feeds
        self.consumed = 0  #: delta bytes (after the header) fed so far
        self.ops = 0  #: 'Z' ops decoded
        self._t = 0  # bytes yielded
        # where output and delta offsets stop moving together: at each 'Z' op
        self._mt: List[int] = [0]
        self._md: List[int] = [0]
        self._mfrozen: List[bool] = [False]

    def delta_offset(self, t: int) -> int:
        """The delta offset (after the header) of output byte ``t``."""
        i = bisect_right(self._mt, t) - 1
        if self._mfrozen[i]:
            return self._md[i]
        return self._md[i] + (t - self._mt[i])

    def _corrupt(self, at: int, what: str) -> CorruptDeltaError:
        return CorruptDeltaError(
            f"delta {self._name} is corrupted: {what} at byte {self._base + at}"
        )

    def _header(self, buf: Buffer, pos: int, end: int, at: int):
        """Parse the op header at buf[pos:end] (delta offset ``at``).

        Returns None if incomplete, else (state, header length, value)."""
        if buf[pos] not in (fmt.OP_COPY, fmt.OP_LITERAL, fmt.OP_ZLITERAL):
            return _ALL, 0, 0  # END, or a bad opcode: the patch kernel deals with it
        try:
            op = read_op(buf, pos, end, zliterals=True)
        except BadInstruction:
            if buf[pos] == fmt.OP_ZLITERAL:
                raise self._corrupt(at, "invalid instruction") from None
            return _ALL, 0, 0  # the patch kernel says what is wrong
        if op is None:
            return None
        if op.code == fmt.OP_COPY:
            return _HEAD, op.head, 0
        if op.code == fmt.OP_LITERAL:
            if not op.a:
                return _ALL, 0, 0
            return _SKIP, op.head, op.a
        problem = zliteral_problem(op)
        if problem is not None:
            raise self._corrupt(at, problem)
        raw, transform, comp = op.a, op.transform, op.b
        self._z = (raw, transform, at)
        return _ZDATA, op.head, comp

    def _inflate(self, frame: Buffer, zlen: int) -> Iterator[Buffer]:
        raw, transform, at = self._z
        if bytes(frame[:4]) != ZSTD_MAGIC:
            raise self._corrupt(at, "a compressed literal that is not a zstd frame")
        try:
            params = zstandard.get_frame_parameters(frame)
        except zstandard.ZstdError:
            raise self._corrupt(
                at, "a compressed literal with a damaged zstd frame header"
            ) from None
        if params.content_size != raw:
            raise self._corrupt(
                at,
                f"a compressed literal whose zstd frame does not hold the {raw} bytes it declares",
            )
        if params.dict_id:
            raise self._corrupt(at, "a compressed literal that needs a zstd dictionary")
        try:
            data = self._dctx.decompress(frame, max_output_size=raw, allow_extra_data=False)
        except zstandard.ZstdError as e:
            raise self._corrupt(
                at, f"a compressed literal that does not decompress ({e})"
            ) from None
        if len(data) != raw:  # pragma: no cover - zstandard checks the content size
            raise self._corrupt(at, "a compressed literal of the wrong size")
        head = b"L" + varint(raw)
        self.ops += 1
        # output bytes of this op map to the op's start; after it, offsets move together again
        self._mt.append(self._t)
        self._md.append(at)
        self._mfrozen.append(True)
        self._mt.append(self._t + len(head) + raw)
        self._md.append(at + zlen)
        self._mfrozen.append(False)
        if transform == fmt.Z_ZSTD:
            self._t += len(head)
            yield head
            self._t += raw
            yield data
        else:
            out = bytearray(len(head) + raw)
            out[: len(head)] = head
            ungroup16(data, out, len(head))
            self._t += len(out)
            yield out

    def feed(self, data: memoryview) -> Iterator[Buffer]:
        """Take the next delta bytes; yield what to pass on, in order.

        Raises CorruptDeltaError for a malformed 'Z' op."""
        n = len(data)
        d0 = self.consumed  # delta offset of data[0]
        self.consumed += n
        # drop offset marks the patch job is past (it holds back < 64 bytes)
        i = bisect_right(self._mt, self._t - 64) - 1
        if i > 0:
            del self._mt[:i], self._md[:i], self._mfrozen[:i]
        pos = run = 0  # data[run:pos] is waiting to be passed on
        while pos < n:
            st = self._state
            if st == _ALL:
                pos = n
            elif st == _SKIP:
                k = min(self._left, n - pos)
                pos += k
                self._left -= k
                if not self._left:
                    self._state = _HEAD
            elif st == _ZDATA:
                k = min(self._left, n - pos)
                if self._zbuf is None and k == self._left:
                    frame: Buffer = data[pos : pos + k]
                else:
                    if self._zbuf is None:
                        self._zbuf = bytearray()
                    self._zbuf += data[pos : pos + k]
                    frame = self._zbuf
                pos += k
                run = pos
                self._left -= k
                if not self._left:
                    zlen = d0 + pos - self._z[2]  # bytes of the whole 'Z' op
                    self._zbuf = None
                    self._state = _HEAD
                    yield from self._inflate(frame, zlen)
            elif self._hb:
                # an op header begun in an earlier feed
                held = len(self._hb)
                buf = self._hb + bytes(data[pos : pos + _MAX_HEAD])
                at = d0 + pos - held
                got = self._header(buf, 0, len(buf), at)
                if got is None:
                    if len(buf) - held < n - pos:  # pragma: no cover - _MAX_HEAD suffices
                        raise AssertionError("op header longer than expected")
                    self._hb = buf
                    pos = run = n
                    continue
                st, h, value = got
                self._hb = b""
                if st == _ALL:  # pass the rest on from the op's start
                    self._t += held
                    yield buf[:held]
                    self._state = _ALL
                    continue
                pos += h - held
                run = pos
                if st != _ZDATA:  # pass the whole header on
                    self._t += h
                    yield buf[:h]
                self._state, self._left = st, value
            else:
                at = d0 + pos
                got = self._header(data, pos, n, at)
                if got is None:
                    # hold the partial header back until the rest arrives
                    if pos > run:
                        self._t += pos - run
                        yield data[run:pos]
                    self._hb = bytes(data[pos:n])
                    pos = run = n
                    continue
                st, h, value = got
                if st == _ZDATA:
                    if pos > run:
                        self._t += pos - run
                        yield data[run:pos]
                    pos += h
                    run = pos
                elif st == _ALL:
                    self._state = _ALL
                    continue
                else:
                    pos += h
                self._state, self._left = st, value
        if pos > run:
            self._t += pos - run
            yield data[run:pos]

    def pending(self) -> bool:
        """True if a 'Z' op or op header is incomplete."""
        return self._state == _ZDATA or bool(self._hb)
