"""The model store's objects, as bytes: manifests, pack indexes, tags, packs.

Pack indexes, tags and the shared constants live in :mod:`.store_objects`
and are re-exported here, so ``manifest`` stays the one namespace.

Bytes only: nothing here does I/O or calls a kernel backend. The layout of
each object is specified in docs/FORMAT.md ("Model store"); in short:

* a **pack** (``packs/<id>.pack``) is an 8-byte header followed by chunk
  payloads, each stored on its own (raw, zstd, or zstd after 16-bit byte
  grouping) so a ranged GET of one payload is enough to rebuild its chunk;
  ``<id>`` is the BLAKE3 of the whole pack object;
* a **pack index** (``packs/<id>.idx``) lists the chunks of one pack (digest,
  offset, length, stored length, codec) and ends with the BLAKE3 of what
  precedes it; it is written after its pack, so an index names a complete
  pack;
* a **manifest** (``versions/<id>``) describes one version: every file's
  path, size, mode and BLAKE3, and its chunk list (digest, length, codec,
  stored length, pack and offset). Its id is the BLAKE3 of the manifest
  bytes, so a version is named by its content and a manifest read back is
  checked against its name;
* a **tag** (``tags/<name>``) is a small JSON object naming a version.

Every decoder trusts nothing: counts are checked against the bytes present
before anything is allocated, paths must be relative and stay inside the
tree, chunk lengths must add up to the file size, and every reference must
point inside its table. Malformed input raises
:class:`~pydelta.errors.CorruptStoreError` with a one-line reason naming the
object (``what``).
"""

from __future__ import annotations

import re
import struct
from array import array
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import CorruptStoreError as ManifestError
from ..errors import UsageError
from .native import varint
from .store_objects import (  # noqa: F401 - re-exported: the store's objects, one namespace
    CODEC_RAW,
    CODEC_ZSTD,
    CODEC_ZSTD_GROUP16,
    CODECS,
    HASH_LEN,
    INDEX_ENTRY,
    INDEX_HEADER,
    INDEX_MAGIC,
    INDEX_VERSION,
    PACK_HEADER,
    PACK_MAGIC,
    PACK_VERSION,
    STORED_SLACK,
    TAG_FORMAT,
    TAG_VERSION,
    PackEntry,
    PackIndex,
    Tag,
    decode_pack_index,
    decode_tag,
    encode_pack_index,
    encode_tag,
    pack_header,
)

__all__ = [
    "CODEC_RAW",
    "CODEC_ZSTD",
    "CODEC_ZSTD_GROUP16",
    "CODECS",
    "HASH_LEN",
    "ChunkRef",
    "ChunkList",
    "FileEntry",
    "Manifest",
    "PackEntry",
    "PackIndex",
    "Tag",
    "PACK_MAGIC",
    "PACK_HEADER",
    "encode_manifest",
    "decode_manifest",
    "decode_manifest_header",
    "ManifestHeader",
    "MANIFEST_HEADER",
    "encode_pack_index",
    "decode_pack_index",
    "encode_tag",
    "decode_tag",
    "check_tag_name",
    "check_path",
]

# ---------------------------------------------------------------- varints

_varint = varint  # canonical unsigned LEB128, as in deltas


class _Reader:
    """Bounds-checked reads from a bytes body."""

    def __init__(self, data: "bytes | memoryview", what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def left(self) -> int:
        return len(self.data) - self.pos

    def bytes(self, n: int) -> bytes:
        if n > self.left():
            raise ManifestError(f"{self.what} is truncated")
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise ManifestError(f"{self.what} is truncated")
        v = self.data[self.pos]
        self.pos += 1
        return v

    def varint(self) -> int:
        v = shift = 0
        for _ in range(10):
            b = self.u8()
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                if v >> 64:
                    break
                return v
            shift += 7
        raise ManifestError(f"{self.what} has an invalid number")


# ---------------------------------------------------------------- paths and names

_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_tag_name(name: str) -> str:
    """Return ``name`` if it is a valid tag name, else raise UsageError."""
    if not isinstance(name, str) or not _TAG_RE.fullmatch(name):
        raise UsageError(
            f"invalid tag name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "not starting with '.' or '-'"
        )
    return name


def check_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX path, else raise ManifestError.

    Safe: non-empty components, no '.', '..', backslashes, NUL bytes or
    control characters, not absolute, at most 4096 bytes.
    """
    if not path or len(path.encode("utf-8", "surrogateescape")) > 4096:
        raise ManifestError(f"invalid path {path!r} in the manifest")
    if path.startswith("/") or "\\" in path or any(ord(ch) < 32 for ch in path):
        raise ManifestError(f"unsafe path {path!r} in the manifest")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise ManifestError(f"unsafe path {path!r} in the manifest")
    return path


# ---------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a file, and where the store keeps it."""

    __slots__ = ("digest", "size", "codec", "stored", "pack", "offset")  # many of these
    digest: bytes  #: BLAKE3 of the chunk's bytes
    size: int  #: the chunk's length
    codec: int  #: CODEC_* (how the payload is stored)
    stored: int  #: the payload's length in the pack
    pack: bytes  #: id of the pack (32 bytes)
    offset: int  #: where the payload starts in the pack object


class ChunkList:
    """The chunks of one file, stored column by column.

    A 100 GB model has hundreds of thousands of chunks; as ChunkRef objects
    they would take ~270 bytes each, in these columns ~53 (digest 32,
    length 4, stored length 4, offset 8, pack number 4, codec 1). Reads
    build a ChunkRef on the fly; pack ids are kept once per list.
    """

    __slots__ = (
        "_digests",
        "_sizes",
        "_stored",
        "_offsets",
        "_packs",
        "_codecs",
        "_pack_ids",
        "_pack_no",
    )

    def __init__(self, refs: Iterable[ChunkRef] = ()) -> None:
        self._digests = bytearray()
        self._sizes = array("I")  # chunks are at most 1 GiB (u32 in a manifest header)
        self._stored = array("I")
        self._offsets = array("Q")
        self._packs = array("I")
        self._codecs = bytearray()
        self._pack_ids: List[bytes] = []
        self._pack_no: Dict[bytes, int] = {}
        for r in refs:
            self.append(r)

    def append(self, r: ChunkRef) -> None:
        """Add a chunk at the end."""
        n = self._pack_no.get(r.pack)
        if n is None:
            n = self._pack_no[r.pack] = len(self._pack_ids)
            self._pack_ids.append(r.pack)
        if len(r.digest) != HASH_LEN:
            raise ValueError("chunk digests are 32 bytes")
        self._digests += r.digest
        self._sizes.append(r.size)
        self._stored.append(r.stored)
        self._offsets.append(r.offset)
        self._packs.append(n)
        self._codecs.append(r.codec)

    def __len__(self) -> int:
        return len(self._sizes)

    def __getitem__(self, i: int) -> ChunkRef:
        if i < 0:
            i += len(self._sizes)
        return ChunkRef(
            bytes(self._digests[HASH_LEN * i : HASH_LEN * i + HASH_LEN]),
            self._sizes[i],
            self._codecs[i],
            self._stored[i],
            self._pack_ids[self._packs[i]],
            self._offsets[i],
        )

    def __iter__(self) -> Iterator[ChunkRef]:
        for i in range(len(self._sizes)):
            yield self[i]

    def digest(self, i: int) -> bytes:
        """The digest of chunk i (without building a ChunkRef)."""
        return bytes(self._digests[HASH_LEN * i : HASH_LEN * i + HASH_LEN])

    def sizes(self) -> "array[int]":
        """The chunk lengths (the array itself: do not modify)."""
        return self._sizes

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChunkList):
            return list(self) == list(other)
        if isinstance(other, list):
            return list(self) == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"ChunkList({len(self)} chunks)"


@dataclass
class FileEntry:
    """One file of a version."""

    path: str  #: relative POSIX path ('/'-separated); a single file's name
    size: int
    mode: int  #: permission bits (0o777 mask)
    digest: bytes  #: BLAKE3 of the whole file
    chunks: ChunkList = field(default_factory=ChunkList)

    def __post_init__(self) -> None:
        if not isinstance(self.chunks, ChunkList):
            self.chunks = ChunkList(self.chunks)


@dataclass
class Manifest:
    """One version of a file or a folder."""

    files: List[FileEntry]
    single_file: bool  #: the version is one file (pushed from a file, not a folder)
    chunker: Tuple[int, int, int]  #: (min, avg, max) chunk sizes used

    @property
    def total_size(self) -> int:
        """Bytes of all files."""
        return sum(f.size for f in self.files)

    @property
    def chunk_count(self) -> int:
        """Chunk references over all files (repeats counted)."""
        return sum(len(f.chunks) for f in self.files)

    def packs(self) -> List[bytes]:
        """The distinct packs the version uses, in first-use order."""
        seen: Dict[bytes, None] = {}
        for f in self.files:
            for c in f.chunks:
                seen.setdefault(c.pack, None)
        return list(seen)


MANIFEST_MAGIC = b"PDMF"
MANIFEST_VERSION = 1
FLAG_SINGLE_FILE = 1
#: magic, u16 version, u16 flags, u64 files, u64 total bytes, u64 chunks,
#: u32 packs, u32 min, u32 avg, u32 max, u64 body length
MANIFEST_HEADER = struct.Struct("<4sHHQQQIIIIQ")
#: Smallest encoding of one chunk reference (digest, 1-byte size, codec, pack ref).
_MIN_CHUNK_BYTES = HASH_LEN + 3
#: Smallest encoding of one file (path, size, mode, digest, chunk count).
_MIN_FILE_BYTES = 1 + 1 + 1 + 1 + HASH_LEN + 1


@dataclass(frozen=True)
class ManifestHeader:
    """The fixed-size header of a manifest (enough for a listing)."""

    version: int
    single_file: bool
    files: int
    total_size: int
    chunks: int
    packs: int
    chunker: Tuple[int, int, int]
    body_len: int


def encode_manifest(m: Manifest) -> bytes:
    """The manifest's bytes (deterministic: the same version, the same bytes).

    Files are written sorted by path.
    """
    packs = m.packs()
    pack_no = {p: i for i, p in enumerate(packs)}
    body = bytearray(MANIFEST_HEADER.size)  # the header goes in place at the end
    for p in packs:
        if len(p) != HASH_LEN:
            raise ValueError("pack ids are 32 bytes")
        body += p
    files = sorted(m.files, key=lambda f: f.path)
    for f in files:
        check_path(f.path)
        raw = f.path.encode("utf-8", "surrogateescape")
        body += _varint(len(raw)) + raw
        body += _varint(f.size) + _varint(f.mode & 0o7777)
        body += f.digest
        body += _varint(len(f.chunks))
        prev_pack, prev_end = None, -1
        for c in f.chunks:
            if c.codec not in CODECS:
                raise ValueError(f"unknown codec {c.codec}")
            body += c.digest + _varint(c.size) + bytes((c.codec,))
            if c.codec != CODEC_RAW:
                body += _varint(c.stored)
            if c.pack == prev_pack and c.offset == prev_end:
                body += b"\x00"  # right after the previous chunk, same pack
            else:
                body += _varint(pack_no[c.pack] + 1) + _varint(c.offset)
            prev_pack, prev_end = c.pack, c.offset + c.stored
    lo, avg, hi = m.chunker
    MANIFEST_HEADER.pack_into(
        body,
        0,
        MANIFEST_MAGIC,
        MANIFEST_VERSION,
        FLAG_SINGLE_FILE if m.single_file else 0,
        len(files),
        sum(f.size for f in files),
        sum(len(f.chunks) for f in files),
        len(packs),
        lo,
        avg,
        hi,
        len(body) - MANIFEST_HEADER.size,
    )
    return bytes(body)


def decode_manifest_header(data: bytes, what: str = "manifest") -> ManifestHeader:
    """Read the fixed header (the first MANIFEST_HEADER.size bytes)."""
    if len(data) < MANIFEST_HEADER.size:
        raise ManifestError(f"{what} is truncated (shorter than its header)")
    magic, ver, flags, nfiles, total, nchunks, npacks, lo, avg, hi, blen = (
        MANIFEST_HEADER.unpack_from(data, 0)
    )
    if magic != MANIFEST_MAGIC:
        raise ManifestError(f"{what} is not a pydelta manifest")
    if ver != MANIFEST_VERSION:
        raise ManifestError(
            f"{what} has format version {ver}; this pydelta reads version {MANIFEST_VERSION}: "
            "upgrade pydelta"
        )
    if flags & ~FLAG_SINGLE_FILE:
        raise ManifestError(f"{what} has unknown flags {flags:#x}")
    return ManifestHeader(
        ver, bool(flags & FLAG_SINGLE_FILE), nfiles, total, nchunks, npacks, (lo, avg, hi), blen
    )


def decode_manifest(data: bytes, what: str = "manifest") -> Manifest:
    """Parse and check a whole manifest."""
    h = decode_manifest_header(data, what)
    body = memoryview(data)[MANIFEST_HEADER.size :]  # not a copy: a manifest is ~45 B a chunk
    if len(body) != h.body_len:
        raise ManifestError(
            f"{what} is truncated or has trailing bytes "
            f"(body of {len(body)} bytes, header says {h.body_len})"
        )
    lo, avg, hi = h.chunker
    if not 0 < lo <= avg <= hi:
        raise ManifestError(f"{what} has invalid chunk sizes {h.chunker}")
    if h.packs * HASH_LEN > len(body):
        raise ManifestError(f"{what} is truncated (pack table)")
    if h.files * _MIN_FILE_BYTES + h.chunks * _MIN_CHUNK_BYTES > len(body):
        raise ManifestError(f"{what} counts more files or chunks than it holds")
    if h.single_file and h.files != 1:
        raise ManifestError(f"{what} is a single-file version with {h.files} files")
    r = _Reader(body, what)
    packs = [r.bytes(HASH_LEN) for _ in range(h.packs)]
    files: List[FileEntry] = []
    seen_paths = set()
    total = chunks_total = 0
    prev_path = None
    for _ in range(h.files):
        plen = r.varint()
        raw = r.bytes(plen)
        try:
            path = raw.decode("utf-8", "surrogateescape")
        except UnicodeDecodeError:  # pragma: no cover - surrogateescape decodes anything
            raise ManifestError(f"{what} has an undecodable path") from None
        try:
            check_path(path)
        except ManifestError as e:
            raise ManifestError(f"{what}: {e}") from None
        if prev_path is not None and path <= prev_path:
            raise ManifestError(f"{what} lists files out of order or twice ({path!r})")
        prev_path = path
        seen_paths.add(path)
        size = r.varint()
        mode = r.varint()
        if mode > 0o7777:
            raise ManifestError(f"{what} has an invalid mode for {path!r}")
        digest = r.bytes(HASH_LEN)
        n = r.varint()
        if n * _MIN_CHUNK_BYTES > r.left():
            raise ManifestError(f"{what} is truncated (chunks of {path!r})")
        chunks = ChunkList()
        covered = 0
        prev_pack: Optional[bytes] = None
        prev_end = 0
        for _ in range(n):
            cd = r.bytes(HASH_LEN)
            csize = r.varint()
            codec = r.u8()
            if codec not in CODECS:
                raise ManifestError(f"{what} has an unknown chunk codec {codec} in {path!r}")
            if csize == 0 or csize > hi:
                raise ManifestError(f"{what} has a chunk of invalid length {csize} in {path!r}")
            stored = csize if codec == CODEC_RAW else r.varint()
            if stored == 0 or stored > csize + STORED_SLACK:
                raise ManifestError(f"{what} has an invalid stored length in {path!r}")
            ref = r.varint()
            if ref == 0:
                if prev_pack is None:
                    raise ManifestError(f"{what} continues a pack that was never named in {path!r}")
                pack, offset = prev_pack, prev_end
            else:
                if ref > len(packs):
                    raise ManifestError(f"{what} names pack {ref - 1} of {len(packs)} in {path!r}")
                pack, offset = packs[ref - 1], r.varint()
            if offset < PACK_HEADER.size:
                raise ManifestError(f"{what} has a chunk inside a pack header in {path!r}")
            chunks.append(ChunkRef(cd, csize, codec, stored, pack, offset))
            prev_pack, prev_end = pack, offset + stored
            covered += csize
        if covered != size:
            raise ManifestError(
                f"{what}: the chunks of {path!r} cover {covered} bytes, the file has {size}"
            )
        total += size
        chunks_total += n
        files.append(FileEntry(path, size, mode, digest, chunks))
    if r.left():
        raise ManifestError(f"{what} has {r.left()} unexpected bytes at its end")
    if total != h.total_size or chunks_total != h.chunks:
        raise ManifestError(f"{what}: its header totals do not match its body")
    # no path may be a file and a folder at once ("a" and "a/b")
    for p in seen_paths:
        parts = p.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen_paths:
                raise ManifestError(f"{what} has {'/'.join(parts[:i])!r} as a file and a folder")
    return Manifest(files, h.single_file, h.chunker)


def check_version_id(text: str) -> str:
    """A full version id (64 lowercase hex digits) or a prefix of one (>= 4 digits)."""
    v = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", v):
        raise UsageError(f"invalid version id {text!r}: use the hex id that 'pydelta ls' shows")
    return v


def sorted_unique(items: Sequence[bytes]) -> List[bytes]:
    """Distinct items, sorted."""
    return sorted(set(items))
