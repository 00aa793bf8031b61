#!/usr/bin/env bash
# Set up everything on a fresh clone and run the side-by-side benchmark:
#   bash bench/run.sh                      # 256 MiB and 1 GiB pairs, all kinds
#   bash bench/run.sh --sizes 64 --repeat 1 --kinds finetune   # quick look
#   bash bench/run.sh --sizes 4096 --kinds finetune --repeat 1 --out bench/results/big
#   bash bench/run.sh --sizes "" --big 10240 --out bench/results/10g   # 10 GiB finetune point
# Creates ./.venv if needed, installs pydelta with numpy and matplotlib, and
# (as root, with apt) the anchor tools rdiff, rsync, xdelta3, zstd and GNU
# time; then runs bench/run_bench.py, which writes bench/results/results.md,
# results.json and chart PNGs. Anchors that are missing are skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=""
    for t in rdiff rsync xdelta3 zstd; do command -v "$t" >/dev/null 2>&1 || missing="$missing $t"; done
    [ -x /usr/bin/time ] || missing="$missing time"
    if [ -n "$missing" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
log=.venv/pip-install.log
pipi() { .venv/bin/python -m pip install --quiet "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
pipi --upgrade pip setuptools wheel
pipi -e ".[bench]" numpy
exec .venv/bin/python bench/run_bench.py "$@"
