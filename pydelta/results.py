"""What the verbs return: plain dataclasses, no behaviour beyond formatting.

A leaf module: it imports nothing of pydelta's, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Union

#: A progress callback: called with a cumulative byte count.
Progress = Optional[Callable[[int], None]]


@dataclass(frozen=True)
class SignatureInfo:
    """What a signature says about the basis it was made from."""

    block_len: int
    strong_len: int
    block_count: int
    basis_size: int
    digest: bytes  #: identifies the signature, and so the basis, exactly
    strong_hash: str = "blake3"  #: the per-block strong sum: "xxh3" or "blake3"


@dataclass
class DeltaStats:
    """What a delta holds, filled in as it is written."""

    new_size: int = 0  #: bytes of NEW
    copied: int = 0  #: bytes of NEW sent as COPY from OLD
    literal: int = 0  #: bytes of NEW sent as LITERAL data
    delta_size: int = 0  #: bytes of delta written
    compressed_literal: int = 0  #: LITERAL bytes sent zstd-compressed (uncompressed size)
    compressed_size: int = 0  #: bytes those took in the delta (the zstd frames)


@dataclass(frozen=True)
class PatchResult:
    """The verified result of a patch."""

    size: int  #: bytes written
    digest: bytes  #: BLAKE3 of the result (matches the delta's)
    #: False for an rdiff (librsync) delta, which carries no checksum to verify against
    verified: bool = True


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
