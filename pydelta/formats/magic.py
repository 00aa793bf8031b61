"""Every magic number pydelta recognizes, and the one sniff() over them.

pydelta's own files start with ``PDSG`` (signature) or ``PDDL`` (delta);
librsync's (rdiff's) with one of four signature magics or its delta magic
(the same numbers are the ``PD_RS_*_MAGIC`` enums of csrc/pydelta.h; a test
checks they agree). Other tools' magics are known only to name them in
error messages.
"""

from __future__ import annotations

import struct
from typing import Dict, Optional, Tuple

#: pydelta's own files.
SIG_MAGIC = b"PDSG"
SIG_END_MAGIC = b"PDSE"
DELTA_MAGIC = b"PDDL"

#: librsync's files (big-endian u32 magics).
RDIFF_DELTA_MAGIC = struct.pack(">I", 0x72730236)
#: librsync signature magic -> (rolling sum, strong hash).
RDIFF_SIG_MAGICS: Dict[bytes, Tuple[str, str]] = {
    struct.pack(">I", 0x72730136): ("rollsum", "md4"),
    struct.pack(">I", 0x72730137): ("rollsum", "blake2"),
    struct.pack(">I", 0x72730146): ("rabinkarp", "md4"),
    struct.pack(">I", 0x72730147): ("rabinkarp", "blake2"),
}

#: What :func:`sniff` answers.
SIGNATURE = "signature"
DELTA = "delta"
RDIFF_SIGNATURE = "rdiff signature"
RDIFF_DELTA = "rdiff delta"

_FOREIGN = {
    b"\xd6\xc3\xc4\x00": "an xdelta3/VCDIFF delta",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
    b"\x1f\x8b\x08\x00": "a gzip file",
}
_NAMES = {
    SIGNATURE: "a pydelta signature",
    DELTA: "a pydelta delta",
    RDIFF_SIGNATURE: "an rdiff (librsync) signature",
    RDIFF_DELTA: "an rdiff (librsync) delta",
}


def sniff(head: bytes) -> Optional[str]:
    """Which file ``head`` (its first 4 bytes or more) starts: SIGNATURE, DELTA,
    RDIFF_SIGNATURE, RDIFF_DELTA, or None for anything else."""
    magic = bytes(head[:4])
    if magic == SIG_MAGIC:
        return SIGNATURE
    if magic == DELTA_MAGIC:
        return DELTA
    if magic in RDIFF_SIG_MAGICS:
        return RDIFF_SIGNATURE
    if magic == RDIFF_DELTA_MAGIC:
        return RDIFF_DELTA
    return None


def describe_magic(head: bytes) -> str:
    """Name the kind of file ``head`` (its first bytes) starts, for messages."""
    kind = sniff(head)
    if kind is not None:
        return _NAMES[kind]
    for magic, name in _FOREIGN.items():
        if bytes(head[:4]) == magic:
            return name
    if not head:
        return "an empty file"
    return "not a pydelta file"
