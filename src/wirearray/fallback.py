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
"""

from __future__ import annotations

import socket

import numpy as np

from ._common import (
    HOST_IS_LITTLE,
    big_endian,
    check_dtype,
    from_raw,
    native,
    prepare_out,
)
from ._format import crc32c, header_length, pack_header, parse_header
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


def _convert(a, out, src_view, out_dt):
    if out is None:
        # astype(order="K") allocates in a's memory order, as the compiled core does
        return src_view.astype(out_dt, order="K")
    result = prepare_out(a, out, out_dt)
    np.copyto(result, src_view, casting="equiv")
    return result


def hton(a, out=None):
    """Return ``a`` with the same values in big-endian (network) byte order.

    Equivalent to ``a.astype(a.dtype.newbyteorder('>'))``: the result has a
    big-endian dtype (one-byte types are copied as they are) and the memory layout of
    ``a`` (C stays C, Fortran stays Fortran, strided input gives a compact array).

    Args:
        a: an ndarray (any layout, read-only and unaligned included) or anything
            ``numpy.asarray`` accepts, of a supported dtype in any byte order.
        out: ``None`` to allocate the result; an ndarray of the same shape and item
            size to write into (``out=a`` converts in place); or a writable
            C-contiguous buffer of exactly ``a.nbytes`` bytes.

    Returns:
        The result array.  With ``out=``, a view of ``out``'s memory carrying the
        big-endian dtype (``out`` itself if its dtype is already that).

    Raises:
        UnsupportedDtypeError: ``a``'s dtype is not a supported numeric dtype.
        BufferMismatchError: ``out`` does not fit.
    """
    a = np.asarray(a)
    check_dtype(a.dtype)
    return _convert(a, out, a, big_endian(a.dtype))


def ntoh(a, out=None, *, dtype=None, shape=None):
    """Return the native-order array whose big-endian representation is ``a``.

    The memory of ``a`` is read as big-endian data whatever its dtype label says
    (``'>f8'``, or a plain ``float64`` array that ``recv_into`` filled from the
    wire), so ``ntoh(hton(x))`` equals ``x``.

    Args:
        a: an ndarray of a supported dtype, or with ``dtype=`` any C-contiguous
            buffer (bytes, bytearray, memoryview, ndarray) read as raw bytes.
        out: as for :func:`hton`; the returned view carries the native dtype.
        dtype: read ``a`` as a raw buffer of this dtype (byte order label ignored:
            the data are big-endian).
        shape: with ``dtype=``, the result's shape (default: 1-d).

    Returns:
        A native-order array (or view of ``out``).

    Raises:
        UnsupportedDtypeError, BufferMismatchError.
    """
    if dtype is not None:
        a = from_raw(a, dtype, shape)
    elif shape is not None:
        raise BufferMismatchError("ntoh(shape=...) needs dtype=... as well")
    else:
        a = np.asarray(a)
        check_dtype(a.dtype)
    dt = a.dtype
    return _convert(a, out, a.view(big_endian(dt)), native(dt))


def byteswap(a, inplace=False, out=None):
    """Reverse the bytes of every element, keeping the dtype label (``ndarray.byteswap``).

    Complex numbers have each component swapped; one-byte types are copied.

    Args:
        a: an ndarray of a supported dtype.
        inplace: swap ``a`` itself (it must be writable) and return it.
        out: as for :func:`hton`; may not be combined with ``inplace=True``.

    Returns:
        The swapped array (``a`` when ``inplace``).

    Raises:
        UnsupportedDtypeError, BufferMismatchError.
    """
    a = np.asarray(a)
    check_dtype(a.dtype)
    if inplace:
        if out is not None and out is not a:
            raise BufferMismatchError("byteswap: give inplace=True or out=, not both")
        out = a
    dt = a.dtype
    return _convert(a, out, a.view(dt.newbyteorder("S")), dt)


# ---- scalars: the socket module's own functions, and their 64-bit twins ----
# The 16/32-bit ones call socket's, so arguments, results and errors are socket's; as
# functions of their own they also carry a signature that inspect can read on every
# Python version (socket's builtins have none before 3.13).


def htons(x: int, /) -> int:
    """Host to network order, 16 bits (``socket.htons``)."""
    return socket.htons(x)


def ntohs(x: int, /) -> int:
    """Network to host order, 16 bits (``socket.ntohs``)."""
    return socket.ntohs(x)


def htonl(x: int, /) -> int:
    """Host to network order, 32 bits (``socket.htonl``)."""
    return socket.htonl(x)


def ntohl(x: int, /) -> int:
    """Network to host order, 32 bits (``socket.ntohl``)."""
    return socket.ntohl(x)


def htonll(x: int) -> int:
    """64-bit ``htonl``: same rules (an ``int`` from 0 to 2**64-1, else OverflowError/TypeError)."""
    if not isinstance(x, int):
        raise TypeError(f"expected int, {type(x).__name__} found")
    if x < 0:
        raise OverflowError("can't convert negative value to unsigned int")
    if x >> 64:
        raise OverflowError("int larger than 64 bits")
    if not HOST_IS_LITTLE:
        return int(x)
    return int.from_bytes(x.to_bytes(8, "big"), "little")


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
