"""wirearray wire format (versions 1 to 3): constants and the pure-Python header codec.

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

Every frame length is a multiple of 64, so frames laid end to end in one buffer keep
every payload 64-byte aligned.  Nothing here allocates from a peer's numbers: shape and
lengths are checked with exact integer arithmetic against the format's own bounds
before a caller sizes anything with them.
"""

from __future__ import annotations

import struct

import numpy as np

from .exceptions import MalformedFrameError, UnsupportedVersionError

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
VERSIONS = (1, 2, 3)

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


def native_dtype(code: int, count: int = 0) -> np.dtype:
    """The native dtype of an ARRAY frame's dtype ``code`` and ``count`` field (a time
    code's multiplier; 0 for the others), as parse_header accepted them."""
    unit = TIME_CODES.get(code)
    if unit is None:
        return DTYPES[code]
    return np.dtype(f"{unit[0]}8[{count}{unit[1]}]")


def wire_dtype(code: int, count: int, big: bool) -> np.dtype:
    """The payload's dtype as it travels: native_dtype in the frame's byte order."""
    if code not in TIME_CODES:
        return WIRE_DTYPES[code, big]
    return native_dtype(code, count).newbyteorder(">" if big else "<")


def dtype_count(dt: np.dtype) -> int:
    """The count field an ARRAY frame of (a supported) ``dt`` carries: a datetime64 or
    timedelta64's multiplier, else 0."""
    if dt.char not in TIME_BASE:
        return 0
    return np.datetime_data(dt)[1]


def dtype_code(dt: np.dtype) -> int:
    """The wire code of a (supported) numpy dtype, whatever its byte order; 0 if none."""
    if dt.fields is not None or dt.subdtype is not None:
        return 0
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


def frame_version(kind: int, code: int = 0) -> int:
    """The version a frame of ``kind`` (and, for ARRAY, dtype ``code``) carries: the
    first version that has both -- 1 for ARRAY, MESSAGE and END; 2 for ACK and ERROR;
    3 for an ARRAY of datetime64 or timedelta64."""
    rule = KIND_RULES.get(kind)
    version = rule[4] if rule is not None else VERSION
    return max(version, CODE_VERSION.get(code, VERSION))


def header_size(ndim: int, name_len: int) -> int:
    """H for a header with ``ndim`` dimensions and a ``name_len``-byte name."""
    return -(-(FIXED_HEADER + 8 * ndim + name_len) // ALIGN) * ALIGN


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
    count: int = 0,
    seq: int = 0,
) -> bytes:
    """Encode a header (with its CRC32C) for the given, already validated, fields."""
    ndim = len(shape)
    if ndim > MAX_NDIM or len(name) > MAX_NAME:
        raise ValueError("ndim or name too long for the wire format")
    h = header_size(ndim, len(name))
    buf = bytearray(h)
    _FIXED.pack_into(
        buf, 0, MAGIC, frame_version(kind, code), kind, code, flags, ndim, len(name), h, count,
        payload_len, seq & 0xFFFFFFFF, 0,
    )  # fmt: skip
    struct.pack_into(f">{ndim}Q", buf, FIXED_HEADER, *shape)
    buf[FIXED_HEADER + 8 * ndim : FIXED_HEADER + 8 * ndim + len(name)] = name
    struct.pack_into(">I", buf, CRC_OFFSET, crc32c(buf))
    return bytes(buf)


def header_length(head) -> int:
    """Validate the first 64 bytes of a frame and return its header length H.

    Raises:
        MalformedFrameError: bad magic, impossible ndim/name/H.
        UnsupportedVersionError: a version other than 1, 2 or 3.
    """
    if len(head) < MIN_HEADER:
        raise ValueError("header_length needs the first 64 bytes of a frame")
    if bytes(head[0:4]) != MAGIC:
        raise MalformedFrameError(f"bad magic {bytes(head[0:4])!r} (expected {MAGIC!r})")
    if head[4] not in VERSIONS:
        raise UnsupportedVersionError(
            f"wire-format version {head[4]} (this reader speaks 1, 2 and 3)"
        )
    ndim, name_len = head[8], head[9]
    if ndim > MAX_NDIM:
        raise MalformedFrameError(f"ndim {ndim} exceeds the format's maximum of {MAX_NDIM}")
    h = (head[10] << 8) | head[11]
    if h != header_size(ndim, name_len):
        raise MalformedFrameError(
            f"header length {h} does not match ndim {ndim} and name length {name_len}"
        )
    return h


def parse_header(buf) -> tuple:
    """Validate a complete header and return its fields.

    Returns ``(kind, code, flags, shape, payload_len, name, count, seq)``.  Checks the
    header CRC, every field's range, zero padding, and that an ARRAY's payload length
    is exactly prod(shape) * itemsize (exact integers: no overflow).

    Raises:
        MalformedFrameError, UnsupportedVersionError.
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
    end = FIXED_HEADER + 8 * ndim + name_len
    if any(view[end:h]):
        raise MalformedFrameError("non-zero bytes in header padding")
    shape = struct.unpack_from(f">{ndim}Q", view, FIXED_HEADER)
    name = bytes(view[FIXED_HEADER + 8 * ndim : end])
    rule = KIND_RULES.get(kind)
    if rule is None or buf[4] < rule[4]:  # unknown, or not in this frame's version
        raise MalformedFrameError(f"unknown frame kind {kind}")
    kind_name, carries_array, count_zero, carries_name, _ = rule
    if carries_array:
        if code not in ITEMSIZE or buf[4] < CODE_VERSION[code]:  # or not in this version
            raise MalformedFrameError(f"unknown dtype code {code}")
        if flags & ~FLAGS_KNOWN:
            raise MalformedFrameError(f"unknown flag bits 0x{flags & ~FLAGS_KNOWN:02x}")
    elif code or flags or ndim or (name_len and not carries_name) or payload_len:
        raise MalformedFrameError(_not_empty(kind_name, carries_name))
    if code in TIME_CODES:  # count: the multiplier
        if not 1 <= count <= MAX_MULTIPLIER:
            raise MalformedFrameError(
                f"multiplier {count} of a {np.dtype(DTYPE_CHARS[code]).name} frame is not "
                f"1 to {MAX_MULTIPLIER}"
            )
    elif count_zero and count:
        raise MalformedFrameError(f"count must be 0 in {_a(kind_name)} frame")
    if carries_array:
        expected = ITEMSIZE[code]
        for n in shape:
            expected *= n
        if expected != payload_len:
            raise MalformedFrameError(
                f"payload length {payload_len} != prod(shape {shape}) * itemsize {ITEMSIZE[code]}"
            )
    return kind, code, flags, shape, payload_len, name, count, seq
