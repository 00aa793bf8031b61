"""A/B timing of `pydelta patch --no-fsync` with two pydelta builds.

    python bench/patch_ab_bench.py --a TREE_A --b TREE_B OLD DELTA [--repeat 5]

TREE_A and TREE_B are pydelta source trees with their C core built in place.
The two builds run alternately on the same OLD and DELTA (so a busy machine
slows both alike), --repeat times each, writing OUT beside DELTA; both
results must be the same file. Prints the median wall time and the median
user+sys CPU time of each, the ratios B/A, and the load before and after.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import statistics
import subprocess
import sys
import time


def run(tree: str, args: list) -> tuple:
    """(wall s, user+sys s) of one command run with the tree's pydelta."""
    env = dict(os.environ, PYTHONPATH=tree, PYDELTA_BACKEND="c")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pydelta", *args], env=env, check=True, cwd=tree)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the baseline tree")
    ap.add_argument("--b", required=True, help="the changed tree")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("old")
    ap.add_argument("delta")
    args = ap.parse_args()
    a, b = os.path.abspath(args.a), os.path.abspath(args.b)
    old, delta = os.path.abspath(args.old), os.path.abspath(args.delta)
    outs = {a: delta + ".out-a", b: delta + ".out-b"}
    load0 = os.getloadavg()[0]
    times: dict = {t: [] for t in (a, b)}
    try:
        for _ in range(args.repeat):
            for tree in (a, b):
                times[tree].append(run(tree, ["patch", "-q", "--no-fsync", old, delta, outs[tree]]))
        if not filecmp.cmp(outs[a], outs[b], shallow=False):
            sys.exit("the two builds wrote different results")
    finally:
        for p in outs.values():
            if os.path.exists(p):
                os.remove(p)
    load1 = os.getloadavg()[0]
    print(f"OLD {old}, DELTA {delta}, {args.repeat} runs each, load {load0:.1f} -> {load1:.1f}\n")
    print("| build | wall median (s) | user+sys median (s) |")
    print("|---|---:|---:|")
    med = {}
    for name, tree in (("A", a), ("B", b)):
        wall = statistics.median(w for w, _ in times[tree])
        cpu = statistics.median(c for _, c in times[tree])
        med[name] = (wall, cpu)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    print(f"\nB/A: wall {med['B'][0] / med['A'][0]:.3f}, user+sys {med['B'][1] / med['A'][1]:.3f}")


if __name__ == "__main__":
    main()
