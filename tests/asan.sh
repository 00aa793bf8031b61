#!/usr/bin/env bash
# The C-facing tests under AddressSanitizer + UndefinedBehaviorSanitizer:
#   bash tests/asan.sh                 (the default C-heavy test files)
#   bash tests/asan.sh tests/test_rdiff.py -k blake2   (pytest arguments)
#
# Builds the cffi module with -fsanitize=address,undefined (UBSan fatal on
# the first report) in a copy of the tree under .asan/ with its own venv,
# so the normal build in pydelta/ is left alone, then runs the not-slow
# C-backend tests there with libasan preloaded into Python (the sanitizer
# runtime must come first in the process). Leak checking is off: the
# interpreter itself does not free everything at exit. Any sanitizer
# report aborts the test process, which fails the run. Bounded by
# ASAN_TIMEOUT seconds (default 1200; the run takes a few minutes on an
# idle 2-core machine) so a hang cannot stall CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${ASAN_DIR:-$ROOT/.asan}
PY=${PYTHON:-python3}
CC=${CC:-gcc}

libasan=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
    echo "asan.sh: $CC has no libasan.so (install the compiler's sanitizer runtime)" >&2
    exit 1
fi

# A fresh copy of the tracked tree (plus uncommitted edits), nothing built.
rm -rf "$WORK/src"
mkdir -p "$WORK/src"
git ls-files -z --cached --others --exclude-standard \
    | grep -zv '^\.asan/' \
    | xargs -0 tar -cf - 2>/dev/null | tar -xf - -C "$WORK/src"

if [ ! -x "$WORK/venv/bin/python" ]; then
    "$PY" -m venv "$WORK/venv"
fi
log=$WORK/pip.log
pipi() { "$WORK/venv/bin/python" -m pip install --quiet "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }
pipi --upgrade pip setuptools wheel

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
(
    cd "$WORK/src"
    # -O1, the sanitizers' usual level: -O3 with them instruments the SIMD
    # kernels for minutes and reports no more.
    sed -i 's/"-O3"/"-O1"/' csrc/build_ffi.py
    CFLAGS="$san -g" LDFLAGS="$san" pipi -e ".[test]" numpy
)
# (ldd's output read whole first: `ldd | grep -q` under pipefail fails at
# random when grep exits before ldd has written everything - SIGPIPE)
linked=$(ldd "$WORK"/src/pydelta/_core*.so)
if ! grep -q libasan <<<"$linked"; then
    echo "asan.sh: the module was not built with AddressSanitizer" >&2
    exit 1
fi

# The files that drive the C kernels hardest: tables and floods, every
# delta/patch resume path, the rdiff jobs, corrupt input, the hashes, the
# patch's own output writer (copy.c), the parallel pre-scan (prescan.c), the
# small-piece and mapped reads with their SIGBUS guards (sigread.c,
# mapguard.c, the patch's read-back). XXH3 (xxh3.c) runs in every signature:
# it is the default block sum (test_xxh3.py itself compares with numba, not
# installed here).
files=(tests/test_sigtable.py tests/test_flood.py tests/test_roundtrip.py
    tests/test_rdiff.py tests/test_errors.py tests/test_rollsum.py
    tests/test_hash.py tests/test_rs_hash.py tests/test_patch_direct.py
    tests/test_threads.py tests/test_reads.py tests/test_reads_mapped.py
    tests/test_patch_readback_cut.py)
if [ "$#" -gt 0 ]; then
    args=("$@")
else
    args=()
    for f in "${files[@]}"; do
        [ -e "$WORK/src/$f" ] && args+=("$f")
    done
    # (the C backend only: this venv has no numba, so its cases are left out)
    args+=(-m "not slow" -k "not numba" -q -ra --durations=5)
fi

cd "$WORK/src"
export PYDELTA_BACKEND=c
export PYDELTA_SANITIZED=1 # timing bounds in the tests allow for the slowdown
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== C tests under AddressSanitizer + UBSan ($(basename "$libasan"))"
LD_PRELOAD="$libasan" timeout "${ASAN_TIMEOUT:-1200}" \
    "$WORK/venv/bin/python" -m pytest -p no:cacheprovider "${args[@]}"
