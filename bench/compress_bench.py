"""Compressed literals: what they save and what they cost, against xdelta3 and zstd.

For each kind of model-like pair (bench/modelgen.py: finetune, retune) this
makes the signature once, then deltas with compression off, zstd only,
16-bit grouping only, both (pydelta's default: the smaller per literal) at a
few levels, and times delta and patch for each. For comparison it runs
``xdelta3 -e -s old new`` and ``zstd --long=31 --patch-from=old new`` on
the same pair (when installed) and reports their sizes and times.

Times are wall-clock seconds on a hot page cache (the best of --repeat
runs for pydelta's), patch without fsync; they are indicative only on a
shared machine.

Usage:
    python bench/compress_bench.py [--size-mib 256] [--kinds finetune,retune]
                                   [--levels 1,3,9] [--dir DIR] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from modelgen import make_pair

import pydelta
from pydelta.formats import literals as _literals
from pydelta.formats import native as fmt

MiB = 1 << 20


def _mib(n: int) -> str:
    return f"{n / MiB:.2f}"


def _timed(fn, repeat: int = 1):
    """(result, best wall time of ``repeat`` runs)."""
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return r, best


def _run_tool(argv, out: Path):
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        return None, dt, r.stderr.strip().splitlines()[-1:] or ["failed"]
    return out.stat().st_size, dt, None


def bench_pair(kind: str, size_mib: float, work: Path, levels, threads: int, repeat: int) -> list:
    old, new = work / f"{kind}.old", work / f"{kind}.new"
    info = make_pair(kind, size_mib, str(old), str(new))
    new_size = info["new_size"]
    sig = work / f"{kind}.sig"
    pydelta.signature(old, sig, threads=threads)
    _ = new.read_bytes() and old.read_bytes()  # warm the page cache
    rows = []
    variants = [("off", False, 3, None)]
    variants += [(f"zstd only, level {lv}", True, lv, (fmt.Z_ZSTD,)) for lv in levels[:1]]
    variants += [
        (f"grouped only, level {lv}", True, lv, (fmt.Z_ZSTD_GROUP16,)) for lv in levels[:1]
    ]
    variants += [(f"best of both, level {lv}", True, lv, None) for lv in levels]
    default_row = None
    for label, compress, level, transforms in variants:
        saved = _literals.TRANSFORMS
        if transforms is not None:
            _literals.TRANSFORMS = transforms
        try:
            out = work / f"{kind}.delta"
            stats, t_delta = _timed(
                lambda: pydelta.delta(
                    sig, new, out, compress=compress, level=level, threads=threads
                ),
                repeat,
            )
            t1 = None
            if compress and transforms is None and level == 3 and threads != 1:
                _, t1 = _timed(
                    lambda: pydelta.delta(
                        sig, new, work / "t1.delta", compress=True, level=3, threads=1
                    ),
                    repeat,
                )
                (work / "t1.delta").unlink()
        finally:
            _literals.TRANSFORMS = saved
        res, t_patch = _timed(
            lambda: pydelta.patch(old, out, work / f"{kind}.out", fsync=False), repeat
        )
        assert res.size == new_size
        row = {
            "pair": kind,
            "variant": label,
            "delta": stats.delta_size,
            "literal": stats.literal,
            "compressed": stats.compressed_literal,
            "t_delta": t_delta,
            "t_delta_1": t1,
            "t_patch": t_patch,
        }
        rows.append(row)
        if compress and transforms is None and level == 3:
            default_row = row
        (work / f"{kind}.out").unlink()
    base = rows[0]
    for r in rows:
        r["vs_off"] = r["delta"] / base["delta"]
    # other tools on the same pair
    if shutil.which("xdelta3"):
        out = work / f"{kind}.xd3"
        size, dt, err = _run_tool(["xdelta3", "-e", "-f", "-s", str(old), str(new), str(out)], out)
        row = {
            "pair": kind,
            "variant": "xdelta3 -e -s old new",
            "delta": size,
            "t_delta": dt,
            "error": err,
        }
        if size is not None:
            back = work / f"{kind}.unxd3"
            t = time.perf_counter()
            r = subprocess.run(
                ["xdelta3", "-d", "-f", "-s", str(old), str(out), str(back)], capture_output=True
            )
            row["t_patch"] = time.perf_counter() - t if r.returncode == 0 else None
            back.unlink(missing_ok=True)
        rows.append(row)
        out.unlink(missing_ok=True)
    if shutil.which("zstd"):
        out = work / f"{kind}.zst"
        size, dt, err = _run_tool(
            ["zstd", "-q", "-f", "--long=31", f"--patch-from={old}", str(new), "-o", str(out)], out
        )
        row = {
            "pair": kind,
            "variant": "zstd --long=31 --patch-from=old new",
            "delta": size,
            "t_delta": dt,
            "error": err,
        }
        if size is not None:
            back = work / f"{kind}.unzst"
            t = time.perf_counter()
            r = subprocess.run(
                [
                    "zstd",
                    "-q",
                    "-f",
                    "-d",
                    "--long=31",
                    f"--patch-from={old}",
                    str(out),
                    "-o",
                    str(back),
                ],
                capture_output=True,
            )
            row["t_patch"] = time.perf_counter() - t if r.returncode == 0 else None
            back.unlink(missing_ok=True)
        rows.append(row)
        out.unlink(missing_ok=True)
    for r in rows:
        r["new_size"] = new_size
        if r.get("delta") is not None and default_row is not None:
            r["vs_default"] = r["delta"] / default_row["delta"]
    for p in (old, new, sig, work / f"{kind}.delta"):
        p.unlink(missing_ok=True)
    return rows


def table(rows: list, size_mib: float) -> str:
    lines = [
        f"### {size_mib:g} MiB pairs",
        "",
        "| pair | variant | delta MiB | % of new | vs off | literal MiB | compressed MiB "
        "| delta s | delta s (1 thread) | patch s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("delta") is None:
            lines.append(
                f"| {r['pair']} | {r['variant']} | failed: {r.get('error')} | | | | | | | |"
            )
            continue

        def f(key, fmt_="{:.2f}"):
            v = r.get(key)
            return "" if v is None else fmt_.format(v)

        lines.append(
            f"| {r['pair']} | {r['variant']} | {_mib(r['delta'])} | "
            f"{100 * r['delta'] / r['new_size']:.2f} | {f('vs_off', '{:.3f}')} | "
            f"{_mib(r['literal']) if 'literal' in r else ''} | "
            f"{_mib(r['compressed']) if 'compressed' in r else ''} | {f('t_delta')} | "
            f"{f('t_delta_1')} | {f('t_patch')} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=float, default=256)
    ap.add_argument("--kinds", default="finetune,retune")
    ap.add_argument(
        "--levels",
        default="3,1,9",
        help="zstd levels; the first is used for the single-transform rows",
    )
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per pydelta timing (the best is shown)"
    )
    a = ap.parse_args()
    levels = [int(x) for x in a.levels.split(",")]
    work = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix="pydelta-zbench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"pydelta {pydelta.__version__}, zstandard {_literals._zstd().__version__} "
        f"(zstd {'.'.join(map(str, _literals.zstandard.ZSTD_VERSION))}), threads={a.threads or os.cpu_count()}",
        file=sys.stderr,
    )
    rows = []
    try:
        for kind in a.kinds.split(","):
            print(f"{kind} {a.size_mib:g} MiB ...", file=sys.stderr, flush=True)
            rows += bench_pair(kind, a.size_mib, work, levels, a.threads, a.repeat)
    finally:
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows, a.size_mib))


if __name__ == "__main__":
    main()
