"""Pure-Python (numpy) implementation of wirearray's byte-order core.

Same names, arguments, results and errors as the compiled module ``wirearray._cwire``;
the test suite runs every test against both, and tests/test_api_parity.py holds the two
(and the compiled module's stub, _cwire.pyi) to the same names and signatures.  It is
used when the extension is missing (PyPy, a source install without a compiler) or when
``WIREARRAY_PUREPYTHON=1`` forces it.

Every conversion is one ``numpy.copyto`` from a *view* of the input that carries the
byte order the input's memory really has into an output that carries the byte order
wanted; numpy swaps where the two differ and handles overlapping memory itself:

* ``hton``: input as labelled (values are preserved) -> big-endian output;
* ``ntoh``: input memory read as big-endian, whatever its label -> native output;
* ``byteswap``: input read with the opposite byte order -> output with the input's
  own dtype, i.e. numpy's ``ndarray.byteswap`` semantics.

Results are allocated as numpy allocates them (``np.empty_like(a, subok=True)``):
``hton``/``ntoh`` like ``astype`` (order "K"), ``byteswap`` like ``ndarray.byteswap``
(order "A"), an ndarray subclass kept with what its ``__array_finalize__`` carries.

Choices numpy does not make for us, and why:

* ``hton``/``ntoh`` keep the input's memory order (``astype``'s "K") rather than
  byteswap's "A": they are documented as ``astype`` equivalents, and a permuted
  (transposed) input is then converted in one pass through memory in order.
* ``out=`` receives values only, as ``numpy.copyto`` does; an ``out`` subclass keeps
  its class and attributes.  numpy's copyto and ufuncs with a plain ``out`` silently
  drop a MaskedArray input's mask; here such a call is refused instead, because the
  values without their mask are not the data the caller had.
* A numpy scalar gives a 0-d array, not a scalar as its ``.byteswap()`` method does:
  ``hton`` cannot return a big-endian scalar (numpy scalars are native), so all three
  functions return arrays.  ``byteswap(inplace=True)`` of anything but an ndarray
  raises, as numpy's scalar method does, rather than swapping a temporary copy.
"""

from __future__ import annotations

import socket

import numpy as np

from . import _records as records
from ._common import (
    HOST_IS_LITTLE,
    big_endian,
    check_dtype,
    check_out_source,
    from_raw,
    native,
    prepare_out,
    refuse_inplace,
    refuse_raw,
    unsigned64,
)
from ._format import crc32c, header_length, pack_header, parse_header
from ._records import is_record
from .exceptions import BufferMismatchError

__all__ = [
    "bool_canonical",
    "bool_normalize",
    "byteswap",
    "crc32c",
    "get_simd",
    "header_length",
    "hton",
    "htonl",
    "htonll",
    "htons",
    "ntoh",
    "ntohl",
    "ntohll",
    "ntohs",
    "pack_header",
    "parse_header",
    "set_simd",
    "simd_paths",
]


def _input(a):
    """``(a, its base-class ndarray)``: the first to allocate the result like (an ndarray
    subclass is kept, as numpy keeps it), the second to read the values from."""
    if type(a) is np.ndarray:
        return a, a
    arr = np.asarray(a)  # a subclass: a base-class view; anything else: converted
    return (a if isinstance(a, np.ndarray) else arr), arr


def _convert(a, arr, out, src_view, out_dt, order):
    if out is None:
        if a is arr:  # a plain ndarray: one astype, allocated in the same order
            return src_view.astype(out_dt, order=order)
        # np.empty_like(subok=True) is the allocation numpy's own astype (order "K")
        # and byteswap (order "A") make: same class, __array_finalize__ called with a
        result = np.empty_like(a, dtype=out_dt, order=order, subok=True)
        np.copyto(np.asarray(result), src_view, casting="equiv")
        return result
    if a is not arr:
        check_out_source(a, out)
    result = prepare_out(arr, out, out_dt)
    np.copyto(np.asarray(result), src_view, casting="equiv")
    return result


def hton(a, out=None):
    """Return ``a`` with the same values in big-endian (network) byte order.

    Equivalent to ``a.astype(a.dtype.newbyteorder('>'))``, whose rules it follows on
    purpose (rather than ``byteswap``'s): the result has a big-endian dtype (one-byte
    types are copied as they are), the memory order of ``a`` (``order='K'``: C stays
    C, Fortran stays Fortran, a transpose keeps its axis order, other strided input
    gives a compact array) and the class of ``a``: an ndarray subclass is kept with
    what its ``__array_finalize__`` carries over (a numpy.ma.MaskedArray's mask, fill
    value and hard-mask flag, as ``astype`` keeps them).

    Args:
        a: an ndarray or subclass (any layout, read-only and unaligned included) or
            anything ``numpy.asarray`` accepts (a numpy scalar gives a 0-d array), of
            a supported dtype in any byte order.
        out: ``None`` to allocate the result; an ndarray of the same shape and item
            size to write into (``out=a`` converts in place); or a writable
            C-contiguous buffer of exactly ``a.nbytes`` bytes, filled in C order (in
            Fortran order for a Fortran-contiguous ``a``).  ``out`` receives the
            values only, as with ``numpy.copyto``: an ndarray subclass given as
            ``out`` keeps its class and its own attributes (a MaskedArray ``out``
            keeps its mask).

    Returns:
        The result array.  With ``out=``, a view of ``out``'s memory carrying the
        big-endian dtype (``out`` itself if its dtype is already that; of ``out``'s
        class, as ``out.view(dtype)`` gives).

    Raises:
        UnsupportedDtypeError: ``a``'s dtype is not a supported dtype (numeric;
            datetime64/timedelta64 with a unit: converted as int64, the unit and
            multiplier kept in the result's dtype; a record or S/U/V array, each
            field converted by its own byte order, padding bytes zero in the
            result -- see wirearray._records).
        BufferMismatchError: ``out`` does not fit, or ``a`` is a MaskedArray and
            ``out`` is not ``a`` itself (its mask cannot go into ``out``).
    """
    a, arr = _input(a)
    check_dtype(arr.dtype)
    if is_record(arr.dtype):
        return records.convert(a, arr, out, "hton", "K")
    return _convert(a, arr, out, arr, big_endian(arr.dtype), "K")


def ntoh(a, out=None, *, dtype=None, shape=None):
    """Return the native-order array whose big-endian representation is ``a``.

    The memory of ``a`` is read as big-endian data whatever its dtype label says
    (``'>f8'``, or a plain ``float64`` array that ``recv_into`` filled from the
    wire), so ``ntoh(hton(x))`` equals ``x``.  Memory order and class of the result
    follow :func:`hton` (``astype``'s rules).

    Args:
        a: an ndarray (or subclass) of a supported dtype, or with ``dtype=`` any
            C-contiguous buffer (bytes, bytearray, memoryview, ndarray) read as raw
            bytes.
        out: as for :func:`hton`; the returned view carries the native dtype.
        dtype: read ``a`` as a raw buffer of this dtype (byte order label ignored:
            the data are big-endian).
        shape: with ``dtype=``, the result's shape (default: 1-d).

    Returns:
        A native-order array (or view of ``out``).

    Raises:
        UnsupportedDtypeError, BufferMismatchError: as for :func:`hton`; also
            BufferMismatchError for a MaskedArray with ``dtype=`` (raw bytes carry no
            mask).
    """
    if dtype is not None:
        arr = a = from_raw(a, dtype, shape)
    elif shape is not None:
        raise BufferMismatchError("ntoh(shape=...) needs dtype=... as well")
    else:
        refuse_raw(a)
        a, arr = _input(a)
        check_dtype(arr.dtype)
    dt = arr.dtype
    if is_record(dt):
        return records.convert(a, arr, out, "ntoh", "K")
    return _convert(a, arr, out, arr.view(big_endian(dt)), native(dt), "K")


def byteswap(a, inplace=False, out=None):
    """Reverse the bytes of every element, keeping the dtype label (``ndarray.byteswap``).

    Complex numbers have each component swapped; one-byte types are copied.  The
    result is what ``a.byteswap()`` returns: a C-ordered copy unless ``a`` is
    Fortran-contiguous (then Fortran-ordered; numpy's ``copy(order='A')``), of the
    class of ``a`` with what its ``__array_finalize__`` carries over (a MaskedArray's
    mask, fill value and hard-mask flag).

    Args:
        a: an ndarray or subclass of a supported dtype (with ``inplace=False``, also
            anything ``numpy.asarray`` accepts: a numpy scalar gives a 0-d array).
        inplace: swap ``a`` itself and return it; ``a`` must be a writable ndarray
            (numpy scalars, lists and other non-ndarrays cannot be changed in place).
        out: as for :func:`hton`; may not be combined with ``inplace=True``.

    Returns:
        The swapped array (``a`` when ``inplace``).

    Raises:
        UnsupportedDtypeError: as for :func:`hton`.
        BufferMismatchError (a ValueError, the type numpy raises for these):
            ``out`` does not fit; ``inplace=True`` with ``out=``, or of a read-only
            array, a numpy scalar or anything else that is not an ndarray.
    """
    if inplace:
        if out is not None and out is not a:
            raise BufferMismatchError("byteswap: give inplace=True or out=, not both")
        if not isinstance(a, np.ndarray):
            refuse_inplace(a)
        out = a
    a, arr = _input(a)
    check_dtype(arr.dtype)
    dt = arr.dtype
    if is_record(dt):
        return records.convert(a, arr, out, "swap", "A")
    return _convert(a, arr, out, arr.view(dt.newbyteorder("S")), dt, "A")


# ---- scalars: the socket module's own functions, and their 64-bit twins ----
# The 16/32-bit ones call socket's, so arguments, results and errors are the running
# interpreter's socket's (CPython 3.14 changed them: gh-132987); as functions of their
# own they also carry a signature that inspect can read on every Python version
# (socket's builtins have none before 3.13).  The 64-bit pair follows socket.htonl's
# rules as _common.unsigned64 reads them from socket at import.


def htons(x: int, /) -> int:
    """Host to network order, 16 bits (``socket.htons``).

    Arguments, results and exceptions are those of the running interpreter's
    ``socket.htons`` (CPython 3.14 raises ValueError for a negative value, earlier
    versions OverflowError).
    """
    return socket.htons(x)


def ntohs(x: int, /) -> int:
    """Network to host order, 16 bits (``socket.ntohs``): as :func:`htons`."""
    return socket.ntohs(x)


def htonl(x: int, /) -> int:
    """Host to network order, 32 bits (``socket.htonl``).

    Arguments, results and exceptions are those of the running interpreter's
    ``socket.htonl``: an ``int`` (or subclass; CPython 3.14 also any object with
    ``__index__``) from 0 to 2**32-1; TypeError for other types, OverflowError for
    values too large, and for negative values OverflowError (ValueError on 3.14+).
    """
    return socket.htonl(x)


def ntohl(x: int, /) -> int:
    """Network to host order, 32 bits (``socket.ntohl``): as :func:`htonl`."""
    return socket.ntohl(x)


def htonll(x: int) -> int:
    """Host to network order, 64 bits: :func:`htonl`'s rules at 64 bits.

    The rules are read from the running interpreter's ``socket.htonl`` at import: which
    argument types it accepts, and which exception it raises for a negative value
    (OverflowError, or ValueError on CPython 3.14+); values of 2**64 and more raise
    OverflowError.
    """
    v = unsigned64(x)
    if not HOST_IS_LITTLE:
        return v
    return int.from_bytes(v.to_bytes(8, "big"), "little")


ntohll = htonll


# ---- bool payloads: bytes 0 and 1 (docs/FORMAT.md section 3) ----


def _bytes_of(data, writable: bool = False) -> np.ndarray:
    mv = memoryview(data)
    if not mv.c_contiguous:
        raise BufferMismatchError("a C-contiguous buffer is needed")
    if writable and mv.readonly:
        raise BufferMismatchError("out is read-only")
    return np.frombuffer(mv.cast("B") if mv.ndim != 1 or mv.format != "B" else mv, np.uint8)


def bool_canonical(data) -> bool:
    """Whether every byte of ``data`` is 0 or 1: the bytes of a bool array as the wire
    format carries them (docs/FORMAT.md section 3).

    Args:
        data: a C-contiguous buffer (bytes, bytearray, memoryview, a contiguous
            ndarray's memory), read as bytes.

    Returns:
        True when no byte is above 1 (an empty buffer included).  One reading pass
        (numpy's max), no temporary array.
    """
    return int(_bytes_of(data).max(initial=0)) <= 1


def bool_normalize(data, out):
    """Write each byte of ``data`` into ``out`` as 0 or 1 (``byte != 0``): numpy's
    truth value of a bool byte, as the wire format carries it.

    Args:
        data: a C-contiguous buffer, read as bytes.
        out: a writable C-contiguous buffer of the same length in bytes; it may be
            ``data`` itself (normalised in place).

    Returns:
        ``out``.

    Raises:
        BufferMismatchError: ``out`` has another length, or overlaps ``data``
            without being the same memory.
    """
    src, dst = _bytes_of(data), _bytes_of(out, writable=True)
    if dst.size != src.size:
        raise BufferMismatchError(f"bool_normalize: out has {dst.size} bytes, data {src.size}")
    if src.size and dst.ctypes.data != src.ctypes.data and np.shares_memory(src, dst):
        raise BufferMismatchError("bool_normalize: out overlaps data")
    np.not_equal(src, 0, out=dst.view(np.bool_))
    return out


# ---- SIMD selection: the fallback has one path, numpy's own loops ----


def simd_paths() -> tuple[str, ...]:
    """Names of the kernel paths this implementation can run (here only ``"numpy"``)."""
    return ("numpy",)


def get_simd() -> str:
    """Name of the kernel path in use."""
    return "numpy"


def set_simd(name: str) -> str:
    """Select a kernel path by name (``"auto"`` picks the best); returns the one chosen."""
    if name not in ("auto", "numpy"):
        raise ValueError(f"unknown or unavailable SIMD path {name!r}; available: ('numpy',)")
    return "numpy"
