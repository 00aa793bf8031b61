"""Time crafted hash-flooding signatures against pydelta's signature tables.

    python bench/flood_bench.py [--size-mb 2] [--rdiff-kb 640] [--new-mb 4]

For each shape (tests/floods.py) it builds a signature of about the given
size, then times ``pydelta.delta`` with it against a 1-byte NEW (loading
the table dominates) and against NEW of --new-mb random bytes (load plus a
scan in which about 1.5% of positions pass the pre-filter and reach the
index). The backend is the one PYDELTA_BACKEND selects; numba has no rdiff
kernels, so the rdiff rows need the C backend. Random weak sums are the
baseline. Results are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import floods  # noqa: E402

import pydelta  # noqa: E402


def _time(sig: bytes, new: bytes) -> float:
    t0 = time.perf_counter()
    pydelta.delta(sig, io.BytesIO(new))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=2.0, help="native signature size")
    ap.add_argument("--rdiff-kb", type=float, default=640.0, help="rdiff signature size")
    ap.add_argument("--new-mb", type=float, default=4.0, help="NEW size for the scan row")
    ap.add_argument("--no-rdiff", action="store_true", help="skip the rdiff rows")
    args = ap.parse_args()
    backend = os.environ.get("PYDELTA_BACKEND") or "c"
    new = random.Random(7).randbytes(int(args.new_mb * (1 << 20)))
    n_native = int(args.size_mb * (1 << 20)) // 24  # 8-byte weak + 16-byte strong
    n_rdiff = int(args.rdiff_kb * 1024) // 12  # 4-byte weak + 8-byte strong
    rnd = random.Random(3)
    rows = [
        (
            "native",
            "random weak sums",
            floods.native_signature([rnd.getrandbits(64) for _ in range(n_native)]),
        ),
        ("native", "all weak sums equal", floods.native_signature([12345] * n_native)),
        (
            "native",
            "one slot of the old index",
            floods.native_signature(floods.native_old_slot_weaks(n_native)),
        ),
    ]
    if not args.no_rdiff:
        rows += [
            (
                "rdiff",
                "random weak sums",
                floods.rdiff_signature([rnd.getrandbits(32) for _ in range(n_rdiff)]),
            ),
            ("rdiff", "all weak sums equal", floods.rdiff_signature([12345] * n_rdiff)),
            (
                "rdiff",
                "one cluster of the old index",
                floods.rdiff_signature(floods.rdiff_old_slot_weaks(n_rdiff)),
            ),
        ]
    print(f"backend {backend}, NEW {args.new_mb:g} MiB random\n")
    print("| format | weak sums | signature | blocks | load (s) | load + scan (s) |")
    print("|---|---|---:|---:|---:|---:|")
    _time(floods.native_signature([1, 2, 3]), new[:100_000])  # warm-up (numba compiles)
    for fmt_name, shape, sig in rows:
        load = _time(sig, b"x")
        scan = _time(sig, new)
        blocks = n_native if fmt_name == "native" else n_rdiff
        print(
            f"| {fmt_name} | {shape} | {len(sig) / 1e6:.2f} MB | {blocks} | "
            f"{load:.3f} | {scan:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
