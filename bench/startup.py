"""Start-up cost of the ``pydelta`` command and of the far end of a sync.

Measures what users get: a wheel of this tree is built and installed, with
its dependencies, into a fresh venv (a regular install, as ``pip install
pydelta-sync`` makes), and the ``pydelta`` script of that venv is timed;
the interpreter running this harness (normally the dev venv, an *editable*
install) is timed beside it, labelled: an editable install adds setuptools'
import finder (pathlib, urllib, ...) to every Python start.

Each case runs ``-n`` times, the two installs alternating within every
round (so load changes hit both alike); the table gives the median wall and
CPU time. Cases (tiny inputs, so the time is the start-up plus the start of
the work):

* ``--version`` (target < 60 ms: no typer, no library beyond the backend);
* ``info``, ``signature``, ``delta``, ``patch`` of a 64 KiB file (target
  < 100 ms for the work to begin);
* ``sync -e false``: the client up to starting ssh (which fails at once);
* ``serve``: ``pydelta serve`` started as ssh starts it, timed until it has
  answered the client's hello - the far end's share of every sync;
* ``delta --help`` (typer's path: help, errors, completion).

A second table splits each case's import time (``python -X importtime``,
median of 5 runs, installed wheels) by who pays it: what Python imports
before pydelta's first module (its own start, site), the command line
layer (typer and its click, rich), pydelta's CLI modules, the library, the
standard library and other dependencies (cffi, zstandard, ...); then the
largest modules.

    .venv/bin/python bench/startup.py -n 21 --ref REV --out bench/results/startup.md

``--ref REV`` also installs a wheel of git revision REV (e.g. before a
change) and times it in the same rounds; ``--venv DIR`` keeps the venvs
for the next run (only pydelta is reinstalled); ``--no-wheel`` times only
this interpreter. Also used to choose the typer range in
``pyproject.toml`` (docs/PACKAGING.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: (label, arguments, target ms); files are made in the work directory first.
CASES: List[Tuple[str, List[str], Optional[int]]] = [
    ("--version", ["--version"], 60),
    ("info SIG", ["info", "small.sig"], 100),
    ("signature (start of work)", ["signature", "small.bin", "out.sig"], 100),
    ("delta", ["delta", "small.sig", "small.bin", "out.delta"], 100),
    ("patch", ["patch", "small.bin", "small.delta", "out.bin", "--no-fsync"], 100),
    ("sync client (-e false)", ["sync", "-e", "false", "small.bin", "host:/x"], 100),
    ("serve (to its hello)", ["serve"], 100),
    ("delta --help (typer)", ["delta", "--help"], None),
]

STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))

#: import-time categories, in the order shown
GROUPS = ("python start", "typer/click/rich", "pydelta CLI", "pydelta library", "stdlib", "deps")


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


#: Left out of the commands' environment: a user's shell has none of these
#: (PYTHONDONTWRITEBYTECODE would make the editable tree compile every module at
#: every start).
DROP = ("PYTHONPATH", "PYDELTA_BACKEND", "PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROP}
    env.update(extra or {})
    return env


def run_once(script: str, args: List[str], cwd: str) -> Tuple[float, float]:
    """(wall s, CPU s) of one ``pydelta ARGS``."""
    before = _cpu()
    t0 = time.perf_counter()
    subprocess.run(
        [script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=_env(),
        check=False,
    )
    return time.perf_counter() - t0, _cpu() - before


def serve_once(script: str, args: List[str], cwd: str) -> Tuple[float, float]:
    """(wall s, CPU s) from starting ``pydelta serve`` to its answer to hello."""
    hello = json.dumps({"op": "hello", "proto": 1, "features": []}).encode()
    before = _cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"PDSYNC1\n" + struct.pack(">cI", b"J", len(hello)) + hello)
    proc.stdin.flush()
    got = proc.stdout.read(8 + 5)  # its magic and the reply's frame head
    size = struct.unpack(">I", got[9:13])[0] if len(got) == 13 else 0
    reply = proc.stdout.read(size)
    wall = time.perf_counter() - t0
    proc.stdin.close()
    proc.wait()
    if b'"ok":true' not in reply:
        raise SystemExit(f"pydelta serve did not answer hello: {got + reply!r}")
    return wall, _cpu() - before


def _group(name: str) -> str:
    top = name.split(".")[0]
    if top in ("typer", "click", "rich", "shellingham", "pygments", "markdown_it", "mdurl"):
        return "typer/click/rich"
    if name == "pydelta.cli" or name.startswith(("pydelta._cli", "pydelta.__main__")):
        return "pydelta CLI"
    if top == "pydelta":
        return "pydelta library"
    if top in STDLIB or (top.startswith("_") and top != "_cffi_backend"):
        return "stdlib"
    return "deps"


def import_split(
    script: str, args: List[str], cwd: str
) -> Tuple[Dict[str, float], Dict[str, float]]:
    """Self import time (ms) per group for one ``pydelta ARGS`` (``-X importtime``),
    and per module. "python start" is everything imported before pydelta's first
    module (the interpreter's own start, site, an editable install's finder)."""
    proc = subprocess.run(
        [script, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=_env({"PYTHONPROFILEIMPORTTIME": "1"}),
        text=True,
        check=False,
    )
    split = dict.fromkeys(GROUPS, 0.0)
    per_module: Dict[str, float] = {}
    pending: List[Tuple[str, int]] = []  # a top-level import's subtree comes before it
    started = False
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, _, name = line[12:].split("|")
        if not self_us.strip().isdigit():
            continue
        depth = (len(name) - len(name.lstrip())) // 2
        pending.append((name.strip(), int(self_us)))
        if depth <= 0:
            started = started or name.strip().startswith("pydelta")
            for mod, us in pending:
                split[_group(mod) if started else "python start"] += us / 1000
                if started:
                    per_module[mod] = per_module.get(mod, 0.0) + us / 1000
            pending = []
    return split, per_module


def _wheel(src: str, wheels: str) -> str:
    """Build the wheel of the tree at ``src`` into ``wheels`` (emptied first); its path."""
    for f in os.listdir(wheels) if os.path.isdir(wheels) else []:
        os.unlink(os.path.join(wheels, f))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, src], check=True
    )
    (wheel,) = [os.path.join(wheels, f) for f in os.listdir(wheels) if f.endswith(".whl")]
    return wheel


def build_installed(work: str, ref: Optional[str] = None) -> str:
    """Build a wheel of this tree (or of git revision ``ref``) and install it into a
    fresh venv under ``work``; its ``pydelta`` script. A venv kept from an earlier
    run (``--venv``) is reused: only pydelta is reinstalled."""
    src = ROOT
    if ref is not None:
        src = os.path.join(work, "src")
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        archive = subprocess.run(
            ["git", "-C", ROOT, "archive", ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    wheel = _wheel(src, os.path.join(work, "wheel"))
    venv = os.path.join(work, "venv")
    pip = os.path.join(venv, "bin", "pip")
    if os.path.exists(pip):
        subprocess.run([pip, "install", "-q", "--no-deps", "--force-reinstall", wheel], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([pip, "install", "-q", wheel], check=True)
    return os.path.join(venv, "bin", "pydelta")


def make_inputs(script: str, cwd: str) -> None:
    with open(os.path.join(cwd, "small.bin"), "wb") as fh:
        fh.write(os.urandom(64 << 10))
    for args in (["signature", "small.bin", "small.sig"],
                 ["delta", "small.sig", "small.bin", "small.delta"]):  # fmt: skip
        subprocess.run([script, *args], cwd=cwd, check=True)


def version_of(python: str, dist: str) -> str:
    out = subprocess.run(
        [python, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "-"


def bare_python(python: str, cwd: str, *flags: str) -> float:
    """Wall time of ``python FLAGS -c pass``: the floor under every command
    (``-S``: without ``site``, i.e. without the venv's ``.pth`` files)."""
    t0 = time.perf_counter()
    subprocess.run([python, *flags, "-c", "pass"], cwd=cwd, env=_env(), check=False)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=21, help="runs per case (median kept)")
    parser.add_argument("--no-wheel", action="store_true", help="time only this interpreter")
    parser.add_argument(
        "--venv", help="keep the installed venv here (reused, pydelta reinstalled, next time)"
    )
    parser.add_argument(
        "--ref", help="also time a wheel of this git revision (e.g. the code before a change)"
    )
    parser.add_argument("--out", help="also write the report (Markdown) to this file")
    opts = parser.parse_args()
    dev = os.path.join(os.path.dirname(sys.executable), "pydelta")
    with tempfile.TemporaryDirectory(prefix="pydelta-startup-") as work:
        cwd = os.path.join(work, "run")  # not the source tree: the installed package is timed
        os.mkdir(cwd)
        scripts: Dict[str, str] = {}
        if not opts.no_wheel:
            if opts.ref:
                base = os.path.join(opts.venv or work, "ref")
                scripts[f"installed wheel @{opts.ref}"] = build_installed(base, opts.ref)
            scripts["installed wheel"] = build_installed(opts.venv or work)
        scripts["editable (dev venv)"] = dev
        # byte-compiled, as a wheel's install is (the tree may have been run without)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "pydelta")],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        make_inputs(dev, cwd)
        load0 = os.getloadavg()
        times: Dict[Tuple[str, str], List[Tuple[float, float]]] = {}
        bare: Dict[str, List[float]] = {k: [] for k in scripts}
        bare_s: Dict[str, List[float]] = {k: [] for k in scripts}
        for _ in range(opts.runs):
            for kind, script in scripts.items():
                py = os.path.join(os.path.dirname(script), "python")
                bare[kind].append(bare_python(py, cwd))
                bare_s[kind].append(bare_python(py, cwd, "-S"))
                for label, args, _target in CASES:
                    once: Callable = serve_once if args == ["serve"] else run_once
                    times.setdefault((label, kind), []).append(once(script, args, cwd))
        split_kinds = [k for k in scripts if k.startswith("installed")] or list(scripts)
        splits: Dict[Tuple[str, str], Dict[str, float]] = {}
        biggest: Dict[str, List[Tuple[str, float]]] = {}
        for kind in split_kinds:
            for label, args, _t in CASES:
                if args == ["serve"]:
                    continue
                runs = [import_split(scripts[kind], args, cwd) for _ in range(5)]
                splits[(kind, label)] = {
                    g: statistics.median(s[g] for s, _ in runs) for g in GROUPS
                }
                if kind == split_kinds[-1]:
                    mods = {m for _, per in runs for m in per}
                    med = {m: statistics.median(per.get(m, 0.0) for _, per in runs) for m in mods}
                    biggest[label] = sorted(med.items(), key=lambda kv: -kv[1])[:6]
        first = scripts[split_kinds[-1]]
        load1 = os.getloadavg()
        typer_v = version_of(os.path.join(os.path.dirname(first), "python"), "typer")
    kinds = list(scripts)
    out = [
        f"# CLI start-up ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"python {sys.version.split()[0]}, typer {typer_v}; medians of "
        f"{opts.runs} runs, the installs alternating; load {load0[0]:.2f} before, "
        f"{load1[0]:.2f} after. Bare `python -c pass`: "
        + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in bare.items())
        + "; `python -S -c pass`: "
        + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms" for k, v in bare_s.items())
        + ".",
        "",
        "Start-up (wall ms, CPU ms in brackets):",
        "",
        "| command | " + " | ".join(kinds) + " | target |",
        "|---|" + "---|" * len(kinds) + "---|",
    ]
    for label, _args, target in CASES:
        cells = []
        for kind in kinds:
            runs = times[(label, kind)]
            wall = statistics.median(w for w, _ in runs) * 1000
            cpu = statistics.median(c for _, c in runs) * 1000
            cells.append(f"{wall:.0f} ({cpu:.0f})")
        tgt = f"< {target} ms" if target else "-"
        out.append(f"| pydelta {label} | " + " | ".join(cells) + f" | {tgt} |")
    out += [
        "",
        "Import time by group (`python -X importtime`, self ms summed, median of 5 runs; "
        "importtime's own overhead included; 'python start' is what Python imports before "
        "pydelta's first module):",
        "",
        "| command | install | " + " | ".join(GROUPS) + " | total |",
        "|---|---|" + "---|" * (len(GROUPS) + 1),
    ]
    for label, _args, _t in CASES:
        for kind in split_kinds:
            split = splits.get((kind, label))
            if split is None:
                continue
            cells = " | ".join(f"{split[g]:.1f}" for g in GROUPS)
            out.append(f"| pydelta {label} | {kind} | {cells} | {sum(split.values()):.1f} |")
    out += ["", f"Largest self import times after Python's start ({split_kinds[-1]}, ms):", ""]
    for label, top in biggest.items():
        out.append(f"- pydelta {label}: " + ", ".join(f"{m} {ms:.1f}" for m, ms in top))
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if opts.out:
        with open(opts.out, "w", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
