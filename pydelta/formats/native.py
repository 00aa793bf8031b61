"""pydelta's native formats: headers, trailers, and the one instruction reader.

docs/FORMAT.md describes these byte by byte. All integers are little-endian;
sizes and offsets are 64-bit.

Signature::

    header  16 bytes  "PDSG", version, weak id, strong id, strong_len,
                      u32 block_len, u32 reserved (0)
    body    n entries of (u64 weak sum, strong_len bytes of the block's
            strong sum: BLAKE3 (id 1) or XXH3-128 (id 2))
    trailer 52 bytes  u64 block count, u64 basis size,
                      32-byte BLAKE3 of everything before it, "PDSE"

Delta::

    header  60 bytes  "PDDL", version, strong_len, flags, reserved (0),
                      u32 block_len, u64 basis size, 32-byte signature digest,
                      8-byte check: BLAKE3 of the 52 bytes before it
    ops     'C' varint offset varint length | 'L' varint length bytes
            | 'Z' varint raw length, u8 transform, varint length, zstd frame
              (only if flags bit 0 is set; see literals.py)
    end     'E' u64 result size, 32-byte BLAKE3 of the result

:func:`read_op` is the one parser of that instruction stream in Python
(``pydelta info``, the literal inflater in front of the patch kernel, sync's
"unchanged file" check and the CLI's progress bar all use it); the kernels
in csrc/ and backends/numba/ parse it in their own language.

The delta header's check field is BLAKE3, computed with the backend's hasher:
the one place a format module calls a kernel.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple, Optional, Tuple, Type, Union

from ..backends import backend
from ..errors import (
    CorruptDeltaError,
    CorruptSignatureError,
    FormatError,
    NotADeltaError,
    NotASignatureError,
    UnsupportedVersionError,
    UsageError,
)
from ..results import Frozen, SignatureInfo
from .magic import DELTA_MAGIC, SIG_END_MAGIC, SIG_MAGIC, describe_magic

Buffer = Union[bytes, bytearray, memoryview]
VERSION = 1
WEAK_RK64 = 1
STRONG_BLAKE3 = 1
STRONG_XXH3 = 2
#: The per-block strong sums a signature may hold, by header id and by name
#: (``pydelta signature --hash``), and the longest strong_len of each.
STRONG_NAMES = {STRONG_BLAKE3: "blake3", STRONG_XXH3: "xxh3"}
STRONG_IDS = {name: sid for sid, name in STRONG_NAMES.items()}
STRONG_TITLES = {STRONG_BLAKE3: "BLAKE3", STRONG_XXH3: "XXH3-128"}
STRONG_MAX = {STRONG_BLAKE3: 32, STRONG_XXH3: 16}

SIG_HEADER = struct.Struct("<4sBBBBII")
SIG_TRAILER = struct.Struct("<QQ32s4s")
DELTA_HEADER = struct.Struct("<4sBBBBIQ32s8s")
assert SIG_HEADER.size == 16 and SIG_TRAILER.size == 52 and DELTA_HEADER.size == 60
#: Bytes of the delta header covered by its check field.
DELTA_CHECKED = 52
#: Delta header flag bit 0: literals may be sent compressed ('Z' ops).
FLAG_ZLITERALS = 0x01
#: The flag bits this pydelta understands.
KNOWN_FLAGS = FLAG_ZLITERALS
#: Delta opcodes.
OP_COPY = 0x43  # 'C'
OP_LITERAL = 0x4C  # 'L'
OP_ZLITERAL = 0x5A  # 'Z'
OP_END = 0x45  # 'E'
#: Transforms of a compressed literal ('Z' op).
Z_ZSTD = 1  #: the raw bytes, zstd-compressed
Z_ZSTD_GROUP16 = 2  #: bytes at even offsets, then at odd offsets, zstd-compressed
#: Largest raw length of a 'Z' op a reader accepts (writers use at most 262144):
#: one op is decompressed whole, so this bounds what a few bytes of a hostile
#: delta can make the reader allocate.
Z_MAX_RAW = 4 << 20

DEFAULT_STRONG_LEN = 16
MIN_STRONG_LEN = 8
MAX_STRONG_LEN = 32
MIN_BLOCK_LEN = 1
MAX_BLOCK_LEN = 1 << 26
#: Bounds of the automatic block length (see default_block_len).
AUTO_MIN_BLOCK = 1024
AUTO_MAX_BLOCK = 1 << 20
#: Block length used when the basis size is unknown (a pipe).
STREAM_BLOCK_LEN = 32768


def default_block_len(basis_size: Optional[int]) -> int:
    """The block length pydelta picks for a basis of ``basis_size`` bytes.

    rsync's square-root rule (which balances signature size against the
    bytes lost around each change) rounded up to a whole number of KiB,
    within [1 KiB, 1 MiB]. A basis of unknown size (read from a pipe) gets
    32 KiB, the rule's value for 1 GiB.

    >>> default_block_len(1 << 30)
    32768
    """
    if basis_size is None:
        return STREAM_BLOCK_LEN
    root = math.isqrt(max(basis_size, 0))
    block = -(-root // 1024) * 1024
    return max(AUTO_MIN_BLOCK, min(AUTO_MAX_BLOCK, block))


def check_block_len(block_len: int) -> int:
    """Validate a user-given block length."""
    if not isinstance(block_len, int) or isinstance(block_len, bool):
        raise UsageError(f"block size must be an integer, not {block_len!r}")
    if not MIN_BLOCK_LEN <= block_len <= MAX_BLOCK_LEN:
        raise UsageError(
            f"block size {block_len} is out of range: use {MIN_BLOCK_LEN}..{MAX_BLOCK_LEN} bytes"
        )
    return block_len


def check_strong_len(strong_len: int, strong: int = STRONG_BLAKE3) -> int:
    """Validate a user-given strong hash length (for strong sums of kind ``strong``)."""
    top = STRONG_MAX.get(strong, MAX_STRONG_LEN)
    if not isinstance(strong_len, int) or not MIN_STRONG_LEN <= strong_len <= top:
        more = " (up to 32 with BLAKE3: --hash blake3)" if strong == STRONG_XXH3 else ""
        raise UsageError(
            f"strong hash length {strong_len!r} is out of range for "
            f"{STRONG_TITLES.get(strong, 'BLAKE3')}: use {MIN_STRONG_LEN}..{top} bytes{more}"
        )
    return strong_len


def strong_kind(name: Optional[str], strong_len: Optional[int] = None) -> int:
    """The strong hash id for a ``--hash`` name: ``"xxh3"`` or ``"blake3"``;
    None picks XXH3-128 (the default), or BLAKE3 when ``strong_len`` asks
    for more than XXH3-128's 16 bytes."""
    if name is None:
        long = strong_len is not None and strong_len > STRONG_MAX[STRONG_XXH3]
        return STRONG_BLAKE3 if long else STRONG_XXH3
    sid = STRONG_IDS.get(name) if isinstance(name, str) else None
    if sid is None:
        raise UsageError(f"unknown strong hash {name!r}: use xxh3 or blake3")
    return sid


def pack_sig_header(block_len: int, strong_len: int, strong: int = STRONG_BLAKE3) -> bytes:
    return SIG_HEADER.pack(SIG_MAGIC, VERSION, WEAK_RK64, strong, strong_len, block_len, 0)


def sig_strong_kind(head: Buffer) -> int:
    """The strong hash id of a signature whose header (checked by
    :func:`parse_sig_header`) starts ``head``."""
    return head[6]


def _not_a(
    cls: Type[FormatError], head: bytes, name: str, want: str, swapped: str, make: str
) -> FormatError:
    """The error for a file that is not the pydelta ``want`` it should be
    (naming what it is; the other pydelta kind means the arguments are swapped)."""
    kind = describe_magic(head[:4])
    hint = " (arguments in the wrong order?)" if kind == f"a pydelta {swapped}" else ""
    return cls(
        f"{name} is not a pydelta {want}: it is {kind}{hint}; make one with 'pydelta {make}'"
    )


def parse_sig_header(head: bytes, name: str) -> tuple:
    """Validate a signature header; returns (block_len, strong_len)."""
    if len(head) < 4 or head[:4] != SIG_MAGIC:
        raise _not_a(NotASignatureError, head, name, "signature", "delta", "signature OLD")
    if len(head) < SIG_HEADER.size:
        raise CorruptSignatureError(f"signature {name} is truncated (header incomplete)")
    _, version, weak_id, strong_id, strong_len, block_len, reserved = SIG_HEADER.unpack_from(head)
    if version != VERSION:
        raise UnsupportedVersionError(
            f"signature {name} has format version {version}; this pydelta reads version "
            f"{VERSION}: upgrade pydelta or remake the signature"
        )
    # id 0 was never written (corrupt); a later id is a newer pydelta's
    if weak_id == WEAK_RK64 and reserved == 0 and strong_id > max(STRONG_NAMES):
        raise UnsupportedVersionError(
            f"signature {name} uses strong hash id {strong_id}, which this pydelta does not "
            "know: upgrade pydelta or remake the signature"
        )
    if (
        weak_id != WEAK_RK64
        or reserved != 0
        or not MIN_STRONG_LEN <= strong_len <= STRONG_MAX.get(strong_id, 0)
        or not MIN_BLOCK_LEN <= block_len <= MAX_BLOCK_LEN
    ):
        raise CorruptSignatureError(f"signature {name} is corrupted (invalid header fields)")
    return block_len, strong_len


def parse_sig_trailer(data: bytes, name: str) -> tuple:
    """Split a whole signature into (info, body) after checking its trailer.

    ``data`` is the complete signature. The checksum is verified by the
    caller, which has been hashing while reading.
    """
    block_len, strong_len = parse_sig_header(data, name)
    entry = 8 + strong_len
    if len(data) < SIG_HEADER.size + SIG_TRAILER.size:
        raise CorruptSignatureError(f"signature {name} is truncated (no trailer)")
    count, basis_size, digest, end = SIG_TRAILER.unpack_from(data, len(data) - SIG_TRAILER.size)
    body_len = len(data) - SIG_HEADER.size - SIG_TRAILER.size
    if end != SIG_END_MAGIC:
        raise CorruptSignatureError(f"signature {name} is truncated or corrupted (no end marker)")
    if body_len % entry or body_len // entry != count:
        raise CorruptSignatureError(
            f"signature {name} is corrupted: it holds {body_len} bytes of entries "
            f"but says {count} blocks of {entry} bytes"
        )
    want = -(-basis_size // block_len)
    if count != want:
        raise CorruptSignatureError(
            f"signature {name} is corrupted: {count} blocks cannot cover {basis_size} bytes "
            f"in blocks of {block_len}"
        )
    kind = STRONG_NAMES[sig_strong_kind(data)]
    info = SignatureInfo(block_len, strong_len, count, basis_size, digest, kind)
    return info, memoryview(data)[SIG_HEADER.size : SIG_HEADER.size + body_len]


class DeltaHeader(Frozen):
    """The fixed header of a delta (``flags``: FLAG_ZLITERALS, the delta may
    hold compressed literals)."""

    block_len: int
    strong_len: int
    basis_size: int
    sig_digest: bytes
    flags: int
    _fields = ("block_len", "strong_len", "basis_size", "sig_digest", "flags")

    def __init__(
        self, block_len: int, strong_len: int, basis_size: int, sig_digest: bytes, flags: int = 0
    ) -> None:
        vars(self).update(
            block_len=block_len,
            strong_len=strong_len,
            basis_size=basis_size,
            sig_digest=sig_digest,
            flags=flags,
        )


def _header_check(head: bytes) -> bytes:
    return backend.blake3_digest(head[:DELTA_CHECKED], 8)


def pack_delta_header(info: SignatureInfo, flags: int = 0) -> bytes:
    head = DELTA_HEADER.pack(
        DELTA_MAGIC,
        VERSION,
        info.strong_len,
        flags,
        0,
        info.block_len,
        info.basis_size,
        info.digest,
        b"\0" * 8,
    )
    return head[:DELTA_CHECKED] + _header_check(head)


def parse_delta_header(head: bytes, name: str) -> DeltaHeader:
    """Validate the first DELTA_HEADER.size bytes of a delta."""
    if len(head) < 4 or head[:4] != DELTA_MAGIC:
        raise _not_a(NotADeltaError, head, name, "delta", "signature", "delta SIG NEW")
    if len(head) < DELTA_HEADER.size:
        raise CorruptDeltaError(f"delta {name} is truncated (header incomplete)")
    _, version, strong_len, flags, reserved, block_len, basis_size, sig, check = (
        DELTA_HEADER.unpack(head[: DELTA_HEADER.size])
    )
    if version != VERSION:
        raise UnsupportedVersionError(
            f"delta {name} has format version {version}; this pydelta reads version "
            f"{VERSION}: upgrade pydelta"
        )
    if check != _header_check(head):
        raise CorruptDeltaError(f"delta {name} is corrupted (header checksum mismatch)")
    if flags & ~KNOWN_FLAGS:
        raise UnsupportedVersionError(
            f"delta {name} uses format features this pydelta does not know "
            f"(header flags {flags:#04x}): upgrade pydelta"
        )
    if (
        reserved
        or not MIN_STRONG_LEN <= strong_len <= MAX_STRONG_LEN
        or not MIN_BLOCK_LEN <= block_len <= MAX_BLOCK_LEN
    ):
        raise CorruptDeltaError(f"delta {name} is corrupted (invalid header fields)")
    return DeltaHeader(block_len, strong_len, basis_size, sig, flags)


# -- the instruction stream --------------------------------------------------------

#: Bytes of the END op: 'E', u64 result size, 32-byte BLAKE3 of the result.
END_LEN = 41
#: Longest op header (before any payload): 'Z' varint u8 varint.
MAX_OP_HEAD = 22


class BadInstruction(ValueError):
    """A malformed instruction: an unknown opcode or an invalid varint."""


class Op(NamedTuple):
    """One instruction of a delta, as :func:`read_op` parses it.

    ``head`` bytes of the instruction come before its payload; the payload
    (``payload`` bytes: the literal data of an 'L', the zstd frame of a 'Z')
    follows. Fields by opcode: COPY ``a`` offset, ``b`` length; LITERAL ``a``
    length; ZLITERAL ``a`` raw length, ``b`` frame length, ``transform``;
    END ``a`` result size, ``digest``.
    """

    code: int
    head: int
    a: int = 0
    b: int = 0
    transform: int = 0
    digest: bytes = b""

    @property
    def payload(self) -> int:
        """Bytes of data that follow the op header."""
        if self.code == OP_LITERAL:
            return self.a
        if self.code == OP_ZLITERAL:
            return self.b
        return 0


def varint(v: int) -> bytes:
    """Canonical unsigned LEB128, as the delta writes its numbers."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def get_varint(buf: Buffer, pos: int, end: int) -> Optional[Tuple[int, int]]:
    """(value, position after it) of the varint at buf[pos:end], None if it is
    cut off at ``end``; raises BadInstruction as the C reader (pd_get_varint)
    rejects: more than 64 bits, or a non-canonical trailing zero byte."""
    value = 0
    for i in range(10):
        if pos + i >= end:
            return None
        b = buf[pos + i]
        if i == 9 and b > 1:
            raise BadInstruction("varint overflows 64 bits")
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i and not b:
                raise BadInstruction("non-canonical varint")
            return value, pos + i + 1
    raise BadInstruction("varint overflows 64 bits")  # pragma: no cover - i == 9 caught it


def read_op(buf: Buffer, pos: int, end: int, zliterals: bool = False) -> Optional[Op]:
    """Parse the instruction header at buf[pos:end].

    Returns None if the header is cut off at ``end`` (feed more bytes),
    else an :class:`Op`. Raises BadInstruction for an unknown opcode ('Z'
    is known only if ``zliterals``: the delta's header flags it) or an
    invalid varint. Only the structure is checked here; what the numbers
    mean (a copy inside the basis, a 'Z' op's limits: see
    :func:`zliteral_problem`) is for the caller.
    """
    if pos >= end:
        return None
    op = buf[pos]
    if op == OP_COPY:
        a = get_varint(buf, pos + 1, end)
        b = a and get_varint(buf, a[1], end)
        if not b:
            return None
        return Op(OP_COPY, b[1] - pos, a[0], b[0])
    if op == OP_LITERAL:
        a = get_varint(buf, pos + 1, end)
        if not a:
            return None
        return Op(OP_LITERAL, a[1] - pos, a[0])
    if op == OP_ZLITERAL and zliterals:
        a = get_varint(buf, pos + 1, end)
        if not a or a[1] >= end:
            return None
        transform = buf[a[1]]
        b = get_varint(buf, a[1] + 1, end)
        if not b:
            return None
        return Op(OP_ZLITERAL, b[1] - pos, a[0], b[0], transform)
    if op == OP_END:
        if end - pos < END_LEN:
            return None
        size = int.from_bytes(bytes(buf[pos + 1 : pos + 9]), "little")
        return Op(OP_END, END_LEN, size, digest=bytes(buf[pos + 9 : pos + END_LEN]))
    raise BadInstruction(f"unknown opcode {op:#04x}")


def zliteral_problem(op: Op) -> Optional[str]:
    """What is wrong with a 'Z' op's numbers, or None if they are acceptable."""
    raw, comp = op.a, op.b
    if not raw or not comp:
        return "a zero length in a compressed literal"
    if raw > Z_MAX_RAW:
        return f"a compressed literal of {raw} bytes (more than {Z_MAX_RAW})"
    if comp > raw:
        return f"a compressed literal larger ({comp} bytes) than its data ({raw} bytes)"
    if op.transform not in (Z_ZSTD, Z_ZSTD_GROUP16):
        return f"an unknown literal transform {op.transform}"
    return None
