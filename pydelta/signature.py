"""Making and loading signatures, in pydelta's format or librsync's.

A signature is made in one front-to-back pass over OLD, so OLD may be a
pipe; memory is one read buffer plus the entries of that buffer.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, Callable, Iterator, List, Literal, Optional, Tuple, Union, overload

from ._io import Source, input_size, is_path, open_input, read_all, read_exact, write_all
from ._threads import FileKernel, file_range, hash_blocks, hash_file_blocks, resolve_threads
from .backends import backend, rdiff_kernels
from .errors import CorruptSignatureError, FileAccessError, UsageError, os_reason, raise_for_code
from .formats import RDIFF_SIGNATURE, sniff
from .formats import native as fmt
from .formats import rdiff as rfmt
from .formats.rdiff import RdiffSignatureInfo
from .results import Progress, SignatureInfo

#: Bytes of OLD read per call into C (rounded to whole blocks).
READ_SIZE = 8 << 20


def iter_signature(
    old: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: int = fmt.DEFAULT_STRONG_LEN,
    progress: Progress = None,
    threads: Optional[int] = None,
    strong_hash: Optional[str] = None,
) -> Iterator[bytes]:
    """Yield the signature of ``old`` piece by piece as it is computed.

    Args:
        old: path, ``"-"`` for standard input, or a readable binary file object.
        block_size: block length in bytes; default from the size of ``old``
            (see :func:`pydelta.formats.native.default_block_len`).
        strong_len: bytes of strong sum kept per block (8..16 of XXH3-128,
            8..32 of BLAKE3).
        progress: called with the number of bytes of ``old`` read so far.
        threads: hashing threads (default: all cores); the output is the
            same for any count.
        strong_hash: the per-block strong sum, ``"xxh3"`` (XXH3-128) or
            ``"blake3"``; None: XXH3-128, or BLAKE3 if ``strong_len`` > 16.

    Example:
        >>> with open("old.sig", "wb") as f:  # doctest: +SKIP
        ...     for piece in iter_signature("old.bin"):
        ...         f.write(piece)
    """
    strong = fmt.strong_kind(strong_hash, strong_len)
    fmt.check_strong_len(strong_len, strong)
    if block_size is not None:
        fmt.check_block_len(block_size)
    resolve_threads(threads)
    return _iter_signature(old, block_size, strong_len, strong, progress, threads)


def _iter_signature(
    old: Source,
    block_size: Optional[int],
    strong_len: int,
    strong: int,
    progress: Progress,
    threads: Optional[int],
) -> Iterator[bytes]:
    with open_input(old, "old file") as (fh, name):
        block_len = block_size or fmt.default_block_len(input_size(fh))
        header = fmt.pack_sig_header(block_len, strong_len, strong)
        hasher = backend.Blake3(header)
        yield header
        total = count = 0

        def kernel(view: memoryview, length: int) -> bytes:
            return backend.sig_blocks(view, length, block_len, strong_len, strong)

        file_call: Optional[FileKernel] = None
        if hasattr(backend, "sig_fd"):

            def file_call(buf: bytearray, fd: int, offset: int, length: int) -> Tuple[bytes, int]:
                return backend.sig_fd(buf, fd, offset, length, block_len, strong_len, strong)

        for entries, n in _hash_old(
            fh, name, block_len, resolve_threads(threads), kernel, file_call
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


def _hash_old(
    fh: BinaryIO,
    name: str,
    block_len: int,
    threads: int,
    kernel: Callable[[memoryview, int], bytes],
    file_call: Optional[FileKernel],
    min_blocks: int = 1,
) -> Iterator[Tuple[bytes, int]]:
    """(entries, bytes) per chunk of OLD: a regular file read by the threads in
    small pieces (``file_call``, a C kernel), anything else through the read
    buffer (``kernel``)."""
    where = file_range(fh) if file_call is not None else None
    if where is None or file_call is None:
        return hash_blocks(fh, name, block_len, READ_SIZE, threads, kernel)
    call = file_call

    def file_kernel(buf: bytearray, fd: int, offset: int, length: int) -> Tuple[bytes, int]:
        try:
            return call(buf, fd, offset, length)
        except OSError as e:
            raise FileAccessError(f"cannot read {name}: {os_reason(e)}") from None

    return hash_file_blocks(fh, where, block_len, threads, file_kernel, min_blocks)


def iter_rdiff_signature(
    old: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    weak: str = "rabinkarp",
    strong: str = "blake2",
    progress: Progress = None,
    threads: Optional[int] = None,
    _params: Optional[List[RdiffSignatureInfo]] = None,
) -> Iterator[bytes]:
    """Yield a librsync signature of ``old`` in pieces (header first).

    ``block_size`` None is librsync's default for the size of ``old``;
    ``strong_len`` follows ``rdiff -S``: None/0 the maximum, -1 the
    recommended minimum, else 1..32 (1..16 for MD4). ``threads`` hash in
    parallel (default: all cores); the output is the same for any count.
    """
    rfmt.check_kinds(weak, strong)
    if block_size is not None:
        fmt.check_block_len(block_size)
    nthreads = resolve_threads(threads)
    return _iter_rdiff_signature(
        old, block_size, strong_len, weak, strong, progress, nthreads, _params
    )


def _iter_rdiff_signature(
    old: Source,
    block_size: Optional[int],
    strong_len: Optional[int],
    weak: str,
    strong: str,
    progress: Progress,
    nthreads: int,
    params: Optional[List[RdiffSignatureInfo]],
) -> Iterator[bytes]:
    with open_input(old, "old file") as (fh, name):
        size = input_size(fh)
        block_len = block_size or rfmt.default_block_len(size)
        slen = rfmt.resolve_strong_len(strong_len, size, block_len, strong)
        magic = rfmt.magic_of(weak, strong)
        yield rfmt.pack_sig_header(weak, strong, block_len, slen)
        total = count = 0
        kernels = rdiff_kernels()

        def kernel(view: memoryview, length: int) -> bytes:
            return kernels.sig_blocks(magic, view, length, block_len, slen)

        def file_call(buf: bytearray, fd: int, offset: int, length: int) -> Tuple[bytes, int]:
            return kernels.sig_fd(magic, buf, fd, offset, length, block_len, slen)

        # librsync's strong sums are hashed up to 8 blocks side by side
        for entries, n in _hash_old(fh, name, block_len, nthreads, kernel, file_call, 8):
            total += n
            count += -(-n // block_len)
            if progress is not None:
                progress(total)
            yield entries
        if params is not None:
            params.append(RdiffSignatureInfo(block_len, slen, count, weak, strong, total))


@overload
def signature(
    old: Source,
    out: None = None,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    progress: Progress = None,
    threads: Optional[int] = None,
    format: str = "native",
    rdiff_weak: str = "rabinkarp",
    rdiff_hash: str = "blake2",
    strong_hash: Optional[str] = None,
) -> bytes: ...


@overload
def signature(
    old: Source,
    out: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    progress: Progress = None,
    threads: Optional[int] = None,
    format: Literal["native"] = "native",
    rdiff_weak: str = "rabinkarp",
    rdiff_hash: str = "blake2",
    strong_hash: Optional[str] = None,
) -> SignatureInfo: ...


@overload
def signature(
    old: Source,
    out: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    progress: Progress = None,
    threads: Optional[int] = None,
    format: Literal["rdiff"],
    rdiff_weak: str = "rabinkarp",
    rdiff_hash: str = "blake2",
    strong_hash: Optional[str] = None,
) -> RdiffSignatureInfo: ...


@overload
def signature(
    old: Source,
    out: Source,
    *,
    block_size: Optional[int] = None,
    strong_len: Optional[int] = None,
    progress: Progress = None,
    threads: Optional[int] = None,
    format: str,
    rdiff_weak: str = "rabinkarp",
    rdiff_hash: str = "blake2",
    strong_hash: Optional[str] = None,
) -> Union[SignatureInfo, RdiffSignatureInfo]: ...


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
    strong_hash: Optional[str] = None,
) -> Union[bytes, SignatureInfo, RdiffSignatureInfo]:
    """Compute the signature of ``old``.

    Args:
        old: path, ``"-"`` (standard input) or a readable binary file object.
        out: where to write it: a path (written atomically), ``"-"``
            (standard output) or a writable binary file object. If omitted,
            the signature is returned as bytes.
        block_size: block length; by default chosen from the size of ``old``.
        strong_len: bytes of strong sum per block (default 16; 8..16 of
            XXH3-128, 8..32 of BLAKE3).
        progress: called with the number of bytes of ``old`` read so far.
        threads: hashing threads (default: all cores); same output for any count.
        format: ``"native"`` (pydelta's own) or ``"rdiff"``: a librsync
            signature, byte for byte what ``rdiff signature`` writes; then
            ``strong_len`` follows ``rdiff -S`` (default/0: 32, or 16 for MD4;
            -1: librsync's minimum) and the block length defaults to librsync's.
        rdiff_weak: rolling sum of an rdiff signature, ``"rabinkarp"`` or ``"rollsum"``.
        rdiff_hash: strong hash of an rdiff signature, ``"blake2"`` or ``"md4"``.
        strong_hash: per-block strong sum of a native signature: ``"xxh3"``
            (XXH3-128) or ``"blake3"``; None: XXH3-128, or BLAKE3 if
            ``strong_len`` > 16. The deltas it leads to are verified by the
            whole-file BLAKE3 either way.

    Returns:
        The signature bytes if ``out`` is None, else a
        :class:`~pydelta.SignatureInfo` (for ``format="rdiff"``, a
        :class:`~pydelta.formats.rdiff.RdiffSignatureInfo`) describing what
        was written.

    Example:
        >>> import pydelta
        >>> info = pydelta.signature("old.bin", "old.sig")  # doctest: +SKIP
        >>> info.block_len  # doctest: +SKIP
        32768
    """
    if format == "rdiff":
        params: List[RdiffSignatureInfo] = []
        pieces = iter_rdiff_signature(
            old,
            block_size=block_size,
            strong_len=strong_len,
            weak=rdiff_weak,
            strong=rdiff_hash,
            progress=progress,
            threads=threads,
            _params=params,
        )
        if out is None:
            return b"".join(pieces)
        write_all(out, "signature", pieces)
        return params[0]
    if format != "native":
        raise UsageError(f"unknown signature format {format!r}: use 'native' or 'rdiff'")
    if strong_len is None:
        strong_len = fmt.DEFAULT_STRONG_LEN
    pieces = iter_signature(
        old,
        block_size=block_size,
        strong_len=strong_len,
        progress=progress,
        threads=threads,
        strong_hash=strong_hash,
    )
    if out is None:
        return b"".join(pieces)
    seen: List[bytes] = []  # the first and the last piece

    def kept() -> Iterator[bytes]:
        for piece in pieces:
            if not seen:
                seen.append(piece)
            yield piece
        seen.append(piece)

    write_all(out, "signature", kept())
    block_len, strong = fmt.parse_sig_header(seen[0], "signature")
    count, size, digest, _ = fmt.SIG_TRAILER.unpack(seen[-1][-fmt.SIG_TRAILER.size :])
    kind = fmt.STRONG_NAMES[fmt.sig_strong_kind(seen[0])]
    return SignatureInfo(block_len, strong, count, size, digest, kind)


# -- reading a native signature off a stream ------------------------------------

#: Bytes of a native signature besides its entries: header + trailer.
_SIG_FRAME = fmt.SIG_HEADER.size + fmt.SIG_TRAILER.size


def _sig_ends_at(data: bytearray, end: int, entry_len: int) -> bool:
    """True if a native signature with entry_len-byte entries can end at
    offset ``end`` of data: a whole number n of entries, then a trailer that
    counts n and closes with the end marker. (The digest, checked when the
    signature is loaded, catches the vanishingly rare false end.)"""
    body = end - _SIG_FRAME
    if body < 0 or body % entry_len or data[end - 4 : end] != fmt.SIG_END_MAGIC:
        return False
    (count,) = struct.unpack_from("<Q", data, end - fmt.SIG_TRAILER.size)
    return count == body // entry_len


def _next_possible_end(have: int, entry_len: int) -> int:
    """The smallest length > have at which the signature could end."""
    n = max(0, -(-(have + 1 - _SIG_FRAME) // entry_len))
    return _SIG_FRAME + n * entry_len


def read_sig_stream(fh: BinaryIO, name: str, head: bytes = b"") -> bytes:
    """Read one native signature from fh, and not a byte past its end.

    The trailer closes the signature, so there is no need to wait for the
    end of the input: a script can read a signature off a live channel and
    then answer on it. A buffered stream (``peek``: files, pipes, sockets'
    ``makefile("rb")``) is read a buffer at a time; any other is read in
    steps that can never pass the trailer (slower, same result). At the end
    of the input the bytes so far are returned and the caller's parser says
    what is wrong with them. ``head``: the first bytes, if already read.
    """
    buf = bytearray(head)
    buf += read_exact(fh, fmt.SIG_HEADER.size - len(buf), name)
    if len(buf) < fmt.SIG_HEADER.size:
        return bytes(buf)
    _, strong_len = fmt.parse_sig_header(bytes(buf), name)
    entry_len = 8 + strong_len
    peek = getattr(fh, "peek", None)
    while True:
        have = len(buf)
        if peek is not None:
            try:
                ahead = peek(1 << 20)
            except (OSError, ValueError, io.UnsupportedOperation):
                peek = None
                continue
            if not ahead:
                return bytes(buf)
            buf += ahead
            end = None
            at = buf.find(fmt.SIG_END_MAGIC, max(have - 3, 0))
            while at >= 0:
                if _sig_ends_at(buf, at + 4, entry_len):
                    end = at + 4
                    break
                at = buf.find(fmt.SIG_END_MAGIC, at + 1)
            take = len(buf) - have if end is None else end - have
            got = read_exact(fh, take, name)  # the peeked bytes: consume them
            del buf[have + len(got) :]
            if end is not None and len(got) == take:
                return bytes(buf)
            if len(got) < take:
                return bytes(buf)
        else:
            target = _next_possible_end(have, entry_len)
            got = read_exact(fh, target - have, name)
            buf += got
            if len(buf) < target:
                return bytes(buf)
            if _sig_ends_at(buf, target, entry_len):
                return bytes(buf)


def _read_native(fh: BinaryIO, src: object, name: str, head: bytes = b"") -> bytes:
    """A native signature from an open source: up to its trailer from a file
    object (see :func:`read_sig_stream`); a path or ``"-"`` must hold the
    signature and nothing after it."""
    data = read_sig_stream(fh, name, head)
    if is_path(src) and read_exact(fh, 1, name):
        raise CorruptSignatureError(f"signature {name} is corrupted (data after its end marker)")
    return data


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
            body,
            info.block_count,
            info.block_len,
            info.strong_len,
            info.basis_size,
            fmt.STRONG_IDS[info.strong_hash],
        )
        if table.error:
            raise_for_code(
                table.error,
                corrupt=lambda: CorruptSignatureError(
                    f"signature {name} is corrupted (inconsistent entries)"
                ),
                nomem=f"not enough memory for the table of signature {name}",
            )
        self.info = info
        self.name = name
        self.table = table

    @classmethod
    def load(cls, src: Source) -> "Signature":
        """Read a signature from a path, ``"-"`` or a binary file object.

        A signature ends with its trailer, so from a file object this reads
        up to there and no further, without waiting for the end of the
        input: a script can read the signature off a live channel (a
        socket's ``makefile("rb")``, a subprocess pipe) and answer on the
        same channel. A path or ``"-"`` must hold the signature alone.
        """
        with open_input(src, "signature") as (fh, name):
            data = _read_native(fh, src, name)
        return cls(data, name)


class RdiffSignature:
    """A loaded librsync signature and its lookup table."""

    def __init__(self, data: bytes, name: str = "signature") -> None:
        weak, strong, block_len, strong_len = rfmt.parse_sig_header(data, name)
        entry = 4 + strong_len
        body = memoryview(data)[rfmt.SIG_HEADER.size :]
        if len(body) % entry:
            raise CorruptSignatureError(
                f"rdiff signature {name} is truncated or corrupted ({len(body)} bytes of block "
                f"entries, not a whole number of {entry}-byte entries)"
            )
        count = len(body) // entry
        self.info = RdiffSignatureInfo(block_len, strong_len, count, weak, strong)
        self.name = name
        self.table = rdiff_kernels().SigTable(self.info.magic, body, count, block_len, strong_len)
        if self.table.error:
            raise_for_code(
                self.table.error,
                corrupt=lambda: CorruptSignatureError(f"rdiff signature {name} is corrupted"),
                nomem=f"not enough memory for the table of signature {name}",
            )


AnySignature = Union[Signature, RdiffSignature]


def _from_bytes(data: bytes, name: str) -> AnySignature:
    if sniff(data) == RDIFF_SIGNATURE:
        return RdiffSignature(data, name)
    fmt.parse_sig_header(data[: fmt.SIG_HEADER.size], name)
    return Signature(data, name)


def load_any_signature(sig: Union[Source, AnySignature, bytes]) -> AnySignature:
    """A native :class:`Signature` or an :class:`RdiffSignature`, whichever
    ``sig`` (path, ``"-"``, file object, bytes, or one already loaded) is."""
    if isinstance(sig, (Signature, RdiffSignature)):
        return sig
    if isinstance(sig, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(sig), "signature")
    with open_input(sig, "signature") as (fh, name):
        head = read_exact(fh, fmt.SIG_HEADER.size, name)
        if sniff(head) == RDIFF_SIGNATURE:  # not self-delimiting: up to the end
            data = head + read_all(fh, name)
        else:
            data = _read_native(fh, sig, name, head)
    return _from_bytes(data, name)


def load_signature(sig: Union[Source, Signature, bytes]) -> Signature:
    """A :class:`Signature` from a path, file object, bytes, or one already loaded."""
    if isinstance(sig, Signature):
        return sig
    if isinstance(sig, (bytes, bytearray, memoryview)):
        data = bytes(sig)
        fmt.parse_sig_header(data[: fmt.SIG_HEADER.size], "signature")
        return Signature(data, "signature")
    return Signature.load(sig)
