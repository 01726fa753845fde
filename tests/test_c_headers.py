"""The C headers of the compiled core, each compiled on its own against its reference.

* pyx/wa_format.h against src/wirearray/_format.py: tests/c/format_constants.c prints
  every constant and table of the C side (magic, sizes, field offsets, flags, the kind
  rules, the dtype table, header and tail sizes over their whole range), compared here
  with the pure-Python reference.  The compiled functions built on the header are held
  to the reference's results and errors by test_format.py and test_fastpath.py.
* pyx/wa_npyabi.h against numpy's own headers: tests/c/npyabi_check.c includes both and
  asserts at compile time every struct offset, field size, flag value and ABI version
  that wa_npyabi.h declares by hand (numpy headers are not used to build wirearray),
  and at run time its C-API slot indices.

Both need a C compiler (``$CC``, else ``cc``), the numpy check also Python's and
numpy's headers; where one is missing the test is skipped and says which.  The
``emulated`` marker runs the wa_format.h checks once more cross-compiled for aarch64
and for s390x, a big-endian CPU, under qemu-user (the tools as for test_kernels_c.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from wirearray import _format as F

ROOT = Path(__file__).resolve().parent.parent
C_DIR = ROOT / "tests" / "c"
HEADERS = ROOT / "pyx"


def _compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc!r} not found; set CC)")
    return cc


def _build_and_run(
    source: str, out: Path, flags: list[str], cc: list[str] | None = None, runner=()
) -> str:
    build = subprocess.run(
        [*(cc or [_compiler()]), *flags, f"-I{HEADERS}", str(C_DIR / source), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"{source} does not compile:\n{build.stderr[-6000:]}"
    run = subprocess.run([*runner, str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run.stdout


# ---- wa_format.h ----


def _fixed_field_offsets() -> list[int]:
    """Offsets of the fixed header fields in the reference's struct layout."""
    items = re.findall(r"\d*[a-zA-Z]", F._FIXED.format.lstrip(">!<=@"))
    return [struct.calcsize(">" + "".join(items[:k])) for k in range(len(items))]


FORMAT_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def c_format(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("format") / "format_constants"
    return json.loads(_build_and_run("format_constants.c", out, FORMAT_FLAGS))


def test_format_constants_match_the_reference(c_format):
    c = c_format
    assert bytes(c["magic"]) == F.MAGIC
    assert c["version"] == F.VERSION and c["version_control"] == F.VERSION_CONTROL
    assert c["version_time"] == F.VERSION_TIME and c["max_multiplier"] == F.MAX_MULTIPLIER
    assert c["version_record"] == F.VERSION_RECORD and c["n_codes"] == F.N_CODES
    assert c["codes_v4"] == [F.CODE_BYTES, F.CODE_UNICODE, F.CODE_RAW, F.CODE_RECORD]
    assert c["record_limits"] == [
        F.MAX_ITEMSIZE, F.MAX_DESCRIPTOR, F.MAX_FIELDS, F.MAX_DEPTH, F.MAX_SUBARRAY_NDIM,
        F.MAX_SUBARRAY_ELEMENTS, F.RECORD_ALIGNED, F._RECORD_HEAD.size, F._FIELD_FIXED.size,
    ]  # fmt: skip
    assert c["descriptor_status"] == [F.D_OK, *F.DESCRIPTOR_ERRORS]
    assert c["align"] == F.ALIGN
    assert c["fixed_header"] == F.FIXED_HEADER
    assert c["min_header"] == F.MIN_HEADER
    assert c["max_ndim"] == F.MAX_NDIM
    assert c["max_name"] == F.MAX_NAME
    assert c["max_header"] == F.MAX_HEADER
    assert c["trailer"] == F.TRAILER
    # magic, version, kind, dtype, flags, ndim, name_len, header_len, count,
    # payload_len, seq, header_crc; then the shape
    offsets = _fixed_field_offsets()
    assert offsets[-1] == F.CRC_OFFSET
    assert c["offsets"] == [*offsets[1:], F.FIXED_HEADER]
    assert c["flags"] == [F.FLAG_BIG_ENDIAN, F.FLAG_FORTRAN, F.FLAG_CHECKSUM, F.FLAGS_KNOWN]


def test_format_kinds_match_the_reference(c_format):
    assert c_format["kinds"] == [F.KIND_ARRAY, F.KIND_MESSAGE, F.KIND_END, F.KIND_ACK, F.KIND_ERROR]
    rules = {
        int(k): (name, bool(a), bool(z), bool(named), v)
        for k, (name, a, z, named, v) in c_format["kind_rules"].items()
    }
    assert rules == F.KIND_RULES


def test_format_dtypes_match_the_reference(c_format):
    every = {int(code): tuple(v) for code, v in c_format["dtypes"].items()}
    # version 4's codes: no fixed item size (count or the descriptor gives it)
    v4 = {code: v for code, v in every.items() if v[5] == 2}
    assert {code: v[0] for code, v in v4.items()} == {**F.FLEX_CHARS, F.CODE_RECORD: "V"}
    assert all(v[1] == 0 and v[3] == F.VERSION_RECORD for v in v4.values())
    assert {code: v[2] for code, v in v4.items()} == {41: 1, 42: 4, 43: 1, 44: 0}
    table = {code: v for code, v in every.items() if code not in v4}
    assert {code: v[0] for code, v in table.items()} == F.DTYPE_CHARS
    assert {code: v[1] for code, v in table.items()} == F.ITEMSIZE
    assert {code: v[3] for code, v in every.items()} == F.CODE_VERSION
    assert {code: (v[0], v[4]) for code, v in table.items() if v[5]} == F.TIME_CODES
    assert all(v[4] == "" for v in table.values() if not v[5])
    for code, (ch, size, unit, *_) in table.items():
        assert unit == (size // 2 if np.dtype(ch).kind == "c" else size), code


def test_format_sizes_match_the_reference(c_format):
    want = [F.header_size(n, k) for n in range(F.MAX_NDIM + 1) for k in range(F.MAX_NAME + 1)]
    assert c_format["header_size"] == want
    want_tail = [[F.frame_tail(n, False), F.frame_tail(n, True)] for n in range(3 * F.ALIGN)]
    assert c_format["frame_tail"] == want_tail


def test_format_header_packs_and_checks_as_the_reference(c_format):
    want = F.pack_header(F.KIND_ARRAY, 6, 5, (3, 4), 48, b"ab", 0, 7)
    assert bytes(c_format["header"]) == want
    assert c_format["header_status"] == c_format["status_ok"]
    assert c_format["crc_check"] == [0xE3069283, 0xE3069283]


FORMAT_CHECKS = [
    test_format_constants_match_the_reference,
    test_format_kinds_match_the_reference,
    test_format_dtypes_match_the_reference,
    test_format_sizes_match_the_reference,
    test_format_header_packs_and_checks_as_the_reference,
]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = f"{tool} not installed (apt-get install the cross compiler / qemu-user-static)"
        if os.environ.get("WIREARRAY_REQUIRE_EMULATED", "") not in ("", "0"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.mark.emulated
@pytest.mark.parametrize("arch", ["aarch64", "s390x"])
def test_format_header_on_emulated_hosts(tmp_path, arch):
    """The same checks with wa_format.h built for arm64 and for big-endian s390x."""
    cc, qemu = _need(f"{arch}-linux-gnu-gcc"), _need(f"qemu-{arch}-static")
    out = tmp_path / f"format_constants-{arch}"
    c = json.loads(_build_and_run("format_constants.c", out, FORMAT_FLAGS, [cc, "-static"], [qemu]))
    for check in FORMAT_CHECKS:
        check(c)


# ---- wa_npyabi.h ----


def test_npyabi_declarations_are_numpys(tmp_path):
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        pytest.skip(f"Python's C headers are not installed (no Python.h in {include})")
    # -O2: the unused static functions of the headers, the only code that refers to
    # Python's symbols, are dropped, so the program links without libpython.
    flags = ["-O2", "-Wall", "-Wno-unused-function", f"-I{include}", f"-I{np.get_include()}"]
    out = _build_and_run("npyabi_check.c", tmp_path / "npyabi_check", flags)
    assert "npyabi ok" in out
