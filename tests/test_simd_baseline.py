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

On AArch64 NEON is baseline (every arm64 CPU has it), so there is nothing to check there
beyond the ``path_impl`` tests; on other ISAs the module is portable C.
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
DISPATCHED = ("wa_swap_ssse3", "wa_swap_avx2", "wa_crc32c_sse42")
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


# ---- every path forced, in fresh interpreters ----

#: The focused subset: every byte-order entry point, contiguous and strided, with and
#: without streaming stores, against numpy.
SUBSET = ("test_byteorder.py", "test_differential.py", "test_scalars.py")

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
