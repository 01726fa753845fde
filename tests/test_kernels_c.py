"""The C kernels on their own (tests/c/kernel_check.c), natively and on emulated hosts.

Natively this runs in the normal suite (any C compiler).  The ``emulated`` marker
cross-compiles the same check for aarch64 (the NEON path) and s390x (a big-endian
CPU) and runs it under qemu-user; .ci/run installs the cross compilers and qemu and
runs that marker as its own step, with WIREARRAY_REQUIRE_EMULATED=1 so that missing
tools fail there instead of skipping.  The Python suite on a big-endian (and an arm64)
Python, and interop with it, is test_bigendian_host.py; this checks the kernels and
the host byte-order probe alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "c" / "kernel_check.c"
HEADERS = ROOT / "pyx"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not installed (apt-get install the cross compiler / qemu-user-static)"
        if os.environ.get("WIREARRAY_REQUIRE_EMULATED", "") not in ("", "0"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _build_and_run(cc: list[str], runner: list[str], out: Path, expect_host: str) -> str:
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{HEADERS}"]
    subprocess.run([*cc, *flags, str(SOURCE), "-o", str(out)], check=True, timeout=300)
    r = subprocess.run(
        [*runner, str(out), expect_host], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failures=0" in r.stdout
    return r.stdout


def test_kernels_native(tmp_path):
    import sys

    cc = os.environ.get("CC", "cc")
    _need(cc)
    out = _build_and_run([cc], [], tmp_path / "kernel_check", sys.byteorder)
    assert f"host={sys.byteorder}" in out


@pytest.mark.emulated
@pytest.mark.parametrize(
    ("arch", "host", "paths"),
    [("aarch64", "little", "paths=9"), ("s390x", "big", "paths=1")],
    ids=["aarch64-neon", "s390x-big-endian"],
)
def test_kernels_emulated(tmp_path, arch, host, paths):
    cc = _need(f"{arch}-linux-gnu-gcc")
    qemu = _need(f"qemu-{arch}-static")
    out = _build_and_run([cc, "-static"], [qemu], tmp_path / f"kernel_check-{arch}", host)
    # aarch64: scalar + NEON (bits 0 and 3); s390x: scalar only, big-endian host
    assert paths in out and f"host={host}" in out
