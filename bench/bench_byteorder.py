"""Benchmarks of wirearray's byte-order core against struct, numpy, array and memcpy.

Run with ``pytest bench/`` (``--bench-quick`` drops the 8M-element sizes); a plain
``pytest`` at the repository root does not collect this directory.

Every case (dtype x size) is one pytest-benchmark group, so each table lines the
implementations up against the same baselines:

* ``np.copyto (memcpy ceiling)``: a same-dtype copy, the speed limit of any
  out-of-place conversion into ``out=``;
* ``numpy a.copy() (allocating ceiling)``: the same with its result allocated (the
  allocation, huge-page advice and page faults an allocating ``hton(a)`` pays too);
* ``numpy a.byteswap()``: what a numpy user writes today.

Three kinds of group:

* ``hton <dtype> n=<n>``: out-of-place conversion to big-endian (or a plain swap,
  which is the same bytes on a little-endian host);
* ``inplace <dtype> n=<n>``: swapping an array's own memory;
* ``simd hton float64 n=<n>``: the compiled kernel with each SIMD path forced, into a
  preallocated ``out=`` so only the kernel is timed.

Each benchmark checks its result once, outside the timed part, against numpy, and
records the implementation and SIMD path that ran in ``extra_info`` (saved with
``--benchmark-json``/``--benchmark-save``).  conftest.py prints a summary of medians
and ratios to the baselines at the end of the session.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import pytest

from wirearray import fallback

try:
    from wirearray import _cwire
except ImportError:  # pragma: no cover - a build without the extension
    _cwire = None

CWIRE_MISSING = "wirearray._cwire (compiled core) is not importable"

DTYPES = ("float64", "int32", "int16", "complex128")
SIZES = (8, 1024, 100_000, 8_388_608)
#: Sizes from here on stream from DRAM; ``--bench-quick`` drops them.
DRAM_N = 8_388_608
#: ``struct.pack(fmt, *a)`` takes about 0.1 s per million items: not run beyond this.
STRUCT_MAX_N = 100_000
SIMD_PATHS = ("scalar", "ssse3", "avx2", "neon")
SIMD_SIZES = (100_000, DRAM_N)

HOST_IS_LITTLE = sys.byteorder == "little"

# What a method's result must hold, as bytes:
#   "big":     the values in big-endian order (a conversion to network order);
#   "swapped": every number's bytes reversed (the same as "big" on a little-endian
#              host, a swap away from it on a big-endian one);
#   "same":    the input's bytes (a plain copy).
Expect = Literal["big", "swapped", "same"]

Timed = Callable[[], Any]


@dataclass(frozen=True)
class Case:
    dtype: str
    n: int

    def __str__(self) -> str:
        return f"{self.dtype}-{self.n}"


@dataclass(frozen=True)
class Method:
    """One way of doing the job.  ``setup(a)`` does the untimed preparation (allocating
    ``out=``, private copies) and returns the callable that is timed."""

    name: str
    implementation: str  # "cython", "python", "numpy", "struct", "array"
    expect: Expect
    setup: Callable[[np.ndarray], Timed]
    needs_cwire: bool = False
    max_n: int | None = None

    def __str__(self) -> str:
        return self.name


def _params(cases: list[Case]) -> list[Any]:
    """Cases as pytest params; the DRAM-sized ones carry the ``dram`` marker."""
    return [
        pytest.param(c, id=str(c), marks=pytest.mark.dram if c.n >= DRAM_N else ()) for c in cases
    ]


#: The allocating conversion against numpy's own allocating copy (``a.copy()``: the same
#: allocation, huge-page advice and page faults) also at 16M float64 (128 MiB).
ALLOC_N = 16_777_216
CASES = _params([Case(dt, n) for dt in DTYPES for n in SIZES] + [Case("float64", ALLOC_N)])
SIMD_CASES = _params([Case("float64", n) for n in SIMD_SIZES])


# ---- inputs and references ----


@cache
def make_input(dtype: str, n: int) -> np.ndarray:
    """A native-order, read-only test array (cached: 8M complex128 takes a while)."""
    rng = np.random.default_rng(n)
    dt = np.dtype(dtype)
    if dt.kind == "c":
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    elif dt.kind == "f":
        a = rng.standard_normal(n).astype(dt)
    else:
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    a.flags.writeable = False
    return a


def expected_bytes(a: np.ndarray, expect: Expect) -> bytes:
    if expect == "big":
        return a.astype(a.dtype.newbyteorder(">")).tobytes()
    if expect == "swapped":
        return a.byteswap().tobytes()
    return a.tobytes()


def as_bytes(result: bytes | np.ndarray | array.array) -> bytes:
    return result if isinstance(result, bytes) else result.tobytes()


def check(method: Method, a: np.ndarray, fn: Timed) -> None:
    """Run ``fn`` once, untimed, and compare its result with numpy's."""
    got = as_bytes(fn())
    assert got == expected_bytes(a, method.expect), f"{method.name} gave wrong bytes"


# ---- the peers ----


def struct_format(a: np.ndarray) -> tuple[str, np.ndarray]:
    """``'>' + count + code`` for ``struct.pack`` and the array whose items to pass
    (complex numbers go as pairs of floats)."""
    if a.dtype.kind == "c":
        a = a.view(a.real.dtype)
    return f">{a.size}{a.dtype.char}", a


def array_typecode(dt: np.dtype) -> str:
    """The ``array.array`` typecode with ``dt``'s kind and item size (complex: the
    typecode of one component)."""
    if dt.kind == "c":
        dt = np.dtype(f"f{dt.itemsize // 2}")
    codes = {"f": "fd", "i": "bhilq", "u": "BHILQ"}[dt.kind]
    for code in codes:
        if array.array(code).itemsize == dt.itemsize:
            return code
    raise LookupError(f"array.array has no typecode for {dt}")


def _struct(a: np.ndarray) -> Timed:
    fmt, items = struct_format(a)
    return lambda: struct.pack(fmt, *items)


def _array_copy_swap(a: np.ndarray) -> Timed:
    code = array_typecode(a.dtype)
    mem = memoryview(a).cast("B")

    def run() -> array.array:
        # frombytes is one memcpy; the array(code, memoryview) constructor would
        # iterate item by item instead.
        arr = array.array(code)
        arr.frombytes(mem)
        arr.byteswap()
        return arr

    return run


def _array_inplace(a: np.ndarray) -> Timed:
    arr = array.array(array_typecode(a.dtype))
    arr.frombytes(memoryview(a).cast("B"))

    def run() -> array.array:
        arr.byteswap()
        return arr

    return run


def _cwire_hton(a: np.ndarray) -> Timed:
    assert _cwire is not None
    return lambda: _cwire.hton(a)


def _cwire_hton_out(a: np.ndarray) -> Timed:
    assert _cwire is not None
    out = np.empty_like(a, dtype=a.dtype.newbyteorder(">"))
    return lambda: _cwire.hton(a, out=out)


def _cwire_byteswap_inplace(x: np.ndarray) -> object:
    assert _cwire is not None
    return _cwire.byteswap(x, inplace=True)


def _copyto(a: np.ndarray) -> Timed:
    out = np.empty_like(a)

    def run() -> np.ndarray:
        np.copyto(out, a)
        return out

    return run


def _inplace(swap: Callable[[np.ndarray], object]) -> Callable[[np.ndarray], Timed]:
    def setup(a: np.ndarray) -> Timed:
        x = a.copy()  # a private, writable copy: the cached input stays as it is
        return lambda: swap(x)

    return setup


BASELINE_COPY = "np.copyto (memcpy ceiling)"
BASELINE_SWAP = "numpy a.byteswap()"
#: the ceiling of an allocating conversion (``wirearray-cython hton`` lines up with it)
BASELINE_ALLOC = "numpy a.copy() (allocating ceiling)"

COPY_METHODS = [
    Method("wirearray-cython hton", "cython", "big", _cwire_hton, needs_cwire=True),
    Method("wirearray-cython hton out=", "cython", "big", _cwire_hton_out, needs_cwire=True),
    Method("wirearray-python hton", "python", "big", lambda a: lambda: fallback.hton(a)),
    Method("struct", "struct", "big", _struct, max_n=STRUCT_MAX_N),
    Method(BASELINE_SWAP, "numpy", "swapped", lambda a: a.byteswap),
    Method(
        "numpy astype('>..')",
        "numpy",
        "big",
        lambda a: lambda: a.astype(a.dtype.newbyteorder(">")),
    ),
    Method("array.array.byteswap", "array", "swapped", _array_copy_swap),
    Method(BASELINE_COPY, "numpy", "same", _copyto),
    Method(BASELINE_ALLOC, "numpy", "same", lambda a: a.copy),
]

INPLACE_METHODS = [
    Method(
        "wirearray-cython byteswap inplace",
        "cython",
        "swapped",
        _inplace(_cwire_byteswap_inplace),
        needs_cwire=True,
    ),
    Method(
        "wirearray-python byteswap inplace",
        "python",
        "swapped",
        _inplace(lambda x: fallback.byteswap(x, inplace=True)),
    ),
    Method(
        "numpy a.byteswap(inplace=True)",
        "numpy",
        "swapped",
        _inplace(lambda x: x.byteswap(inplace=True)),
    ),
    Method("array.array.byteswap() in place", "array", "swapped", _array_inplace),
]


def simd_path_of(method: Method) -> str:
    """The kernel path the method runs, as recorded in extra_info."""
    if method.implementation == "cython" and _cwire is not None:
        return _cwire.get_simd()
    if method.implementation in ("python", "numpy"):
        return "numpy"
    return "n/a"


def run_benchmark(benchmark: Any, group: str, method: Method, case: Case) -> None:
    if method.needs_cwire and _cwire is None:
        pytest.skip(CWIRE_MISSING)
    if method.max_n is not None and case.n > method.max_n:
        pytest.skip(f"{method.name} is too slow beyond n={method.max_n:_}")
    a = make_input(case.dtype, case.n)
    fn = method.setup(a)
    check(method, a, fn)  # also the warm-up call: first-touch page faults of out=
    benchmark.group = group
    benchmark.extra_info.update(
        method=method.name,
        implementation=method.implementation,
        simd=simd_path_of(method),
        dtype=case.dtype,
        n=case.n,
        nbytes=a.nbytes,
    )
    benchmark(fn)


# ---- the benchmarks ----


@pytest.mark.parametrize("method", COPY_METHODS, ids=str)
@pytest.mark.parametrize("case", CASES)
def bench_hton(benchmark: Any, case: Case, method: Method) -> None:
    """Out of place: native array -> big-endian bytes."""
    run_benchmark(benchmark, f"hton {case.dtype} n={case.n}", method, case)


@pytest.mark.parametrize("method", INPLACE_METHODS, ids=str)
@pytest.mark.parametrize("case", CASES)
def bench_inplace(benchmark: Any, case: Case, method: Method) -> None:
    """In place: swap an array's own memory."""
    run_benchmark(benchmark, f"inplace {case.dtype} n={case.n}", method, case)


@contextmanager
def simd_forced(path: str) -> Iterator[None]:
    """Force the compiled core's kernel path, then put back the one that ran before
    (the "auto" choice unless WIREARRAY_SIMD forced another)."""
    assert _cwire is not None
    before = _cwire.get_simd()
    _cwire.set_simd(path)
    try:
        yield
    finally:
        _cwire.set_simd(before)


SIMD_BASELINES = [m for m in COPY_METHODS if m.name in (BASELINE_COPY, BASELINE_SWAP)]


@pytest.mark.parametrize("variant", [*SIMD_PATHS, *(m.name for m in SIMD_BASELINES)], ids=str)
@pytest.mark.parametrize("case", SIMD_CASES)
def bench_simd(benchmark: Any, case: Case, variant: str) -> None:
    """The compiled hton kernel with each SIMD path forced, next to the baselines."""
    group = f"simd hton {case.dtype} n={case.n}"
    if variant not in SIMD_PATHS:
        method = next(m for m in SIMD_BASELINES if m.name == variant)
        run_benchmark(benchmark, group, method, case)
        return
    if _cwire is None:
        pytest.skip(CWIRE_MISSING)
    if variant not in _cwire.simd_paths():
        pytest.skip(f"SIMD path {variant!r} not available here: {_cwire.simd_paths()}")
    method = Method(f"wirearray-cython hton out= [{variant}]", "cython", "big", _cwire_hton_out)
    with simd_forced(variant):
        run_benchmark(benchmark, group, method, case)
