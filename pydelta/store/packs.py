"""Packs: many chunks in one object, each stored on its own.

A pack is built in a spool file on local disk (so memory stays at one chunk
per worker, whatever the pack size), hashed as it is written, and named by
that hash when it is finished. Each chunk's payload is its bytes, or one
zstd frame of them (optionally after 16-bit byte grouping) when that is at
least a few percent smaller - the same compressor and parameters the delta
literals use (:mod:`pydelta.formats.literals`), so the payload of a chunk depends
only on its bytes and the level. A payload alone rebuilds its chunk, so a
ranged GET fetches exactly what a pull needs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import List, Optional, Tuple

import zstandard

from ..backends import backend
from ..errors import CorruptStoreError
from ..formats import literals
from ..formats import manifest as mf

#: Default pack size: a new pack is started once this many bytes are in one.
DEFAULT_PACK_SIZE = 32 << 20
#: Default zstd level for chunks (level 1 is as small as 3 on model weights, and faster).
DEFAULT_LEVEL = 1


def blake3(data: bytes) -> bytes:
    """BLAKE3 of data with the backend in use."""
    return backend.blake3_digest(data)


class ChunkCodec:
    """Encodes chunks for packs and decodes payloads back; thread-safe."""

    def __init__(self, level: int = DEFAULT_LEVEL, compress: bool = True) -> None:
        self._comp = literals.Compressor(level) if compress else None
        self._skip = 0  # adaptive: consecutive chunks that did not compress

    def encode(self, data: bytes) -> Tuple[int, bytes]:
        """(codec, payload) for a chunk's bytes."""
        if self._comp is None or len(data) < literals.THRESHOLD:
            return mf.CODEC_RAW, data
        transform, frame = self._comp.best(data)
        if len(frame) > len(data) * (1.0 - literals.MIN_SAVING):
            return mf.CODEC_RAW, data
        return transform, frame


def decode_payload(payload: bytes, codec: int, size: int, digest: bytes, what: str) -> bytes:
    """The chunk's bytes from its stored payload, checked against its BLAKE3.

    Raises CorruptStoreError (naming ``what``) if the payload does not
    decode to exactly ``size`` bytes with that digest.
    """
    if codec == mf.CODEC_RAW:
        data = bytes(payload)
    else:
        try:
            raw = zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
        except zstandard.ZstdError as e:
            raise CorruptStoreError(f"{what}: a chunk does not decompress ({e})") from None
        if len(raw) != size:
            raise CorruptStoreError(f"{what}: a chunk decompresses to the wrong length")
        if codec == mf.CODEC_ZSTD_GROUP16:
            out = bytearray(size)
            literals.ungroup16(raw, out)
            data = bytes(out)
        else:
            data = raw
    if len(data) != size or blake3(data) != digest:
        raise CorruptStoreError(
            f"{what} returned the wrong bytes for chunk {digest.hex()[:16]} (BLAKE3 mismatch)"
        )
    return data


class PackWriter:
    """One pack being built in a spool file."""

    def __init__(self, spool_dir: Optional[str]) -> None:
        fd, self.path = tempfile.mkstemp(prefix="pack.", suffix=".tmp", dir=spool_dir)
        self._fh = os.fdopen(fd, "wb")
        self._hash = backend.Blake3()
        self.entries: List[mf.PackEntry] = []
        self.size = 0
        self._write(mf.pack_header())

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self.size += len(data)

    def add(self, digest: bytes, size: int, codec: int, payload: bytes) -> int:
        """Append a payload; returns its offset in the pack."""
        off = self.size
        self._write(payload)
        self.entries.append(mf.PackEntry(digest, off, size, len(payload), codec))
        return off

    def finish(self) -> Tuple[bytes, mf.PackIndex]:
        """Close the spool file: (pack id, its index)."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        pack_id = self._hash.digest()
        return pack_id, mf.PackIndex(pack_id, self.size, self.entries)

    def discard(self) -> None:
        """Drop the spool file."""
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def pack_key(pack_id: bytes) -> str:
    """The store key of a pack."""
    return f"packs/{pack_id.hex()}.pack"


def index_key(pack_id: bytes) -> str:
    """The store key of a pack's index."""
    return f"packs/{pack_id.hex()}.idx"
