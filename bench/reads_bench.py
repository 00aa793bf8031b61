"""CPU split (user, sys, wall) of signature, delta and patch for two builds.

    python bench/reads_bench.py --a TREE_A --b TREE_B OLD NEW [--repeat 3]

TREE_A and TREE_B are pydelta source trees with their C core built in place.
Each repeat runs every step with A then B (interleaved, so a busy machine
slows both alike), hot page cache (OLD and NEW are read once first). The
child's user and system seconds come from wait4's rusage. Prints medians
and the ratio B/A of each, with the load average before and after: the
reads this measures are mostly system time, which the load inflates.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple


def run(tree: str, args: List[str]) -> Tuple[float, float, float]:
    """(user, sys, wall) seconds of ``python -m pydelta ARGS`` from TREE."""
    env = dict(os.environ, PYTHONPATH=tree, PYDELTA_BACKEND="c")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pydelta", *args], env=env, cwd=tree)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{tree}: pydelta {' '.join(args)} exited {proc.returncode}")
    return ru.ru_utime, ru.ru_stime, wall


def warm(path: str) -> None:
    """Read a file once so the runs see a hot page cache."""
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(1 << 20)
        while fh.readinto(buf):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the baseline tree")
    ap.add_argument("--b", required=True, help="the changed tree")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", default="signature,delta,patch")
    ap.add_argument(
        "--sig-opts",
        default="",
        help="B's extra signature options (e.g. '--strong-hash blake3' to sign as an older A)",
    )
    ap.add_argument("old")
    ap.add_argument("new")
    args = ap.parse_args()
    trees = {"A": os.path.abspath(args.a), "B": os.path.abspath(args.b)}
    old, new = os.path.abspath(args.old), os.path.abspath(args.new)
    steps = args.steps.split(",")
    load0 = os.getloadavg()
    warm(old)
    warm(new)
    times: Dict[Tuple[str, str], List[Tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(dir=os.path.dirname(new)) as tmp:
        sig = os.path.join(tmp, "sig")
        delta = os.path.join(tmp, "delta")
        run(trees["A"], ["signature", "-q", old, sig])
        run(trees["A"], ["delta", "-q", sig, new, delta])
        for _ in range(args.repeat):
            for step in steps:
                for name, tree in trees.items():
                    out = os.path.join(tmp, f"out-{name}")
                    if step == "signature":
                        extra = args.sig_opts.split() if name == "B" else []
                        cmd = ["signature", "-q", *extra, old, out]
                        ref = sig
                    elif step == "delta":
                        cmd = ["delta", "-q", sig, new, out]
                        ref = delta
                    else:
                        cmd = ["patch", "-q", "--no-fsync", old, delta, out]
                        ref = new
                    times.setdefault((step, name), []).append(run(tree, cmd))
                    if not filecmp.cmp(out, ref, shallow=False):
                        raise SystemExit(f"{name} {step}: output differs from A's")
                    os.unlink(out)
    load1 = os.getloadavg()
    print(f"OLD {old} ({os.path.getsize(old) >> 20} MiB), NEW {new}, medians of {args.repeat}")
    print(f"A {trees['A']}\nB {trees['B']}")
    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f}\n")
    print("| step | A user | A sys | A wall | B user | B sys | B wall | B/A user+sys | B/A wall |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for step in steps:
        row = [step]
        med = {}
        for name in trees:
            u, s, w = (statistics.median(x[i] for x in times[step, name]) for i in range(3))
            med[name] = (u, s, w)
            row += [f"{u:.2f}", f"{s:.2f}", f"{w:.2f}"]
        cpu = (med["B"][0] + med["B"][1]) / (med["A"][0] + med["A"][1])
        row += [f"{cpu:.2f}", f"{med['B'][2] / med['A'][2]:.2f}"]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
