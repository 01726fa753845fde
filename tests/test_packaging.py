"""What the sdist and the wheel hold, and a source build from the sdist.

* the sdist has everything needed to build from source with a C compiler (the Cython
  sources and C headers, setup.py, pyproject.toml, README) and to test the result
  (tests/, docs/), and no generated C or compiled objects;
* the wheel has the package (with its private benchmark harness, wirearray._bench, which
  `wirearray bench` and `demo` run, and the compiled module's stub _cwire.pyi) and the
  compiled core only: no .pyx, .pxi, .pxd, generated .c or .h;
* ``pip install <sdist>`` into a fresh virtual environment, with build isolation as a
  user on a platform without a wheel gets it, yields the compiled core; with
  WIREARRAY_NO_EXTENSION=1 it yields the pure-Python package.

These build and install for real (a minute or two, and the package index for the build
requirements), so they carry the ``packaging`` marker: the default run leaves them out,
``python -m pytest -m packaging`` runs them (.ci/run does, as its own step).  They need
the ``build`` package (``pip install build``) and fail without it, since they were asked
for by name.  tools/build_and_test_wheel.sh goes further: it repairs the wheel to a
manylinux tag and runs the whole suite against it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path, PurePosixPath

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
SOURCE_SUFFIXES = {".pyx", ".pxi", ".pxd", ".c", ".h"}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
    return r


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> tuple[Path, Path]:
    """(sdist, wheel), built as a release builds them: the wheel from the sdist."""
    if not (ROOT / "setup.py").is_file():
        pytest.skip("needs the source tree (setup.py next to tests/)")
    if importlib.util.find_spec("build") is None:
        pytest.fail("the packaging tests need the 'build' package: pip install build")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    (sdist,) = out.glob("wirearray-*.tar.gz")
    (wheel,) = out.glob("wirearray-*.whl")
    return sdist, wheel


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as tar:
        # strip the top directory, wirearray-<version>/
        return {str(PurePosixPath(*PurePosixPath(n).parts[1:])) for n in tar.getnames()}


def test_sdist_has_what_a_source_build_and_the_tests_need(dists):
    names = _sdist_names(dists[0])
    required = {
        "setup.py", "pyproject.toml", "README.md", "MANIFEST.in",
        "pyx/_cwire.pyx", "pyx/wa.pxd", "pyx/convert.pxi", "pyx/format.pxi",
        "pyx/fastpath.pxi", "pyx/wa_cpu.h", "pyx/wa_bswap.h", "pyx/wa_crc32c.h",
        "pyx/wa_format.h", "pyx/wa_npyabi.h",
        "src/wirearray/__init__.py", "src/wirearray/py.typed",
        "tests/conftest.py", "tests/helpers.py", "tests/c/kernel_check.c",
        "docs/FORMAT.md",
    }  # fmt: skip
    # ... and every source file of the tree, whatever gets added later
    for pattern in ("pyx/*.pyx", "pyx/*.pxi", "pyx/*.pxd", "pyx/*.h", "src/wirearray/**/*.py",
                    "src/wirearray/*.pyi", "tests/**/*.py", "tests/**/*.c",
                    "docs/*.md"):  # fmt: skip
        required |= {p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)}
    assert sorted(required - names) == []


def test_sdist_holds_no_generated_or_compiled_files(dists):
    names = _sdist_names(dists[0])
    bad = [
        n
        for n in names
        if (n.startswith("pyx/") and n.endswith(".c"))
        or n.endswith((".so", ".pyd", ".dylib", ".o", ".pyc"))
        or "__pycache__" in n
        or n.split("/")[0] in (".git", ".ci", ".github", "build", "dist", ".hypothesis")
    ]
    assert bad == []


def test_wheel_holds_the_package_and_the_compiled_core_only(dists):
    wheel = dists[1]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"wirearray", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    sources = [n for n in names if PurePosixPath(n).suffix in SOURCE_SUFFIXES]
    assert sources == [], "sources in the wheel"
    assert [n for n in names if n.startswith("wirearray/_cwire.")], "no compiled core"
    assert "wirearray/py.typed" in names
    assert "wirearray/_cwire.pyi" in names, "the compiled module's stub"
    # every module, the private benchmark harness too (`wirearray bench`, `demo`)
    package = ROOT / "src"
    expected_py = {p.relative_to(package).as_posix() for p in package.glob("wirearray/**/*.py")}
    assert sorted(expected_py - set(names)) == []
    assert "wirearray/_bench/peers.py" in names


def _fresh_venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", str(path)])
    bindir = "Scripts" if os.name == "nt" else "bin"
    return path / bindir / ("python.exe" if os.name == "nt" else "python")


# Run inside the new environment, from an empty directory: where the package came from,
# which implementation runs, and which files it installed.
_INSPECT = textwrap.dedent(
    """
    import json, pathlib, sys
    import numpy as np
    import wirearray
    pkg = pathlib.Path(wirearray.__file__).parent
    a = np.arange(1000, dtype=np.float64)
    assert (wirearray.ntoh(wirearray.hton(a)) == a).all()
    print(json.dumps({
        "python": sys.executable,
        "prefix": sys.prefix,
        "package": str(pkg),
        "implementation": wirearray.IMPLEMENTATION,
        "info": wirearray.info(),
        "files": sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
                        if "__pycache__" not in p.parts),
    }))
    """
)


def _install_sdist(tmp_path: Path, sdist: Path, **env: str) -> dict:
    python = _fresh_venv(tmp_path / "venv")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIREARRAY_")}
    full_env.pop("PYTHONPATH", None)
    full_env.update(env)
    # pip's default: an isolated build environment with build-system.requires from the index
    _run([str(python), "-m", "pip", "install", "-q", str(sdist)], env=full_env)
    empty = tmp_path / "cwd"
    empty.mkdir()
    run_env = {k: v for k, v in full_env.items() if k != "WIREARRAY_NO_EXTENSION"}
    r = _run([str(python), "-c", _INSPECT], cwd=empty, env=run_env)
    result = json.loads(r.stdout)
    assert Path(result["package"]).is_relative_to(result["prefix"]), result["package"]
    result["cwd"], result["env"] = empty, run_env
    return result


def test_install_from_sdist_builds_the_compiled_core(dists, tmp_path):
    result = _install_sdist(tmp_path, dists[0], WIREARRAY_REQUIRE_EXTENSION="1")
    assert result["implementation"] == "cython", result["info"]
    files = result["files"]
    assert any(f.startswith("_cwire.") and f.endswith((".so", ".pyd")) for f in files), files
    assert "_cwire.pyi" in files, "the compiled module's stub"
    assert [f for f in files if PurePosixPath(f).suffix in SOURCE_SUFFIXES] == []
    # the benchmark harness is installed and runs (without the optional peers)
    for args in (["bench", "--sizes", "16", "--methods", "wa-native"],
                 ["bench", "kernels", "--sizes", "8", "--dtypes", "float64"]):  # fmt: skip
        r = _run([result["python"], "-m", "wirearray", *args], cwd=result["cwd"], env=result["env"])
        assert "GB/s" in r.stdout


def test_install_from_sdist_without_extension_is_pure_python(dists, tmp_path):
    result = _install_sdist(tmp_path, dists[0], WIREARRAY_NO_EXTENSION="1")
    assert result["implementation"] == "python", result["info"]
    # no module, and no stub describing one
    assert [f for f in result["files"] if f.startswith("_cwire.")] == []
    # the reason the fallback runs names the missing extension, not an import accident
    assert "circular" not in result["info"]["extension_error"], result["info"]
    r = subprocess.run(
        [result["python"], "-m", "wirearray", "send", "tcp://127.0.0.1:9", "--random", "f8", "4"],
        cwd=result["cwd"], env=result["env"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_install_without_a_c_compiler_says_how_to_install_without_one(dists, tmp_path):
    """A source build whose compiler does not run fails (no silent fallback) with a
    hint at WIREARRAY_NO_EXTENSION=1."""
    python = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIREARRAY_")}
    env.pop("PYTHONPATH", None)
    env["CC"] = str(tmp_path / "no-such-cc")
    r = subprocess.run(
        [str(python), "-m", "pip", "install", "-v", str(dists[0])],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert r.returncode != 0, r.stdout[-2000:]
    assert "WIREARRAY_NO_EXTENSION=1" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
