"""The store's object formats (pydelta/formats/manifest.py): round trips and hostile bytes."""

from __future__ import annotations

import random
import struct

import blake3 as ref_blake3
import pytest

from pydelta import errors
from pydelta.formats import manifest as mf


def b3(data: bytes) -> bytes:
    return ref_blake3.blake3(data).digest()


P1, P2 = b"\x01" * 32, b"\x02" * 32


def sample() -> mf.Manifest:
    c = [
        mf.ChunkRef(b3(b"a"), 100, mf.CODEC_RAW, 100, P1, 8),
        mf.ChunkRef(b3(b"b"), 50, mf.CODEC_ZSTD, 20, P1, 108),
        mf.ChunkRef(b3(b"c"), 70, mf.CODEC_ZSTD_GROUP16, 60, P2, 8),
    ]
    return mf.Manifest(
        [
            mf.FileEntry("b/model.bin", 220, 0o644, b3(b"whole"), c),
            mf.FileEntry("a.json", 100, 0o600, b3(b"a"), [c[0]]),
            mf.FileEntry("empty", 0, 0o644, b3(b""), []),
        ],
        False,
        (64, 256, 1024),
    )


def test_manifest_round_trip_and_determinism():
    m = sample()
    data = mf.encode_manifest(m)
    assert data == mf.encode_manifest(sample())
    back = mf.decode_manifest(data)
    assert [f.path for f in back.files] == ["a.json", "b/model.bin", "empty"]
    assert back.files[1].chunks == m.files[0].chunks
    assert back.total_size == 320 and back.chunk_count == 4 and not back.single_file
    h = mf.decode_manifest_header(data[: mf.MANIFEST_HEADER.size])
    assert (h.files, h.total_size, h.chunks, h.packs) == (3, 320, 4, 2)


def test_every_truncation_is_rejected():
    data = mf.encode_manifest(sample())
    for n in range(len(data)):
        with pytest.raises(errors.CorruptStoreError):
            mf.decode_manifest(data[:n])


def test_random_damage_never_crashes():
    data = mf.encode_manifest(sample())
    rng = random.Random(1)
    for _ in range(3000):
        d = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            d[rng.randrange(len(d))] = rng.randrange(256)
        try:
            mf.decode_manifest(bytes(d))
        except errors.CorruptStoreError:
            pass


def _with_path(path: str) -> bytes:
    m = sample()
    m.files = [mf.FileEntry("x", 0, 0o644, b3(b""), [])]
    data = bytearray(mf.encode_manifest(m))
    # replace the path bytes (varint length 1, 'x') in place by a hostile one
    raw = path.encode()
    at = mf.MANIFEST_HEADER.size
    body = bytes(data[at:])
    body = bytes([len(raw)]) + raw + body[2:]
    head = bytearray(data[:at])
    struct.pack_into("<Q", head, mf.MANIFEST_HEADER.size - 8, len(body))
    return bytes(head) + body


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs", "a//b", "a/./b", "a\\b", "a/\x01", "."])
def test_unsafe_paths_are_rejected(path):
    with pytest.raises(errors.CorruptStoreError, match="path"):
        mf.decode_manifest(_with_path(path))


def test_header_checks():
    data = bytearray(mf.encode_manifest(sample()))
    bad = bytearray(data)
    bad[0:4] = b"XXXX"
    with pytest.raises(errors.CorruptStoreError, match="not a pydelta manifest"):
        mf.decode_manifest(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<H", bad, 4, 99)
    with pytest.raises(errors.CorruptStoreError, match="upgrade"):
        mf.decode_manifest(bytes(bad))
    bad = bytearray(data)
    struct.pack_into("<Q", bad, 8, 10**12)  # absurd file count: refused before any allocation
    with pytest.raises(errors.CorruptStoreError):
        mf.decode_manifest(bytes(bad))


def test_file_and_folder_with_one_name():
    m = sample()
    m.files.append(mf.FileEntry("b", 0, 0o644, b3(b""), []))
    with pytest.raises(errors.CorruptStoreError, match="file and a folder"):
        mf.decode_manifest(mf.encode_manifest(m))


def test_pack_index_round_trip_and_damage():
    idx = mf.PackIndex(
        P1, 300, [mf.PackEntry(b3(b"a"), 8, 100, 100, 0), mf.PackEntry(b3(b"b"), 108, 500, 192, 1)]
    )
    data = mf.encode_pack_index(idx, b3)
    assert mf.decode_pack_index(data, b3) == idx
    for n in range(len(data)):
        with pytest.raises(errors.CorruptStoreError):
            mf.decode_pack_index(data[:n], b3)
    d = bytearray(data)
    d[40] ^= 1
    with pytest.raises(errors.CorruptStoreError, match="checksum"):
        mf.decode_pack_index(bytes(d), b3)
    outside = mf.PackIndex(P1, 100, [mf.PackEntry(b3(b"a"), 8, 100, 100, 0)])
    with pytest.raises(errors.CorruptStoreError, match="outside"):
        mf.decode_pack_index(mf.encode_pack_index(outside, b3), b3)


def test_tags():
    t = mf.Tag("ab" * 32, 1700000000.5)
    assert mf.decode_tag(mf.encode_tag(t)) == t
    for bad in (
        b"",
        b"[]",
        b'{"format": "x"}',
        b"\xff",
        b'{"format": "pydelta-tag", "format_version": 1, "version": "../x", "time": 1}',
    ):
        with pytest.raises(errors.CorruptStoreError):
            mf.decode_tag(bad)
    for name in ("latest", "v1.2", "a_b-c"):
        assert mf.check_tag_name(name) == name
    for name in ("", ".hidden", "-x", "a/b", "a" * 129, "a b"):
        with pytest.raises(errors.UsageError):
            mf.check_tag_name(name)
