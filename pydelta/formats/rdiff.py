"""librsync's (rdiff's) formats: signature header, parameters, names.

Files pydelta writes in these formats are byte for byte librsync's (see
docs/librsync-format.md), so ``rdiff`` reads them and pydelta reads
``rdiff``'s. A librsync signature is a 12-byte header (magic, u32 block
length, u32 strong sum length, all big-endian) and one (u32 weak sum,
strong sum) entry per block; a delta is its magic and a stream of commands
that only the kernels (csrc/rs_job.c) parse. librsync's formats carry no
checksum of the result, no basis size and no basis fingerprint: a patched
result cannot be verified, and a wrong basis goes unnoticed (librsync's own
limitation).
"""

from __future__ import annotations

import math
import struct
from typing import Optional, Tuple

from ..errors import CorruptSignatureError, UsageError
from ..results import Frozen
from . import native
from .magic import RDIFF_DELTA_MAGIC as DELTA_MAGIC
from .magic import RDIFF_SIG_MAGICS as SIG_MAGICS

_MAGIC_OF = {v: struct.unpack(">I", k)[0] for k, v in SIG_MAGICS.items()}

WEAK_SUMS = ("rabinkarp", "rollsum")
STRONG_SUMS = ("blake2", "md4")
_STRONG_MAX = {"blake2": 32, "md4": 16}
WEAK_NAME = {"rabinkarp": "RabinKarp", "rollsum": "rollsum"}
STRONG_NAME = {"blake2": "BLAKE2b", "md4": "MD4"}

SIG_HEADER = struct.Struct(">4sII")
#: librsync's block length when the basis size is unknown (a pipe).
STREAM_BLOCK_LEN = 2048
#: librsync's minimum strong sum length when the basis size is unknown.
STREAM_MIN_STRONG = 12
#: Longest block pydelta accepts in a librsync signature (its buffers hold
#: several blocks; rdiff's own default for a 1 TiB file is 1 MiB).
MAX_BLOCK_LEN = native.MAX_BLOCK_LEN

__all__ = [
    "DELTA_MAGIC",
    "SIG_MAGICS",
    "RdiffSignatureInfo",
    "default_block_len",
    "min_strong_len",
    "resolve_strong_len",
    "check_kinds",
    "pack_sig_header",
    "parse_sig_header",
    "is_signature_magic",
    "is_delta_magic",
]


def is_signature_magic(head: bytes) -> bool:
    """True if ``head`` starts with a librsync signature magic."""
    return bytes(head[:4]) in SIG_MAGICS


def is_delta_magic(head: bytes) -> bool:
    """True if ``head`` starts with the librsync delta magic."""
    return bytes(head[:4]) == DELTA_MAGIC


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


def check_kinds(weak: str, strong: str) -> None:
    """Validate the names of a rolling sum and a strong hash."""
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
    if (
        not isinstance(strong_len, int)
        or isinstance(strong_len, bool)
        or not 1 <= strong_len <= top
    ):
        raise UsageError(
            f"strong hash length {strong_len!r} is out of range for an rdiff signature with "
            f"{STRONG_NAME[strong]}: use 1..{top} (0 for {top}, -1 for librsync's minimum)"
        )
    return strong_len


class RdiffSignatureInfo(Frozen):
    """What a librsync signature says. It does not record the basis size:
    ``basis_size`` is known only for a signature just made. ``weak`` is
    "rabinkarp" or "rollsum", ``strong`` "blake2" or "md4"."""

    block_len: int
    strong_len: int
    block_count: int
    weak: str
    strong: str
    basis_size: Optional[int]
    _fields = ("block_len", "strong_len", "block_count", "weak", "strong", "basis_size")

    def __init__(
        self,
        block_len: int,
        strong_len: int,
        block_count: int,
        weak: str,
        strong: str,
        basis_size: Optional[int] = None,
    ) -> None:
        vars(self).update(
            block_len=block_len,
            strong_len=strong_len,
            block_count=block_count,
            weak=weak,
            strong=strong,
            basis_size=basis_size,
        )

    @property
    def magic(self) -> int:
        return _MAGIC_OF[(self.weak, self.strong)]

    format = "rdiff"


def magic_of(weak: str, strong: str) -> int:
    """The signature magic (as a number) of a rolling sum and strong hash."""
    return _MAGIC_OF[(weak, strong)]


def pack_sig_header(weak: str, strong: str, block_len: int, strong_len: int) -> bytes:
    return SIG_HEADER.pack(struct.pack(">I", _MAGIC_OF[(weak, strong)]), block_len, strong_len)


def parse_sig_header(head: bytes, name: str) -> Tuple[str, str, int, int]:
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
            f"{STRONG_NAME[strong]} allows 1..{top})"
        )
    return weak, strong, block_len, strong_len


def unverified_message(delta_name: str) -> str:
    """The warning for a patched result that nothing could verify."""
    return (
        f"{delta_name} is an rdiff (librsync) delta, which carries no checksum: "
        "the result could not be verified"
    )
