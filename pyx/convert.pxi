# convert.pxi -- hton / ntoh / byteswap on arrays, and htons ... ntohll on Python ints
# (included by _cwire.pyx).
#
# An array call validates and allocates with the GIL held, through numpy's C ABI
# (wa_npyabi.h), then hands flat or strided runs to the kernels of wa_bswap.h, with
# the GIL released from GIL_RELEASE_BYTES on.  Anything unusual -- an input that is
# not an ndarray, an ``out`` that is not a plain matching ndarray, an ndarray subclass
# with ``out=`` -- goes through the same Python helpers as the fallback
# (wirearray._common), so errors are the same.
#
# Results are allocated as numpy allocates them (PyArray_NewLikeArray with subok, so
# an ndarray subclass is kept and its __array_finalize__ runs): hton/ntoh in the
# input's memory order, as astype does (NPY_KEEPORDER); byteswap in C order unless the
# input is Fortran-contiguous, as ndarray.byteswap does (NPY_ANYORDER).
#
# Invariants:
#   * The kernels see only validated arguments: a supported dtype (from the tables of
#     dtypes.pxi, trusted only with a matching scalar type), arrays of equal shape,
#     and source and destination either disjoint or identical -- a partial overlap is
#     copied away first.
#   * The dimension loops run below arr.nd; the type tables are indexed by an
#     unsigned char: in range without bounds checks.
#   * _path and _stream_bytes (simd.pxi) are read once per call.

# A fresh result of PREFAULT_MIN_BYTES or more is touched once every PREFAULT_STEP
# bytes before the kernel writes it.  numpy advises huge pages for allocations from
# 4 MiB on (madvise(MADV_HUGEPAGE)), so on Linux with transparent huge pages the first
# write into each 2 MiB region faults in and zeroes a huge page.  Taking those faults
# in a short loop first, rather than one by one inside the kernel's stream of stores,
# cut the kernel-side (system) time of hton(a) on a 16M float64 array from ~13 to ~8
# ms per call, and its CPU time from 1.42x to 1.08x that of a.copy() (medians of 31
# interleaved calls, process CPU time; one x86-64 Linux host).  Touching every 4 KiB
# instead gained nothing there.  Where pages are 4 KiB (no THP, macOS, Windows) this
# costs one early fault per 2 MiB of the ~512 the result takes anyway.
cdef enum:
    PREFAULT_MIN_BYTES = 4 << 20
    PREFAULT_STEP = 2 << 20


cdef inline void _prefault(char *lo, char *hi) noexcept nogil:
    cdef char *p = lo
    while p < hi:
        p[0] = 0
        p += PREFAULT_STEP
    (hi - 1)[0] = 0  # the last region, when the steps stopped short of it (no hi[-1]:
    # under wraparound=False Cython warns of a negative index, meant for arrays)


cdef enum:
    MODE_HTON = 0
    MODE_NTOH = 1
    MODE_BYTESWAP = 2


cdef inline bint _mem_is_big(char byteorder) noexcept:
    return byteorder == b'>' or (byteorder == b'=' and not _host_little)


cdef object _unsupported(object a):
    check_dtype(a.dtype)  # raises with the standard message
    raise UnsupportedDtypeError(f"wirearray does not convert dtype {a.dtype!r}")


cdef inline Py_ssize_t _nbytes(wa_PyArrayObject *arr, int itemsize) noexcept:
    cdef Py_ssize_t n = itemsize
    cdef int i
    for i in range(arr.nd):
        n *= arr.dimensions[i]
    return n


cdef void _extent(wa_PyArrayObject *arr, int itemsize, char **lo, char **hi) noexcept:
    cdef char *low = arr.data
    cdef char *high = arr.data + itemsize
    cdef int i
    cdef Py_ssize_t step
    for i in range(arr.nd):
        step = (arr.dimensions[i] - 1) * arr.strides[i]
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = low
    hi[0] = high


cdef bint _same_layout(wa_PyArrayObject *x, wa_PyArrayObject *y) noexcept:
    return (x.data == y.data and x.nd == y.nd and
            memcmp(x.dimensions, y.dimensions, x.nd * sizeof(Py_ssize_t)) == 0 and
            memcmp(x.strides, y.strides, x.nd * sizeof(Py_ssize_t)) == 0)


cdef inline char _bo(char byteorder) noexcept:
    if byteorder == b'=':
        return b'<' if _host_little else b'>'
    return byteorder


cdef object _lean_out(wa_PyArrayObject *arr, object out, object outdescr):
    """``out`` (or a view of it carrying outdescr) when it is a writable ndarray of a
    supported dtype with arr's shape and item size; None to take the general path."""
    cdef wa_PyArrayObject *o
    cdef wa_PyArray_Descr *od
    cdef wa_PyArray_Descr *want
    cdef unsigned char otc
    if not wa_is_exact_ndarray(out):
        return None  # a subclass: prepare_out gives out.view(dtype), of out's class
    o = WA_ARR(out)
    if <object> o.descr is outdescr:
        pass
    else:
        od = <wa_PyArray_Descr *> o.descr
        want = <wa_PyArray_Descr *> outdescr
        otc = <unsigned char> od.type
        if (_itemsize[otc] == 0 or <object> od.typeobj is not _typeobj[otc] or
                _itemsize[otc] != _itemsize[<unsigned char> want.type]):
            return None
        if not (od.type == want.type and _bo(od.byteorder) == _bo(want.byteorder) and
                (not _timelike[otc] or <object> od == outdescr)):  # same unit, too
            if not (o.flags & WA_NPY_WRITEABLE):
                return None
            if o.nd != arr.nd or memcmp(o.dimensions, arr.dimensions,
                                        arr.nd * sizeof(Py_ssize_t)) != 0:
                return None
            return wa_view_as(out, outdescr)
    if (o.nd != arr.nd or not (o.flags & WA_NPY_WRITEABLE) or
            memcmp(o.dimensions, arr.dimensions, arr.nd * sizeof(Py_ssize_t)) != 0):
        return None
    return out


cdef object _convert(object a, object out, int mode):
    cdef wa_PyArrayObject *arr
    cdef wa_PyArrayObject *res
    cdef wa_PyArray_Descr *d
    cdef unsigned char tc
    cdef int itemsize, unit
    cdef bint swap
    cdef bint fresh = False
    cdef Py_ssize_t nbytes
    cdef char *lo1
    cdef char *hi1
    cdef char *lo2
    cdef char *hi2
    cdef object outdescr, result
    cdef tuple times = None
    cdef int order = WA_NPY_KEEPORDER

    if not wa_is_ndarray(a):
        a = _np.asarray(a)
    arr = WA_ARR(a)
    d = <wa_PyArray_Descr *> arr.descr
    tc = <unsigned char> d.type
    itemsize = _itemsize[tc]
    if _timelike[tc] and itemsize and <object> d.typeobj is _typeobj[tc]:
        # checked and its result dtypes made once per dtype (plans.pxi); a union
        # with fields is refused there
        times = _time_plan(<object> d)
    elif tc == b'V' or tc == b'S' or tc == b'U':  # records and strings: plans.pxi
        return _convert_records(a, out, mode)
    # a number dtype with fields (a union) is a record here too, which refuses it; the
    # builtin native descr (numpy's singleton, what most arrays carry) has no fields,
    # so only other descrs pay for the look-up
    elif itemsize == 0 or <object> d.typeobj is not _typeobj[tc] or (
            <object> d is not _native[tc] and a.dtype.names is not None):
        if is_record(a.dtype):  # structured, S, U, V: a swap plan (plans.pxi)
            return _convert_records(a, out, mode)
        _unsupported(a)

    if mode == MODE_HTON:
        swap = itemsize > 1 and not _mem_is_big(d.byteorder)
        outdescr = _big[tc] if times is None else times[1]
    elif mode == MODE_NTOH:
        swap = itemsize > 1 and _host_little
        outdescr = _native[tc] if times is None else times[2]
    else:
        swap = itemsize > 1
        outdescr = <object> arr.descr
        order = WA_NPY_ANYORDER
    unit = _unit[tc] if swap else 1

    if out is None:
        Py_INCREF(outdescr)  # NewLikeArray steals a reference
        result = wa_PyArray_NewLikeArray(a, order, outdescr, 1)
        res = WA_ARR(result)
        fresh = True
    else:
        if not wa_is_exact_ndarray(a):
            check_out_source(a, out)
        result = _lean_out(arr, out, outdescr)
        if result is None:
            result = prepare_out(a, out, outdescr)
        res = WA_ARR(result)
        nbytes = _nbytes(arr, itemsize)
        if nbytes and not _same_layout(arr, res):
            _extent(arr, itemsize, &lo1, &hi1)
            _extent(res, itemsize, &lo2, &hi2)
            if lo1 < hi2 and lo2 < hi1:
                # Partial overlap: the kernels need src and dst disjoint or identical.
                a = a.copy(order="K")
                arr = WA_ARR(a)

    nbytes = _nbytes(arr, itemsize)
    if nbytes == 0:
        return result
    if nbytes < GIL_RELEASE_BYTES:
        _run(arr, res, itemsize, unit, nbytes)
    else:
        if fresh and nbytes >= PREFAULT_MIN_BYTES:
            _extent(res, itemsize, &lo2, &hi2)
            with nogil:
                _prefault(lo2, hi2)
                _run(arr, res, itemsize, unit, nbytes)
        else:
            with nogil:
                _run(arr, res, itemsize, unit, nbytes)
    return result


cdef inline void _run(wa_PyArrayObject *arr, wa_PyArrayObject *res, int itemsize, int unit,
                      Py_ssize_t nbytes) noexcept nogil:
    cdef int stream = _stream_bytes != 0 and <size_t> nbytes >= _stream_bytes
    cdef int both = arr.flags & res.flags
    # Both C- or both Fortran-contiguous: element k sits at the same offset in both,
    # so the whole array is one flat run.
    if both & (WA_NPY_C_CONTIGUOUS | WA_NPY_F_CONTIGUOUS):
        wa_swap_contig(res.data, arr.data, <size_t> nbytes, unit, _path, stream)
    else:
        wa_convert_nd(res.data, <const ptrdiff_t *> res.strides, arr.data,
                      <const ptrdiff_t *> arr.strides, <const ptrdiff_t *> arr.dimensions,
                      arr.nd, itemsize, unit, _path, stream)


def hton(a, out=None):
    """Return ``a`` with the same values in big-endian (network) byte order.

    See ``wirearray.hton`` for the full description.
    """
    return _convert(a, out, MODE_HTON)


def ntoh(a, out=None, *, dtype=None, shape=None):
    """Return the native-order array whose big-endian representation is ``a``.

    See ``wirearray.ntoh`` for the full description.
    """
    if dtype is not None:
        a = from_raw(a, dtype, shape)
    elif shape is not None:
        raise BufferMismatchError("ntoh(shape=...) needs dtype=... as well")
    else:
        refuse_raw(a)
    return _convert(a, out, MODE_NTOH)


def byteswap(a, inplace=False, out=None):
    """Reverse the bytes of every element, keeping the dtype label.

    See ``wirearray.byteswap`` for the full description.
    """
    if inplace:
        if out is not None and out is not a:
            raise BufferMismatchError("byteswap: give inplace=True or out=, not both")
        if not wa_is_ndarray(a):
            refuse_inplace(a)
        out = a
    return _convert(a, out, MODE_BYTESWAP)


# ---- scalars: socket.htons/htonl's rules, taken from the running interpreter ----
# A plain int in range -- nearly every call -- is swapped here.  Anything else (an
# int subclass, bool, an object with __index__, a negative or too large value, a
# non-integer) goes to the socket module's own function, so results and errors are
# socket's on every CPython version (3.14 changed them: gh-132987).  The 64-bit pair
# has no socket twin and follows htonl's rules as wirearray._common.unsigned64 reads
# them from socket at import.  The 16/32-bit functions are positional-only, as
# socket's are; the 64-bit pair keeps a keyword-capable argument, as the fallback's
# does.

cdef inline bint _plain(object x, uint64_t limit, uint64_t *v) except -1:
    """Whether x is a plain int from 0 to limit, stored in v: the fast path."""
    if not PyLong_CheckExact(x):
        return False
    try:
        v[0] = x  # OverflowError when negative or wider than 64 bits
    except OverflowError:
        return False
    return v[0] <= limit


def htons(x, /):
    """Host to network order, 16 bits (``socket.htons``)."""
    cdef uint64_t v
    if not _plain(x, 0xFFFF, &v):
        return _socket.htons(x)
    return wa_bswap16(<uint16_t> v) if _host_little else v


def ntohs(x, /):
    """Network to host order, 16 bits (``socket.ntohs``)."""
    cdef uint64_t v
    if not _plain(x, 0xFFFF, &v):
        return _socket.ntohs(x)
    return wa_bswap16(<uint16_t> v) if _host_little else v


def htonl(x, /):
    """Host to network order, 32 bits (``socket.htonl``)."""
    cdef uint64_t v
    if not _plain(x, 0xFFFFFFFF, &v):
        return _socket.htonl(x)
    return wa_bswap32(<uint32_t> v) if _host_little else v


def ntohl(x, /):
    """Network to host order, 32 bits (``socket.ntohl``)."""
    cdef uint64_t v
    if not _plain(x, 0xFFFFFFFF, &v):
        return _socket.ntohl(x)
    return wa_bswap32(<uint32_t> v) if _host_little else v


def htonll(x):
    """Host to network order, 64 bits: ``htonl``'s rules at 64 bits."""
    cdef uint64_t v
    if not _plain(x, 0xFFFFFFFFFFFFFFFF, &v):
        v = unsigned64(x)
    return wa_bswap64(v) if _host_little else v


def ntohll(x):
    """Network to host order, 64 bits: ``ntohl``'s rules at 64 bits."""
    cdef uint64_t v
    if not _plain(x, 0xFFFFFFFFFFFFFFFF, &v):
        v = unsigned64(x)
    return wa_bswap64(v) if _host_little else v
