"""The compiled core assumes only the baseline CPU; SIMD is chosen at run time.

Wheels for x86-64 are built without -march (setup.py), so they must run on any x86-64
CPU, which guarantees SSE2 and nothing newer.  The SSSE3/AVX2 byte-swap kernels and the
SSE4.2 CRC32C are compiled per function with __attribute__((target(...))) and only
called after CPUID says the CPU has them (pyx/wa_bswap.h, wa_crc32c.h).  Two checks:

* the disassembly of the built module (objdump -d): every instruction newer than SSE2
  sits inside one of those dispatched functions, including the clones gcc makes of them
  (``wa_swap_avx2.constprop.0``, ``.part.0``, ``.cold``).  A stray one -- from a
  ``-march`` flag, an intrinsic outside the kernels, a compiler inlining a kernel into
  baseline code -- would be a SIGILL on an older CPU that no test on this machine sees.
* the byte-order tests pass in fresh interpreters with each available path forced by
  WIREARRAY_SIMD, so the import-time choice and every kernel run end to end.

On AArch64 NEON is baseline (every arm64 CPU has it) and on s390x the module is portable
C, yet a compiler can still emit what older CPUs of the architecture lack: z13 vector
instructions on s390x (zig's default CPU), ARMv8.1+ ones (CRC32, LSE atomics) on
aarch64.  tools/wheel_checks.py scans the built wheels for them
(tools/build_and_test_wheel.sh runs it on every wheel); here its classifiers are
checked on lines as objdump prints them, and, with the ``emulated`` marker, it scans
the modules that tools/emulated_hosts.py cross-builds from the same C.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import load_cwire

TESTS = Path(__file__).resolve().parent

#: Functions allowed to use instructions beyond the baseline, by their C names.
DISPATCHED = (
    "wa_swap_ssse3", "wa_swap_avx2", "wa_rec_ssse3", "wa_rec_avx2", "wa_crc32c_sse42",
)  # fmt: skip
#: gcc's names for clones and split-off parts: .constprop.0, .isra.0, .part.0, .cold, ...
_CLONE = r"(?:\.[A-Za-z_]+(?:\.\d+)?)*"
_DISPATCHED_RE = re.compile(rf"^({'|'.join(DISPATCHED)}){_CLONE}$")

# Mnemonics (AT&T, objdump's default) of every x86 extension past SSE2 that a compiler
# could emit for this code.  Not listed: tzcnt (objdump's name for `rep bsf`, which gcc
# emits for __builtin_ctz because older CPUs run it as bsf), xgetbv (in the CPUID probe,
# behind the OSXSAVE check), and SSE2 itself (pextrw, pinsrw, movdqu, ...).
_NEWER_THAN_SSE2 = re.compile(
    r"""^(
      addsubp[sd] | h(add|sub)p[sd] | lddqu | movddup | movs[hl]dup | fisttp[sl]?   # SSE3
    | pshufb | palignr | ph(add|sub)(w|d|sw) | pmaddubsw | pmulhrsw
    | psign[bwd] | pabs[bwd]                                                       # SSSE3
    | p?blendv?p?[sdb]?w? | dpp[sd] | extractps | insertps | movntdqa | mpsadbw
    | packusdw | pcmpeqq | pextr[bdq] | pinsr[bdq] | phminposuw | pm(ax|in)(sb|sd|ud|uw)
    | pmov[sz]x(bw|bd|bq|wd|wq|dq) | pmuldq | pmulld | ptest | round[ps][sd]         # SSE4.1
    | crc32[bwlq]? | pcmp[ei]str[im] | pcmpgtq                                      # SSE4.2
    | popcnt[wlq]? | lzcnt[wlq]? | movbe[wlq]? | andn[lq]? | bextr[lq]? | bls(i|msk|r)[lq]?
    | bzhi[lq]? | mulx[lq]? | pdep[lq]? | pext[lq]? | rorx[lq]? | (sar|shl|shr)x[lq]?
    | adc[ox][lq]? | aes\w+ | pclmul\w+ | sha(1|256)\w+                            # BMI, etc.
    | v\w+                                                             # VEX/EVEX: AVX, AVX2, ...
    )$""",
    re.X,
)
_WIDE_REGISTER = re.compile(r"%[yz]mm\d|%k[0-7]\b")  # AVX/AVX2 and AVX-512 registers
_PREFIXES = {
    "rep", "repz", "repe", "repnz", "repne", "lock", "notrack", "bnd", "data16", "addr32",
    "cs", "ds", "es", "fs", "gs", "ss",
}  # fmt: skip
_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_INSN = re.compile(r"^\s+[0-9a-f]+:\s+(?P<text>.+)$")


def _is_beyond_baseline(text: str) -> bool:
    words = text.split()
    while words and words[0] in _PREFIXES:
        words = words[1:]
    if not words:
        return False
    mnemonic = words[0]
    if mnemonic in ("verr", "verw"):  # the only baseline mnemonics starting with v
        return False
    return bool(_NEWER_THAN_SSE2.match(mnemonic) or _WIDE_REGISTER.search(text))


def scan(disassembly: str) -> dict[str, list[str]]:
    """Instructions newer than SSE2 in ``objdump -d --no-show-raw-insn`` output, by function."""
    found: dict[str, list[str]] = {}
    function = "<before any symbol>"
    for line in disassembly.splitlines():
        m = _FUNCTION.match(line)
        if m:
            function = m["name"]
            continue
        m = _INSN.match(line)
        if m and _is_beyond_baseline(m["text"]):
            found.setdefault(function, []).append(m["text"].strip())
    return found


def test_scanner_recognises_instruction_sets():
    """The classifier itself, on lines as objdump prints them."""
    beyond = [
        "pshufb %xmm1,%xmm0", "vpshufb %ymm1,%ymm0,%ymm0", "vzeroupper",
        "vmovdqu (%rsi),%xmm0", "crc32q (%rsi),%rax", "crc32b %dl,%eax",
        "palignr $0x8,%xmm1,%xmm0", "pmovzxbw %xmm0,%xmm1", "popcnt %rdi,%rax",
        "shlx %rax,%rdx,%rcx", "movddup %xmm0,%xmm0", "ptest %xmm0,%xmm0",
        "pinsrd $0x1,%eax,%xmm0", "blendvpd %xmm0,%xmm2,%xmm1",
    ]  # fmt: skip
    baseline = [
        "movdqu (%rsi),%xmm0", "pshufd $0x1b,%xmm0,%xmm0", "pextrw $0x0,%xmm0,%eax",
        "bswap %rax", "rep stos %rax,%es:(%rdi)", "tzcnt %rax,%rax", "movnti %rax,(%rdi)",
        "notrack jmp *%rax", "punpcklbw %xmm1,%xmm0", "cvttsd2si %xmm0,%rax", "xgetbv",
        "pshuflw $0x1b,%xmm0,%xmm0", "pslldq $0x8,%xmm0", "psrlw $0x8,%xmm0", "ret",
    ]  # fmt: skip
    assert [t for t in beyond if not _is_beyond_baseline(t)] == []
    assert [t for t in baseline if _is_beyond_baseline(t)] == []
    assert _DISPATCHED_RE.match("wa_swap_avx2.constprop.0")
    assert _DISPATCHED_RE.match("wa_crc32c_sse42.part.0.cold")
    assert not _DISPATCHED_RE.match("wa_swap_scalar")
    assert not _DISPATCHED_RE.match("wa_swap_avx2_helper")


def _objdump_of_x86_64_elf(path: Path) -> str:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        pytest.skip(f"{path.name} is not an ELF file (the check reads Linux builds)")
    if header[5] != 1 or int.from_bytes(header[18:20], "little") != 62:  # EM_X86_64
        pytest.skip(f"{path.name} is not an x86-64 module; SIMD is baseline or absent there")
    objdump = shutil.which("objdump") or shutil.which("llvm-objdump")
    if objdump is None:
        pytest.skip("objdump not installed (binutils)")
    symbols = subprocess.run(
        [objdump, "-t", str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    # Stripped (as distributions do): only exported symbols are left, and the static
    # functions of the module cannot be told apart.
    if "__pyx_" not in symbols:
        pytest.skip(f"{path.name} has no symbol table (stripped): functions cannot be told apart")
    return subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout


def test_only_dispatched_kernels_use_simd_beyond_sse2():
    module = Path(load_cwire().__file__)
    found = scan(_objdump_of_x86_64_elf(module))

    stray = {fn: insns for fn, insns in found.items() if not _DISPATCHED_RE.match(fn)}
    assert stray == {}, (
        f"{module.name}: instructions newer than SSE2 outside the run-time dispatched "
        f"kernels {DISPATCHED} (first 5 per function): "
        + "; ".join(f"{fn}: {insns[:5]}" for fn, insns in stray.items())
    )

    # And the check is not vacuous: each kernel is there and uses what it is for.
    def used_in(base: str) -> str:
        return " | ".join(
            " | ".join(insns) for fn, insns in found.items() if fn.split(".")[0] == base
        )

    assert "pshufb" in used_in("wa_swap_ssse3")
    assert "vpshufb" in used_in("wa_swap_avx2") and "%ymm" in used_in("wa_swap_avx2")
    assert "crc32" in used_in("wa_crc32c_sse42")
    assert "pshufb" in used_in("wa_rec_ssse3")
    assert "vpshufb" in used_in("wa_rec_avx2") and "%ymm" in used_in("wa_rec_avx2")


# ---- every path forced, in fresh interpreters ----

#: The focused subset: every byte-order entry point, contiguous and strided, with and
#: without streaming stores, records and datetimes included, against numpy.
SUBSET = (
    "test_byteorder.py", "test_differential.py", "test_scalars.py", "test_records.py",
    "test_datetimes.py",
)  # fmt: skip

# conftest's fixtures restore the path chosen at import (here the forced one) after
# each test, so every `impl` test runs on it; the `path_impl` tests still visit each
# path explicitly, as they should.
_RUNNER = textwrap.dedent(
    """
    import os, sys
    forced = os.environ["WIREARRAY_SIMD"]
    import wirearray
    from wirearray import _cwire
    assert wirearray.info()["simd"] == forced, wirearray.info()
    import pytest
    code = pytest.main(sys.argv[1:])
    assert _cwire.get_simd() == forced, _cwire.get_simd()
    sys.exit(int(code))
    """
)


def _available_paths() -> list[str]:
    try:
        from wirearray import _cwire
    except ImportError:
        return []
    return list(_cwire.simd_paths())


@pytest.mark.parametrize("path", _available_paths() or ["(none)"])
def test_byteorder_suite_with_path_forced(path, tmp_path):
    load_cwire()
    env = {k: v for k, v in os.environ.items() if k != "WIREARRAY_PUREPYTHON"}
    env.update(WIREARRAY_SIMD=path, WIREARRAY_REQUIRE_EXTENSION="1")
    args = [str(TESTS / name) for name in SUBSET]
    r = subprocess.run(
        [sys.executable, "-c", _RUNNER, "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,  # hypothesis keeps its database in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert re.search(r"\d+ passed", r.stdout), r.stdout[-2000:]


# ---- s390x and aarch64: tools/wheel_checks.py ----


def _tool(name: str):
    """tools/NAME.py of the source tree, imported (absent where only tests/ is copied,
    as when testing an installed wheel)."""
    path = TESTS.parent / "tools" / f"{name}.py"
    if not path.is_file():
        pytest.skip(f"needs the source tree's tools/{name}.py")
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _wheel_checks():
    return _tool("wheel_checks")


def test_s390x_and_aarch64_scanners_recognise_instruction_sets():
    wc = _wheel_checks()
    s390x_beyond = [
        "vl\t%v0,0(%r2)", "vst\t%v24,0(%r1),3", "vperm\t%v0,%v1,%v2,%v3",
        "vlrepg\t%v0,0(%r3)", "vgbm\t%v0,0", "vlgvf\t%r1,%v0,0",
    ]  # fmt: skip
    s390x_baseline = [
        "lg\t%r1,8(%r15)", "stg\t%r2,0(%r3)", "lrvg\t%r1,0(%r2)", "strv\t%r1,0(%r2)",
        "brasl\t%r14,0", "locgr\t%r1,%r2", "risbg\t%r1,%r2,0,63,0", "br\t%r14",
    ]  # fmt: skip
    a64_beyond = [
        "crc32cx\tw0, w0, x1", "crc32b\tw0, w0, w1", "ldaddal\tw0, w0, [x1]",
        "casal\tx0, x1, [x2]", "swpl\tw0, w1, [x2]", "ldapr\tx0, [x1]",
        "sdot\tv0.4s, v1.16b, v2.16b", "ld1w\t{z0.s}, p0/z, [x0]",
        "ptrue\tp0.b", "aese\tv0.16b, v1.16b", "pmull\tv0.1q, v1.1d, v2.1d",
        "fcmla\tv0.4s, v1.4s, v2.4s, #90", "sqrdmlah\tv0.4s, v1.4s, v2.4s",
    ]  # fmt: skip
    a64_baseline = [
        "rev\tx0, x1", "rev32\tv0.16b, v1.16b", "tbl\tv0.16b, {v1.16b}, v2.16b",
        "ld1r\t{v0.4s}, [x0]", "ld1\t{v0.16b}, [x0]", "bfi\tx14, x15, #32, #32",
        "bfxil\tw10, w9, #0, #1", "ldaxr\tw2, [x0]", "stlxr\tw3, w1, [x0]",
        "pmull\tv0.8h, v1.8b, v2.8b", "paciasp", "autiasp", "ushl\tv0.2d, v1.2d, v2.2d",
    ]  # fmt: skip
    assert [t for t in s390x_beyond if not wc.beyond_baseline(wc.EM_S390, t)] == []
    assert [t for t in s390x_baseline if wc.beyond_baseline(wc.EM_S390, t)] == []
    assert [t for t in a64_beyond if not wc.beyond_baseline(wc.EM_AARCH64, t)] == []
    assert [t for t in a64_baseline if wc.beyond_baseline(wc.EM_AARCH64, t)] == []
    # gcc's outline atomics test for LSE at run time: dispatched, like the x86 kernels
    found = {"__aarch64_ldadd4_acq_rel": ["ldaddal w0, w0, [x1]"], "f": ["crc32b w0, w0, w1"]}
    assert wc.stray(wc.EM_AARCH64, found) == {"f": ["crc32b w0, w0, w1"]}
    assert wc.stray(wc.EM_S390, {"f": ["vl %v0,0(%r2)"]}) == {"f": ["vl %v0,0(%r2)"]}


def test_glibc_floor_check_reads_symbol_versions(tmp_path):
    """The glibc check on this host's own module: it finds GLIBC_ versions, and a
    floor below the newest one found would fail."""
    wc = _wheel_checks()
    if shutil.which("readelf") is None:
        pytest.skip("readelf not installed (binutils)")
    module = Path(load_cwire().__file__)
    if module.read_bytes()[:4] != b"\x7fELF":
        pytest.skip("not an ELF module")
    versions = wc.glibc_versions(module)
    assert versions and all(v >= (2, 2) for v in versions), versions


def test_musl_check_refuses_a_glibc_linked_module():
    """The musllinux check on this host's own module, which glibc's toolchain linked:
    it names libc.so.6 and the GLIBC_ versions, so a musllinux wheel holding such a
    module could not pass."""
    wc = _wheel_checks()
    if shutil.which("readelf") is None:
        pytest.skip("readelf not installed (binutils)")
    module = Path(load_cwire().__file__)
    if module.read_bytes()[:4] != b"\x7fELF" or "libc.so.6" not in wc.needed(module):
        pytest.skip("not a glibc-linked ELF module")
    problems = wc.check_musl(module)
    assert any("needs libc.so.6" in p for p in problems), problems
    assert any("needs GLIBC_2." in p for p in problems), problems


@pytest.mark.emulated
@pytest.mark.parametrize("arch", ["s390x", "aarch64"])
def test_cross_built_module_stays_within_baseline(arch):
    """The C of pyx/ compiled for s390x and aarch64 (tools/emulated_hosts.py) has no
    instruction the oldest CPUs of those architectures lack."""
    wc = _wheel_checks()
    eh = _tool("emulated_hosts")
    try:
        host = eh.setup(arch)
    except eh.ToolsMissing as exc:
        if os.environ.get("WIREARRAY_REQUIRE_EMULATED", "") not in ("", "0"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    (module,) = (host.site / "wirearray").glob("_cwire*.so")
    assert wc.check_isa(module) == []
