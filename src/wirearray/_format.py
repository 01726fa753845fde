"""wirearray wire format (versions 1 to 4): constants and the pure-Python header codec.

docs/FORMAT.md is the specification; this module is its executable reference and the
pure-Python implementation of the header primitives.  The compiled module
``wirearray._cwire`` has the same functions, built on pyx/wa_format.h, which declares
the same constants in C and makes the same checks in the same order: tests hold the
functions to the same bytes and the same errors (tests/test_format.py) and the C
constants to these (tests/test_c_headers.py).  A new frame kind is a KIND_* constant
and a line in KIND_RULES here, and the same two lines in wa_format.h.

Layout of a frame (all header integers big-endian):

    header   H bytes, H = 64 * k        fixed 32 bytes, shape, name, zero padding
    payload  L bytes                    the array's memory in C or Fortran order
    trailer  4 bytes, if FLAG_CHECKSUM  CRC32C of the payload (big-endian)
    padding  zeros up to a multiple of 64 bytes

A version-4 ARRAY frame of a record carries its field descriptor inside the header,
after the name (FORMAT.md section 3).  Its structure is checked here by
``check_descriptor`` and in C by wa_format.h's ``wa_check_descriptor`` -- the same
iterative walk, limits and order, no allocation beyond a stack of MAX_DEPTH records --
and only a descriptor that passed becomes a numpy dtype, in ``build_record``, which
both implementations share: turning checked bytes into numpy's dict form is Python
object work either way, and one builder cannot build two different dtypes from the
same bytes.

Every frame length is a multiple of 64, so frames laid end to end in one buffer keep
every payload 64-byte aligned.  Nothing here allocates from a peer's numbers: shape and
lengths are checked with exact integer arithmetic against the format's own bounds
before a caller sizes anything with them.
"""

from __future__ import annotations

import struct
from functools import lru_cache

import numpy as np

from .exceptions import (
    MalformedDescriptorError,
    MalformedFrameError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
)

MAGIC = b"\x89WAR"

# The authkey handshake's messages (auth.py; docs/SECURITY.md) share the frame magic's
# first three bytes, so a receiver that meets them instead of a frame can say so.
#: The server's hello: magic, version 1, zero padding (then a 32-byte nonce).
HANDSHAKE_HELLO = b"\x89WAH\x01" + bytes(27)
#: The server's acceptance (then its 32-byte proof).
HANDSHAKE_OK = b"\x89WAS" + bytes(28)
#: The server's refusal: the whole 64-byte message.
HANDSHAKE_FAIL = b"\x89WAF" + bytes(60)
#: The first bytes of every handshake message from the server.
HANDSHAKE_MAGIC = HANDSHAKE_HELLO[:4]

#: The version a frame carries is the lowest that defines everything in it (FORMAT.md
#: section 9): data frames and END are version 1, so version-1 readers read every data
#: stream; the close-protocol frames ACK and ERROR, added in version 2, are version 2.
VERSION = 1
VERSION_CONTROL = 2
#: ARRAY frames of datetime64/timedelta64 (dtype codes 15-40), whose count field holds
#: the multiplier: a version-1 or -2 reader refuses them by their version instead of
#: reading a frame whose dtype it cannot name.
VERSION_TIME = 3
#: ARRAY frames of fixed-length bytes, unicode, raw bytes and records (codes 41-44),
#: whose count field holds a length (a record's: its field descriptor's, which follows
#: the name inside the header): older readers refuse them by their version.
VERSION_RECORD = 4
VERSIONS = (1, 2, 3, 4)

KIND_ARRAY = 1
KIND_MESSAGE = 2
KIND_END = 3
KIND_ACK = 4
KIND_ERROR = 5

#: The rules of docs/FORMAT.md section 2 per frame kind, as pyx/wa_format.h's wa_kinds[]:
#: (name in messages, carries an array, count must be 0, carries a name without an
#: array, the first version that has the kind).  A kind without an array has dtype,
#: flags, ndim and payload_len 0 (and name_len 0 unless it carries a name); an array
#: has a known dtype code, known flags and payload_len = prod(shape) * itemsize.
KIND_RULES = {
    KIND_ARRAY: ("array", True, True, False, 1),
    KIND_MESSAGE: ("message", False, False, False, 1),  # count: the ARRAY frames that follow
    KIND_END: ("end", False, True, False, 1),
    KIND_ACK: ("ack", False, False, False, 2),  # count: the peer's frames received
    KIND_ERROR: ("error", False, False, True, 2),  # count: an error code; name: a reason
}
KINDS = tuple(KIND_RULES)
#: kinds that a version-1 frame may carry
KINDS_V1 = tuple(k for k, rule in KIND_RULES.items() if rule[4] == 1)

FLAG_BIG_ENDIAN = 0x01
FLAG_FORTRAN = 0x02
FLAG_CHECKSUM = 0x04
FLAGS_KNOWN = FLAG_BIG_ENDIAN | FLAG_FORTRAN | FLAG_CHECKSUM

FIXED_HEADER = 32
MIN_HEADER = 64
MAX_NDIM = 64
MAX_NAME = 255
ALIGN = 64
#: The largest header the format allows: 32 + 64 * 8 + 255 bytes, rounded up to 64.
MAX_HEADER = -(-(FIXED_HEADER + 8 * MAX_NDIM + MAX_NAME) // ALIGN) * ALIGN
TRAILER = 4
CRC_OFFSET = 28

#: dtype code -> numpy type character (native order); code 0 is invalid.
DTYPE_CHARS = {
    1: "?",  # bool
    2: "b",  # int8
    3: "B",  # uint8
    4: "h",  # int16
    5: "H",  # uint16
    6: "i",  # int32
    7: "I",  # uint32
    8: "q",  # int64
    9: "Q",  # uint64
    10: "e",  # float16
    11: "f",  # float32
    12: "d",  # float64
    13: "F",  # complex64
    14: "D",  # complex128
}
#: numpy's datetime units, coarsest first: code 15 + i is datetime64 of UNITS[i], code
#: 28 + i timedelta64 of UNITS[i] (FORMAT.md section 3).  A generic (unitless) one has
#: no code: numpy cannot hold it in another byte order (_common.check_dtype).
TIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")
#: first code of datetime64 ('M') and of timedelta64 ('m')
TIME_BASE = {"M": 15, "m": 15 + len(TIME_UNITS)}
#: time code -> (numpy type character, unit)
TIME_CODES = {
    base + i: (ch, unit) for ch, base in TIME_BASE.items() for i, unit in enumerate(TIME_UNITS)
}
DTYPE_CHARS.update({code: ch for code, (ch, _) in TIME_CODES.items()})
#: a time frame's multiplier (its count field): numpy holds it in a C int
MAX_MULTIPLIER = 2**31 - 1
#: numeric dtype code -> its native dtype (time codes: native_dtype, with the multiplier)
DTYPES = {code: np.dtype(ch) for code, ch in DTYPE_CHARS.items() if code not in TIME_CODES}
#: (numeric dtype code, big-endian?) -> the payload's dtype as it travels
WIRE_DTYPES = {
    (code, big): dt.newbyteorder(">" if big else "<")
    for code, dt in DTYPES.items()
    for big in (False, True)
}
#: item size of each dtype code (time codes: int64's)
ITEMSIZE = {code: np.dtype(ch).itemsize for code, ch in DTYPE_CHARS.items()}
#: dtype code -> the first version that has it: what its ARRAY frames carry
CODE_VERSION = {code: VERSION_TIME if code in TIME_CODES else VERSION for code in DTYPE_CHARS}

# ---- version 4: bytes, unicode, raw and records (FORMAT.md section 3) ----
#: fixed-length bytes ``S<n>``, count n; unicode ``U<n>`` (UCS-4, swapped in 4-byte
#: code units), count n characters; raw bytes ``V<n>``, count n; a record (structured
#: dtype), count = the length of its field descriptor
CODE_BYTES, CODE_UNICODE, CODE_RAW, CODE_RECORD = 41, 42, 43, 44
#: the flexible codes (S, U, V) -> numpy's type character
FLEX_CHARS = {CODE_BYTES: "S", CODE_UNICODE: "U", CODE_RAW: "V"}
FLEX_CODES = {ch: code for code, ch in FLEX_CHARS.items()}
RECORD_CODES = (*FLEX_CHARS, CODE_RECORD)
CODE_VERSION.update({code: VERSION_RECORD for code in RECORD_CODES})
N_CODES = CODE_RECORD + 1
#: the largest item size of a v4 dtype (numpy's item sizes are C ints)
MAX_ITEMSIZE = 2**31 - 1
#: descriptor limits, all checked before anything is sized from the descriptor
MAX_DESCRIPTOR = 8192  # bytes of one frame's descriptor
MAX_FIELDS = 512  # fields in one descriptor, nested ones included
MAX_DEPTH = 8  # records nested in records: the frame's own is depth 1
MAX_FIELD_NAME = 255  # bytes of UTF-8 (a one-byte length)
MAX_SUBARRAY_NDIM = 32  # dimensions of a subarray field (numpy 1.x's maximum)
MAX_SUBARRAY_ELEMENTS = 2**31 - 1  # elements of one subarray field
#: a record's flags: bit 0 -- numpy's align=True (``dtype.isalignedstruct``)
RECORD_ALIGNED = 0x01
#: the record head: itemsize (u32), nfields (u16), flags (u8), reserved (u8)
_RECORD_HEAD = struct.Struct(">IHBB")
#: a field after its name: offset (u32), dtype code (u8), ndim (u8), param (u32)
_FIELD_FIXED = struct.Struct(">IBBI")
#: The largest header of any frame: the largest v1-3 header plus a full descriptor.
MAX_RECORD_HEADER = -(-(FIXED_HEADER + 8 * MAX_NDIM + MAX_NAME + MAX_DESCRIPTOR) // ALIGN) * ALIGN

# What the descriptor check found (pyx/wa_format.h's WA_D_*): its first failure, in the
# order of FORMAT.md section 3; both implementations report it with the byte offset in
# the descriptor where it was found, by these messages.
D_OK = 0
D_TRUNCATED = 1
D_TRAILING = 2
D_ITEMSIZE = 3
D_FLAGS = 4
D_FIELDS = 5
D_NAME_LEN = 6
D_CODE = 7
D_PARAM = 8
D_NDIM = 9
D_ELEMENTS = 10
D_DEPTH = 11
D_OVERLAP = 12
D_PAST_END = 13
DESCRIPTOR_ERRORS = {
    D_TRUNCATED: "ends inside a record or field",
    D_TRAILING: "has bytes after its record",
    D_ITEMSIZE: f"item size over {MAX_ITEMSIZE}",
    D_FLAGS: "unknown record flag bits or non-zero reserved byte",
    D_FIELDS: f"more than {MAX_FIELDS} fields",
    D_NAME_LEN: "a field name of 0 bytes",
    D_CODE: "unknown field dtype code",
    D_PARAM: "field parameter out of range for its dtype code",
    D_NDIM: f"subarray of more than {MAX_SUBARRAY_NDIM} dimensions",
    D_ELEMENTS: f"subarray of more than {MAX_SUBARRAY_ELEMENTS} elements",
    D_DEPTH: f"records nested more than {MAX_DEPTH} deep",
    D_OVERLAP: "a field starts before the previous one ends (overlap, or not in offset order)",
    D_PAST_END: "a field ends past its record's item size",
}


def descriptor_error(status: int, at: int) -> MalformedDescriptorError:
    """The exception for descriptor check ``status`` found at byte ``at``."""
    return MalformedDescriptorError(f"record descriptor {DESCRIPTOR_ERRORS[status]} (byte {at})")


def _flex_size(code: int, param: int) -> int:
    return 4 * param if code == CODE_UNICODE else param


def _param_ok(code: int, param: int) -> bool:
    """The rule of a code's parameter: a time code's multiplier, a flexible code's
    length (U: characters, at most MAX_ITEMSIZE bytes), 0 for the others."""
    if code in TIME_CODES:
        return 1 <= param <= MAX_MULTIPLIER
    if code in FLEX_CHARS:
        return 1 <= _flex_size(code, param) <= MAX_ITEMSIZE
    return param == 0


def check_descriptor(desc) -> tuple[int, int, int]:
    """Check a record descriptor's structure (FORMAT.md section 3) without building
    anything: ``(status, byte offset, itemsize)``, status D_OK or the first failure.
    Iterative, with an explicit stack of at most MAX_DEPTH records, as in C."""
    n = len(desc)
    pos = 0
    fields = 0
    # stack entries: [itemsize, fields left, end of the previous field]
    stack: list[list[int]] = []
    if n < _RECORD_HEAD.size:
        return D_TRUNCATED, pos, 0
    itemsize, nfields, flags, reserved = _RECORD_HEAD.unpack_from(desc, 0)
    if itemsize > MAX_ITEMSIZE:
        return D_ITEMSIZE, pos, 0
    if flags & ~RECORD_ALIGNED or reserved:
        return D_FLAGS, pos, 0
    pos = _RECORD_HEAD.size
    stack.append([itemsize, nfields, 0])
    top_itemsize = itemsize
    # the field whose nested record is being read: (offset, elements) per level
    pending: list[tuple[int, int]] = []
    while stack:
        rec = stack[-1]
        if rec[1] == 0:  # a record done: it is the base of its parent's field
            stack.pop()
            if not stack:
                break
            offset, elements = pending.pop()
            status = _place(stack[-1], offset, elements * rec[0])
            if status:
                return status, pos, 0
            continue
        rec[1] -= 1
        fields += 1
        if fields > MAX_FIELDS:
            return D_FIELDS, pos, 0
        if pos + 1 > n:
            return D_TRUNCATED, pos, 0
        name_len = desc[pos]
        if name_len == 0:
            return D_NAME_LEN, pos, 0
        if pos + 1 + name_len + _FIELD_FIXED.size > n:
            return D_TRUNCATED, pos, 0
        field_at = pos
        pos += 1 + name_len
        offset, code, ndim, param = _FIELD_FIXED.unpack_from(desc, pos)
        pos += _FIELD_FIXED.size
        if not 1 <= code < N_CODES:
            return D_CODE, field_at, 0
        if not _param_ok(code, param):
            return D_PARAM, field_at, 0
        if ndim > MAX_SUBARRAY_NDIM:
            return D_NDIM, field_at, 0
        if pos + 4 * ndim > n:
            return D_TRUNCATED, field_at, 0
        elements = 1
        for d in struct.unpack_from(f">{ndim}I", desc, pos):
            if d > MAX_SUBARRAY_ELEMENTS or elements * d > MAX_SUBARRAY_ELEMENTS:
                return D_ELEMENTS, field_at, 0
            elements *= d
        pos += 4 * ndim
        if code == CODE_RECORD:
            if len(stack) >= MAX_DEPTH:
                return D_DEPTH, field_at, 0
            if pos + _RECORD_HEAD.size > n:
                return D_TRUNCATED, pos, 0
            itemsize, nfields, flags, reserved = _RECORD_HEAD.unpack_from(desc, pos)
            if itemsize > MAX_ITEMSIZE:
                return D_ITEMSIZE, pos, 0
            if flags & ~RECORD_ALIGNED or reserved:
                return D_FLAGS, pos, 0
            pos += _RECORD_HEAD.size
            pending.append((offset, elements))
            stack.append([itemsize, nfields, 0])
            continue
        base = ITEMSIZE[code] if code in ITEMSIZE else _flex_size(code, param)
        status = _place(rec, offset, elements * base)
        if status:
            return status, field_at, 0
    if pos != n:
        return D_TRAILING, pos, 0
    return D_OK, pos, top_itemsize


def _place(rec: list[int], offset: int, size: int) -> int:
    """Check a field of ``size`` bytes at ``offset`` in the record ``rec``: after the
    previous field's end, and inside the item size; then it is the previous one."""
    if offset < rec[2]:
        return D_OVERLAP
    if size > rec[0] or offset > rec[0] - size:
        return D_PAST_END
    rec[2] = offset + size
    return D_OK


@lru_cache(maxsize=256)
def build_record(desc: bytes) -> np.dtype:
    """The native-order numpy dtype of a descriptor ``check_descriptor`` accepted.

    Both implementations call this after their own structural check.  It decodes the
    field names and hands numpy the fields, offsets and item size.

    Raises:
        MalformedDescriptorError: a field name that is not valid UTF-8 or repeats in
            its record, or a record numpy refuses (an ``align=True`` flag on offsets
            that are not aligned).
    """
    dt, _ = _build(desc, 0)
    return dt


def _build(desc: bytes, pos: int) -> tuple[np.dtype, int]:
    itemsize, nfields, flags, _ = _RECORD_HEAD.unpack_from(desc, pos)
    pos += _RECORD_HEAD.size
    names: list[str] = []
    formats: list[object] = []
    offsets: list[int] = []
    for _ in range(nfields):
        name_len = desc[pos]
        raw = desc[pos + 1 : pos + 1 + name_len]
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedDescriptorError(
                f"record descriptor field name {raw!r} is not valid UTF-8 (byte {pos})"
            ) from None
        if name in names:
            raise MalformedDescriptorError(
                f"record descriptor field name {name!r} repeated in a record (byte {pos})"
            )
        pos += 1 + name_len
        offset, code, ndim, param = _FIELD_FIXED.unpack_from(desc, pos)
        pos += _FIELD_FIXED.size
        dims = struct.unpack_from(f">{ndim}I", desc, pos)
        pos += 4 * ndim
        if code == CODE_RECORD:
            base, pos = _build(desc, pos)
        else:
            base = native_dtype(code, param)
        names.append(name)
        formats.append((base, dims) if ndim else base)
        offsets.append(offset)
    spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize}
    try:
        dt = np.dtype(spec, align=bool(flags & RECORD_ALIGNED))  # type: ignore[call-overload]
    except (ValueError, TypeError, OverflowError, RuntimeError) as exc:
        raise MalformedDescriptorError(f"record descriptor numpy refuses: {exc}") from None
    return dt, pos


def _refuse(dt: np.dtype, why: str) -> UnsupportedDtypeError:
    return UnsupportedDtypeError(f"the wire format cannot carry dtype {dt!r}: {why}")


@lru_cache(maxsize=256)
def encode_descriptor(dt: np.dtype) -> bytes:
    """The field descriptor of a record dtype (FORMAT.md section 3); byte orders are
    not in it (every field travels in the frame's).

    Raises:
        UnsupportedDtypeError: a field the format has no code for, field titles, a
            union, fields not listed in offset order, or a descriptor over a limit.
    """
    out = bytearray()
    _encode(dt, dt, out, 1)
    if len(out) > MAX_DESCRIPTOR:
        raise _refuse(dt, f"its descriptor is over {MAX_DESCRIPTOR} bytes")
    status, _at, _ = check_descriptor(bytes(out))
    if status:  # a limit of the format: fields, depth, sizes
        raise _refuse(dt, f"its descriptor {DESCRIPTOR_ERRORS[status]}")
    return bytes(out)


def _encode(top: np.dtype, dt: np.dtype, out: bytearray, depth: int) -> None:
    if not issubclass(dt.type, np.void) or dt.fields is None:
        raise _refuse(top, "a union of a number and fields")
    if depth > MAX_DEPTH:
        raise _refuse(top, f"records nested more than {MAX_DEPTH} deep")
    names = dt.names or ()
    out += _RECORD_HEAD.pack(
        dt.itemsize, len(names), RECORD_ALIGNED if dt.isalignedstruct else 0, 0
    )
    end = 0
    for name in names:
        field = dt.fields[name]
        if len(field) > 2:
            raise _refuse(top, f"field {name!r} has a title")
        fdt, offset = field[0], field[1]
        if offset < end:
            raise _refuse(top, "its fields are not listed in offset order")
        end = offset + fdt.itemsize
        raw = name.encode("utf-8", "surrogatepass")
        if not 1 <= len(raw) <= MAX_FIELD_NAME:
            raise _refuse(top, f"field name {name!r} is not 1 to {MAX_FIELD_NAME} bytes of UTF-8")
        out.append(len(raw))
        out += raw
        base, dims = fdt.subdtype if fdt.subdtype is not None else (fdt, ())
        if len(dims) > MAX_SUBARRAY_NDIM:
            raise _refuse(top, f"a subarray of over {MAX_SUBARRAY_NDIM} dimensions")
        if base.fields is not None:
            out += _FIELD_FIXED.pack(offset, CODE_RECORD, len(dims), 0)
            out += struct.pack(f">{len(dims)}I", *dims)
            _encode(top, base, out, depth + 1)
            continue
        code = dtype_code(base)
        if not code:
            raise _refuse(top, f"field {name!r} of dtype {base} has no wire code")
        param = dtype_count(base)
        if any(d > MAX_SUBARRAY_ELEMENTS for d in dims):
            raise _refuse(top, "a subarray over the element limit")
        out += _FIELD_FIXED.pack(offset, code, len(dims), param)
        out += struct.pack(f">{len(dims)}I", *dims)


def descriptor_length(head) -> int:
    """The descriptor bytes a frame's header holds (FORMAT.md section 2): the count
    field of a version-4 ARRAY frame of a record, else 0.  Read before the header CRC
    is checked, like ``ndim`` and ``name_len``, and bounded by MAX_DESCRIPTOR."""
    if head[4] >= VERSION_RECORD and head[5] == KIND_ARRAY and head[6] == CODE_RECORD:
        return int.from_bytes(bytes(head[12:16]), "big")
    return 0


def native_dtype(code: int, count: int | np.dtype = 0) -> np.dtype:
    """The native dtype of an ARRAY frame's dtype ``code`` and ``count`` field (a time
    code's multiplier, an S/U/V code's length, a record's dtype as parse_header gives
    it in that field; 0 for the others), as parse_header accepted them."""
    if code == CODE_RECORD:
        assert isinstance(count, np.dtype)
        return count
    flex = FLEX_CHARS.get(code)
    if flex is not None:
        return np.dtype(f"{flex}{count}")
    unit = TIME_CODES.get(code)
    if unit is None:
        return DTYPES[code]
    return np.dtype(f"{unit[0]}8[{count}{unit[1]}]")


def wire_dtype(code: int, count: int | np.dtype, big: bool) -> np.dtype:
    """The payload's dtype as it travels: native_dtype in the frame's byte order (a
    record: every field, nested ones included)."""
    if code not in TIME_CODES and code not in RECORD_CODES:
        return WIRE_DTYPES[code, big]
    return native_dtype(code, count).newbyteorder(">" if big else "<")


def item_size(code: int, count: int | np.dtype = 0) -> int:
    """The item size of a frame of ``code`` and ``count`` (as native_dtype takes them)."""
    if code in ITEMSIZE:
        return ITEMSIZE[code]
    if isinstance(count, np.dtype):
        return count.itemsize
    return _flex_size(code, count)


def dtype_count(dt: np.dtype) -> int | np.dtype:
    """The count field an ARRAY frame of (a supported) ``dt`` carries: a datetime64 or
    timedelta64's multiplier; an S or V's length in bytes, a U's in characters; for a
    record, the dtype itself (pack_header writes its descriptor and the descriptor's
    length); else 0."""
    if dt.char in TIME_BASE:
        return np.datetime_data(dt)[1]
    if dt.fields is not None:
        return dt
    if dt.char in FLEX_CODES:
        return dt.itemsize // 4 if dt.char == "U" else dt.itemsize
    return 0


def dtype_code(dt: np.dtype) -> int:
    """The wire code of a (supported) numpy dtype, whatever its byte order; 0 if none.
    A record gets CODE_RECORD whatever its fields: ``check_wire_dtype`` says whether
    the format can carry them."""
    if dt.subdtype is not None:
        return 0
    if dt.fields is not None:
        return CODE_RECORD if issubclass(dt.type, np.void) else 0
    if dt.char in FLEX_CODES and dt.type is np.dtype(dt.char).type:
        return FLEX_CODES[dt.char] if dt.itemsize else 0
    kind, size = dt.kind, dt.itemsize
    if kind == "b" and size == 1:
        return 1
    if kind in "iu" and size in (1, 2, 4, 8) and dt.type is np.dtype(dt.char).type:
        return {1: 2, 2: 4, 4: 6, 8: 8}[size] + (kind == "u")
    if kind == "f" and size in (2, 4, 8) and dt.char in "efd":
        return {2: 10, 4: 11, 8: 12}[size]
    if kind == "c" and size in (8, 16) and dt.char in "FD":
        return {8: 13, 16: 14}[size]
    if dt.char in TIME_BASE and dt.type is np.dtype(dt.char).type:
        unit = np.datetime_data(dt)[0]
        if unit in TIME_UNITS:  # not generic
            return TIME_BASE[dt.char] + TIME_UNITS.index(unit)
    return 0


def check_wire_dtype(dt: np.dtype) -> int:
    """The wire code of ``dt``, or UnsupportedDtypeError saying why it has none."""
    from ._common import check_dtype

    code = dtype_code(dt)
    if code and code not in FLEX_CHARS and code not in ITEMSIZE:  # a record
        check_dtype(dt)  # objects, overlapping fields, ...: the byte-order functions' word
        encode_descriptor(dt)  # the format's own limits
    if not code:
        check_dtype(dt)
        if dt.char in FLEX_CODES and not dt.itemsize:
            raise _refuse(dt, "zero-length items")
        raise UnsupportedDtypeError(f"wirearray cannot send dtype {dt!r}")
    if code in FLEX_CHARS and dt.itemsize > MAX_ITEMSIZE:
        raise _refuse(dt, f"item size over {MAX_ITEMSIZE}")
    return code


def frame_version(kind: int, code: int = 0) -> int:
    """The version a frame of ``kind`` (and, for ARRAY, dtype ``code``) carries: the
    first version that has both -- 1 for ARRAY, MESSAGE and END; 2 for ACK and ERROR;
    3 for an ARRAY of datetime64 or timedelta64; 4 for one of S, U, V or a record."""
    rule = KIND_RULES.get(kind)
    version = rule[4] if rule is not None else VERSION
    return max(version, CODE_VERSION.get(code, VERSION))


def header_size(ndim: int, name_len: int, desc_len: int = 0) -> int:
    """H for a header with ``ndim`` dimensions, a ``name_len``-byte name and a
    ``desc_len``-byte record descriptor."""
    return -(-(FIXED_HEADER + 8 * ndim + name_len + desc_len) // ALIGN) * ALIGN


def frame_tail(payload_len: int, checksum: bool) -> int:
    """Bytes after the payload: the CRC trailer (if any) plus zero padding to 64."""
    n = payload_len + (TRAILER if checksum else 0)
    return (TRAILER if checksum else 0) + (-n % ALIGN)


# ---- CRC32C (Castagnoli), pure Python ----

_POLY = 0x82F63B78


def _table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_T = _table()
_T_NP = np.array(_T, dtype=np.uint32)


def _crc_bytes(c: int, data) -> int:
    t = _T
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def _gf2_apply(mat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Apply a 32x32 GF(2) matrix (32 column vectors, uint32) to every element of v."""
    out = np.zeros_like(v)
    for b in range(32):
        out ^= mat[b] * ((v >> np.uint32(b)) & np.uint32(1))
    return out


def _zeros_operator(nbytes: int) -> np.ndarray:
    """The matrix that advances a raw CRC register over ``nbytes`` zero bytes."""
    # one zero byte: register r -> T[r & 0xFF] ^ (r >> 8), linear in r
    cols = np.array([1 << b for b in range(32)], dtype=np.uint32)
    one = _T_NP[cols & np.uint32(0xFF)] ^ (cols >> np.uint32(8))
    result = cols.copy()  # identity
    power = one
    while nbytes:
        if nbytes & 1:
            result = _gf2_apply(power, result)
        nbytes >>= 1
        if nbytes:
            power = _gf2_apply(power, power)
    return result


def crc32c(data, crc: int = 0) -> int:
    """CRC32C of ``data`` (any buffer), continuing ``crc`` (0 to start).

    ``crc32c(b, crc32c(a)) == crc32c(a + b)``.  Large buffers are split into lanes
    checksummed side by side with numpy and combined with GF(2) shift operators, so the
    pure-Python path stays usable (tens of MB/s) on big payloads.
    """
    mv = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    c = (crc ^ 0xFFFFFFFF) & 0xFFFFFFFF
    n = len(mv)
    if n < 1 << 14:
        return _crc_bytes(c, mv) ^ 0xFFFFFFFF
    lanes = 1 << max(6, min(13, (n.bit_length() - 1) // 2))
    m = n // lanes
    body = np.frombuffer(mv, dtype=np.uint8, count=lanes * m).reshape(lanes, m)
    cols = np.ascontiguousarray(body.T)  # row j = byte j of every lane
    states = np.zeros(lanes, dtype=np.uint32)
    for j in range(m):
        states = _T_NP[(states ^ cols[j]) & np.uint32(0xFF)] ^ (states >> np.uint32(8))
    # combine the lanes pairwise: raw(A || B) = shift(raw(A), |B|) ^ raw(B)
    span = m
    op = _zeros_operator(span)
    while states.size > 1:
        states = _gf2_apply(op, states[0::2]) ^ states[1::2]
        span *= 2
        op = _gf2_apply(op, op)  # operator for the doubled span
    total = int(states[0]) ^ int(
        _gf2_apply(_zeros_operator(lanes * m), np.array([c], np.uint32))[0]
    )
    total = _crc_bytes(total, mv[lanes * m :])
    return total ^ 0xFFFFFFFF


# ---- header pack / parse ----


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _not_empty(kind_name: str, carries_name: bool) -> str:
    """The message for a header of a kind without an array that carries more."""
    fields = "dtype, flags, shape" + ("" if carries_name else ", name")
    return f"{kind_name} frames carry no {fields} or payload"


_FIXED = struct.Struct(">4sBBBBBBHIQII")


def pack_header(
    kind: int,
    code: int,
    flags: int,
    shape: tuple[int, ...],
    payload_len: int,
    name: bytes = b"",
    count: int | np.dtype = 0,
    seq: int = 0,
) -> bytes:
    """Encode a header (with its CRC32C) for the given, already validated, fields; a
    record's ``count`` is its dtype, whose descriptor the header then carries."""
    ndim = len(shape)
    if ndim > MAX_NDIM or len(name) > MAX_NAME:
        raise ValueError("ndim or name too long for the wire format")
    desc = b""
    if isinstance(count, np.dtype):  # a record: its descriptor, and count its length
        desc = encode_descriptor(count)
        count = len(desc)
    h = header_size(ndim, len(name), len(desc))
    buf = bytearray(h)
    _FIXED.pack_into(
        buf, 0, MAGIC, frame_version(kind, code), kind, code, flags, ndim, len(name), h, count,
        payload_len, seq & 0xFFFFFFFF, 0,
    )  # fmt: skip
    struct.pack_into(f">{ndim}Q", buf, FIXED_HEADER, *shape)
    at = FIXED_HEADER + 8 * ndim
    buf[at : at + len(name)] = name
    buf[at + len(name) : at + len(name) + len(desc)] = desc
    struct.pack_into(">I", buf, CRC_OFFSET, crc32c(buf))
    return bytes(buf)


def header_length(head) -> int:
    """Validate the first 64 bytes of a frame and return its header length H.

    Raises:
        MalformedFrameError: bad magic, impossible ndim/name/H.
        UnsupportedVersionError: a version other than 1 to 4.
        MalformedDescriptorError: a record descriptor longer than MAX_DESCRIPTOR.
    """
    if len(head) < MIN_HEADER:
        raise ValueError("header_length needs the first 64 bytes of a frame")
    if bytes(head[0:4]) != MAGIC:
        raise MalformedFrameError(f"bad magic {bytes(head[0:4])!r} (expected {MAGIC!r})")
    if head[4] not in VERSIONS:
        raise UnsupportedVersionError(
            f"wire-format version {head[4]} (this reader speaks 1, 2, 3 and 4)"
        )
    ndim, name_len = head[8], head[9]
    if ndim > MAX_NDIM:
        raise MalformedFrameError(f"ndim {ndim} exceeds the format's maximum of {MAX_NDIM}")
    desc_len = descriptor_length(head)
    if desc_len > MAX_DESCRIPTOR:
        raise MalformedDescriptorError(
            f"record descriptor of {desc_len} bytes exceeds the format's maximum of "
            f"{MAX_DESCRIPTOR}"
        )
    h = (head[10] << 8) | head[11]
    if h != header_size(ndim, name_len, desc_len):
        raise MalformedFrameError(
            f"header length {h} does not match ndim {ndim} and name length {name_len}"
        )
    return h


def parse_header(buf) -> tuple:
    """Validate a complete header and return its fields.

    Returns ``(kind, code, flags, shape, payload_len, name, count, seq)``; for a
    record frame ``count`` is the record's native dtype, built from its descriptor.
    Checks the header CRC, every field's range, zero padding, a record's descriptor,
    and that an ARRAY's payload length is exactly prod(shape) * itemsize (exact
    integers: no overflow).

    Raises:
        MalformedFrameError, MalformedDescriptorError, UnsupportedVersionError.
    """
    h = header_length(buf)
    if len(buf) < h:
        raise ValueError("parse_header needs the whole header")
    (_, _, kind, code, flags, ndim, name_len, _, count, payload_len, seq, crc) = _FIXED.unpack_from(
        buf, 0
    )
    view = bytearray(buf[:h])
    view[CRC_OFFSET : CRC_OFFSET + 4] = b"\0\0\0\0"
    if crc32c(view) != crc:
        raise MalformedFrameError("header checksum mismatch (corrupted header)")
    name_at = FIXED_HEADER + 8 * ndim
    desc_len = descriptor_length(buf)
    end = name_at + name_len + desc_len
    if any(view[end:h]):
        raise MalformedFrameError("non-zero bytes in header padding")
    shape = struct.unpack_from(f">{ndim}Q", view, FIXED_HEADER)
    name = bytes(view[name_at : name_at + name_len])
    rule = KIND_RULES.get(kind)
    if rule is None or buf[4] < rule[4]:  # unknown, or not in this frame's version
        raise MalformedFrameError(f"unknown frame kind {kind}")
    kind_name, carries_array, count_zero, carries_name, _ = rule
    if carries_array:
        if code not in CODE_VERSION or buf[4] < CODE_VERSION[code]:  # or not in this version
            raise MalformedFrameError(f"unknown dtype code {code}")
        if flags & ~FLAGS_KNOWN:
            raise MalformedFrameError(f"unknown flag bits 0x{flags & ~FLAGS_KNOWN:02x}")
    elif code or flags or ndim or (name_len and not carries_name) or payload_len:
        raise MalformedFrameError(_not_empty(kind_name, carries_name))
    itemsize = ITEMSIZE.get(code, 0)
    desc = b""
    if code in TIME_CODES:  # count: the multiplier
        if not 1 <= count <= MAX_MULTIPLIER:
            raise MalformedFrameError(
                f"multiplier {count} of a {np.dtype(DTYPE_CHARS[code]).name} frame is not "
                f"1 to {MAX_MULTIPLIER}"
            )
    elif code in FLEX_CHARS:  # count: the length
        if not _param_ok(code, count):
            raise MalformedFrameError(
                f"length {count} of {_a(FLEX_CHARS[code])} frame is not 1 to "
                f"{MAX_ITEMSIZE // 4 if code == CODE_UNICODE else MAX_ITEMSIZE}"
            )
        itemsize = _flex_size(code, count)
    elif code == CODE_RECORD:  # count: the descriptor's length, already bounded
        desc = bytes(view[name_at + name_len : end])
        status, at, itemsize = check_descriptor(desc)
        if status:
            raise descriptor_error(status, at)
    elif count_zero and count:
        raise MalformedFrameError(f"count must be 0 in {_a(kind_name)} frame")
    if carries_array:
        expected = itemsize
        for n in shape:
            expected *= n
        if expected != payload_len:
            raise MalformedFrameError(
                f"payload length {payload_len} != prod(shape {shape}) * itemsize {itemsize}"
            )
    if desc:
        return kind, code, flags, shape, payload_len, name, build_record(desc), seq
    return kind, code, flags, shape, payload_len, name, count, seq
