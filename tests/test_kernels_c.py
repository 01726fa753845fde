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
import sys
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


def _byteorder_of_program(path: Path) -> str | None:
    """The byte order an ELF executable was built for (EI_DATA), None if not ELF."""
    head = path.read_bytes()[:6]
    if head[:4] != b"\x7fELF":
        return None
    return {1: "little", 2: "big"}.get(head[5])


def _build_and_run(cc: list[str], runner: list[str], out: Path, expect_host: str | None) -> str:
    """Build the check, run it, and have it compare its byte-order probe with
    ``expect_host`` (None: the byte order the program was built for, from its ELF
    header, else this Python's)."""
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{HEADERS}"]
    subprocess.run([*cc, *flags, str(SOURCE), "-o", str(out)], check=True, timeout=300)
    if expect_host is None:
        expect_host = _byteorder_of_program(out) or sys.byteorder
    r = subprocess.run(
        [*runner, str(out), expect_host], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failures=0" in r.stdout
    return r.stdout


def test_kernels_native(tmp_path):
    """With the C compiler at hand.  Its target is the program's, which is not this
    Python's machine when the suite runs on an emulated host (a big-endian s390x
    Python under qemu-user calls the x86-64 ``cc``): the expected byte order is read
    from the program built."""
    cc = os.environ.get("CC", "cc")
    _need(cc)
    out = _build_and_run([cc], [], tmp_path / "kernel_check", None)
    expected = _byteorder_of_program(tmp_path / "kernel_check") or sys.byteorder
    assert f"host={expected}" in out


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
