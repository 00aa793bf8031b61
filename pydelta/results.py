"""What the verbs return: plain value classes, no behaviour beyond formatting.

They are written out by hand rather than made by :mod:`dataclasses`: that
module loads :mod:`inspect` (and with it ``ast``, ``dis``, ``tokenize``) and
compiles each class's methods when its module is imported, ~10 ms before a
command's work could begin (issue 13.4). :class:`Value` gives them what a
dataclass would: equality, ``repr`` and (frozen ones) a hash over their
fields, in field order; keyword construction is each class's ``__init__``.

A leaf module: it imports nothing of pydelta's, so every layer may use it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union

#: A progress callback: called with a cumulative byte count.
Progress = Optional[Callable[[int], None]]


class Value:
    """Base of a value class whose fields ``_fields`` names, in order:
    ``==`` compares them (only with the same class), ``repr`` shows them, and
    :meth:`as_dict` returns them (what :func:`dataclasses.asdict` gave)."""

    __slots__ = ()
    _fields: Tuple[str, ...] = ()

    def _values(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def as_dict(self) -> Dict[str, Any]:
        """The fields by name, in order."""
        return {f: getattr(self, f) for f in self._fields}

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        shown = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__qualname__}({shown})"


class Frozen(Value):
    """A :class:`Value` whose fields cannot be assigned after ``__init__``
    (which sets them through ``vars(self)``); hashable by its fields."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())


class SignatureInfo(Frozen):
    """What a signature says about the basis it was made from.

    Attributes:
        block_len: bytes of the basis per block.
        strong_len: bytes of each block's strong sum.
        block_count: blocks in the signature.
        basis_size: bytes of the basis.
        digest: identifies the signature, and so the basis, exactly.
        strong_hash: the per-block strong sum, "xxh3" (XXH3-128) or "blake3".
    """

    block_len: int
    strong_len: int
    block_count: int
    basis_size: int
    digest: bytes
    strong_hash: str
    _fields = ("block_len", "strong_len", "block_count", "basis_size", "digest", "strong_hash")

    def __init__(
        self,
        block_len: int,
        strong_len: int,
        block_count: int,
        basis_size: int,
        digest: bytes,
        strong_hash: str = "blake3",
    ) -> None:
        vars(self).update(
            block_len=block_len,
            strong_len=strong_len,
            block_count=block_count,
            basis_size=basis_size,
            digest=digest,
            strong_hash=strong_hash,
        )


class DeltaStats(Value):
    """What a delta holds, filled in as it is written.

    Attributes:
        new_size: bytes of NEW.
        copied: bytes of NEW sent as COPY from OLD.
        literal: bytes of NEW sent as LITERAL data.
        delta_size: bytes of delta written.
        compressed_literal: LITERAL bytes sent zstd-compressed (uncompressed size).
        compressed_size: bytes those took in the delta (the zstd frames).
    """

    _fields = (
        "new_size",
        "copied",
        "literal",
        "delta_size",
        "compressed_literal",
        "compressed_size",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        new_size: int = 0,
        copied: int = 0,
        literal: int = 0,
        delta_size: int = 0,
        compressed_literal: int = 0,
        compressed_size: int = 0,
    ) -> None:
        self.new_size = new_size
        self.copied = copied
        self.literal = literal
        self.delta_size = delta_size
        self.compressed_literal = compressed_literal
        self.compressed_size = compressed_size


class PatchResult(Frozen):
    """The verified result of a patch.

    Attributes:
        size: bytes written.
        digest: BLAKE3 of the result (matches the delta's).
        verified: False for an rdiff (librsync) delta, which carries no
            checksum to verify against.
    """

    size: int
    digest: bytes
    verified: bool
    _fields = ("size", "digest", "verified")

    def __init__(self, size: int, digest: bytes, verified: bool = True) -> None:
        vars(self).update(size=size, digest=digest, verified=verified)


class FileInfo(Value):
    """What a pydelta file holds. ``kind`` is ``"signature"`` or ``"delta"``;
    ``format`` is ``"pydelta"`` or ``"rdiff (librsync)"``."""

    _fields = ("kind", "fields", "format")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(
        self,
        kind: str,
        fields: Optional[Dict[str, Union[int, str]]] = None,
        format: str = "pydelta",
    ) -> None:
        self.kind = kind
        self.fields: Dict[str, Union[int, str]] = {} if fields is None else fields
        self.format = format

    def __str__(self) -> str:
        width = max(len(k) for k in self.fields) if self.fields else 0
        lines = [f"{self.format} {self.kind}"]
        lines += [f"  {k:<{width}}  {v}" for k, v in self.fields.items()]
        return "\n".join(lines)
