"""Applying deltas: OLD + delta -> NEW, verified before it appears.

OLD is read at random offsets (it must be a regular file); the delta is
streamed. Output to a path goes to a temporary file beside it that replaces
the target only after the result's size and BLAKE3 digest match the
delta's trailer, so OUT may be OLD itself.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
import warnings
from typing import BinaryIO, Optional, Tuple, Union

from ._io import AtomicFile, Source, StreamSink, is_path, open_input, open_output, readinto
from ._threads import resolve_threads
from .backends import backend, rdiff_kernels
from .errors import (
    DONE,
    NEED_INPUT,
    CorruptDeltaError,
    FileAccessError,
    UnverifiedWarning,
    VerificationError,
    WrongBasisError,
    os_reason,
    raise_for_code,
)
from .formats import RDIFF_DELTA, sniff
from .formats import native as fmt
from .formats import rdiff as rfmt
from .formats.literals import Inflater
from .results import PatchResult, Progress
from .signature import iter_signature

#: Bytes of delta read per step, and size of the output buffer.
READ_SIZE = 4 << 20
OUT_SIZE = 1 << 20
#: Result bytes per step when the job writes the output file itself.
DIRECT_OUT_SIZE = 8 << 20

#: Environment switches: PYDELTA_PATCH_DIRECT=0 writes the result through
#: Python as for a stream; PYDELTA_COPY_RANGE=0 keeps the direct output but
#: copies with read/write instead of copy_file_range (both for tests, or a
#: kernel whose copy_file_range misbehaves).
DIRECT_ENV = "PYDELTA_PATCH_DIRECT"
COPY_RANGE_ENV = "PYDELTA_COPY_RANGE"

#: Whether the result's signature (``Patcher(sign=...)``) is read back on a
#: thread of its own (True) or on the digest's reader (False). Signing costs
#: about twice the digest's CPU (the weak sum and BLAKE3 of every block); on
#: 2 cores the third reader (its own mapping of every range) came out slower:
#: bench/results/patch_sign_bench.md.
SIGN_THREAD = False
#: Threads hashing the result's digest where the job writes the file itself
#: (tree-parallel, the same digest; None: all cores).
HASH_THREADS: Optional[int] = None

#: The wrong-basis diagnosis (after a result failed its digest) recomputes
#: OLD's signature with the delta's block length, one read of OLD at a time.
#: It runs only for blocks of at least DIAGNOSE_MIN_BLOCK bytes (a read's
#: signature then stays under 6 MiB) and at most DIAGNOSE_MAX_BLOCKS blocks
#: (a few seconds); otherwise the error names both possible causes.
DIAGNOSE_MIN_BLOCK = 32
DIAGNOSE_MAX_BLOCKS = 1 << 24

#: What :class:`Patcher` keeps as the header of a librsync delta (which has none).
RDIFF_DELTA_HEADER = fmt.DeltaHeader(block_len=0, strong_len=0, basis_size=-1, sig_digest=b"")


def _is_devnull(st: os.stat_result) -> bool:
    """True if st is the null device, which patch takes as an empty old file."""
    if not stat.S_ISCHR(st.st_mode):
        return False
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return st.st_rdev == null.st_rdev


class Patcher:
    """Apply a delta fed in pieces as they arrive (push style).

    Args:
        old: the basis: a path or a binary file object of a regular file.
        out: the result: a path (written atomically after verification, may
            be ``old`` itself), ``"-"`` for standard output, or a writable
            binary file object (which receives data as it is produced).
        progress: called with the number of result bytes produced so far.
        fsync: make the result durable (fsync) before it replaces the
            target, so a crash cannot leave a partial file (default True).
        mode: permission bits for a result written to a path (default: those
            of the file it replaces, or as a new file gets by the umask).
        mtime_ns: modification time in nanoseconds for a result written to
            a path (default: the time it is written).
        max_size: the most result bytes to accept (e.g. the size the sender
            announced); a delta that makes more is refused as soon as it
            does, before the output grows any further.
        native_only: refuse rdiff (librsync) deltas, which carry no digest
            to verify the result against.
        old_name: how messages name the old file (default: its path, or
            the ``name`` of the file object).
        sig_digest: the digest of the signature the delta must have been
            made from (e.g. the one this end sent): a delta for another
            signature is refused up front, and a result that fails its
            digest is then the delta's fault, with no diagnosis of OLD.
        sign: ``(block_len, strong_len, limit)``, or with a fourth item,
            the strong hash id (default 1, BLAKE3; 2: XXH3-128): also make
            the result's signature, byte for byte what
            :func:`~pydelta.signature` makes of it with these parameters, from the same read-back as its
            digest (no second read of the file); :attr:`signature` holds it
            after :meth:`close`. Only where the job writes the result file
            itself (C backend, output to a path, not PYDELTA_PATCH_DIRECT=0)
            and while it stays within ``limit`` bytes; otherwise None.

    Example:
        >>> with Patcher("model.bin", "model.bin") as p:  # doctest: +SKIP
        ...     for chunk in chunks_from_network():
        ...         p.write(chunk)
        >>> p.result.size  # doctest: +SKIP
        7516192768
    """

    def __init__(
        self,
        old: Union[str, "os.PathLike[str]", BinaryIO],
        out: Union[str, "os.PathLike[str]", BinaryIO],
        *,
        progress: Progress = None,
        delta_name: str = "delta",
        fsync: bool = True,
        mode: Optional[int] = None,
        mtime_ns: Optional[int] = None,
        max_size: Optional[int] = None,
        native_only: bool = False,
        old_name: Optional[str] = None,
        sig_digest: Optional[bytes] = None,
        sign: Optional[Tuple[int, ...]] = None,
    ) -> None:
        if is_path(old) and os.fsdecode(old) == "-":  # type: ignore[arg-type]
            old = sys.stdin.buffer
        self._own_old = is_path(old)
        if old_name is None:
            given = os.fsdecode(old) if is_path(old) else getattr(old, "name", None)  # type: ignore[arg-type]
            # os.fdopen() names a file by its descriptor number: no name for messages
            old_name = given if isinstance(given, str) else "(the basis)"
        self._old_name = old_name
        self._max_size = max_size
        self._native_only = native_only
        self._sig_digest = sig_digest
        self._sign = sign
        #: the result's signature once closed (see ``sign``), else None
        self.signature: Optional[bytes] = None
        if self._own_old:
            try:
                self._old: BinaryIO = open(old, "rb")  # type: ignore[arg-type, assignment]
            except OSError as e:
                raise FileAccessError(
                    f"cannot open old file {self._old_name}: {os_reason(e)}"
                ) from None
        else:
            self._old = old  # type: ignore[assignment]
        try:
            try:
                st = os.fstat(self._old.fileno())
            except (AttributeError, OSError, ValueError):
                raise FileAccessError(
                    f"old file {self._old_name} must be a regular file with a descriptor "
                    "(patch reads it at random offsets)"
                ) from None
            if not stat.S_ISREG(st.st_mode) and not _is_devnull(st):
                raise FileAccessError(
                    f"old file {self._old_name} is not a regular file "
                    "(patch reads it at random offsets; save it to a file first)"
                )
            # /dev/null is the empty basis (as for rdiff): a delta of literals only
            self._old_size = st.st_size if stat.S_ISREG(st.st_mode) else 0
            self._sink: Union[AtomicFile, StreamSink] = open_output(out, "output", fsync)
            if isinstance(self._sink, AtomicFile):  # (one made by the caller may have them set)
                if mode is not None:
                    self._sink.mode = mode
                if mtime_ns is not None:
                    self._sink.mtime_ns = mtime_ns
        except BaseException:
            self._close_old()
            raise
        self._delta_name = delta_name
        self._progress = progress
        self._rdiff = False  # an rdiff (librsync) delta, sniffed from its magic
        self._head_len = fmt.DELTA_HEADER.size
        self._head = b""
        self._header: Optional[fmt.DeltaHeader] = None
        self._job = None
        self._pend = b""
        self._fed = 0  # delta bytes consumed by the job, for messages
        self._inflater = None  # turns 'Z' ops into 'L' ops for the job (flagged deltas)
        self._produced = 0
        self._done = False
        self._closed = False
        self._fsync = fsync
        # direct output: the C job writes the temporary file itself (COPY by
        # copy_file_range, the digest hashed beside the writing)
        self._direct = None
        self._outbuf = bytearray(DIRECT_OUT_SIZE if self._can_direct() else OUT_SIZE)
        self._outview = memoryview(self._outbuf)
        self._result: Optional[PatchResult] = None

    def _can_direct(self) -> bool:
        return (
            isinstance(self._sink, AtomicFile)
            and os.environ.get(DIRECT_ENV, "1") != "0"
            and backend.NAME == "c"  # the numba twin writes through Python
        )

    def _attach(self, job) -> None:  # type: ignore[no-untyped-def]
        """Make the job write the result file itself where it can."""
        if not self._can_direct():
            return
        fd = self._sink.fh.fileno()  # type: ignore[union-attr]
        # from the file's position on (a caller may have written before us)
        self._direct_at = os.lseek(fd, 0, os.SEEK_CUR)
        self._direct = backend.Sink(
            fd,
            self._direct_at,
            copy_range=os.environ.get(COPY_RANGE_ENV, "1") != "0",
            writeback=self._fsync,
            hash_threads=resolve_threads(HASH_THREADS),  # the digest is on the critical path
        )
        if self._sign is not None:
            block_len, strong_len, limit, strong = self._sign_params()
            room = limit - fmt.SIG_HEADER.size - fmt.SIG_TRAILER.size
            if room > 0:
                self._direct.sign(
                    block_len, strong_len, room, own_thread=SIGN_THREAD, strong=strong
                )
        job.attach(self._direct)

    # -- feeding -------------------------------------------------------
    def write(self, data: Union[bytes, bytearray, memoryview]) -> int:
        """Feed the next bytes of the delta; returns len(data)."""
        if self._closed:
            raise ValueError("write to a closed Patcher")
        try:
            self._feed(memoryview(data).cast("B"))
        except BaseException:
            self.abort()
            raise
        return len(data)

    def _feed(self, data: memoryview) -> None:
        if not data:
            return
        if self._header is None and len(self._head) < 4:
            take = 4 - len(self._head)
            self._head += bytes(data[:take])
            data = data[take:]
            if len(self._head) == 4 and sniff(self._head) == RDIFF_DELTA:
                if self._native_only:
                    raise CorruptDeltaError(
                        f"delta {self._delta_name} is an rdiff (librsync) delta, which carries no "
                        "digest: only pydelta deltas, whose result is verified, are accepted here"
                    )
                self._rdiff = True
                self._head_len = 4
                self._header = RDIFF_DELTA_HEADER
                self._job = rdiff_kernels().PatchJob(self._old.fileno(), self._old_size)
                self._attach(self._job)
            if not data:
                return
        if self._header is None:
            need = fmt.DELTA_HEADER.size - len(self._head)
            self._head += bytes(data[:need])
            data = data[need:]
            if len(self._head) >= 4 and not self._head.startswith(fmt.DELTA_MAGIC):
                fmt.parse_delta_header(self._head, self._delta_name)
            if len(self._head) < fmt.DELTA_HEADER.size:
                return
            self._start(fmt.parse_delta_header(self._head, self._delta_name))
            if not data:
                return
        if self._inflater is not None:
            for piece in self._inflater.feed(data):
                self._step(piece)
            return
        self._step(data)

    def _step(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Run the patch job over the next delta bytes (plain 'C'/'L'/'E' ops)."""
        if self._done:
            raise CorruptDeltaError(
                f"delta {self._delta_name} is corrupted: data follows its end marker"
            )
        buf = self._pend + bytes(data) if self._pend else data
        off, left = 0, len(buf)
        out = self._outbuf
        while True:
            if self._direct is not None and self._max_size is not None:
                # the job writes the file itself: never past one byte too many
                out = self._outview[
                    : max(1, min(len(self._outbuf), self._max_size - self._produced + 1))
                ]
            rc, used, produced = self._job.step(buf, off, left, out)
            off += used
            left -= used
            self._fed += used
            if produced:
                if self._max_size is not None and self._produced + produced > self._max_size:
                    raise CorruptDeltaError(
                        f"delta {self._delta_name} makes more than the {self._max_size} bytes "
                        "announced for its result: refused"
                    )
                if self._direct is None:
                    self._sink.write(self._outview[:produced])
                self._produced += produced
                if self._progress is not None:
                    self._progress(self._produced)
            if rc < 0:
                self._raise_step_error(rc)
            if rc == DONE:
                self._done = True
                if left:
                    raise CorruptDeltaError(
                        f"delta {self._delta_name} is corrupted: data follows its end marker"
                    )
                self._pend = b""
                return
            if rc == NEED_INPUT:
                self._pend = bytes(buf[off:])
                return

    def _start(self, header: fmt.DeltaHeader) -> None:
        if self._sig_digest is not None and (
            header.sig_digest != self._sig_digest or header.basis_size != self._old_size
        ):
            raise CorruptDeltaError(
                f"delta {self._delta_name} was not made from the signature sent for "
                f"{self._old_name}: refused"
            )
        if header.basis_size != self._old_size:
            raise WrongBasisError(
                f"old file {self._old_name} has {self._old_size} bytes but delta "
                f"{self._delta_name} was made against a {header.basis_size}-byte file: "
                "patch the file the signature was made from"
            )
        self._header = header
        self._job = backend.PatchJob(self._old.fileno(), self._old_size)
        self._attach(self._job)
        if header.flags & fmt.FLAG_ZLITERALS:
            self._inflater = Inflater(self._delta_name, fmt.DELTA_HEADER.size)

    def _delta_fed(self) -> int:
        """Bytes of the delta after its header received so far."""
        if self._inflater is not None:
            return self._inflater.consumed
        return self._fed + len(self._pend)

    def _raise_step_error(self, rc: int) -> None:
        fed = self._fed if self._inflater is None else self._inflater.delta_offset(self._fed)
        at = self._head_len + fed

        def bounds() -> CorruptDeltaError:
            return CorruptDeltaError(
                f"delta {self._delta_name} is corrupted: a copy at byte {at} reaches outside "
                f"the {self._old_size}-byte old file"
            )

        def io() -> FileAccessError:
            if self._direct is not None and self._direct.write_failed:
                return FileAccessError(
                    f"cannot write {self._sink.name}: {os.strerror(self._direct.errno)}"
                )
            err = self._job.errno
            why = os.strerror(err) if err else "it is shorter than it was (changed during patch?)"
            return FileAccessError(f"cannot read old file {self._old_name}: {why}")

        raise_for_code(
            rc,
            corrupt=lambda: CorruptDeltaError(
                f"delta {self._delta_name} is corrupted: invalid instruction at byte {at}"
            ),
            bounds=bounds,
            io=io,
        )

    # -- finishing -----------------------------------------------------
    def close(self) -> PatchResult:
        """End of the delta: verify the result and publish it.

        Raises:
            CorruptDeltaError: the delta is truncated or damaged.
            WrongBasisError: the old file is not the signature's basis.
            VerificationError: the result does not match its digest.
        """
        if self._closed:
            if self._result is None:
                raise ValueError("Patcher was aborted")
            return self._result
        try:
            self._result = self._verify()
            self._sink.commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._close_old()
        return self._result

    @property
    def result(self) -> PatchResult:
        """The verified result (size, digest), once :meth:`close` (or the end
        of the ``with`` block) succeeded.

        Raises:
            ValueError: the patch is not finished, or was aborted.
        """
        if self._result is None:
            raise ValueError(
                "Patcher has no result: it was aborted or not closed yet "
                "(call close() or leave the with block)"
            )
        return self._result

    @property
    def done(self) -> bool:
        """True once the result is verified and in place."""
        return self._result is not None

    def _verify(self) -> PatchResult:
        if self._header is None:
            if not self._head:
                raise CorruptDeltaError(f"delta {self._delta_name} is empty")
            if not fmt.DELTA_MAGIC.startswith(self._head[:4]) and not rfmt.DELTA_MAGIC.startswith(
                self._head[:4]
            ):
                fmt.parse_delta_header(self._head, self._delta_name)
            raise CorruptDeltaError(f"delta {self._delta_name} is truncated (header incomplete)")
        if not self._done:
            raise CorruptDeltaError(
                f"delta {self._delta_name} is truncated (ends after {self._head_len + self._delta_fed()} bytes, "
                "before its end marker)"
            )
        if self._rdiff:
            # nothing to check against: say so (the CLI prints it as a warning)
            st = self._job.stats()
            digest = st["digest"] if self._direct is None else self._finish_direct()[1]
            warnings.warn(
                rfmt.unverified_message(self._delta_name), UnverifiedWarning, stacklevel=4
            )
            return PatchResult(st["result_size"], digest, verified=False)
        want_size, want_digest, got_size, got_digest = self._job.result()
        if self._direct is not None:
            got_size, got_digest = self._finish_direct()
        if want_size == got_size and want_digest == got_digest:
            self._take_signature(got_size)
            return PatchResult(got_size, got_digest)
        corrupt = (
            f"delta {self._delta_name} is corrupted: the result does not match the digest "
            f"it carries ({got_size} bytes made, {want_size} expected)"
        )
        if self._sig_digest is not None:  # made from the basis we signed: the delta is at fault
            if self._basis_changed():
                raise FileAccessError(f"old file {self._old_name} changed during the patch")
            raise CorruptDeltaError(corrupt)
        matches = self._basis_matches()
        if matches is None:
            raise VerificationError(
                f"the result does not match the digest delta {self._delta_name} carries: "
                f"old file {self._old_name} is not the file the signature was made from, "
                f"or the delta is corrupted (for its {self._header.block_len}-byte blocks "
                "pydelta does not recompute the signature to tell which)"
            )
        if matches:
            raise CorruptDeltaError(corrupt)
        raise WrongBasisError(
            f"old file {self._old_name} is not the file the signature was made from "
            "(its content differs): make a new signature of it and a new delta"
        )

    def _finish_direct(self) -> tuple:
        """(size, digest) of the result the job wrote, once the hasher is done."""
        assert self._direct is not None
        ok, size, digest = self._direct.finish()
        if not ok:
            err = self._direct.errno
            why = os.strerror(err) if err else "it came up short (changed by another process?)"
            verb = "write" if self._direct.write_failed else "read back"
            raise FileAccessError(f"cannot {verb} {self._sink.name}: {why}")
        # leave the file position after the result, as writing through it would
        os.lseek(self._sink.fh.fileno(), self._direct_at + size, os.SEEK_SET)  # type: ignore[union-attr]
        return size, digest

    def _sign_params(self) -> Tuple[int, int, int, int]:
        """``sign`` as (block_len, strong_len, limit, strong hash id)."""
        assert self._sign is not None
        block_len, strong_len, limit, *kind = self._sign
        return block_len, strong_len, limit, kind[0] if kind else fmt.STRONG_BLAKE3

    def _take_signature(self, size: int) -> None:
        """The result's signature file from the entries the direct writer made."""
        if self._sign is None or self._direct is None:
            return
        entries = self._direct.signature()
        if entries is None:
            return
        block_len, strong_len, limit, strong = self._sign_params()
        header = fmt.pack_sig_header(block_len, strong_len, strong)
        tail = struct.pack("<QQ", len(entries) // (8 + strong_len), size)
        hasher = backend.Blake3(header)
        hasher.update(entries)
        hasher.update(tail)
        sig = header + entries + tail + hasher.digest() + fmt.SIG_END_MAGIC
        if len(sig) <= limit:
            self.signature = sig

    def _basis_changed(self) -> bool:
        try:
            return os.fstat(self._old.fileno()).st_size != self._old_size
        except OSError:
            return True

    def _basis_matches(self) -> Optional[bool]:
        """Recompute the signature digest of OLD (only on the failure path);
        None outside the DIAGNOSE_MIN_BLOCK / DIAGNOSE_MAX_BLOCKS limits.

        Memory stays at the signature of one read of OLD (its pieces are
        hashed as they come, only the last 36 bytes are kept).
        """
        h = self._header
        assert h is not None
        if (
            h.block_len < DIAGNOSE_MIN_BLOCK
            or -(-self._old_size // h.block_len) > DIAGNOSE_MAX_BLOCKS
        ):
            return None
        self._old.seek(0)
        tail = b""
        for piece in iter_signature(self._old, block_size=h.block_len, strong_len=h.strong_len):
            tail = (tail + bytes(piece[-36:]))[-36:]
        return tail[:32] == h.sig_digest

    @property
    def produced(self) -> int:
        """Bytes of the result written so far."""
        return self._produced

    def abort(self, keep_as: Optional[str] = None) -> None:
        """Give up: remove the temporary output; an existing target stays as it was.

        ``keep_as`` renames the unverified partial result to that path
        instead (output to a path only), e.g. to use it as the basis of a
        later attempt.
        """
        if not self._closed:
            self._closed = True
            if self._direct is not None:
                self._direct.finish()  # the hasher stops before the file closes
            if isinstance(self._sink, AtomicFile):
                self._sink.abort(keep_as)
            else:
                self._sink.abort()
            self._close_old()

    def _close_old(self) -> None:
        if self._own_old:
            self._old.close()

    def __enter__(self) -> "Patcher":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def patch(
    old: Union[str, "os.PathLike[str]", BinaryIO],
    delta: Source,
    out: Union[str, "os.PathLike[str]", BinaryIO],
    *,
    progress: Progress = None,
    fsync: bool = True,
    max_size: Optional[int] = None,
) -> PatchResult:
    """Rebuild the new file from ``old`` and ``delta`` and verify it.

    Args:
        old: the basis (a regular file: path or binary file object).
        delta: the delta: path, ``"-"`` or a readable binary file object.
        out: the result: a path (replaced atomically only after verification;
            may be ``old`` itself), ``"-"`` or a writable binary file object.
        progress: called with the number of result bytes produced so far.
        fsync: fsync the result before it replaces the target (default True).
        max_size: refuse the delta as soon as it makes more than this many
            bytes (a delta announces its result size only at its end).

    Returns:
        :class:`PatchResult` with the size and digest of the result.

    Example:
        >>> import pydelta
        >>> pydelta.patch("old.bin", "new.delta", "old.bin").size  # doctest: +SKIP
        1073741825
    """
    with open_input(delta, "delta") as (fh, name):
        patcher = Patcher(
            old, out, progress=progress, delta_name=name, fsync=fsync, max_size=max_size
        )
        try:
            buf = bytearray(READ_SIZE)
            view = memoryview(buf)
            while True:
                n = readinto(fh, view, name)
                if not n:
                    break
                patcher.write(view[:n])
        except BaseException:
            patcher.abort()
            raise
        return patcher.close()
