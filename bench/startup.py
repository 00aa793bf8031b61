"""Start-up cost of the ``pydelta`` command and of the far end of a sync.

Runs a few cheap commands many times and reports the best wall and CPU time
of each, plus the import time of typer and of ``pydelta.cli``
(``python -X importtime``):

* ``--version`` (target < 60 ms: no typer, no library beyond the backend);
* ``info /nonexistent`` and ``delta --help`` (the CLI parses, the work
  begins; target < 100 ms);
* ``sync -e false ...``: the client up to starting ssh (which fails at once);
* ``serve``: ``pydelta serve`` started as ssh starts it, timed until it has
  answered the client's hello - the far end's share of every sync.

Used to choose the typer range in ``pyproject.toml`` (see
docs/PACKAGING.md); rerun it in a venv with the candidate typer before
raising the upper bound::

    .venv/bin/pip install 'typer==X.Y' && .venv/bin/python bench/startup.py

``--python`` times another interpreter (e.g. a venv with a regular, not
editable, install: an editable install adds setuptools' import finder,
~20-30 ms, to every Python start).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import time
from typing import List, Optional, Tuple

COMMANDS = (
    ["--version"],
    ["info", "/nonexistent"],
    ["delta", "--help"],
    ["sync", "-e", "false", "/nonexistent", "host:/x"],
)


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(python: str, args: List[str]) -> Tuple[float, float]:
    """(wall s, CPU s) of one ``python -m pydelta ARGS``."""
    before = _cpu()
    t0 = time.perf_counter()
    subprocess.run(
        [python, "-m", "pydelta", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - t0, _cpu() - before


def serve_once(python: str) -> Tuple[float, float]:
    """(wall s, CPU s) from starting ``pydelta serve`` to its answer to hello."""
    hello = json.dumps({"op": "hello", "proto": 1, "features": []}).encode()
    before = _cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-m", "pydelta", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
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


def import_times(python: str, args: List[str]) -> dict:
    """Cumulative import time (us) of typer and pydelta.cli for one run."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-m", "pydelta", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    found: dict = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = (part.strip() for part in line[12:].split("|"))
        if name in ("typer", "pydelta.cli") and cumulative.isdigit():
            found[name] = int(cumulative)
    return found


def typer_version(python: str) -> Optional[str]:
    out = subprocess.run(
        [python, "-c", "from importlib.metadata import version; print(version('typer'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-n", "--runs", type=int, default=10, help="runs per command (best is kept)"
    )
    parser.add_argument("--python", default=sys.executable, help="the interpreter to time")
    opts = parser.parse_args()
    os.environ.pop("PYDELTA_BACKEND", None)
    py = opts.python
    bare = []
    for _ in range(opts.runs):
        t0 = time.perf_counter()
        subprocess.run([py, "-c", "pass"], check=False)
        bare.append(time.perf_counter() - t0)
    print(
        f"python {sys.version.split()[0]} ({py}), typer {typer_version(py)}, best of "
        f"{opts.runs}; load {os.getloadavg()[0]:.1f}; bare 'python -c pass' "
        f"{min(bare) * 1000:.0f} ms"
    )
    # interleaved: every command once per round, so load changes hit all alike
    rows: dict = {" ".join(a): [] for a in COMMANDS}
    rows["serve (until hello answered)"] = []
    for _ in range(opts.runs):
        for args in COMMANDS:
            rows[" ".join(args)].append(run_once(py, list(args)))
        rows["serve (until hello answered)"].append(serve_once(py))
    for label, runs in rows.items():
        args = label.split() if not label.startswith("serve") else ["serve"]
        imports = import_times(py, args) if not label.startswith("serve") else {}
        print(
            f"  pydelta {label:<36} wall {min(w for w, _ in runs) * 1000:5.0f} ms"
            f"  CPU {min(c for _, c in runs) * 1000:5.0f} ms"
            f"  import typer {imports.get('typer', 0) / 1000:5.1f} ms"
            f"  pydelta.cli {imports.get('pydelta.cli', 0) / 1000:5.1f} ms"
        )


if __name__ == "__main__":
    main()
