# format.pxi -- frame headers: header_length, parse_header, pack_header (included by
# _cwire.pyx).  docs/FORMAT.md is the specification; src/wirearray/_format.py has the
# same three functions in pure Python, and tests/test_format.py holds the two to the
# same bytes, results, exception classes and messages.
#
# The checks are not here: they are wa_format.h's wa_check_head (step 1 of
# docs/FORMAT.md section 6) and wa_check_header (steps 1-3), the very functions the
# whole-frame fast path (fastpath.pxi) runs.  This file turns a failed check into the
# exception the reference raises for it, and a passed one into Python values.
#
# Invariants:
#   * Every Py_buffer taken is released in `finally`.
#   * Shape and name are read only after wa_check_header has accepted the header,
#     and only inside the H bytes it checked.
#   * Messages name the format's numbers through wa_format.h (kinds by their names in
#     wa_kinds[]), so a new kind needs no change here.
#   * A record's descriptor is checked by wa_check_header (wa_check_descriptor) before
#     _format.build_record, shared with the fallback, makes numpy's dtype of it.

# the frame magic, for messages: b"\x89WAR"
_MAGIC = (<const char *> wa_magic)[:4]


cdef str _a(str noun):
    return ("an " if noun[0] in "aeiou" else "a ") + noun


cdef str _kind_name(unsigned kind):
    return wa_kinds[kind].name.decode("ascii")


cdef str _not_empty(unsigned kind):
    # as _format._not_empty: what a header of a kind without an array may not carry
    fields = "dtype, flags, shape" + ("" if wa_kinds[kind].rules & WA_RULE_NAME else ", name")
    return f"{_kind_name(kind)} frames carry no {fields} or payload"


cdef object _header_error(int status, const unsigned char *p, const wa_header *h):
    """The exception _format.py raises where the check returned ``status``."""
    if status == WA_E_SHORT:
        return ValueError("header_length needs the first 64 bytes of a frame")
    if status == WA_E_MAGIC:
        return MalformedFrameError(f"bad magic {bytes(p[:4])!r} (expected {_MAGIC!r})")
    if status == WA_E_VERSION:
        return UnsupportedVersionError(
            f"wire-format version {h.version} (this reader speaks {WA_VERSION}, "
            f"{WA_VERSION_CONTROL}, {WA_VERSION_TIME} and {WA_VERSION_RECORD})")
    if status == WA_E_NDIM:
        return MalformedFrameError(
            f"ndim {h.ndim} exceeds the format's maximum of {WA_MAX_NDIM}")
    if status == WA_E_HEADER_LEN:
        return MalformedFrameError(
            f"header length {h.header_len} does not match ndim {h.ndim} and name length "
            f"{h.name_len}")
    if status == WA_E_DESCRIPTOR_LEN:
        return MalformedDescriptorError(
            f"record descriptor of {h.count} bytes exceeds the format's maximum of "
            f"{WA_MAX_DESCRIPTOR}")
    if status == WA_E_INCOMPLETE:
        return ValueError("parse_header needs the whole header")
    if status == WA_E_CRC:
        return MalformedFrameError("header checksum mismatch (corrupted header)")
    if status == WA_E_PADDING:
        return MalformedFrameError("non-zero bytes in header padding")
    if status == WA_E_KIND:
        return MalformedFrameError(f"unknown frame kind {h.kind}")
    if status == WA_E_DTYPE:
        return MalformedFrameError(f"unknown dtype code {h.code}")
    if status == WA_E_FLAGS:
        return MalformedFrameError(f"unknown flag bits 0x{h.flags & ~WA_FLAGS_KNOWN:02x}")
    if status == WA_E_NOT_EMPTY:
        return MalformedFrameError(_not_empty(h.kind))
    if status == WA_E_COUNT:
        return MalformedFrameError(f"count must be 0 in {_a(_kind_name(h.kind))} frame")
    if status == WA_E_PAYLOAD_LEN:
        return MalformedFrameError(
            f"payload length {h.payload_len} != prod(shape {_shape(p, h)}) * itemsize "
            f"{h.itemsize}")
    if status == WA_E_MULTIPLIER:
        return MalformedFrameError(
            f"multiplier {h.count} of a "
            f"{'datetime64' if wa_dtypes[h.code].typechar == b'M' else 'timedelta64'} frame "
            f"is not 1 to {WA_MAX_MULTIPLIER}")
    if status == WA_E_LENGTH:
        return MalformedFrameError(
            f"length {h.count} of {_a(chr(wa_dtypes[h.code].typechar))} frame is not 1 to "
            f"{WA_MAX_ITEMSIZE // 4 if h.code == WA_CODE_UNICODE else WA_MAX_ITEMSIZE}")
    if status == WA_E_DESCRIPTOR:
        return _format.descriptor_error(h.desc_status, h.desc_at)
    return SystemError(f"wa_check_header: unknown status {status}")


cdef tuple _shape(const unsigned char *p, const wa_header *h):
    cdef unsigned i
    return tuple([wa_get64(p + WA_OFF_SHAPE + 8 * i) for i in range(h.ndim)])


def header_length(head):
    """Validate the first 64 bytes of a frame and return its header length H."""
    cdef Py_buffer view
    cdef wa_header h
    cdef int status
    PyObject_GetBuffer(head, &view, PyBUF_SIMPLE)
    try:
        status = wa_check_head(<const unsigned char *> view.buf, <size_t> view.len, &h)
        if status != WA_OK:
            raise _header_error(status, <const unsigned char *> view.buf, &h)
        return h.header_len
    finally:
        PyBuffer_Release(&view)


def parse_header(buf):
    """Validate a complete header; return (kind, code, flags, shape, payload_len, name,
    count, seq).  Same checks, results and messages as _format.parse_header."""
    cdef Py_buffer view
    cdef const unsigned char *p
    cdef wa_header h
    cdef int status
    cdef size_t name_at
    PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char *> view.buf
        status = wa_check_header(p, <size_t> view.len, &h)
        if status != WA_OK:
            raise _header_error(status, p, &h)
        name_at = WA_OFF_SHAPE + 8 * h.ndim
        name = (<const char *> p)[name_at:name_at + h.name_len]
        count = h.count
        if h.code == WA_CODE_RECORD:  # checked by wa_check_header; numpy's dtype of it
            count = _format.build_record(
                (<const char *> p)[name_at + h.name_len:name_at + h.name_len + h.desc_len])
        return h.kind, h.code, h.flags, _shape(p, &h), h.payload_len, name, count, h.seq
    finally:
        PyBuffer_Release(&view)


def pack_header(int kind, int code, int flags, shape, payload_len, name=b"", count=0, seq=0):
    """Encode a header (with its CRC32C) for the given, already validated, fields."""
    cdef Py_ssize_t ndim = len(shape)
    cdef Py_ssize_t name_len = len(name)
    cdef Py_ssize_t i
    cdef size_t h
    cdef bytearray out
    cdef unsigned char *p
    cdef const unsigned char[:] nm
    cdef bytes desc = b""
    if ndim > WA_MAX_NDIM or name_len > WA_MAX_NAME:
        raise ValueError("ndim or name too long for the wire format")
    if isinstance(count, _np.dtype):  # a record: its descriptor, and count its length
        desc = _format.encode_descriptor(count)
        count = len(desc)
    h = wa_header_size_desc(<unsigned> ndim, <unsigned> name_len, <size_t> len(desc))
    out = bytearray(h)
    p = <unsigned char *> (<char *> out)
    wa_put_fixed(p, <unsigned> kind, <unsigned> code, <unsigned> flags, <unsigned> ndim,
                 <unsigned> name_len, h, <uint32_t> count, <uint64_t> payload_len,
                 <uint32_t> (seq & 0xFFFFFFFF))
    for i in range(ndim):
        wa_put64(p + WA_OFF_SHAPE + 8 * i, <uint64_t> shape[i])
    if name_len:
        nm = name
        memcpy(p + WA_OFF_SHAPE + 8 * ndim, &nm[0], <size_t> name_len)
    if desc:
        memcpy(p + WA_OFF_SHAPE + 8 * ndim + name_len, <const char *> desc, <size_t> len(desc))
    wa_seal_header(p, h)
    return bytes(out)
