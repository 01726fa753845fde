# fastpath.pxi -- a whole small frame in one call: encode_small / decode_small,
# send_small (encode_small plus one non-blocking send(2)) and hold_small (encode_small
# into send(flush=False)'s buffer), the transport's per-message path (included by
# _cwire.pyx).
#
# A stream of small arrays is bounded by per-message overhead, not by bytes: the
# general Encoder/Decoder path costs several microseconds of Python per frame.  These
# two functions do a whole unnamed array frame in one call.  They are accelerators,
# not a second implementation of the format: each either produces exactly what the
# general path produces or returns None -- for anything unusual (names, messages,
# limits exceeded, a damaged frame, an ``out`` that does not fit) -- and the general
# path then decides and reports.  tests/test_fastpath.py holds them to that.
#
# Invariants:
#   * The format is wa_format.h's: encode_small writes headers with the same
#     wa_put_fixed / wa_seal_header as pack_header, and decode_small accepts a header
#     only when wa_check_header -- the check behind parse_header -- does; what it adds
#     are this path's own conditions (an unnamed array, the expected seq, the
#     caller's limits, the whole frame present, a shape this host can allocate).
#   * Nothing is written to the caller's ``out`` or allocated before every check of
#     the frame, payload checksum and padding included, has passed.
#   * Every Py_buffer taken is released in `finally`; dims[] is indexed below ndim,
#     which wa_check_header has bounded by WA_MAX_NDIM.


cdef struct _small_plan:
    # what encode_small / send_small found out about an array, before writing a byte
    wa_PyArrayObject *arr
    int code, nd, flags, unit, mode  # mode: 0 copy, 1 swap, 2 bool normalised
    uint32_t count
    Py_ssize_t nbytes, h, tail, total


cdef bint _small_check(object a, int want_big, bint checksum, Py_ssize_t limit,
                       _small_plan *pl) except -1:
    """Whether ``a`` travels by the whole-frame path; fills ``pl`` when it does."""
    cdef wa_PyArrayObject *arr
    cdef wa_PyArray_Descr *d
    cdef unsigned char tc
    cdef int code, itemsize, nd
    cdef bint mem_big, wire_big, fortran
    cdef Py_ssize_t nbytes
    if not wa_is_exact_ndarray(a):
        return False  # a subclass (a MaskedArray's mask) is the general path's to judge
    arr = WA_ARR(a)
    d = <wa_PyArray_Descr *> arr.descr
    tc = <unsigned char> d.type
    code = _char_code[tc]
    if <object> d.typeobj is not _typeobj[tc]:
        return False
    pl.count = 0
    if _timelike[tc]:  # the code names the unit, count carries the multiplier
        code = _format.dtype_code(<object> d)
        pl.count = _format.dtype_count(<object> d)
    if code == 0:
        return False
    nd = arr.nd
    if nd > WA_MAX_NDIM:
        return False
    itemsize = _itemsize[tc]
    nbytes = _nbytes(arr, itemsize)
    if nbytes > limit:
        return False
    if arr.flags & WA_NPY_C_CONTIGUOUS:
        fortran = False
    elif arr.flags & WA_NPY_F_CONTIGUOUS:
        fortran = nd > 1
    else:
        return False
    mem_big = _mem_is_big(d.byteorder)
    wire_big = mem_big if want_big < 0 else want_big != 0
    if itemsize > 1 and wire_big != mem_big:
        pl.mode = 1
    elif code == WA_CODE_BOOL:
        pl.mode = 2
    else:
        pl.mode = 0
    pl.arr = arr
    pl.code = code
    pl.nd = nd
    pl.unit = _unit[tc]
    pl.flags = ((WA_FLAG_BIG_ENDIAN if wire_big else 0) | (WA_FLAG_FORTRAN if fortran else 0) |
                (WA_FLAG_CHECKSUM if checksum else 0))
    pl.nbytes = nbytes
    pl.h = <Py_ssize_t> wa_header_size(<unsigned> nd, 0)
    pl.tail = <Py_ssize_t> wa_frame_tail(<size_t> nbytes, checksum)
    pl.total = pl.h + nbytes + pl.tail
    return True


cdef void _small_fill(const _small_plan *pl, uint32_t seq, unsigned char *p) noexcept:
    """Write the frame ``pl`` describes, numbered ``seq``, at ``p`` (pl.total bytes)."""
    cdef Py_ssize_t h = pl.h, nbytes = pl.nbytes
    cdef int i
    memset(p, 0, <size_t> h)
    wa_put_fixed(p, WA_KIND_ARRAY, <unsigned> pl.code, <unsigned> pl.flags,
                 <unsigned> pl.nd, 0, <size_t> h, pl.count, <uint64_t> nbytes, seq)
    for i in range(pl.nd):
        wa_put64(p + WA_OFF_SHAPE + 8 * i, <uint64_t> pl.arr.dimensions[i])
    wa_seal_header(p, <size_t> h)
    if nbytes:
        if pl.mode == 1:
            wa_swap_contig(<char *> p + h, pl.arr.data, <size_t> nbytes, pl.unit, _path, 0)
        elif pl.mode == 2:  # bytes other than 0 and 1 travel as 1 (FORMAT.md 3)
            wa_bool_normalize(p + h, <const unsigned char *> pl.arr.data, <size_t> nbytes)
        else:
            memcpy(p + h, pl.arr.data, <size_t> nbytes)
    memset(p + h + nbytes, 0, <size_t> pl.tail)
    if pl.flags & WA_FLAG_CHECKSUM:
        wa_put32(p + h + nbytes, wa_crc32c(0, p + h, <size_t> nbytes))


def encode_small(a, int want_big, bint checksum, uint32_t seq, Py_ssize_t limit):
    """The whole frame of an unnamed array as one ``bytes``, or None.

    ``want_big``: 1 for a big-endian payload, 0 for little-endian, -1 for the array's
    own memory order.  A bool payload is normalised as it is copied (any byte other
    than 0 or 1 becomes 1, docs/FORMAT.md section 3).  None (nothing done) unless
    ``a`` is an ndarray of a wire dtype, C- or Fortran-contiguous, with at most 64
    dimensions and ``limit`` payload bytes: the caller then takes the general Encoder
    path, whose frames this one's equal byte for byte.
    """
    cdef _small_plan pl
    cdef object frame
    if not _small_check(a, want_big, checksum, limit, &pl):
        return None
    frame = PyBytes_FromStringAndSize(NULL, pl.total)
    _small_fill(&pl, seq, <unsigned char *> PyBytes_AS_STRING(frame))
    return frame


def hold_small(bytearray held, a, int want_big, bint checksum, uint32_t seq,
               Py_ssize_t limit):
    """Append the frame encode_small would return to ``held`` (``send(flush=False)``'s
    buffer), built in place: no intermediate bytes object.

    Returns the new ``len(held)``, or -1 when the array does not take this path
    (encode_small's rules; nothing appended).  Raises BufferError, with nothing
    appended, when ``held`` is exported (a memoryview of it is alive).
    """
    cdef _small_plan pl
    cdef Py_ssize_t start
    if not _small_check(a, want_big, checksum, limit, &pl):
        return -1
    start = PyByteArray_GET_SIZE(held)
    PyByteArray_Resize(held, start + pl.total)  # amortised growth, as bytearray's +=
    _small_fill(&pl, seq, <unsigned char *> PyByteArray_AS_STRING(held) + start)
    return start + pl.total


#: frames up to this size are built on the C stack by send_small (the float64[16] of
#: a typical message is 200 bytes); larger ones, up to SMALL_FRAME_BYTES' frames, in
#: a heap block freed before the call returns
cdef enum:
    _SEND_STACK = 2048

#: whether send_small sends (POSIX with MSG_DONTWAIT; see wa_send.h)
HAVE_SEND_SMALL = bool(WA_HAVE_SEND)


def send_small(int fd, a, int want_big, bint checksum, uint32_t seq, Py_ssize_t limit):
    """Frame an unnamed array as encode_small does and send it with one non-blocking
    ``send(2)`` on socket descriptor ``fd`` (wa_send.h: never waits, GIL held).

    Returns None when the array does not take this path (encode_small's rules):
    nothing was framed or sent.  Otherwise the frame, numbered ``seq``, was built:
    0 when all of it was sent, else ``(rest, sent)`` -- ``sent`` bytes of it went
    (0 when the socket could take none now) and ``rest`` (bytes) must follow, with a
    send that may wait.  An error of the socket other than EAGAIN/EWOULDBLOCK raises
    the OSError subclass of its errno (the frame was built; nothing of it is known to
    have been sent); EINTR is retried.  Where the platform has no such call
    (HAVE_SEND_SMALL false) it raises OSError(ENOSYS) for any array that would
    travel this way.
    """
    cdef _small_plan pl
    cdef unsigned char stack[_SEND_STACK]
    cdef unsigned char *p
    cdef ptrdiff_t n
    cdef int err = 0
    if not _small_check(a, want_big, checksum, limit, &pl):
        return None
    if pl.total <= _SEND_STACK:
        p = stack
    else:
        p = <unsigned char *> PyMem_Malloc(<size_t> pl.total)
        if p == NULL:
            return None  # nothing framed: the general path allocates (or reports)
    try:
        _small_fill(&pl, seq, p)
        n = wa_send_nowait(fd, p, <size_t> pl.total, &err)
        if n == pl.total:
            return 0
        if n < 0:
            raise OSError(err, strerror(err).decode("utf-8", "replace"))
        return PyBytes_FromStringAndSize(<char *> p + n, pl.total - n), n
    finally:
        if p != stack:
            PyMem_Free(p)


cdef object _fit_small_out(object out, int code, int nd, const Py_ssize_t *dims,
                           bint fortran):
    """out when it can take the frame (the general path's _fit_out rules), else None."""
    cdef wa_PyArrayObject *o
    cdef wa_PyArray_Descr *od
    cdef unsigned char otc
    if not wa_is_ndarray(out):
        return None
    o = WA_ARR(out)
    od = <wa_PyArray_Descr *> o.descr
    otc = <unsigned char> od.type
    if _char_code[otc] != code or <object> od.typeobj is not _typeobj[otc]:
        return None
    if not (o.flags & WA_NPY_WRITEABLE) or o.nd != nd:
        return None
    if memcmp(o.dimensions, dims, nd * sizeof(Py_ssize_t)) != 0:
        return None
    if not (o.flags & (WA_NPY_F_CONTIGUOUS if fortran else WA_NPY_C_CONTIGUOUS)):
        return None
    return out


cdef object _decode_at(const unsigned char *p, Py_ssize_t avail, uint32_t seq,
                       uint64_t max_frame_bytes, int max_ndim, bint keep_wire_order,
                       object out, Py_ssize_t *frame_bytes):
    """decode_small over ``avail`` bytes at ``p``: the array (``*frame_bytes`` set to
    the frame's length), or None with nothing changed."""
    cdef wa_header hdr
    cdef Py_ssize_t h, total, i, nbytes
    cdef int code, nd
    cdef uint64_t dim, nonzero
    cdef Py_ssize_t dims[WA_MAX_NDIM]
    cdef bint fortran, wire_big, swap
    cdef object dest, descr
    cdef wa_PyArrayObject *res
    # the format's checks, all of them: docs/FORMAT.md section 6, steps 1-3 ...
    if wa_check_header(p, <size_t> avail, &hdr) != WA_OK:
        return None
    # ... then this path's: an unnamed array, the expected seq, the caller's
    # limits, and the whole frame in buf
    code = <int> hdr.code
    nd = <int> hdr.ndim
    if hdr.kind != WA_KIND_ARRAY or hdr.name_len != 0 or nd > max_ndim or hdr.seq != seq:
        return None
    if wa_code_is_time(hdr.code) and out is not None:
        return None  # an out= of a time dtype: the general path compares units
    if wa_code_is_record(hdr.code):
        return None  # S, U, V and records: the general path (no fixed item size)
    if hdr.payload_len > max_frame_bytes or hdr.payload_len > <uint64_t> avail:
        return None
    nbytes = <Py_ssize_t> hdr.payload_len
    h = <Py_ssize_t> hdr.header_len
    total = h + nbytes + <Py_ssize_t> wa_frame_tail(
        <size_t> nbytes, (hdr.flags & WA_FLAG_CHECKSUM) != 0)
    if total > avail:
        return None
    # shape: without its zeros, the product must fit this host's intp (the
    # general path's rule; wa_check_header has matched it to the payload)
    nonzero = wa_dtypes[code].itemsize
    for i in range(nd):
        dim = wa_get64(p + WA_OFF_SHAPE + 8 * i)
        if dim > <uint64_t> PY_SSIZE_T_MAX:
            return None
        dims[i] = <Py_ssize_t> dim
        if dim != 0:
            if nonzero > <uint64_t> PY_SSIZE_T_MAX // dim:
                return None
            nonzero *= dim
    # trailer: checksum, zero padding
    i = h + nbytes
    if hdr.flags & WA_FLAG_CHECKSUM:
        if wa_crc32c(0, p + h, <size_t> nbytes) != wa_get32(p + i):
            return None
        i += WA_TRAILER
    while i < total:
        if p[i]:
            return None
        i += 1
    # destination
    fortran = (hdr.flags & WA_FLAG_FORTRAN) != 0
    wire_big = (hdr.flags & WA_FLAG_BIG_ENDIAN) != 0
    if out is not None:
        dest = _fit_small_out(out, code, nd, dims, fortran and nd > 1)
        if dest is None:
            return None
    else:
        if wa_code_is_time(code):  # the dtype carries the frame's multiplier
            descr = _format.wire_dtype(code, hdr.count, wire_big)
            if not keep_wire_order:
                descr = descr.newbyteorder("=")
        elif keep_wire_order:
            descr = _code_big[code] if wire_big else _code_little[code]
        else:
            descr = _code_native[code]
        try:
            dest = wa_new_array(descr, nd, dims, fortran)
        except (ValueError, MemoryError):
            return None
    res = WA_ARR(dest)
    if nbytes:
        swap = wa_dtypes[code].itemsize > 1 and _mem_is_big(
            (<wa_PyArray_Descr *> res.descr).byteorder) != wire_big
        if swap:
            wa_swap_contig(res.data, <const char *> p + h, <size_t> nbytes,
                           wa_dtypes[code].unit, _path, 0)
        else:
            memcpy(res.data, p + h, <size_t> nbytes)
    frame_bytes[0] = total
    return dest


def decode_small(buf, uint32_t seq, uint64_t max_frame_bytes, int max_ndim,
                 bint keep_wire_order, out=None):
    """Decode the unnamed array frame at the start of ``buf`` if it lies there whole.

    Returns ``(array, frame_bytes)``, or None when the general Decoder path must take
    over -- an incomplete frame, any other frame kind, a name, a sequence number
    other than ``seq``, a limit exceeded, anything malformed, an ``out`` that does
    not fit -- having changed nothing.  The array is ``out`` when given (filled,
    converted to its byte order), else a new array in native order (in wire order
    with ``keep_wire_order``), exactly as the general path delivers it.
    """
    cdef Py_buffer view
    cdef Py_ssize_t total = 0
    cdef object dest
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        dest = _decode_at(<const unsigned char *> view.buf, view.len, seq, max_frame_bytes,
                          max_ndim, keep_wire_order, out, &total)
        if dest is None:
            return None
        return dest, total
    finally:
        PyBuffer_Release(&view)


#: whether SmallRx.take refills the read-ahead itself (POSIX with MSG_DONTWAIT:
#: wa_send.h); elsewhere it only decodes what was received
HAVE_RECV_SMALL = bool(WA_HAVE_SEND)


cdef class SmallRx:
    """The receive half of the per-message path: a Decoder's whole-frame state, so
    that a transport's ``recv()`` of a small array is one compiled call (:meth:`take`).

    Owned by one ``Decoder`` (``_decoder.py``), which stays the one state machine:
    ``seq`` is the decoder's sequence number (``Decoder.seq`` reads it here), and
    ``pending`` is the decoder's own deque of received, unconsumed buffers.  What
    this object adds is a cursor into the first of them: while ``head`` is not None
    it is ``pending[0]``, of which only bytes ``[off, end)`` are still unconsumed --
    so a frame taken costs an offset, not a memoryview sliced per frame; the decoder
    trims ``pending[0]`` to those bytes (``Decoder._unhead``) before its general path
    reads it.  ``ready`` and ``may_read`` are the decoder's to set
    (``Decoder._arm``): ``ready`` when it is at a frame boundary with nothing but
    bytes pending (no header, message, event, ``out=``/``schema=`` or error in
    progress), ``may_read`` when a refill may also go into its read-ahead
    (``readahead``, a ``_readahead.ReadAhead``) now.

    Limits (``max_frame_bytes``, ``max_ndim``) and ``keep_wire_order`` are the
    decoder's, kept here by its setters; ``received`` counts the bytes refills
    brought (part of ``Decoder.bytes_received``); ``grow`` says the last refill
    filled the read-ahead (the next refill, or the decoder's next get_buffer(),
    then doubles it, as after the decoder's own reads).

    ``starved``: a refill found nothing to read, so the receiver is ahead of its
    peer and the caller's Python path waits for each frame: a refill tried first
    would cost a system call per wait for nothing.  Refills are left to that path
    until a read brings more than the frame taken (the receiver fell behind again,
    and one ``recv(2)`` here then serves many frames).
    """

    cdef public object pending
    cdef public object head
    cdef public Py_ssize_t off, end
    cdef public uint32_t seq
    cdef public uint64_t max_frame_bytes
    cdef public int max_ndim
    cdef public bint keep_wire_order, ready, may_read, grow, starved
    cdef public object readahead
    cdef public unsigned long long received

    def __init__(self, pending, uint32_t seq):
        self.pending = pending
        self.head = None
        self.seq = seq
        self.readahead = None

    def take(self, int fd, out=None):
        """The next array when its frame lies whole in the received bytes, else None
        with nothing consumed (the general path then decides and reports).

        Decodes as decode_small does (same checks, same result; ``out`` as there).
        With ``fd`` >= 0 (a plain stream socket's descriptor, on a platform with
        HAVE_RECV_SMALL), nothing pending, ``may_read`` set and not ``starved``,
        first refills the read-ahead with one ``recv(2)`` that never waits: nothing
        readable now (EAGAIN/EWOULDBLOCK) or the peer closed (0 bytes) returns None,
        having read nothing, and the caller's general path waits under its deadline
        or reads the end of input again and reports it as it always does.  A refill that brings
        less than a whole frame leaves it pending and returns None.

        Raises:
            OSError: the socket failed (the errno's subclass; EINTR is retried after
                Python's signal handlers ran); whatever a signal handler raises.
        """
        cdef Py_buffer *b
        cdef object view, arr
        cdef Py_ssize_t total = 0
        cdef ptrdiff_t n
        cdef int err = 0
        if not self.ready:
            return None
        if self.head is None:
            if self.pending:
                view = self.pending[0]
                if not PyMemoryView_Check(view):
                    return None
                b = PyMemoryView_GET_BUFFER(view)
                if not PyBuffer_IsContiguous(b, b'C'):
                    return None
                self.head = view
                self.off = 0
                self.end = b.len
            elif fd < 0 or not self.may_read or self.readahead is None or self.starved:
                return None
            else:
                if self.grow:  # the last refill filled it: doubled, as get_buffer() does
                    view = self.readahead.get(True, 0, False)
                    self.grow = False
                else:
                    view = self.readahead._view
                b = PyMemoryView_GET_BUFFER(view)
                if b.len == 0:
                    return None  # the read-ahead is made by the decoder's first get_buffer()
                while True:
                    n = wa_recv_nowait(fd, b.buf, <size_t> b.len, &err)
                    if n > 0:
                        break
                    if n == 0:
                        return None  # the peer closed: the general path reports it
                    if err == EINTR:
                        PyErr_CheckSignals()  # a handler may raise (Ctrl-C): nothing read
                        continue
                    if err == EAGAIN or err == EWOULDBLOCK:
                        self.starved = True
                        return None
                    raise OSError(err, strerror(err).decode("utf-8", "replace"))
                self.pending.append(view)
                self.head = view
                self.off = 0
                self.end = n
                self.received += <unsigned long long> n
                self.grow = n == b.len
        b = PyMemoryView_GET_BUFFER(self.head)
        arr = _decode_at(<const unsigned char *> b.buf + self.off, self.end - self.off,
                         self.seq, self.max_frame_bytes, self.max_ndim,
                         self.keep_wire_order, out, &total)
        if arr is None:
            return None
        self.off += total
        self.seq += 1  # uint32_t: wraps as the format's sequence numbers do
        if self.off == self.end:
            self.pending.popleft()
            self.head = None
        else:  # more was read than this frame: the receiver is behind, refills pay
            self.starved = False
        return arr
