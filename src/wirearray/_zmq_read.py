"""Reading one wirearray.zmq message: its parts parsed and checked, landed as arrays.

The reader pulls the parts of one message from a blocking socket (``_Reader``) and
checks each against the mapping (docs/FORMAT.md section 11), the limits and the schema
before anything is allocated for it; payloads land straight in the destination
(``recv_into``) or are converted from zmq's buffer into it in one pass -- element by
element for an ``out=`` not contiguous in the frame's order (``_scatter.py``), with no
copy of the payload.  Whoever calls
``_read_message`` discards the rest of the message when it raises (``_zmq_io._recv``),
so a malformed message costs that message only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import zmq

from . import _format as F
from ._destination import convert_records
from ._limits import check_array, fit_out
from ._scatter import Scatter
from ._zmq_message import (
    _HOST_BIG,
    ORIGIN_MAGIC,
    _mem_is_big,
    _parse_origin,
    _payload_parts,
)
from .codec import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_ARRAYS, DEFAULT_MAX_NDIM, Schema
from .exceptions import (
    BufferMismatchError,
    ChecksumError,
    FrameTooLargeError,
    MalformedFrameError,
    SchemaMismatchError,
    UsageError,
)

_DISCARD = bytearray(0)
# plain ints: pyzmq's constants are enum.IntFlag members, whose | and & run Python code
_RCVMORE = int(zmq.RCVMORE)


@dataclass(frozen=True, slots=True)
class _Limits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_ndim: int = DEFAULT_MAX_NDIM
    max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 0 or not 0 <= self.max_ndim <= F.MAX_NDIM:
            raise UsageError("limits must be >= 0 (and max_ndim <= 64)")
        if self.max_message_arrays < 0:
            raise UsageError("max_message_arrays must be >= 0")


_LIMITS: dict[tuple[int, int, int], _Limits] = {}


def _limits(max_frame_bytes: int, max_ndim: int, max_message_arrays: int) -> _Limits:
    """The (validated) _Limits of these values, made once: the stateless receives
    take them per call."""
    key = (max_frame_bytes, max_ndim, max_message_arrays)
    lim = _LIMITS.get(key)
    if lim is None:
        lim = _Limits(*key)
        if len(_LIMITS) >= 64:
            _LIMITS.clear()
        _LIMITS[key] = lim
    return lim


class _Incoming:
    """What is known of the message being read (the Receiver's bookkeeping uses it
    also when the message is refused): its envelope and origin."""

    __slots__ = ("envelope", "origin", "seq")

    def __init__(self) -> None:
        self.envelope: list[bytes] = []
        self.origin: int | None = None
        self.seq = 0


class _Reader:
    """Reads the parts of one zmq message from a (blocking) socket, one at a time."""

    __slots__ = ("more", "sock")

    def __init__(self, sock: zmq.Socket):
        self.sock = sock
        self.more = False

    def first(self, flags: int) -> Any:
        f = self.sock.recv(flags, copy=False)
        self.more = f.more
        return f

    def frame(self, what: str) -> Any:
        if not self.more:
            raise MalformedFrameError(f"the message ended where {what} belongs")
        f = self.sock.recv(copy=False)
        self.more = f.more
        return f

    def into(self, buf: Any, want: int, what: str) -> int:
        """recv_into ``buf`` (``want`` bytes long); the part must be exactly that long."""
        if not self.more:
            raise MalformedFrameError(f"the message ended where {what} belongs")
        n = self.sock.recv_into(buf)
        self.more = bool(self.sock.getsockopt(_RCVMORE))
        if n != want:
            raise MalformedFrameError(f"{what}: a part of {n} bytes (expected {want})")
        return n

    def end(self) -> None:
        if self.more:
            raise MalformedFrameError("extra parts after the frame(s) the message announced")

    def drain(self) -> None:
        """Discard what is left of the message, so that the next read starts a new one."""
        sock = self.sock
        while self.more:
            sock.recv_into(_DISCARD)
            self.more = bool(sock.getsockopt(_RCVMORE))


class _MessageState:
    """Names and payload bytes of the message being read (FORMAT.md section 2 rules)."""

    __slots__ = ("names", "nbytes")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.nbytes = 0


#: Most parsed array headers kept (``_HEADS``).
MAX_HEADS = 256
#: Array headers parsed and checked, by (core, limits, the header's bytes).  Every zmq
#: message is a stream of its own (frame sequence numbers from 0), so the header part
#: of a stream of arrays of one kind repeats byte for byte, and what it says and
#: whether it passes the limits depend on those bytes alone.
_HEADS: dict[tuple[Any, int, int, bytes], tuple[Any, ...]] = {}


#: Parts up to this size are looked up in ``_HEADS`` as they are first (a header part
#: of a split frame, whatever its dimensions and name, is at most this long); only
#: when that misses is the header's length read from the part.
HEADER_PART_KEY = 4096


def _array_head(impl: Any, hdr: memoryview, seq: int, limits: _Limits, single: bool) -> tuple:
    """An array frame's header parsed, checked against the limits, and what follows
    from it: (code, shape, length, count, fseq, name, checksum, tail_len, wire_big,
    wire_dt, native_dt, order, itemsize, payload part sizes, the one-part route)."""
    kind, code, flags, shape, length, name, count, fseq = impl.parse_header(hdr)
    if kind != F.KIND_ARRAY:
        if kind == F.KIND_MESSAGE and single:
            raise SchemaMismatchError("expected a single array, received a message (recv_many)")
        raise MalformedFrameError(f"frame kind {kind} where an array frame belongs")
    if fseq != seq:
        raise MalformedFrameError(f"frame sequence number {fseq}, expected {seq}")
    text = check_array(code, shape, length, name, limits.max_ndim, limits.max_frame_bytes, count)
    checksum = bool(flags & F.FLAG_CHECKSUM)
    wire_big = bool(flags & F.FLAG_BIG_ENDIAN)
    wire_dt = F.wire_dtype(code, count, wire_big)
    order: Literal["C", "F"] = "F" if flags & F.FLAG_FORTRAN else "C"
    itemsize = wire_dt.itemsize
    native_dt = wire_dt.newbyteorder("=")
    pieces = _payload_parts(length)
    # Into a destination in this host's byte order (native_dt), a payload of one part
    # either lands as it travels (libzmq's own copy, recv_into) or is converted from
    # zmq's buffer into it in one pass: ``swap_unit`` is the size of the units swapped
    # (0: none), and what follows from it is worked out once per kind of header.
    # Records convert field by field, after landing (``_read_array``).
    swap_unit = 0
    if code != F.CODE_RECORD and itemsize > 1 and wire_big != _HOST_BIG:
        if code not in (F.CODE_BYTES, F.CODE_RAW):  # bytes travel as they are
            kind = wire_dt.kind
            swap_unit = 4 if code == F.CODE_UNICODE else itemsize // 2 if kind == "c" else itemsize
    fast = code != F.CODE_RECORD and len(pieces) == 1
    return (
        code, shape, length, count, fseq, text, checksum, F.frame_tail(length, checksum),
        wire_big, wire_dt, native_dt, order, itemsize, pieces,
        # (fast, byte view needed, swap unit's dtype) for the one-part routes
        (fast, native_dt.char in F.TIME_BASE, np.dtype(f"u{swap_unit}") if swap_unit else None),
    )  # fmt: skip


def _read_array(
    reader: _Reader,
    impl: Any,
    first: Any,
    seq: int,
    out: Any,
    schema: Schema | None,
    limits: _Limits,
    copy: bool,
    msg: _MessageState | None,
) -> tuple[str | None, np.ndarray]:
    """One array frame whose first part is ``first``: validate its header against the
    limits and the schema, then land the payload (whole, or in its own parts).  With
    ``out``, what is delivered is ``out`` itself: an ndarray subclass is filled
    through a plain view of its memory (``_limits.fit_out``), as the stream decoder
    fills it."""
    text, a = _land_array(reader, impl, first, seq, out, schema, limits, copy, msg)
    return text, a if out is None else out


def _land_array(
    reader: _Reader,
    impl: Any,
    first: Any,
    seq: int,
    out: Any,
    schema: Schema | None,
    limits: _Limits,
    copy: bool,
    msg: _MessageState | None,
) -> tuple[str | None, np.ndarray]:
    """_read_array's work: the array the payload landed in (a view of ``out``'s
    memory when given)."""
    mv = memoryview(first)
    size = len(mv)
    parsed = None
    if size <= HEADER_PART_KEY:
        # a part of a split frame is exactly a header: its bytes are the key as they are
        h = size
        parsed = _HEADS.get((impl, limits.max_ndim, limits.max_frame_bytes, bytes(mv)))
    if parsed is None:
        if size < F.MIN_HEADER:
            raise MalformedFrameError(f"a frame part of {size} bytes (a header has at least 64)")
        head = mv[: F.MIN_HEADER]
        if head[:4] == ORIGIN_MAGIC:
            raise MalformedFrameError("a second origin part where a frame belongs")
        h = impl.header_length(head)
        if size < h:
            raise MalformedFrameError(f"a frame part of {size} bytes; its header alone has {h}")
        key = (impl, limits.max_ndim, limits.max_frame_bytes, mv[:h].tobytes())
        parsed = _HEADS.get(key)
        if parsed is None:
            parsed = _array_head(impl, mv[:h], seq, limits, msg is None)
            if len(_HEADS) >= MAX_HEADS:
                _HEADS.clear()
            _HEADS[key] = parsed
    (code, shape, length, count, fseq, text, checksum, tail_len, wire_big, wire_dt,
     native_dt, order, itemsize, pieces, route) = parsed  # fmt: skip
    if fseq != seq:
        raise MalformedFrameError(f"frame sequence number {fseq}, expected {seq}")
    if msg is not None:
        if text is None:
            raise MalformedFrameError("an array inside a message has no name")
        if text in msg.names:
            raise MalformedFrameError(f"array name {text!r} repeated in a message")
        if msg.nbytes + length > limits.max_frame_bytes:
            raise FrameTooLargeError(
                f"message payloads exceed max_frame_bytes={limits.max_frame_bytes}"
            )
        msg.names.add(text)
        msg.nbytes += length
    if schema is not None:
        why = schema.mismatch(code, shape, count)
        if why:
            raise SchemaMismatchError(f"array {text!r}: got {why}" if text else f"array: got {why}")
    total = h + length + tail_len
    whole = size == total
    if not whole and not (size == h and total > h):
        raise MalformedFrameError(
            f"a frame part of {size} bytes: neither the {h}-byte header nor the whole "
            f"{total}-byte frame"
        )
    if route[0] and not whole and (copy or out is not None):
        dest = _one_part(
            reader, impl, out, shape, native_dt, order, length, checksum, tail_len, route
        )
        if dest is not None:
            return text, dest
    record_dest = None  # a record's destination when it lands in wire order first
    if code == F.CODE_RECORD and (out is not None or wire_big != _HOST_BIG):
        # fields of several sizes: the payload lands as it travels, and is converted
        # field by field (the swap plan) into the destination once checked
        record_dest = fit_out(out, wire_dt, shape) if out is not None else None
        if record_dest is None:
            try:
                record_dest = np.empty(shape, dtype=native_dt, order=order)
            except (ValueError, MemoryError) as exc:
                raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc
        out, copy, native_dt = None, True, wire_dt
    if whole:
        pieces = [length]
    crc = 0
    # A read-only view of zmq's buffer: no conversion, no out=, one piece.
    if out is None and not copy and len(pieces) <= 1 and (itemsize == 1 or wire_big == _HOST_BIG):
        if whole:
            src = mv[h : h + length]
            tail = mv[h + length :]
        else:
            src = memoryview(reader.frame("the payload")) if length else mv[:0]
            if len(src) != length:
                raise MalformedFrameError(
                    f"the payload: a part of {len(src)} bytes (expected {length})"
                )
            tail = _read_tail(reader, tail_len)
        if checksum:
            crc = impl.crc32c(src)
        _check_tail(tail, checksum, crc)
        # one constructor call (frombuffer + reshape cost twice as much per message);
        # zmq's buffer is writable, the view is not
        view = np.ndarray(shape, native_dt, src, 0, None, order)
        view.flags.writeable = False
        return text, view
    if out is not None:
        dt = out.dtype if type(out) is np.ndarray else None
        if (
            dt is not None
            and dt.kind == wire_dt.kind
            and dt.itemsize == itemsize
            and (dt.char not in F.TIME_BASE or dt.newbyteorder("=") == native_dt)  # unit too
            and out.shape == shape
            and out.flags.writeable
            and (out.flags.c_contiguous if order == "C" else out.flags.f_contiguous)
        ):
            dest = out  # the common case, without fit_out's dtype arithmetic
        else:
            dest = fit_out(out, wire_dt, shape)
    else:
        try:
            dest = np.empty(shape, dtype=native_dt, order=order)
        except (ValueError, MemoryError) as exc:
            raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc
    if not (dest.flags.c_contiguous if order == "C" else dest.flags.f_contiguous):
        return text, _scatter(reader, impl, dest, order, wire_big, mv, h, length, whole, checksum)
    swap = (
        itemsize > 1
        and _mem_is_big(dest.dtype) != wire_big
        and code not in (F.CODE_RECORD, F.CODE_BYTES, F.CODE_RAW)  # no swap: as it travels
    )
    if not whole and not swap and len(pieces) == 1 and not checksum:
        # libzmq copies the payload part into the destination itself (through a byte
        # view: datetime64/timedelta64 arrays export no buffer of their own)
        reader.into(dest.reshape(-1, order=order).view(np.uint8), length, "the payload")
        if tail_len:
            _check_tail(_read_tail(reader, tail_len), False, 0)
        return text, _record_done(impl, dest, record_dest)
    dest_bytes = dest.reshape(-1, order=order).view(np.uint8)
    unit = 4 if code == F.CODE_UNICODE else itemsize // 2 if wire_dt.kind == "c" else itemsize
    unit = unit if swap else 0
    units = dest_bytes.view(f"u{unit}") if unit else None
    if whole:
        src = mv[h : h + length]
        if checksum:
            crc = impl.crc32c(src)
        _land(impl, src, dest_bytes, units, unit, 0)
        _check_tail(mv[h + length :], checksum, crc)
        return text, _record_done(impl, dest, record_dest)
    offset = 0
    for piece in pieces:
        window = dest_bytes[offset : offset + piece]
        if unit:
            # converted in one pass from zmq's buffer into the destination
            src = memoryview(reader.frame("the payload"))
            if len(src) != piece:
                raise MalformedFrameError(
                    f"the payload: a part of {len(src)} bytes (expected {piece})"
                )
            if checksum:
                crc = impl.crc32c(src, crc)
            _land(impl, src, dest_bytes, units, unit, offset)
        else:
            # no conversion: libzmq copies the part into the destination itself
            reader.into(window, piece, "the payload")
            if checksum:
                crc = impl.crc32c(window, crc)
        offset += piece
    _check_tail(_read_tail(reader, tail_len), checksum, crc)
    return text, _record_done(impl, dest, record_dest)


def _one_part(
    reader: _Reader,
    impl: Any,
    out: Any,
    shape: tuple[int, ...],
    native_dt: np.dtype,
    order: Literal["C", "F"],
    length: int,
    checksum: bool,
    tail_len: int,
    route: tuple[bool, bool, np.dtype | None],
) -> np.ndarray | None:
    """The payload of one part (not a record) landed in ``out`` -- when it is in this
    host's byte order and contiguous in the frame's order -- or in a new array: by
    libzmq's own copy when it travels in this host's order (``recv_into``), else
    converted from zmq's buffer in one pass (measured: one pass beats landing the part
    and swapping it in place, 36 against 53 us per MiB).  None: ``out`` needs the
    general route (``_read_array``), nothing read."""
    if out is None:
        try:
            dest = np.empty(shape, dtype=native_dt, order=order)
        except (ValueError, MemoryError) as exc:
            raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc
    elif type(out) is np.ndarray:
        dt = out.dtype
        fl = out.flags
        if not (
            (dt is native_dt or dt == native_dt)
            and out.shape == shape
            and fl.writeable
            and (fl.c_contiguous if order == "C" else fl.f_contiguous)
        ):
            return None
        dest = out
    else:
        return None
    _fast, byte_view, unit_dt = route
    if unit_dt is None:
        # datetime64/timedelta64 arrays export no buffer of their own, and the CRC is
        # over bytes: a byte view for those
        buf: Any  # an ndarray: pyzmq's stubs know it only as a buffer
        if byte_view or checksum:
            buf = dest.reshape(-1, order=order).view(np.uint8)
        else:
            buf = dest
        # reader.into(), inlined: per message
        if not reader.more:
            raise MalformedFrameError("the message ended where the payload belongs")
        sock = reader.sock
        n = sock.recv_into(buf)
        reader.more = bool(sock.getsockopt(_RCVMORE))
        if n != length:
            raise MalformedFrameError(f"the payload: a part of {n} bytes (expected {length})")
        crc = impl.crc32c(buf) if checksum else 0
    else:
        src = memoryview(reader.frame("the payload"))
        if len(src) != length:
            raise MalformedFrameError(
                f"the payload: a part of {len(src)} bytes (expected {length})"
            )
        crc = impl.crc32c(src) if checksum else 0
        impl.byteswap(
            np.frombuffer(src, dtype=unit_dt), out=dest.reshape(-1, order=order).view(unit_dt)
        )
    if tail_len:
        _check_tail(_read_tail(reader, tail_len), checksum, crc)
    return dest


def _record_done(impl: Any, landed: np.ndarray, dest: np.ndarray | None) -> np.ndarray:
    """A record payload landed in wire order, converted into its destination (or as
    it is when it needs no conversion)."""
    if dest is None:
        return landed
    return convert_records(impl, landed, dest)


def _scatter(
    reader: _Reader,
    impl: Any,
    dest: np.ndarray,
    order: str,
    wire_big: bool,
    mv: memoryview,
    h: int,
    length: int,
    whole: bool,
    checksum: bool,
) -> np.ndarray:
    """The payload written into ``dest``, whose memory is not in the frame's order
    (``_scatter.py``): from the frame part itself, or part by part from the payload's
    parts as zmq delivers them -- never through a copy of the whole payload."""
    scatter = Scatter(dest, order == "F", wire_big, impl)
    crc = 0
    if whole:
        src = mv[h : h + length]
        if checksum:
            crc = impl.crc32c(src)
        scatter.land(src)
        _check_tail(mv[h + length :], checksum, crc)
        return dest
    for piece in _payload_parts(length):
        src = memoryview(reader.frame("the payload"))
        if len(src) != piece:
            raise MalformedFrameError(f"the payload: a part of {len(src)} bytes (expected {piece})")
        if checksum:
            crc = impl.crc32c(src, crc)
        scatter.land(src)
    _check_tail(_read_tail(reader, F.frame_tail(length, checksum)), checksum, crc)
    return dest


def _land(impl: Any, src: Any, dest_bytes: np.ndarray, units: Any, unit: int, offset: int):
    n = len(src)
    if not n:
        return
    if unit:
        view = np.frombuffer(src, dtype=units.dtype)
        impl.byteswap(view, out=units[offset // unit : (offset + n) // unit])
    else:
        dest_bytes[offset : offset + n] = np.frombuffer(src, dtype=np.uint8)


def _read_tail(reader: _Reader, tail_len: int) -> memoryview:
    if not tail_len:
        return memoryview(b"")
    tail = memoryview(reader.frame("the frame's tail"))
    if len(tail) != tail_len:
        raise MalformedFrameError(f"a tail part of {len(tail)} bytes (expected {tail_len})")
    return tail


def _check_tail(tail: memoryview, checksum: bool, crc: int) -> None:
    pad_from = 0
    if checksum:
        sent = int.from_bytes(tail[:4], "big")
        if sent != crc:
            raise ChecksumError(
                f"payload checksum mismatch (CRC32C 0x{crc:08x}, trailer 0x{sent:08x})"
            )
        pad_from = 4
    if any(tail[pad_from:]):
        raise MalformedFrameError("non-zero bytes in frame padding")


def _coerce_schema(schema: Any, many: bool) -> Any:
    if many:
        if schema is None:
            return None
        if not isinstance(schema, Mapping):
            raise UsageError("recv_many(schema=...) is a dict of schemas by name")
        return {str(k): Schema.coerce(v) for k, v in schema.items()}
    if isinstance(schema, Mapping):
        raise UsageError("a dict of schemas describes a message: use recv_many()")
    return Schema.coerce(schema)


def _read_message(
    reader: _Reader,
    impl: Any,
    flags: int,
    n_env: int,
    out: Any,
    schema: Any,
    limits: _Limits,
    copy: bool,
    many: bool | None,
    info: _Incoming,
) -> Any:
    """Read one whole message: envelope, origin part, frame(s).  Fills ``info`` as it
    goes.  Returns the array (``many`` False), the dict of a message (True), or either
    as a dict, a single array under its name (None)."""
    if n_env:
        info.envelope.append(reader.first(flags).bytes)
        for _ in range(n_env - 1):
            info.envelope.append(reader.frame("an envelope part").bytes)
        part = reader.frame("the origin part")
    else:
        part = reader.first(flags)
    info.origin, info.seq = _parse_origin(impl, memoryview(part))
    if not part.more:
        raise MalformedFrameError("the message ended where a frame belongs")
    first: Any = reader.sock.recv(0, False)  # reader.frame(), inlined: per message
    reader.more = first.more
    if many is None:
        head = memoryview(first)[:6]
        many = len(head) == 6 and head[5] == F.KIND_MESSAGE
        if not many:
            name, a = _read_array(reader, impl, first, 0, None, None, limits, copy, None)
            reader.end()
            return {name: a}
    if not many:
        # The whole-frame fast path: one compiled call validates, converts and checks.
        small = getattr(impl, "decode_small", None)
        if small is not None and schema is None and copy and not reader.more:
            r = small(first, 0, limits.max_frame_bytes, limits.max_ndim, False, out)
            if r is not None and r[1] == len(first):
                return r[0]
        _name, a = _read_array(reader, impl, first, 0, out, schema, limits, copy, None)
        if reader.more:
            reader.end()
        return a
    mv = memoryview(first)
    if len(mv) < F.MIN_HEADER:
        raise MalformedFrameError(f"a frame part of {len(mv)} bytes (a header has at least 64)")
    h = impl.header_length(mv[: F.MIN_HEADER])
    if len(mv) < h:
        raise MalformedFrameError(f"a frame part of {len(mv)} bytes; its header alone has {h}")
    kind, _c, _f, _s, _l, _n, count, fseq = impl.parse_header(mv[:h])
    if kind != F.KIND_MESSAGE:
        if kind == F.KIND_ARRAY:
            raise SchemaMismatchError("expected a message, received a single array (recv_array)")
        raise MalformedFrameError(f"frame kind {kind} where a message header belongs")
    if len(mv) != h:
        raise MalformedFrameError(f"a message header part of {len(mv)} bytes (expected {h})")
    if fseq != 0:
        raise MalformedFrameError(f"frame sequence number {fseq}, expected 0")
    if count > limits.max_message_arrays:
        raise FrameTooLargeError(
            f"message of {count} arrays exceeds max_message_arrays={limits.max_message_arrays}"
        )
    if out is not None and not isinstance(out, Mapping):
        raise BufferMismatchError("recv_many(out=...) is a dict of arrays by name")
    outs = out or {}
    state = _MessageState()
    arrays: dict[str, np.ndarray] = {}
    for i in range(1, count + 1):
        part = reader.frame(f"array {i} of {count}")
        # out= and the schema go by name, which only the header says
        name = _peek_name(impl, part)
        sch = None
        if schema is not None:
            if name not in schema:
                raise SchemaMismatchError(f"unexpected array {name!r} in the message")
            sch = schema[name]
        text, a = _read_array(reader, impl, part, i, outs.get(name), sch, limits, copy, state)
        arrays[str(text)] = a  # a message's arrays all have names (checked)
    reader.end()
    if schema is not None:
        missing = set(schema) - set(arrays)
        if missing:
            raise SchemaMismatchError(f"message lacks arrays {sorted(missing)}")
    return arrays


def _peek_name(impl: Any, part: Any) -> str | None:
    """The name in a frame header (validated: header length, CRC), or None."""
    mv = memoryview(part)
    if len(mv) < F.MIN_HEADER:
        return None
    h = impl.header_length(mv[: F.MIN_HEADER])
    if len(mv) < h:
        return None
    name = impl.parse_header(mv[:h])[5]
    try:
        return name.decode("utf-8") if name else None
    except UnicodeDecodeError:
        return None
