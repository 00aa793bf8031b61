"""Start-up cost of the ``pydelta`` command with the installed typer.

Runs a few cheap commands many times and reports the best wall and CPU time
of each, plus the import time of typer and of ``pydelta.cli``
(``python -X importtime``). Used to choose the typer range in
``pyproject.toml`` (see docs/PACKAGING.md); rerun it in a venv with the
candidate typer before raising the upper bound::

    .venv/bin/pip install 'typer==X.Y' && .venv/bin/python bench/startup.py
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from importlib.metadata import version

COMMANDS = (["--version"], ["info", "/nonexistent"], ["delta", "--help"])


def run_once(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one ``python -m pydelta ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pydelta", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def import_times(args: list[str]) -> dict[str, int]:
    """Cumulative import time (us) of typer and pydelta.cli for one run."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pydelta", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    found: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = (part.strip() for part in line[12:].split("|"))
        if name in ("typer", "pydelta.cli") and cumulative.isdigit():
            found[name] = int(cumulative)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", "--runs", type=int, default=10, help="runs per command (best is kept)"
    )
    opts = parser.parse_args()
    os.environ.pop("PYDELTA_BACKEND", None)
    print(f"python {sys.version.split()[0]}, typer {version('typer')}, best of {opts.runs}")
    for args in COMMANDS:
        runs = [run_once(args) for _ in range(opts.runs)]
        imports = min((import_times(args) for _ in range(3)), key=lambda d: d.get("typer", 0))
        print(
            f"  pydelta {' '.join(args):<18} wall {min(w for w, _ in runs) * 1000:5.0f} ms"
            f"  CPU {min(c for _, c in runs) * 1000:5.0f} ms"
            f"  import typer {imports.get('typer', 0) / 1000:5.1f} ms"
            f"  pydelta.cli {imports.get('pydelta.cli', 0) / 1000:5.1f} ms"
        )


if __name__ == "__main__":
    main()
