#!/usr/bin/env python3
"""Checks of built Linux wheels that no test on this x86-64 machine would notice.

* ``glibc WHEEL...``: no shared object in the wheel needs a glibc symbol version newer
  than GLIBC_2.17, the floor of manylinux2014 (CentOS 7; RHEL 8, Ubuntu 20.04 and
  Debian 11 are far above it).  The floor comes from the toolchain (zig's
  ``-target ARCH-linux-gnu.2.17`` links against glibc 2.17's symbol list), so a new
  call into libc cannot silently raise it; this check proves it on every wheel,
  x86-64 included.  auditwheel would refuse the manylinux2014 tag too, but by picking
  a newer tag rather than failing.
* ``isa WHEEL...``: the machine code stays within the architecture's baseline, outside
  the kernels that are only called after a run-time CPU check:

  - s390x: no vector-facility instruction (z13 and later; ``V...`` mnemonics).
    manylinux2014 admits z196 and zEC12, which raise SIGILL on them, and zig's
    default s390x CPU is z13, so the wheel is built with ``-mcpu=z196``;
  - aarch64: nothing beyond ARMv8.0-A (NEON is baseline): no CRC32, LSE atomics,
    RCpc, dot product, SVE, crypto, RDM, complex-number or later instructions.  The
    CRC32C of wa_crc32c.h uses the CRC32 instructions only where the compiler is told
    the CPU has them (__ARM_FEATURE_CRC32), which a wheel's build is not;
  - x86-64: tests/test_simd_baseline.py, run with the suite against the installed
    wheel (it names the dispatched SSSE3/AVX2/SSE4.2 kernels).

  A stripped module cannot be told apart by function, so there the whole module must
  be baseline.
* ``musl WHEEL...``: a musllinux wheel's shared objects are linked against musl alone:
  no glibc symbol version at all, and no needed library but musl's libc by its
  musllinux name, ``libc.musl-ARCH.so.1`` (also its loader), or one that auditwheel
  bundled beside the module (``wirearray.libs/``).  A module that a glibc toolchain
  linked by mistake would load on no musl system.

Exit status 0 when every check passes, 1 with the offending symbols or instructions
listed otherwise.  Needs binutils: ``readelf`` (any architecture) and the
architecture's ``objdump`` (``aarch64-linux-gnu-objdump``, ``s390x-linux-gnu-objdump``;
tools/emulated_hosts.py installs them).

Usage:
    python tools/wheel_checks.py glibc dist/wheelhouse/*.whl
    python tools/wheel_checks.py isa dist/wheelhouse/*aarch64.whl
    python tools/wheel_checks.py musl dist/wheelhouse/*musllinux*.whl
    python tools/wheel_checks.py isa .cache/emulated/s390x/site/wirearray/_cwire*.so
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: manylinux2014's glibc.
GLIBC_FLOOR = (2, 17)

EM_S390 = 22
EM_AARCH64 = 183
EM_X86_64 = 62

#: Functions allowed beyond the baseline, per ELF machine, as regular expressions of
#: their names.  AArch64: gcc's outline atomics (libgcc's __aarch64_ldadd4_acq_rel and
#: kin, linked in by -moutline-atomics, gcc's default) test for LSE at run time and
#: fall back to exclusive loads/stores; wirearray's own code has no dispatched kernel
#: there (NEON is baseline), nor on s390x.
DISPATCHED: dict[int, tuple[str, ...]] = {
    EM_S390: (),
    EM_AARCH64: (
        r"__aarch64_(cas|casp|swp|ldadd|ldclr|ldeor|ldset)\d+_(relax|acq|rel|acq_rel|sync)",
    ),
}

_S390_VECTOR = re.compile(r"^v[a-z0-9]*$")
# AArch64 instructions that ARMv8.0-A does not guarantee.  Hints (paciasp, autiasp,
# bti, ...) execute as NOPs on older CPUs and are not listed.
_AARCH64_BEYOND = re.compile(
    r"""^(
      crc32c?[bhwx]                                                          # CRC32
    | ld(add|clr|eor|set|smax|smin|umax|umin)(a|al|l)?[bh]?
    | st(add|clr|eor|set|smax|smin|umax|umin)l?[bh]?
    | swp(a|al|l)?[bh]? | casp?(a|al|l)?[bh]?                                # LSE (v8.1)
    | sqrdml[as]h                                                            # RDM (v8.1)
    | ldapu?r[bh]? | ldapurs[bhw] | stlur[bh]?                               # RCpc
    | [su]dot | usdot | sudot | [su]mmla | usmmla | bf(cvt\w*|dot|mlal[bt]|mmla)  # bf16
    | fcmla | fcadd | fjcvtzs                                                # v8.3
    | retaa | retab | braa | brab | blraa | blrab | braaz | brabz | blraaz | blrabz
    | eretaa | eretab | ldraa | ldrab | xpac[di]
    | pac(ia|ib|da|db|ga|iza|izb|dza|dzb) | aut(ia|ib|da|db|iza|izb|dza|dzb)  # PAuth, not hints
    | frint(32|64)[xz] | rmif | setf(8|16) | cfinv | axflag | xaflag        # v8.4, v8.5
    | aes[ed] | aes(i)?mc | sha1[chmpsu]\w* | sha256\w+ | sha512\w+
    | eor3 | bcax | rax1 | xar | sm3\w+ | sm4\w+                             # crypto
    | fmlal2? | fmlsl2?                                                      # FHM
    | ptrue\w* | while\w+ | ld1r[bhwd] | st1[bhwd] | ld[1-4][bhwd] | st[2-4][bhwd]
    | addvl | addpl | rdvl | cnt[bhwd] | inc[bhwd] | dec[bhwd]               # SVE
    )$""",
    re.X,
)
_AARCH64_SVE_REG = re.compile(r"\b[zp]\d+\.[bhsdq]\b|\bp\d+/[zm]\b")
# pmull/pmull2 on 64-bit lanes (.1q) is the crypto extension; on 8-bit lanes it is NEON.
_AARCH64_PMULL_Q = re.compile(r"^pmull2?\s+v\d+\.1q")

_FUNCTION = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_INSN = re.compile(r"^\s+[0-9a-f]+:\s+(?P<text>.+)$")
_CLONE = r"(?:\.[A-Za-z_]+(?:\.\d+)?)*"


def beyond_baseline(machine: int, text: str) -> bool:
    """True when the instruction ``text`` (as ``objdump -d --no-show-raw-insn`` prints
    it) is beyond the baseline of ``machine`` (EM_S390 or EM_AARCH64)."""
    words = text.split()
    if not words:
        return False
    mnemonic = words[0].lower()
    if machine == EM_S390:
        return bool(_S390_VECTOR.match(mnemonic))
    if machine == EM_AARCH64:
        return bool(
            _AARCH64_BEYOND.match(mnemonic)
            or _AARCH64_SVE_REG.search(text)
            or _AARCH64_PMULL_Q.match(text.strip())
        )
    raise ValueError(f"no baseline scanner for ELF machine {machine}")


def scan(machine: int, disassembly: str) -> dict[str, list[str]]:
    """Instructions beyond the baseline in objdump's output, by function."""
    found: dict[str, list[str]] = {}
    function = "<before any symbol>"
    for line in disassembly.splitlines():
        m = _FUNCTION.match(line)
        if m:
            function = m["name"]
            continue
        m = _INSN.match(line)
        if m and beyond_baseline(machine, m["text"]):
            found.setdefault(function, []).append(m["text"].strip())
    return found


def stray(machine: int, found: dict[str, list[str]]) -> dict[str, list[str]]:
    """What ``scan`` found outside the dispatched functions (and their gcc clones)."""
    names = DISPATCHED.get(machine, ())
    allowed = re.compile(rf"^({'|'.join(names)}){_CLONE}$") if names else None
    return {fn: i for fn, i in found.items() if allowed is None or not allowed.match(fn)}


def elf_machine(path: Path) -> int:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        raise ValueError(f"{path} is not an ELF file")
    order = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], order)


def glibc_versions(so: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y versions ``so`` needs (its .gnu.version_r), as tuples."""
    out = subprocess.run(
        ["readelf", "-V", "--wide", str(so)], capture_output=True, text=True, check=True
    ).stdout
    return {tuple(map(int, v.split("."))) for v in re.findall(r"Name: GLIBC_([0-9.]+)", out)}


def needed(so: Path) -> list[str]:
    """The DT_NEEDED names of ``so``, in order."""
    out = subprocess.run(
        ["readelf", "-d", "--wide", str(so)], capture_output=True, text=True, check=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _objdump(machine: int) -> str:
    triplet = {EM_S390: "s390x-linux-gnu", EM_AARCH64: "aarch64-linux-gnu"}[machine]
    for tool in (f"{triplet}-objdump", "llvm-objdump"):
        if shutil.which(tool):
            return tool
    raise FileNotFoundError(f"{triplet}-objdump not installed (apt-get install binutils-{triplet})")


def _modules(wheel: Path, into: Path) -> list[Path]:
    """The shared objects of a wheel, extracted into ``into`` (or a .so itself)."""
    if not zipfile.is_zipfile(wheel):
        return [wheel]
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.search(r"\.so(\.|$)", n)]
        z.extractall(into, members=names)
    return [into / n for n in names]


def check_glibc(so: Path) -> list[str]:
    too_new = sorted(v for v in glibc_versions(so) if v > GLIBC_FLOOR)
    return [f"{so.name}: needs GLIBC_{'.'.join(map(str, v))}" for v in too_new]


def check_musl(so: Path) -> list[str]:
    versions = sorted(glibc_versions(so))
    problems = [f"{so.name}: needs GLIBC_{'.'.join(map(str, v))}" for v in versions]
    bundled = {p.name for p in so.parent.parent.glob("*.libs/*")}
    problems += [
        f"{so.name}: needs {lib}, neither musl's libc.musl-ARCH.so.1 nor bundled"
        for lib in needed(so)
        if not re.fullmatch(r"libc\.musl-\w+\.so\.1", lib) and lib not in bundled
    ]
    return problems


def check_isa(so: Path) -> list[str]:
    machine = elf_machine(so)
    if machine == EM_X86_64:
        return []  # tests/test_simd_baseline.py, with the suite
    if machine not in DISPATCHED:
        return [f"{so.name}: no baseline scanner for ELF machine {machine}"]
    tool = _objdump(machine)
    disassembly = subprocess.run(
        [tool, "-d", "--no-show-raw-insn", str(so)], capture_output=True, text=True, check=True
    ).stdout
    if not any(_INSN.match(line) for line in disassembly.splitlines()):
        return [f"{so.name}: {tool} disassembled nothing"]
    return [
        f"{so.name}: {fn}: {len(insns)} beyond the baseline, e.g. {insns[:3]}"
        for fn, insns in stray(machine, scan(machine, disassembly)).items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=["glibc", "isa", "musl"])
    parser.add_argument("wheels", nargs="+", type=Path, help="wheels or shared objects")
    ns = parser.parse_args(argv)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, wheel in enumerate(ns.wheels):
            modules = _modules(wheel, Path(tmp) / str(i))
            if not modules:
                problems.append(f"{wheel.name}: no shared object")
            for so in modules:
                check = {"glibc": check_glibc, "isa": check_isa, "musl": check_musl}[ns.check]
                found = check(so)
                problems += found
                if not found:
                    if ns.check == "glibc":
                        newest = max(glibc_versions(so), default=(0,))
                        detail = "GLIBC_" + ".".join(map(str, newest))
                    elif ns.check == "musl":
                        detail = "needs " + ", ".join(needed(so))
                    else:
                        detail = "baseline only"
                    print(f"{ns.check} ok: {wheel.name}: {so.name} ({detail})")
    for p in problems:
        print(f"{ns.check} FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
