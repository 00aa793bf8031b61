"""Describing signature and delta files (``pydelta info``), pydelta's or librsync's."""

from __future__ import annotations

from typing import BinaryIO, Dict, Optional, Union

from ._io import Source, open_input, read_all, read_exact, readinto
from .backends import rdiff_kernels
from .errors import DONE, CorruptDeltaError, NotADeltaError
from .formats import DELTA, RDIFF_DELTA, RDIFF_SIGNATURE, SIGNATURE, describe_magic, sniff
from .formats import native as fmt
from .formats.native import BadInstruction, Op, read_op, zliteral_problem
from .formats.rdiff import STRONG_NAME, WEAK_NAME
from .results import FileInfo
from .signature import RdiffSignature, Signature

#: Bytes of a delta read at a time.
CHUNK = 1 << 20


def _delta_ops(fh: BinaryIO, name: str, zliterals: bool) -> tuple:
    """Walk a native delta's instructions after its header.

    Returns (bytes read, counts by kind, the END op). Raises
    CorruptDeltaError for anything malformed or cut off."""
    counts: Dict[str, int] = dict.fromkeys(
        ("copies", "copied", "literals", "literal", "zops", "zraw", "zsize"), 0
    )
    pend = b""
    size = 0
    chunk = bytearray(CHUNK)
    view = memoryview(chunk)
    skip = 0  # payload bytes still to pass over
    end: Optional[Op] = None
    while True:
        n = readinto(fh, view, name)
        size += n
        buf = pend + bytes(view[:n])
        pos = 0
        while pos < len(buf):
            if end is not None:
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end marker")
            if skip:
                k = min(skip, len(buf) - pos)
                skip -= k
                pos += k
                continue
            try:
                op = read_op(buf, pos, len(buf), zliterals)
            except BadInstruction:
                op = None
                bad = True
            else:
                bad = op is not None and op.code == fmt.OP_ZLITERAL and bool(zliteral_problem(op))
            if bad:
                raise CorruptDeltaError(f"delta {name} is corrupted: invalid instruction")
            if op is None:
                break
            if op.code == fmt.OP_COPY:
                counts["copies"] += 1
                counts["copied"] += op.b
            elif op.code in (fmt.OP_LITERAL, fmt.OP_ZLITERAL):
                counts["literals"] += 1
                counts["literal"] += op.a
                if op.code == fmt.OP_ZLITERAL:
                    counts["zops"] += 1
                    counts["zraw"] += op.a
                    counts["zsize"] += op.b
            else:
                end = op
            pos += op.head
            skip = op.payload
        pend = buf[pos:]
        if not n:
            break
    if end is None or skip or pend:
        raise CorruptDeltaError(f"delta {name} is truncated (no end marker)")
    return size, counts, end


def _delta_info(fh: BinaryIO, name: str, head: bytes) -> FileInfo:
    h = fmt.parse_delta_header(head, name)
    zliterals = bool(h.flags & fmt.FLAG_ZLITERALS)
    size, c, end = _delta_ops(fh, name, zliterals)
    fields: Dict[str, Union[int, str]] = {
        "format version": fmt.VERSION,
        "delta size": len(head) + size,
        "block size": h.block_len,
        "basis size": h.basis_size,
        "signature digest": h.sig_digest.hex(),
        "result size": end.a,
        "result digest": end.digest.hex(),
        "copy instructions": c["copies"],
        "copied bytes": c["copied"],
        "literal instructions": c["literals"],
        "literal bytes": c["literal"],
    }
    if zliterals:
        fields["compressed literal instructions"] = c["zops"]
        fields["compressed literal bytes"] = c["zraw"]
        fields["compressed literal size"] = c["zsize"]
    return FileInfo("delta", fields)


def _signature_info(sig: Signature) -> FileInfo:
    i = sig.info
    return FileInfo(
        "signature",
        {
            "format version": fmt.VERSION,
            "block size": i.block_len,
            "strong hash": f"{fmt.STRONG_TITLES[fmt.STRONG_IDS[i.strong_hash]]}, {i.strong_len} bytes",
            "weak sum": "RK64 polynomial rolling sum, 8 bytes",
            "blocks": i.block_count,
            "distinct blocks": sig.table.unique,
            "basis size": i.basis_size,
            "signature digest": i.digest.hex(),
        },
    )


def _rdiff_signature_info(sig: RdiffSignature) -> FileInfo:
    i = sig.info
    if i.block_count:
        lo = (i.block_count - 1) * i.block_len + 1
        hi = i.block_count * i.block_len
        basis = f"{lo}..{hi} bytes (librsync signatures do not record it)"
    else:
        basis = "0 bytes"
    fields: Dict[str, Union[int, str]] = {
        "format": "librsync (rdiff)",
        "magic": f"0x{i.magic:08x}",
        "block size": i.block_len,
        "strong hash": f"{STRONG_NAME[i.strong]}, {i.strong_len} bytes",
        "weak sum": f"{WEAK_NAME[i.weak]}, 4 bytes",
        "blocks": i.block_count,
        "distinct blocks": sig.table.unique,
        "basis size": basis,
    }
    return FileInfo("signature", fields, "rdiff (librsync)")


def _rdiff_delta_info(fh: BinaryIO, name: str, head: bytes) -> FileInfo:
    """A librsync delta's commands, decoded (not applied) by the C patch job."""
    job = rdiff_kernels().PatchJob(-1, 0)
    size = len(head)
    pend = head[4:]
    chunk = bytearray(CHUNK)
    dummy = bytearray(1)
    rc = 0
    fed = 0
    while True:
        if pend:
            rc, used, _ = job.step(pend, 0, len(pend), dummy)
            fed += used
            if rc < 0:
                raise CorruptDeltaError(
                    f"delta {name} is corrupted: invalid command at byte {4 + fed}"
                )
            if rc == DONE and used < len(pend):
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end command")
            pend = pend[used:]
        if rc == DONE:
            if readinto(fh, memoryview(chunk), name):
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end command")
            break
        n = readinto(fh, memoryview(chunk), name)
        if not n:
            raise CorruptDeltaError(
                f"delta {name} is truncated (ends after {size} bytes, before its end command)"
            )
        size += n
        pend = bytes(pend) + bytes(chunk[:n])
    st = job.stats()
    # the kernel's u64 result size would wrap; Python's sum does not
    result_size = st["copied"] + st["literal"]  # type: ignore[operator]
    if result_size >= 1 << 64:
        raise CorruptDeltaError(
            f"delta {name} is corrupted: its commands make {result_size} bytes, "
            "more than a file can hold (2**64 - 1)"
        )
    return FileInfo(
        "delta",
        {
            "format": "librsync (rdiff)",
            "delta size": size,
            "result size": result_size,
            "result digest": "none (librsync deltas carry no checksum)",
            "copy instructions": st["copies"],
            "copied bytes": st["copied"],
            "literal instructions": st["literals"],
            "literal bytes": st["literal"],
        },
        "rdiff (librsync)",
    )


def info(path: Source) -> FileInfo:
    """Describe a pydelta signature or delta, or an rdiff (librsync) one.

    Example:
        >>> print(pydelta.info("old.sig"))  # doctest: +SKIP
        pydelta signature
          block size  32768
          ...
    """
    with open_input(path, "file") as (fh, name):
        head = read_exact(fh, fmt.DELTA_HEADER.size, name)
        kind = sniff(head)
        if kind == SIGNATURE:
            return _signature_info(Signature(head + read_all(fh, name), name))
        if kind == DELTA:
            return _delta_info(fh, name, head)
        if kind == RDIFF_SIGNATURE:
            return _rdiff_signature_info(RdiffSignature(head + read_all(fh, name), name))
        if kind == RDIFF_DELTA:
            return _rdiff_delta_info(fh, name, head)
        raise NotADeltaError(
            f"{name} is neither a pydelta signature nor a delta: it is {describe_magic(head)}"
        )
