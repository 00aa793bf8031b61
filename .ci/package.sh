#!/usr/bin/env bash
# CI packaging check (run by .ci/run): build the sdist and the wheel once
# each, install each into a fresh venv and smoke-test what got installed.
#   - the wheel (built from the sdist, so the sdist is proven to build) must
#     be the one cp39-abi3 wheel, carry the C core, and round-trip on it;
#   - the sdist is installed with no working C compiler (CC=false): the
#     install must still succeed, without the C core; with no numba either,
#     --version works and a command fails with one line (so does an unknown
#     PYDELTA_BACKEND); with the numba extra the same round trip runs on
#     numba, saying so once (nothing with -q).
# Everything happens in a temp dir outside the work tree (so `import pydelta`
# can only find the installed copy); pip's cache is used as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
PY=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/pydelta-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log
# run quietly; on failure show the output and stop
q() { "$@" >"$log" 2>&1 || { cat "$log" >&2; echo "package.sh: FAILED: $*" >&2; exit 1; }; }
fail() { echo "package.sh: FAILED: $*" >&2; exit 1; }
t0=$SECONDS

# -- build: sdist, then the wheel from that sdist (python -m build's default)
"$PY" -m venv "$work/tools"
q "$work/tools/bin/python" -m pip install --quiet build
q env PYDELTA_REQUIRE_C=1 "$work/tools/bin/python" -m build --outdir "$work/dist" "$src"
sdist=$(ls "$work"/dist/pydelta_sync-*.tar.gz)
wheel=$(ls "$work"/dist/pydelta_sync-*.whl)
case "$wheel" in
    *-cp39-abi3-*.whl) ;;
    *) fail "the wheel is not tagged cp39-abi3: $(basename "$wheel")" ;;
esac
# the sdist carries what setup.py and the tests need
listing=$(tar tzf "$sdist")
for f in csrc/build_ffi.py csrc/pydelta.h LICENSE tests/conftest.py docs/FORMAT.md; do
    grep -q "^pydelta_sync-[^/]*/$f\$" <<<"$listing" || fail "sdist lacks $f"
done
echo "package.sh: built $(basename "$sdist") and $(basename "$wheel") ($((SECONDS - t0)) s)"

# -- smoke test of an installed pydelta: VENV EXPECTED_BACKEND
smoke() {
    local venv=$1 want=$2 rt
    rt=$(mktemp -d "$work/rt.XXXX")
    (
        cd "$rt"
        "$venv/bin/python" - <<'EOF'
import random
rnd = random.Random(7)
old = rnd.randbytes(300_000)
new = old[:100_000] + rnd.randbytes(5_000) + old[150_000:]
open("old", "wb").write(old)
open("new", "wb").write(new)
EOF
        "$venv/bin/pydelta" --version
        "$venv/bin/pydelta" signature old old.sig
        "$venv/bin/pydelta" delta old.sig new new.delta
        "$venv/bin/pydelta" patch old new.delta out
        cmp out new
        got=$("$venv/bin/python" -c 'import pydelta; print(pydelta.backend)')
        [ "$got" = "$want" ] || { echo "backend is $got, expected $want"; exit 1; }
    ) >"$log" 2>&1 || { cat "$log" >&2; fail "smoke test ($want) in $venv"; }
}

# -- the wheel, in a fresh venv
"$PY" -m venv "$work/wheel"
q "$work/wheel/bin/python" -m pip install --quiet "$wheel"
smoke "$work/wheel" c
echo "package.sh: wheel installs and round-trips on the C core ($((SECONDS - t0)) s)"

# -- the sdist without a C compiler, in a fresh venv: first with no numba
#    (no backend at all), then with the numba extra
"$PY" -m venv "$work/sdist"
q env CC=false PYDELTA_REQUIRE_C= "$work/sdist/bin/python" -m pip install --quiet "$sdist"
if compgen -G "$work/sdist/lib/python*/site-packages/pydelta/_core*" >/dev/null; then
    fail "CC=false still produced a C core"
fi
# one line on stderr, the exit status wanted, never a traceback: STATUS COMMAND...
one_line() {
    local want=$1 got err
    shift
    err=$("$@" 2>&1 >/dev/null) && got=0 || got=$?
    [ "$got" = "$want" ] || fail "$* exited $got, not $want: $err"
    [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "$* printed more than one line: $err"
    case "$err" in *Traceback*) fail "$* printed a traceback" ;; esac
}
ver=$("$work/sdist/bin/pydelta" --version) || fail "--version without a backend failed"
grep -q "no backend" <<<"$ver" || fail "--version without a backend says: $ver"
one_line 1 "$work/sdist/bin/pydelta" signature "$src/README.md" "$work/x.sig"
one_line 2 env PYDELTA_BACKEND=foo "$work/sdist/bin/pydelta" signature "$src/README.md" "$work/x.sig"
q env CC=false PYDELTA_REQUIRE_C= "$work/sdist/bin/python" -m pip install --quiet "$sdist[numba]"
smoke "$work/sdist" numba
# the fallback notice: once per command, and none with -q
err=$("$work/sdist/bin/pydelta" signature "$src/README.md" "$work/x.sig" 2>&1)
[ "$(grep -c 'using the numba backend' <<<"$err")" = 1 ] || fail "fallback notice not once: $err"
err=$("$work/sdist/bin/pydelta" signature -q "$src/README.md" "$work/x.sig" 2>&1)
[ -z "$err" ] || fail "-q did not silence: $err"
echo "package.sh: sdist installs without a compiler; no backend is one line; round-trips on numba ($((SECONDS - t0)) s)"
