"""Helpers shared by the compiled core and the pure-Python fallback.

Both implementations validate arguments with this code, so their errors are the same
objects with the same messages; only the loops differ.  Nothing here is on the fast
path of the compiled core: it runs for ``out=`` buffers that are not a plain matching
ndarray, for raw-buffer input to ``ntoh``, and for non-ndarray inputs.
"""

from __future__ import annotations

import operator
import socket
import sys
from collections.abc import Mapping
from typing import Any, Literal, SupportsIndex, cast

import numpy as np

from ._records import is_record, swap_plan
from .exceptions import BufferMismatchError, UnsupportedDtypeError, UsageError

#: numpy type characters of the dtypes wirearray converts, in the order of the wire
#: format's dtype table: bool, signed and unsigned integers, floats, complex.  'l'/'L'
#: and 'q'/'Q' are both listed because numpy has two 64-bit integer types on LP64
#: (and 'l' is 32-bit on Windows); both map to int64/uint64 or int32/uint32 by size.
#: 'M' and 'm' are datetime64 and timedelta64 of every unit and multiplier: int64
#: underneath, converted as int64; their unit lives in the dtype, not the character.
SUPPORTED_CHARS = "?bBhHiIlLqQefdFDMm"
#: the type characters whose dtypes carry a unit and multiplier (numpy's datetime metadata)
TIME_CHARS = "Mm"

HOST_IS_LITTLE = sys.byteorder == "little"


def check_dtype(dt: np.dtype) -> None:
    """Raise UnsupportedDtypeError unless ``dt`` is one of the supported dtypes: numeric,
    datetime64/timedelta64 with a unit, or a record (structured, S, U, V) whose fields
    are (``_records.swap_plan``)."""
    if is_record(dt):
        swap_plan(dt)  # raises for a field it cannot convert
        return
    if dt.char not in SUPPORTED_CHARS or dt.fields is not None or dt.subdtype is not None:
        raise UnsupportedDtypeError(
            f"wirearray does not convert dtype {dt!r}: supported are bool, int8..int64, "
            "uint8..uint64, float16/32/64, complex64/128, datetime64 and timedelta64 "
            "with a unit, S/U/V strings and records of these"
        )
    if dt.type is not np.dtype(dt.char).type:  # a user-defined dtype reusing a char
        raise UnsupportedDtypeError(f"wirearray does not convert dtype {dt!r}")
    if dt.char in TIME_CHARS and np.datetime_data(dt)[0] == "generic":
        # numpy resolves a generic unit away instead of keeping it in another byte
        # order (np.empty(1, ">M8") is little-endian): no big-endian result can carry it
        raise UnsupportedDtypeError(
            f"wirearray does not convert {dt!r} without a unit: give one "
            "(e.g. datetime64[ns], timedelta64[10ms])"
        )


def array_to_send(array: Any) -> np.ndarray:
    """``array`` as the ndarray one frame carries (``numpy.asarray``), refusing what
    would only be a confusing dtype or shape error: several named arrays (a mapping),
    or a sequence of arrays numpy cannot stack, belong in one message (``send_many``).

    A ``numpy.ma.MaskedArray`` is refused too: a frame carries values only, and its
    mask would be lost without a trace (``np.save`` drops it silently; a send does not).

    Raises:
        UsageError: a mapping, a list/tuple of arrays that is not one array, or a
            MaskedArray.
    """
    if type(array) is np.ndarray:
        return array
    refuse_masked(array)
    if isinstance(array, Mapping):
        raise UsageError(
            "send() takes one array, not a mapping: send named arrays as one message "
            "with send_many({name: array, ...}) (codec: Encoder.message)"
        )
    try:
        a = np.asarray(array)
    except ValueError as exc:  # e.g. arrays of different shapes in a list
        if isinstance(array, (list, tuple)) and any(isinstance(x, np.ndarray) for x in array):
            raise UsageError(
                "send() takes one array, not a list of arrays: send each with send(), "
                "or all as one message with send_many({name: array, ...}) "
                "(codec: Encoder.message)"
            ) from None
        raise UsageError(f"send() takes one array: {exc}") from None
    if a.dtype.hasobject and isinstance(array, (list, tuple)):
        raise UsageError(
            "send() takes one array, not a list of objects: send each array with "
            "send(), or several as one message with send_many({name: array, ...}) "
            "(codec: Encoder.message)"
        )
    return a


def message_array(array: Any) -> np.ndarray:
    """One array of a message as ``numpy.asarray`` gives it, a MaskedArray refused
    (see ``refuse_masked``)."""
    if type(array) is not np.ndarray:
        refuse_masked(array)
    return np.asarray(array)


def refuse_masked(array: object) -> None:
    """Raise UsageError for a ``numpy.ma.MaskedArray`` given to a send: a frame carries
    an array's values, and the mask would be dropped silently."""
    ma = sys.modules.get("numpy.ma")  # not loaded: no MaskedArray can exist
    if ma is not None and isinstance(array, ma.MaskedArray):
        raise UsageError(
            "a MaskedArray's mask cannot travel in one frame: send the values and the "
            "mask as one message, send_many({'data': m.data, 'mask': "
            "numpy.ma.getmaskarray(m)}), or m.filled(value) to send values alone"
        )


def byte_view(data: bytes | bytearray | memoryview | np.ndarray) -> memoryview:
    """A flat view of the bytes of any buffer (a multi-byte-item or n-d buffer is read
    as its bytes in memory order)."""
    mv = memoryview(cast("bytes", data))  # an ndarray is a buffer: numpy's stubs say so on 3.12+
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    return mv


def detached(exc: BaseException) -> BaseException:
    """A copy of ``exc`` to keep after it was raised: same type, message and plain
    attributes, but no traceback, context or cause (whose frames could hold large
    buffers alive through a reference cycle) and no array attributes."""
    cls = type(exc)
    try:
        new = cls.__new__(cls, *exc.args)
        new.args = exc.args
        for key, value in vars(exc).items():
            if not isinstance(value, (np.ndarray, memoryview, bytearray)):
                setattr(new, key, value)
    except Exception:  # an exception type that cannot be rebuilt this way
        new = RuntimeError(f"{cls.__name__}: {exc}")
    return new


def mem_is_big(dt: np.dtype) -> bool:
    """Whether ``dt``'s items are big-endian in memory (one-byte types: as the host)."""
    return dt.byteorder == ">" or (dt.byteorder == "=" and not HOST_IS_LITTLE)


def big_endian(dt: np.dtype) -> np.dtype:
    """``dt`` with big-endian byte order (unchanged for one-byte types); a datetime64 or
    timedelta64 keeps its unit and multiplier."""
    if dt.char in TIME_CHARS or is_record(dt):
        return dt.newbyteorder(">")
    return np.dtype(dt.char).newbyteorder(">")


def native(dt: np.dtype) -> np.dtype:
    """``dt`` in this host's byte order (a datetime64 or timedelta64 keeps its unit)."""
    if dt.char in TIME_CHARS or is_record(dt):
        return dt.newbyteorder("=")
    return np.dtype(dt.char)


def layout_order(a: np.ndarray) -> Literal["C", "F"]:
    """'F' for an array that is Fortran- but not C-contiguous, else 'C'."""
    return "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def from_raw(buf, dtype, shape) -> np.ndarray:
    """Read a raw buffer (bytes, bytearray, memoryview, contiguous ndarray) as an array.

    The result is a zero-copy, possibly read-only view with ``dtype``'s native-order
    label; ``ntoh`` then reads its memory as big-endian data.
    """
    dt = np.dtype(dtype)
    check_dtype(dt)
    ma = sys.modules.get("numpy.ma")
    if ma is not None and isinstance(buf, ma.MaskedArray):
        raise BufferMismatchError(
            "ntoh(dtype=...) reads raw bytes and would drop the MaskedArray's mask: "
            "convert the array without dtype=, or pass its data (m.data)"
        )
    try:
        mv = memoryview(buf)
    except TypeError:
        raise BufferMismatchError(
            "ntoh(dtype=...) needs a buffer (bytes, bytearray, memoryview), "
            f"not {type(buf).__name__}"
        ) from None
    if not mv.c_contiguous:
        raise BufferMismatchError("ntoh(dtype=...) needs a C-contiguous buffer")
    if mv.nbytes % dt.itemsize:
        raise BufferMismatchError(
            f"buffer of {mv.nbytes} bytes is not a whole number of {dt.itemsize}-byte items"
        )
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    arr = np.frombuffer(mv, dtype=native(dt))
    if shape is not None:
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        count = 1
        for n in shape:
            count *= n
        if any(n < 0 for n in shape) or count != arr.size:
            raise BufferMismatchError(
                f"shape {shape} needs {count} items; the buffer holds {arr.size}"
            )
        arr = arr.reshape(shape)
    return arr


def refuse_raw(a: object) -> None:
    """Refuse a raw buffer given to ``ntoh`` without ``dtype=``: numpy would make it an
    ``S`` array (bytes, converted as they are), which is not what a caller holding
    big-endian numbers means."""
    if isinstance(a, (bytes, bytearray, memoryview)):
        raise UnsupportedDtypeError(
            f"ntoh of a raw {type(a).__name__} needs dtype=... (the type of its numbers)"
        )


def check_out_source(a: np.ndarray, out: object) -> None:
    """Refuse ``out=`` for an input whose class carries data that ``out=`` cannot take.

    ``out=`` receives the converted values only (numpy.copyto's semantics); a
    numpy.ma.MaskedArray's mask would be lost without a trace, so such an input is
    refused unless ``out`` is the input itself (in place, where the mask stays).
    """
    ma = sys.modules.get("numpy.ma")  # not loaded: no MaskedArray can exist
    if ma is not None and isinstance(a, ma.MaskedArray) and out is not a:
        raise BufferMismatchError(
            "out= receives the values only and would drop the MaskedArray's mask: "
            "convert without out= (the result keeps the mask and fill value), "
            "or pass the data (m.data) to convert the values alone"
        )


def refuse_inplace(a: object) -> None:
    """Raise BufferMismatchError for ``byteswap(a, inplace=True)`` of a non-ndarray:
    numpy scalars (as ``ndarray.byteswap`` does), lists, tuples, buffers."""
    if isinstance(a, np.generic):
        raise BufferMismatchError("cannot byteswap a scalar in place")
    raise BufferMismatchError(
        f"byteswap(inplace=True) changes an ndarray's memory; {type(a).__name__!r} "
        "objects cannot be changed in place (numpy.asarray views a writable buffer "
        "as an ndarray)"
    )


def prepare_out(a: np.ndarray, out, dt: np.dtype) -> np.ndarray:
    """Validate ``out`` for a result shaped like ``a`` and return it viewed as ``dt``.

    ``out`` may be an ndarray of the same shape and item size (any dtype label: the
    result is written as bytes and the returned view carries ``dt``), or a writable
    C-contiguous buffer of exactly ``a.nbytes`` bytes -- bytearray, memoryview, or a
    1-d ``uint8`` ndarray -- which is filled in ``a``'s memory order (Fortran order for
    a Fortran-contiguous ``a``, else C order).
    """
    if isinstance(out, np.ndarray) and not (
        out.ndim == 1 and out.dtype == np.uint8 and out.shape != a.shape
    ):
        if out.shape != a.shape:
            raise BufferMismatchError(f"out has shape {out.shape}; the result has {a.shape}")
        if out.dtype.itemsize != dt.itemsize:
            raise BufferMismatchError(
                f"out has {out.dtype.itemsize}-byte items; the result has {dt.itemsize}-byte items"
            )
        if not out.flags.writeable:
            raise BufferMismatchError("out is read-only")
        if out.dtype == dt:
            return out
        try:
            return out.view(dt)
        except (TypeError, ValueError) as exc:
            raise BufferMismatchError(f"out cannot be viewed as {dt!r}: {exc}") from None
    try:
        mv = memoryview(out)
    except TypeError:
        raise BufferMismatchError(
            f"out must be an ndarray or a writable buffer, not {type(out).__name__}"
        ) from None
    if mv.readonly:
        raise BufferMismatchError("out is read-only")
    if not mv.c_contiguous:
        raise BufferMismatchError("out must be a C-contiguous buffer")
    if mv.nbytes != a.nbytes:
        raise BufferMismatchError(f"out has {mv.nbytes} bytes; the result needs {a.nbytes}")
    if mv.nbytes == 0:
        return np.empty(a.shape, dt)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    return np.frombuffer(mv, dtype=dt).reshape(a.shape, order=layout_order(a))


# ---- the argument rules of socket.htonl, read from the running interpreter ----
# The 64-bit helpers (htonll/ntohll) have no socket twin; they follow socket.htonl's
# rules, which changed in CPython 3.14 (gh-132987: any object with __index__ accepted,
# a negative value a ValueError instead of an OverflowError).  Rather than a table of
# versions, the rules are read from this interpreter's socket module once, at import,
# so a future change follows without a release.  (The 16/32-bit helpers need no such
# table: anything but a plain in-range int goes to socket's function itself.)


class _IndexOnly:
    """An integer-like object that is not an int: has ``__index__`` only."""

    def __index__(self) -> int:
        return 1


def _error_of(fn, arg) -> BaseException | None:
    try:
        fn(arg)
    except Exception as exc:
        return exc
    return None


#: Whether socket.htonl accepts objects with ``__index__`` (3.14+) or ints only.
HTONL_TAKES_INDEX = _error_of(socket.htonl, _IndexOnly()) is None
_NEGATIVE = _error_of(socket.htonl, -1)
_TOO_LARGE = _error_of(socket.htonl, 2**32)
#: The exception types (and, for negative values, the message) socket.htonl raises.
NEGATIVE_ERROR: type[BaseException] = type(_NEGATIVE) if _NEGATIVE else OverflowError
NEGATIVE_MESSAGE = str(_NEGATIVE) if _NEGATIVE else "can't convert negative value to unsigned int"
TOO_LARGE_ERROR: type[BaseException] = type(_TOO_LARGE) if _TOO_LARGE else OverflowError


def unsigned64(x: object) -> int:
    """``x`` as an int from 0 to 2**64-1 under socket.htonl's rules of this interpreter.

    An int (or subclass, bool included) counts by its value; another object with
    ``__index__`` is accepted where socket.htonl accepts one (CPython 3.14+), refused
    with TypeError before; negative values raise what socket.htonl raises for them,
    values of 2**64 and more what it raises for values of 2**32 and more.
    """
    if isinstance(x, int):
        v = operator.index(x)  # the int value, whatever the subclass's __index__ says
    elif HTONL_TAKES_INDEX:
        v = operator.index(cast("SupportsIndex", x))  # TypeError for non-integers
    else:
        raise TypeError(f"expected int, {type(x).__name__} found")
    if v < 0:
        raise NEGATIVE_ERROR(NEGATIVE_MESSAGE)
    if v >> 64:
        raise TOO_LARGE_ERROR("int larger than 64 bits")
    return v
