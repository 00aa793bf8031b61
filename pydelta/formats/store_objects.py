"""The model store's small objects, as bytes: packs' header, pack indexes, tags.

Split from :mod:`.manifest` (which re-exports every name here): the
constants a pack and its index share with manifests (digest length, chunk
codecs), the pack header, the pack index (``packs/<id>.idx``) and the tag
(``tags/<name>``). Bytes only, no I/O; docs/FORMAT.md ("Model store") has
the layouts. Decoders trust nothing and raise
:class:`~pydelta.errors.CorruptStoreError` with a one-line reason.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Callable, List

from ..errors import CorruptStoreError as ManifestError

HASH_LEN = 32

#: How a chunk is stored in its pack (the values of the delta literals'
#: transforms, so one compressor serves both).
CODEC_RAW = 0  #: the chunk's bytes as they are
CODEC_ZSTD = 1  #: one zstd frame of the chunk's bytes
CODEC_ZSTD_GROUP16 = 2  #: one zstd frame of the bytes at even offsets, then odd ones
CODECS = (CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_GROUP16)

#: A stored (compressed) payload may not be larger than this many bytes
#: beyond its chunk: writers store raw whenever compression does not pay.
STORED_SLACK = 0

# ---------------------------------------------------------------- packs

PACK_MAGIC = b"PDPK"
PACK_VERSION = 1
#: magic, u16 version, u16 flags (0)
PACK_HEADER = struct.Struct("<4sHH")


def pack_header() -> bytes:
    """The 8 bytes every pack object starts with."""
    return PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0)


# ---------------------------------------------------------------- pack index


@dataclass(frozen=True)
class PackEntry:
    """One chunk in a pack."""

    __slots__ = ("digest", "offset", "size", "stored", "codec")
    digest: bytes
    offset: int
    size: int
    stored: int
    codec: int


@dataclass
class PackIndex:
    """The chunks of one pack."""

    pack: bytes  #: the pack's id (BLAKE3 of the pack object)
    pack_size: int  #: length of the pack object
    entries: List[PackEntry]


INDEX_MAGIC = b"PDPI"
INDEX_VERSION = 1
#: magic, u16 version, u16 flags, u32 count, pack id, u64 pack length
INDEX_HEADER = struct.Struct("<4sHHI32sQ")
#: digest, u64 offset, u32 size, u32 stored, u8 codec
INDEX_ENTRY = struct.Struct("<32sQIIB")


def encode_pack_index(idx: PackIndex, hasher: Callable[[bytes], bytes]) -> bytes:
    """The index object; ``hasher`` is BLAKE3 (32-byte digest of bytes)."""
    out = bytearray(
        INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, 0, len(idx.entries), idx.pack, idx.pack_size)
    )
    for e in idx.entries:
        out += INDEX_ENTRY.pack(e.digest, e.offset, e.size, e.stored, e.codec)
    out += hasher(bytes(out))
    return bytes(out)


def decode_pack_index(
    data: bytes, hasher: Callable[[bytes], bytes], what: str = "pack index"
) -> PackIndex:
    """Parse and check a pack index (its checksum, bounds and codecs)."""
    if len(data) < INDEX_HEADER.size + HASH_LEN:
        raise ManifestError(f"{what} is truncated")
    magic, ver, flags, count, pack, pack_size = INDEX_HEADER.unpack_from(data, 0)
    if magic != INDEX_MAGIC:
        raise ManifestError(f"{what} is not a pydelta pack index")
    if ver != INDEX_VERSION:
        raise ManifestError(f"{what} has format version {ver}: upgrade pydelta")
    if len(data) != INDEX_HEADER.size + count * INDEX_ENTRY.size + HASH_LEN:
        raise ManifestError(f"{what} is truncated or has trailing bytes")
    if hasher(data[:-HASH_LEN]) != data[-HASH_LEN:]:
        raise ManifestError(f"{what} is damaged (checksum mismatch)")
    entries = []
    for i in range(count):
        d, off, size, stored, codec = INDEX_ENTRY.unpack_from(
            data, INDEX_HEADER.size + i * INDEX_ENTRY.size
        )
        if codec not in CODECS or size == 0 or stored == 0 or stored > size + STORED_SLACK:
            raise ManifestError(f"{what} has an invalid entry {i}")
        if codec == CODEC_RAW and stored != size:
            raise ManifestError(f"{what} has an invalid entry {i}")
        if off < PACK_HEADER.size or off + stored > pack_size:
            raise ManifestError(f"{what} has an entry outside its pack ({i})")
        entries.append(PackEntry(d, off, size, stored, codec))
    return PackIndex(pack, pack_size, entries)


# ---------------------------------------------------------------- tags

TAG_FORMAT = "pydelta-tag"
TAG_VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Tag:
    """A tag: a name pointing at a version."""

    version: str  #: the version id (64 lowercase hex digits)
    time: float  #: when the tag was set (seconds since the epoch)


def encode_tag(tag: Tag) -> bytes:
    """The tag object (one line of JSON)."""
    if not _HEX64.fullmatch(tag.version):
        raise ValueError("a version id is 64 lowercase hex digits")
    doc = {
        "format": TAG_FORMAT,
        "format_version": TAG_VERSION,
        "version": tag.version,
        "time": round(float(tag.time), 3),
    }
    return (json.dumps(doc, sort_keys=True) + "\n").encode("ascii")


def decode_tag(data: bytes, what: str = "tag") -> Tag:
    """Parse and check a tag object."""
    if len(data) > 4096:
        raise ManifestError(f"{what} is not a pydelta tag (too large)")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # (nested past the parser)
        raise ManifestError(f"{what} is not a pydelta tag (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("format") != TAG_FORMAT:
        raise ManifestError(f"{what} is not a pydelta tag")
    if doc.get("format_version") != TAG_VERSION:
        raise ManifestError(
            f"{what} has format version {doc.get('format_version')!r}: upgrade pydelta"
        )
    version, t = doc.get("version"), doc.get("time")
    if not isinstance(version, str) or not _HEX64.fullmatch(version):
        raise ManifestError(f"{what} names an invalid version")
    if not isinstance(t, (int, float)) or isinstance(t, bool):
        raise ManifestError(f"{what} has an invalid time")
    return Tag(version, float(t))
