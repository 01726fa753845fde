# bulk.pxi -- _recv_payload: a large payload received, swapped and checksummed in one
# call (included by _cwire.pyx; the loop is wa_recv.h).
#
# The decoder stays the one state machine: it names the window (Decoder.payload_target)
# and is told what landed (Decoder.payload_landed); this only fills the window.  The
# blocking and asyncio loops call it through wirearray._bulk, for plain sockets only
# (TLS and the fallback keep the Python loop of recv_into calls).
#
# Invariants: the Py_buffer of the window is released in `finally`; the C loop runs
# with the GIL released and touches no Python object; a signal interrupts it (EINTR),
# the handlers run with the GIL held, and an exception they raise is returned, not
# raised, so that the caller first reports the bytes that did land.

from libc.string cimport strerror

cdef extern from "Python.h":
    int PyErr_CheckSignals() except -1

#: _recv_payload's outcomes
_RX_DONE = WA_RX_DONE
_RX_EOF = WA_RX_EOF
_RX_AGAIN = WA_RX_AGAIN
_RX_TIMEOUT = WA_RX_TIMEOUT
_RX_ERROR = WA_RX_ERRNO
_RX_UNSUPPORTED = WA_RX_UNSUPPORTED

#: most bytes per recv when each chunk is swapped or checksummed as it lands (the
#: codec's SWAP_CHUNK_BYTES: a chunk is still in cache when it is swapped)
cdef size_t _RX_CHUNK = 1 << 20


def _recv_payload(int fd, window, Py_ssize_t pos, int unit, crc, timeout):
    """Receive into ``window[pos:]`` from the stream socket ``fd`` until it is full,
    the peer closes, or ``timeout`` passes; swap in place every whole ``unit``-byte
    element of ``window`` as it lands, and continue the CRC32C ``crc`` over the bytes
    received (before the swap), unless ``crc`` is None.

    ``window`` starts at an element boundary; its first ``pos`` bytes (less than one
    element) landed before and are not swapped.  ``timeout``: None waits as long as
    it takes, 0 takes only what is readable now, else seconds.

    Returns ``(pos, crc, outcome, exc)``: the bytes of ``window`` landed now, the
    CRC32C so far (None without one), one of _RX_DONE, _RX_EOF, _RX_AGAIN, _RX_TIMEOUT,
    _RX_ERROR, _RX_UNSUPPORTED, and the exception to raise after the landed bytes are
    reported (an OSError for _RX_ERROR, or what a signal handler raised), else None.
    """
    cdef Py_buffer view
    cdef wa_rx s
    cdef int status
    cdef object exc = None
    if unit not in (0, 2, 4, 8):
        raise ValueError(f"_recv_payload: unit {unit}")
    PyObject_GetBuffer(window, &view, PyBUF_SIMPLE | PyBUF_WRITABLE)
    try:
        if pos < 0 or pos > view.len or (unit and pos >= unit):
            raise ValueError(f"_recv_payload: pos {pos} in a {view.len}-byte window")
        s.fd = fd
        s.buf = <char *> view.buf
        s.len = <size_t> view.len
        s.pos = <size_t> pos
        s.swapped = 0
        s.chunk = _RX_CHUNK
        s.unit = unit
        s.path = _path
        s.do_crc = crc is not None
        s.crc = <uint32_t> ((crc or 0) & 0xFFFFFFFF)
        s.err = 0
        if timeout is None:
            s.deadline_ns = -1
        elif timeout <= 0:
            s.deadline_ns = 0
        else:
            s.deadline_ns = wa_now_ns() + max(<int64_t> (timeout * 1e9), 1)
        while True:
            with nogil:
                status = wa_rx_run(&s)
            if status != WA_RX_EINTR:
                break
            try:
                PyErr_CheckSignals()
            except BaseException as e:  # KeyboardInterrupt included: reported first
                exc = e
                status = WA_RX_ERRNO
                break
        if status == WA_RX_ERRNO and exc is None:
            # OSError(errno, ...) is the errno's subclass, as the socket module raises
            exc = OSError(s.err, strerror(s.err).decode())
    finally:
        PyBuffer_Release(&view)
    return s.pos, (s.crc if crc is not None else None), status, exc
