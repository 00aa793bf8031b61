"""Short strong sums on the wire (feature ``shortsig``) and the retry of a
file whose result failed its digest.

A receiving end's signature holds, per block, an 8-byte weak sum and
``strong_len`` bytes of the block's BLAKE3. The strong sum only has to make a
false block match rare: every sync result is verified against the sender's
whole-file BLAKE3 before it replaces anything. With the feature agreed the
receiver sends 8 bytes of BLAKE3 per block (:data:`SHORT_STRONG_LEN`) instead
of 16, a third less signature on the wire (24 -> 16 bytes per block).

BLAKE3 is an extendable-output function: a shorter output is a prefix of a
longer one, so a 16-byte signature becomes the 8-byte one by cutting every
entry (:func:`shorten`) - the signature cache keeps serving its full-length
entries, and a miss is signed at full length (the hashing is the same work at
any length up to 32 bytes) and kept as such.

A false match (an 8-byte strong sum of a block of NEW that equals an old
block's without the bytes being equal: about 2^-64 per candidate for honest
data, but a sending end's input can be built to hit one, and the basis can
change under a running sync) makes a result that fails its digest. Nothing
is replaced then, as always; with short sums the file is tried once more
with full-length sums (:data:`FULL_STRONG_LEN`, a fresh signature: the
failure also dropped the cached one), and only a second failure fails the
file, with the error of that attempt.

Feature ``xxh3`` works the same way: with it agreed the receiver's block sums
are XXH3-128 (signature strong hash id 2, docs/FORMAT.md; a quarter of
BLAKE3's CPU time), cut to 8 bytes too if ``shortsig`` is agreed, and the one
retry after a failed digest uses full-length BLAKE3 sums. The receiver signs
the results it writes in the kind the next sync will ask for, and its
signature cache serves an entry only to a request of the entry's kind.

On the wire: a ``put`` carries ``strong_len`` (the receiver signs with it)
and ``strong_hash`` ("xxh3" or "blake3", feature ``xxh3``);
a ``put`` whose result failed its digest is answered ``{"ok": false,
"retry": true, "error": ...}`` instead of a FAIL frame, and the client sends
the ``put`` again. A ``get`` needs nothing new (the sender takes any
``strong_len`` the signature's header names): the client signs short and,
on a failed digest, asks again.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

from ..backends import backend
from ..errors import (
    CorruptDeltaError,
    CorruptSignatureError,
    ProtocolError,
    RemoteError,
    VerificationError,
    WrongBasisError,
)
from ..formats import native as fmt
from .messages import peer_text, shown

#: The protocol feature (see messages.FEATURES).
FEATURE = "shortsig"
#: ... and the one for XXH3-128 block sums.
XXH3 = "xxh3"
#: Bytes of BLAKE3 per block on a first attempt.
SHORT_STRONG_LEN = fmt.MIN_STRONG_LEN
#: ... and on the retry after a failed digest (what a peer without the feature uses).
FULL_STRONG_LEN = fmt.DEFAULT_STRONG_LEN

_COUNTS = struct.Struct("<QQ")


def first_strong_len(features: frozenset) -> Optional[int]:
    """The strong sum length of a file's first attempt (None: the default)."""
    return SHORT_STRONG_LEN if FEATURE in features else None


def signing_hash(features: frozenset) -> str:
    """The block sums a receiving end signs in for the next sync (its cache's
    kind): XXH3-128 when the peer has it."""
    return "xxh3" if XXH3 in features else "blake3"


def attempts(features: frozenset) -> Tuple[Tuple[Optional[int], str], ...]:
    """A file's attempts as (strong sum length, block sum kind): a first one
    with short sums and/or XXH3-128 as agreed, then, if that was either,
    one with full-length BLAKE3 sums; the default once without either."""
    first = (first_strong_len(features), signing_hash(features))
    if first == (None, "blake3"):
        return (first,)
    return (first, (None, "blake3"))


def may_retry(strong_len: Optional[int], strong_hash: Optional[str]) -> bool:
    """Whether an attempt with these sums is followed by a full BLAKE3 one."""
    return strong_len is not None or strong_hash == "xxh3"


def retryable(error: Optional[BaseException]) -> bool:
    """Whether a receiving end's failure is a result that did not match its
    digest (what a false block match makes), worth one more attempt."""
    return isinstance(error, (CorruptDeltaError, VerificationError, WrongBasisError))


def retry_reply(text: str) -> Dict[str, Any]:
    """A put's answer when its result failed its digest: send it again."""
    return {"ok": False, "retry": True, "error": text}


def retried(why: Any) -> str:
    """The report's note on a file that needed its second attempt."""
    text = " ".join(peer_text(why, "its result did not match its digest").split())
    return f"tried again with full-length strong sums after: {text[:500]}"


def put_action(reply: Dict[str, Any], peer: str, may_retry: bool) -> Optional[str]:
    """The action of a put's answer, or None: try the file again (full sums).

    Raises:
        RemoteError: a retry answer when none may follow (the first attempt
            was not short: an honest peer never says so).
        ProtocolError: an action that is none of the three.
    """
    if reply.get("retry") is True and reply.get("ok") is False:
        if may_retry:
            return None
        raise RemoteError(peer_text(reply.get("error"), "the result did not match its digest"))
    action = reply.get("action")
    if action not in ("created", "updated", "unchanged"):
        raise ProtocolError(f"{peer} answered a put with action {shown(action)}")
    return str(action)


def _cut(entries: memoryview, n: int, size_in: int, size_out: int) -> bytearray:
    """The first size_out bytes of each of n entries of size_in bytes."""
    out = bytearray(n * size_out)
    for j in range(size_out):  # one strided copy per byte column
        out[j::size_out] = entries[j : n * size_in : size_in]
    return out


def shorten(pieces: Iterable[bytes], strong_len: int) -> Iterator[bytes]:
    """The signature ``pieces`` make, with its strong sums cut to ``strong_len`` bytes.

    Streams: holds at most one piece plus the 52-byte trailer. The input's
    own digest is checked as it goes and the output gets its own trailer;
    a signature whose sums are not longer than ``strong_len`` passes as is.

    Raises:
        CorruptSignatureError: the input is not a whole, intact signature.
    """
    fmt.check_strong_len(strong_len)
    it = iter(pieces)
    buf = bytearray()
    for piece in it:
        buf += piece
        if len(buf) >= fmt.SIG_HEADER.size:
            break
    block_len, have = fmt.parse_sig_header(bytes(buf[: fmt.SIG_HEADER.size]), "to shorten")
    if have <= strong_len:
        yield bytes(buf)
        yield from it
        return
    head_out = fmt.pack_sig_header(block_len, strong_len, fmt.sig_strong_kind(buf))
    h_in = backend.Blake3(bytes(buf[: fmt.SIG_HEADER.size]))
    h_out = backend.Blake3(head_out)
    yield head_out
    del buf[: fmt.SIG_HEADER.size]
    size_in, size_out = 8 + have, 8 + strong_len
    count = 0
    keep = fmt.SIG_TRAILER.size
    while True:
        n = max(0, len(buf) - keep) // size_in
        if n:
            view = memoryview(buf)
            with view:
                h_in.update(view[: n * size_in])
                out = _cut(view, n, size_in, size_out)
            del buf[: n * size_in]
            h_out.update(out)
            count += n
            yield bytes(out)
        piece = next(it, None)
        if piece is None:
            break
        buf += piece
    if len(buf) != fmt.SIG_TRAILER.size:
        raise CorruptSignatureError("signature to shorten is truncated or has a partial entry")
    blocks, size, digest, end = fmt.SIG_TRAILER.unpack(bytes(buf))
    h_in.update(bytes(buf[: _COUNTS.size]))
    if end != fmt.SIG_END_MAGIC or blocks != count or h_in.digest() != digest:
        raise CorruptSignatureError("signature to shorten is corrupted (its digest does not match)")
    tail = _COUNTS.pack(blocks, size)
    h_out.update(tail)
    yield tail + h_out.digest() + fmt.SIG_END_MAGIC
