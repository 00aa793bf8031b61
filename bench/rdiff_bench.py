"""pydelta in rdiff (librsync) format against rdiff itself, on the same files.

Both tools write librsync files with the same block length and strong sum
length (-b, -S), so their outputs are interchangeable; the script checks
that: pydelta's signature must be byte-identical to rdiff's, rdiff must
apply pydelta's delta and pydelta must apply rdiff's. Each step runs as a
command (``rdiff ...`` vs ``python -m pydelta ...``, start-up included),
--repeat times (median reported), with a hot page cache.

Usage:
    python bench/rdiff_bench.py                       # 1 GiB finetune pair
    python bench/rdiff_bench.py --size-mib 256 --repeat 3
    python bench/rdiff_bench.py --hash md4 --rollsum rollsum

The pair is made with bench/modelgen.py (needs numpy) and cached in --work.
Results are printed and written to bench/results/rdiff_bench-<kind>-<size>.md.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

PY = sys.executable


def timed(cmd: List[str]) -> tuple:
    """(wall seconds, CPU seconds user+sys) of one run of cmd."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace').strip()[:400]}"
        )
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def median_time(cmd: List[str], repeat: int) -> tuple:
    """Median wall time and median CPU time over repeat runs."""
    runs = [timed(cmd) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def library_time(code: str, repeat: int) -> float:
    """Median seconds of a pydelta library call (in a fresh interpreter, timed
    inside it: no interpreter start-up, imports or CLI parsing)."""
    prog = f"import time, warnings, pydelta\nwarnings.simplefilter('ignore')\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for _ in range(repeat):
        p = subprocess.run([PY, "-c", prog], capture_output=True, env=env, check=True)
        runs.append(float(p.stdout.decode().split()[-1]))
    return statistics.median(runs)


def warm(path: str) -> None:
    """Read a file once so every tool starts with it in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--size-mib", type=float, default=1024)
    ap.add_argument("--kind", default="finetune")
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=None, help="default: librsync's rule for OLD")
    ap.add_argument("--strong-len", type=int, default=32, help="-S for both tools (default 32)")
    ap.add_argument("--hash", default="blake2", choices=["blake2", "md4"])
    ap.add_argument("--rollsum", default="rabinkarp", choices=["rabinkarp", "rollsum"])
    ap.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = ap.parse_args()

    rdiff = shutil.which("rdiff")
    if rdiff is None:
        raise SystemExit("rdiff is not installed (apt-get install rdiff)")
    from pydelta.formats import rdiff as prd

    os.makedirs(args.work, exist_ok=True)
    tag = f"{args.kind}-{args.size_mib:g}M"
    old = os.path.join(args.work, f"{tag}.old")
    new = os.path.join(args.work, f"{tag}.new")
    if not (os.path.exists(old) and os.path.exists(new)):
        sys.path.insert(0, HERE)
        from modelgen import make_pair

        print(f"generating {tag} pair in {args.work} ...", flush=True)
        make_pair(args.kind, args.size_mib, old, new)
    size = os.path.getsize(old)
    block = args.block_size or prd.default_block_len(size)
    opts = ["-b", str(block), "-S", str(args.strong_len), "-H", args.hash, "-R", args.rollsum]
    out = {
        k: os.path.join(args.work, f"{tag}.{k}")
        for k in ("r.sig", "p.sig", "r.delta", "p.delta", "out")
    }
    pd = [PY, "-m", "pydelta"]
    for f in (old, new):
        warm(f)

    steps = {
        "signature": (
            [rdiff, "-f", *opts, "signature", old, out["r.sig"]],
            pd + ["signature", "--format", "rdiff", "-q", *opts, old, out["p.sig"]],
        ),
        "delta": (
            [rdiff, "-f", "delta", out["r.sig"], new, out["r.delta"]],
            pd + ["delta", "-q", out["r.sig"], new, out["p.delta"]],
        ),
        # rdiff does not fsync its output; pydelta does by default (--no-fsync to compare)
        "patch": (
            [rdiff, "-f", "patch", old, out["r.delta"], out["out"]],
            pd + ["patch", "-q", "--no-fsync", old, out["r.delta"], out["out"]],
        ),
    }
    lib = {
        "signature": f"pydelta.signature({old!r}, {out['p.sig']!r}, format='rdiff', block_size={block}, "
        f"strong_len={args.strong_len}, rdiff_weak={args.rollsum!r}, rdiff_hash={args.hash!r})",
        "delta": f"pydelta.delta({out['r.sig']!r}, {new!r}, {out['p.delta']!r})",
        "patch": f"pydelta.patch({old!r}, {out['r.delta']!r}, {out['out']!r}, fsync=False)",
    }
    results = {}
    for step, (rcmd, pcmd) in steps.items():
        (r, rc), (p, pc) = median_time(rcmd, args.repeat), median_time(pcmd, args.repeat)
        lt = library_time(lib[step], args.repeat)
        results[step] = (r, p, rc, pc, lt)
        print(
            f"{step:9s}  wall: rdiff {r:7.3f} s  pydelta {p:7.3f} s  rdiff/pydelta {r / p:5.2f}x   "
            f"cpu: rdiff {rc:6.3f} s  pydelta {pc:6.3f} s   library call {lt:6.3f} s",
            flush=True,
        )

    # interchangeable outputs
    assert filecmp.cmp(out["p.sig"], out["r.sig"], shallow=False), "signatures differ"
    subprocess.run([rdiff, "-f", "patch", old, out["p.delta"], out["out"]], check=True)
    assert filecmp.cmp(out["out"], new, shallow=False), "rdiff patch of pydelta's delta is wrong"
    subprocess.run(
        pd + ["patch", "-q", old, out["r.delta"], out["out"]],
        check=True,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert filecmp.cmp(out["out"], new, shallow=False), "pydelta patch of rdiff's delta is wrong"
    sizes = {k: os.path.getsize(out[k]) for k in ("r.sig", "r.delta", "p.delta")}
    print(
        f"signature {sizes['r.sig']} bytes (identical); delta: rdiff {sizes['r.delta']} bytes, "
        f"pydelta {sizes['p.delta']} bytes; outputs cross-checked"
    )

    lines = [
        f"# pydelta (rdiff format) vs rdiff: {args.kind} pair, {size / (1 << 20):.0f} MiB",
        "",
        f"block {block}, -S {args.strong_len}, -H {args.hash}, -R {args.rollsum}; "
        f"median of {args.repeat}, hot page cache, commands incl. start-up; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end (wall times suffer on a busy machine; "
        "CPU = user + sys of the command).",
        "",
        "| step | rdiff s | pydelta s | rdiff / pydelta | CPU s rdiff | CPU s pydelta | pydelta library call s |",
        "|---|---|---|---|---|---|---|",
    ]
    for step, (r, p, rc, pc, lt) in results.items():
        lines.append(
            f"| {step} | {r:.3f} | {p:.3f} | {r / p:.2f}x | {rc:.3f} | {pc:.3f} | {lt:.3f} |"
        )
    lines += [
        "",
        f"Signature {sizes['r.sig']} bytes, byte-identical. Delta: rdiff {sizes['r.delta']} bytes, "
        f"pydelta {sizes['p.delta']} bytes. rdiff applied pydelta's delta and pydelta applied "
        "rdiff's, both byte-exact. Patch: pydelta with --no-fsync (rdiff does not fsync); it "
        "still writes a temporary file, renames it and hashes the result. The last column is the "
        "library call alone (no interpreter start-up, imports or CLI parsing).",
        "",
    ]
    if not args.no_write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"rdiff_bench-{tag}.md")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
