"""Allocating conversions of large arrays (the results the compiled core touches once
per 2 MiB before converting into them, pyx/convert.pxi): every layout numpy can hand
over, sizes that end inside a 2 MiB region, against numpy byte for byte, in both
implementations."""

from __future__ import annotations

import numpy as np
import pytest

MIB = 1 << 20


def _big(dtype: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    return rng.integers(0, 256, n * np.dtype(dtype).itemsize, dtype=np.uint8).view(dtype)


def layouts(dtype: str):
    flat = _big(dtype, (9 * MIB + 12_345) // np.dtype(dtype).itemsize)
    yield "contiguous", flat
    yield "reversed", flat[::-1]
    cube = _big(dtype, 4_100 * 300).reshape(4_100, 300)
    yield "fortran", np.asfortranarray(cube)
    yield "transposed", cube.T
    yield "strided", flat[::3]
    yield "exactly 4 MiB", _big(dtype, 4 * MIB // np.dtype(dtype).itemsize)


@pytest.mark.parametrize("dtype", ["<u2", "<f4", ">f8", "<c16", "u1"])
def test_large_allocating_conversions_match_numpy(impl, dtype):
    for name, a in layouts(dtype):
        big = a.dtype.newbyteorder(">")
        native = a.dtype.newbyteorder("=")
        got = impl.hton(a)  # element by element, whatever the layouts: tobytes()
        assert got.dtype == big and got.shape == a.shape, name
        assert got.tobytes() == a.astype(big).tobytes(), name
        back = impl.ntoh(got)
        assert back.dtype == native and back.tobytes() == a.astype(native).tobytes(), name
        swapped = impl.byteswap(a)
        assert swapped.dtype == a.dtype and swapped.tobytes() == a.byteswap().tobytes(), name
