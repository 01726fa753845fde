"""datetime64 and timedelta64: every unit and multiplier numpy has, NaT kept.

They are int64 underneath: the byte-order functions convert them with the int64
kernels and keep the unit and multiplier in the result's dtype; the codec carries the
unit in the dtype code and the multiplier in the header's count field (docs/FORMAT.md
sections 3 and 9).  References are numpy's own ``astype`` and ``byteswap``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import layouts, same_bytes
from wirearray import UnsupportedDtypeError

#: numpy's datetime units, coarsest first (the order of the wire codes)
UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")
#: the largest multiplier numpy accepts (its metadata holds a C int)
MAX_MULTIPLIER = 2**31 - 1
NAT = np.iinfo(np.int64).min
ORDERS = ("=", "<", ">")

TIME_DTYPES = [f"{k}8[{m}{u}]" for k in "Mm" for u in UNITS for m in ("", "10")] + [
    "M8[2147483647as]",
    "m8[3W]",
    "M8[10ms]",
]

rng = np.random.default_rng(20261130)


def time_array(dtype, shape=(5, 6, 7)) -> np.ndarray:
    """Random int64 values of ``dtype`` (NaT, 0, -1 and both extremes among them)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    values = rng.integers(NAT, 2**63 - 1, size=n, dtype=np.int64, endpoint=True)
    values[:5] = [NAT, 0, -1, 2**63 - 1, NAT + 1][:n]
    return values.view(dt.newbyteorder("=")).astype(dt).reshape(shape)


def time_dtypes():
    """Hypothesis: any datetime64/timedelta64 dtype numpy accepts, in any byte order."""
    return st.builds(
        lambda kind, unit, mult, order: np.dtype(f"{order}{kind}8[{mult}{unit}]"),
        st.sampled_from("Mm"),
        st.sampled_from(UNITS),
        st.one_of(st.integers(1, 16), st.integers(1, MAX_MULTIPLIER)),
        st.sampled_from(ORDERS),
    )


# ---- hton / ntoh / byteswap ----


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", TIME_DTYPES)
def test_byte_order_functions_match_numpy(impl, dtype, order):
    a = time_array(np.dtype(dtype).newbyteorder(order))
    big, nat = a.dtype.newbyteorder(">"), a.dtype.newbyteorder("=")
    h = impl.hton(a)
    assert same_bytes(h, a.astype(big))
    assert np.datetime_data(h.dtype) == np.datetime_data(a.dtype)
    n = impl.ntoh(h)
    assert same_bytes(n, a.astype(nat))
    assert same_bytes(impl.ntoh(a), a.view(a.dtype.newbyteorder(">")).astype(nat))
    assert same_bytes(impl.byteswap(a), a.byteswap())
    assert np.isnat(n.reshape(-1)[0]) and np.isnat(n.reshape(-1)[4]) is np.False_


@pytest.mark.parametrize("dtype", ["M8[ns]", ">m8[7us]"])
def test_every_layout(path_impl, dtype):
    for name, a in layouts(time_array(dtype, (6, 5, 7))).items():
        big = a.dtype.newbyteorder(">")
        assert same_bytes(path_impl.hton(a), a.astype(big)), name
        assert same_bytes(path_impl.byteswap(a), a.byteswap()), name
        assert same_bytes(path_impl.ntoh(a), a.view(big).astype(a.dtype.newbyteorder("="))), name


def test_out_and_inplace(impl):
    a = time_array("M8[10ms]", (50,))
    out = np.empty(50, "M8[s]")  # another unit: written as bytes, viewed as the result's
    r = impl.hton(a, out=out)
    assert r.dtype == np.dtype(">M8[10ms]") and np.shares_memory(r, out)
    assert r.tobytes() == a.astype(">M8[10ms]").tobytes()
    same = np.empty(50, ">M8[10ms]")
    assert impl.hton(a, out=same) is same
    b = a.copy()
    assert impl.byteswap(b, inplace=True) is b
    assert b.tobytes() == a.byteswap().tobytes()
    raw = impl.ntoh(a.astype(">m8[3W]").tobytes(), dtype="m8[3W]", shape=(5, 10))
    assert raw.dtype == np.dtype("m8[3W]") and raw.shape == (5, 10)
    assert raw.view(np.int64).ravel().tolist() == a.view(np.int64).tolist()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dt=time_dtypes(), n=st.integers(0, 40))
def test_hypothesis_units_and_multipliers(impl, dt, n):
    a = time_array(dt, (n,))
    assert same_bytes(impl.hton(a), a.astype(dt.newbyteorder(">")))
    assert same_bytes(impl.ntoh(impl.hton(a)), a.astype(dt.newbyteorder("=")))
    assert same_bytes(impl.byteswap(a), a.byteswap())


@pytest.mark.parametrize("dtype", ["M8", "m8", ">M8", "<m8"])
def test_generic_unit_refused(impl, dtype):
    """numpy keeps no generic unit in another byte order (np.empty(1, '>M8') is
    little-endian), so no result could carry one: refused, with the way out named."""
    a = np.zeros(3, dtype)
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        with pytest.raises(UnsupportedDtypeError, match="without a unit"):
            fn(a)
    with pytest.raises(UnsupportedDtypeError):
        impl.ntoh(bytes(8), dtype="M8")
