"""pydelta's file formats: headers, trailers, validation and sniffing.

docs/FORMAT.md describes these byte by byte. All integers are little-endian;
sizes and offsets are 64-bit.

Signature::

    header  16 bytes  "PDSG", version, weak id, strong id, strong_len,
                      u32 block_len, u32 reserved (0)
    body    n entries of (u64 weak sum, strong_len bytes of BLAKE3)
    trailer 52 bytes  u64 block count, u64 basis size,
                      32-byte BLAKE3 of everything before it, "PDSE"

Delta::

    header  60 bytes  "PDDL", version, strong_len, flags, reserved (0),
                      u32 block_len, u64 basis size, 32-byte signature digest,
                      8-byte check: BLAKE3 of the 52 bytes before it
    ops     'C' varint offset varint length | 'L' varint length bytes
            | 'Z' varint raw length, u8 transform, varint length, zstd frame
              (only if flags bit 0 is set; see _literals.py)
    end     'E' u64 result size, 32-byte BLAKE3 of the result
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Optional

from .errors import (
    CorruptSignatureError,
    NotADeltaError,
    NotASignatureError,
    UnsupportedVersionError,
    UsageError,
)

SIG_MAGIC = b"PDSG"
SIG_END_MAGIC = b"PDSE"
DELTA_MAGIC = b"PDDL"
VERSION = 1
WEAK_RK64 = 1
STRONG_BLAKE3 = 1

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
#: Largest raw length of a 'Z' op a reader accepts (writers use at most 262144).
Z_MAX_RAW = 64 << 20

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

# Magic numbers of other tools' files, to name them in error messages.
_KNOWN_MAGICS = {
    b"rs\x016": "an rdiff (librsync) signature",
    b"rs\x017": "an rdiff (librsync) signature",
    b"rs\x01G": "an rdiff (librsync) signature",
    b"rs\x01F": "an rdiff (librsync) signature",
    b"rs\x026": "an rdiff (librsync) delta",
    b"\xd6\xc3\xc4\x00": "an xdelta3/VCDIFF delta",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
    b"\x1f\x8b\x08\x00": "a gzip file",
}


def describe_magic(head: bytes) -> str:
    """Name the kind of file ``head`` (its first bytes) starts, for messages."""
    if head.startswith(SIG_MAGIC):
        return "a pydelta signature"
    if head.startswith(DELTA_MAGIC):
        return "a pydelta delta"
    for magic, name in _KNOWN_MAGICS.items():
        if head.startswith(magic):
            return name
    if not head:
        return "an empty file"
    return "not a pydelta file"


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


def check_strong_len(strong_len: int) -> int:
    """Validate a user-given strong hash length."""
    if not isinstance(strong_len, int) or not MIN_STRONG_LEN <= strong_len <= MAX_STRONG_LEN:
        raise UsageError(
            f"strong hash length {strong_len!r} is out of range: "
            f"use {MIN_STRONG_LEN}..{MAX_STRONG_LEN} bytes"
        )
    return strong_len


def pack_sig_header(block_len: int, strong_len: int) -> bytes:
    return SIG_HEADER.pack(SIG_MAGIC, VERSION, WEAK_RK64, STRONG_BLAKE3, strong_len, block_len, 0)


@dataclass(frozen=True)
class SignatureInfo:
    """What a signature says about the basis it was made from."""

    block_len: int
    strong_len: int
    block_count: int
    basis_size: int
    digest: bytes  #: identifies the signature, and so the basis, exactly


def parse_sig_header(head: bytes, name: str) -> tuple:
    """Validate a signature header; returns (block_len, strong_len)."""
    if len(head) < 4 or head[:4] != SIG_MAGIC:
        kind = describe_magic(head)
        hint = " (arguments in the wrong order?)" if kind == "a pydelta delta" else ""
        raise NotASignatureError(
            f"{name} is not a pydelta signature: it is {kind}{hint}; "
            "make one with 'pydelta signature OLD'"
        )
    if len(head) < SIG_HEADER.size:
        raise CorruptSignatureError(f"signature {name} is truncated (header incomplete)")
    _, version, weak_id, strong_id, strong_len, block_len, reserved = SIG_HEADER.unpack_from(head)
    if version != VERSION:
        raise UnsupportedVersionError(
            f"signature {name} has format version {version}; this pydelta reads version "
            f"{VERSION}: upgrade pydelta or remake the signature"
        )
    if (
        weak_id != WEAK_RK64
        or strong_id != STRONG_BLAKE3
        or reserved != 0
        or not MIN_STRONG_LEN <= strong_len <= MAX_STRONG_LEN
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
    info = SignatureInfo(block_len, strong_len, count, basis_size, digest)
    return info, memoryview(data)[SIG_HEADER.size : SIG_HEADER.size + body_len]


@dataclass(frozen=True)
class DeltaHeader:
    """The fixed header of a delta."""

    block_len: int
    strong_len: int
    basis_size: int
    sig_digest: bytes
    flags: int = 0  #: FLAG_ZLITERALS: the delta may hold compressed literals


def _header_check(head: bytes) -> bytes:
    from ._backend import backend

    return backend.blake3_digest(head[:DELTA_CHECKED], 8)


def pack_delta_header(info: SignatureInfo, flags: int = 0) -> bytes:
    head = DELTA_HEADER.pack(
        DELTA_MAGIC, VERSION, info.strong_len, flags, 0, info.block_len, info.basis_size,
        info.digest, b"\0" * 8,
    )
    return head[:DELTA_CHECKED] + _header_check(head)


def parse_delta_header(head: bytes, name: str) -> DeltaHeader:
    """Validate the first DELTA_HEADER.size bytes of a delta."""
    from .errors import CorruptDeltaError

    if len(head) < 4 or head[:4] != DELTA_MAGIC:
        kind = describe_magic(head[:4])
        hint = " (arguments in the wrong order?)" if kind == "a pydelta signature" else ""
        raise NotADeltaError(
            f"{name} is not a pydelta delta: it is {kind}{hint}; "
            "make one with 'pydelta delta SIG NEW'"
        )
    if len(head) < DELTA_HEADER.size:
        raise CorruptDeltaError(f"delta {name} is truncated (header incomplete)")
    _, version, strong_len, flags, reserved, block_len, basis_size, sig, check = DELTA_HEADER.unpack(
        head[: DELTA_HEADER.size]
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
