"""Records and strings in hton / ntoh / byteswap: structured dtypes (nested, subarray
fields, packed and ``align=True`` layouts, mixed byte orders) and plain S/U/V arrays.

References are numpy's own ``astype(dtype.newbyteorder(...))`` and ``byteswap()``,
compared field byte by field byte; the bytes in no field (padding) must be zero in
every result, whatever the input held there.  Which bytes are padding is found here
from numpy alone (filling every field of a zeroed record), not from the swap plan.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import layouts
from wirearray import UnsupportedDtypeError
from wirearray.codec import Encoder, Schema

rng = np.random.default_rng(20261130)

RECORD_20 = np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8"), ("n", "<i4")])
RECORD_SUB = np.dtype([("v", "<f4", (3,)), ("label", "S5"), ("ok", "?"), ("when", "<M8[ms]")])
NESTED = np.dtype(
    [("id", ">u2"), ("p", [("x", "<f8"), ("c", "<c8"), ("u", ">U3")]), ("h", "<f2", (2, 2))],
    align=True,
)
PADDED = np.dtype(
    {
        "names": ["a", "b", "s"],
        "formats": ["<i2", ">f8", "<U2"],
        "offsets": [2, 8, 20],
        "itemsize": 40,
    }
)
PLAIN = [np.dtype("S7"), np.dtype("<U5"), np.dtype(">U3"), np.dtype("V6")]
DTYPES = [RECORD_20, RECORD_SUB, NESTED, PADDED, *PLAIN]


def field_mask(dt: np.dtype) -> np.ndarray:
    """True for each byte of a record that belongs to a field (numpy's own view of it)."""
    z = np.zeros(1, dt)

    def fill(view: np.ndarray) -> None:
        if view.dtype.names:
            for name in view.dtype.names:
                fill(view[name])
        else:  # one byte pattern, copied raw (same dtype) into each element
            np.copyto(view, np.frombuffer(b"\x01" * view.dtype.itemsize, view.dtype).reshape(()))

    if dt.names:
        fill(z)
    else:
        z.view(np.uint8)[...] = 0xFF
    return z.view(np.uint8) != 0


def random_records(dt: np.dtype, shape) -> np.ndarray:
    """Random bytes everywhere, padding included (as ``np.empty`` could hold)."""
    n = int(np.prod(shape))
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    a = raw.view(dt).reshape(shape)
    # bool fields must hold 0/1 for numpy's casts to keep them
    if dt.names:
        _fix_bools(a)
    return a


def _fix_bools(a: np.ndarray) -> None:
    for name in a.dtype.names or ():
        f = a[name]
        base = f.dtype.base if f.dtype.subdtype else f.dtype
        if base.names:
            _fix_bools(f)
        elif base.kind == "b":
            f.view(np.uint8)[...] &= 1


def same_fields(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype and shape, the same bytes in every field, zeros in the padding."""
    assert got.dtype == want.dtype and got.shape == want.shape
    mask = field_mask(got.dtype)
    g = np.ascontiguousarray(got).reshape(-1).view(np.uint8).reshape(-1, got.dtype.itemsize)
    w = np.ascontiguousarray(want).reshape(-1).view(np.uint8).reshape(-1, got.dtype.itemsize)
    assert np.array_equal(g[:, mask], w[:, mask])
    assert not g[:, ~mask].any(), "padding bytes are not zero"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_match_numpy_field_by_field(impl, dtype):
    for order in ("=", "S"):
        dt = dtype.newbyteorder(order)
        a = random_records(dt, (4, 5))
        same_fields(impl.hton(a), a.astype(dt.newbyteorder(">")))
        same_fields(impl.byteswap(a), a.byteswap())
        big = a.astype(dt.newbyteorder(">"))
        same_fields(impl.ntoh(big), big.astype(dt.newbyteorder("=")))
        same_fields(impl.ntoh(impl.hton(a)), a.astype(dt.newbyteorder("=")))


@pytest.mark.parametrize("dtype", [RECORD_20, NESTED, np.dtype("<U4")], ids=str)
def test_every_layout(impl, dtype):
    for name, a in layouts(random_records(dtype, (6, 5, 7))).items():
        h = impl.hton(a)
        same_fields(h, a.astype(dtype.newbyteorder(">")))
        same_fields(impl.byteswap(a), a.byteswap())
        if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous:
            assert h.flags.f_contiguous, name  # astype's order "K"


def test_out_inplace_and_raw(impl):
    a = random_records(PADDED, (10,))
    out = np.full(a.nbytes, 0xAB, np.uint8)  # a buffer whose padding bytes are not zero
    r = impl.hton(a, out=out)
    same_fields(r, a.astype(PADDED.newbyteorder(">")))
    strided = np.full((10, 2), 0xCD, np.dtype((np.void, PADDED.itemsize))).view(PADDED)[:, 1]
    same_fields(impl.byteswap(a, out=strided), a.byteswap())
    b = a.copy()
    assert impl.byteswap(b, inplace=True) is b
    same_fields(b, a.byteswap())
    raw = impl.ntoh(a.astype(PADDED.newbyteorder(">")).tobytes(), dtype=PADDED, shape=(2, 5))
    same_fields(raw, a.astype(PADDED.newbyteorder("=")).reshape(2, 5))


@st.composite
def record_dtypes(draw, depth=0):
    """Random structured dtypes: numbers, bool, datetimes, S/U/V fields, subarrays,
    nested records, both byte orders, packed or aligned, with or without extra padding."""
    leaves = st.sampled_from(
        [
            "?",
            "i1",
            "u1",
            "i2",
            "u2",
            "i4",
            "u4",
            "i8",
            "u8",
            "f2",
            "f4",
            "f8",
            "c8",
            "c16",
            "M8[ns]",
            "m8[10ms]",
            "S1",
            "S5",
            "U1",
            "U3",
            "V3",
        ]
    )
    n = draw(st.integers(1, 5))
    fields = []
    for i in range(n):
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            fmt = draw(record_dtypes(depth + 1))
        else:
            leaf = draw(leaves)
            fmt = np.dtype(leaf)
            if fmt.itemsize > 1 and fmt.char not in "SV":
                fmt = fmt.newbyteorder(draw(st.sampled_from("<>")))
        if draw(st.integers(0, 3)) == 0:
            fields.append((f"f{i}", fmt, tuple(draw(st.lists(st.integers(1, 3), max_size=2)))))
        else:
            fields.append((f"f{i}", fmt))
    dt = np.dtype(fields, align=draw(st.booleans()))
    extra = draw(st.integers(0, 9))
    if extra:
        dt = np.dtype({"names": dt.names, "formats": [dt.fields[k][0] for k in dt.names],
                       "offsets": [dt.fields[k][1] for k in dt.names],
                       "itemsize": dt.itemsize + extra})  # fmt: skip
    return dt


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dt=record_dtypes(), n=st.integers(0, 12))
def test_hypothesis_random_records(impl, dt, n):
    a = random_records(dt, (n,))
    same_fields(impl.hton(a), a.astype(dt.newbyteorder(">")))
    same_fields(impl.byteswap(a), a.byteswap())
    same_fields(impl.ntoh(impl.hton(a)), a.astype(dt.newbyteorder("=")))


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype([("x", "f4"), ("o", "O")]),
        np.dtype([("x", "f4"), ("g", np.longdouble)])
        if np.dtype(np.longdouble).itemsize > 8
        else np.dtype([("x", "f4"), ("o", "O", (2,))]),
        np.dtype([("x", "f4"), ("t", "M8")]),  # no unit
        np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [0, 2]}),  # overlap
        # a union: one int64 that is also two fields (numpy's byteswap takes the int64,
        # its astype the fields), refused rather than converted one way or the other
        np.dtype((np.int64, [("a", "<i4"), ("b", ">i4")])),
        np.dtype((np.float32, [("a", "<i2"), ("b", "<i2")])),
    ],
    ids=["object", "longdouble", "generic-datetime", "overlap", "union", "union-same-order"],
)
def test_refused(impl, dtype):
    a = np.zeros(3, dtype)
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        with pytest.raises(UnsupportedDtypeError):
            fn(a)


def test_a_huge_subarray_of_records_is_refused_without_unrolling_it(impl):
    """A subarray of 10**8 mixed-order records would be 2 * 10**8 runs to plan (minutes
    and tens of GB before anything is converted): refused at once, even for an empty
    array; a subarray of records that are one run (a single byte order) stays one run."""
    import time

    huge = np.dtype([("a", [("x", "u1"), ("y", ">i4")], (10**8,))])
    start = time.perf_counter()
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        with pytest.raises(UnsupportedDtypeError, match="runs"):
            fn(np.zeros(0, huge))
    empty = np.dtype([("a", np.dtype([("z", "V0")]), (10**9,)), ("b", "<i4")])  # zero-size records
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        fn(np.zeros(3, empty))
    assert time.perf_counter() - start < 5
    one_order = np.dtype([("p", [("x", "<f4"), ("y", "<f4")], (10**6,))])
    a = np.zeros(2, one_order)
    a["p"]["x"] = np.arange(10**6, dtype="f4")
    same_fields(impl.hton(a), a.astype(one_order.newbyteorder(">")))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_the_wire_format_carries_them(impl_name, dtype):
    """They travel (tests/test_record_wire.py holds the bytes to numpy's)."""
    assert Encoder(implementation=impl_name).encode(np.zeros(2, dtype))
    assert Schema(dtype).dtype == dtype.newbyteorder("=")


def test_compiled_plan_kernel_checks_its_ops():
    """The C loop trusts its ops: the wrapper refuses any it could not apply safely."""
    from conftest import load_cwire

    cw = load_cwire()
    src = np.arange(24, dtype=np.uint8).reshape(2, 12)
    dst = np.full((2, 12), 0xEE, np.uint8)
    ops = np.array([[0, 4, 4], [4, 2, 0], [6, 6, 1]], np.uint32)
    cw._apply_records(src, dst, ops)
    assert dst[1].tolist() == [15, 14, 13, 12, 0, 0, 18, 19, 20, 21, 22, 23]
    for bad in ([0, 12, 3], [0, 13, 1], [8, 6, 2], [0, 6, 4], [2**32 - 1, 2, 1]):
        with pytest.raises(ValueError):
            cw._apply_records(src, dst, np.array([bad], np.uint32))
    # ops that leave a gap, overlap or stop short of the record: refused too
    for bad in ([[0, 4, 4], [6, 6, 1]], [[0, 8, 4], [6, 6, 1]], [[0, 4, 4], [4, 4, 1]]):
        with pytest.raises(ValueError):
            cw._apply_records(src, dst, np.array(bad, np.uint32))


# ---- the compiled kernels on every path: SIMD shuffle masks, the portable loop ----

LEAVES = [
    "?", "i1", "u1", "<i2", ">u2", "<i4", ">u4", "<i8", ">u8", "<f2", ">f4", "<f8", ">c8",
    "<c16", "<M8[ns]", ">m8[10ms]", "S1", "S5", "<U1", ">U3", "V3",
]  # fmt: skip


@st.composite
def laid_out_dtypes(draw):
    """Records of 1..200 bytes with fields at chosen offsets: gaps of padding anywhere,
    subarray fields, and so swap units that straddle 16-byte lanes wherever they fall."""
    size = draw(st.integers(1, 200))
    names, formats, offsets = [], [], []
    off = 0
    while True:
        off += draw(st.integers(0, 3))
        leaf = np.dtype(draw(st.sampled_from(LEAVES)))
        count = draw(st.sampled_from([1, 1, 1, 2, 3, 5]))
        fmt = leaf if count == 1 else np.dtype((leaf, (count,)))
        if off + fmt.itemsize > size:
            break
        names.append(f"f{len(names)}")
        formats.append(fmt)
        offsets.append(off)
        off += fmt.itemsize
    if not names:
        names, formats, offsets = ["f0"], [np.dtype("u1")], [size - 1]
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


def _enough_records(dt: np.dtype, extra: int) -> int:
    """More records than two periods of the SIMD masks (lcm(itemsize, 32) bytes), so
    each kernel runs its chunks and the portable loop its head and tail."""
    return 2 * math.lcm(dt.itemsize, 32) // dt.itemsize + 2 + extra


def _check_all_ways(impl, a: np.ndarray) -> None:
    """hton/ntoh/byteswap of the 1-d record array ``a``: allocated, unaligned, in place
    (aligned and not), into an unaligned out= buffer, and strided."""
    dt = a.dtype
    want_h, want_s = a.astype(dt.newbyteorder(">")), a.byteswap()
    same_fields(impl.hton(a), want_h)
    same_fields(impl.byteswap(a), want_s)
    same_fields(impl.ntoh(want_h), want_h.astype(dt.newbyteorder("=")))
    buf = np.zeros(a.nbytes + 1, np.uint8)
    buf[1:] = a.view(np.uint8)
    unaligned = np.frombuffer(buf.data, dt, offset=1)
    same_fields(impl.hton(unaligned), want_h)
    b = a.copy()
    assert impl.byteswap(b, inplace=True) is b
    same_fields(b, want_s)
    same_fields(impl.byteswap(unaligned, inplace=True), want_s)
    c = a.copy()
    same_fields(impl.hton(c, out=c), want_h)  # in place, as a view of c's memory
    out = np.full(a.nbytes + 3, 0xAB, np.uint8)[3:]  # padding not zero, misaligned
    same_fields(impl.hton(a, out=out), want_h)
    wide = np.empty((a.shape[0], 2), dt)
    wide[:, 1] = a
    same_fields(impl.hton(wide[:, 1]), want_h)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dt=st.one_of(laid_out_dtypes(), record_dtypes()), extra=st.integers(0, 40))
def test_every_record_size_on_every_path(path_impl, dt, extra):
    a = random_records(dt, (_enough_records(dt, extra),))
    _check_all_ways(path_impl, a)


BENCH_RECORDS = [
    np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8")]),  # 16 bytes
    np.dtype([("x", "<f4"), ("y", "<f4"), ("n", "<i4")]),  # 12: one unit, one run
    RECORD_20,  # t straddles a 16-byte lane in every other record
    np.dtype([("t", "<M8[ns]"), ("x", "<f8"), ("n", "<i4"), ("k", "<u2"), ("ok", "?")]),
    np.dtype([("ok", "?"), ("x", "<f8"), ("n", "<i2"), ("t", "<M8[us]")], align=True),
    np.dtype([("t", "<M8[ns]"), ("v", "<f4", (3,)), ("label", "S5"), ("ok", "?")], align=True),
    np.dtype([("id", "<u4"), ("v", "<f8", (3,)), ("label", "<U2")]),
]


@pytest.mark.parametrize("dt", BENCH_RECORDS, ids=lambda d: f"{d.itemsize}-byte")
def test_long_arrays_with_streaming_stores(path_impl, dt):
    """Arrays long enough for the streaming-store path (forced from 1 byte on), into
    destinations at every 16-byte phase."""
    a = random_records(dt, (5003,))
    set_stream = getattr(path_impl, "_set_stream_bytes", None)
    saved = path_impl._get_stream_bytes() if set_stream else None
    try:
        if set_stream:
            set_stream(1)
        _check_all_ways(path_impl, a)
        want = a.astype(dt.newbyteorder(">"))
        for phase in (0, 8, 16, 24):
            out = np.empty(a.nbytes + 32, np.uint8)
            start = (-out.ctypes.data + phase) % 32
            same_fields(path_impl.hton(a, out=out[start : start + a.nbytes]), want)
    finally:
        if set_stream:
            set_stream(saved)


def test_time_dtypes_many_dtype_objects(impl):
    """Datetime results carry their dtype's unit whatever dtype object the array has --
    more distinct objects than the compiled core keeps plans for -- and a dtype
    without a unit is refused on every call, not only the first."""
    base = np.arange(-3, 5, dtype=np.int64)
    for i in range(1100):
        unit = ("ns", "10ms", "D", "2h")[i % 4]
        dt = np.dtype(f"{'Mm'[i % 2]}8[{unit}]")
        a = base.view(dt)
        h = impl.hton(a)
        assert h.dtype == dt.newbyteorder(">") and h.tobytes() == a.astype(h.dtype).tobytes()
        n = impl.ntoh(h)
        assert n.dtype == dt and n.tobytes() == a.tobytes()
    for _ in range(3):
        with pytest.raises(UnsupportedDtypeError):
            impl.hton(np.zeros(2, "M8"))


def test_equal_record_dtypes_keep_their_own_names(impl):
    """Equal record dtypes share a compiled plan, yet each result has its own dtype."""
    one = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8]})
    other = np.dtype({"names": ["b", "a"], "formats": ["<f8", "<i4"], "offsets": [8, 0]})
    titled = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8],
                       "titles": ["A", "B"]})  # fmt: skip
    for dt in (one, other, titled, np.dtype(one.descr)):
        a = random_records(dt, (40,))
        h = impl.hton(a)
        assert h.dtype == dt.newbyteorder(">") and h.dtype.names == dt.names
        same_fields(h, a.astype(dt.newbyteorder(">")))


@pytest.mark.parametrize(
    "dtype",
    [np.dtype([]), np.dtype("V0"), np.dtype([("a", "V0")]), np.dtype([("a", "<i4", (0,))])],
    ids=["no-fields", "V0", "V0-field", "empty-subarray"],
)
def test_zero_size_records(path_impl, dtype):
    """Records of no bytes: nothing to convert, whatever the path, in any layout."""
    for shape in ((0,), (3,), (2, 3)):
        a = np.zeros(shape, dtype)
        for got in (path_impl.hton(a), path_impl.byteswap(a), path_impl.ntoh(a)):
            assert got.shape == shape and got.dtype.itemsize == 0
        assert path_impl.hton(a).dtype == dtype.newbyteorder(">")
        assert path_impl.byteswap(a, inplace=True) is a
