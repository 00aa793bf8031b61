"""Refresh the README's performance tables from the benchmark harnesses' results.

Every table in README.md that the benchmarks produce sits between two markers::

    <!-- bench-table: bench/results/results.md | 1 GiB pairs -->
    | ... the table ... |
    <!-- /bench-table -->

The first marker names a results file that a harness wrote (bench/run.sh,
bench/sync_bench.py, bench/refine_bench.py, ...) and a line of it: the first
Markdown table at or after the first line containing that text is copied in,
as the harness wrote it. So no figure in those tables is typed by hand:

    python bench/readme_tables.py            # rewrite README.md in place
    python bench/readme_tables.py --check    # exit 1 if a table is stale

A marker whose file or anchor is missing is an error (the README would
otherwise silently keep an old table).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = re.compile(r"^<!-- bench-table: (?P<file>[^|]+?)\s*\|\s*(?P<anchor>.+?)\s*-->$")
END = "<!-- /bench-table -->"


def table_after(path: str, anchor: str) -> List[str]:
    """The first Markdown table at or after the first line of ``path`` containing ``anchor``."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for i, line in enumerate(lines):
        if anchor in line:
            break
    else:
        raise SystemExit(f"readme_tables: {path}: no line contains {anchor!r}")
    start = next((j for j in range(i, len(lines)) if lines[j].startswith("|")), None)
    if start is None:
        raise SystemExit(f"readme_tables: {path}: no table after {anchor!r}")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[start:end]


def refresh(text: str) -> str:
    """The README text with every marked table replaced by its source's table."""
    out: List[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = START.match(lines[i].strip())
        out.append(lines[i])
        i += 1
        if not m:
            continue
        src = os.path.join(ROOT, m.group("file").strip())
        if not os.path.isfile(src):
            raise SystemExit(f"readme_tables: {src} does not exist (run its benchmark)")
        j = i
        while j < len(lines) and lines[j].strip() != END:
            j += 1
        if j == len(lines):
            raise SystemExit(f"readme_tables: no {END} after line {i} of README.md")
        out.extend(table_after(src, m.group("anchor")))
        i = j
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    ap.add_argument("--check", action="store_true", help="exit 1 if a table is stale")
    a = ap.parse_args()
    with open(a.readme, encoding="utf-8") as fh:
        old = fh.read()
    new = refresh(old)
    if a.check:
        if new != old:
            print("README.md: benchmark tables differ from bench/results (run readme_tables.py)")
            return 1
        return 0
    if new != old:
        with open(a.readme, "w", encoding="utf-8") as fh:
            fh.write(new)
        print("README.md: tables refreshed")
    else:
        print("README.md: tables already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
