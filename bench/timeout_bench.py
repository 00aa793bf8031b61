"""The wire's idle timeout (sync/wire.py): does reading the peer through a
non-blocking descriptor and poll() cost anything against blocking reads?

A local ``pydelta serve`` subprocess over pipes and a SyncClient push a file
of random bytes (a first copy: every byte crosses the channel as literal
data frames, so the read path is as hot as it gets), with the timeout on at
both ends (the default) and off at both ends (``timeout=0``,
``PYDELTA_SYNC_TIMEOUT=0``), alternating within each round. Prints the
median wall time of each and their ratio, and the load average.

    python bench/timeout_bench.py [--mib 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pydelta


def push_once(src: str, dest: str, timed: bool) -> float:
    env = dict(os.environ, PYDELTA_SYNC_TIMEOUT="1800" if timed else "0", PYDELTA_SIG_CACHE="off")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydelta", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    t0 = time.perf_counter()
    client = pydelta.SyncClient(
        proc.stdout, proc.stdin, timeout=1800 if timed else 0, fsync=False, compress=False
    )
    client.push(src, dest)
    client.close()
    seconds = time.perf_counter() - t0
    proc.stdin.close()
    proc.wait()
    os.unlink(dest)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pydelta-timeout-bench-")
    try:
        src = os.path.join(work, "src.bin")
        with open(src, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        dest = os.path.join(work, "dest.bin")
        times = {True: [], False: []}
        for r in range(args.rounds):
            for timed in (True, False) if r % 2 == 0 else (False, True):
                times[timed].append(push_once(src, dest, timed))
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"{args.mib} MiB first copy, medians of {args.rounds}, load {os.getloadavg()[0]:.1f}")
        print(f"  timeout on : {on:.3f} s  {sorted(round(t, 3) for t in times[True])}")
        print(f"  timeout off: {off:.3f} s  {sorted(round(t, 3) for t in times[False])}")
        print(f"  on / off   : {on / off:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
