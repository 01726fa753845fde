# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
# cython: freethreading_compatible=True
"""Compiled core of wirearray: byte-order conversion at memory speed.

Same names, arguments, results and errors as ``wirearray.fallback`` (the pure-Python
implementation); ``wirearray/__init__.py`` picks one of the two.

Layout of the work:
  * validation and result allocation happen with the GIL held, through numpy's C ABI
    read without numpy headers (wa_npyabi.h explains why that is safe);
  * the loops (wa_bswap.h) run afterwards without touching Python objects, with the GIL
    released once an array is large enough for that to pay (GIL_RELEASE_BYTES);
  * the SIMD path (scalar / SSSE3 / AVX2 / NEON) is chosen once at import from CPUID,
    can be forced with WIREARRAY_SIMD or set_simd() for tests and benchmarks, and is a
    process-wide setting read by every call.

Free-threaded CPython (3.14t): the module declares it runs without the GIL
(freethreading_compatible above; Cython < 3.1 ignores the directive).  That holds
because nothing here is shared and mutable except the two process-wide knobs above:
the type tables, CPUID results, numpy's API table and the CRC tables are written once
at import; the kernels keep no state.  _path and _stream_bytes are written only by
set_simd() / _set_stream_bytes() (test and benchmark knobs) and read once per call,
then passed down as arguments, so a call that races with a switch runs wholly on the
old or the new setting, and every path gives the same bytes (plain aligned int loads
and stores: a data race to ThreadSanitizer, never a torn value on a supported CPU).
As with numpy, threads writing the same array at once is the caller's race.

Semantics (documented in the fallback's docstrings, which these functions share):
  hton: values kept, big-endian dtype out; ntoh: memory read as big-endian, native
  dtype out; byteswap: bytes reversed, dtype label kept.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.number cimport PyNumber_Index
from cpython.object cimport PyObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

import os

import numpy as _np

from wirearray._common import SUPPORTED_CHARS, check_dtype, from_raw, prepare_out
from wirearray.exceptions import (
    BufferMismatchError,
    MalformedFrameError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
)


cdef extern from "wa_bswap.h" nogil:
    enum:
        WA_PATH_SCALAR
        WA_PATH_SSSE3
        WA_PATH_AVX2
        WA_PATH_NEON
    unsigned wa_paths_available()
    int wa_best_path(unsigned mask)
    int wa_host_is_little()
    uint16_t wa_bswap16(uint16_t x)
    uint32_t wa_bswap32(uint32_t x)
    uint64_t wa_bswap64(uint64_t x)
    void wa_swap_contig(char *dst, const char *src, size_t nbytes, int unit, int path,
                        int stream)
    void wa_convert_nd(char *dst, const ptrdiff_t *dst_strides, const char *src,
                       const ptrdiff_t *src_strides, const ptrdiff_t *shape, int ndim,
                       int itemsize, int unit, int path, int stream)


cdef extern from "wa_npyabi.h":
    ctypedef struct wa_PyArrayObject:
        char *data
        int nd
        Py_ssize_t *dimensions
        Py_ssize_t *strides
        PyObject *descr
        int flags
    ctypedef struct wa_PyArray_Descr:
        PyObject *typeobj
        char kind
        char type
        char byteorder
    enum:
        WA_NPY_C_CONTIGUOUS
        WA_NPY_F_CONTIGUOUS
        WA_NPY_WRITEABLE
        WA_NPY_KEEPORDER
    int wa_npy_import() except -1
    bint wa_is_ndarray(object o)
    object wa_PyArray_NewLikeArray(object prototype, int order, object descr, int subok)
    wa_PyArrayObject *WA_ARR(object o)
    object wa_view_as(object arr, object descr)
    object wa_new_array(object descr, int nd, const Py_ssize_t *dims, int fortran)


wa_npy_import()

cdef enum:
    MODE_HTON = 0
    MODE_NTOH = 1
    MODE_BYTESWAP = 2

# Below this many bytes the GIL stays held: releasing and re-taking it costs
# 50-100 ns, a 64 KiB swap in cache about 3 us, so the release costs < 3% here and
# lets other threads run during anything longer.
cdef enum:
    GIL_RELEASE_BYTES = 65536

cdef int _host_little = wa_host_is_little()

# Per numpy type character: item size (0 = unsupported), swap unit (the size of one
# number: half the item for complex), the numpy scalar type that makes the dtype
# builtin, and the native / big-endian dtype objects handed to numpy for results.
cdef int _itemsize[256]
cdef int _unit[256]
cdef list _typeobj = [None] * 256
cdef list _native = [None] * 256
cdef list _big = [None] * 256


cdef _init_tables():
    cdef int i
    for i in range(256):
        _itemsize[i] = 0
        _unit[i] = 0
    for ch in SUPPORTED_CHARS:
        dt = _np.dtype(ch)
        i = ord(ch)
        _itemsize[i] = dt.itemsize
        _unit[i] = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
        _typeobj[i] = dt.type
        _native[i] = dt
        _big[i] = dt.newbyteorder(">")


_init_tables()

# ---- SIMD path selection ----

_PATH_NAMES = {WA_PATH_SCALAR: "scalar", WA_PATH_SSSE3: "ssse3", WA_PATH_AVX2: "avx2",
               WA_PATH_NEON: "neon"}
cdef unsigned _paths_mask = wa_paths_available()
cdef int _path = wa_best_path(_paths_mask)
# Out-of-place swaps at least this large use non-temporal stores (see wa_bswap.h).
cdef size_t _stream_bytes = 0


def simd_paths():
    """Names of the kernel paths this CPU and build can run, best last."""
    order = (WA_PATH_SCALAR, WA_PATH_SSSE3, WA_PATH_NEON, WA_PATH_AVX2)
    return tuple(_PATH_NAMES[p] for p in order if _paths_mask & (1u << p))


def get_simd():
    """Name of the kernel path in use: "scalar", "ssse3", "avx2" or "neon"."""
    return _PATH_NAMES[_path]


def set_simd(name):
    """Select the kernel path by name ("auto" picks the best the CPU has).

    A process-wide setting meant for tests and benchmarks; returns the path chosen.

    Raises:
        ValueError: the name is unknown or the CPU/build cannot run that path.
    """
    global _path
    if name == "auto":
        _path = wa_best_path(_paths_mask)
        return get_simd()
    for p, n in _PATH_NAMES.items():
        if n == name and _paths_mask & (1u << p):
            _path = p
            return n
    raise ValueError(f"unknown or unavailable SIMD path {name!r}; available: {simd_paths()}")


def _get_stream_bytes():
    """Size from which out-of-place swaps use non-temporal stores (0 = never)."""
    return _stream_bytes


def _set_stream_bytes(size_t nbytes):
    """Set that size (0 disables streaming stores); for tests and benchmarks."""
    global _stream_bytes
    _stream_bytes = nbytes


def _default_stream_bytes():
    # A swap that does not fit the last-level cache with its source gains from
    # streaming stores.  Linux/glibc tell the L3 size; elsewhere assume 32 MiB.
    llc = 0
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            llc = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            llc = 0
        if llc > 0:
            break
    if llc <= 0:
        llc = 32 << 20
    return max(llc, 4 << 20)


_stream_bytes = _default_stream_bytes()

_env_simd = os.environ.get("WIREARRAY_SIMD", "").strip().lower()
if _env_simd:
    # An impossible request fails loudly (ValueError, not ImportError, so that it is
    # not mistaken for a missing extension and silently replaced by the fallback).
    set_simd(_env_simd)


# ---- array conversion ----

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
    if not wa_is_ndarray(out):
        return None
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
        if not (od.type == want.type and _bo(od.byteorder) == _bo(want.byteorder)):
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
    cdef Py_ssize_t nbytes
    cdef char *lo1
    cdef char *hi1
    cdef char *lo2
    cdef char *hi2
    cdef object outdescr, result

    if not wa_is_ndarray(a):
        a = _np.asarray(a)
    arr = WA_ARR(a)
    d = <wa_PyArray_Descr *> arr.descr
    tc = <unsigned char> d.type
    itemsize = _itemsize[tc]
    if itemsize == 0 or <object> d.typeobj is not _typeobj[tc]:
        _unsupported(a)

    if mode == MODE_HTON:
        swap = itemsize > 1 and not _mem_is_big(d.byteorder)
        outdescr = _big[tc]
    elif mode == MODE_NTOH:
        swap = itemsize > 1 and _host_little
        outdescr = _native[tc]
    else:
        swap = itemsize > 1
        outdescr = <object> arr.descr
    unit = _unit[tc] if swap else 1

    if out is None:
        Py_INCREF(outdescr)  # NewLikeArray steals a reference
        result = wa_PyArray_NewLikeArray(a, WA_NPY_KEEPORDER, outdescr, 0)
        res = WA_ARR(result)
    else:
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
    return _convert(a, out, MODE_NTOH)


def byteswap(a, inplace=False, out=None):
    """Reverse the bytes of every element, keeping the dtype label.

    See ``wirearray.byteswap`` for the full description.
    """
    if inplace:
        if out is not None and out is not a:
            raise BufferMismatchError("byteswap: give inplace=True or out=, not both")
        if not wa_is_ndarray(a):
            a = _np.asarray(a)
        out = a
    return _convert(a, out, MODE_BYTESWAP)


# ---- scalars, with the argument rules and exceptions of socket.htons/htonl ----

cdef inline unsigned long long _index16(object x) except? 0xFFFFFFFFFFFFFFFF:
    # socket.htons accepts anything with __index__; negative and > 16-bit values
    # raise OverflowError.
    cdef object v = PyNumber_Index(x)
    if v < 0:
        raise OverflowError("htons: can't convert negative Python int to C 16-bit unsigned integer")
    if v > 0xFFFF:
        raise OverflowError("htons: Python int too large to convert to C 16-bit unsigned integer")
    return <unsigned long long> v


cdef inline unsigned long long _exact_int(object x, int bits) except? 0xFFFFFFFFFFFFFFFF:
    # socket.htonl accepts int (and its subclasses, bool included) only.
    if not isinstance(x, int):
        raise TypeError(f"expected int, {type(x).__name__} found")
    if x < 0:
        raise OverflowError("can't convert negative value to unsigned int")
    if x >> bits:
        raise OverflowError(f"int larger than {bits} bits")
    return <unsigned long long> x


def htons(x):
    """Host to network order, 16 bits (``socket.htons``)."""
    cdef uint16_t v = <uint16_t> _index16(x)
    return wa_bswap16(v) if _host_little else v


def ntohs(x):
    """Network to host order, 16 bits (``socket.ntohs``)."""
    cdef uint16_t v = <uint16_t> _index16(x)
    return wa_bswap16(v) if _host_little else v


def htonl(x):
    """Host to network order, 32 bits (``socket.htonl``)."""
    cdef uint32_t v = <uint32_t> _exact_int(x, 32)
    return wa_bswap32(v) if _host_little else v


def ntohl(x):
    """Network to host order, 32 bits (``socket.ntohl``)."""
    cdef uint32_t v = <uint32_t> _exact_int(x, 32)
    return wa_bswap32(v) if _host_little else v


def htonll(x):
    """Host to network order, 64 bits: ``htonl``'s rules at 64 bits."""
    cdef uint64_t v = <uint64_t> _exact_int(x, 64)
    return wa_bswap64(v) if _host_little else v


def ntohll(x):
    """Network to host order, 64 bits: ``ntohl``'s rules at 64 bits."""
    cdef uint64_t v = <uint64_t> _exact_int(x, 64)
    return wa_bswap64(v) if _host_little else v


# ---- wire format primitives (docs/FORMAT.md; the Python reference is _format.py) ----

cdef extern from "wa_crc32c.h" nogil:
    void wa_crc32c_init()
    uint32_t wa_crc32c(uint32_t crc, const void *data, size_t n)
    uint32_t wa_crc32c_portable(uint32_t crc, const void *data, size_t n)


wa_crc32c_init()

cdef enum:
    FIXED_HEADER = 32
    MIN_HEADER = 64
    MAX_NDIM = 64
    CRC_OFFSET = 28
    KIND_ARRAY = 1
    KIND_MESSAGE = 2
    KIND_END = 3
    KIND_ACK = 4
    KIND_ERROR = 5
    VERSION_CONTROL = 2
    FLAGS_KNOWN = 0x07
    N_CODES = 15

# the frame magic, as in _format.MAGIC (a module constant: a bytes literal with a
# backslash escape inside an f-string is not what Python's f-string gives)
_MAGIC = b"\x89WAR"

# item size per wire dtype code (0 = invalid), as in _format.ITEMSIZE
cdef int _code_itemsize[N_CODES]
_code_itemsize[:] = [0, 1, 1, 1, 2, 2, 4, 4, 8, 8, 2, 4, 8, 8, 16]


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


cdef inline void _put16(unsigned char *p, uint16_t v) noexcept nogil:
    p[0] = <unsigned char> (v >> 8)
    p[1] = <unsigned char> v


cdef inline void _put32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char> (v >> 24)
    p[1] = <unsigned char> (v >> 16)
    p[2] = <unsigned char> (v >> 8)
    p[3] = <unsigned char> v


cdef inline void _put64(unsigned char *p, uint64_t v) noexcept nogil:
    _put32(p, <uint32_t> (v >> 32))
    _put32(p + 4, <uint32_t> v)


cdef inline uint32_t _get32(const unsigned char *p) noexcept nogil:
    return ((<uint32_t> p[0]) << 24) | ((<uint32_t> p[1]) << 16) | ((<uint32_t> p[2]) << 8) | p[3]


cdef inline uint64_t _get64(const unsigned char *p) noexcept nogil:
    return ((<uint64_t> _get32(p)) << 32) | _get32(p + 4)


cdef inline Py_ssize_t _header_size(int ndim, int name_len) noexcept nogil:
    return ((FIXED_HEADER + 8 * ndim + name_len + 63) // 64) * 64


def pack_header(int kind, int code, int flags, shape, payload_len, name=b"", count=0, seq=0):
    """Encode a header (with its CRC32C) for the given, already validated, fields."""
    cdef Py_ssize_t ndim = len(shape)
    cdef Py_ssize_t name_len = len(name)
    cdef Py_ssize_t h, i
    cdef bytearray out
    cdef unsigned char *p
    cdef const unsigned char[:] nm
    if ndim > MAX_NDIM or name_len > 255:
        raise ValueError("ndim or name too long for the wire format")
    h = _header_size(<int> ndim, <int> name_len)
    out = bytearray(h)
    p = <unsigned char *> (<char *> out)
    p[0] = 0x89
    p[1] = b'W'
    p[2] = b'A'
    p[3] = b'R'
    # a frame carries the lowest version that defines it: ACK and ERROR are version 2
    p[4] = VERSION_CONTROL if (kind == KIND_ACK or kind == KIND_ERROR) else 1
    p[5] = <unsigned char> kind
    p[6] = <unsigned char> code
    p[7] = <unsigned char> flags
    p[8] = <unsigned char> ndim
    p[9] = <unsigned char> name_len
    _put16(p + 10, <uint16_t> h)
    _put32(p + 12, <uint32_t> count)
    _put64(p + 16, <uint64_t> payload_len)
    _put32(p + 24, <uint32_t> (seq & 0xFFFFFFFF))
    for i in range(ndim):
        _put64(p + FIXED_HEADER + 8 * i, <uint64_t> shape[i])
    if name_len:
        nm = name
        for i in range(name_len):
            p[FIXED_HEADER + 8 * ndim + i] = nm[i]
    _put32(p + CRC_OFFSET, wa_crc32c(0, p, <size_t> h))
    return bytes(out)


cdef Py_ssize_t _header_length(const unsigned char *p, Py_ssize_t n) except -1:
    cdef int ndim, name_len
    cdef Py_ssize_t h
    if n < MIN_HEADER:
        raise ValueError("header_length needs the first 64 bytes of a frame")
    if not (p[0] == 0x89 and p[1] == b'W' and p[2] == b'A' and p[3] == b'R'):
        raise MalformedFrameError(
            f"bad magic {bytes(p[:4])!r} (expected {_MAGIC!r})")
    if p[4] != 1 and p[4] != VERSION_CONTROL:
        raise UnsupportedVersionError(
            f"wire-format version {p[4]} (this reader speaks 1 and 2)")
    ndim = p[8]
    name_len = p[9]
    if ndim > MAX_NDIM:
        raise MalformedFrameError(
            f"ndim {ndim} exceeds the format's maximum of {MAX_NDIM}")
    h = (p[10] << 8) | p[11]
    if h != _header_size(ndim, name_len):
        raise MalformedFrameError(
            f"header length {h} does not match ndim {ndim} and name length {name_len}")
    return h


def header_length(head):
    """Validate the first 64 bytes of a frame and return its header length H."""
    cdef Py_buffer view
    PyObject_GetBuffer(head, &view, PyBUF_SIMPLE)
    try:
        return _header_length(<const unsigned char *> view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


def parse_header(buf):
    """Validate a complete header; return (kind, code, flags, shape, payload_len, name,
    count, seq).  Same checks, results and messages as _format.parse_header."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef Py_ssize_t h, i, end
    cdef int kind, code, flags, ndim, name_len
    cdef uint32_t crc, count, seq, c
    cdef uint64_t payload_len, expected, d
    cdef bint overflow = False
    cdef unsigned char zero4[4]
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char *> view.buf
        h = _header_length(p, view.len)
        if view.len < h:
            raise ValueError("parse_header needs the whole header")
        kind = p[5]
        code = p[6]
        flags = p[7]
        ndim = p[8]
        name_len = p[9]
        count = _get32(p + 12)
        payload_len = _get64(p + 16)
        seq = _get32(p + 24)
        crc = _get32(p + CRC_OFFSET)
        zero4[0] = zero4[1] = zero4[2] = zero4[3] = 0
        c = wa_crc32c(0, p, CRC_OFFSET)
        c = wa_crc32c(c, zero4, 4)
        c = wa_crc32c(c, p + CRC_OFFSET + 4, <size_t> (h - CRC_OFFSET - 4))
        if c != crc:
            raise MalformedFrameError("header checksum mismatch (corrupted header)")
        end = FIXED_HEADER + 8 * ndim + name_len
        for i in range(end, h):
            if p[i]:
                raise MalformedFrameError("non-zero bytes in header padding")
        shape = tuple([_get64(p + FIXED_HEADER + 8 * i) for i in range(ndim)])
        name = (<const char *> p)[FIXED_HEADER + 8 * ndim:end]
        if kind == KIND_ARRAY:
            if code <= 0 or code >= N_CODES:
                raise MalformedFrameError(f"unknown dtype code {code}")
            if flags & ~FLAGS_KNOWN:
                raise MalformedFrameError(f"unknown flag bits 0x{flags & ~FLAGS_KNOWN:02x}")
            if count:
                raise MalformedFrameError("count must be 0 in an array frame")
            # Exact: a zero dimension makes the product 0; otherwise an overflow of
            # 64 bits can never equal the 64-bit payload length.
            expected = 0 if _has_zero(p, ndim) else <uint64_t> _code_itemsize[code]
            for i in range(ndim if expected else 0):
                d = _get64(p + FIXED_HEADER + 8 * i)
                if expected > 0xFFFFFFFFFFFFFFFF // d:
                    overflow = True
                    break
                expected *= d
            if overflow or expected != payload_len:
                raise MalformedFrameError(
                    f"payload length {payload_len} != prod(shape {shape}) * itemsize "
                    f"{_code_itemsize[code]}")
        elif kind == KIND_MESSAGE or kind == KIND_END:
            if code or flags or ndim or name_len or payload_len:
                raise MalformedFrameError(
                    "message and end frames carry no dtype, flags, shape, name or payload")
            if kind == KIND_END and count:
                raise MalformedFrameError("count must be 0 in an end frame")
        elif (kind == KIND_ACK or kind == KIND_ERROR) and p[4] >= VERSION_CONTROL:
            if code or flags or ndim or payload_len or (kind == KIND_ACK and name_len):
                raise MalformedFrameError(
                    "ack and error frames carry no dtype, flags, shape or payload "
                    "(and an ack no name)")
        else:
            raise MalformedFrameError(f"unknown frame kind {kind}")
        return kind, code, flags, shape, payload_len, name, count, seq
    finally:
        PyBuffer_Release(&view)


cdef bint _has_zero(const unsigned char *p, int ndim) noexcept:
    cdef int i
    for i in range(ndim):
        if _get64(p + FIXED_HEADER + 8 * i) == 0:
            return True
    return False


# ---- whole small frames in one call (the transport's per-message fast path) ----
#
# A stream of small arrays is bounded by per-message overhead, not by bytes: the
# general Encoder/Decoder path costs several microseconds of Python per frame.  These
# two functions do a whole unnamed array frame in one call.  They are accelerators,
# not a second implementation of the format: each either produces exactly what the
# general path produces or returns None -- for anything unusual (names, messages,
# limits exceeded, a damaged frame, an ``out`` that does not fit) -- and the general
# path then decides and reports.  tests/test_fastpath.py holds them to that.

# wire dtype code per numpy type character (0: none), as _format.dtype_code
cdef int _char_code[256]


cdef _init_codes():
    cdef int i
    from wirearray._format import dtype_code
    for i in range(256):
        _char_code[i] = 0
    for ch in SUPPORTED_CHARS:
        _char_code[ord(ch)] = dtype_code(_np.dtype(ch))


_init_codes()

# the dtype objects a decoded array gets, per wire code: native, little, big order
cdef list _code_native = [None] * N_CODES
cdef list _code_little = [None] * N_CODES
cdef list _code_big = [None] * N_CODES
cdef int _code_unit[N_CODES]


cdef _init_code_dtypes():
    cdef int c
    from wirearray._format import DTYPES
    _code_unit[0] = 0
    for c, dt in DTYPES.items():
        _code_native[c] = dt
        _code_little[c] = dt.newbyteorder("<")
        _code_big[c] = dt.newbyteorder(">")
        _code_unit[c] = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize


_init_code_dtypes()


cdef inline Py_ssize_t _frame_tail(Py_ssize_t nbytes, bint checksum) noexcept nogil:
    cdef Py_ssize_t t = 4 if checksum else 0
    cdef Py_ssize_t r = (nbytes + t) % 64
    return t + (64 - r if r else 0)


def encode_small(a, int want_big, bint checksum, uint32_t seq, Py_ssize_t limit):
    """The whole frame of an unnamed array as one ``bytes``, or None.

    ``want_big``: 1 for a big-endian payload, 0 for little-endian, -1 for the array's
    own memory order.  None (nothing done) unless ``a`` is an ndarray of a wire dtype,
    C- or Fortran-contiguous, with at most 64 dimensions and ``limit`` payload bytes:
    the caller then takes the general Encoder path, whose frames this one's equal
    byte for byte.
    """
    cdef wa_PyArrayObject *arr
    cdef wa_PyArray_Descr *d
    cdef unsigned char tc
    cdef int code, itemsize, nd, i, flags
    cdef bint mem_big, wire_big, swap, fortran
    cdef Py_ssize_t nbytes, h, tail, total
    cdef unsigned char *p
    cdef object frame
    if not wa_is_ndarray(a):
        return None
    arr = WA_ARR(a)
    d = <wa_PyArray_Descr *> arr.descr
    tc = <unsigned char> d.type
    code = _char_code[tc]
    if code == 0 or <object> d.typeobj is not _typeobj[tc]:
        return None
    nd = arr.nd
    if nd > MAX_NDIM:
        return None
    itemsize = _itemsize[tc]
    nbytes = _nbytes(arr, itemsize)
    if nbytes > limit:
        return None
    if arr.flags & WA_NPY_C_CONTIGUOUS:
        fortran = False
    elif arr.flags & WA_NPY_F_CONTIGUOUS:
        fortran = nd > 1
    else:
        return None
    mem_big = _mem_is_big(d.byteorder)
    wire_big = mem_big if want_big < 0 else want_big != 0
    swap = itemsize > 1 and wire_big != mem_big
    flags = (1 if wire_big else 0) | (2 if fortran else 0) | (4 if checksum else 0)
    h = _header_size(nd, 0)
    tail = _frame_tail(nbytes, checksum)
    total = h + nbytes + tail
    frame = PyBytes_FromStringAndSize(NULL, total)
    p = <unsigned char *> PyBytes_AS_STRING(frame)
    memset(p, 0, <size_t> h)
    p[0] = 0x89
    p[1] = b'W'
    p[2] = b'A'
    p[3] = b'R'
    p[4] = 1
    p[5] = KIND_ARRAY
    p[6] = <unsigned char> code
    p[7] = <unsigned char> flags
    p[8] = <unsigned char> nd
    _put16(p + 10, <uint16_t> h)
    _put64(p + 16, <uint64_t> nbytes)
    _put32(p + 24, seq)
    for i in range(nd):
        _put64(p + FIXED_HEADER + 8 * i, <uint64_t> arr.dimensions[i])
    _put32(p + CRC_OFFSET, wa_crc32c(0, p, <size_t> h))
    if nbytes:
        if swap:
            wa_swap_contig(<char *> p + h, arr.data, <size_t> nbytes, _unit[tc], _path, 0)
        else:
            memcpy(p + h, arr.data, <size_t> nbytes)
    memset(p + h + nbytes, 0, <size_t> tail)
    if checksum:
        _put32(p + h + nbytes, wa_crc32c(0, p + h, <size_t> nbytes))
    return frame


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
    cdef const unsigned char *p
    cdef Py_ssize_t avail, h, total, i, nbytes
    cdef int code, flags, nd, itemsize
    cdef uint32_t c
    cdef uint64_t payload_len, dim, nonzero
    cdef bint has_zero = False
    cdef Py_ssize_t dims[MAX_NDIM]
    cdef unsigned char zero4[4]
    cdef bint fortran, wire_big, swap
    cdef object dest, descr
    cdef wa_PyArrayObject *res
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char *> view.buf
        avail = view.len
        if avail < MIN_HEADER:
            return None
        if not (p[0] == 0x89 and p[1] == b'W' and p[2] == b'A' and p[3] == b'R' and
                p[4] == 1 and p[5] == KIND_ARRAY and p[9] == 0):
            return None
        code = p[6]
        flags = p[7]
        nd = p[8]
        if code <= 0 or code >= N_CODES or flags & ~FLAGS_KNOWN or nd > max_ndim:
            return None
        h = _header_size(nd, 0)
        if ((p[10] << 8) | p[11]) != h or h > avail or _get32(p + 12) != 0:
            return None
        if _get32(p + 24) != seq:
            return None
        payload_len = _get64(p + 16)
        if payload_len > max_frame_bytes or payload_len > <uint64_t> avail:
            return None
        nbytes = <Py_ssize_t> payload_len
        fortran = (flags & 2) != 0
        total = h + nbytes + _frame_tail(nbytes, (flags & 4) != 0)
        if total > avail:
            return None
        zero4[0] = zero4[1] = zero4[2] = zero4[3] = 0
        c = wa_crc32c(0, p, CRC_OFFSET)
        c = wa_crc32c(c, zero4, 4)
        c = wa_crc32c(c, p + CRC_OFFSET + 4, <size_t> (h - CRC_OFFSET - 4))
        if c != _get32(p + CRC_OFFSET):
            return None
        for i in range(FIXED_HEADER + 8 * nd, h):
            if p[i]:
                return None
        # shape: the product must equal the payload, and without its zeros (the
        # general path's representability rule) fit this host's intp
        itemsize = _code_itemsize[code]
        nonzero = <uint64_t> itemsize
        for i in range(nd):
            dim = _get64(p + FIXED_HEADER + 8 * i)
            if dim > <uint64_t> PY_SSIZE_T_MAX:
                return None
            dims[i] = <Py_ssize_t> dim
            if dim == 0:
                has_zero = True
            elif nonzero > <uint64_t> PY_SSIZE_T_MAX // dim:
                return None
            else:
                nonzero *= dim
        if (0 if has_zero else nonzero) != payload_len:
            return None
        # trailer: checksum, zero padding
        i = h + nbytes
        if flags & 4:
            if wa_crc32c(0, p + h, <size_t> nbytes) != _get32(p + i):
                return None
            i += 4
        while i < total:
            if p[i]:
                return None
            i += 1
        # destination
        wire_big = (flags & 1) != 0
        if out is not None:
            dest = _fit_small_out(out, code, nd, dims, fortran and nd > 1)
            if dest is None:
                return None
        else:
            if keep_wire_order:
                descr = _code_big[code] if wire_big else _code_little[code]
            else:
                descr = _code_native[code]
            try:
                dest = wa_new_array(descr, nd, dims, fortran)
            except (ValueError, MemoryError):
                return None
        res = WA_ARR(dest)
        if nbytes:
            swap = itemsize > 1 and _mem_is_big(
                (<wa_PyArray_Descr *> res.descr).byteorder) != wire_big
            if swap:
                wa_swap_contig(res.data, <const char *> p + h, <size_t> nbytes,
                               _code_unit[code], _path, 0)
            else:
                memcpy(res.data, p + h, <size_t> nbytes)
        return dest, total
    finally:
        PyBuffer_Release(&view)
