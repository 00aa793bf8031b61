"""What signing the result and the tree-parallel digest do to the patch (csrc/copy.c).

A sync's receiving end asks its patch for the result's block signature (for
its signature cache); the direct writer makes it from the read-back that
computes the result's digest, which is hashed tree-parallel on all cores.
This times the patch of one pair (--no-fsync, in this process) four ways,
alternating within each repeat: the digest on one thread (as before the
tree-parallel digest), on all cores (the default), and the default plus
signing on the digest's reader or on a reader thread of its own. Prints
medians of wall and CPU time, the ratios to the default and the load.

Usage:
    python bench/patch_sign_bench.py [--work bench/work] [--size 1024] [--repeat 5]
        [--scratch /dev/shm]  (old, delta and result in memory: no disk in the figures)
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from modelgen import make_pair  # noqa: E402

import pydelta  # noqa: E402
from pydelta.sync.sigcache import SigCache  # noqa: E402

patch_mod = importlib.import_module("pydelta.patch")


def timed_patch(old: str, delta: str, out: str, sign, own_thread: bool, hash_threads) -> tuple:
    """(wall s, CPU s of all threads) to patch old + delta into out (no fsync)."""
    patch_mod.SIGN_THREAD = own_thread
    patch_mod.HASH_THREADS = hash_threads
    with open(delta, "rb") as fh:
        data = fh.read()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    p = patch_mod.Patcher(old, out, fsync=False, sign=sign)
    view = memoryview(data)
    for at in range(0, len(data), patch_mod.READ_SIZE):
        p.write(view[at : at + patch_mod.READ_SIZE])
    p.close()
    seconds = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    if sign is not None and p.signature is None:
        raise SystemExit("the patch made no signature")
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--size", type=int, default=1024, help="pair size in MiB (finetune)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--scratch", default=None, help="directory for the delta and the result (e.g. a tmpfs)"
    )
    a = ap.parse_args()
    stem = os.path.join(a.work, f"finetune-{a.size:g}M")
    if not os.path.exists(stem + ".new"):
        os.makedirs(a.work, exist_ok=True)
        make_pair("finetune", a.size, stem + ".old", stem + ".new")
    with tempfile.TemporaryDirectory(dir=a.scratch) as tmp:
        sig = os.path.join(tmp, "sig")
        delta = os.path.join(tmp, "delta")
        pydelta.signature(stem + ".old", sig)
        pydelta.delta(sig, stem + ".new", delta)
        sign = SigCache.sign_params(os.path.getsize(stem + ".new"))
        out = os.path.join(tmp, "out")
        cases = {
            "digest on 1 thread": (None, False, 1),
            "plain": (None, False, None),
            "signed": (sign, False, None),
            "signed, own thread": (sign, True, None),
        }
        times = {k: [] for k in cases}
        load0 = os.getloadavg()
        for _ in range(a.repeat):
            for name, (s, own, hash_threads) in cases.items():
                times[name].append(timed_patch(stem + ".old", delta, out, s, own, hash_threads))
        load1 = os.getloadavg()
    base = statistics.median(t for t, _ in times["plain"])
    cbase = statistics.median(c for _, c in times["plain"])
    print(f"patch --no-fsync, finetune {a.size} MiB, medians of {a.repeat}, sign={sign}")
    print(f"  {'':20s} {'wall':>7s} {'ratio':>6s} {'CPU':>7s} {'ratio':>6s}  (wall of each run)")
    for name, ts in times.items():
        med = statistics.median(t for t, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        runs = ", ".join(f"{t:.2f}" for t, _ in ts)
        print(
            f"  {name:20s} {med:6.3f}s {med / base:5.2f}x {cpu:6.3f}s {cpu / cbase:5.2f}x  ({runs})"
        )
    print(f"  load before {load0[0]:.2f}, after {load1[0]:.2f} (1-min); {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
