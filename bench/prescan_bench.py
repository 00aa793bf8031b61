"""The delta pre-scan kernel alone (csrc/prescan.c): CPU ns a window of NEW.

Every window of an all-different NEW passes through the pre-scan, so its
cost a window bounds the all-different delta. This times one call over a
buffer of NEW (one thread, the process's CPU time, best of --repeat) against
a signature of OLD, for the pydelta found on the path: to compare two
builds, run it from each tree in turn (alternating), e.g.

    PYTHONPATH=/path/to/other/tree python bench/prescan_bench.py OLD NEW
    python bench/prescan_bench.py OLD NEW

Usage:
    python bench/prescan_bench.py OLD NEW [--mib 64] [--offset-mib 300] [--repeat 7]
"""

from __future__ import annotations

import argparse
import time

import pydelta
from pydelta.backends import backend


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", help="the old file (its signature is made here)")
    ap.add_argument("new", help="the new file")
    ap.add_argument("--mib", type=int, default=64, help="MiB of NEW pre-scanned")
    ap.add_argument("--offset-mib", type=int, default=300, help="where in NEW they start")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    if backend.NAME != "c":
        raise SystemExit("the pre-scan is a C kernel: run with PYDELTA_BACKEND=c")
    sig = pydelta.load_signature(pydelta.signature(a.old))
    with open(a.new, "rb") as fh:
        fh.seek(a.offset_mib << 20)
        buf = bytearray(fh.read(a.mib << 20))
    if len(buf) <= sig.info.block_len:
        raise SystemExit("NEW is too short for that offset")
    cap = 1 << 15
    hits = backend.prescan_hits(cap)
    best = float("inf")
    for _ in range(a.repeat):
        t = time.process_time()
        n, done = backend.prescan(sig.table, buf, len(buf), 0, len(buf), 0, hits, cap)
        best = min(best, time.process_time() - t)
    print(
        f"pydelta {pydelta.__file__}: {best / done * 1e9:.2f} ns a window "
        f"(best of {a.repeat}, {done} windows, {n} candidates)"
    )


if __name__ == "__main__":
    main()
