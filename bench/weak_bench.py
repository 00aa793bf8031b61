"""The whole-window weak sum: the AVX2 kernel against the portable one.

Each measurement runs in a child process (the kernel is chosen once per
process, ``PYDELTA_WEAK_SIMD=portable`` forcing the portable one); the two
alternate within every repeat, and the report gives GB/s medians and the
ratio, with the load average noted.

    python bench/weak_bench.py [--mib 256] [--block 32768] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CHILD = r"""
import os, sys, time
from pydelta._core import ffi, lib
mib, block = int(sys.argv[1]), int(sys.argv[2])
data = os.urandom(mib << 20)
buf = ffi.from_buffer(data)
n = len(data)
lib.pd_weak(buf, block)
t0 = time.perf_counter()
for off in range(0, n, block):
    lib.pd_weak(buf + off, min(block, n - off))
t = time.perf_counter() - t0
print(ffi.string(lib.pd_weak_impl()).decode(), n / t / 1e9)
"""


def run(mib: int, block: int, portable: bool) -> tuple[str, float]:
    """One child's kernel name and GB/s."""
    env = dict(os.environ)
    env.pop("PYDELTA_WEAK_SIMD", None)
    if portable:
        env["PYDELTA_WEAK_SIMD"] = "portable"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(mib), str(block)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0], float(out[1])


def main() -> None:
    """Alternate the two kernels and print the medians and their ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--block", type=int, default=32768)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    got: dict[str, list[float]] = {}
    for _ in range(a.repeats):
        for portable in (True, False):
            name, gbs = run(a.mib, a.block, portable)
            got.setdefault(name, []).append(gbs)
    load = os.getloadavg()
    print(f"weak sum, {a.mib} MiB in {a.block}-byte windows, load {load[0]:.2f}")
    med = {k: statistics.median(v) for k, v in got.items()}
    for k, v in med.items():
        print(f"  {k:9s} {v:6.2f} GB/s (median of {len(got[k])})")
    if "avx2" in med and "portable" in med:
        print(f"  avx2/portable throughput {med['avx2'] / med['portable']:.2f}x")


if __name__ == "__main__":
    main()
