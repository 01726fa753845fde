"""hton / ntoh / byteswap hold numpy's own semantics, with numpy itself as the reference.

* memory order: ``byteswap`` returns what ``ndarray.byteswap()`` returns (a C-ordered
  copy unless the input is Fortran-contiguous), ``hton``/``ntoh`` what ``astype`` returns
  (the input's memory order, ``order='K'``) -- flags, strides and bytes;
* ndarray subclasses (numpy.ma.MaskedArray, numpy.matrix, a subclass with attributes)
  come back as numpy's ``byteswap()`` / ``astype()`` return them;
* ``out=`` of a subclass receives the values (numpy.copyto's semantics), and a
  MaskedArray input is refused rather than losing its mask;
* in place on what cannot change in place raises numpy's exception type;
* a few of numpy's own byteswap tests (numpy/_core/tests/test_regression.py,
  test_half.py, test_nditer.py), adapted.

Every expectation is computed by numpy at test time, so a change of numpy's behaviour
shows up here as a failing test.
"""

from __future__ import annotations

import socket
import warnings

import numpy as np
import pytest

from helpers import same_bytes
from wirearray import BufferMismatchError

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")


def _layouts() -> dict[str, np.ndarray]:
    base = np.arange(24.0).reshape(2, 3, 4)
    return {
        "c": base,
        "f": np.asfortranarray(base),
        "transpose-102": base.transpose(1, 0, 2),
        "transpose-full": base.T,
        "transpose-201": base.transpose(2, 0, 1),
        "slice-step": base[:, ::2],
        "negative": base[::-1, :, ::-1],
        "f-slice": np.asfortranarray(base)[:, ::2],
        "1d-strided": np.arange(10.0)[::2],
        "0d": np.array(1.5),
        "empty": np.empty((0, 3)),
        "empty-t": np.empty((3, 0)).T,
        "broadcast": np.broadcast_to(np.arange(4.0), (3, 4)),
        "one-column": np.zeros((3, 1)),
        "big-endian-t": base.astype(">f8").T[1:],
        "int16-t": np.arange(60, dtype=np.int16).reshape(3, 4, 5).transpose(2, 0, 1),
    }


def _same_layout(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.flags.c_contiguous == expected.flags.c_contiguous
    assert got.flags.f_contiguous == expected.flags.f_contiguous
    if got.size:  # numpy's strides of an empty array say nothing about memory
        assert got.strides == expected.strides


def _ref_ntoh(a: np.ndarray) -> np.ndarray:
    return a.view(a.dtype.newbyteorder(">")).astype(a.dtype.newbyteorder("="))


@pytest.mark.parametrize("name", list(_layouts()))
def test_memory_order_as_numpy(impl, name):
    a = _layouts()[name]
    for got, expected in (
        (impl.byteswap(a), a.byteswap()),
        (impl.hton(a), a.astype(a.dtype.newbyteorder(">"))),
        (impl.ntoh(a), _ref_ntoh(a)),
    ):
        assert same_bytes(got, expected)
        _same_layout(got, expected)


def test_transposed_byteswap_goes_to_a_socket(impl):
    """The example of the report: numpy's byteswap of a transpose is C-contiguous, so a
    socket can send it; wirearray's must be too."""
    a = np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2)
    assert a.byteswap().flags.c_contiguous
    got = impl.byteswap(a)
    assert got.flags.c_contiguous
    left, right = socket.socketpair()
    with left, right:
        left.sendall(got)
        data = b""
        while len(data) < a.nbytes:
            data += right.recv(a.nbytes - len(data))
    assert data == a.byteswap().tobytes()


def test_out_buffer_order_for_byteswap(impl):
    """A raw ``out`` buffer is filled in the order numpy's byteswap would give."""
    for a in _layouts().values():
        out = bytearray(a.nbytes)
        impl.byteswap(a, out=out)
        assert bytes(out) == a.byteswap().tobytes(order="A")


# ---- ndarray subclasses ----


class Tagged(np.ndarray):
    """A user subclass carrying an attribute through __array_finalize__."""

    info: object

    def __new__(cls, data, info):
        result = np.asarray(data).view(cls)
        result.info = info
        return result

    def __array_finalize__(self, obj):
        self.info = getattr(obj, "info", None)


def _masked() -> dict[str, np.ma.MaskedArray]:
    data = np.arange(24.0).reshape(2, 3, 4)
    m = np.ma.array(data, mask=(np.arange(24) % 5 == 0).reshape(2, 3, 4), fill_value=-1.0)
    hard = np.ma.array(data, mask=data > 20, hard_mask=True)
    return {
        "masked": m,
        "masked-t": m.transpose(1, 0, 2),
        "masked-f": m.T,
        "masked-slice": m[:, ::2],
        "nomask": np.ma.array(np.arange(6.0).reshape(2, 3)),
        "hardmask": hard,
        "masked-int32": np.ma.array(np.arange(5, dtype=">i4"), mask=[0, 1, 0, 0, 1]),
    }


def _subclassed() -> dict[str, np.ndarray]:
    cases: dict[str, np.ndarray] = dict(_masked())
    with warnings.catch_warnings():  # numpy recommends against matrix, and says so
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        cases["matrix"] = np.asmatrix(np.arange(6.0).reshape(2, 3))
        cases["matrix-t"] = np.asmatrix(np.arange(6.0).reshape(2, 3)).T
    cases["tagged"] = Tagged(np.arange(12.0).reshape(3, 4), "jubba")
    cases["tagged-t"] = Tagged(np.arange(12.0).reshape(3, 4), "jubba").T
    return cases


def _carried(r: np.ndarray, a: np.ndarray) -> dict[str, object]:
    """What a result carries beside its bytes, and what it shares with ``a``."""
    out: dict[str, object] = {"type": type(r), "dtype": r.dtype, "shape": r.shape}
    if isinstance(r, np.ma.MaskedArray):
        out["mask"] = np.ma.getmaskarray(r).tolist()
        out["nomask"] = r.mask is np.ma.nomask
        out["fill_value"] = r.fill_value.tolist()
        out["hardmask"] = r.hardmask
        out["mask_shared"] = np.shares_memory(np.ma.getmaskarray(r), np.ma.getmaskarray(a))
    if isinstance(r, Tagged):
        out["info"] = r.info
    return out


@pytest.mark.parametrize("name", list(_subclassed()))
def test_subclass_kept_as_numpy_keeps_it(impl, name):
    """byteswap as ``a.byteswap()``, hton as ``a.astype('>...')``; ntoh, which numpy has
    no one method for, carries what ``a.astype(native dtype)`` carries (numpy.ma's
    ``view`` with a new dtype would reset the fill value) with the bytes of
    ``a.view('>...').astype(native)``."""
    a = _subclassed()[name]
    for got, expected, carrier in (
        (impl.byteswap(a), a.byteswap(), None),
        (impl.hton(a), a.astype(a.dtype.newbyteorder(">")), None),
        (impl.ntoh(a), _ref_ntoh(a), a.astype(a.dtype.newbyteorder("="))),
    ):
        assert _carried(got, a) == _carried(expected if carrier is None else carrier, a)
        assert same_bytes(np.asarray(got), np.asarray(expected))
        _same_layout(got, expected)


def test_masked_byteswap_in_place_keeps_the_mask(impl):
    m = _masked()["masked"]
    ours, theirs = m.copy(), m.copy()
    assert impl.byteswap(ours, inplace=True) is ours
    assert theirs.byteswap(inplace=True) is theirs
    assert _carried(ours, m) == _carried(theirs, m)
    assert same_bytes(np.asarray(ours), np.asarray(theirs))


def test_masked_converted_in_place(impl):
    """``out=m`` is in place: the mask stays with the array, as with ``inplace=True``."""
    m = _masked()["masked"].copy()
    mask, values = m.mask.copy(), m.data.copy()
    got = impl.hton(m, out=m)
    assert isinstance(got, np.ma.MaskedArray) and np.shares_memory(got, m)
    assert got.mask.tolist() == mask.tolist() and got.dtype == np.dtype(">f8")
    assert np.array_equal(np.asarray(got), values)
    with pytest.raises(BufferMismatchError, match="mask"):  # raw bytes: no mask
        impl.ntoh(m, dtype="f8")


def test_masked_round_trip(impl):
    """A masked array through hton and back is the array it was (numpy.ma's equality:
    same mask, same values where unmasked, same fill value)."""
    for m in _masked().values():
        back = impl.ntoh(impl.hton(m))
        assert isinstance(back, np.ma.MaskedArray)
        assert back.mask.tolist() == m.mask.tolist()
        assert np.ma.allequal(back, m) and back.fill_value == m.fill_value


@pytest.mark.parametrize("fn", ["hton", "ntoh", "byteswap"])
def test_masked_input_with_out_is_refused(impl, fn):
    """``out=`` receives values only; the mask would be lost, so the call refuses and
    writes nothing (the data alone, ``m.data``, is accepted)."""
    m = _masked()["masked"]
    for out in (np.zeros(m.shape), bytearray(m.nbytes), np.ma.zeros(m.shape)):
        before = bytes(np.asarray(out).tobytes()) if not isinstance(out, bytearray) else b""
        with pytest.raises(BufferMismatchError, match="mask"):
            getattr(impl, fn)(m, out=out)
        if isinstance(out, bytearray):
            assert not any(out)
        else:
            assert np.asarray(out).tobytes() == before
    out = np.empty(m.shape, m.dtype)
    getattr(impl, fn)(m.data, out=out)
    expected = {"hton": m.data.astype(">f8"), "ntoh": _ref_ntoh(m.data), "byteswap": None}[fn]
    if expected is None:
        expected = m.data.byteswap()
    assert np.asarray(out).tobytes() == expected.tobytes()


def test_out_of_a_subclass_receives_the_values(impl):
    """``out=`` follows numpy.copyto: values go into ``out``'s memory; ``out`` keeps its
    class and its own attributes; the result is ``out`` or ``out.view(dtype)``."""
    a = np.arange(4.0)
    out = np.ma.array(np.zeros(4), mask=[1, 0, 0, 0])
    ref = np.ma.array(np.zeros(4), mask=[1, 0, 0, 0])
    np.copyto(ref, a.byteswap())
    got = impl.byteswap(a, out=out)
    assert got is out
    assert out.mask.tolist() == ref.mask.tolist()
    assert np.asarray(out).tobytes() == np.asarray(ref).tobytes()

    out = np.ma.array(np.zeros(4), mask=[0, 0, 1, 0])
    got = impl.hton(a, out=out)  # other byte-order label: a view of out, of its class
    expected_view = out.view(">f8")
    assert type(got) is type(expected_view) and got.dtype == np.dtype(">f8")
    assert np.shares_memory(got, out) and got.mask.tolist() == [False, False, True, False]
    assert np.asarray(got).tobytes() == a.astype(">f8").tobytes()

    tagged = Tagged(np.zeros(4), "meta")
    got = impl.ntoh(a.astype(">f8"), out=tagged)
    assert got is tagged and tagged.info == "meta" and np.array_equal(np.asarray(tagged), a)
    got = impl.hton(a, out=tagged)
    assert type(got) is Tagged and got.info == "meta" and got.dtype == np.dtype(">f8")


# ---- in place on what cannot change in place ----


def _numpy_error(fn) -> type[BaseException]:
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value)


@pytest.mark.parametrize(
    "scalar", [np.float64(1.0), np.int8(3), np.complex64(1 - 2j), np.bool_(True)]
)
def test_scalar_in_place_raises_as_numpy(impl, scalar):
    numpy_error = _numpy_error(lambda: scalar.byteswap(inplace=True))
    with pytest.raises(numpy_error, match="scalar"):
        impl.byteswap(scalar, inplace=True)
    assert same_bytes(impl.byteswap(scalar), np.asarray(scalar.byteswap()))


@pytest.mark.parametrize("obj", [[1.0, 2.0], (1, 2, 3), 7, 2.5])
def test_non_array_in_place_raises(impl, obj):
    before = repr(obj)
    # numpy's nearest case: an array that cannot be written in place
    ro = np.arange(3.0)
    ro.flags.writeable = False
    numpy_error = _numpy_error(lambda: ro.byteswap(inplace=True))
    with pytest.raises(numpy_error, match="in place"):
        impl.byteswap(obj, inplace=True)
    assert repr(obj) == before


def test_read_only_in_place_raises_as_numpy(impl):
    ro = np.arange(3.0)
    ro.flags.writeable = False
    numpy_error = _numpy_error(lambda: ro.byteswap(inplace=True))
    with pytest.raises(numpy_error, match="read-only"):
        impl.byteswap(ro, inplace=True)
    assert np.array_equal(ro, np.arange(3.0))
    m = np.ma.array(ro)
    with pytest.raises(numpy_error):
        impl.byteswap(m, inplace=True)


# ---- numpy's own byteswap tests, adapted ----


def test_numpy_subclass_info_preserved(impl):
    # numpy/_core/tests/test_regression.py, test_subclass_preservation (the byteswap
    # and astype lines)
    dat = Tagged([[1, 2, 3, 4], [5, 6, 7, 8]], "jubba")
    assert impl.byteswap(dat).info == "jubba"
    assert impl.hton(dat).info == "jubba"
    assert impl.ntoh(dat).info == "jubba"


def test_numpy_byteswap_complex_scalar(impl):
    # numpy/_core/tests/test_regression.py, test_byteswap_complex_scalar (ticket #1259,
    # gh-441); wirearray returns a 0-d array where numpy's scalar method returns a scalar
    for dtype in [np.dtype("<" + t) for t in np.typecodes["Complex"] if t != "G"]:
        z = np.array([2.2 - 1.1j], dtype)
        x = z[0]  # always native-endian
        y = impl.byteswap(x)
        if x.dtype.byteorder == z.dtype.byteorder:  # little-endian host
            assert x == np.frombuffer(y.tobytes(), dtype=dtype.newbyteorder())[0]
        else:
            assert x == np.frombuffer(y.tobytes(), dtype=dtype)[0]
        assert x.real == impl.byteswap(y.real)[()]
        assert x.imag == impl.byteswap(y.imag)[()]


def test_numpy_nonzero_byteswap(impl):
    # numpy/_core/tests/test_regression.py, test_nonzero_byteswap
    a = np.array([0x80000000, 0x00000080, 0], dtype=np.uint32).view(np.float32)
    assert a.nonzero()[0].tolist() == [1]
    a = impl.byteswap(a)
    a = a.view(a.dtype.newbyteorder())
    assert a.nonzero()[0].tolist() == [1]  # [0] if nonzero() ignores swap


def test_numpy_half_nonzero_and_copyswap(impl):
    # numpy/_core/tests/test_half.py, test_half_funcs ("nonzero and copyswap")
    a = np.array([0, 0, -1, -1 / 1e20, 0, 2.0**-24, 7.629e-6], dtype=np.float16)
    assert a.nonzero()[0].tolist() == [2, 5, 6]
    a = impl.byteswap(a)
    a = a.view(a.dtype.newbyteorder())
    assert a.nonzero()[0].tolist() == [2, 5, 6]


def test_numpy_iter_nbo_align_contig(impl):
    # numpy/_core/tests/test_nditer.py, test_iter_nbo_align_contig (its byteswap part)
    a = np.arange(6, dtype="f4")
    au = impl.byteswap(a)
    au = au.view(au.dtype.newbyteorder())
    assert a.dtype.byteorder != au.dtype.byteorder
    assert np.array_equal(au, a)
    with np.nditer(au, [], [["readwrite", "updateifcopy"]], casting="equiv",
                   op_dtypes=[np.dtype("f4")]) as it:  # fmt: skip
        assert np.array_equal(it.operands[0], a)
        it.operands[0][:] = 2
    assert au.tolist() == [2] * 6


def test_numpy_swap_real(impl):
    # numpy/_core/tests/test_regression.py, test_swap_real (ticket #265), through hton/ntoh
    for order in "<>":
        a = np.arange(4, dtype=order + "c8")
        for got in (impl.hton(a), impl.ntoh(impl.hton(a)), impl.byteswap(impl.byteswap(a))):
            assert got.imag.max() == 0.0 and got.real.max() == 3.0
