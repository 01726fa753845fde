"""Sans-I/O frame codec: arrays to frames and a byte stream back to arrays.

The wire format is specified in docs/FORMAT.md.  This module never touches a socket,
a selector or an event loop (in the manner of h11): transports move bytes, the codec
says which bytes to move.

Encoding -- :class:`Encoder` turns an array into a short list of buffers per
``sendmsg``/``writelines`` call.  When the array's memory already is the wire's byte
order and layout, the payload buffer *is* the array (never copied).  Otherwise (network
order on a little-endian host, or a non-contiguous view) the payload comes out in
chunks converted into one reusable staging buffer of at most 4 MiB, so a sender never
holds a converted copy of a large array.  Checksums go in a trailer, so the checksum
of a converted payload is computed in the same single pass.

Whole small frames -- :meth:`Encoder.encode_small` and :meth:`Decoder.next_array` --
are one call into the compiled core each (header, conversion, checksum, validation,
allocation): a stream of small arrays is bounded by per-frame overhead, and the general
path costs several microseconds of Python per frame.  They are accelerators of the
general path, not a second codec: each gives exactly what the general path gives or
declines (None), having changed nothing, and the general path then decides and reports
(tests/test_fastpath.py holds them to that, for every bit flip and cut of a frame).

Decoding -- :class:`Decoder` is fed either way:

* ``buf = dec.get_buffer(); n = sock.recv_into(buf); dec.advance(n)`` -- for a large
  payload ``buf`` is a window of the destination array itself, so payload bytes are
  written once, by the kernel, where they belong; the byte swap (when the wire order
  differs from the wanted one) then runs in place on each chunk right after it
  arrives, while it is still in cache.  Small frames are read many at a time into a
  read-ahead buffer and copied out (one ``recv_into`` for dozens of small frames is
  much faster than one per header and payload).
* ``dec.receive_data(data)`` -- bytes from elsewhere; the decoder keeps a reference to
  ``data`` until it is consumed (do not modify it before ``next_event()`` returns
  ``NEED_DATA``) and converts straight from it into the destination.

``next_event()`` returns :class:`Array`, :class:`Message`, :class:`EndOfStream` or
``NEED_DATA``.  Every header is validated, and every configured limit checked, before
anything is allocated for its frame.  Errors: :class:`~wirearray.ProtocolError`
subclasses for anything the bytes do wrong (after which the decoder refuses further
use with :class:`~wirearray.StreamBrokenError`), :class:`~wirearray.UsageError`
subclasses for the caller's mistakes (an ``out=`` that does not fit is reported before
any payload byte is consumed, and the decoder stays usable).  Any other exception
escaping the decoder on any input is a bug.

Lifetimes: arrays in events belong to the caller and are never views of the
decoder's buffers; an array received into ``out=`` *is* (a view of) ``out``, and is
overwritten if ``out`` is passed again.  Buffers yielded by :meth:`Encoder.frame` are
valid until the iterator is advanced (the staging buffer is reused); buffers from
:meth:`Decoder.get_buffer` until the next ``advance``/``next_event`` call.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _format as F
from ._common import check_dtype, detached
from ._implementation import get as _get_impl
from .exceptions import (
    BufferMismatchError,
    ChecksumError,
    ErrorCode,
    FrameTooLargeError,
    MalformedFrameError,
    ProtocolError,
    SchemaMismatchError,
    StreamBrokenError,
    TruncatedStreamError,
    UnsupportedDtypeError,
    UsageError,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "NEED_DATA",
    "Ack",
    "Array",
    "Decoder",
    "Encoder",
    "EndOfStream",
    "ErrorReport",
    "Message",
    "Schema",
]

#: Default limit on one frame's payload (and on a whole message): 1 GiB.
DEFAULT_MAX_FRAME_BYTES = 1 << 30
#: Default limit on dimensions: 32 (numpy 1.x's own maximum; the format allows 64).
DEFAULT_MAX_NDIM = 32
#: Default limit on the arrays of one message.
DEFAULT_MAX_MESSAGE_ARRAYS = 1024
#: Largest size of the encoder's staging buffer (converted payload chunks, one system
#: call each).  Large, because on Linux loopback TCP the kernel's cost per byte falls
#: with the size of each send call: network-order 16 MiB arrays sent in 256 KiB calls
#: ran at 0.67-0.72x a raw sendall, in 4 MiB calls at 0.96-1.0x (sender alone, medians;
#: ``python bench/loopback_calls.py calls``, docs/PERFORMANCE.md).  Allocated when
#: first needed and only as large as the arrays sent need.
DEFAULT_CHUNK_BYTES = 4 << 20
#: Payloads up to this size that need converting are converted whole into one new
#: array instead (cheaper than the chunked machinery).
ONE_COPY_BYTES = 256 << 10
#: Largest size of the decoder's read-ahead buffer for headers and small payloads.
READAHEAD_BYTES = 256 << 10
#: Its first size: the read-ahead starts small and doubles each time a read fills it
#: (or a frame in progress needs more), up to READAHEAD_BYTES.  A connection pays for
#: the bytes its peer actually sends -- an idle or one-byte connection holds 16 KiB,
#: not 256 KiB (docs/SECURITY.md) -- while a stream of small frames reaches the full
#: size after a few reads.
INITIAL_READAHEAD_BYTES = 16 << 10
#: A payload with at least this much left is received straight into its array.
DIRECT_MIN_BYTES = 64 << 10
#: When the payload must be swapped after it lands, land it in chunks of at most this,
#: so that each chunk is swapped while it is still in cache.
SWAP_CHUNK_BYTES = 1 << 20
#: Arrays up to this many payload bytes are framed whole into one buffer by the
#: compiled core (Encoder.encode_small): for a small frame one copy (which is the
#: byte swap itself in network order) is cheaper than gathering header, payload and
#: trailer in Python; the frame still leaves in one system call.  At 64 KiB arrays
#: this raised wirearray from 0.77-0.78x to 0.86-0.94x of raw sendall/recv_into in
#: side-by-side runs against a 16 KiB limit (multiprocessing.connection's;
#: ``python -m wirearray bench stream --sizes 2K,8K,32K`` with either value); above
#: it the payload is sent from the array itself.
SMALL_FRAME_BYTES = 64 << 10

_HOST_BIG = sys.byteorder == "big"
_CODES: dict[np.dtype, int] = {}  # dtype -> wire code (0: unsupported), memoised
#: (code, big-endian?) -> the payload's dtype as it travels
_WIRE_DTYPES = {
    (code, big): dt.newbyteorder(">" if big else "<")
    for code, dt in F.DTYPES.items()
    for big in (False, True)
}
_INTP_MAX = int(np.iinfo(np.intp).max)
_RELEASED = StreamBrokenError("the decoder was released (its connection ended)")
_ZEROS = bytes(F.ALIGN)


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Returned by :meth:`Decoder.next_event` when it needs more bytes.
NEED_DATA: Any = _Sentinel("NEED_DATA")


@dataclass(frozen=True, slots=True)
class Array:
    """One array frame: the array (native order unless asked otherwise) and its name."""

    array: np.ndarray
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A multi-array message, delivered only once every array of it has arrived."""

    arrays: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer ended the stream cleanly (an END frame); ``seq`` is that frame's
    sequence number, the count its ACK confirms (docs/FORMAT.md section 10)."""

    seq: int = 0


@dataclass(frozen=True, slots=True)
class Ack:
    """An ACK frame (docs/FORMAT.md section 10): the peer consumed this side's stream
    up to the END (or ACK) frame whose sequence number is ``count``, and its own
    stream ends here, with this frame of sequence number ``seq``."""

    count: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """An ERROR frame (docs/FORMAT.md section 10): the peer refused the stream or ended
    the channel, with an :class:`~wirearray.ErrorCode` (a plain int when unknown) and a
    short reason; nothing more follows from it."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Schema:
    """What a receiver expects: a dtype and a shape, each possibly a wildcard.

    Args:
        dtype: a supported numpy dtype (byte order ignored), or None for any.
        shape: a tuple whose entries are lengths or None (any length), or None for any
            shape; its length fixes ndim.
    """

    dtype: np.dtype | None = None
    shape: tuple[int | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype is not None:
            dt = np.dtype(self.dtype)
            check_dtype(dt)
            object.__setattr__(self, "dtype", dt.newbyteorder("="))
        if self.shape is not None:
            shape = tuple(self.shape)
            for n in shape:
                if n is not None and (not isinstance(n, int) or n < 0):
                    raise UsageError(f"schema shape entries are lengths >= 0 or None, not {n!r}")
            object.__setattr__(self, "shape", shape)

    @classmethod
    def coerce(cls, value: Any) -> Schema | None:
        """Schema, (dtype, shape) tuple, or None."""
        if value is None or isinstance(value, Schema):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise UsageError(f"a schema is a Schema or a (dtype, shape) tuple, not {value!r}")

    def mismatch(self, code: int, shape: tuple[int, ...]) -> str | None:
        """Why a frame of this dtype code and shape does not fit, or None if it does."""
        got = F.DTYPES[code]
        if self.dtype is not None and self.dtype != got:
            return f"dtype {got} (expected {self.dtype})"
        if self.shape is not None:
            if len(self.shape) != len(shape) or any(
                want is not None and want != n for want, n in zip(self.shape, shape, strict=True)
            ):
                return f"shape {shape} (expected {self.shape})"
        return None


def _byteorder_is_big(byteorder: str) -> bool | None:
    if byteorder == "network":
        return True
    if byteorder == "native":
        return None  # the array's own memory order
    raise UsageError(f"byteorder must be 'network' or 'native', not {byteorder!r}")


def _mem_is_big(dt: np.dtype) -> bool:
    return dt.byteorder == ">" or (dt.byteorder == "=" and _HOST_BIG)


def _c_pieces(a: np.ndarray, max_items: int) -> Iterator[np.ndarray]:
    """Views of ``a`` whose concatenation in C order is ``a`` in C order, each of at
    most ``max_items`` elements (unless a single element is already more)."""
    if a.size <= max_items or a.ndim == 0:
        yield a
        return
    row = a[0].size
    if row <= max_items:
        step = max(1, max_items // max(row, 1))
        for i in range(0, a.shape[0], step):
            yield a[i : i + step]
    else:
        for i in range(a.shape[0]):
            yield from _c_pieces(a[i], max_items)


class Encoder:
    """Turns arrays into frames.

    Args:
        byteorder: "network" (payload big-endian; the default) or "native" (the
            array's own memory order, converted by nobody on a same-order receiver).
        checksum: append a CRC32C trailer to every array payload.
        chunk_bytes: largest size of the reusable staging buffer for converted
            payloads (each chunk leaves in one system call; see DEFAULT_CHUNK_BYTES).
        implementation: "cython" or "python" to pick the core explicitly (tests,
            benchmarks); None for the package's choice.
    """

    def __init__(
        self,
        *,
        byteorder: str = "network",
        checksum: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        implementation: str | None = None,
    ):
        _byteorder_is_big(byteorder)
        if chunk_bytes < 4096:
            raise UsageError("chunk_bytes must be at least 4096")
        self.byteorder = byteorder
        self.checksum = bool(checksum)
        self._impl = _get_impl(implementation)
        self._chunk_bytes = chunk_bytes - chunk_bytes % 64
        self._staging: np.ndarray | None = None
        self._seq = 0
        self._small = getattr(self._impl, "encode_small", None)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF
        return seq

    def frame(
        self,
        array: Any,
        *,
        name: str | None = None,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> Iterator[list]:
        """Encode one array frame as successive lists of buffers to send in order.

        Each yielded list is meant for one ``sendmsg``/``writelines`` call and stays
        valid only until the iterator is advanced.  The header is validated and built
        before the first yield, so a bad argument raises before anything is sent.

        Raises:
            UnsupportedDtypeError: the dtype cannot travel.
            UsageError: bad name or byteorder, or more dimensions than the format allows.
        """
        a = array if type(array) is np.ndarray else np.asarray(array)
        dt = a.dtype
        code = _CODES.get(dt)
        if code is None:
            code = _CODES[dt] = F.dtype_code(dt)
        if not code:
            check_dtype(dt)
            raise UnsupportedDtypeError(f"wirearray cannot send dtype {dt!r}")
        if a.ndim > F.MAX_NDIM:
            raise UsageError(f"{a.ndim} dimensions; the wire format carries at most 64")
        name_b = self._name_bytes(name)
        want_big = _byteorder_is_big(byteorder if byteorder is not None else self.byteorder)
        mem_big = _mem_is_big(a.dtype)
        wire_big = mem_big if want_big is None else want_big
        swap = a.dtype.itemsize > 1 and wire_big != mem_big
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1
        checksum = self.checksum if checksum is None else bool(checksum)
        flags = (
            (F.FLAG_BIG_ENDIAN if wire_big else 0)
            | (F.FLAG_FORTRAN if fortran else 0)
            | (F.FLAG_CHECKSUM if checksum else 0)
        )
        header = self._impl.pack_header(
            F.KIND_ARRAY, code, flags, a.shape, a.nbytes, name_b, 0, self._next_seq()
        )
        return self._frame_parts(a, header, swap, fortran, checksum)

    def _frame_parts(self, a, header, swap, fortran, checksum) -> Iterator[list]:
        impl = self._impl
        pad = F.frame_tail(a.nbytes, checksum) - (F.TRAILER if checksum else 0)
        crc = 0
        one_copy = min(self._chunk_bytes, ONE_COPY_BYTES)
        if a.nbytes <= one_copy and (swap or not (a.flags.c_contiguous or fortran)):
            # No larger than the staging buffer: one converted copy is cheaper than the
            # chunked machinery (and no larger than what staging would hold anyway).
            a = impl.byteswap(a) if swap else a
            if not (a.flags.c_contiguous or fortran):
                a = np.ascontiguousarray(a)
            swap = False
        contiguous = a.flags.c_contiguous or a.flags.f_contiguous
        if not swap and contiguous:
            payload = a.reshape(-1, order="F" if fortran else "C").view(np.uint8)
            if checksum:
                crc = impl.crc32c(payload)
            parts = [header]
            if payload.size:
                parts.append(payload)
            tail = self._tail(crc, checksum, pad)
            yield [*parts, tail] if tail else parts
            return
        # Converted (swapped and/or gathered) in chunks through the staging buffer.
        need = min(self._chunk_bytes, -(-a.nbytes // 4096) * 4096)
        if self._staging is None or self._staging.size < need:
            self._staging = None  # the old one goes first
            self._staging = np.empty(need, dtype=np.uint8)
        staging = self._staging
        item = a.dtype.itemsize
        max_items = max(1, staging.size // item)
        if item > staging.size:  # cannot happen for supported dtypes
            raise UsageError("chunk_bytes smaller than one item")
        pending: list = [header]
        if contiguous:  # swap only: flat slices, no per-chunk views to build
            flat = a.reshape(-1, order="F" if fortran else "C")
            typed = staging[: max_items * item].view(a.dtype)
            for k in range(0, flat.size, max_items):
                n = min(max_items, flat.size - k)
                impl.byteswap(flat[k : k + n], out=typed[:n])
                chunk = staging[: n * item]
                if checksum:
                    crc = impl.crc32c(chunk, crc)
                pending.append(chunk)
                if k + n < flat.size:
                    yield pending
                    pending = []
            tail = self._tail(crc, checksum, pad)
            if tail:
                pending.append(tail)
            yield pending
            return
        source = a
        used = 0
        for piece in _c_pieces(source, max_items):
            nbytes = piece.size * item
            if used + nbytes > staging.size:
                chunk = staging[:used]
                if checksum:
                    crc = impl.crc32c(chunk, crc)
                pending.append(chunk)
                yield pending
                pending, used = [], 0
            dst = staging[used : used + nbytes].view(a.dtype).reshape(piece.shape)
            if swap:
                impl.byteswap(piece, out=dst)
            else:
                np.copyto(dst, piece)
            used += nbytes
        if used:
            chunk = staging[:used]
            if checksum:
                crc = impl.crc32c(chunk, crc)
            pending.append(chunk)
        tail = self._tail(crc, checksum, pad)
        if tail:
            pending.append(tail)
        yield pending

    @staticmethod
    def _tail(crc: int, checksum: bool, pad: int) -> bytes:
        if checksum:
            return crc.to_bytes(4, "big") + _ZEROS[:pad]
        return _ZEROS[:pad]

    @staticmethod
    def _name_bytes(name: str | None) -> bytes:
        if name is None:
            return b""
        if not isinstance(name, str):
            raise UsageError(f"array names are str, not {type(name).__name__}")
        b = name.encode("utf-8")
        if not 0 < len(b) <= F.MAX_NAME:
            raise UsageError("array names are 1 to 255 bytes of UTF-8")
        return b

    def message(
        self,
        arrays: Mapping[str, Any],
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> Iterator[list]:
        """Encode a multi-array message (names -> arrays) as lists of buffers.

        The receiver delivers it as one :class:`Message`, or not at all.  Every array
        and name is validated before the first yield.
        """
        if not isinstance(arrays, Mapping):
            raise UsageError("a message is a mapping of names to arrays")
        if len(arrays) > 0xFFFFFFFF:
            raise UsageError("too many arrays for one message")
        if byteorder is not None:  # before the head takes a sequence number
            _byteorder_is_big(byteorder)
        items = [(k, np.asarray(v)) for k, v in arrays.items()]
        for k, v in items:
            self._name_bytes(k)
            if not F.dtype_code(v.dtype):
                check_dtype(v.dtype)
                raise UnsupportedDtypeError(f"wirearray cannot send dtype {v.dtype!r}")
        head = self._impl.pack_header(
            F.KIND_MESSAGE, 0, 0, (), 0, b"", len(items), self._next_seq()
        )
        frames = [self.frame(v, name=k, byteorder=byteorder, checksum=checksum) for k, v in items]
        return self._message_parts(head, frames)

    @staticmethod
    def _message_parts(head: bytes, frames: list) -> Iterator[list]:
        carry: list = [head]
        for it in frames:
            for parts in it:
                if carry:
                    parts = carry + parts
                    carry = []
                yield parts
        if carry:
            yield carry

    def encode_small(self, array: Any, limit: int = SMALL_FRAME_BYTES) -> bytes | None:
        """The whole frame of ``array`` (no name, the encoder's byte order and checksum)
        as one bytes object, or None when the compiled fast path does not apply (no
        compiled core, not contiguous, a dtype it does not carry, more than ``limit``
        payload bytes): use :meth:`frame` then.  Equal byte for byte to what
        :meth:`frame` yields; a frame is only counted when one is returned."""
        small = self._small
        if small is None:
            return None
        big = self.byteorder == "network"
        frame = small(array, 1 if big else -1, self.checksum, self._seq, limit)
        if frame is not None:
            self._seq = (self._seq + 1) & 0xFFFFFFFF
        return frame

    def end(self) -> bytes:
        """The end-of-stream frame (resets the frame sequence for a next stream)."""
        head = self._impl.pack_header(F.KIND_END, 0, 0, (), 0, b"", 0, self._next_seq())
        self._seq = 0
        return head

    @property
    def seq(self) -> int:
        """The sequence number the next frame will carry (docs/FORMAT.md section 5)."""
        return self._seq

    def ack(self, count: int) -> bytes:
        """An ACK frame confirming the peer's stream up to its END (or ACK) frame of
        sequence number ``count``; it also ends this side's stream (the sequence
        restarts at 0).  docs/FORMAT.md section 10."""
        head = self._impl.pack_header(
            F.KIND_ACK, 0, 0, (), 0, b"", count & 0xFFFFFFFF, self._next_seq()
        )
        self._seq = 0
        return head

    def error(self, code: int, reason: str) -> bytes:
        """An ERROR frame: ``code`` (an :class:`~wirearray.ErrorCode`) and ``reason``,
        cut to 255 bytes of UTF-8 on a character boundary.  docs/FORMAT.md section 10."""
        raw = reason.encode("utf-8", "replace")
        if len(raw) > F.MAX_NAME:
            raw = raw[: F.MAX_NAME].decode("utf-8", "ignore").encode("utf-8")
        return self._impl.pack_header(
            F.KIND_ERROR, 0, 0, (), 0, raw, int(code) & 0xFFFFFFFF, self._next_seq()
        )

    def encode(self, array: Any, **kw: Any) -> bytes:
        """One frame as a single bytes object (copies; convenient for files and tests)."""
        return b"".join(bytes(p) for parts in self.frame(array, **kw) for p in parts)

    def encode_message(self, arrays: Mapping[str, Any], **kw: Any) -> bytes:
        """One message as a single bytes object."""
        return b"".join(bytes(p) for parts in self.message(arrays, **kw) for p in parts)


# Decoder regions
_HEADER, _PAYLOAD, _TAIL = 0, 1, 2


def _error_code(code: int) -> int:
    try:
        return ErrorCode(code)
    except ValueError:
        return code


#: First bytes of other protocols a wirearray receiver may meet by mistake, and what
#: they mean (checked only once the frame magic has failed, for a clearer error).
_FOREIGN = (
    (F.HANDSHAKE_MAGIC, "the peer starts an authkey handshake: connect with authkey=..."),
    (b"\x93NUM", "the peer sends .npy records, not wirearray frames: use format='npy'"),
    (b"\x16\x03", "the peer speaks TLS: connect with ssl=... (or serve without TLS)"),
    (b"\x15\x03", "the peer answered with a TLS alert: it expects TLS (ssl=...)"),
)


class Decoder:
    """Turns a byte stream, however it is split, back into arrays.

    Args:
        max_frame_bytes: largest payload accepted (also the cap on a whole message's
            payloads); larger frames raise FrameTooLargeError from the header.
        max_ndim: most dimensions accepted (the format allows 64).
        max_message_arrays: most arrays in one message.
        keep_wire_order: return arrays in the byte order they travelled in instead of
            converting them to this host's order.
        implementation: "cython" or "python" to pick the core explicitly.
    """

    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = DEFAULT_MAX_NDIM,
        max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        implementation: str | None = None,
    ):
        if max_frame_bytes < 0 or not 0 <= max_ndim <= F.MAX_NDIM or max_message_arrays < 0:
            raise UsageError("limits must be >= 0 (and max_ndim <= 64)")
        self.max_frame_bytes = max_frame_bytes
        self.max_ndim = max_ndim
        self.max_message_arrays = max_message_arrays
        self.keep_wire_order = keep_wire_order
        self._impl = _get_impl(implementation)
        self._readahead: bytearray | None = None  # allocated by the first get_buffer()
        self._grow = False  # the last read filled the read-ahead: double it
        self._large_last = False  # the last frame's payload was received directly
        self._rview: memoryview | None = None
        self._pending: deque[memoryview] = deque()
        self._events: deque = deque()
        self._eof = False
        self._broken: BaseException | None = None
        self._direct = False
        self._last_buffer_len = -1
        self._hdr = bytearray(F.MAX_HEADER)
        self._hview = memoryview(self._hdr)
        self._tail = bytearray(F.TRAILER + F.ALIGN)
        self._seq = 0
        self._next_out: Any = None
        self._next_schema: Any = None
        self._in_message = False
        self.bytes_received = 0
        self._reset_frame()
        self._msg: dict[str, np.ndarray] = {}
        self._msg_count = 0
        self._msg_bytes = 0
        self._msg_schema: Any = None
        self._msg_out: Any = {}
        self._clean = False  # True at a frame boundary right after an END frame
        # the compiled whole-frame fast path, for this framing only (not wirearray.npy's)
        self._small = getattr(self._impl, "decode_small", None) if type(self) is Decoder else None

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        self._max_frame_bytes = value
        self._small_max = min(value, 1 << 63)  # what the compiled fast path can take

    # ---- public API ----

    def expect(self, *, out: Any = None, schema: Any = None) -> None:
        """Set the destination and/or schema for the next array (or message).

        Args:
            out: an ndarray with the frame's dtype (any byte order: the array is
                delivered in ``out``'s) and shape, writable and contiguous in the
                frame's memory order (C, or Fortran for a Fortran frame).  For a
                message, a dict of such arrays by name (names not in it are allocated).
            schema: a :class:`Schema` or (dtype, shape) tuple the next array must match;
                for a message, a dict of them by name (the message must have exactly
                these names).

        Both apply to the next frame whose header has not been read yet and are cleared
        once used.  After a BufferMismatchError inside a message, ``out`` (a dict or
        None) replaces the destinations of the message's remaining arrays instead.
        """
        self._check_usable()
        if self._in_message and self._header is not None and self._region == _HEADER:
            # An array of the current message was refused its out= (BufferMismatchError):
            # the new out= (a dict by name, or None) replaces the rest of its destinations.
            if out is not None and not isinstance(out, Mapping):
                raise BufferMismatchError("a message needs out= as a dict of arrays by name")
            self._msg_out = out or {}
            out = None
        if isinstance(schema, Mapping):
            schema = {str(k): Schema.coerce(v) for k, v in schema.items()}
        else:
            schema = Schema.coerce(schema)
        self._next_out = out
        self._next_schema = schema

    def get_buffer(self) -> memoryview:
        """A writable buffer for the next ``recv_into``; report what arrived with advance().

        For a large payload this is a window of the destination array itself.  Only
        valid to call when :meth:`next_event` last returned ``NEED_DATA``.
        """
        self._check_usable()
        if self._pending or self._events:
            raise UsageError("call next_event() until it returns NEED_DATA before get_buffer()")
        remaining = self._need - self._fill
        if self._region == _PAYLOAD and remaining >= DIRECT_MIN_BYTES:
            n = min(remaining, SWAP_CHUNK_BYTES) if self._unit else remaining
            self._direct = True
            self._last_buffer_len = n
            return memoryview(self._dest_bytes[self._fill : self._fill + n])
        self._direct = False
        size = len(self._readahead) if self._readahead is not None else 0
        want = size * 2 if self._grow else INITIAL_READAHEAD_BYTES
        if self._region != _HEADER or self._fill:  # a frame in progress: room for its rest
            want = max(want, remaining)
        want = min(max(want, INITIAL_READAHEAD_BYTES), max(READAHEAD_BYTES, F.MAX_HEADER))
        if want > size:  # nothing refers to the old buffer here: _pending is empty
            self._rview = None
            self._readahead = bytearray(want)
            self._rview = memoryview(self._readahead)
        self._grow = False
        if self._large_last and self._region == _HEADER and not self._fill:
            # The last frame was large: most likely this one is too, so read its first
            # 64 header bytes alone and let the payload land in its array, instead of
            # reading up to READAHEAD_BYTES of it here and copying them over.
            self._last_buffer_len = F.MIN_HEADER
            return self._rview[: F.MIN_HEADER]
        self._last_buffer_len = len(self._readahead)
        return self._rview

    def advance(self, nbytes: int) -> None:
        """Report that ``nbytes`` were written into the last get_buffer(); 0 means EOF."""
        self._check_usable()
        if not 0 <= nbytes <= self._last_buffer_len:
            raise UsageError(
                f"advance({nbytes}) outside the {self._last_buffer_len}-byte buffer given"
            )
        given, self._last_buffer_len = self._last_buffer_len, -1
        if nbytes == 0:
            self._eof = True
            return
        self._grow = nbytes == given and not self._direct
        self.bytes_received += nbytes
        self._clean = False
        if self._direct:
            start = self._fill
            self._fill += nbytes
            if self._crc is not None:
                self._crc = self._impl.crc32c(self._dest_bytes[start : self._fill], self._crc)
            self._swap_landed()
        else:
            self._pending.append(self._rview[:nbytes])

    def receive_data(self, data: Any) -> None:
        """Feed bytes; ``b""`` means EOF.  ``data`` is referenced, not copied, until
        consumed: do not modify it before next_event() returns NEED_DATA."""
        self._check_usable()
        mv = memoryview(data)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        if not len(mv):
            self._eof = True
            return
        self.bytes_received += len(mv)
        self._clean = False
        self._pending.append(mv)

    def next_array(self, out: Any = None) -> np.ndarray | None:
        """Fast path for a transport's receive loop: the next array, when its frame
        (unnamed, no message) already lies whole in the received data and the compiled
        core decodes it; else None, with nothing consumed -- then call expect() and
        next_event() as usual, which report whatever is wrong.  Same checks and same
        result as that path (``out`` as in expect(); no schema)."""
        pending = self._pending
        if not pending or self._small is None or self._events or self._header is not None:
            return None
        if self._fill or self._in_message or self._broken is not None:
            return None
        mv = pending[0]
        r = self._small(mv, self._seq, self._small_max, self.max_ndim, self.keep_wire_order, out)
        if r is None:
            return None
        a, n = r
        if n == len(mv):
            pending.popleft()
        else:
            pending[0] = mv[n:]
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        self._next_out = self._next_schema = None
        self._large_last = False
        return a

    def next_event(self) -> Any:
        """The next complete :class:`Array`, :class:`Message` or :class:`EndOfStream`,
        or ``NEED_DATA``.

        Raises:
            ProtocolError: the bytes break the format or a limit (the decoder is then
                unusable: later calls raise StreamBrokenError).
            BufferMismatchError: ``out=`` does not fit the frame; nothing of the
                payload was consumed, call expect() with a fitting ``out`` (or none).
        """
        self._check_usable()
        try:
            return self._next_event()
        except ProtocolError as exc:
            self._broken = exc
            self._pending.clear()
            raise

    # ---- internals ----

    def release(self) -> None:
        """Drop every buffer the decoder holds (the read-ahead, a partly received array,
        the arrays of an unfinished message) and make it unusable: later calls raise
        StreamBrokenError.  Transports call it when a connection ends, so that a peer
        that vanished inside a large frame leaves nothing behind; the stored error
        keeps no traceback (whose frames could hold the buffers).  Idempotent."""
        self._rview = None
        self._readahead = None
        self._pending.clear()
        self._events.clear()
        self._dest = self._dest_bytes = self._units = None
        self._msg = {}
        self._msg_out = {}
        self._next_out = self._next_schema = None
        self._broken = detached(self._broken) if self._broken is not None else _RELEASED

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise StreamBrokenError(
                f"the stream is unusable after an earlier error: {self._broken}"
            ) from self._broken

    # ---- hooks for decoders of other framings (wirearray.npy) ----

    def _foreign(self, head: bytes) -> str | None:
        """What the first bytes of a frame say when they are another protocol's."""
        for prefix, why in _FOREIGN:
            if len(head) >= len(prefix) and head.startswith(prefix):
                return why
        return None

    #: A stream that ends at a frame boundary without an END frame is truncated.
    _EOF_AT_BOUNDARY_IS_END = False

    def _first_need(self) -> int:
        """Bytes to read before the header can be looked at."""
        return F.MIN_HEADER

    def _tail_length(self, length: int, checksum: bool) -> int:
        """Bytes after a payload of ``length`` (trailer and padding)."""
        return F.frame_tail(length, checksum)

    def _read_header(self) -> bool:
        """Called whenever the header region is full: either raise ``_need`` to read
        more and return False, or set ``_header`` (validated) and return True."""
        if self._need == F.MIN_HEADER:
            if self._hview[:4] != F.MAGIC:
                why = self._foreign(bytes(self._hview[:4]))
                if why:
                    raise MalformedFrameError(why)
            h = self._impl.header_length(self._hview[: F.MIN_HEADER])
            if h > F.MIN_HEADER:
                self._need = h
                return False
        self._header_bytes = self._need
        self._header = self._impl.parse_header(self._hview[: self._need])
        self._check_header()
        return True

    @property
    def eof(self) -> bool:
        """True once the end of input was fed (``advance(0)``, ``receive_data(b"")``)."""
        return self._eof

    @property
    def seq(self) -> int:
        """The sequence number the next frame must carry: after an event, the number of
        frames of the stream up to and including it (docs/FORMAT.md section 5)."""
        return self._seq

    @property
    def at_boundary(self) -> bool:
        """True when no frame (or message) is partly received: a transport may stop
        here (a timeout between frames leaves the stream intact)."""
        return (
            self._region == _HEADER
            and self._fill == 0
            and self._header is None
            and not self._pending
            and not self._in_message
        )

    @property
    def idle(self) -> bool:
        """True when next_event() could only return NEED_DATA: at a frame boundary with
        nothing received and not yet used, and no end of input seen."""
        return (
            not self._pending
            and not self._events
            and not self._eof
            and self._broken is None
            and self._fill == 0
            and self._header is None
            and not self._in_message
        )

    def _reset_frame(self) -> None:
        self._region = _HEADER
        self._fill = 0
        self._need = self._first_need()
        self._header: tuple | None = None
        self._dest: np.ndarray | None = None
        self._dest_bytes: Any = None
        self._units: np.ndarray | None = None
        self._unit = 0
        self._swapped = 0
        self._crc: int | None = None

    def _take(self, want: int) -> memoryview | None:
        """Up to ``want`` bytes from the pending input, or None if there are none."""
        while self._pending:
            mv = self._pending[0]
            if len(mv) <= want:
                self._pending.popleft()
                if len(mv):
                    return mv
                continue
            self._pending[0] = mv[want:]
            return mv[:want]
        return None

    def _need_data(self) -> Any:
        if not self._eof:
            return NEED_DATA
        if self._clean or (self._EOF_AT_BOUNDARY_IS_END and self.at_boundary):
            return EndOfStream()
        if self._header is None:
            got, total = self._fill, None
        else:
            hl = self._header_bytes
            length = self._header[4]
            total = hl + length + self._tail_length(length, bool(self._header[2] & F.FLAG_CHECKSUM))
            got = hl + (self._fill if self._region == _PAYLOAD else 0)
            got += (length + self._fill) if self._region == _TAIL else 0
        where = (
            f"inside a message ({len(self._msg)} of {self._msg_count} arrays complete)"
            if self._in_message
            else "inside a frame"
        )
        if self._header is None and self._fill and self._region == _HEADER:
            why = self._foreign(bytes(self._hview[: min(self._fill, 4)]))
            if why:
                raise MalformedFrameError(why)
        if got == 0 and not self._in_message:
            raise TruncatedStreamError(
                "the stream ended without an end-of-stream frame", received=0, expected=None
            )
        if total is None:
            raise TruncatedStreamError(
                f"the stream ended {where}: {got} bytes of a frame header arrived",
                received=got,
            )
        raise TruncatedStreamError(
            f"the stream ended {where}: {got} of {total} frame bytes arrived",
            received=got,
            expected=total,
        )

    def _next_event(self) -> Any:
        while True:
            if self._events:
                return self._events.popleft()
            region = self._region
            if region == _HEADER and self._fill == 0 and self._pending:
                if self._whole_frame():
                    continue
            if self._fill < self._need:
                chunk = self._take(self._need - self._fill)
                if chunk is None:
                    return self._need_data()
                self._consume(region, chunk)
                continue
            if region == _HEADER:
                if self._header is None and not self._read_header():
                    continue
                self._start_frame()  # may raise BufferMismatchError: retried next call
            elif region == _PAYLOAD:
                self._region = _TAIL
                self._fill = 0
                self._need = self._tail_length(self._header[4], self._crc is not None)
            else:
                self._finish_frame()

    def _whole_frame(self) -> bool:
        """Fast path for small frames: when the next array frame lies whole in the first
        pending buffer, decode it in one step (same checks, fewer Python calls).  False
        (nothing consumed) when it does not, or for other framings and frame kinds."""
        mv = self._pending[0]
        if len(mv) < F.MIN_HEADER or type(self) is not Decoder or mv[5] != F.KIND_ARRAY:
            return False
        if self._next_schema is None and not self._in_message:
            a = self.next_array(self._next_out)
            if a is not None:
                self._events.append(Array(a, None))
                return True
        h = (mv[10] << 8) | mv[11]
        if len(mv) < h or not F.MIN_HEADER <= h <= F.MAX_HEADER:
            return False  # the slow path reports what is wrong
        length = int.from_bytes(mv[16:24], "big")
        checksum = bool(mv[7] & F.FLAG_CHECKSUM)
        tail = F.frame_tail(length, checksum)
        total = h + length + tail
        if len(mv) < total:
            return False
        self._hdr[:h] = mv[:h]
        self._need = F.MIN_HEADER  # validate from the first 64 bytes, as the slow path
        self._fill = h
        while not self._read_header():  # full validation, as on the slow path (which
            pass  # raises _need to h after the first 64 bytes: the same h, already here)
        self._pending[0] = mv[h:]  # the header is consumed, exactly as on the slow path
        self._start_frame()  # a refused out= stops here, in the slow path's state
        if length:
            self._consume(_PAYLOAD, mv[h : h + length])
        self._region = _TAIL
        self._tail[:tail] = mv[h + length : total]
        self._fill = self._need = tail
        rest = mv[total:]
        if len(rest):
            self._pending[0] = rest
        else:
            self._pending.popleft()
        self._finish_frame()
        return True

    def _consume(self, region: int, chunk: memoryview) -> None:
        n = len(chunk)
        if region == _HEADER:
            self._hdr[self._fill : self._fill + n] = chunk
        elif region == _TAIL:
            self._tail[self._fill : self._fill + n] = chunk
        else:
            if self._crc is not None:
                self._crc = self._impl.crc32c(chunk, self._crc)
            self._copy_payload(chunk)
            return
        self._fill += n

    def _copy_payload(self, chunk: memoryview) -> None:
        """Copy arrived payload bytes into the destination, swapping on the way when the
        copy starts on a unit boundary (one pass), else copy then swap in place."""
        start, n, unit = self._fill, len(chunk), self._unit
        if unit and start == self._swapped:
            whole = n - n % unit
            if whole:
                src = np.frombuffer(chunk, dtype=self._units.dtype, count=whole // unit)
                i = start // unit
                self._impl.byteswap(src, out=self._units[i : i + whole // unit])
                self._swapped = start + whole
            if whole < n:
                self._dest_bytes[start + whole : start + n] = chunk[whole:]
            self._fill = start + n
            return
        self._dest_bytes[start : start + n] = chunk
        self._fill = start + n
        self._swap_landed()

    def _swap_landed(self) -> None:
        """Swap in place every whole unit that has landed since the last swap."""
        unit = self._unit
        if not unit:
            return
        end = self._fill - self._fill % unit
        if end > self._swapped:
            view = self._units[self._swapped // unit : end // unit]
            self._impl.byteswap(view, inplace=True)
            self._swapped = end

    def _check_header(self) -> None:
        """Sequence, limits and structure: everything decidable from the header alone."""
        kind, code, _, shape, length, name, count, seq = self._header
        if kind == F.KIND_ERROR:  # the last word, anywhere: even after frames never sent
            return
        if seq != self._seq:
            raise MalformedFrameError(f"frame sequence number {seq}, expected {self._seq}")
        self._seq = (seq + 1) & 0xFFFFFFFF
        if kind == F.KIND_END or kind == F.KIND_ACK:
            if self._in_message:
                raise MalformedFrameError(
                    f"end of stream inside a message ({len(self._msg)} of {self._msg_count} arrays)"
                )
            if kind == F.KIND_ACK and name:
                raise MalformedFrameError("an ack frame carries no name")
            return
        if kind == F.KIND_MESSAGE:
            if self._in_message:
                raise MalformedFrameError("a message header inside a message")
            if count > self.max_message_arrays:
                raise FrameTooLargeError(
                    f"message of {count} arrays exceeds max_message_arrays="
                    f"{self.max_message_arrays}"
                )
            return
        self._check_array(code, shape, length, name)

    def _check_array(self, code: int, shape: tuple, length: int, name: bytes) -> None:
        """Limits, representability, names and schema of an array frame's header."""
        if len(shape) > self.max_ndim:
            raise FrameTooLargeError(f"{len(shape)} dimensions exceed max_ndim={self.max_ndim}")
        if length > self.max_frame_bytes:
            raise FrameTooLargeError(
                f"frame of {length} bytes exceeds max_frame_bytes={self.max_frame_bytes}"
            )
        nonzero = F.ITEMSIZE[code]
        for n in shape:
            if n:
                nonzero *= n
        if nonzero > _INTP_MAX:
            raise MalformedFrameError(f"shape {shape} cannot be represented on this host")
        try:
            text = name.decode("utf-8") if name else None
        except UnicodeDecodeError:
            raise MalformedFrameError("array name is not valid UTF-8") from None
        if self._in_message:
            if text is None:
                raise MalformedFrameError("an array inside a message has no name")
            if text in self._msg:
                raise MalformedFrameError(f"array name {text!r} repeated in a message")
            if self._msg_bytes + length > self.max_frame_bytes:
                raise FrameTooLargeError(
                    f"message payloads exceed max_frame_bytes={self.max_frame_bytes}"
                )
        schema = self._msg_schema if self._in_message else self._next_schema
        if isinstance(schema, dict):
            if self._in_message:
                schema = schema.get(text)
                if schema is None and text not in self._msg_schema:
                    raise SchemaMismatchError(f"unexpected array {text!r} in the message")
            else:
                raise SchemaMismatchError("expected a message, got a single array")
        if schema is not None:
            why = schema.mismatch(code, shape)
            if why:
                raise SchemaMismatchError(f"array {text or ''!r}: got {why}".replace(" '' ", " "))

    def _start_frame(self) -> None:
        kind, code, flags, shape, length, name, count, seq = self._header
        if kind == F.KIND_END or kind == F.KIND_ACK:  # the peer's stream ends here
            self._reset_frame()
            self._seq = 0
            self._events.append(EndOfStream(seq) if kind == F.KIND_END else Ack(count, seq))
            self._clean = not self._pending
            return
        if kind == F.KIND_ERROR:  # the last word of the peer: nothing follows
            self._reset_frame()
            self._in_message = False
            self._msg = {}
            reason = name.decode("utf-8", "replace")
            self._events.append(ErrorReport(_error_code(count), reason))
            self._clean = not self._pending
            return
        if kind == F.KIND_MESSAGE:
            schema, out = self._next_schema, self._next_out
            if schema is not None and not isinstance(schema, dict):
                raise SchemaMismatchError("expected a single array, got a message")
            if out is not None and not isinstance(out, Mapping):
                raise BufferMismatchError("a message needs out= as a dict of arrays by name")
            self._next_schema = self._next_out = None
            self._reset_frame()
            self._in_message = True
            self._msg = {}
            self._msg_count = count
            self._msg_bytes = 0
            self._msg_schema = schema
            self._msg_out = out or {}
            if count == 0:
                self._end_message()
            return
        text = name.decode("utf-8") if name else None
        out = self._msg_out.get(text) if self._in_message else self._next_out
        wire_dt = _WIRE_DTYPES[code, bool(flags & F.FLAG_BIG_ENDIAN)]
        order = "F" if flags & F.FLAG_FORTRAN else "C"
        if out is not None:
            dest = self._fit_out(out, wire_dt, shape, order)
        else:
            target = wire_dt if self.keep_wire_order else F.DTYPES[code]
            try:
                dest = np.empty(shape, dtype=target, order=order)
            except (ValueError, MemoryError) as exc:
                raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc
        # destination accepted: the frame is committed
        if not self._in_message:
            self._next_out = self._next_schema = None
        itemsize = wire_dt.itemsize
        swap = itemsize > 1 and _mem_is_big(dest.dtype) != bool(flags & F.FLAG_BIG_ENDIAN)
        self._dest = dest
        self._dest_bytes = dest.reshape(-1, order=order).view(np.uint8)
        self._unit = (itemsize // 2 if wire_dt.kind == "c" else itemsize) if swap else 0
        if self._unit:
            self._units = self._dest_bytes.view(f"u{self._unit}")
        self._swapped = 0
        self._crc = 0 if flags & F.FLAG_CHECKSUM else None
        self._region = _PAYLOAD
        self._fill = 0
        self._need = length

    def _fit_out(self, out: Any, wire_dt: np.dtype, shape: tuple, order: str) -> np.ndarray:
        if not isinstance(out, np.ndarray):
            raise BufferMismatchError(f"out must be an ndarray, not {type(out).__name__}")
        if out.dtype.newbyteorder("=") != wire_dt.newbyteorder("="):
            raise BufferMismatchError(f"out has dtype {out.dtype}; the frame carries {wire_dt}")
        if out.shape != tuple(shape):
            raise BufferMismatchError(f"out has shape {out.shape}; the frame carries {shape}")
        if not out.flags.writeable:
            raise BufferMismatchError("out is read-only")
        ok = out.flags.f_contiguous if order == "F" else out.flags.c_contiguous
        if not ok:
            raise BufferMismatchError(
                f"out must be {'Fortran' if order == 'F' else 'C'}-contiguous "
                f"(the frame is in {order} order)"
            )
        return out

    def _finish_frame(self) -> None:
        length, name = self._header[4], self._header[5]
        self._large_last = length >= DIRECT_MIN_BYTES
        tail = self._tail[: self._need]
        pad_from = 0
        if self._crc is not None:
            sent = int.from_bytes(tail[:4], "big")
            if sent != self._crc:
                raise ChecksumError(
                    f"payload checksum mismatch (CRC32C 0x{self._crc:08x}, trailer 0x{sent:08x})"
                )
            pad_from = 4
        if any(tail[pad_from:]):
            raise MalformedFrameError("non-zero bytes in frame padding")
        dest = self._dest
        text = name.decode("utf-8") if name else None
        self._reset_frame()
        if self._in_message:
            self._msg[text] = dest
            self._msg_bytes += length
            if len(self._msg) == self._msg_count:
                self._end_message()
        else:
            self._events.append(Array(dest, text))

    def _end_message(self) -> None:
        schema = self._msg_schema
        if isinstance(schema, dict):
            missing = set(schema) - set(self._msg)
            if missing:
                raise SchemaMismatchError(f"message lacks arrays {sorted(missing)}")
        self._events.append(Message(self._msg))
        self._in_message = False
        self._msg = {}
        self._msg_schema = None
        self._msg_out = {}


def decode_frame(
    buf: Any,
    *,
    out: Any = None,
    schema: Any = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    keep_wire_order: bool = False,
    implementation: str | None = None,
) -> tuple[Array, int]:
    """Decode one complete ARRAY frame held in ``buf`` (a datagram, a record in a file).

    Sequence numbers are not checked against a stream (the caller decides what a gap
    means); the frame's own is returned.

    Returns:
        ``(Array event, seq)``.

    Raises:
        TruncatedStreamError: ``buf`` ends inside the frame.
        MalformedFrameError: not exactly one array frame (a message, an END frame or
            trailing bytes), or any header error; other ProtocolErrors as for Decoder.
    """
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    dec = Decoder(
        max_frame_bytes=max_frame_bytes,
        max_ndim=max_ndim,
        keep_wire_order=keep_wire_order,
        implementation=implementation,
    )
    seq = int.from_bytes(mv[24:28], "big") if len(mv) >= 28 else 0
    dec._seq = seq  # a lone frame: accept its own sequence number
    dec.expect(out=out, schema=schema)
    dec.receive_data(mv)
    dec.receive_data(b"")
    try:
        ev = dec.next_event()
    except TruncatedStreamError as exc:
        raise TruncatedStreamError(
            f"incomplete frame: {exc}", received=exc.received, expected=exc.expected
        ) from None
    if not isinstance(ev, Array):
        raise MalformedFrameError("expected one array frame")
    if dec._pending:
        raise MalformedFrameError(f"{sum(len(p) for p in dec._pending)} bytes after the frame")
    return ev, seq
