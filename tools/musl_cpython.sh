#!/usr/bin/env bash
# A musl CPython for ARCH (aarch64 or x86_64), cross-built on this x86-64 host with zig,
# runnable under qemu-user: the interpreter that tools/build_and_test_wheel.sh --libc musl
# builds the musllinux wheel against (crossenv reads its sysconfig and headers) and
# tests the installed wheel with.  Neither PyPI nor Debian ships a musl CPython, and
# the only registries reachable here are PyPI and Debian, so it is made from Debian's
# own CPython source package (the upstream .orig tarball, without Debian's patches,
# which adapt it to Debian's glibc layout) and Debian's musl runtime package.
#
# The musl runtime comes from Debian 13 (trixie; WIREARRAY_MUSL_SUITE names another):
# zig's musl is 1.2.5, and code built against it, PyPI's musllinux numpy included
# (a segfault on import), does not run on Debian 12's musl 1.2.3.
#
# usage: tools/musl_cpython.sh ARCH CACHE ZIG_PYTHON
#   ARCH        aarch64 or x86_64 (the target CPU; x86_64 runs under qemu-x86_64 too,
#               since this host has no musl dynamic loader)
#   CACHE       the folder to build and keep it in: CACHE/musl-python-ARCH/tree is the
#               install root (usr/bin/python3, usr/lib/python3.X, and musl's
#               lib/ld-musl-ARCH.so.1)
#   ZIG_PYTHON  a Python with the ziglang package (the wheel tools' environment)
# prints, as its last line, the path of the wrapper that runs the musl Python:
#   CACHE/musl-python-ARCH/tree/usr/bin/python3-qemu
#
# How:
# * the source: `apt-get source --download-only python3.X` (X: the host Python's minor
#   version, as the wheel's ABI must match the interpreter that builds it) and
#   `apt-get download musl:DEBARCH` (from that suite), through a private apt
#   configuration under CACHE
#   (the host's sources, deb-src added, the target's architecture): the host's apt
#   state is not changed;
# * the compiler: `zig cc -target ARCH-linux-musl -dynamic` (zig links against its own
#   musl stubs; the binary's loader is /lib/ld-musl-ARCH.so.1, which Debian's musl
#   package provides in the tree); the build Python (--with-build-python) is the host's;
#   the interpreter is kept off the two calls that musl 1.2.4+ added (preadv2, pwritev2),
#   so it runs on any musl 1.2;
# * zlib (hypothesis imports it) is built first from Debian's zlib source package, as a
#   static PIC library that the zlib module takes in; the optional modules whose
#   libraries a bare musl tree lacks (ssl, ctypes/libffi, bz2, lzma, sqlite3, readline,
#   curses, uuid) are left out: the wheel's tests need none of them, and wirearray
#   imports ssl and ctypes only where it uses them;
# * the result is cached and rebuilt only when its key changes: this recipe, the zig
#   version, the build Python's version, the source package (.dsc) and the musl package.
# Cold: about 4 minutes on 2 busy cores (compiling and byte-compiling); cached: instant.
set -euo pipefail

ARCH="${1:?usage: musl_cpython.sh ARCH CACHE ZIG_PYTHON}"
CACHE="${2:?usage: musl_cpython.sh ARCH CACHE ZIG_PYTHON}"
ZPY="${3:?usage: musl_cpython.sh ARCH CACHE ZIG_PYTHON}"
case "$ARCH" in
    aarch64) DEBARCH=arm64 ;;
    x86_64) DEBARCH=amd64 ;;
    *) echo "musl_cpython.sh: aarch64 or x86_64, not $ARCH" >&2; exit 2 ;;
esac
QEMU="qemu-$ARCH-static"
HOSTPY="$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')"
MINOR="$("$HOSTPY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
MUSL_SUITE="${WIREARRAY_MUSL_SUITE:-trixie}"

mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"
HOME_DIR="$CACHE/musl-python-$ARCH"
TREE="$HOME_DIR/tree"
mkdir -p "$HOME_DIR"
exec 8>"$HOME_DIR.lock"
flock 8

# --- the sources, downloaded once (private apt state under CACHE/apt) -------------------
if ! command -v "$QEMU" >/dev/null || ! command -v readelf >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user-static binutils >/dev/null
    else
        echo "musl_cpython.sh: $QEMU or readelf is missing (apt-get install qemu-user-static binutils)" >&2
        exit 3
    fi
fi
APT="$CACHE/apt"
SRC="$CACHE/musl-src-$MINOR-$DEBARCH-$MUSL_SUITE"
if [ ! -f "$SRC/.done" ]; then
    rm -rf "$APT" "$SRC"
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$SRC"
    . /etc/os-release
    suite="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
    # The host's Debian mirror (deb822 URIs: or a one-line deb entry), else Debian's own.
    mirror="$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p'
                 cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                     sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p'
               } | grep -E '/debian/?$' | head -1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    mirror="${mirror%/}"
    key=/usr/share/keyrings/debian-archive-keyring.gpg
    cat >"$APT/sources.list" <<EOF
deb-src [signed-by=$key] $mirror $suite main
deb [arch=$DEBARCH signed-by=$key] $mirror $MUSL_SUITE main
EOF
    APTO=(-o "Dir::Etc::SourceList=$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache"
          -o "APT::Architectures::=$DEBARCH" -o Debug::NoLocking=1
          -o APT::Sandbox::User=root)
    apt-get "${APTO[@]}" update -qq
    (cd "$SRC" && apt-get "${APTO[@]}" source -qq --download-only "python$MINOR" zlib &&
        apt-get "${APTO[@]}" download -qq "musl:$DEBARCH")
    touch "$SRC/.done"
fi
DSC="$(ls "$SRC"/python"$MINOR"_*.dsc)"
ORIG="$(ls "$SRC"/python"$MINOR"_*.orig.tar.*)"
MUSL_DEB="$(ls "$SRC"/musl_*_"$DEBARCH".deb)"
ZLIB_DSC="$(ls "$SRC"/zlib_*.dsc)"
ZLIB_ORIG="$(ls "$SRC"/zlib_*.orig.tar.*)"

KEY="$( { cat "$SELF" "$DSC" "$ZLIB_DSC"; basename "$MUSL_DEB"; "$ZPY" -m ziglang version; "$HOSTPY" -VV; } |
        sha256sum | cut -c1-16)"
if [ "$(cat "$HOME_DIR/.key" 2>/dev/null)" = "$KEY" ] && [ -x "$TREE/usr/bin/python3-qemu" ]; then
    echo "cached: $TREE ($(basename "$DSC" .dsc), $(basename "$MUSL_DEB" .deb))" >&2
    echo "$TREE/usr/bin/python3-qemu"
    exit 0
fi

# --- the build ----------------------------------------------------------------------------
echo "building a musl CPython $MINOR for $ARCH from $(basename "$ORIG") with zig (cold: ~4 min)" >&2
rm -rf "$HOME_DIR/build" "$TREE" "$HOME_DIR/.key"
BUILD="$HOME_DIR/build"
mkdir -p "$BUILD/bin" "$BUILD/src"
tar -xf "$ORIG" -C "$BUILD/src" --strip-components=1
# The platform triplet, and so EXT_SUFFIX (.cpython-3X-ARCH-linux-musl.so), must be
# musl's, as in every musllinux CPython (cibuildwheel's images, Alpine): 3.11's configure
# decides it by the *build* machine's libc, which is glibc in a cross build, and an
# extension named -linux-gnu.so would not import there (nor numpy's musllinux wheels here).
sed -i '/PLATFORM_TRIPLET=`grep -v/{n;s/case "\$build_os" in/case "$host_os" in/}' "$BUILD/src/configure"
grep -q 'case "$host_os" in' "$BUILD/src/configure" ||
    { echo "musl_cpython.sh: configure's platform-triplet test has changed; see this script" >&2; exit 1; }
# setup.py (the shared stdlib modules) adds the include directories that `CC -E -v -`
# lists; zig lists the host's /usr/include there, whose glibc headers would then shadow
# zig's musl ones and fail most modules.  zig needs no directories added.
sed -i 's/^\( *\)self\.add_cross_compiling_paths()$/\1pass  # zig: see tools\/musl_cpython.sh/' "$BUILD/src/setup.py"
grep -q 'pass  # zig: see tools/musl_cpython.sh' "$BUILD/src/setup.py" ||
    { echo "musl_cpython.sh: setup.py's cross-compiling paths have changed; see this script" >&2; exit 1; }
# zig's clang makes __DATE__/__TIME__ (Modules/getbuildinfo.c) an error; a warning here.
cat >"$BUILD/bin/cc" <<EOF
#!/bin/sh
exec "$ZPY" -m ziglang cc -target $ARCH-linux-musl -dynamic -Wno-error=date-time "\$@"
EOF
cat >"$BUILD/bin/ar" <<EOF
#!/bin/sh
exec "$ZPY" -m ziglang ar "\$@"
EOF
chmod +x "$BUILD/bin/cc" "$BUILD/bin/ar"
# What configure cannot find out by running a program for the target; and two calls
# that zig's musl headers (1.2.5) declare but musl before 1.2.4 lacks (the interpreter
# would not start there).
cat >"$BUILD/config.site" <<'EOF'
ac_cv_file__dev_ptmx=yes
ac_cv_file__dev_ptc=no
ac_cv_buggy_getaddrinfo=no
ac_cv_func_preadv2=no
ac_cv_func_pwritev2=no
EOF
export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$CACHE/zig}" ZIG_LOCAL_CACHE_DIR="${ZIG_LOCAL_CACHE_DIR:-$CACHE/zig}"
mkdir -p "$BUILD/zlib-src"
tar -xf "$ZLIB_ORIG" -C "$BUILD/zlib-src" --strip-components=1
(
    cd "$BUILD/zlib-src"
    CC="$BUILD/bin/cc" AR="$BUILD/bin/ar" RANLIB=true CFLAGS="-O2 -fPIC" \
        ./configure --static --prefix="$BUILD/zlib"
    make -j"$(nproc)" libz.a
    make install
) >"$HOME_DIR/zlib.log" 2>&1 || { tail -40 "$HOME_DIR/zlib.log" >&2; exit 1; }
# pkg-config would hand the host's (glibc, x86-64) library flags to the target build.
(
    cd "$BUILD/src"
    CONFIG_SITE="$BUILD/config.site" PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= \
        ./configure -q --host="$ARCH-linux-musl" --build=x86_64-pc-linux-gnu \
        --with-build-python="$HOSTPY" --prefix=/usr --disable-test-modules \
        --with-ensurepip=no --without-readline \
        CPPFLAGS="-I$BUILD/zlib/include" LDFLAGS="-L$BUILD/zlib/lib" \
        CC="$BUILD/bin/cc" AR="$BUILD/bin/ar" RANLIB=true READELF="$(command -v readelf)"
    make -j"$(nproc)"
    make install DESTDIR="$TREE"
    # Missing by design (no library in the tree): these.  Any other failure is a fault.
    awk '/^Failed to build these modules:/ { f = 1; next } /^ *$/ { f = 0 } f' "$HOME_DIR/build.log" |
        tr -s ' ' '\n' | grep . | sort -u | grep -vxE '_ctypes|_ctypes_test' >"$HOME_DIR/failed" || true
    if [ -s "$HOME_DIR/failed" ]; then
        echo "stdlib modules failed to build: $(paste -sd' ' "$HOME_DIR/failed")"
        exit 1
    fi
) >"$HOME_DIR/build.log" 2>&1 || { tail -40 "$HOME_DIR/build.log" >&2; exit 1; }
# musl's dynamic loader (which is its libc.so too) at /lib/ld-musl-ARCH.so.1 in the tree
# (Debian 13 installs it under /usr/lib; the binaries ask for /lib).
dpkg-deb -x "$MUSL_DEB" "$TREE"
mkdir -p "$TREE/lib"
[ -e "$TREE/lib/ld-musl-$ARCH.so.1" ] ||
    ln -s "../usr/lib/$ARCH-linux-musl/libc.so" "$TREE/lib/ld-musl-$ARCH.so.1"
[ -e "$TREE/lib/ld-musl-$ARCH.so.1" ] || { echo "musl_cpython.sh: no musl loader in $MUSL_DEB" >&2; exit 1; }
ln -sf "python$MINOR" "$TREE/usr/bin/python3"
# -0 "$0": the guest's argv[0] (so sys.executable) is this wrapper, and a child
# `sys.executable -c ...` comes back through qemu; sys.prefix is found from its folder.
cat >"$TREE/usr/bin/python3-qemu" <<EOF
#!/bin/sh
# Runs the musl $ARCH Python of this tree under qemu-user (made by tools/musl_cpython.sh).
exec $(command -v "$QEMU") -L "$TREE" -0 "\$0" "$TREE/usr/bin/python$MINOR" "\$@"
EOF
chmod +x "$TREE/usr/bin/python3-qemu"
"$TREE/usr/bin/python3-qemu" -c 'import sys, platform, zlib; print(sys.version, platform.libc_ver())' >&2
rm -rf "$BUILD"
echo "$KEY" >"$HOME_DIR/.key"
echo "$TREE/usr/bin/python3-qemu"
