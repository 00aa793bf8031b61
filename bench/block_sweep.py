"""Block-size sweep: signature size, delta size and times per block length.

Justifies the default block length (rsync's square-root rule, clamped to
1 KiB..1 MiB): it sits where signature + delta is near its minimum while
the scan stays fast.

Usage: python bench/block_sweep.py OLD NEW [--blocks 4096,8192,...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pydelta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--blocks", default="2048,4096,8192,16384,32768,65536,131072,262144,1048576")
    a = ap.parse_args()
    size = os.path.getsize(a.new)
    default = pydelta.default_block_len(os.path.getsize(a.old))
    print(f"file {size / 2**20:.1f} MiB, default block length {default}")
    print("| block | signature MiB | delta MiB | shipped % | signature s | delta s |")
    print("|---|---|---|---|---|---|")
    for b in (int(x) for x in a.blocks.split(",")):
        t = time.perf_counter()
        sig = pydelta.signature(a.old, block_size=b)
        ts = time.perf_counter() - t
        t = time.perf_counter()
        st = pydelta.delta(sig, a.new, os.devnull)
        td = time.perf_counter() - t
        mark = " (default)" if b == default else ""
        print(
            f"| {b}{mark} | {len(sig) / 2**20:.2f} | {st.delta_size / 2**20:.2f} | "
            f"{100 * (len(sig) + st.delta_size) / size:.2f} | {ts:.2f} | {td:.2f} |"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
