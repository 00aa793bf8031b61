"""Generate model-like file pairs (safetensors-shaped) for demos and benchmarks.

A file is an 8-byte little-endian header length, a JSON header naming each
tensor's dtype, shape and byte range, then float16 tensor data drawn from a
seeded RNG, so every pair is reproducible byte for byte. Files are written
tensor by tensor; memory stays at one tensor whatever the file size.

Kinds of pair (old, new):
    finetune   3% of the tensors retrained (new values) and the header one
               byte longer, so every byte of data after it shifts
    append     new tensors added at the end (the header grows too)
    scattered  hundreds of 64-byte edits in place, no shift
    retune     every value perturbed: no block of old survives
    identical  the same file twice

Usage: python bench/modelgen.py KIND SIZE_MIB OLD NEW [--seed N]
"""

from __future__ import annotations

import argparse
import json
import struct
from typing import Dict, Iterator, List, Tuple

import numpy as np

KINDS = ("finetune", "append", "scattered", "retune", "identical")
#: Elements per tensor: a spread of sizes like a transformer's (norms, projections).
_SHAPES = [(4096,), (4096, 1024), (1024, 1024), (4096, 256), (11008, 256), (512, 512)]


def _layout(total_bytes: int, seed: int) -> List[Tuple[str, Tuple[int, ...]]]:
    rng = np.random.default_rng(seed)
    tensors = []
    size = 0
    i = 0
    while size < total_bytes:
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))]
        n = int(np.prod(shape)) * 2
        if size + n > total_bytes and tensors:
            break
        tensors.append((f"model.layers.{i // 6}.t{i % 6}.weight", shape))
        size += n
        i += 1
    return tensors


def _tensor(seed: int, index: int, version: int, shape: Tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng([seed, index, version])
    return (rng.standard_normal(int(np.prod(shape)), dtype=np.float32) * 0.02).astype(np.float16)


def _header(tensors: List[Tuple[str, Tuple[int, ...]]], rev: str) -> bytes:
    meta: Dict[str, object] = {"__metadata__": {"format": "pt", "rev": rev}}
    off = 0
    for name, shape in tensors:
        n = int(np.prod(shape)) * 2
        meta[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    body = json.dumps(meta, separators=(",", ":")).encode()
    return struct.pack("<Q", len(body)) + body


def _write(path: str, header: bytes, chunks: Iterator[bytes]) -> int:
    size = 0
    with open(path, "wb") as f:
        f.write(header)
        size += len(header)
        for c in chunks:
            f.write(c)
            size += len(c)
    return size


def make_pair(kind: str, size_mib: float, old_path: str, new_path: str, seed: int = 1) -> dict:
    """Write the pair; returns a description (sizes, what changed)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    tensors = _layout(int(size_mib * (1 << 20)), seed)
    rng = np.random.default_rng([seed, 999])

    def old_data() -> Iterator[bytes]:
        for i, (_, shape) in enumerate(tensors):
            yield _tensor(seed, i, 0, shape).tobytes()

    old_size = _write(old_path, _header(tensors, "1"), old_data())
    info = {"kind": kind, "old_size": old_size, "tensors": len(tensors)}

    if kind == "identical":
        new_size = _write(new_path, _header(tensors, "1"), old_data())
    elif kind == "finetune":
        count = max(1, round(0.03 * len(tensors)))
        changed = set(int(i) for i in rng.choice(len(tensors), size=count, replace=False))

        def ft() -> Iterator[bytes]:
            for i, (_, shape) in enumerate(tensors):
                yield _tensor(seed, i, 1 if i in changed else 0, shape).tobytes()

        new_size = _write(new_path, _header(tensors, "12"), ft())
        info["changed_tensors"] = len(changed)
    elif kind == "append":
        extra = _layout(max(1 << 20, int(size_mib * (1 << 20) * 0.05)), seed + 7)
        extra = [(f"extra.{n}", s) for n, s in extra]

        def ap() -> Iterator[bytes]:
            yield from old_data()
            for i, (_, shape) in enumerate(extra):
                yield _tensor(seed + 7, i, 0, shape).tobytes()

        new_size = _write(new_path, _header(tensors + extra, "1"), ap())
        info["appended_tensors"] = len(extra)
    elif kind == "scattered":
        header = _header(tensors, "1")
        data_size = old_size - len(header)
        edits = sorted(int(x) for x in rng.choice(data_size // 64, size=300, replace=False))
        info["edits"] = len(edits)

        def sc() -> Iterator[bytes]:
            pos = 0
            e = 0
            for chunk in old_data():
                buf = bytearray(chunk)
                end = pos + len(buf)
                while e < len(edits) and edits[e] * 64 < end:
                    at = edits[e] * 64 - pos
                    buf[at : at + 64] = rng.bytes(min(64, len(buf) - at))
                    e += 1
                pos = end
                yield bytes(buf)

        new_size = _write(new_path, header, sc())
    else:  # retune

        def rt() -> Iterator[bytes]:
            for i, (_, shape) in enumerate(tensors):
                t = _tensor(seed, i, 0, shape)
                noise = _tensor(seed, i, 5, shape)
                yield (t + noise * np.float16(0.05) + np.float16(1e-3)).astype(np.float16).tobytes()

        new_size = _write(new_path, _header(tensors, "1"), rt())
    info["new_size"] = new_size
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("size_mib", type=float)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(make_pair(a.kind, a.size_mib, a.old, a.new, a.seed)))


if __name__ == "__main__":
    main()
