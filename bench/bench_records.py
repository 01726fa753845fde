"""Benchmarks of records and datetimes in the byte-order core.

Run with ``pytest bench/bench_records.py``; a plain ``pytest`` does not collect it.
Groups, each lined up against the baselines conftest.py summarises:

* ``records <layout> n=<n>``: ``byteswap`` of a record array, by both
  implementations (the compiled one also into a preallocated ``out=``), against
  numpy's ``a.byteswap()``, ``np.copyto`` of the same bytes (``uint8`` views: the
  memcpy ceiling, the /copyto column) and ``np.copyto`` of the record array itself
  (numpy copies a record dtype field by field).  Layouts: packed 12-, 20- and 24-byte
  records (the 20-byte one has an 8-byte field straddling a 16-byte lane in every
  other record), an ``align=True`` record with padding, a record with a subarray
  field, and the 32-byte aligned record with a subarray and a label;
* ``time <dtype> n=<n>``: ``hton`` of datetime64/timedelta64 against ``hton`` of the
  int64 array with the same memory, which it should match.

Each benchmark checks its result once, outside the timed part, against numpy, and
records the implementation (and SIMD path) that ran in ``extra_info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import wirearray
from wirearray import fallback

try:
    from wirearray import _cwire
except ImportError:  # pragma: no cover - a build without the extension
    _cwire = None

COPY_BASELINE = "np.copyto (memcpy ceiling)"
SWAP_BASELINE = "numpy a.byteswap()"
RECORD_COPY = "np.copyto (record dtype)"

RECORDS = {
    "12-byte": np.dtype([("x", "<f4"), ("y", "<f4"), ("n", "<i4")]),
    "20-byte": np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8"), ("n", "<i4")]),
    "24-byte": np.dtype([("t", "<M8[ns]"), ("x", "<f8"), ("n", "<i4"), ("k", "<u2"), ("c", "S2")]),
    "32-byte aligned+padding": np.dtype(
        [("ok", "?"), ("x", "<f8"), ("n", "<i2"), ("t", "<M8[us]")], align=True
    ),
    "36-byte subarray": np.dtype([("id", "<u4"), ("v", "<f8", (3,)), ("label", "<U2")]),
    "32-byte": np.dtype(
        [("t", "<M8[ns]"), ("v", "<f4", (3,)), ("label", "S5"), ("ok", "?")], align=True
    ),
}
RECORD_N = (1024, 1_000_000)
TIMES = ("datetime64[ns]", "timedelta64[10ms]")
TIME_N = (1024, 1_000_000)


def _records(dt: np.dtype, n: int) -> np.ndarray:
    raw = np.random.default_rng(7).integers(0, 256, n * dt.itemsize, dtype=np.uint8)
    a = raw.view(dt)
    for name in dt.names or ():
        if dt.fields[name][0].kind == "b":
            a[name] = a[name].view(np.uint8) & 1
    return a


def _impls() -> list[Any]:
    mods = [pytest.param(fallback, id="python")]
    mods.append(
        pytest.param(
            _cwire, id="cython", marks=pytest.mark.skipif(_cwire is None, reason="no _cwire")
        )
    )
    return mods


def _run(
    benchmark: Any, group: str, name: str, impl: str, fn: Callable[[], Any], nbytes: int
) -> None:
    benchmark.group = group
    benchmark.name = name
    simd = wirearray.info().get("simd", "") if impl == "cython" else ""
    benchmark.extra_info.update(implementation=impl, nbytes=nbytes, simd=simd)
    benchmark(fn)


def _same_fields(got: np.ndarray, want: np.ndarray) -> None:
    for name in want.dtype.names or ():
        assert got[name].tobytes() == want[name].tobytes(), name


@pytest.mark.parametrize("n", RECORD_N)
@pytest.mark.parametrize("layout", list(RECORDS))
@pytest.mark.parametrize("impl", _impls())
def bench_record_byteswap(benchmark: Any, impl: Any, layout: str, n: int) -> None:
    a = _records(RECORDS[layout], n)
    _same_fields(impl.byteswap(a), a.byteswap())
    name = "cython" if impl is _cwire else "python"
    group = f"records {layout} n={n}"
    _run(benchmark, group, f"wirearray {name}", name, lambda: impl.byteswap(a), a.nbytes)


@pytest.mark.parametrize("n", RECORD_N)
@pytest.mark.parametrize("layout", list(RECORDS))
def bench_record_byteswap_out(benchmark: Any, layout: str, n: int) -> None:
    if _cwire is None:
        pytest.skip("no _cwire")
    a = _records(RECORDS[layout], n)
    out = np.empty_like(a)
    _same_fields(_cwire.byteswap(a, out=out), a.byteswap())
    fn = lambda: _cwire.byteswap(a, out=out)  # noqa: E731
    _run(benchmark, f"records {layout} n={n}", "wirearray cython out=", "cython", fn, a.nbytes)


@pytest.mark.parametrize("n", RECORD_N)
@pytest.mark.parametrize("layout", list(RECORDS))
@pytest.mark.parametrize("baseline", [SWAP_BASELINE, COPY_BASELINE, RECORD_COPY])
def bench_record_baselines(benchmark: Any, baseline: str, layout: str, n: int) -> None:
    a = _records(RECORDS[layout], n)
    out = np.empty_like(a)
    raw_a, raw_out = a.view(np.uint8), out.view(np.uint8)
    fn = {
        SWAP_BASELINE: a.byteswap,
        COPY_BASELINE: lambda: np.copyto(raw_out, raw_a),
        RECORD_COPY: lambda: np.copyto(out, a),
    }[baseline]
    _run(benchmark, f"records {layout} n={n}", baseline, "numpy", fn, a.nbytes)


@pytest.mark.parametrize("n", TIME_N)
@pytest.mark.parametrize("dtype", TIMES)
@pytest.mark.parametrize("as_int64", [False, True], ids=["time", "int64"])
def bench_time_hton(benchmark: Any, dtype: str, n: int, as_int64: bool) -> None:
    if _cwire is None:
        pytest.skip("no _cwire")
    a = np.arange(n, dtype=np.int64).view(dtype)
    if as_int64:
        a = a.view(np.int64)
    assert _cwire.hton(a).tobytes() == a.astype(a.dtype.newbyteorder(">")).tobytes()
    name = "wirearray cython (int64 memory)" if as_int64 else "wirearray cython"
    _run(benchmark, f"time {dtype} n={n}", name, "cython", lambda: _cwire.hton(a), a.nbytes)
    if as_int64:  # the summary's /baseline column: the int64 call it should match
        benchmark.extra_info.update(baseline=True)
