"""Per-block strong sums: XXH3-128 against BLAKE3 (and the signature kernel).

Run: .venv/bin/python bench/strong_bench.py [--block 32768] [--mib 8] [--rounds 9]

Hashes --mib MiB of random data (cache-resident at the default 8 MiB)
whole (one call: the kernel's own speed), in blocks of --block bytes, one
block per call (a Python call each: at 32 KiB its overhead is a large
share), and through the signature kernel (weak sum + strong sum of every
block, in C), on one thread, with the backend in use (PYDELTA_BACKEND). The kernels alternate within every
round, so a busy machine slows them alike; the best and the median round of
each are printed as GB/s, with the ratio to BLAKE3 and the load average
before and after (the coordinator reruns final figures on a quiet machine).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from typing import Callable, Dict, List

from pydelta.backends import backend


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--block", type=int, default=32768)
    ap.add_argument("--mib", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    size = args.mib << 20
    bl = args.block
    data = random.Random(1).randbytes(size)
    view = memoryview(data)
    blocks = [view[i : i + bl] for i in range(0, size, bl)]

    def blake3() -> None:
        for b in blocks:
            backend.blake3_digest(b, 16)

    def xxh3() -> None:
        for b in blocks:
            backend.xxh3_128(b)

    def sig(kind: int) -> Callable[[], None]:
        return lambda: backend.sig_blocks(data, size, bl, 16, kind)

    kernels: Dict[str, Callable[[], None]] = {
        "blake3 (whole buffer)": lambda: backend.blake3_digest(data),
        "xxh3-128 (whole buffer)": lambda: backend.xxh3_128(data),
        "blake3 (per block)": blake3,
        "xxh3-128 (per block)": xxh3,
        "signature kernel, blake3": sig(backend.STRONG_BLAKE3),
        "signature kernel, xxh3": sig(backend.STRONG_XXH3),
    }
    for fn in kernels.values():  # warm up (and compile, on numba)
        fn()
    times: Dict[str, List[float]] = {k: [] for k in kernels}
    before = _load()
    for _ in range(args.rounds):
        for name, fn in kernels.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    after = _load()
    print(
        f"backend {backend.NAME}, {args.mib} MiB in {bl}-byte blocks, {args.rounds} rounds, "
        f"load {before} -> {after}"
    )
    base = {
        "whole": statistics.median(times["blake3 (whole buffer)"]),
        "per block": statistics.median(times["blake3 (per block)"]),
        "signature": statistics.median(times["signature kernel, blake3"]),
    }
    for name, ts in times.items():
        med = statistics.median(ts)
        ref = next(v for k, v in base.items() if k in name or k == "signature")
        print(
            f"  {name:28s} best {size / min(ts) / 1e9:6.2f} GB/s  median {size / med / 1e9:6.2f}"
            f" GB/s  time vs blake3 {med / ref:5.2f}x"
        )


if __name__ == "__main__":
    main()
