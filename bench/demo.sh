#!/usr/bin/env bash
# Set up everything on a fresh clone and run the end-to-end demo:
#   bash bench/demo.sh [--size-mib N]
# Creates ./.venv if needed, installs pydelta (building its C core) and
# numpy (for the sample data), then runs bench/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
log=.venv/pip-install.log
pipi() { .venv/bin/python -m pip install --quiet "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
pipi --upgrade pip setuptools wheel
pipi -e . numpy
exec .venv/bin/python bench/demo.py "$@"
