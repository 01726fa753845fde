"""Benchmarks of records and datetimes in the byte-order core.

Run with ``pytest bench/bench_records.py``; a plain ``pytest`` does not collect it.
Groups, each lined up against the baselines conftest.py summarises:

* ``records <layout> n=<n>``: ``byteswap`` of a record array (the 20-byte
  ``x, y: f4; t: u8; n: i4`` and a 32-byte aligned record with a subarray and a
  label), by both implementations, against numpy's ``a.byteswap()`` and
  ``np.copyto`` of the same bytes (the memcpy ceiling);
* ``time <dtype> n=<n>``: ``hton`` of datetime64/timedelta64 against ``hton`` of the
  int64 array with the same memory, which it should match.

Each benchmark checks its result once, outside the timed part, against numpy, and
records the implementation that ran in ``extra_info``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from wirearray import fallback

try:
    from wirearray import _cwire
except ImportError:  # pragma: no cover - a build without the extension
    _cwire = None

COPY_BASELINE = "np.copyto (memcpy ceiling)"
SWAP_BASELINE = "numpy a.byteswap()"

RECORDS = {
    "20-byte": np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8"), ("n", "<i4")]),
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


def _run(benchmark: Any, group: str, name: str, impl: str, fn: Callable[[], Any]) -> None:
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info.update(implementation=impl)
    benchmark(fn)


@pytest.mark.parametrize("n", RECORD_N)
@pytest.mark.parametrize("layout", list(RECORDS))
@pytest.mark.parametrize("impl", _impls())
def bench_record_byteswap(benchmark: Any, impl: Any, layout: str, n: int) -> None:
    a = _records(RECORDS[layout], n)
    got, want = impl.byteswap(a), a.byteswap()
    for name in a.dtype.names or ():
        assert got[name].tobytes() == want[name].tobytes()
    name = "cython" if impl is _cwire else "python"
    _run(benchmark, f"records {layout} n={n}", f"wirearray {name}", name, lambda: impl.byteswap(a))


@pytest.mark.parametrize("n", RECORD_N)
@pytest.mark.parametrize("layout", list(RECORDS))
@pytest.mark.parametrize("baseline", [SWAP_BASELINE, COPY_BASELINE])
def bench_record_baselines(benchmark: Any, baseline: str, layout: str, n: int) -> None:
    a = _records(RECORDS[layout], n)
    out = np.empty_like(a)
    fn = a.byteswap if baseline == SWAP_BASELINE else (lambda: np.copyto(out, a))
    _run(benchmark, f"records {layout} n={n}", baseline, "numpy", fn)


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
    _run(benchmark, f"time {dtype} n={n}", name, "cython", lambda: _cwire.hton(a))
