"""hton / ntoh / byteswap against numpy's own conversions, byte for byte.

Every test takes ``impl`` (compiled core or fallback) or ``path_impl`` (each SIMD path
as well), so both implementations must give numpy's exact bytes.  Expectations are
computed with numpy from dtype labels, never from sys.byteorder, so the same tests
hold on a big-endian host (where hton is a copy and the kernels swap only for byteswap
and explicitly little-endian data).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import wirearray
from helpers import (
    SUPPORTED,
    big,
    layouts,
    native,
    random_array,
    ref_byteswap,
    ref_hton,
    ref_ntoh,
    same_bytes,
)
from wirearray import BufferMismatchError, UnsupportedDtypeError, UsageError, WireError

rng = np.random.default_rng(20261125)
ORDERS = ["=", "<", ">"]


def _in_order(a: np.ndarray, order: str) -> np.ndarray:
    """The same values as ``a`` stored with byte order ``order``."""
    return a.astype(a.dtype.newbyteorder(order))


def _check_layout(result: np.ndarray, reference: np.ndarray) -> None:
    """Results have numpy's memory order: hton/ntoh the input's, as ``astype`` (order
    'K'); byteswap C unless the input is Fortran-contiguous, as ``ndarray.byteswap``."""
    assert result.flags.c_contiguous == reference.flags.c_contiguous
    assert result.flags.f_contiguous == reference.flags.f_contiguous
    if result.size:
        assert result.strides == reference.strides


@pytest.mark.parametrize("dtype", SUPPORTED)
@pytest.mark.parametrize("order", ORDERS)
def test_every_dtype_order_layout(path_impl, dtype, order):
    base = _in_order(random_array(dtype, (5, 6, 7), rng), order)
    for name, a in layouts(base).items():
        for fn, ref in (
            (path_impl.hton, ref_hton),
            (path_impl.ntoh, ref_ntoh),
            (path_impl.byteswap, ref_byteswap),
        ):
            expected = ref(a)
            got = fn(a)
            assert same_bytes(got, expected), (fn.__name__, name)
            _check_layout(got, expected)
            assert got.flags.writeable


@pytest.mark.parametrize("dtype", SUPPORTED)
def test_hton_dtype_and_values(impl, dtype):
    a = random_array(dtype, (33,), rng)
    h = impl.hton(a)
    assert h.dtype == big(a.dtype)
    assert h.dtype.byteorder in (">", "|") or (sys.byteorder == "big" and h.dtype.byteorder == "=")
    assert h.tobytes() == a.astype(big(a.dtype)).tobytes()
    back = impl.ntoh(h)
    assert back.dtype == native(a.dtype)
    assert same_bytes(back, a)


def test_ntoh_of_native_labelled_wire_bytes(impl):
    """A plain float64 buffer that recv_into filled with big-endian bytes."""
    x = rng.standard_normal(100)
    received = np.frombuffer(x.astype(">f8").tobytes(), dtype="f8").copy()
    assert np.array_equal(impl.ntoh(received), x)


def test_contiguous_sizes_and_offsets(path_impl):
    """Every size around the SIMD block edges, at every misalignment."""
    for dtype in ("uint16", "uint32", "uint64", "complex64", "complex128"):
        buf = random_array("uint8", (2000,), rng)
        item = np.dtype(dtype).itemsize
        for n in [*range(0, 40), 63, 64, 65, 127, 128, 129, 255, 257]:
            for off in (0, 1, 3, 8, 17, 31):
                if off + n * item > buf.size:
                    continue
                a = np.frombuffer(buf.data, dtype=dtype, count=n, offset=off)
                assert same_bytes(path_impl.hton(a), ref_hton(a)), (dtype, n, off)
                out = np.zeros(n * item + 64, np.uint8)
                dst = np.frombuffer(out.data, dtype=big(dtype), count=n, offset=off % 16 + 1)
                got = path_impl.hton(a, out=dst)
                assert same_bytes(got, ref_hton(a)), (dtype, n, off)


@pytest.mark.parametrize("n", [16 << 10, 3 << 20])
def test_gil_released_sizes(path_impl, n):
    a = random_array("float64", (n // 8 + 3,), rng)[3:]
    assert same_bytes(path_impl.hton(a), ref_hton(a))
    assert same_bytes(path_impl.byteswap(a[::-1]), ref_byteswap(a[::-1]))


# ---- out= ----


def test_out_same_dtype(impl):
    a = random_array("float32", (4, 5), rng)
    out = np.empty((4, 5), ">f4")
    got = impl.hton(a, out=out)
    assert got is out
    assert same_bytes(out, ref_hton(a))


def test_out_other_label_returns_view(impl):
    a = random_array("float64", (6,), rng)
    out = np.zeros(6, "int64")
    got = impl.hton(a, out=out)
    assert got.dtype == big("f8") and np.shares_memory(got, out)
    assert out.tobytes() == ref_hton(a).tobytes()


@pytest.mark.parametrize("order", ["C", "F"])
def test_out_raw_buffers(impl, order):
    a = np.asarray(random_array("int32", (3, 4), rng), order=order)
    for make in (bytearray, lambda n: memoryview(bytearray(n)), lambda n: np.zeros(n, np.uint8)):
        raw = make(a.nbytes)
        got = impl.hton(a, out=raw)
        assert same_bytes(got, ref_hton(a))
        assert bytes(raw) == ref_hton(a).tobytes(order=order)
        assert np.shares_memory(got, np.frombuffer(raw, np.uint8))


def test_out_in_place(impl):
    for dtype in SUPPORTED:
        a = random_array(dtype, (7, 3), rng)
        expected = ref_hton(a)
        got = impl.hton(a, out=a)
        assert np.shares_memory(got, a) and same_bytes(got, expected)
        b = random_array(dtype, (9,), rng)[::2]
        expected = ref_ntoh(b)
        got = impl.ntoh(b, out=b)
        assert same_bytes(got, expected)


def test_byteswap_inplace(path_impl):
    for dtype in SUPPORTED:
        a = random_array(dtype, (10, 4), rng)
        expected = a.byteswap()
        assert path_impl.byteswap(a, inplace=True) is a
        assert same_bytes(a, expected)
        v = random_array(dtype, (10, 4), rng)
        view = v[::2, ::-1]
        expected = view.byteswap()
        path_impl.byteswap(view, inplace=True)
        assert same_bytes(view, expected)


def test_partial_overlap(impl):
    base = random_array("float64", (100,), rng)
    a = base[1:]
    expected = ref_hton(a)
    got = impl.hton(a, out=base[:-1])
    assert same_bytes(got, expected)
    base = random_array("int16", (10, 10), rng)
    expected = ref_byteswap(base)
    got = impl.byteswap(base, out=base.T)  # same memory, other strides
    assert same_bytes(got, expected)


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (np.empty((3, 3), "f8"), "shape"),
        (np.empty((3, 4), "f4"), "item"),
        (bytearray(95), "bytes"),
        (b"x" * 96, "read-only"),
        ("not a buffer", "buffer"),
        (memoryview(bytearray(192))[::2], "contiguous"),
    ],
)
def test_out_mismatch(impl, out, match):
    a = random_array("float64", (3, 4), rng)
    with pytest.raises(BufferMismatchError, match=match) as info:
        impl.hton(a, out=out)
    assert isinstance(info.value, ValueError) and isinstance(info.value, UsageError)


def test_out_readonly_array(impl):
    a = random_array("float64", (4,), rng)
    ro = np.empty(4, ">f8")
    ro.flags.writeable = False
    with pytest.raises(BufferMismatchError, match="read-only"):
        impl.hton(a, out=ro)
    ro2 = a.copy()
    ro2.flags.writeable = False
    with pytest.raises(BufferMismatchError, match="read-only"):
        impl.byteswap(ro2, inplace=True)
    assert same_bytes(ro2, a)


def test_inplace_and_out_conflict(impl):
    a = np.arange(4.0)
    with pytest.raises(BufferMismatchError):
        impl.byteswap(a, inplace=True, out=np.empty(4))


def test_out_error_writes_nothing(impl):
    a = random_array("float64", (5,), rng)
    out = np.zeros((4,), ">f8")
    with pytest.raises(BufferMismatchError):
        impl.hton(a, out=out)
    assert not out.any()


# ---- dtypes refused ----


@pytest.mark.parametrize(
    "a",
    [
        np.array([1, "x"], dtype=object),
        np.zeros(3, dtype=[("x", "f8"), ("y", "O")]),  # records: tests/test_records.py
        np.zeros(3, "datetime64"),  # no unit (tests/test_datetimes.py says why)
        np.zeros(3, "timedelta64"),
        np.zeros(3, np.longdouble),
        np.zeros(3, np.clongdouble),
    ],
    ids=lambda a: str(a.dtype),
)
def test_unsupported_dtypes(impl, a):
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        with pytest.raises(UnsupportedDtypeError) as info:
            fn(a)
        assert isinstance(info.value, TypeError) and isinstance(info.value, WireError)
        assert "dtype" in str(info.value)


def test_a_refused_dtype_names_every_kind_that_is_supported(impl):
    """The refusal lists what converts -- records and strings included -- so that the
    user's next try is one that works."""
    with pytest.raises(UnsupportedDtypeError) as info:
        impl.hton(np.array([1, "x"], dtype=object))
    for kind in ("bool", "complex64/128", "timedelta64 with a unit", "S/U/V", "records"):
        assert kind in str(info.value)


def test_unsupported_in_raw_ntoh(impl):
    with pytest.raises(UnsupportedDtypeError):
        impl.ntoh(b"\0" * 16, dtype=np.longdouble if np.dtype(np.longdouble).itemsize > 8 else "M8")


# ---- raw buffers into ntoh ----


@pytest.mark.parametrize("dtype", SUPPORTED)
def test_ntoh_raw_buffer(impl, dtype):
    x = random_array(dtype, (4, 6), rng)
    wire = x.astype(big(x.dtype)).tobytes()
    for buf in (wire, bytearray(wire), memoryview(wire), np.frombuffer(wire, np.uint8)):
        got = impl.ntoh(buf, dtype=dtype, shape=(4, 6))
        assert same_bytes(got, x)
        flat = impl.ntoh(buf, dtype=np.dtype(dtype).newbyteorder(">"))
        assert same_bytes(flat, x.reshape(-1))


def test_ntoh_raw_out(impl):
    x = np.arange(12, dtype="u4")
    out = np.empty(12, "u4")
    assert impl.ntoh(x.astype(">u4").tobytes(), out=out, dtype="u4") is out
    assert np.array_equal(out, x)


@pytest.mark.parametrize(
    ("buf", "kw"),
    [
        (b"\0" * 10, {"dtype": "f8"}),
        (b"\0" * 16, {"dtype": "f8", "shape": (3,)}),
        (b"\0" * 16, {"dtype": "f8", "shape": (-1, -2)}),
        (b"\0" * 16, {"shape": (2,)}),
        (12345, {"dtype": "f8"}),
        (memoryview(b"\0" * 32)[::2], {"dtype": "u2"}),
    ],
)
def test_ntoh_raw_errors(impl, buf, kw):
    with pytest.raises(BufferMismatchError):
        impl.ntoh(buf, **kw)


def test_ntoh_bytes_needs_dtype(impl):
    with pytest.raises(UnsupportedDtypeError):
        impl.ntoh(b"\0\0\0\0")  # bytes -> numpy 'S' array, not a number


def test_non_ndarray_inputs(impl):
    assert same_bytes(impl.hton([1, 2, 3]), np.array([1, 2, 3]).astype(big(np.int_)))
    assert same_bytes(impl.byteswap(np.float32(1.5)), np.asarray(np.float32(1.5)).byteswap())
    sub = np.arange(4.0).view(np.matrix) if hasattr(np, "matrix") else np.arange(4.0)
    assert np.array_equal(np.asarray(impl.ntoh(impl.hton(sub))), np.asarray(sub))


def test_empty_and_zero_d(impl):
    for shape in [(0,), (3, 0), (0, 5, 2), ()]:
        a = random_array("complex64", shape, rng)
        assert same_bytes(impl.hton(a), ref_hton(a))
        assert same_bytes(impl.ntoh(a), ref_ntoh(a))
        assert same_bytes(impl.byteswap(a), ref_byteswap(a))
        out = bytearray(a.nbytes)
        assert same_bytes(impl.hton(a, out=out), ref_hton(a))


def test_package_api_is_one_implementation():
    expected = "python" if wirearray.EXTENSION_ERROR else "cython"
    assert wirearray.IMPLEMENTATION == expected
    mod = wirearray._impl
    for name in ("hton", "ntoh", "byteswap", "htonl", "set_simd"):
        assert getattr(wirearray, name) is getattr(mod, name)
    info = wirearray.info()
    assert info["implementation"] == wirearray.IMPLEMENTATION
    assert info["simd"] in info["simd_paths"]
