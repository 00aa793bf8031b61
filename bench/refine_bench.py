"""Refinement rounds (issue 14.1): ``pydelta sync`` with and without them, against rsync.

Over the same loopback OpenSSH server as bench/sync_bench.py (whose harness
this reuses: Link, run_one, prepare_dest), push the modelgen pairs
*scattered* (300 64-byte edits in place), *finetune* and *retune*, with

    pydelta            ``pydelta sync --no-fsync`` (refinement on, the default)
    pydelta-1round     the same with ``--no-refine`` (the single-round sync)
    rsync              ``rsync --no-whole-file -t --stats``

interleaved within each repeat. Bytes: the tool's own count (pydelta's
"sent/received", rsync's --stats totals) and ssh's (both directions,
encrypted). For reference, the file-based xdelta3 and ``zstd --patch-from``
delta sizes of each pair (both need OLD and NEW in one place). Reports
medians, and the ratios refined/1-round (time) and refined/rsync (bytes);
prints the machine's load (``uptime``) before and after.

Usage:
    python bench/refine_bench.py                              # 1 GiB, repeat 3
    python bench/refine_bench.py --size 64 --repeat 1 --kinds scattered
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sync_bench  # noqa: E402
from sshd_server import LoopbackSSHD  # noqa: E402
from sync_bench import PYDELTA, Case, Link, SyncTool, parse_pydelta, parse_rsync  # noqa: E402

KINDS = ("scattered", "finetune", "retune")


def tools(remote: str = PYDELTA) -> List[SyncTool]:
    def pydelta(extra: List[str]):
        return lambda link, src, dest: [
            PYDELTA, "sync", "-e", link.ssh_cmd, "--remote-cmd", remote, "--no-progress",
            "--no-fsync", *extra, src, dest,
        ]  # fmt: skip

    return [
        SyncTool("pydelta", pydelta([]), parse_pydelta, "refinement on (default), --no-fsync"),
        SyncTool("pydelta-1round", pydelta(["--no-refine"]), parse_pydelta, "--no-refine"),
        SyncTool(
            "rsync",
            lambda link, src, dest: [
                "rsync",
                "--no-whole-file",
                "-t",
                "--stats",
                "-e",
                link.ssh_cmd,
                src,
                dest,
            ],  # fmt: skip
            parse_rsync,
            "--no-whole-file -t",
        ),
    ]


def file_deltas(old: str, new: str, scratch: str) -> Dict[str, int]:
    """Delta sizes of the one-shot tools that see both files."""
    out = os.path.join(scratch, "ref.delta")
    sizes = {}
    for name, argv in (
        ("xdelta3", ["xdelta3", "-e", "-f", "-s", old, new, out]),
        ("zstd", ["zstd", "-q", "-f", "--long=31", f"--patch-from={old}", new, "-o", out]),
    ):
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=1800)
            sizes[name] = os.path.getsize(out)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"  {name}: {e}", flush=True)
        finally:
            if os.path.exists(out):
                os.unlink(out)
    return sizes


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=1024, help="file size in MiB (default 1024)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--work", default=os.path.join(HERE, "work"), help="pair cache")
    ap.add_argument("--no-reference", action="store_true", help="skip xdelta3 / zstd")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    print("load before:", uptime(), flush=True)
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.work, prefix="refine-") as root:
        with LoopbackSSHD(os.path.join(root, "sshd")) as srv:
            link = Link.make(srv, root)
            # the far end's signature cache in the scratch dir, where run_one waits
            # for its entry (as sync_bench does)
            cache = shlex.quote(os.path.join(root, "sigcache"))
            remote = f"env PYDELTA_SIG_CACHE={cache} {PYDELTA}"
            dest_dir = os.path.join(root, "dest")
            os.makedirs(dest_dir)
            ts = tools(remote)
            for kind in args.kinds.split(","):
                old, new = sync_bench.ensure_pair(args.work, args.size, kind, print)
                case = Case(kind, kind, new, old)
                sync_bench.warm_cache([old, new])
                runs: Dict[str, List[Dict[str, Any]]] = {t.name: [] for t in ts}
                for rep in range(args.repeat):
                    for t in ts:
                        r = sync_bench.run_one(link, t, case, dest_dir, root)
                        runs[t.name].append(r)
                        print(
                            f"  {kind} #{rep} {t.name:15s} {r['seconds']:7.2f} s  "
                            f"tool {sum(r['reported'] or [0]):>12,}  ssh {r['ssh_bytes']:>12,}",
                            flush=True,
                        )
                row: Dict[str, Any] = {"kind": kind}
                for t in ts:
                    rs = runs[t.name]
                    row[t.name] = {
                        "seconds": statistics.median(r["seconds"] for r in rs),
                        "bytes": statistics.median(sum(r["reported"]) for r in rs),
                        "ssh_bytes": statistics.median(r["ssh_bytes"] for r in rs),
                    }
                if not args.no_reference:
                    row["reference"] = file_deltas(old, new, root)
                rows.append(row)
    print("load after:", uptime(), flush=True)
    mib = 1 << 20
    print(
        f"\n| pair {args.size:g} MiB | tool | seconds | bytes (tool) | ssh bytes | "
        "time / 1-round | bytes / rsync |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        one, rs = row["pydelta-1round"], row["rsync"]
        for name in ("pydelta", "pydelta-1round", "rsync"):
            m = row[name]
            print(
                f"| {row['kind']} | {name} | {m['seconds']:.2f} | {m['bytes'] / mib:.3f} MiB | "
                f"{m['ssh_bytes'] / mib:.3f} MiB | {m['seconds'] / one['seconds']:.2f} | "
                f"{m['bytes'] / rs['bytes']:.3f} |"
            )
        for name, size in row.get("reference", {}).items():
            print(f"| {row['kind']} | {name} (file delta) | - | {size / mib:.3f} MiB | - | - | "
                  f"{size / rs['bytes']:.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
