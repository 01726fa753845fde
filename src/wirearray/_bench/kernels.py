"""Timing of the byte-order kernels for the command line (``wirearray demo --kernels``
and ``wirearray bench kernels``; the parser lives in wirearray.cli).

``demo --kernels`` shows what the byte-order core does on this machine: for float64 arrays from
1 KiB to 256 MiB it times ``wirearray.hton``/``ntoh`` into preallocated arrays next to
numpy's ``a.byteswap()``, ``a.astype('>f8')`` and a plain ``np.copyto`` (the memcpy
ceiling), and the allocating ``wirearray.hton(a)`` next to ``a.copy()``; checks that
they all give the same numbers, and prints GB/s and ratios.

``bench kernels`` does the same over the dtypes and sizes of the pytest-benchmark
suite in bench/ (or those of ``--dtypes``/``--sizes``), can write the medians as JSON
for a quick comparison between machines or builds without pytest, and with ``--plot``
draws GB/s against size per dtype (:mod:`.plot`).

Both print which implementation (compiled or pure-Python) and SIMD path ran; set
``WIREARRAY_PUREPYTHON=1`` or ``WIREARRAY_SIMD=...`` to measure another one.
"""

from __future__ import annotations

import gc
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from time import perf_counter

import numpy as np

import wirearray

from .results import machine

KIB = 1 << 10
MIB = 1 << 20

DEMO_SIZES = (1 * KIB, 64 * KIB, 1 * MIB, 16 * MIB, 256 * MIB)  # bytes of float64
KERNEL_DTYPES = ("float64", "int32", "int16", "complex128")
KERNEL_COUNTS = (8, 1024, 100_000, 8_388_608)  # items, as in bench/bench_byteorder.py
# --quick drops the last (largest) size of either list.

# Timing: one sample batches enough calls to last SAMPLE_S (timer overhead and
# resolution stay below 1%), and each measurement takes REPEATS samples, fewer once it
# has used BUDGET_S: the whole demo stays under about 20 s even with 256 MiB arrays.
SAMPLE_S = 1e-3
MIN_REPEATS = 3
REPEATS = 25
BUDGET_S = 0.3

#: The operations timed, in table order, with what each row's column header means.
OPS = {
    "hton": "wirearray.hton(a, out=pre)",
    "ntoh": "wirearray.ntoh(be, out=pre)",
    "byteswap": "a.byteswap()",
    "astype": "a.astype(big-endian dtype)",
    "copyto": "np.copyto(pre, a) (same dtype: the memcpy ceiling)",
    "hton new": "wirearray.hton(a) (result allocated)",
    "copy": "a.copy() (allocated: the ceiling of an allocating conversion)",
}


@dataclass(frozen=True)
class Result:
    dtype: str
    n: int
    nbytes: int
    op: str
    median_s: float
    samples: int

    @property
    def gbps(self) -> float:
        return self.nbytes / self.median_s / 1e9


# ---- arrays and checks ----


def make_array(dtype: str, n: int) -> np.ndarray:
    """Random native-order data (no NaN, so values compare with ==)."""
    rng = np.random.default_rng(n)
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    if dt.kind == "f":
        return rng.standard_normal(n).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)


def _bits(x: np.ndarray) -> np.ndarray:
    """``x``'s numbers as unsigned integers read in ``x``'s own byte order, so that
    comparing two of these compares values bit for bit across byte orders."""
    dt = x.dtype
    unit = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    return x.view(np.dtype(f"u{unit}").newbyteorder(dt.byteorder))


def _same_numbers(result: np.ndarray, a: np.ndarray) -> bool:
    return result.shape == a.shape and bool(np.array_equal(_bits(result), _bits(a)))


def _operations(
    a: np.ndarray,
) -> dict[str, tuple[Callable[[], np.ndarray], Callable[[np.ndarray], bool]]]:
    """For each op in OPS: the call to time (its buffers allocated here, untimed) and
    the check of its result against ``a``."""
    big = a.dtype.newbyteorder(">")
    be = a.astype(big)  # what came off the wire
    out_big = np.empty_like(a, dtype=big)
    out_native = np.empty_like(a)
    out_copy = np.empty_like(a)

    def copyto() -> np.ndarray:
        np.copyto(out_copy, a)
        return out_copy

    def swapped_back(r: np.ndarray) -> bool:
        # byteswap keeps the dtype label: read with the other order it must be `a`.
        return _same_numbers(r.view(r.dtype.newbyteorder("S")), a)

    def same(r: np.ndarray) -> bool:
        return _same_numbers(r, a)

    return {
        "hton": (lambda: wirearray.hton(a, out=out_big), same),
        "ntoh": (lambda: wirearray.ntoh(be, out=out_native), same),
        "byteswap": (a.byteswap, swapped_back),
        "astype": (lambda: a.astype(big), same),
        "copyto": (copyto, same),
        "hton new": (lambda: wirearray.hton(a), same),
        "copy": (a.copy, same),
    }


# ---- timing ----


def median_time(fn: Callable[[], object], budget_s: float = BUDGET_S) -> tuple[float, int]:
    """Median seconds per call of ``fn`` and the number of samples it took.

    ``fn`` should have run once already (page faults of its output, caches).  Fast
    calls are batched per sample; between MIN_REPEATS and REPEATS samples are taken,
    stopping early once ``budget_s`` is spent.
    """
    t0 = perf_counter()
    fn()
    one = perf_counter() - t0
    number = max(1, min(100_000, int(SAMPLE_S / max(one, 1e-9))))
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection in one sample is noise
    try:
        start = perf_counter()
        while len(samples) < REPEATS:
            t0 = perf_counter()
            for _ in range(number):
                fn()
            samples.append((perf_counter() - t0) / number)
            if len(samples) >= MIN_REPEATS and perf_counter() - start > budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples), len(samples)


def measure(dtype: str, n: int) -> list[Result]:
    """Time every op of OPS on one array; raises AssertionError on a wrong result."""
    a = make_array(dtype, n)
    results = []
    for op, (fn, ok) in _operations(a).items():
        if not ok(fn()):  # checked once, untimed; also the warm-up call
            raise AssertionError(f"{op} gave wrong numbers for {dtype} n={n}")
        median, count = median_time(fn)
        results.append(Result(dtype, n, a.nbytes, op, median, count))
    return results


# ---- output ----


def header_lines() -> list[str]:
    info = wirearray.info()
    impl = info["implementation"]
    module = "wirearray._cwire (compiled)" if impl == "cython" else "wirearray.fallback (numpy)"
    lines = [
        "wirearray.info(): " + " ".join(f"{k}={v}" for k, v in info.items()),
        f"implementation: {impl} = {module}; SIMD path: {info['simd']}",
        f"machine: {machine()}",
    ]
    if info["extension_error"]:
        lines.append(f"compiled core not used: {info['extension_error']}")
    return lines


def _size(nbytes: int) -> str:
    for unit, scale in (("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} B"


def print_table_head(title: str) -> None:
    print()
    print(f"{title}: GB/s (array bytes / median time); hton vs x = x's time / hton's time")
    print(
        f"{'size':>10}"
        + "".join(f"{op:>10}" for op in OPS)
        + f"{'vs byteswap':>13}{'vs copyto':>11}{'new vs copy':>13}"
    )


def print_row(label: str, results: Sequence[Result]) -> None:
    """One array: GB/s of each op, then how many times faster wirearray.hton is than
    a.byteswap() and than np.copyto (into preallocated arrays), and the allocating
    wirearray.hton(a) than a.copy()."""
    by_op = {r.op: r for r in results}
    hton = by_op["hton"].median_s
    line = f"{label:>10}" + "".join(f"{by_op[op].gbps:10.2f}" for op in OPS)
    line += f"{by_op['byteswap'].median_s / hton:12.2f}x"
    line += f"{by_op['copyto'].median_s / hton:10.2f}x"
    line += f"{by_op['copy'].median_s / by_op['hton new'].median_s:12.2f}x"
    print(line, flush=True)


def print_legend() -> None:
    for op, what in OPS.items():
        print(f"  {op:>8}: {what}")


# ---- commands ----


def run_kernel_demo(*, quick: bool = False) -> int:
    """``wirearray demo --kernels``: float64, 1 KiB to 256 MiB (16 MiB with ``quick``)."""
    for line in header_lines():
        print(line)
    print_legend()
    print_table_head("float64")
    for nbytes in DEMO_SIZES[:-1] if quick else DEMO_SIZES:
        print_row(_size(nbytes), measure("float64", nbytes // 8))
    return 0


def run_kernel_bench(
    *,
    dtypes: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    quick: bool = False,
    json_path: str | None = None,
    plot_path: str | None = None,
) -> int:
    """``wirearray bench kernels`` with validated arguments (see wirearray.cli): every
    op over ``dtypes`` x ``sizes`` (items; KERNEL_DTYPES and KERNEL_COUNTS when None,
    without the largest count with ``quick``)."""
    for line in header_lines():
        print(line)
    print_legend()
    results: list[Result] = []
    counts = sizes or (KERNEL_COUNTS[:-1] if quick else KERNEL_COUNTS)
    for dtype in dtypes or KERNEL_DTYPES:
        print_table_head(f"{dtype}, size in items")
        for n in counts:
            rows = measure(dtype, n)
            print_row(str(n), rows)
            results += rows
    if json_path:
        doc = {
            "info": wirearray.info(),
            "unit": "seconds per call (median)",
            "ops": OPS,
            "results": [asdict(r) | {"gbps": r.gbps} for r in results],
        }
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"\nwrote {len(results)} medians to {json_path}")
    if plot_path:
        from .plot import plot_kernels

        plot_kernels(results, OPS, plot_path)
        print(f"wrote the plot to {plot_path}")
    return 0
