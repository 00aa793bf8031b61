"""A/B timing of two pydelta builds on the same pair: did a change slow it?

    python bench/ab_bench.py --a TREE_A --b TREE_B OLD NEW [--repeat 5]

TREE_A and TREE_B are pydelta source trees with their C core built in place
(``pip install -e .``, or cffi's ``compile(tmpdir='.')``). For each format
(native, rdiff) the signature of OLD is made once with A, then
``pydelta delta SIG NEW`` and ``pydelta patch OLD DELTA OUT`` run with A
and B alternately, --repeat times each, so a busy machine slows both
alike; the deltas must be identical and each output equal to NEW.
Prints the median and best wall time of each and the ratio B/A of the
medians. Literal compression is off (--no-compress) so the scan, not zstd,
is timed; --threads is passed through (default 1: the scan itself).
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


def run(tree: str, args: list) -> float:
    env = dict(os.environ, PYTHONPATH=tree, PYDELTA_BACKEND="c")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pydelta", *args], env=env, check=True, cwd=tree)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the baseline tree")
    ap.add_argument("--b", required=True, help="the changed tree")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--formats", default="native,rdiff")
    ap.add_argument("old")
    ap.add_argument("new")
    args = ap.parse_args()
    a, b = os.path.abspath(args.a), os.path.abspath(args.b)
    old, new = os.path.abspath(args.old), os.path.abspath(args.new)
    print(f"OLD {old} ({os.path.getsize(old) >> 20} MiB), NEW {new}, threads {args.threads}\n")
    print("| step | A median (s) | A best | B median (s) | B best | B/A |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(new)) as tmp:
        for fmt in args.formats.split(","):
            sig = os.path.join(tmp, f"sig-{fmt}")
            run(a, ["signature", "-q", "--format", fmt, old, sig])
            times: dict = {(step, tree): [] for step in ("delta", "patch") for tree in (a, b)}
            outs = {a: os.path.join(tmp, "da"), b: os.path.join(tmp, "db")}
            res = os.path.join(tmp, "out")
            for _ in range(args.repeat):
                for tree in (a, b):
                    cmd = ["delta", "-q", "--no-compress", "-j", str(args.threads), sig, new]
                    times["delta", tree].append(run(tree, [*cmd, outs[tree]]))
                    times["patch", tree].append(run(tree, ["patch", "-q", old, outs[tree], res]))
                    if not filecmp.cmp(res, new, shallow=False):
                        sys.exit(f"{fmt}: patching with {tree} did not give NEW")
            if not filecmp.cmp(outs[a], outs[b], shallow=False):
                sys.exit(f"{fmt}: the two builds wrote different deltas")
            for step in ("delta", "patch"):
                ta, tb = times[step, a], times[step, b]
                ma, mb = statistics.median(ta), statistics.median(tb)
                print(
                    f"| {fmt} {step} | {ma:.2f} | {min(ta):.2f} | {mb:.2f} | "
                    f"{min(tb):.2f} | {mb / ma:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
