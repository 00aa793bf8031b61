"""`pydelta signature` and `pydelta delta` with XXH3-128 against BLAKE3 block sums.

Run: .venv/bin/python bench/strong_cmd_bench.py OLD NEW [--rounds 3] [--out DIR]

The same pydelta, commands differing only in ``--hash``: per round,
``signature --hash blake3`` and ``signature --hash xxh3`` of OLD, then
``delta`` of NEW against each signature, alternating, with OLD and NEW in
the page cache (read once first). Prints user, sys and wall seconds (the
child's rusage) per command, their medians, the xxh3/blake3 ratios, and the
load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple


def _run(argv: List[str]) -> Tuple[float, float, float]:
    t0 = time.perf_counter()
    p = subprocess.Popen(argv)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.exit(f"{' '.join(argv)} failed ({p.returncode})")
    return ru.ru_utime, ru.ru_stime, wall


def _warm(path: str) -> None:
    with open(path, "rb") as fh:
        while fh.read(8 << 20):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None, help="where the signatures and deltas go")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "pydelta"]
    out = Path(args.out or tempfile.mkdtemp(prefix="strong-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    _warm(args.old)
    _warm(args.new)
    res: Dict[str, List[Tuple[float, float, float]]] = {}
    before = os.getloadavg()
    for _ in range(args.rounds):
        for kind in ("blake3", "xxh3"):
            sig = str(out / f"{kind}.sig")
            res.setdefault(f"signature {kind}", []).append(
                _run(exe + ["signature", "-q", "--hash", kind, args.old, sig])
            )
        for kind in ("blake3", "xxh3"):
            sig = str(out / f"{kind}.sig")
            res.setdefault(f"delta {kind}", []).append(
                _run(exe + ["delta", "-q", sig, args.new, str(out / f"{kind}.delta")])
            )
    after = os.getloadavg()
    print(f"load {before[0]:.2f} -> {after[0]:.2f}, {args.rounds} rounds, medians:")
    med = {}
    for name, runs in res.items():
        med[name] = [statistics.median(r[i] for r in runs) for i in range(3)]
        u, s, w = med[name]
        print(f"  {name:18s} user {u:5.2f}  sys {s:5.2f}  wall {w:5.2f}")
    for verb in ("signature", "delta"):
        b, x = med[f"{verb} blake3"], med[f"{verb} xxh3"]
        print(
            f"  {verb} xxh3/blake3: user {x[0] / b[0]:.2f}x, cpu {(x[0] + x[1]) / (b[0] + b[1]):.2f}x,"
            f" wall {x[2] / b[2]:.2f}x"
        )
    d = {k: (out / f"{k}.delta").stat().st_size for k in ("blake3", "xxh3")}
    print(f"  delta sizes: blake3 {d['blake3']}, xxh3 {d['xxh3']}")


if __name__ == "__main__":
    main()
