#!/usr/bin/env python3
"""Debian userlands for foreign CPUs, run under qemu-user, with wirearray cross-built.

Why: wirearray's reason to exist is byte order, and every machine we own is
little-endian x86-64.  This makes a real big-endian host (s390x) and an arm64 one
(the NEON path) out of Debian's own packages, with no VM, no binfmt and no chroot:

* ``mmdebstrap --variant=extract`` unpacks python3, python3-numpy, python3-dev,
  python3-pytest and python3-hypothesis (with their dependencies) for the foreign
  architecture into a plain folder.  Unpacking runs no install scripts, so the two
  symlinks that ``update-alternatives`` would make (libblas.so.3, liblapack.so.3,
  needed by numpy) are made here, and the tree's .py files are byte-compiled (numpy
  imports about 5x faster under qemu with its .pyc files present);
* ``qemu-ARCH-static -L TREE TREE/usr/bin/python3`` runs that Python.  A shell
  wrapper, ``TREE/usr/bin/python3-qemu``, does this and passes its own path as the
  guest's argv[0], so the emulated ``sys.executable`` is the wrapper and
  ``subprocess.run([sys.executable, ...])`` re-enters qemu instead of trying to run a
  foreign binary on the host;
* ``pyx/_cwire.pyx`` (with the .pxi files it includes and the .pxd it cimports) is
  turned into C once on this host (Cython), and the C is cross-compiled with
  ``ARCH-linux-gnu-gcc --sysroot=TREE`` against the tree's Python headers (and the
  wa_*.h of pyx/) into ``SITE/wirearray/``, next to a copy of ``src/wirearray/*.py``.
  The copy keeps the host's own in-place x86-64 extension out of the way; the
  emulated Python gets ``PYTHONPATH=SITE``.

Everything lives in ``.cache/emulated/ARCH/`` (git-ignored; the environment variable
WIREARRAY_EMULATED_CACHE names another folder) and is idempotent: the
userland is rebuilt only when its package list or recipe changes (a stamp file), the
extension only when pyx/ or the Cython version changes, and the .py copy is synced on
every call (a few ms).  From scratch: under a minute per architecture on a quiet
machine, mostly downloading and unpacking (~190 MB each); afterwards about a second.

Missing host tools (mmdebstrap, qemu-user-static, the cross gcc, binutils and C
library headers) are installed with apt-get when running as root on Debian/Ubuntu;
otherwise :class:`ToolsMissing` is raised (exit status 3 on the command line), which
the tests turn into a skip -- or a failure under WIREARRAY_REQUIRE_EMULATED=1, as in CI.

Usage:
    python tools/emulated_hosts.py setup [s390x] [aarch64]     # default: both
    python tools/emulated_hosts.py run s390x -- -c 'import wirearray; print(wirearray.info())'
    python tools/emulated_hosts.py run aarch64 -- -m pytest -q tests/test_byteorder.py
    python tools/emulated_hosts.py run --purepython s390x -- -m pytest -q tests/test_codec.py
    python tools/emulated_hosts.py clean [ARCH...]

Library use (tests/test_bigendian_host.py): ``setup(arch) -> Host`` and
``Host.python_cmd()`` / ``Host.env()``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Where the hosts live; WIREARRAY_EMULATED_CACHE moves it (e.g. out of a fresh clone).
CACHE = Path(os.environ.get("WIREARRAY_EMULATED_CACHE") or ROOT / ".cache" / "emulated")

#: Debian release and mirror of the userlands (the same Python/numpy on both CPUs).
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: What the userland holds (dependencies are resolved by apt inside mmdebstrap).
PACKAGES = ("python3", "python3-numpy", "python3-dev", "python3-pytest", "python3-hypothesis")
#: Bump when the way a tree is made changes, to rebuild existing caches.
RECIPE = 1
#: Flags of the cross build (setup.py uses -O3; -O2 keeps the emulated build quick).
CFLAGS = ("-shared", "-fPIC", "-O2", "-fno-strict-aliasing")


@dataclass(frozen=True)
class Arch:
    name: str  # qemu's and the GNU triplet's name
    debian: str  # Debian's architecture name
    byteorder: str  # sys.byteorder there
    simd: str  # the best path the compiled core picks there

    @property
    def triplet(self) -> str:
        return f"{self.name}-linux-gnu"

    @property
    def qemu(self) -> str:
        return f"qemu-{self.name}-static"

    @property
    def gcc(self) -> str:
        return f"{self.triplet}-gcc"


ARCHES = {
    "s390x": Arch("s390x", "s390x", "big", "scalar"),
    "aarch64": Arch("aarch64", "arm64", "little", "neon"),
}


class ToolsMissing(RuntimeError):
    """A host tool is missing and cannot be installed here (not root, no apt-get)."""


def log(msg: str) -> None:
    print(f"[emulated] {msg}", file=sys.stderr, flush=True)


def guest_env() -> dict[str, str]:
    """This environment minus what would steer the emulated Python or wirearray there
    (PYTHONHOME/PYTHONPATH of the host, a virtualenv, WIREARRAY_SIMD=avx2, qemu's)."""
    drop = ("PYTHON", "WIREARRAY_", "VIRTUAL_ENV", "QEMU_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], **kw)


# ---- host tools ----


def _apt_packages(arch: Arch) -> dict[str, str]:
    """What must be on the host -> the Debian package that provides it.  A key is a
    command (looked up on PATH) or, starting with /, a file.  The cross C library
    (headers, crt files, libc.a) is for the static test programs of
    tests/test_kernels_c.py and tests/test_c_headers.py (``-m emulated``); binutils for
    ARCH gives the objdump that reads the cross-built modules."""
    return {
        "mmdebstrap": "mmdebstrap",
        arch.qemu: "qemu-user-static",
        arch.gcc: f"gcc-{arch.triplet}",
        f"{arch.triplet}-objdump": f"binutils-{arch.triplet}",
        f"/usr/{arch.triplet}/lib/libc.a": f"libc6-dev-{arch.debian}-cross",
        f"/usr/{arch.triplet}/include/stdio.h": f"libc6-dev-{arch.debian}-cross",
    }


def _present(what: str) -> bool:
    return os.path.exists(what) if what.startswith("/") else shutil.which(what) is not None


def ensure_tools(arches: list[Arch]) -> None:
    """Install what is missing with apt-get (as root), or raise ToolsMissing."""
    need: dict[str, str] = {}
    for arch in arches:
        for tool, pkg in _apt_packages(arch).items():
            if not _present(tool):
                need[tool] = pkg
    if not need:
        return
    what = ", ".join(sorted(need))
    packages = sorted(set(need.values()))
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ToolsMissing(
            f"{what} not installed, and installing needs root and apt-get: "
            f"apt-get install {' '.join(packages)}"
        )
    log(f"installing {' '.join(packages)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        _run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        _run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env,
            stdout=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as exc:
        msg = f"apt-get install {' '.join(packages)} failed (exit status {exc.returncode})"
        raise ToolsMissing(msg) from None
    still = [t for t in need if not _present(t)]
    if still:
        raise ToolsMissing(f"apt-get install did not provide {', '.join(still)}")


# ---- the userland ----


@dataclass(frozen=True)
class Host:
    """One prepared emulated host."""

    arch: Arch
    tree: Path  # the Debian userland
    site: Path  # holds wirearray/ (the .py copy and the cross-built extension)
    python: Path  # TREE/usr/bin/python3-qemu, the wrapper that re-enters qemu
    ext_suffix: str

    def python_cmd(self) -> list[str]:
        """argv prefix that runs the emulated Python."""
        return [str(self.python)]

    def env(self, *, purepython: bool = False, **extra: str) -> dict[str, str]:
        """Environment for the emulated Python: wirearray from SITE, the compiled core
        required (or the fallback forced), bytecode of the repo's tests kept apart."""
        env = guest_env()
        env["PYTHONPATH"] = str(self.site)
        if purepython:
            env["WIREARRAY_PUREPYTHON"] = "1"
        else:
            env["WIREARRAY_REQUIRE_EXTENSION"] = "1"
        env.update(extra)
        return env


def _paths(arch: Arch) -> tuple[Path, Path, Path]:
    base = CACHE / arch.name
    return base, base / "tree", base / "site"


def _tree_key(arch: Arch) -> dict:
    return {
        "recipe": RECIPE,
        "suite": SUITE,
        "mirror": MIRROR,
        "arch": arch.debian,
        "packages": list(PACKAGES),
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _make_tree(arch: Arch, tree: Path) -> None:
    tmp = tree.with_name(tree.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    log(f"{arch.name}: unpacking Debian {SUITE} ({', '.join(PACKAGES)}) with mmdebstrap")
    t0 = time.monotonic()
    _run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=extract",
            f"--architectures={arch.debian}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            tmp,
            MIRROR,
        ]
    )
    log(f"{arch.name}: unpacked in {time.monotonic() - t0:.0f} s")
    _alternatives(arch, tmp)
    tmp.rename(tree)


def _alternatives(arch: Arch, tree: Path) -> None:
    """Make the symlinks that update-alternatives would have made for numpy's BLAS and
    LAPACK (unpacking skips the packages' postinst scripts).  An optimised
    implementation (OpenBLAS) wins over the reference one, as its priority does."""
    libdir = tree / "usr" / "lib" / arch.triplet
    for lib in ("libblas.so.3", "liblapack.so.3"):
        link = libdir / lib
        if link.exists():
            continue
        found = sorted(libdir.glob(f"*/{lib}"), key=lambda p: ("openblas" not in str(p), str(p)))
        if not found:
            raise RuntimeError(f"{arch.name}: no {lib} in {libdir}; is libblas3 unpacked?")
        if link.is_symlink():
            link.unlink()
        link.symlink_to(found[0].relative_to(libdir))


def _write_wrapper(arch: Arch, tree: Path) -> Path:
    qemu = shutil.which(arch.qemu)
    assert qemu is not None
    wrapper = tree / "usr" / "bin" / "python3-qemu"
    # -0 "$0": the guest's argv[0] is this script, so sys.executable is too, and a
    # child `sys.executable -c ...` comes back through qemu.  The landmark search for
    # sys.prefix starts from argv[0]'s folder, which is the tree's usr/bin.
    text = (
        "#!/bin/sh\n"
        f"# Runs the {arch.name} Python of this tree under qemu-user "
        "(made by tools/emulated_hosts.py).\n"
        f'exec {qemu} -L "{tree}" -0 "$0" "{tree}/usr/bin/python3" "$@"\n'
    )
    if not wrapper.exists() or wrapper.read_text() != text:
        wrapper.write_text(text)
        wrapper.chmod(0o755)
    return wrapper


def _byte_compile(arch: Arch, tree: Path, wrapper: Path) -> None:
    """.pyc files for the tree's stdlib and dist-packages.

    The host's Python does it when it is the same minor version (bytecode and its
    cache tag do not depend on the CPU, and that is much faster than emulation);
    otherwise the emulated one does.  Files that do not compile (test data written in
    Python 2 in some packages) are skipped, as Debian's py3compile does.
    """
    version = _guest_version(tree)
    dirs = [
        tree / "usr" / "lib" / f"python{version}",
        tree / "usr" / "lib" / "python3" / "dist-packages",
    ]
    same = f"{sys.version_info[0]}.{sys.version_info[1]}" == version
    py = [sys.executable] if same else [str(wrapper)]
    t0 = time.monotonic()
    _run(
        [*py, "-m", "compileall", "-q", "-j0", "-x", r"/(test|tests|lib2to3/tests)/", *dirs],
        env=os.environ if same else guest_env(),
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log(
        f"{arch.name}: byte-compiled the tree with "
        f"{'the host' if same else 'the emulated'} Python in {time.monotonic() - t0:.0f} s"
    )


def _guest_version(tree: Path) -> str:
    target = os.readlink(tree / "usr" / "bin" / "python3")  # python3 -> python3.11
    m = re.fullmatch(r"python(3\.\d+)", Path(target).name)
    if not m:
        raise RuntimeError(f"unexpected {tree}/usr/bin/python3 -> {target}")
    return m.group(1)


def _probe(wrapper: Path) -> dict:
    code = (
        "import json, sys, sysconfig; print(json.dumps({"
        "'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX'), "
        "'include': sysconfig.get_paths()['include'], "
        "'version': '%d.%d' % sys.version_info[:2], "
        "'executable': sys.executable, 'byteorder': sys.byteorder}))"
    )
    r = _run([wrapper, "-c", code], env=guest_env(), capture_output=True, text=True, timeout=300)
    return json.loads(r.stdout)


def ensure_tree(arch: Arch) -> dict:
    """The userland of ``arch``, made if missing or out of date; returns its stamp."""
    base, tree, _ = _paths(arch)
    stamp = base / "tree.json"
    key = _tree_key(arch)
    info = _read_json(stamp)
    if info is None or info.get("key") != key or not (tree / "usr" / "bin" / "python3").exists():
        stamp.unlink(missing_ok=True)
        _make_tree(arch, tree)
        wrapper = _write_wrapper(arch, tree)
        _byte_compile(arch, tree, wrapper)
        probe = _probe(wrapper)
        if probe["byteorder"] != arch.byteorder or probe["executable"] != str(wrapper):
            raise RuntimeError(f"{arch.name}: unexpected emulated Python: {probe}")
        info = {"key": key, "probe": probe, "made": time.strftime("%Y-%m-%d %H:%M:%S")}
        stamp.write_text(json.dumps(info, indent=1) + "\n")
    else:
        _write_wrapper(arch, tree)  # qemu may have moved; cheap
    return info


# ---- wirearray for the guest ----


def _cython_cmd() -> list[str]:
    """How to run Cython on this host: the current Python's, or one pip-installed into
    the cache (a CI venv has Cython only inside pip's isolated build environment)."""
    with contextlib.suppress(ImportError):
        import Cython  # noqa: F401

        return [sys.executable, "-m", "cython"]
    target = CACHE / "cython"
    env = dict(os.environ, PYTHONPATH=str(target))
    probe = [sys.executable, "-c", "import Cython"]  # quiet: its absence is the usual case
    if _run(probe, env=env, check=False, stderr=subprocess.DEVNULL).returncode != 0:
        text = (ROOT / "pyproject.toml").read_text()
        m = re.search(r'"(Cython[^"]*)"', text)
        req = m.group(1) if m else "Cython>=3.0.10,<4"
        log(f"installing {req} into {target} for the host-side code generation")
        _run([sys.executable, "-m", "pip", "install", "-q", "--target", target, req])
    return ["env", f"PYTHONPATH={target}", sys.executable, "-m", "cython"]


def _generate_c(cython: list[str]) -> tuple[Path, str]:
    """pyx/_cwire.pyx -> C, once for all architectures (Cython's C is portable)."""
    version = _run([*cython, "--version"], capture_output=True, text=True)
    version_text = (version.stdout.strip() or version.stderr.strip()).splitlines()[0]
    h = hashlib.sha256(version_text.encode())
    # every file Cython reads: the module, its includes (.pxi), its declarations (.pxd)
    for p in sorted(p for ext in ("pyx", "pxi", "pxd") for p in (ROOT / "pyx").glob(f"*.{ext}")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    digest = h.hexdigest()[:16]
    out = CACHE / "c" / f"_cwire-{digest}.c"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        for old in out.parent.glob("_cwire-*.c"):
            old.unlink()
        tmp = out.with_suffix(".tmp.c")
        # The module's full name as setup.py builds it (wirearray._cwire).
        pyx = ROOT / "pyx" / "_cwire.pyx"
        _run([*cython, "-3", "--module-name", "wirearray._cwire", pyx, "-o", tmp])
        tmp.rename(out)
        log(f"generated {out} ({version_text})")
    return out, digest


def _sync_py(site: Path) -> None:
    """SITE/wirearray/ = src/wirearray/ minus host extensions (copied when changed)."""
    src = ROOT / "src" / "wirearray"
    dst = site / "wirearray"
    dst.mkdir(parents=True, exist_ok=True)
    wanted = {p.name for p in src.iterdir() if p.suffix in (".py", ".typed")}
    for name in wanted:
        s, d = src / name, dst / name
        if not d.exists() or d.read_bytes() != s.read_bytes():
            shutil.copy2(s, d)
    for p in dst.iterdir():
        if p.suffix in (".py", ".typed") and p.name not in wanted:
            p.unlink()


def ensure_extension(arch: Arch, info: dict, cython: list[str]) -> Path:
    """Cross-build wirearray._cwire for ``arch`` into SITE/wirearray/ when out of date."""
    base, tree, site = _paths(arch)
    c_file, digest = _generate_c(cython)
    h = hashlib.sha256(digest.encode())
    for p in sorted((ROOT / "pyx").glob("*.h")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(" ".join(CFLAGS).encode())
    key = h.hexdigest()[:16]
    so = site / "wirearray" / f"_cwire{info['probe']['ext_suffix']}"
    stamp = base / "extension.json"
    if so.exists() and (_read_json(stamp) or {}).get("key") == key:
        return so
    so.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    include = info["probe"]["include"]  # TREE/usr/include/python3.X, as the guest sees it
    _run(
        [
            arch.gcc,
            f"--sysroot={tree}",
            *CFLAGS,
            f"-I{include}",
            f"-I{ROOT / 'pyx'}",
            c_file,
            "-o",
            so,
        ]
    )
    stamp.write_text(json.dumps({"key": key, "c": c_file.name}) + "\n")
    log(f"{arch.name}: cross-compiled {so.name} in {time.monotonic() - t0:.0f} s")
    return so


@contextlib.contextmanager
def _locked(arch: Arch):
    """One setup per architecture at a time (concurrent test runs share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{arch.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def setup(name: str) -> Host:
    """Prepare (or check) the emulated host ``name`` ("s390x" or "aarch64").

    Raises:
        ToolsMissing: a host tool is missing and cannot be installed here.
        subprocess.CalledProcessError: a step failed (download, unpack, compile).
    """
    arch = ARCHES[name]
    ensure_tools([arch])
    cython = _cython_cmd()
    with _locked(arch):
        info = ensure_tree(arch)
        _, tree, site = _paths(arch)
        ensure_extension(arch, info, cython)
        _sync_py(site)
    return Host(
        arch=arch,
        tree=tree,
        site=site,
        python=tree / "usr" / "bin" / "python3-qemu",
        ext_suffix=info["probe"]["ext_suffix"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_setup = sub.add_parser("setup", help="prepare the emulated hosts (idempotent)")
    p_setup.add_argument("arch", nargs="*", help=f"{' and/or '.join(ARCHES)} (default: all)")
    p_run = sub.add_parser("run", help="run the emulated Python with wirearray importable")
    p_run.add_argument("arch", choices=list(ARCHES))
    p_run.add_argument("--purepython", action="store_true", help="force the fallback")
    p_run.add_argument("args", nargs="*", help="after --: the emulated Python's arguments")
    p_clean = sub.add_parser("clean", help="delete the cached hosts")
    p_clean.add_argument("arch", nargs="*", help="default: all")
    argv = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in argv:  # everything after -- goes to the emulated Python untouched
        argv, rest = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    ns = parser.parse_args(argv)
    ns.args = [*getattr(ns, "args", []), *rest]
    if ns.command in ("setup", "clean"):
        ns.arch = ns.arch or list(ARCHES)
        unknown = set(ns.arch) - set(ARCHES)
        if unknown:
            parser.error(f"unknown architecture(s) {sorted(unknown)}; known: {list(ARCHES)}")

    if ns.command == "clean":
        for name in ns.arch:
            shutil.rmtree(CACHE / name, ignore_errors=True)
        return 0
    try:
        if ns.command == "setup":
            ensure_tools([ARCHES[n] for n in ns.arch])
            for name in ns.arch:
                t0 = time.monotonic()
                host = setup(name)
                log(f"{name}: ready in {time.monotonic() - t0:.1f} s: {host.python}")
            return 0
        host = setup(ns.arch)
    except ToolsMissing as exc:
        log(str(exc))
        return 3
    except subprocess.CalledProcessError as exc:  # its output is above; no traceback
        cmd = exc.cmd if isinstance(exc.cmd, str) else " ".join(map(str, exc.cmd))
        log(f"failed (exit status {exc.returncode}): {cmd}")
        return 1
    return subprocess.call(
        [*host.python_cmd(), *ns.args], env=host.env(purepython=ns.purepython), cwd=ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
