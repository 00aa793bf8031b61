"""librsync (rdiff) interop: read and write rdiff signatures and deltas.

Files written here are byte for byte librsync's formats (see
docs/librsync-format.md), so ``rdiff`` reads them and pydelta reads
``rdiff``'s:

* :func:`signature` writes a librsync signature, identical to
  ``rdiff signature`` with the same options (``-b``, ``-S``, ``-H``, ``-R``);
* :func:`delta` scans NEW against a librsync signature (any of the four
  magics) and writes a librsync delta that ``rdiff patch`` applies;
* :func:`start_patch` gives :class:`pydelta.Patcher` the job that applies a
  librsync delta (the patcher sniffs the magic);
* :func:`describe` is ``pydelta info`` for librsync files.

The public entry points are the usual ones (``pydelta.signature(...,
format="rdiff")``, ``pydelta.delta``, ``pydelta.patch``, ``pydelta.info``),
which dispatch here. librsync's formats carry no checksum of the result,
no basis size and no basis fingerprint: a patched result cannot be
verified, and a wrong basis goes unnoticed (librsync's own limitation).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Union

from . import format as fmt
from ._io import Source, input_size, open_input, open_output, read_all, read_exact, readinto
from ._threads import hash_blocks, resolve_threads
from .errors import CorruptDeltaError, CorruptSignatureError, UsageError

#: Magic numbers (the first 4 bytes of every librsync file).
#: (The same numbers are enums in csrc/pydelta.h; tests check they agree.)
DELTA_MAGIC = struct.pack(">I", 0x72730236)
SIG_MAGICS = {
    struct.pack(">I", 0x72730136): ("rollsum", "md4"),
    struct.pack(">I", 0x72730137): ("rollsum", "blake2"),
    struct.pack(">I", 0x72730146): ("rabinkarp", "md4"),
    struct.pack(">I", 0x72730147): ("rabinkarp", "blake2"),
}
_MAGIC_OF = {v: struct.unpack(">I", k)[0] for k, v in SIG_MAGICS.items()}

WEAK_SUMS = ("rabinkarp", "rollsum")
STRONG_SUMS = ("blake2", "md4")
_STRONG_MAX = {"blake2": 32, "md4": 16}
_WEAK_NAME = {"rabinkarp": "RabinKarp", "rollsum": "rollsum"}
_STRONG_NAME = {"blake2": "BLAKE2b", "md4": "MD4"}

SIG_HEADER = struct.Struct(">4sII")
#: librsync's block length when the basis size is unknown (a pipe).
STREAM_BLOCK_LEN = 2048
#: librsync's minimum strong sum length when the basis size is unknown.
STREAM_MIN_STRONG = 12
#: Longest block pydelta accepts in a librsync signature (its buffers hold
#: several blocks; rdiff's own default for a 1 TiB file is 1 MiB).
MAX_BLOCK_LEN = fmt.MAX_BLOCK_LEN

READ_SIZE = 8 << 20
OUT_SIZE = 1 << 20

Progress = Optional[Callable[[int], None]]


def _c():
    """The C kernels (pydelta._rs), imported on first use: pydelta itself
    also runs on the numba backend, without the C core."""
    try:
        from . import _rs
    except ImportError as exc:
        raise UsageError(
            f"rdiff (librsync) files need pydelta's C core, which is not available ({exc}): "
            "build it (pip install -e .)"
        ) from None
    return _rs


def is_signature_magic(head: bytes) -> bool:
    """True if ``head`` starts with a librsync signature magic."""
    return bytes(head[:4]) in SIG_MAGICS


def is_delta_magic(head: bytes) -> bool:
    """True if ``head`` starts with the librsync delta magic."""
    return bytes(head[:4]) == DELTA_MAGIC


# -- parameters -----------------------------------------------------------------


def default_block_len(basis_size: Optional[int]) -> int:
    """librsync's block length for a basis of ``basis_size`` bytes.

    256 up to 64 KiB, else the square root rounded down to a multiple of
    128; 2048 when the size is unknown (a pipe).

    >>> default_block_len(1 << 30)
    32768
    """
    if basis_size is None:
        return STREAM_BLOCK_LEN
    if basis_size <= 256 * 256:
        return 256
    return math.isqrt(basis_size) & ~127


def _ln2(v: int) -> int:
    return max(v, 1).bit_length() - 1


def min_strong_len(basis_size: Optional[int], block_len: int) -> int:
    """librsync's recommended (minimum safe) strong sum length, what ``rdiff -S -1`` uses."""
    if basis_size is None:
        return STREAM_MIN_STRONG
    return 2 + (_ln2(basis_size + (1 << 24)) + _ln2(basis_size // block_len + 1) + 7) // 8


def _check_kinds(weak: str, strong: str) -> None:
    if weak not in WEAK_SUMS:
        raise UsageError(f"unknown rolling sum {weak!r}: use one of {', '.join(WEAK_SUMS)}")
    if strong not in STRONG_SUMS:
        raise UsageError(f"unknown strong hash {strong!r}: use one of {', '.join(STRONG_SUMS)}")


def resolve_strong_len(
    strong_len: Optional[int], basis_size: Optional[int], block_len: int, strong: str
) -> int:
    """The strong sum length for ``rdiff -S`` semantics: None or 0 is the maximum
    (32 for BLAKE2, 16 for MD4), -1 the minimum librsync recommends."""
    top = _STRONG_MAX[strong]
    if strong_len is None or strong_len == 0:
        return top
    if strong_len == -1:
        return min(top, min_strong_len(basis_size, block_len))
    if not isinstance(strong_len, int) or isinstance(strong_len, bool) or not 1 <= strong_len <= top:
        raise UsageError(
            f"strong hash length {strong_len!r} is out of range for an rdiff signature with "
            f"{_STRONG_NAME[strong]}: use 1..{top} (0 for {top}, -1 for librsync's minimum)"
        )
    return strong_len


# -- signatures -----------------------------------------------------------------


@dataclass(frozen=True)
class RdiffSignatureInfo:
    """What a librsync signature says. It does not record the basis size:
    ``basis_size`` is known only for a signature just made."""

    block_len: int
    strong_len: int
    block_count: int
    weak: str  #: "rabinkarp" or "rollsum"
    strong: str  #: "blake2" or "md4"
    basis_size: Optional[int] = None

    @property
    def magic(self) -> int:
        return _MAGIC_OF[(self.weak, self.strong)]

    format = "rdiff"


def pack_sig_header(weak: str, strong: str, block_len: int, strong_len: int) -> bytes:
    return SIG_HEADER.pack(struct.pack(">I", _MAGIC_OF[(weak, strong)]), block_len, strong_len)


def iter_signature(
    old: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    weak: str = "rabinkarp",
    strong: str = "blake2",
    progress: Progress = None,
    threads: Optional[int] = None,
    _params: Optional[list] = None,
) -> Iterator[bytes]:
    """Yield a librsync signature of ``old`` in pieces (header first).

    ``block_size`` None is librsync's default for the size of ``old``;
    ``strong_len`` follows ``rdiff -S``: None/0 the maximum, -1 the
    recommended minimum, else 1..32 (1..16 for MD4). ``threads`` hash in
    parallel (default: all cores); the output is the same for any count.
    """
    _check_kinds(weak, strong)
    if block_size is not None:
        fmt.check_block_len(block_size)
    nthreads = resolve_threads(threads)
    return _iter_signature(old, block_size, strong_len, weak, strong, progress, nthreads, _params)


def _iter_signature(old, block_size, strong_len, weak, strong, progress, nthreads, params):
    with open_input(old, "old file") as (fh, name):
        size = input_size(fh)
        block_len = block_size or default_block_len(size)
        slen = resolve_strong_len(strong_len, size, block_len, strong)
        magic = _MAGIC_OF[(weak, strong)]
        yield pack_sig_header(weak, strong, block_len, slen)
        total = count = 0

        def kernel(view: memoryview, length: int) -> bytes:
            return _c().sig_blocks(magic, view, length, block_len, slen)

        for entries, n in hash_blocks(fh, name, block_len, READ_SIZE, nthreads, kernel):
            total += n
            count += -(-n // block_len)
            if progress is not None:
                progress(total)
            yield entries
        if params is not None:
            params.append(RdiffSignatureInfo(block_len, slen, count, weak, strong, total))


def signature(
    old: Source,
    out: Union[Source, None] = None,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    weak: str = "rabinkarp",
    strong: str = "blake2",
    progress: Progress = None,
    threads: Optional[int] = None,
) -> Union[bytes, RdiffSignatureInfo]:
    """Write a librsync signature of ``old`` (see :func:`iter_signature`).

    Returns the bytes if ``out`` is None, else :class:`RdiffSignatureInfo`.
    """
    params: list = []
    pieces = iter_signature(
        old, block_size=block_size, strong_len=strong_len, weak=weak, strong=strong,
        progress=progress, threads=threads, _params=params,
    )
    if out is None:
        return b"".join(pieces)
    sink = open_output(out, "signature")
    try:
        for piece in pieces:
            sink.write(piece)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return params[0]


def format_signature(format: str, old: Source, out, **kwargs):
    """``pydelta.signature(..., format=...)`` for a format other than native."""
    if format != "rdiff":
        raise UsageError(f"unknown signature format {format!r}: use 'native' or 'rdiff'")
    return signature(old, out, **kwargs)


def parse_sig_header(head: bytes, name: str) -> tuple:
    """Validate a librsync signature header: (weak, strong, block_len, strong_len)."""
    kinds = SIG_MAGICS.get(bytes(head[:4]))
    if kinds is None:
        raise CorruptSignatureError(f"signature {name} is not a librsync signature")
    if len(head) < SIG_HEADER.size:
        raise CorruptSignatureError(f"rdiff signature {name} is truncated (header incomplete)")
    _, block_len, strong_len = SIG_HEADER.unpack_from(head)
    weak, strong = kinds
    if block_len < 1:
        raise CorruptSignatureError(f"rdiff signature {name} is corrupted (block length 0)")
    if block_len > MAX_BLOCK_LEN:
        raise CorruptSignatureError(
            f"rdiff signature {name} has a block length of {block_len} bytes; pydelta supports "
            f"up to {MAX_BLOCK_LEN} (make the signature with a smaller -b)"
        )
    top = _STRONG_MAX[strong]
    if not 1 <= strong_len <= top:
        raise CorruptSignatureError(
            f"rdiff signature {name} is corrupted (strong sum length {strong_len}; "
            f"{_STRONG_NAME[strong]} allows 1..{top})"
        )
    return weak, strong, block_len, strong_len


class RdiffSignature:
    """A loaded librsync signature and its lookup table."""

    def __init__(self, data: bytes, name: str = "signature") -> None:
        weak, strong, block_len, strong_len = parse_sig_header(data, name)
        entry = 4 + strong_len
        body = memoryview(data)[SIG_HEADER.size :]
        if len(body) % entry:
            raise CorruptSignatureError(
                f"rdiff signature {name} is truncated or corrupted ({len(body)} bytes of block "
                f"entries, not a whole number of {entry}-byte entries)"
            )
        count = len(body) // entry
        self.info = RdiffSignatureInfo(block_len, strong_len, count, weak, strong)
        self.name = name
        self.table = _c().SigTable(self.info.magic, body, count, block_len, strong_len)
        if self.table.error:
            if self.table.error == -4:
                raise MemoryError(f"not enough memory for the table of signature {name}")
            raise CorruptSignatureError(f"rdiff signature {name} is corrupted")


def load_any_signature(sig) -> object:
    """A native :class:`~pydelta.Signature` or an :class:`RdiffSignature`,
    whichever ``sig`` (path, ``"-"``, file object, bytes, or loaded) is."""
    from .signature import Signature

    if isinstance(sig, (Signature, RdiffSignature)):
        return sig
    if isinstance(sig, (bytes, bytearray, memoryview)):
        data = bytes(sig)
        if is_signature_magic(data):
            return RdiffSignature(data, "signature")
        fmt.parse_sig_header(data[: fmt.SIG_HEADER.size], "signature")
        return Signature(data, "signature")
    with open_input(sig, "signature") as (fh, name):
        head = read_exact(fh, fmt.SIG_HEADER.size, name)
        if is_signature_magic(head):
            return RdiffSignature(head + read_all(fh, name), name)
        fmt.parse_sig_header(head, name)
        rest = read_all(fh, name)
    return Signature(head + rest, name)


# -- deltas ---------------------------------------------------------------------


def _scan(
    sig: RdiffSignature, new: Source, progress: Progress, stats, threads: int = 1
) -> Iterator[memoryview]:
    """Yield the librsync delta as views into a reused buffer.

    With threads > 1 the next chunk of NEW is read in a second thread while
    the scan runs (two buffers); the delta is the same either way.
    """
    stats.delta_size = len(DELTA_MAGIC)
    yield memoryview(DELTA_MAGIC)
    job = _c().DeltaJob(sig.table)
    block_len = sig.info.block_len
    outbuf = bytearray(max(OUT_SIZE, _c().DELTA_MIN_OUT))
    out_view = memoryview(outbuf)
    with open_input(new, "new file") as (fh, name):
        if threads > 1:
            chunks = _read_ahead(fh, name, block_len)
        else:
            chunks = _read_in_place(fh, name, block_len)
        try:
            rc, consumed = 1, 0
            for buf, start, have, eof in chunks:
                while True:
                    rc, used, produced = job.scan(buf, start, have - start, eof, outbuf)
                    if rc < 0:
                        raise MemoryError(f"delta scan failed with code {rc}")
                    if produced:
                        stats.delta_size += produced
                        yield out_view[:produced]
                    if used:
                        start += used
                        consumed += used
                        if progress is not None:
                            progress(consumed)
                    if rc != 2:  # not PD_NEED_OUTPUT: done, or wants more input
                        break
                if rc == 3:  # PD_DONE
                    break
                chunks.send(start)  # type: ignore[attr-defined]
        finally:
            chunks.close()  # type: ignore[attr-defined]
    stats.new_size, stats.copied, stats.literal = job.stats()


def _read_in_place(fh: BinaryIO, name: str, block_len: int):
    """Yield (buffer, start, end, eof) views of NEW from one buffer; the
    caller sends back how far it got, and the unused rest moves to the front."""
    cap = max(READ_SIZE, 4 * block_len)
    buf = bytearray(cap)
    view = memoryview(buf)
    start = have = 0
    eof = False
    while True:
        if not eof and have < cap:
            n = readinto(fh, view[have:], name)
            if n:
                have += n
            else:
                eof = True
        start = yield buf, start, have, eof
        yield  # pause for send()
        if start:
            buf[: have - start] = buf[start:have]
            have -= start
            start = 0


def _read_ahead(fh: BinaryIO, name: str, block_len: int):
    """Like _read_in_place with two buffers, the next one filled by a reader
    thread. The scan leaves at most a block unused; that tail is copied in
    front of the next chunk (each buffer keeps a block of room for it)."""
    from concurrent.futures import ThreadPoolExecutor

    reserve = block_len
    chunk = max(READ_SIZE, 4 * block_len)
    bufs = [bytearray(reserve + chunk), bytearray(reserve + chunk)]

    def fill(buf: bytearray) -> int:
        view = memoryview(buf)[reserve:]
        got = 0
        while got < chunk:
            n = readinto(fh, view[got:], name)
            if not n:
                break
            got += n
        return got

    with ThreadPoolExecutor(1, thread_name_prefix="pydelta-read") as reader:
        cur = 0
        n = fill(bufs[0])
        start, have, eof = reserve, reserve + n, n < chunk
        pending = None if eof else reader.submit(fill, bufs[1])
        try:
            while True:
                start = yield bufs[cur], start, have, eof
                yield  # pause for send()
                if pending is None:  # at EOF the scan finishes this buffer
                    raise AssertionError("delta scan wants input after the end")
                left = have - start
                if left > reserve:  # pragma: no cover - the scan never leaves more
                    raise AssertionError("delta scan left more than a block unused")
                n = pending.result()
                nxt = 1 - cur
                bufs[nxt][reserve - left : reserve] = bufs[cur][start:have]
                cur, start, have, eof = nxt, reserve - left, reserve + n, n < chunk
                pending = None if eof else reader.submit(fill, bufs[1 - cur])
        finally:
            if pending is not None:
                pending.cancel()
                try:
                    pending.result()
                except BaseException:
                    pass


def iter_delta(
    sig: RdiffSignature, new: Source, *, progress: Progress = None, threads: Optional[int] = None
) -> Iterator[bytes]:
    """Yield the librsync delta from ``sig`` to ``new`` in pieces."""
    from .delta import DeltaStats

    for piece in _scan(sig, new, progress, DeltaStats(), resolve_threads(threads)):
        yield bytes(piece)


def delta(
    sig: RdiffSignature,
    new: Source,
    out: Union[Source, None] = None,
    *,
    progress: Progress = None,
    threads: Optional[int] = None,
):
    """Write the librsync delta from ``sig`` to ``new``; bytes if ``out`` is None,
    else :class:`~pydelta.DeltaStats`. ``threads`` > 1 (default: all cores)
    reads NEW ahead in a second thread; the delta is the same."""
    from .delta import DeltaStats

    nthreads = resolve_threads(threads)
    stats = DeltaStats()
    if out is None:
        return b"".join(bytes(p) for p in _scan(sig, new, progress, stats, nthreads))
    sink = open_output(out, "delta")
    try:
        for piece in _scan(sig, new, progress, stats, nthreads):
            sink.write(piece)
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return stats


# -- patching -------------------------------------------------------------------


#: What :class:`pydelta.Patcher` keeps as the header of a librsync delta (which has none).
RDIFF_DELTA_HEADER = fmt.DeltaHeader(block_len=0, strong_len=0, basis_size=-1, sig_digest=b"")


def start_patch(fd: int, old_size: int):
    """The job applying a librsync delta's commands (after its magic)."""
    return _c().PatchJob(fd, old_size)


def unverified_message(delta_name: str) -> str:
    return (
        f"{delta_name} is an rdiff (librsync) delta, which carries no checksum: "
        "the result could not be verified"
    )


# -- info -----------------------------------------------------------------------


def _sig_fields(sig: RdiffSignature) -> dict:
    i = sig.info
    if i.block_count:
        lo = (i.block_count - 1) * i.block_len + 1
        hi = i.block_count * i.block_len
        basis = f"{lo}..{hi} bytes (librsync signatures do not record it)"
    else:
        basis = "0 bytes"
    return {
        "format": "librsync (rdiff)",
        "magic": f"0x{i.magic:08x}",
        "block size": i.block_len,
        "strong hash": f"{_STRONG_NAME[i.strong]}, {i.strong_len} bytes",
        "weak sum": f"{_WEAK_NAME[i.weak]}, 4 bytes",
        "blocks": i.block_count,
        "distinct blocks": sig.table.unique,
        "basis size": basis,
    }


def describe(fh: BinaryIO, name: str, head: bytes):
    """:class:`~pydelta.FileInfo` of a librsync signature or delta whose first
    bytes (``head``) were already read from ``fh``."""
    from .info import FileInfo

    if is_signature_magic(head):
        sig = RdiffSignature(head + read_all(fh, name), name)
        return FileInfo("signature", _sig_fields(sig), "rdiff (librsync)")
    job = _c().PatchJob(-1, 0)
    size = len(head)
    pend = head[4:]
    chunk = bytearray(1 << 20)
    dummy = bytearray(1)
    rc = 1
    fed = 0
    while True:
        if pend:
            rc, used, _ = job.step(pend, 0, len(pend), dummy)
            fed += used
            if rc < 0:
                raise CorruptDeltaError(
                    f"delta {name} is corrupted: invalid command at byte {4 + fed}"
                )
            if rc == 3 and used < len(pend):
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end command")
            pend = pend[used:]
        if rc == 3:
            if readinto(fh, memoryview(chunk), name):
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end command")
            break
        n = readinto(fh, memoryview(chunk), name)
        if not n:
            raise CorruptDeltaError(
                f"delta {name} is truncated (ends after {size} bytes, before its end command)"
            )
        size += n
        pend = bytes(pend) + bytes(chunk[:n])
    st = job.stats()
    return FileInfo(
        "delta",
        {
            "format": "librsync (rdiff)",
            "delta size": size,
            "result size": st["result_size"],
            "result digest": "none (librsync deltas carry no checksum)",
            "copy instructions": st["copies"],
            "copied bytes": st["copied"],
            "literal instructions": st["literals"],
            "literal bytes": st["literal"],
        },
        "rdiff (librsync)",
    )

