#!/usr/bin/env bash
# Set up everything on a fresh clone and run the test suite:
#   bash tests/run.sh            (all tests, including the multi-GiB ones)
#   bash tests/run.sh -m 'not slow'   (extra arguments go to pytest)
# then runs it again on the numba backend (PYDELTA_BACKEND=numba, not slow).
# Creates ./.venv if needed and installs pydelta (building its C core) with
# its test dependencies. Needs python3 (>= 3.9) with venv and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
log=.venv/pip-install.log
pipi() { .venv/bin/python -m pip install --quiet "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
pipi --upgrade pip setuptools wheel
pipi -e ".[test,numba]"
status=0
# Lint and format check first (the configuration is in pyproject.toml).
echo "== ruff"
.venv/bin/ruff check pydelta tests bench setup.py csrc/build_ffi.py || status=$?
.venv/bin/ruff format --check pydelta tests bench setup.py csrc/build_ffi.py || status=$?
.venv/bin/python -m pytest -ra "$@" tests || status=$?
# The same suite on the numba backend (pydelta/backends/numba/), without the
# multi-GiB tests; its kernels compile on first use, then come from numba's
# cache in pydelta/backends/numba/__pycache__.
echo "== the suite again with PYDELTA_BACKEND=numba"
PYDELTA_BACKEND=numba .venv/bin/python -m pytest -ra -m "not slow" "$@" tests || status=$?
exit "$status"
