# boolean.pxi -- bool payloads checked and normalised to bytes 0 and 1, as the wire
# format wants them (docs/FORMAT.md section 3; the loops are wa_bool.h's).  Included
# by _cwire.pyx.
#
# Invariants: every Py_buffer taken is released in `finally`; the GIL is released only
# around the C loops and only from GIL_RELEASE_BYTES on; the loops see two buffers of
# the same length, identical or disjoint.

from cpython.buffer cimport PyBUF_WRITABLE


def bool_canonical(data):
    """Whether every byte of ``data`` is 0 or 1: the bytes of a bool array as the wire
    format carries them (docs/FORMAT.md section 3).

    Args:
        data: a C-contiguous buffer (bytes, bytearray, memoryview, a contiguous
            ndarray's memory), read as bytes.

    Returns:
        True when no byte is above 1 (an empty buffer included).  One reading pass,
        stopping at the first 4 KiB block with a byte above 1; the GIL is released
        for buffers of 64 KiB and more.
    """
    cdef Py_buffer view
    cdef int ok
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len >= GIL_RELEASE_BYTES:
            with nogil:
                ok = wa_bool_canonical(<const unsigned char *> view.buf, <size_t> view.len)
        else:
            ok = wa_bool_canonical(<const unsigned char *> view.buf, <size_t> view.len)
    finally:
        PyBuffer_Release(&view)
    return ok != 0


def bool_normalize(data, out):
    """Write each byte of ``data`` into ``out`` as 0 or 1 (``byte != 0``): numpy's
    truth value of a bool byte, as the wire format carries it.

    Args:
        data: a C-contiguous buffer, read as bytes.
        out: a writable C-contiguous buffer of the same length in bytes; it may be
            ``data`` itself (normalised in place).

    Returns:
        ``out``.  The GIL is released for buffers of 64 KiB and more.

    Raises:
        BufferMismatchError: ``out`` has another length, or overlaps ``data``
            without being the same memory.
    """
    cdef Py_buffer src
    cdef Py_buffer dst
    cdef const unsigned char *s
    cdef unsigned char *d
    cdef size_t n
    PyObject_GetBuffer(data, &src, PyBUF_SIMPLE)
    try:
        PyObject_GetBuffer(out, &dst, PyBUF_WRITABLE)
        try:
            if dst.len != src.len:
                raise BufferMismatchError(
                    f"bool_normalize: out has {dst.len} bytes, data {src.len}")
            s = <const unsigned char *> src.buf
            d = <unsigned char *> dst.buf
            n = <size_t> src.len
            if d != s and n and d < s + n and s < d + n:
                raise BufferMismatchError("bool_normalize: out overlaps data")
            if src.len >= GIL_RELEASE_BYTES:
                with nogil:
                    wa_bool_normalize(d, s, n)
            else:
                wa_bool_normalize(d, s, n)
        finally:
            PyBuffer_Release(&dst)
    finally:
        PyBuffer_Release(&src)
    return out
