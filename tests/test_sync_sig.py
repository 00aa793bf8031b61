"""Short strong sums on the sync wire (pydelta/sync/shortsig.py).

A signature cut to 8-byte strong sums must be byte for byte the one signed
at that length (BLAKE3's shorter output is a prefix of its longer one), for
every way its pieces can arrive; a damaged input is refused; the receiving
end's cache serves a short request from its full-length entry and keeps it
full-length; the protocol field is checked.
"""

from __future__ import annotations

import io

import pytest
from conftest import rand_bytes
from test_sync import write

from pydelta.errors import CorruptSignatureError, FormatError
from pydelta.formats import native as fmt
from pydelta.signature import iter_signature
from pydelta.sync import messages, shortsig, sigcache
from pydelta.sync.messages import Put, decode, encode
from pydelta.sync.shortsig import shorten
from pydelta.sync.sigcache import SigCache
from pydelta.sync.transfer import Incoming


def signed(data: bytes, strong_len: int = fmt.DEFAULT_STRONG_LEN, block: int = 1024) -> bytes:
    pieces = iter_signature(
        io.BytesIO(data), block_size=block, strong_len=strong_len, strong_hash="blake3"
    )
    return b"".join(bytes(p) for p in pieces)


def pieces_of(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("length", [0, 1, 1023, 1024, 5000, 64 << 10])
@pytest.mark.parametrize("strong_len", [8, 9, 15])
def test_cut_signature_is_the_one_signed_short(length, strong_len):
    data = rand_bytes(length, length + strong_len)
    full = signed(data)
    want = signed(data, strong_len)
    for size in (1, 7, 24, 52, 100, 4096, len(full)):
        got = b"".join(shorten(pieces_of(full, size), strong_len))
        assert got == want, (length, strong_len, size)
    fmt.parse_sig_trailer(want, "short")  # a well-formed signature


def test_a_signature_not_longer_passes_as_is():
    full = signed(rand_bytes(10_000, 3), 8)
    assert b"".join(shorten(pieces_of(full, 100), 8)) == full
    assert b"".join(shorten([full], 16)) == full


def test_damaged_or_truncated_input_is_refused():
    full = bytearray(signed(rand_bytes(20_000, 4)))
    with pytest.raises(CorruptSignatureError):
        list(shorten([bytes(full[:-1])], 8))
    with pytest.raises(CorruptSignatureError):
        list(shorten([bytes(full[:-60])], 8))
    full[fmt.SIG_HEADER.size + 30] ^= 1  # a strong sum
    with pytest.raises(CorruptSignatureError):
        list(shorten(pieces_of(bytes(full), 333), 8))
    with pytest.raises(FormatError):  # not a signature at all
        list(shorten([b"PDDL" + bytes(100)], 8))


def test_incoming_serves_a_short_request_from_the_full_cache_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(sigcache, "MIN_FILE", 1 << 16)
    data = rand_bytes(3 << 20, 5)
    write(tmp_path / "d" / "m.bin", data)
    cache = SigCache(str(tmp_path / "cache"))

    def sign(strong_len):
        inc = Incoming(str(tmp_path / "d"), "m.bin", fsync=False, threads=1, cache=cache)
        try:
            return b"".join(bytes(p) for p in inc.signature(strong_len)), inc._sig_tail
        finally:
            inc._ok = True  # not a failed sync: keep the entry
            inc.close()

    short, tail = sign(8)  # a miss: signed at full length, sent short
    assert (cache.hits, cache.misses) == (0, 1)
    # an entry is written when the file is found unchanged (or signed ahead): full length
    sigcache.sign_file(str(tmp_path / "d" / "m.bin"), cache)
    with open(tmp_path / "d" / "m.bin", "rb") as fh:
        full = b"".join(bytes(p) for p in iter_signature(fh, strong_hash="blake3"))
        assert cache.get(fh.fileno()) == full  # the entry is the full-length one
    hits = cache.hits
    assert short == b"".join(shorten([full], 8)) and fmt.parse_sig_header(short, "s")[1] == 8
    assert tail == short[-36:]  # the digest the delta must name is the one sent
    again, _ = sign(8)  # a hit: the full entry, cut
    assert again == short and cache.hits == hits + 1
    assert sign(None)[0] == full  # the default request gets the entry as it is


def test_put_carries_a_checked_strong_len():
    m = encode(Put("r", "p", strong_len=8))
    assert decode(m) == Put("r", "p", strong_len=8)
    assert decode(encode(Put("r", "p"))).strong_len is None
    for bad in (7, 33, "8", True):
        with pytest.raises((TypeError, ValueError)):
            decode({**m, "strong_len": bad})
    assert shortsig.FEATURE in messages.FEATURES
    assert shortsig.first_strong_len(frozenset()) is None
    assert shortsig.first_strong_len(frozenset({shortsig.FEATURE})) == 8


def test_put_answers():
    peer = "srv"
    assert shortsig.put_action({"ok": True, "action": "updated"}, peer, True) == "updated"
    retry = shortsig.retry_reply("delta is corrupted")
    assert shortsig.put_action(retry, peer, True) is None
    with pytest.raises(Exception, match="delta is corrupted"):
        shortsig.put_action(retry, peer, False)
    with pytest.raises(Exception, match="action"):
        shortsig.put_action({"ok": True, "action": "wat"}, peer, True)


def test_signature_limit_covers_short_entries():
    from pydelta.sync.transfer import signature_limit

    size = 1 << 30
    block = fmt.default_block_len(size)
    sig = fmt.SIG_HEADER.size + -(-size // block) * 16 + fmt.SIG_TRAILER.size
    assert sig <= signature_limit(block, 8)
