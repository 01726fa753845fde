# crc.pxi -- CRC32C (Castagnoli) of any C-contiguous buffer (included by _cwire.pyx).
#
# The checksum of headers and payloads (docs/FORMAT.md section 4).  wa_crc32c.h picks
# SSE4.2 or the ARMv8 CRC instructions where the CPU has them (wa_cpu.h), else tables;
# every path gives the same value, whatever the host byte order.
#
# Invariants: every Py_buffer taken is released in `finally`; the GIL is released only
# around the C loop and only from GIL_RELEASE_BYTES on.

def crc32c(data, crc=0):
    """CRC32C (Castagnoli) of a C-contiguous buffer, continuing ``crc`` (0 to start).

    ``crc32c(b, crc32c(a)) == crc32c(a + b)``.  Uses SSE4.2 or ARMv8 CRC instructions
    where available (see wa_crc32c.h); the GIL is released for large buffers.
    """
    cdef Py_buffer view
    cdef uint32_t c = <uint32_t> (crc & 0xFFFFFFFF)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        if view.len >= GIL_RELEASE_BYTES:
            with nogil:
                c = wa_crc32c(c, view.buf, <size_t> view.len)
        else:
            c = wa_crc32c(c, view.buf, <size_t> view.len)
    finally:
        PyBuffer_Release(&view)
    return c


def _crc32c_portable(data, crc=0):
    """crc32c() forced onto the portable table path (for tests)."""
    cdef Py_buffer view
    cdef uint32_t c = <uint32_t> (crc & 0xFFFFFFFF)
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        c = wa_crc32c_portable(c, view.buf, <size_t> view.len)
    finally:
        PyBuffer_Release(&view)
    return c
