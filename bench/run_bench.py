"""Side-by-side benchmark: pydelta against rdiff, rsync, xdelta3 and zstd.

For each model-like pair (see modelgen.py) and each tool, in one run: wall
time of every step (median of --repeat runs), peak RSS of every step (the
child's own ru_maxrss), the size of what is shipped, and a byte-for-byte
check of every output. Anchor tools that are not installed are skipped with
a note. Results go to bench/results/ as results.md, results.json and PNG
charts.

Usage:
    python bench/run_bench.py                         # 256 MiB and 1 GiB, all kinds
    python bench/run_bench.py --sizes 64 --kinds finetune --repeat 1   # quick
    python bench/run_bench.py --big 4096              # adds a 4 GiB finetune point
    python bench/run_bench.py --sizes '' --big 10240 --repeat 3   # the 10 GiB point only
        (pydelta and rdiff, --big-tools; needs ~32 GiB free, ~12 with the pair made; it is
        deleted afterwards unless --keep-big)

Every pair times pydelta's patch twice: with --no-fsync against plain
``rdiff patch`` (neither makes the result durable), and with its default
fsync against ``rdiff patch ... && sync FILE`` (the same durability).
Tools alternate within each repeat.

Pairs are cached in --work (default bench/work/) between runs.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from modelgen import KINDS, make_pair  # noqa: E402

PY = sys.executable


TIMEOUT = 300.0


def run_measured(cmd: List[str], stdout: Optional[str] = None) -> tuple:
    """Run cmd; returns (seconds, peak RSS in bytes). Raises on failure.

    Peak RSS comes from GNU time (a small C program) so that the memory of
    this Python process, which a forked child inherits until exec, is not
    counted; without GNU time the child's own ru_maxrss is used.
    """
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    fd, rss_file = tempfile.mkstemp(prefix="pydelta-bench-rss-")
    os.close(fd)
    full = ["/usr/bin/time", "-f", "%M", "-o", rss_file, *cmd] if gnu_time else cmd
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL
    try:
        t = time.perf_counter()
        try:
            p = subprocess.run(full, stdout=out, stderr=subprocess.PIPE, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {TIMEOUT:.0f} s") from None
        dt = time.perf_counter() - t
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace")
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[:300]}")
        if gnu_time:
            with open(rss_file) as f:
                rss = int(f.read().split()[-1]) * 1024
        else:
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
        os.unlink(rss_file)
    return dt, rss


class Tool:
    """One tool's steps. Each step returns a command list (and optional stdout file)."""

    name = ""
    binary = ""
    #: steps in order: name -> function(paths) -> (cmd, stdout_path or None)
    steps: Dict[str, Callable] = {}
    #: files whose sizes count as "shipped"
    shipped: List[str] = []

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def prepare(self, p: dict) -> None:
        """Set-up before a patch step that is not timed (e.g. copying old)."""


class Pydelta(Tool):
    name = "pydelta"
    binary = PY
    shipped = ["sig", "delta"]

    def __init__(self) -> None:
        cli = [PY, "-m", "pydelta"]
        self.steps = {
            "signature": lambda p: (cli + ["signature", "--no-progress", p["old"], p["sig"]], None),
            "delta": lambda p: (
                cli + ["delta", "--no-progress", p["sig"], p["new"], p["delta"]],
                None,
            ),
            # --no-fsync: the anchors do not fsync either (pydelta's default does)
            "patch": lambda p: (
                cli + ["patch", "--no-progress", "--no-fsync", p["old"], p["delta"], p["out"]],
                None,
            ),
            # the default: the result is fsynced before it replaces the target
            "patch+fsync": lambda p: (
                cli + ["patch", "--no-progress", p["old"], p["delta"], p["out"]],
                None,
            ),
        }


class Rdiff(Tool):
    name = "rdiff"
    binary = "rdiff"
    shipped = ["sig", "delta"]

    def __init__(self) -> None:
        self.steps = {
            "signature": lambda p: (["rdiff", "-f", "signature", p["old"], p["sig"]], None),
            "delta": lambda p: (["rdiff", "-f", "delta", p["sig"], p["new"], p["delta"]], None),
            "patch": lambda p: (["rdiff", "-f", "patch", p["old"], p["delta"], p["out"]], None),
            # the same durability as pydelta's default: rdiff patch && sync FILE
            "patch+fsync": lambda p: (
                [
                    "sh",
                    "-c",
                    'rdiff -f patch "$1" "$2" "$3" && sync "$3"',
                    "rdiff",
                    p["old"],
                    p["delta"],
                    p["out"],
                ],
                None,
            ),
        }


class RsyncBatch(Tool):
    """rsync's own delta: --only-write-batch computes signature+delta of new
    against a copy of old (dest), then --read-batch applies it."""

    name = "rsync"
    binary = "rsync"
    shipped = ["delta"]

    def __init__(self) -> None:
        self.steps = {
            "delta": lambda p: (
                [
                    "rsync",
                    "--no-whole-file",
                    f"--only-write-batch={p['delta']}",
                    p["new"],
                    p["out"],
                ],
                None,
            ),
            "patch": lambda p: (["rsync", f"--read-batch={p['delta']}", p["out"]], None),
        }

    def prepare(self, p: dict) -> None:
        shutil.copyfile(p["old"], p["out"])


class Xdelta3(Tool):
    """xdelta3 with its defaults (64 MiB source window, secondary compression)."""

    name = "xdelta3"
    binary = "xdelta3"
    shipped = ["delta"]

    def __init__(self) -> None:
        self.steps = {
            "delta": lambda p: (
                ["xdelta3", "-e", "-f", "-s", p["old"], p["new"], p["delta"]],
                None,
            ),
            "patch": lambda p: (
                ["xdelta3", "-d", "-f", "-s", p["old"], p["delta"], p["out"]],
                None,
            ),
        }


class ZstdPatch(Tool):
    name = "zstd"
    binary = "zstd"
    shipped = ["delta"]

    def __init__(self) -> None:
        def long_flag(p: dict) -> str:
            return f"--long={max(27, min(31, (os.path.getsize(p['new']) - 1).bit_length()))}"

        self.steps = {
            "delta": lambda p: (
                [
                    "zstd",
                    "-q",
                    "-f",
                    long_flag(p),
                    f"--patch-from={p['old']}",
                    p["new"],
                    "-o",
                    p["delta"],
                ],
                None,
            ),
            "patch": lambda p: (
                [
                    "zstd",
                    "-d",
                    "-q",
                    "-f",
                    long_flag(p),
                    f"--patch-from={p['old']}",
                    p["delta"],
                    "-o",
                    p["out"],
                ],
                None,
            ),
        }


TOOLS = [Pydelta, Rdiff, RsyncBatch, Xdelta3, ZstdPatch]


def bench_pair(work: str, size: float, kind: str, tools: List[Tool], repeat: int, log) -> dict:
    tag = f"{kind}-{size:g}M"
    old = os.path.join(work, f"{tag}.old")
    new = os.path.join(work, f"{tag}.new")
    if not (os.path.exists(old) and os.path.exists(new)):
        log(f"generating {tag} ...")
        make_pair(kind, size, old, new)
    res = {
        "kind": kind,
        "size_mib": size,
        "old_size": os.path.getsize(old),
        "new_size": os.path.getsize(new),
        "tools": {},
    }
    paths = {}
    entries: Dict[str, dict] = {}
    for tool in tools:
        p = {k: os.path.join(work, f"{tag}.{tool.name}.{k}") for k in ("sig", "delta", "out")}
        p.update(old=old, new=new)
        paths[tool.name] = p
        entries[tool.name] = {"steps": {}}
    # tools alternate within each repeat, so a busy moment hits them alike
    for _ in range(repeat):
        for tool in tools:
            p, entry = paths[tool.name], entries[tool.name]
            if "error" in entry:
                continue
            try:
                for step, fn in tool.steps.items():
                    if step.startswith("patch"):
                        tool.prepare(p)
                    elif step == "delta" and "signature" not in tool.steps:
                        tool.prepare(p)
                    cmd, stdout = fn(p)
                    dt, rss = run_measured(cmd, stdout)
                    s = entry["steps"].setdefault(step, {"times": [], "rss": []})
                    s["times"].append(dt)
                    s["rss"].append(rss)
                    if step.startswith("patch"):
                        same = filecmp.cmp(p["out"], new, shallow=False)
                        os.unlink(p["out"])  # (one result on disk at a time)
                        if not same:
                            raise RuntimeError(f"{step}: output differs from the new file")
            except Exception as e:  # an anchor failing must not stop the run
                entries[tool.name] = {"error": str(e)}
    for tool in tools:
        p, entry = paths[tool.name], entries[tool.name]
        if "error" not in entry:
            for s in entry["steps"].values():
                s["time"] = statistics.median(s["times"])
                s["peak_rss"] = max(s["rss"])
            entry["shipped"] = sum(os.path.getsize(p[k]) for k in tool.shipped)
            entry["verified"] = True
        for k in ("sig", "delta", "out"):
            if os.path.exists(p[k]):
                os.unlink(p[k])
        res["tools"][tool.name] = entry
        log(
            f"  {tag} {tool.name}: "
            + (
                entry.get("error")
                or ", ".join(
                    f"{k} {v['time']:.2f}s/{v['peak_rss'] / 2**20:.0f}MiB"
                    for k, v in entry["steps"].items()
                )
                + f", shipped {entry['shipped'] / 2**20:.2f} MiB"
            )
        )
    return res


def fmt_ratio(a: Optional[float], b: Optional[float]) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def write_markdown(results: List[dict], notes: List[str], path: str) -> None:
    lines = ["# pydelta benchmark results", ""]
    lines.append(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        "hot page cache; times are medians, RSS is the peak of each step."
    )
    lines.append("")
    for n in notes:
        lines.append(f"- {n}")
    if notes:
        lines.append("")
    lines.append(
        "| pair | tool | signature s | delta s | patch s | patch+fsync s | peak RSS MiB (sig/delta/patch) | shipped MiB | % of file | delta time vs rdiff |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rd = r["tools"].get("rdiff", {}).get("steps", {})
        for name, e in r["tools"].items():
            pair = f"{r['kind']} {r['size_mib']:g} MiB"
            if "error" in e:
                lines.append(f"| {pair} | {name} | error: {e['error'][:80]} | | | | | | | |")
                continue
            st = e["steps"]

            def t(step: str) -> str:
                return f"{st[step]['time']:.2f}" if step in st else "-"

            rss = "/".join(
                f"{st[s]['peak_rss'] / 2**20:.0f}" if s in st else "-"
                for s in ("signature", "delta", "patch")
            )
            d_rd = fmt_ratio(st.get("delta", {}).get("time"), rd.get("delta", {}).get("time"))
            lines.append(
                f"| {pair} | {name} | {t('signature')} | {t('delta')} | {t('patch')} | "
                f"{t('patch+fsync')} | {rss} | "
                f"{e['shipped'] / 2**20:.2f} | {100 * e['shipped'] / r['new_size']:.2f}% | {d_rd} |"
            )
    lines.append("")
    lines.append(
        "Ratios pydelta / rdiff per step (lower is faster; patch+fsync: pydelta's "
        "default against `rdiff patch && sync FILE`):"
    )
    lines.append("")
    lines.append("| pair | signature | delta | patch | patch+fsync | shipped |")
    lines.append("|---|---|---|---|---|---|")
    for r in results:
        pd = r["tools"].get("pydelta", {})
        rd = r["tools"].get("rdiff", {})
        if "steps" not in pd or "steps" not in rd:
            continue
        cells = [
            fmt_ratio(pd["steps"].get(s, {}).get("time"), rd["steps"].get(s, {}).get("time"))
            for s in ("signature", "delta", "patch", "patch+fsync")
        ]
        cells.append(fmt_ratio(pd["shipped"], rd["shipped"]))
        lines.append(f"| {r['kind']} {r['size_mib']:g} MiB | " + " | ".join(cells) + " |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_charts(results: List[dict], outdir: str) -> List[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    sizes = sorted({r["size_mib"] for r in results})
    for size in sizes:
        rs = [r for r in results if r["size_mib"] == size]
        tools = [
            t
            for t in ("pydelta", "rdiff", "rsync", "xdelta3", "zstd")
            if any("steps" in r["tools"].get(t, {}) for r in rs)
        ]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        width = 0.8 / max(1, len(tools))
        for i, tool in enumerate(tools):
            xs, total, shipped = [], [], []
            for j, r in enumerate(rs):
                e = r["tools"].get(tool, {})
                if "steps" not in e:
                    continue
                xs.append(j + i * width)
                total.append(sum(s["time"] for s in e["steps"].values()))
                shipped.append(100 * e["shipped"] / r["new_size"])
            axes[0].bar(xs, total, width, label=tool)
            axes[1].bar(xs, shipped, width, label=tool)
        for ax, title in ((axes[0], "total time, all steps (s)"), (axes[1], "shipped, % of file")):
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rs))])
            ax.set_xticklabels([r["kind"] for r in rs])
            ax.set_title(f"{title} - {size:g} MiB pairs")
        axes[1].set_yscale("log")
        axes[0].legend()
        fig.tight_layout()
        name = f"chart-{size:g}M.png"
        fig.savefig(os.path.join(outdir, name), dpi=90)
        plt.close(fig)
        made.append(name)
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,1024", help="pair sizes in MiB, comma-separated")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument(
        "--big",
        type=float,
        default=0,
        help="also a finetune pair of this many MiB (e.g. 10240: check free space first)",
    )
    ap.add_argument(
        "--big-tools",
        default="pydelta,rdiff",
        help="tools run on the --big pair (the others take minutes there)",
    )
    ap.add_argument(
        "--keep-big", action="store_true", help="keep the --big pair in --work afterwards"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tools", default=",".join(t.name for t in TOOLS))
    ap.add_argument("--work", default=os.path.join(HERE, "work"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per command")
    a = ap.parse_args()
    globals()["TIMEOUT"] = a.timeout
    os.makedirs(a.work, exist_ok=True)
    os.makedirs(a.out, exist_ok=True)
    notes = [
        "pydelta patch runs with --no-fsync here, as the anchors do not fsync; "
        "pydelta's default fsyncs the result before the rename.",
        "rsync: --only-write-batch / --read-batch, local, so its delta step "
        "includes computing the signature of the old file.",
    ]
    tools = []
    wanted = a.tools.split(",")
    for cls in TOOLS:
        t = cls()
        if t.name not in wanted:
            continue
        if t.available():
            tools.append(t)
        else:
            notes.append(f"{t.name} skipped: `{t.binary}` is not installed")
    for n in notes:
        print(n, file=sys.stderr)
    pairs = [(float(s), k) for s in a.sizes.split(",") if s for k in a.kinds.split(",")]
    if a.big:
        pairs.append((a.big, "finetune"))
        # the pair (unless already there) and one result, with some room
        need = 1.2 * a.big * 2**20
        for end in ("old", "new"):
            if not os.path.exists(os.path.join(a.work, f"finetune-{a.big:g}M.{end}")):
                need += a.big * 2**20
        free = shutil.disk_usage(a.work).free
        if free < need:
            sys.exit(
                f"--big {a.big:g}: needs ~{need / 2**30:.0f} GiB free in {a.work}, has {free / 2**30:.0f}"
            )
    results = []
    for size, kind in pairs:
        big = bool(a.big) and (size, kind) == (a.big, "finetune") and (size, kind) == pairs[-1]
        use = [t for t in tools if t.name in a.big_tools.split(",")] if big else tools
        results.append(
            bench_pair(a.work, size, kind, use, a.repeat, lambda m: print(m, file=sys.stderr))
        )
        if big and not a.keep_big:
            for end in ("old", "new"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(a.work, f"{kind}-{size:g}M.{end}"))
        with open(os.path.join(a.out, "results.json"), "w") as f:
            json.dump({"notes": notes, "results": results}, f, indent=1)
        write_markdown(results, notes, os.path.join(a.out, "results.md"))
    charts = write_charts(results, a.out)
    print(open(os.path.join(a.out, "results.md")).read())
    if charts:
        print("charts:", ", ".join(os.path.join(a.out, c) for c in charts))


if __name__ == "__main__":
    main()
