"""Store memory benchmark: peak RSS of push and pull against the chunk count.

A small average chunk size (``--chunk-avg``, default 1 KiB) on a generated
file of a few hundred MiB gives the chunk count of a 100+ GB model at the
store's default 256 KiB chunks, cheaply. Each operation runs in a child
process; its peak RSS (VmHWM, read by the child: ru_maxrss would include the
parent's RSS at fork) is reported beside the RSS of
a child that only imports pydelta, and the difference per chunk.

Operations, on a fresh local store for each size:

* ``push``: first push (every chunk new);
* ``push2``: the same file again into the same store (every chunk known:
  the store index holds every chunk);
* ``pull``: into an empty DEST;
* ``pull2``: into a DEST holding the file with its first MiB changed
  (scan, local copies and a few downloads).

Usage:
  python bench/store_mem.py --mib 32 128            # 115k and 460k chunks
  python bench/store_mem.py --mib 512 --chunk-avg 2048 --dir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List

CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
import pydelta
t = time.monotonic()
if spec["op"].startswith("push"):
    r = pydelta.push(spec["src"], spec["store"], tag="t", chunk_avg=spec["avg"],
                     pack_size=spec["pack"], jobs=2)
    n = r.new_chunks + r.known_chunks
elif spec["op"].startswith("pull"):
    r = pydelta.pull(spec["store"], spec["dest"], tag="t", jobs=2)
    n = r.fetched_chunks + r.local_chunks
else:  # the baseline: everything a push and a pull import
    import pydelta.store.pull, pydelta.store.push
    from pydelta.backends import backend
    backend.Blake3()
    n = 0
# VmHWM: this process's own peak (ru_maxrss would count the parent's at fork)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": time.monotonic() - t, "chunks": n, "hwm_kib": int(hwm.split()[1])}))
"""


def run_child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Run one operation in a child; its result plus peak RSS in MiB."""
    t = time.monotonic()
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None
    out = p.stdout.read()
    p.wait()
    if p.returncode:
        raise SystemExit(f"{spec['op']} failed with status {p.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["rss_mib"] = res["hwm_kib"] / 1024
    res["wall"] = time.monotonic() - t
    return res


def make_file(path: str, size: int) -> None:
    """Incompressible bytes (a fixed seed, so runs compare)."""
    import random

    rng = random.Random(1)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, 8 << 20)
            fh.write(rng.randbytes(n))
            left -= n


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--chunk-avg", type=int, default=256)
    ap.add_argument(
        "--pack-kib",
        type=int,
        default=0,
        help="pack size (default: 32 MiB scaled like the chunks: 128 KiB at 1 KiB chunks)",
    )
    ap.add_argument("--dir", default=None, help="work folder (default: a temp folder)")
    ap.add_argument("--ops", nargs="+", default=["push", "push2", "pull", "pull2"])
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="store-mem-", dir=args.dir)
    try:
        pack = args.pack_kib << 10 or (32 << 20) * args.chunk_avg // (256 << 10)
        base = run_child({"op": "none"})["rss_mib"]
        print(f"# load: {os.getloadavg()[0]:.1f}; import-only child RSS {base:.0f} MiB")
        print("| MiB | chunks | op | seconds | peak RSS MiB | (RSS - import) B/chunk |")
        print("|---|---|---|---|---|---|")
        for mib in args.mib:
            src = os.path.join(work, "model.bin")
            store = os.path.join(work, "store")
            make_file(src, mib << 20)
            spec = {"src": src, "store": store, "avg": args.chunk_avg, "pack": pack}
            for op in args.ops:
                dest = os.path.join(work, "dest")
                if op == "pull" and os.path.exists(dest):
                    os.unlink(dest)
                elif op == "pull2":
                    shutil.copyfile(src, dest)
                    with open(dest, "r+b") as fh:
                        fh.write(os.urandom(1 << 20))
                res = run_child(dict(spec, op=op, dest=dest))
                per = (res["rss_mib"] - base) * (1 << 20) / max(1, res["chunks"])
                print(
                    f"| {mib} | {res['chunks']} | {op} | {res['seconds']:.1f} "
                    f"| {res['rss_mib']:.0f} | {per:.0f} |",
                    flush=True,
                )
            shutil.rmtree(store, ignore_errors=True)
            if os.path.exists(os.path.join(work, "dest")):
                os.unlink(os.path.join(work, "dest"))
            os.unlink(src)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
