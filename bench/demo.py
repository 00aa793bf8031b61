"""End-to-end demo: update a model-like file by shipping only a delta.

Generates a safetensors-shaped model and a fine-tuned version of it (3% of
the tensors retrained, header one byte longer so all data shifts), then runs
the three pydelta steps through the real command line, as a receiver and a
sender would, verifies the result and prints what was shipped; then pushes
both versions to a local model store and pulls them onto a "node" that holds
the first, printing what the second push and pull moved.

Usage: python bench/demo.py [--size-mib N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modelgen import make_pair


def run(args: list, label: str) -> float:
    print(f"$ pydelta {' '.join(shlex.quote(a) for a in args)}")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pydelta", *args], check=True)
    dt = time.perf_counter() - t
    print(f"  {label}: {dt:.2f} s")
    return dt


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def dir_size(path: str) -> int:
    """Bytes of all files under path."""
    return sum(
        os.path.getsize(os.path.join(top, name))
        for top, _, names in os.walk(path)
        for name in names
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=float, default=256)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pydelta-demo-", dir=a.dir) as d:
        old = os.path.join(d, "model-v1.safetensors")
        new = os.path.join(d, "model-v2.safetensors")
        sig = os.path.join(d, "model-v1.sig")
        dlt = os.path.join(d, "v1-to-v2.delta")
        out = os.path.join(d, "received.safetensors")
        print(f"generating a {a.size_mib:g} MiB model-like pair in {d} ...")
        info = make_pair("finetune", a.size_mib, old, new)
        print(
            f"  {info['tensors']} float16 tensors, {info['changed_tensors']} retrained, "
            "header 1 byte longer (all data shifted)\n"
        )
        print("receiver: signature of the old file")
        run(["signature", old, sig], "signature")
        print("sender: delta of the new file against that signature")
        run(["delta", sig, new, dlt], "delta")
        print("receiver: patch the old file (verified before it appears)")
        subprocess.run(["cp", old, out], check=True)
        run(["patch", out, dlt, out], "patch (in place)")
        same = filecmp.cmp(out, new, shallow=False)
        size = os.path.getsize(new)
        shipped = os.path.getsize(sig) + os.path.getsize(dlt)
        print()
        print(f"file size        {mib(size)}")
        print(f"signature        {mib(os.path.getsize(sig))}")
        print(f"delta            {mib(os.path.getsize(dlt))}")
        print(f"shipped in all   {mib(shipped)} = {100 * shipped / size:.2f}% of the file")
        print(f"result           {'identical to the new file' if same else 'DIFFERENT'}")
        if not same:
            sys.exit(1)

        # The other half: a model store (a local directory, the default
        # store; s3://bucket/prefix works the same way).
        store = os.path.join(d, "store")
        node = os.path.join(d, "node", "model.safetensors")
        print("\n-- model store: push two versions, pull onto a node that has v1 --")
        run(["push", "-q", old, store, "--tag", "v1"], "push v1 (everything is new)")
        run(["pull", "-q", store, node, "--tag", "v1"], "pull v1 onto an empty node")
        before = dir_size(store)
        run(["push", new, store, "--tag", "v2"], "push v2 (only chunks the store lacks)")
        uploaded = dir_size(store) - before
        run(["pull", store, node, "--tag", "v2"], "pull v2 (only chunks the node lacks)")
        run(["ls", store], "ls")
        same = filecmp.cmp(node, new, shallow=False)
        print()
        print(f"store grew by    {mib(uploaded)} for v2 = {100 * uploaded / size:.2f}% of the file")
        print(f"pulled v2        {'identical to the new file' if same else 'DIFFERENT'}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
