"""Property tests: random dtypes, shapes, views and byte orders against numpy, on every
SIMD path, plus the non-temporal (streaming) store path forced on small arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import IMPORT_SIMD, load_cwire
from helpers import SUPPORTED, random_array, ref_byteswap, ref_hton, ref_ntoh, same_bytes


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(SUPPORTED)))
    order = draw(st.sampled_from(["=", "<", ">"]))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    seed = draw(st.integers(0, 2**32 - 1))
    base = random_array(dtype, shape, np.random.default_rng(seed))
    base = base.astype(base.dtype.newbyteorder(order))
    if draw(st.booleans()):
        base = np.asfortranarray(base)
    # a random view: steps (negative too), then maybe a transpose
    index = tuple(slice(None, None, draw(st.sampled_from([1, 2, 3, -1, -2]))) for _ in range(ndim))
    view = base[index] if ndim else base  # base[()] would be a numpy scalar
    if ndim > 1 and draw(st.booleans()):
        view = view.transpose(draw(st.permutations(range(ndim))))
    if draw(st.booleans()):  # an unaligned copy of the same values
        raw = np.zeros(view.nbytes + 1, np.uint8)
        raw[1:] = np.ascontiguousarray(view).view(np.uint8).reshape(-1)
        view = np.frombuffer(raw.data, view.dtype, offset=1).reshape(view.shape)
    return view


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=arrays(), which=st.sampled_from(["hton", "ntoh", "byteswap"]))
def test_matches_numpy_on_every_path(a, which):
    ref = {"hton": ref_hton, "ntoh": ref_ntoh, "byteswap": ref_byteswap}[which]
    expected = ref(a)
    from wirearray import fallback

    assert same_bytes(getattr(fallback, which)(a), expected)
    try:
        cw = load_cwire()
    except pytest.skip.Exception:
        return
    try:
        for path in cw.simd_paths():
            cw.set_simd(path)
            assert same_bytes(getattr(cw, which)(a), expected), path
            out = np.empty_like(expected)
            assert same_bytes(getattr(cw, which)(a, out=out), expected), path
    finally:
        cw.set_simd(IMPORT_SIMD or "auto")


def test_streaming_stores_forced():
    """Non-temporal stores (normally only above the cache size) on small arrays."""
    cw = load_cwire()
    old = cw._get_stream_bytes()
    cw._set_stream_bytes(1)
    rng = np.random.default_rng(7)
    try:
        for path in cw.simd_paths():
            cw.set_simd(path)
            for dtype in ("int16", "float32", "float64", "complex128"):
                buf = random_array("uint8", (8192,), rng)
                item = np.dtype(dtype).itemsize
                for n in (1, 5, 33, 100, 257):
                    for off in (0, 1, 2, 8, 12):
                        a = np.frombuffer(buf.data, dtype, count=n, offset=off)
                        out = np.zeros(8192, np.uint8)
                        dst = np.frombuffer(
                            out.data,
                            np.dtype(dtype).newbyteorder(">"),
                            count=n,
                            offset=(off * 5) % 64,
                        )
                        got = cw.hton(a, out=dst)
                        assert same_bytes(got, ref_hton(a)), (path, dtype, n, off)
                        # bytes around the destination are untouched
                        lo = (off * 5) % 64
                        assert not out[:lo].any() and not out[lo + n * item :].any()
    finally:
        cw._set_stream_bytes(old)
        cw.set_simd(IMPORT_SIMD or "auto")


def test_default_stream_threshold_is_sane():
    cw = load_cwire()
    assert 4 << 20 <= cw._get_stream_bytes() <= 1 << 31


def test_large_array_streams_correctly(impl):
    """64 MiB: above the default streaming threshold on common CPUs, GIL released."""
    a = np.random.default_rng(3).standard_normal(8 << 20)
    h = impl.hton(a)
    assert h.dtype == np.dtype(">f8")
    assert np.array_equal(h, a)
    assert same_bytes(impl.ntoh(h), a)
