"""One wirearray.zmq message: the wire mapping, and a message's parts built from arrays.

The mapping is docs/FORMAT.md section 11 ("Over ZeroMQ"): envelope parts, the origin
part (a 32-byte header of its own, checked first), then frame parts whose concatenation
is exactly a FORMAT.md frame -- whole in one part for a payload under
WHOLE_FRAME_BYTES, else header, payload (pieces of PIECE_BYTES from SPLIT_BYTES) and
tail.  This module holds its constants, packs and parses the origin part, derives the
socket limits from it, and builds a message's parts; both directions follow its part
sizes (``_payload_parts`` is the sender's rule for the reader).  It never sends or
receives: ``_zmq_io`` moves messages, ``_zmq_read`` parses received frame parts.  Why
the mapping is what it is: the header of ``wirearray.zmq``.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import zmq

from . import _format as F
from ._common import array_to_send, mem_is_big, message_array
from ._encoder import BOOL_CODE, array_code, byteorder_is_big, name_bytes, record_to_wire
from ._zmq_staging import _StagingPool
from .codec import DEFAULT_MAX_FRAME_BYTES
from .exceptions import (
    MalformedFrameError,
    UnsupportedVersionError,
    UsageError,
)

#: First bytes of the origin part ("\x89WAZ": the frame magic with Z for ZeroMQ).
ORIGIN_MAGIC = b"\x89WAZ"
#: Version of the origin part's layout.
ORIGIN_VERSION = 1
#: Size of the origin part.
ORIGIN_BYTES = 32
#: Origin flag bit 0: the origin id and sequence number are meaningful.
ORIGIN_SEQUENCED = 0x01
#: Frames with payloads under this size travel whole, in one part (pyzmq copies parts
#: under zmq.COPY_THRESHOLD, 64 KiB, anyway); larger payloads go in parts of their own.
WHOLE_FRAME_BYTES = 64 << 10
#: Payload parts of this size and more are handed to libzmq without a copy (from the
#: array, or from a staging buffer: ``_zmq_staging`` says when it is free again);
#: smaller ones travel whole, copied.  A copy is cheaper than a zero-copy send only
#: while zmq queues almost nothing: send+receive of 64 KiB over inproc took 26 us
#: copied against 38 us without a copy one message at a time, but 93 against 32 us
#: with 500 messages queued (each copy lands in fresh memory: page faults), and 201
#: against 61 us at 256 KiB.  Without a copy there is no such cliff
#: (bench/zmq_overhead.py measures the per-message costs).
ZERO_COPY_BYTES = WHOLE_FRAME_BYTES
#: Payloads of this size and more are split into parts of PIECE_BYTES (libzmq fails on
#: parts of 2 GiB and more); smaller ones travel in one part.
SPLIT_BYTES = 1 << 31
PIECE_BYTES = 1 << 30

_ORIGIN = struct.Struct(">4sBBHQQII")  # magic, version, flags, 0, origin, seq, 0, crc
_HOST_BIG = sys.byteorder == "big"
_ZEROS = bytes(F.ALIGN)
_ZERO4 = bytes(4)

#: Envelope parts: a ROUTER peer's identity, a PUB topic (bytes each).
Envelope = Sequence[bytes]
# ---- the origin part ----


def _pack_origin(impl: Any, origin: int, seq: int) -> bytes:
    flags = ORIGIN_SEQUENCED if origin else 0
    buf = bytearray(_ORIGIN.pack(ORIGIN_MAGIC, ORIGIN_VERSION, flags, 0, origin, seq, 0, 0))
    struct.pack_into(">I", buf, F.CRC_OFFSET, impl.crc32c(buf))
    return bytes(buf)


def _parse_origin(impl: Any, mv: memoryview) -> tuple[int, int]:
    """(origin, seq) of an origin part; origin 0 for an unsequenced message.

    Raises:
        MalformedFrameError, UnsupportedVersionError: not a valid origin part.
    """
    if len(mv) == ORIGIN_BYTES:
        magic, version, flags, zero16, origin, seq, zero32, crc = _ORIGIN.unpack(mv)
        if (
            magic == ORIGIN_MAGIC
            and version == ORIGIN_VERSION
            and not zero16
            and not zero32
            and impl.crc32c(_ZERO4, impl.crc32c(mv[: F.CRC_OFFSET])) == crc
            and ((flags == ORIGIN_SEQUENCED and origin) or (flags == 0 and not origin and not seq))
        ):
            return origin, seq
    _origin_error(impl, mv)
    raise AssertionError("unreachable")  # pragma: no cover


def _origin_error(impl: Any, mv: memoryview) -> None:
    """Raise the error that says what is wrong with an origin part."""
    n = len(mv)
    head = bytes(mv[:4])
    if head != ORIGIN_MAGIC:
        if head == F.MAGIC:
            raise MalformedFrameError(
                "a frame where the origin part belongs: the sender is not wirearray.zmq, "
                "or the envelope count is wrong"
            )
        raise MalformedFrameError(
            f"not an origin part ({n} bytes starting {head!r}): a wrong envelope count "
            "(a ROUTER socket's messages start with the peer's identity: envelope=1), "
            "or a sender that is not wirearray.zmq"
        )
    if n != ORIGIN_BYTES:
        raise MalformedFrameError(f"origin part of {n} bytes (expected {ORIGIN_BYTES})")
    _magic, version, flags, zero16, _origin, _seq, zero32, crc = _ORIGIN.unpack(mv)
    if version != ORIGIN_VERSION:
        raise UnsupportedVersionError(
            f"origin part version {version} (this reader speaks {ORIGIN_VERSION})"
        )
    if impl.crc32c(_ZERO4, impl.crc32c(mv[: F.CRC_OFFSET])) != crc:
        raise MalformedFrameError("origin part checksum mismatch (corrupted)")
    if flags & ~ORIGIN_SEQUENCED or zero16 or zero32:
        raise MalformedFrameError("origin part: unknown flags or non-zero reserved bytes")
    raise MalformedFrameError(
        "origin part: a sequenced message needs an origin id, an unsequenced one "
        "carries origin and sequence 0"
    )


# ---- limits ----


def max_part_bytes(max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """The largest zmq message part a receiver with this ``max_frame_bytes`` accepts:
    a whole frame of that payload (header of at most 9024 bytes -- 832 without a
    record's field descriptor -- and tail of at most 67 included), capped at 2 GiB - 1
    (larger payloads travel in 1 GiB parts).  This is the value :func:`set_limits`
    gives ``ZMQ_MAXMSGSIZE``."""
    if max_frame_bytes < 0:
        raise UsageError("max_frame_bytes must be >= 0")
    return min(max_frame_bytes + F.MAX_RECORD_HEADER + F.TRAILER + F.ALIGN, SPLIT_BYTES - 1)


def _socket_limits(max_frame_bytes: int, hwm_bytes: int | None) -> dict[int, int]:
    opts: dict[int, int] = {int(zmq.MAXMSGSIZE): max_part_bytes(max_frame_bytes)}
    if hwm_bytes is not None:
        if hwm_bytes <= 0:
            raise UsageError("hwm_bytes must be > 0")
        per_message = max(max_frame_bytes, 1) + F.MAX_HEADER + ORIGIN_BYTES + F.ALIGN
        hwm = max(1, min(hwm_bytes // per_message, 1 << 30))
        opts[int(zmq.RCVHWM)] = hwm
        opts[int(zmq.SNDHWM)] = hwm
    return opts


def set_limits(
    sock: zmq.Socket,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    hwm_bytes: int | None = None,
) -> None:
    """Make libzmq enforce wirearray's limits on ``sock``; call it before bind/connect.

    * ``ZMQ_MAXMSGSIZE`` = :func:`max_part_bytes` (``max_frame_bytes``): libzmq
      disconnects a peer that sends a larger part, before buffering it.
    * with ``hwm_bytes``: ``ZMQ_SNDHWM`` and ``ZMQ_RCVHWM`` (counted in messages, per
      connected peer) = ``hwm_bytes // (max_frame_bytes + 960)``, at least 1: the
      number of the largest messages allowed that fit the byte budget.  Choose
      ``max_frame_bytes`` near the real array sizes, or the count gets small (a
      1 GiB limit with a 4 GiB budget queues 3 messages per peer).

    libzmq applies these options to connections made *after* they are set (existing
    ones keep the old values), hence "before bind/connect".  It cannot bound the
    number of parts of a message: use CURVE for untrusted peers (docs/SECURITY.md).

    Raises:
        UsageError: a negative limit or a budget <= 0.
    """
    for opt, value in _socket_limits(max_frame_bytes, hwm_bytes).items():
        sock.setsockopt(opt, value)


def _default_envelope(sock: zmq.Socket) -> int:
    return 1 if sock.type == zmq.ROUTER else 0


# ---- encoding: arrays to parts ----


# the stream encoder's checks and conversions, the same for a frame on a zmq socket
_name_bytes = name_bytes
_want_big = byteorder_is_big
_mem_is_big = mem_is_big


#: How a part is sent: copied by pyzmq, without a copy from a staging buffer, or
#: without a copy from the caller's array (the send then returns a MessageTracker).
COPIED, STAGED, BORROWED = 0, 1, 2


class _Parts:
    """The parts of one message being built: (buffer, COPIED/STAGED/BORROWED) pairs,
    the staging buffers they use, and whether a part refers to the caller's memory."""

    __slots__ = ("borrowed", "parts", "refs", "staging")

    def __init__(self) -> None:
        self.parts: list[tuple[Any, int]] = []
        self.staging: list[tuple[np.ndarray, bool]] = []  # (buffer, sent without a copy?)
        self.borrowed = False
        self.refs: list[Any] = []  # weak references to the views sent without a copy


#: Most array headers kept (``_HEADERS``).
MAX_HEADERS = 256
#: Frame headers by everything they follow from: a stream of arrays of one kind sends
#: the same header every message (each message is a stream of its own, frame sequence
#: numbers from 0), so it is made and checked once.
_HEADERS: dict[tuple[Any, ...], tuple[bytes, int, bool]] = {}


def _array_header(
    impl: Any,
    a: np.ndarray,
    fortran: bool,
    name: str | None,
    want_big: bool | None,
    checksum: bool,
    seq: int,
) -> tuple[bytes, int, bool]:
    """(header, dtype code, whether the payload is byte-swapped) of an array frame.

    Raises:
        UnsupportedDtypeError, UsageError: the array or the name cannot travel.
    """
    dt = a.dtype
    code = array_code(a)
    name_b = _name_bytes(name)
    mem_big = _mem_is_big(dt)
    if code == F.CODE_RECORD:  # in the wire's order already (record_to_wire)
        mem_big = _HOST_BIG if want_big is None else want_big
    wire_big = mem_big if want_big is None else want_big
    flags = (
        (F.FLAG_BIG_ENDIAN if wire_big else 0)
        | (F.FLAG_FORTRAN if fortran else 0)
        | (F.FLAG_CHECKSUM if checksum else 0)
    )
    count = F.dtype_count(dt)  # a time unit's multiplier, a length, a record's dtype, or 0
    header = impl.pack_header(F.KIND_ARRAY, code, flags, a.shape, a.nbytes, name_b, count, seq)
    swap = dt.itemsize > 1 and wire_big != mem_big and code not in (F.CODE_BYTES, F.CODE_RAW)
    return header, code, swap


def _encode_array(
    out: _Parts,
    impl: Any,
    pool: _StagingPool,
    array: Any,
    name: str | None,
    want_big: bool | None,
    checksum: bool,
    copy: bool,
    seq: int,
) -> None:
    """Append the parts of one array frame (frame sequence number ``seq``) to ``out``."""
    a = array_to_send(array)
    if seq == 0 and name is None and a.nbytes < WHOLE_FRAME_BYTES:
        small = getattr(impl, "encode_small", None)
        if small is not None:
            frame = small(a, -1 if want_big is None else int(want_big), checksum, 0, a.nbytes)
            if frame is not None:
                out.parts.append((frame, COPIED))
                return
    dt = a.dtype
    if dt.names is not None:  # a record: converted field by field, padding zeroed, always
        a = record_to_wire(a, _HOST_BIG if want_big is None else want_big, impl)
        dt = a.dtype
    fortran = a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1
    key = None
    # record dtypes travel with a description of their fields: made each time, as
    # numpy's dtype equality may overlook what that description says
    if (name is None or type(name) is str) and dt.names is None:
        key = (impl, dt, a.shape, fortran, want_big, checksum, name, seq)
        known = _HEADERS.get(key)
    if key is None or known is None:
        known = _array_header(impl, a, fortran, name, want_big, checksum, seq)
        if key is not None:
            if len(_HEADERS) >= MAX_HEADERS:
                _HEADERS.clear()
            _HEADERS[key] = known
    header, code, swap = known
    contiguous = a.flags.c_contiguous or fortran
    order: Literal["C", "F"] = "F" if fortran else "C"
    n = a.nbytes
    # bool: bytes other than 0 and 1 travel as 1 (docs/FORMAT.md section 3); memory
    # sent as it is is scanned first, and copied normalised only when it needs it
    boolean = code == BOOL_CODE
    normalize = boolean and contiguous and not impl.bool_canonical(_flat(a, order))
    if n < WHOLE_FRAME_BYTES:
        if swap:
            a = impl.byteswap(a)
        if not (a.flags.c_contiguous or fortran):
            a = np.ascontiguousarray(a)
            normalize = boolean  # the copy is this frame's own
        payload = a.reshape(-1, order=order).view(np.uint8)
        if normalize:
            payload = impl.bool_normalize(payload, np.empty(n, np.uint8))
        tail = _tail(impl, payload, checksum, n)
        out.parts.append((b"".join((header, payload.data, tail)), COPIED))
        return
    zero_copy = n >= ZERO_COPY_BYTES
    if not swap and not normalize and contiguous and (not copy or not zero_copy):
        # the array's own memory: without a copy (copy=False), or copied by libzmq
        payload = a.reshape(-1, order=order).view(np.uint8)
        out.borrowed = zero_copy
        mode = BORROWED if zero_copy else COPIED
    else:
        buf = pool.take(n)
        out.staging.append((buf, zero_copy))
        payload = buf[:n]  # a view of this message's own: _zmq_staging says why
        mode = STAGED if zero_copy else COPIED
        dest = payload.view(dt).reshape(a.shape, order=order)
        if swap:
            impl.byteswap(a, out=dest)
        elif normalize:  # contiguous: normalised as it is copied
            impl.bool_normalize(_flat(a, order), payload)
        elif dt.names:  # a record, converted already: its bytes, padding (zeros) included
            raw = np.dtype((np.void, dt.itemsize))  # numpy copies records field by field
            np.copyto(dest.view(raw), a.view(raw))
        else:
            np.copyto(dest, a)
            if boolean and not contiguous:  # gathered: normalised in the copy
                impl.bool_normalize(payload, payload)
    out.parts.append((header, COPIED))
    if n < SPLIT_BYTES:
        out.parts.append((payload, mode))
    else:
        for k in range(0, n, PIECE_BYTES):
            out.parts.append((payload[k : k + PIECE_BYTES], mode))
    tail = _tail(impl, payload, checksum, n)
    if tail:
        out.parts.append((tail, COPIED))


def _flat(a: np.ndarray, order: Literal["C", "F"]) -> np.ndarray:
    """The memory of an array contiguous in ``order``, as flat bytes (a view)."""
    return a.reshape(-1, order=order).view(np.uint8)


def _tail(impl: Any, payload: np.ndarray, checksum: bool, n: int) -> bytes:
    pad = F.frame_tail(n, checksum) - (F.TRAILER if checksum else 0)
    if checksum:
        return impl.crc32c(payload).to_bytes(4, "big") + _ZEROS[:pad]
    return _ZEROS[:pad]


def _encode_message(
    out: _Parts,
    impl: Any,
    pool: _StagingPool,
    arrays: Mapping[str, Any],
    want_big: bool | None,
    checksum: bool,
    copy: bool,
) -> None:
    if not isinstance(arrays, Mapping):
        raise UsageError("a message is a mapping of names to arrays")
    items = [(k, message_array(v)) for k, v in arrays.items()]
    for k, v in items:  # every name, dtype and ndim before anything is converted
        _name_bytes(k)
        array_code(v)
    out.parts.append((impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", len(items), 0), COPIED))
    for i, (k, v) in enumerate(items, 1):
        _encode_array(out, impl, pool, v, k, want_big, checksum, copy, i)


def _check_envelope(envelope: Envelope) -> list[Any]:
    if envelope == ():
        return []
    if isinstance(envelope, (bytes, str)):
        raise UsageError("envelope is a sequence of parts, e.g. [identity] or [b'topic']")
    parts = list(envelope)
    for p in parts:
        if isinstance(p, str):
            raise UsageError("envelope parts are bytes (encode topic strings)")
    return parts


def _payload_parts(length: int) -> list[int]:
    """Sizes of the payload parts of a split frame (the sender's rule, exactly)."""
    if length == 0:
        return []
    if length < SPLIT_BYTES:
        return [length]
    return [min(PIECE_BYTES, length - k) for k in range(0, length, PIECE_BYTES)]
