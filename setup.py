"""Build the compiled core (pyx/_cwire.pyx -> wirearray._cwire).

One extension module from the files of pyx/: _cwire.pyx includes the .pxi files,
wa.pxd declares the C headers wa_*.h (_cwire.pyx says which file does what).
Everything else is in pyproject.toml.  The build needs Cython and a C compiler but no
numpy headers: arrays come in through numpy's C ABI declared in pyx/wa_npyabi.h.
Set WIREARRAY_NO_EXTENSION=1 to install the pure-Python package only; PyPy and other
non-CPython interpreters get it without asking: the compiled module is written against
CPython's C API and numpy's C ABI (wa_npyabi.h), which PyPy only emulates.
Wheels: [tool.cibuildwheel] in pyproject.toml; what the sdist holds: MANIFEST.in.
"""

import os
import sys
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

NO_COMPILER_HINT = """
wirearray: building the compiled core failed ({error}).
  It needs a C compiler (gcc or clang; MSVC Build Tools on Windows) and Python's
  headers (e.g. python3-dev).  Without them, install the pure-Python package, which
  gives the same results more slowly:
      WIREARRAY_NO_EXTENSION=1 pip install ...
"""


class BuildExt(build_ext):
    """build_ext that says what to do when there is no working C compiler, then fails
    as before (a silent fallback would hide a broken toolchain from those who want
    the compiled core)."""

    def run(self):
        try:
            super().run()  # finding the compiler (PlatformError: no MSVC) and compiling
        except (CCompilerError, CompileError, ExecError, LinkError, PlatformError) as exc:
            sys.stderr.write(NO_COMPILER_HINT.format(error=exc))
            raise


ext_modules = []
want_extension = os.environ.get("WIREARRAY_NO_EXTENSION", "") in ("", "0")
if want_extension and sys.implementation.name == "cpython":
    from Cython.Build import cythonize

    if sys.platform == "win32":
        extra_compile_args = ["/O2"]
    else:
        # -O3: the scalar fallback loops are vectorised where the baseline ISA allows.
        # No -march: wheels must run on the baseline CPU; SIMD is dispatched at run time.
        extra_compile_args = ["-O3", "-fno-strict-aliasing"]
    ext_modules = cythonize(
        [
            Extension(
                "wirearray._cwire",
                ["pyx/_cwire.pyx"],
                include_dirs=["pyx"],
                # Cython tracks the .pxi/.pxd it reads; the C compile needs the headers.
                depends=sorted(glob("pyx/*.h")),
                extra_compile_args=extra_compile_args,
            )
        ],
        compiler_directives={"language_level": "3"},
    )

# The compiled module's stub ships with the module only: a pure-Python install has no
# wirearray._cwire to describe.  (setuptools installs *.pyi even when not listed.)
exclude_package_data = {} if ext_modules else {"wirearray": ["_cwire.pyi"]}

setup(
    ext_modules=ext_modules,
    exclude_package_data=exclude_package_data,
    cmdclass={"build_ext": BuildExt},
)
