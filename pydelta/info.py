"""Describing signature and delta files (``pydelta info``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Union

from . import format as fmt
from . import rdiff
from ._backend import backend
from ._io import Source, open_input, read_all, read_exact, readinto
from .errors import CorruptDeltaError, NotADeltaError, NotASignatureError


@dataclass
class FileInfo:
    """What a pydelta file holds. ``kind`` is ``"signature"`` or ``"delta"``;
    ``format`` is ``"pydelta"`` or ``"rdiff (librsync)"``."""

    kind: str
    fields: Dict[str, Union[int, str]] = field(default_factory=dict)
    format: str = "pydelta"

    def __str__(self) -> str:
        width = max(len(k) for k in self.fields) if self.fields else 0
        lines = [f"{self.format} {self.kind}"]
        lines += [f"  {k:<{width}}  {v}" for k, v in self.fields.items()]
        return "\n".join(lines)


def _varint(buf: bytes, pos: int) -> Optional[tuple]:
    value = shift = 0
    for i in range(10):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos + i + 1
    raise ValueError("bad varint")


def _delta_info(fh, name: str, head: bytes) -> FileInfo:
    h = fmt.parse_delta_header(head, name)
    copies = literals = copied = literal = 0
    zops = zraw = zsize = 0  # compressed literals: count, bytes they hold, bytes they take
    pend = b""
    size = len(head)
    chunk = bytearray(1 << 20)
    view = memoryview(chunk)
    lit_left = 0
    end = None
    eof = False
    while True:
        n = readinto(fh, view, name)
        if not n:
            eof = True
        size += n
        buf = pend + bytes(view[:n])
        pos = 0
        while pos < len(buf):
            if end is not None:
                raise CorruptDeltaError(f"delta {name} is corrupted: data follows its end marker")
            if lit_left:
                k = min(lit_left, len(buf) - pos)
                lit_left -= k
                pos += k
                continue
            op = buf[pos]
            try:
                if op == 0x43:
                    a = _varint(buf, pos + 1)
                    b = a and _varint(buf, a[1])
                    if not b:
                        break
                    copies += 1
                    copied += b[0]
                    pos = b[1]
                elif op == 0x4C:
                    a = _varint(buf, pos + 1)
                    if not a:
                        break
                    literals += 1
                    literal += a[0]
                    lit_left = a[0]
                    pos = a[1]
                elif op == fmt.OP_ZLITERAL and h.flags & fmt.FLAG_ZLITERALS:
                    a = _varint(buf, pos + 1)
                    if not a or a[1] >= len(buf):
                        break
                    b = _varint(buf, a[1] + 1)
                    if not b:
                        break
                    if not 0 < b[0] <= a[0] <= fmt.Z_MAX_RAW or buf[a[1]] not in (
                        fmt.Z_ZSTD,
                        fmt.Z_ZSTD_GROUP16,
                    ):
                        raise ValueError
                    literals += 1
                    literal += a[0]
                    zops += 1
                    zraw += a[0]
                    zsize += b[0]
                    lit_left = b[0]
                    pos = b[1]
                elif op == 0x45:
                    if len(buf) - pos < 41:
                        break
                    end = (int.from_bytes(buf[pos + 1 : pos + 9], "little"), buf[pos + 9 : pos + 41])
                    pos += 41
                else:
                    raise ValueError
            except ValueError:
                raise CorruptDeltaError(f"delta {name} is corrupted: invalid instruction") from None
        pend = buf[pos:]
        if eof:
            break
    if end is None or lit_left or pend:
        raise CorruptDeltaError(f"delta {name} is truncated (no end marker)")
    result_size, digest = end
    return FileInfo(
        "delta",
        {
            "format version": fmt.VERSION,
            "delta size": size,
            "block size": h.block_len,
            "basis size": h.basis_size,
            "signature digest": h.sig_digest.hex(),
            "result size": result_size,
            "result digest": digest.hex(),
            "copy instructions": copies,
            "copied bytes": copied,
            "literal instructions": literals,
            "literal bytes": literal,
            **(
                {
                    "compressed literal instructions": zops,
                    "compressed literal bytes": zraw,
                    "compressed literal size": zsize,
                }
                if h.flags & fmt.FLAG_ZLITERALS
                else {}
            ),
        },
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
        if head.startswith(fmt.SIG_MAGIC):
            from .signature import Signature

            sig = Signature(head + read_all(fh, name), name)
            i = sig.info
            return FileInfo(
                "signature",
                {
                    "format version": fmt.VERSION,
                    "block size": i.block_len,
                    "strong hash": f"BLAKE3, {i.strong_len} bytes",
                    "weak sum": "RK64 polynomial rolling sum, 8 bytes",
                    "blocks": i.block_count,
                    "distinct blocks": sig.table.unique,
                    "basis size": i.basis_size,
                    "signature digest": i.digest.hex(),
                },
            )
        if head.startswith(fmt.DELTA_MAGIC):
            return _delta_info(fh, name, head)
        if rdiff.is_signature_magic(head) or rdiff.is_delta_magic(head):
            return rdiff.describe(fh, name, head)
        kind = fmt.describe_magic(head)
        raise NotADeltaError(f"{name} is neither a pydelta signature nor a delta: it is {kind}")


_ = (backend, NotASignatureError)
