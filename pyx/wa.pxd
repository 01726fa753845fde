# wa.pxd -- the C half of the compiled module as Cython sees it: the declarations of
# the headers pyx/wa_*.h.  _cwire.pyx cimports all of it, so the module and every .pxi
# it includes see these names; their wa_ / WA_ prefix says where they come from.
#
# Invariants:
#   * Declarations only.  Everything is defined, static, in the headers; each header
#     says what it guarantees.
#   * nogil where the C touches no Python object and cannot fail (the kernels, CRC32C,
#     the wire format); wa_npyabi.h works on Python objects and needs the GIL.
#   * The wire format's numbers are named here, never spelled: wa_format.h holds them.

from cpython.object cimport PyObject
from libc.stddef cimport ptrdiff_t
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t


cdef extern from "wa_cpu.h" nogil:
    int wa_host_is_little()


cdef extern from "wa_bswap.h" nogil:
    enum:
        WA_PATH_SCALAR
        WA_PATH_SSSE3
        WA_PATH_AVX2
        WA_PATH_NEON
    unsigned wa_paths_available()
    int wa_best_path(unsigned mask)
    uint16_t wa_bswap16(uint16_t x)
    uint32_t wa_bswap32(uint32_t x)
    uint64_t wa_bswap64(uint64_t x)
    void wa_swap_contig(char *dst, const char *src, size_t nbytes, int unit, int path,
                        int stream)
    void wa_convert_nd(char *dst, const ptrdiff_t *dst_strides, const char *src,
                       const ptrdiff_t *src_strides, const ptrdiff_t *shape, int ndim,
                       int itemsize, int unit, int path, int stream)


cdef extern from "wa_records.h" nogil:
    ctypedef struct wa_plan_op:
        uint32_t offset, nbytes, op
    ctypedef struct wa_rec_kernel:
        size_t itemsize
        int whole
        size_t period
        int local
    wa_rec_kernel *wa_rec_compile(size_t itemsize, const wa_plan_op *ops, size_t nops)
    void wa_rec_free(wa_rec_kernel *k)
    void wa_rec_apply(const wa_rec_kernel *k, char *dst, const char *src, size_t nrec,
                      int path, int stream)


cdef extern from "wa_bool.h" nogil:
    int wa_bool_canonical(const unsigned char *p, size_t n)
    void wa_bool_normalize(unsigned char *dst, const unsigned char *src, size_t n)


cdef extern from "wa_crc32c.h" nogil:
    void wa_crc32c_init()
    uint32_t wa_crc32c(uint32_t crc, const void *data, size_t n)
    uint32_t wa_crc32c_portable(uint32_t crc, const void *data, size_t n)


cdef extern from "wa_format.h" nogil:
    const unsigned char wa_magic[4]
    enum:
        WA_VERSION
        WA_VERSION_CONTROL
        WA_VERSION_TIME
        WA_VERSION_RECORD
        WA_ALIGN
        WA_FIXED_HEADER
        WA_MIN_HEADER
        WA_MAX_NDIM
        WA_MAX_NAME
        WA_MAX_HEADER
        WA_TRAILER
        WA_OFF_SHAPE
        WA_FLAG_BIG_ENDIAN
        WA_FLAG_FORTRAN
        WA_FLAG_CHECKSUM
        WA_FLAGS_KNOWN
        WA_KIND_ARRAY
        WA_KIND_MESSAGE
        WA_KIND_END
        WA_KIND_ACK
        WA_KIND_ERROR
        WA_KIND_LIMIT
        WA_RULE_ARRAY
        WA_RULE_COUNT_ZERO
        WA_RULE_NAME
        WA_N_CODES
        WA_CODE_BOOL
        WA_CODE_TIME
        WA_CODE_BYTES
        WA_CODE_UNICODE
        WA_CODE_RAW
        WA_CODE_RECORD
        WA_MAX_MULTIPLIER
        WA_MAX_ITEMSIZE
        WA_MAX_DESCRIPTOR
    ctypedef struct wa_kind_info:
        const char *name
        unsigned rules
        unsigned version
    const wa_kind_info wa_kinds[]
    ctypedef struct wa_dtype_info:
        char typechar
        unsigned char itemsize
        unsigned char unit
        unsigned char version
        const char *time_unit
    const wa_dtype_info wa_dtypes[]
    int wa_code_is_time(unsigned code)
    int wa_code_is_record(unsigned code)

    uint32_t wa_get32(const unsigned char *p)
    uint64_t wa_get64(const unsigned char *p)
    void wa_put32(unsigned char *p, uint32_t v)
    void wa_put64(unsigned char *p, uint64_t v)
    size_t wa_header_size(unsigned ndim, unsigned name_len)
    size_t wa_header_size_desc(unsigned ndim, unsigned name_len, size_t desc_len)
    size_t wa_frame_tail(size_t payload_len, int checksum)
    void wa_put_fixed(unsigned char *p, unsigned kind, unsigned code, unsigned flags,
                      unsigned ndim, unsigned name_len, size_t header_len, uint32_t count,
                      uint64_t payload_len, uint32_t seq)
    void wa_seal_header(unsigned char *p, size_t header_len)

    ctypedef struct wa_header:
        unsigned version, kind, code, flags, ndim, name_len
        size_t header_len
        uint32_t count, seq, crc
        uint64_t payload_len
        size_t desc_len
        uint64_t itemsize
        int desc_status
        size_t desc_at
    enum:
        WA_OK
        WA_E_SHORT
        WA_E_MAGIC
        WA_E_VERSION
        WA_E_NDIM
        WA_E_HEADER_LEN
        WA_E_INCOMPLETE
        WA_E_CRC
        WA_E_PADDING
        WA_E_KIND
        WA_E_DTYPE
        WA_E_FLAGS
        WA_E_NOT_EMPTY
        WA_E_COUNT
        WA_E_PAYLOAD_LEN
        WA_E_MULTIPLIER
        WA_E_DESCRIPTOR_LEN
        WA_E_LENGTH
        WA_E_DESCRIPTOR
    int wa_check_descriptor(const unsigned char *d, size_t n, size_t *at, uint64_t *itemsize)
    int wa_check_head(const unsigned char *p, size_t avail, wa_header *h)
    int wa_check_header(const unsigned char *p, size_t avail, wa_header *h)


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
        WA_NPY_ANYORDER
        WA_NPY_KEEPORDER
    int wa_npy_import() except -1
    bint wa_is_ndarray(object o)
    bint wa_is_exact_ndarray(object o)
    object wa_PyArray_NewLikeArray(object prototype, int order, object descr, int subok)
    wa_PyArrayObject *WA_ARR(object o)
    object wa_view_as(object arr, object descr)
    object wa_new_array(object descr, int nd, const Py_ssize_t *dims, int fortran)


cdef extern from "wa_send.h" nogil:
    int WA_HAVE_SEND
    ptrdiff_t wa_send_nowait(int fd, const void *buf, size_t len, int *err)
    ptrdiff_t wa_recv_nowait(int fd, void *buf, size_t len, int *err)
    int EWOULDBLOCK  # errno.h (through wa_send.h): not in Cython's libc.errno


cdef extern from "wa_recv.h" nogil:
    enum:
        WA_RX_DONE
        WA_RX_EOF
        WA_RX_AGAIN
        WA_RX_TIMEOUT
        WA_RX_EINTR
        WA_RX_ERRNO
        WA_RX_UNSUPPORTED
    ctypedef struct wa_rx:
        int fd
        char *buf
        size_t len, pos, swapped, chunk
        int unit, path, do_crc
        uint32_t crc
        int64_t deadline_ns
        int err
    int64_t wa_now_ns()
    int wa_rx_run(wa_rx *s)
