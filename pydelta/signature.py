"""Making and loading signatures.

A signature is made in one front-to-back pass over OLD, so OLD may be a
pipe; memory is one read buffer plus the entries of that buffer.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterator, Optional, Union

from . import format as fmt
from ._backend import backend
from ._io import Source, input_size, open_input, open_output, read_all, read_exact
from ._threads import hash_blocks, resolve_threads
from .errors import CorruptSignatureError

#: Bytes of OLD read per call into C (rounded to whole blocks).
READ_SIZE = 8 << 20

Progress = Optional[Callable[[int], None]]


def iter_signature(
    old: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: int = fmt.DEFAULT_STRONG_LEN,
    progress: Progress = None,
    threads: Optional[int] = None,
) -> Iterator[bytes]:
    """Yield the signature of ``old`` piece by piece as it is computed.

    Args:
        old: path, ``"-"`` for standard input, or a readable binary file object.
        block_size: block length in bytes; default from the size of ``old``
            (see :func:`pydelta.format.default_block_len`).
        strong_len: bytes of BLAKE3 kept per block (8..32).
        progress: called with the number of bytes of ``old`` read so far.
        threads: hashing threads (default: all cores); the output is the
            same for any count.

    Example:
        >>> with open("old.sig", "wb") as f:  # doctest: +SKIP
        ...     for piece in iter_signature("old.bin"):
        ...         f.write(piece)
    """
    fmt.check_strong_len(strong_len)
    if block_size is not None:
        fmt.check_block_len(block_size)
    resolve_threads(threads)
    return _iter_signature(old, block_size, strong_len, progress, threads)


def _iter_signature(
    old: Source,
    block_size: Optional[int],
    strong_len: int,
    progress: Progress,
    threads: Optional[int],
) -> Iterator[bytes]:
    with open_input(old, "old file") as (fh, name):
        block_len = block_size or fmt.default_block_len(input_size(fh))
        header = fmt.pack_sig_header(block_len, strong_len)
        hasher = backend.Blake3(header)
        yield header
        total = count = 0

        def kernel(view: memoryview, length: int) -> bytes:
            return backend.sig_blocks(view, length, block_len, strong_len)

        for entries, n in hash_blocks(
            fh, name, block_len, READ_SIZE, resolve_threads(threads), kernel
        ):
            hasher.update(entries)
            total += n
            count += -(-n // block_len)
            if progress is not None:
                progress(total)
            yield entries
        tail = struct.pack("<QQ", count, total)
        hasher.update(tail)
        yield tail + hasher.digest() + fmt.SIG_END_MAGIC


def signature(
    old: Source,
    out: Union[Source, None] = None,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    progress: Progress = None,
    threads: Optional[int] = None,
    format: str = "native",
    rdiff_weak: str = "rabinkarp",
    rdiff_hash: str = "blake2",
) -> Union[bytes, "fmt.SignatureInfo"]:
    """Compute the signature of ``old``.

    Args:
        old: path, ``"-"`` (standard input) or a readable binary file object.
        out: where to write it: a path (written atomically), ``"-"``
            (standard output) or a writable binary file object. If omitted,
            the signature is returned as bytes.
        block_size: block length; by default chosen from the size of ``old``.
        strong_len: bytes of BLAKE3 per block (8..32, default 16).
        progress: called with the number of bytes of ``old`` read so far.
        threads: hashing threads (default: all cores); same output for any count.
        format: ``"native"`` (pydelta's own) or ``"rdiff"``: a librsync
            signature, byte for byte what ``rdiff signature`` writes; then
            ``strong_len`` follows ``rdiff -S`` (default/0: 32, or 16 for MD4;
            -1: librsync's minimum) and the block length defaults to librsync's.
        rdiff_weak: rolling sum of an rdiff signature, ``"rabinkarp"`` or ``"rollsum"``.
        rdiff_hash: strong hash of an rdiff signature, ``"blake2"`` or ``"md4"``.

    Returns:
        The signature bytes if ``out`` is None, else a
        :class:`~pydelta.format.SignatureInfo` describing what was written.

    Example:
        >>> import pydelta
        >>> info = pydelta.signature("old.bin", "old.sig")  # doctest: +SKIP
        >>> info.block_len  # doctest: +SKIP
        32768
    """
    if format != "native":
        from .rdiff import format_signature

        return format_signature(
            format, old, out, block_size=block_size, strong_len=strong_len, progress=progress,
            threads=threads, weak=rdiff_weak, strong=rdiff_hash,
        )
    if strong_len is None:
        strong_len = fmt.DEFAULT_STRONG_LEN
    pieces = iter_signature(
        old, block_size=block_size, strong_len=strong_len, progress=progress, threads=threads
    )
    if out is None:
        return b"".join(pieces)
    sink = open_output(out, "signature")
    try:
        first = last = b""
        for piece in pieces:
            sink.write(piece)
            first = first or piece
            last = piece
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    block_len, strong = fmt.parse_sig_header(first, "signature")
    count, size, digest, _ = fmt.SIG_TRAILER.unpack(last[-fmt.SIG_TRAILER.size :])
    return fmt.SignatureInfo(block_len, strong, count, size, digest)


class Signature:
    """A loaded signature: what it says about the basis, and its lookup table.

    Load once and reuse it for several deltas against the same basis.

    Example:
        >>> sig = Signature.load("old.sig")  # doctest: +SKIP
        >>> sig.info.basis_size  # doctest: +SKIP
        1073741824
    """

    def __init__(self, data: bytes, name: str = "signature") -> None:
        info, body = fmt.parse_sig_trailer(data, name)
        digest = backend.blake3_digest(memoryview(data)[: len(data) - 36])
        if digest != info.digest:
            raise CorruptSignatureError(
                f"signature {name} is corrupted (checksum mismatch); make it again"
            )
        table = backend.SigTable(
            body, info.block_count, info.block_len, info.strong_len, info.basis_size
        )
        if table.error:
            if table.error == backend.ERR_NOMEM:
                raise MemoryError(f"not enough memory for the table of signature {name}")
            raise CorruptSignatureError(f"signature {name} is corrupted (inconsistent entries)")
        self.info = info
        self.name = name
        self.table = table

    @classmethod
    def load(cls, src: Source) -> "Signature":
        """Read a signature from a path, ``"-"`` or a binary file object."""
        with open_input(src, "signature") as (fh, name):
            head = read_exact(fh, fmt.SIG_HEADER.size, name)
            fmt.parse_sig_header(head, name)
            rest = read_all(fh, name)
        return cls(head + rest, name)


def load_signature(sig: Union[Source, Signature, bytes]) -> Signature:
    """A :class:`Signature` from a path, file object, bytes, or one already loaded."""
    if isinstance(sig, Signature):
        return sig
    if isinstance(sig, (bytes, bytearray, memoryview)):
        data = bytes(sig)
        fmt.parse_sig_header(data[: fmt.SIG_HEADER.size], "signature")
        return Signature(data, "signature")
    return Signature.load(sig)

