"""The decoder: a byte stream, however it is split, back into arrays (see
``wirearray.codec`` for the design and the lifetimes of buffers, and docs/FORMAT.md
for the bytes).

One state machine for every framing: regions header -> payload -> tail per record.
The framing (``_framing.py``) reads and validates headers and says what follows a
payload; ``_limits.py`` holds the checks of limits, ``out=`` and schemas; a payload
lands in a ``_destination.Destination`` (swapped in place while in cache,
checksummed); a message's arrays gather in a ``_message.Assembly``; ``_readahead.py``
sizes the buffer reads land in.  Here: the regions and the input, sequence numbers,
control frames, and the two paths that take a whole small frame in one step.

With the compiled core, part of this state lives in a ``_cwire.SmallRx`` that the
decoder owns (``_rx``), so that a transport's ``recv()`` of a small array is one
compiled call: the sequence number, and a cursor into ``_pending[0]`` (frames taken
by offset, no memoryview sliced per frame).  Invariants: while the cursor is set,
``_pending[0]`` is its buffer and only bytes ``[off, end)`` of it are unconsumed;
``_unhead()`` turns them back into ``_pending[0]`` before the general path reads
the input; ``_arm()``, called wherever the state it reads changes, tells the
compiled path when it may take a frame (at a boundary, nothing in progress) and when
it may also refill the read-ahead.  Without the compiled core a plain ``_Cursor``
holds the sequence number and is never armed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _format as F
from ._common import byte_view, detached
from ._destination import Destination, Discard
from ._events import NEED_DATA, Array, EndOfStream, Schema, control_event
from ._framing import WIRE, Framing
from ._implementation import get as _get_impl
from ._limits import check_array, check_schema, truncated
from ._message import Assembly, check_message
from ._readahead import ReadAhead
from ._sizes import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGE_ARRAYS,
    DEFAULT_MAX_NDIM,
    DIRECT_MIN_BYTES,
    SWAP_CHUNK_BYTES,
)
from .exceptions import (
    FrameTooLargeError,
    MalformedFrameError,
    ProtocolError,
    StreamBrokenError,
    UsageError,
)

if TYPE_CHECKING:
    from ._types import (
        Event,
        Header,
        Implementation,
        MessageOut,
        NextEvent,
        SchemaSpec,
    )

__all__ = ["Decoder"]

_RELEASED = StreamBrokenError("the decoder was released (its connection ended)")

#: dtype kinds whose payload lands with at most one swap unit per element (or per
#: complex part): the ones payload_target() hands to a loop that swaps as it receives
_UNIT_KINDS = frozenset("biufcmM")

# Decoder regions
_HEADER, _PAYLOAD, _TAIL = 0, 1, 2
# ... and the payload of a frame refused for a limit, read past through the read-ahead
# (never into a window of a destination: it has none)
_SKIP = 3


class _Cursor:
    """What a decoder without the compiled ``SmallRx`` keeps in its place: the
    sequence number and the counters, nothing taken by a cursor (``head`` None)."""

    __slots__ = (
        "grow",
        "head",
        "keep_wire_order",
        "max_frame_bytes",
        "max_ndim",
        "may_read",
        "readahead",
        "ready",
        "received",
        "seq",
    )

    def __init__(self, pending: deque[memoryview], seq: int) -> None:
        self.seq = seq
        self.head: memoryview | None = None
        self.received = 0
        self.grow = self.ready = self.may_read = self.keep_wire_order = False
        self.max_frame_bytes = self.max_ndim = 0
        self.readahead: ReadAhead | None = None


class Decoder:
    """Turns a byte stream, however it is split, back into arrays, sans-I/O.

    Args:
        max_frame_bytes: largest payload in bytes accepted (also the cap on a whole
            message's payloads); larger frames raise FrameTooLargeError from the header,
            before anything is allocated.
        max_ndim: most dimensions accepted (at most 64, the format's maximum); the
            default, DEFAULT_MAX_NDIM, is what this host's numpy supports (64 with
            numpy 2, 32 with numpy 1.x).  A lone frame over it is refused and read
            past (see :meth:`next_event`).
        max_message_arrays: most arrays in one message.
        keep_wire_order: return arrays in the byte order they travelled in instead of
            converting them to this host's order.
        implementation: "cython" or "python" to pick the core explicitly; None for
            the package's choice.
        framing: how records are cut (``wirearray.npy.NPY`` for .npy records); the
            wire format by default.
        first_seq: the sequence number the first frame must carry (docs/FORMAT.md
            section 5): 0 for a stream; a lone frame's own to accept it whatever it
            is (as :func:`decode_frame` does).

    Raises:
        UsageError: a negative limit, or ``max_ndim`` over 64.
        ValueError: an unknown ``implementation``.

    One decoder reads one stream: use it from one thread at a time.
    """

    # the record in progress (set by _reset_frame and _start_frame)
    _region: int
    _fill: int
    _need: int
    _header: Header | None
    _header_bytes: int
    _dest: Destination | None  # where the payload lands (array frames)

    def __init__(
        self,
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = DEFAULT_MAX_NDIM,
        max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        implementation: Implementation | None = None,
        framing: Framing = WIRE,
        first_seq: int = 0,
    ) -> None:
        if max_frame_bytes < 0 or not 0 <= max_ndim <= F.MAX_NDIM or max_message_arrays < 0:
            raise UsageError("limits must be >= 0 (and max_ndim <= 64)")
        self._impl = _get_impl(implementation)
        self.framing = framing
        self._pending: deque[memoryview] = deque()
        # the compiled whole-frame fast path, for the wire format only; its state (the
        # sequence number, a cursor into _pending[0]) lives in the SmallRx: see _arm()
        self._small = getattr(self._impl, "decode_small", None) if framing.whole_frames else None
        rx = getattr(self._impl, "SmallRx", None) if self._small is not None else None
        self._rx: Any = (rx or _Cursor)(self._pending, first_seq & 0xFFFFFFFF)
        self.max_frame_bytes = max_frame_bytes
        self.max_ndim = max_ndim
        self.max_message_arrays = max_message_arrays
        self.keep_wire_order = keep_wire_order
        self._readahead: ReadAhead | None = None  # made by the first get_buffer()
        self._grow = False  # the last read filled the read-ahead: double it
        self._large_last = False  # the last frame's payload was received directly
        self._events: deque[Event] = deque()
        self._eof = False
        self._broken: BaseException | None = None
        self._direct = False
        self._last_buffer_len = -1
        self._target_len = -1  # the window of payload_target(), until reported
        self._hdr = bytearray(F.MAX_HEADER)
        self._hview = memoryview(self._hdr)
        self._tail = bytearray(F.TRAILER + F.ALIGN)
        self._next_out: np.ndarray | MessageOut | None = None
        self._next_schema: Schema | dict[str, Schema | None] | None = None
        self._message: Assembly | None = None  # the message in progress
        self._received = 0  # bytes fed or read through get_buffer (the rest: _rx.received)
        self.skipped = 0  # frames refused for a limit and read past (docs/FORMAT.md section 7)
        self._skipping = False  # the record in progress is one of those
        self._refused_softly = False  # the error being raised leaves the stream usable
        self._reset_frame()
        self._clean = False  # True at a frame boundary right after an END frame
        self._arm()

    @property
    def max_frame_bytes(self) -> int:
        """The largest payload accepted, in bytes (settable)."""
        return self._max_frame_bytes

    @max_frame_bytes.setter
    def max_frame_bytes(self, value: int) -> None:
        self._max_frame_bytes = value
        self._small_max = min(value, 1 << 63)  # what the compiled fast path can take
        self._rx.max_frame_bytes = self._small_max

    @property
    def max_ndim(self) -> int:
        """The most dimensions accepted (settable)."""
        return int(self._rx.max_ndim)

    @max_ndim.setter
    def max_ndim(self, value: int) -> None:
        self._rx.max_ndim = value

    @property
    def keep_wire_order(self) -> bool:
        """Whether arrays keep the byte order they travelled in (settable)."""
        return bool(self._rx.keep_wire_order)

    @keep_wire_order.setter
    def keep_wire_order(self, value: bool) -> None:
        self._rx.keep_wire_order = value

    @property
    def bytes_received(self) -> int:
        """Bytes received so far (fed, or read into the buffers the decoder named)."""
        return self._received + int(self._rx.received)

    @property
    def _seq(self) -> int:
        return int(self._rx.seq)

    @_seq.setter
    def _seq(self, value: int) -> None:
        self._rx.seq = value

    # ---- public API ----

    def expect(
        self, *, out: np.ndarray | MessageOut | None = None, schema: SchemaSpec = None
    ) -> None:
        """Set the destination and/or schema for the next array (or message).

        Args:
            out: an ndarray with the frame's dtype (any byte order: the array is
                delivered in ``out``'s) and shape, writable, in any memory layout:
                strided slices, transposes, negative strides, C order for a Fortran
                frame and Fortran order for a C frame all fit.  When its memory holds
                the elements in the frame's order (C-contiguous, or Fortran-contiguous
                for a Fortran frame) large payloads are received straight into it;
                otherwise they pass through the read-ahead (at most READAHEAD_BYTES,
                256 KiB, whatever the array's size) and each piece is written into
                its place, byte order converted in the same pass.  Refused: an
                ``out`` that is read-only, or whose elements share memory (a zero
                stride).  For a message, a dict of such arrays by name (names not in
                it are allocated).  An ndarray subclass (``numpy.matrix``, a
                ``MaskedArray``, your own) receives the values only, as
                ``numpy.copyto(out, a)`` writes them: they land through a plain view
                of its memory and the event's array is ``out`` itself, class,
                attributes and mask kept (every receive path of the package does the
                same).
            schema: a :class:`Schema` or (dtype, shape) tuple the next array must match;
                for a message, a dict of them by name (the message must have exactly
                these names).

        Both apply to the next frame whose header has not been read yet and are cleared
        once used.  After a BufferMismatchError inside a message, ``out`` (a dict or
        None) replaces the destinations of the message's remaining arrays instead.
        A zero-length ``out`` fits a zero-length frame of its dtype and shape.
        If the frame fails once its payload has started (truncation, checksum
        failure), the contents of ``out`` are unspecified: any of its elements may
        hold bytes of the failed frame, in either byte order, unverified.

        Raises:
            StreamBrokenError: the decoder failed earlier or was released.
            BufferMismatchError: a non-dict ``out`` for a message in progress.
            UsageError, UnsupportedDtypeError: a malformed schema.
        """
        self._check_usable()
        if self._message is not None and self._header is not None and self._region == _HEADER:
            # An array of the current message was refused its out= (BufferMismatchError):
            # the new out= (a dict by name, or None) replaces the rest of its destinations.
            self._message.redirect(out)
            out = None
        if isinstance(schema, Mapping):
            self._next_schema = {str(k): Schema.coerce(v) for k, v in schema.items()}
        else:
            self._next_schema = Schema.coerce(schema)
        self._next_out = out
        self._arm()

    def get_buffer(self) -> memoryview:
        """A writable buffer for the next ``recv_into``; report what arrived with advance().

        For a large payload (DIRECT_MIN_BYTES or more left) this is a window of the
        destination array itself, else the decoder's read-ahead buffer (16 KiB,
        doubling up to READAHEAD_BYTES while reads fill it).  A destination whose
        memory is not in the frame's order (see :meth:`expect`) is always filled
        through the read-ahead, which is then the staging buffer: no more than
        READAHEAD_BYTES is read ahead of it.  Valid until the next
        ``advance``/``next_event`` call.

        Raises:
            UsageError: called before :meth:`next_event` returned ``NEED_DATA``.
            StreamBrokenError: the decoder failed earlier or was released.
        """
        self._check_usable()
        if self._pending or self._events:
            raise UsageError("call next_event() until it returns NEED_DATA before get_buffer()")
        self._target_len = -1
        remaining = self._need - self._fill
        if self._region == _PAYLOAD and remaining >= DIRECT_MIN_BYTES:
            dest = self._dest
            assert dest is not None
            if dest.direct:  # else through the read-ahead: an out= of another layout
                n = min(remaining, SWAP_CHUNK_BYTES) if dest.unit else remaining
                self._direct = True
                self._last_buffer_len = n
                return dest.window(self._fill, n)
        self._direct = False
        rx = self._rx
        if self._readahead is None:
            self._readahead = rx.readahead = ReadAhead()
        # _pending is empty: nothing refers to the read-ahead, which may be replaced
        in_frame = self._region != _HEADER or self._fill
        rest = remaining if in_frame else 0
        view = self._readahead.get(self._grow or rx.grow, rest, self._large_last and not in_frame)
        self._grow = rx.grow = False
        self._last_buffer_len = len(view)
        return view

    def advance(self, nbytes: int) -> None:
        """Report that ``nbytes`` were written into the last get_buffer(); 0 means EOF.

        Raises:
            UsageError: ``nbytes`` outside the buffer given (or no buffer given), or
                data after the end of input.
            StreamBrokenError: the decoder failed earlier or was released.
        """
        self._check_usable()
        if not 0 <= nbytes <= self._last_buffer_len:
            raise UsageError(
                f"advance({nbytes}) outside the {self._last_buffer_len}-byte buffer given"
            )
        given, self._last_buffer_len = self._last_buffer_len, -1
        if nbytes == 0:
            self._eof = True
            self._arm()
            return
        if self._eof:
            raise UsageError("data reported after the end of input (advance(0))")
        self._grow = nbytes == given and not self._direct
        self._received += nbytes
        if self._clean:
            self._clean = False
            self._arm()
        if self._direct:
            assert self._dest is not None
            start = self._fill
            self._fill += nbytes
            self._dest.landed(start, self._fill)
        else:
            assert self._readahead is not None
            self._pending.append(self._readahead.filled(nbytes))

    def payload_target(self) -> tuple[memoryview, int, int, int | None] | None:
        """For a receive loop that swaps and checksums as it lands (the compiled
        ``_recv_payload``): what :meth:`get_buffer` would name for a large payload,
        whole, when the next read is one; report what landed with
        :meth:`payload_landed`.  None when the next read is anything else (header,
        small payload, tail, an ``out=`` of another layout, a refused frame): use
        :meth:`get_buffer`.

        Returns ``(window, pos, unit, crc)``: the destination's memory from its first
        byte not yet swapped to the payload's end, of which ``pos`` bytes (less than
        one element) already landed; the swap unit (0: no swap); the CRC32C of the
        payload so far (None when the frame carries none).  Valid until the next call
        into the decoder.

        Raises:
            UsageError, StreamBrokenError: as :meth:`get_buffer`.
        """
        self._check_usable()
        if self._pending or self._events:
            raise UsageError("call next_event() until it returns NEED_DATA before get_buffer()")
        remaining = self._need - self._fill
        dest = self._dest
        if (
            self._region != _PAYLOAD
            or remaining < DIRECT_MIN_BYTES
            or type(dest) is not Destination
            or not dest.direct
            or dest.unit not in (0, 2, 4, 8)
            # numbers only: what a record, string or void payload needs beyond one swap
            # unit per element is Destination.landed()'s to do
            or dest.array.dtype.kind not in _UNIT_KINDS
        ):
            return None
        start = dest.swapped if dest.unit else self._fill
        self._last_buffer_len = -1  # advance() is not how this window is reported
        self._target_len = remaining
        return dest.bytes[start : self._need].data, self._fill - start, dest.unit, dest.crc

    def payload_landed(self, nbytes: int, crc: int | None) -> None:
        """Report that ``nbytes`` more payload bytes landed in the window of
        :meth:`payload_target`, every whole element of it swapped in place, and that
        the payload's CRC32C is now ``crc``; 0 means EOF, as in :meth:`advance`.

        Raises:
            UsageError: no window was given, or ``nbytes`` outside it.
            StreamBrokenError: the decoder failed earlier or was released.
        """
        self._check_usable()
        if not 0 <= nbytes <= self._target_len:
            raise UsageError(f"payload_landed({nbytes}) outside the window given")
        self._target_len = -1
        if nbytes == 0:
            self._eof = True
            self._arm()
            return
        dest = self._dest
        assert dest is not None
        self._grow = False
        self._received += nbytes
        self._clean = False
        self._fill += nbytes
        if dest.unit:
            dest.swapped = self._fill - self._fill % dest.unit
        dest.crc = crc

    def receive_data(self, data: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Feed bytes (any buffer; a multi-byte-item buffer is read as its bytes).
        ``data`` is referenced, not copied, until consumed: do not modify it before
        next_event() returns NEED_DATA.

        An empty ``data`` (``b""``) is the **end of input** -- what a socket's
        ``recv`` returning ``b""`` means: next_event() then returns
        :class:`EndOfStream` after the stream's END frame (or at a record boundary, for
        ``.npy`` records), and raises TruncatedStreamError when the input ended inside
        a frame or before the END frame (docs/FORMAT.md section 6).  It may be fed
        again; nothing else may follow it.

        Raises:
            UsageError: non-empty data after the end of input.
            StreamBrokenError: the decoder failed earlier or was released.
        """
        self._check_usable()
        mv = byte_view(data)
        if not len(mv):
            self._eof = True
            self._arm()
            return
        if self._eof:
            raise UsageError("data fed after the end of input (receive_data(b''))")
        self._received += len(mv)
        if self._clean:
            self._clean = False
            self._arm()
        self._pending.append(mv)

    def next_array(self, out: np.ndarray | None = None) -> np.ndarray | None:
        """Fast path for a transport's receive loop: the next array, when its frame
        (unnamed, no message) already lies whole in the received data and the compiled
        core decodes it; else None, with nothing consumed -- then call expect() and
        next_event() as usual, which report whatever is wrong.  Same checks and same
        result as that path (``out`` as in expect(); no schema).  None, too, while an
        ``out=`` or ``schema=`` given to expect() waits for its frame."""
        if self._small is None:
            return None
        a: np.ndarray | None = self._rx.take(-1, out)
        return a

    def _next_small(self, out: np.ndarray | None) -> np.ndarray | None:
        """The compiled decode of the frame at the start of ``_pending[0]`` (trimmed:
        see _unhead), for the general path's _whole_frame; else None."""
        pending = self._pending
        if self._small is None or self._events or self._header is not None:
            return None
        if self._fill or self._message is not None or self._broken is not None:
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
        array: np.ndarray = a
        return array

    def next_event(self) -> NextEvent:
        """The next complete event -- :class:`Array`, :class:`Message`,
        :class:`EndOfStream`, :class:`Ack` or :class:`ErrorReport` -- or ``NEED_DATA``.

        Raises:
            FrameTooLargeError: a lone array frame (not in a message) over ``max_ndim``
                whose payload is within ``max_frame_bytes``: the frame is refused and
                read past, the stream stays usable (the next call goes on with the
                frame after it; :attr:`skipped` counts these).  docs/FORMAT.md
                section 7.
            ProtocolError: the bytes break the format or a limit (the decoder is then
                unusable: later calls raise StreamBrokenError).
            BufferMismatchError: ``out=`` does not fit the frame; nothing of the
                payload was consumed, call expect() with a fitting ``out`` (or none).
        """
        self._check_usable()
        self._unhead()
        try:
            return self._next_event()
        except ProtocolError as exc:
            if self._refused_softly:  # a frame refused, and being read past
                self._refused_softly = False
                raise
            self._broken = exc
            self._pending.clear()
            raise
        finally:
            self._arm()

    @property
    def skipping(self) -> bool:
        """True while the record in progress is one refused for a limit and read past
        (after next_event() raised FrameTooLargeError for it, until it has passed)."""
        return self._skipping

    @property
    def broken(self) -> bool:
        """True once an error left the stream unusable (or the decoder was released):
        every later call raises StreamBrokenError."""
        return self._broken is not None

    # ---- internals ----

    def release(self) -> None:
        """Drop every buffer the decoder holds (the read-ahead, a partly received array,
        the arrays of an unfinished message) and make it unusable: later calls raise
        StreamBrokenError.  Transports call it when a connection ends, so that a peer
        that vanished inside a large frame leaves nothing behind; the stored error
        keeps no traceback (whose frames could hold the buffers).  Idempotent."""
        self._readahead = self._rx.readahead = None
        self._rx.head = None
        self._pending.clear()
        self._events.clear()
        self._dest = None
        self._message = None
        self._skipping = False
        self._next_out = self._next_schema = None
        self._broken = detached(self._broken) if self._broken is not None else _RELEASED
        self._arm()

    def _unhead(self) -> None:
        """Hand what the compiled path left of ``_pending[0]`` back to the general
        path: its cursor's unconsumed bytes become ``_pending[0]`` itself."""
        rx = self._rx
        head = rx.head
        if head is not None:
            rx.head = None
            self._pending[0] = head[rx.off : rx.end]

    def _arm(self) -> None:
        """Tell the compiled path (SmallRx) whether it may take the next frame: at a
        frame boundary with nothing but bytes pending -- no header, message, event,
        ``out=``/``schema=`` of expect() or error in progress -- and whether it may
        also refill the read-ahead: no end of input, no END frame just read (the
        general path decides what follows one), the last frame small (after a large
        one the next read is a header's 64 bytes, see ReadAhead.get).  Called
        wherever these change."""
        rx = self._rx
        rx.ready = ready = (
            self._small is not None
            and self._region == _HEADER
            and self._fill == 0
            and self._header is None
            and not self._events
            and self._message is None
            and self._broken is None
            and self._next_out is None
            and self._next_schema is None
        )
        rx.may_read = ready and not self._eof and not self._clean and not self._large_last

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise StreamBrokenError(
                f"the stream is unusable after an earlier error: {self._broken}"
            ) from self._broken

    def _read_header(self) -> bool:
        """Called whenever the header region is full: either raise ``_need`` to read
        more (as the framing asks) and return False, or set ``_header`` (validated,
        limits checked) and return True."""
        r = self.framing.read_header(self._hview[: self._need], self._impl)
        if isinstance(r, int):
            if r <= self._need:
                raise AssertionError("a framing asked for no more header bytes")
            if len(self._hdr) < r:  # grown only when a header says so (.npy)
                old = bytes(self._hdr[: self._fill])
                self._hview = memoryview(b"")
                self._hdr = bytearray(r)
                self._hdr[: len(old)] = old
                self._hview = memoryview(self._hdr)
            self._need = r
            return False
        self._header_bytes = self._need
        self._header = r
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
            and self._message is None
        )

    @property
    def in_frame(self) -> bool:
        """True once a frame's (or message's) header was read and its destination
        chosen, until it is complete: the bytes that follow belong to it."""
        return self._header is not None or self._message is not None

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
            and self._message is None
        )

    def _reset_frame(self) -> None:
        self._region = _HEADER
        self._fill = 0
        self._need = self.framing.first_need
        self._header = None
        self._dest = None

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

    def _need_data(self) -> NextEvent:
        if not self._eof:
            return NEED_DATA
        if self._clean or (self.framing.eof_at_boundary_is_end and self.at_boundary):
            return EndOfStream()
        if self._header is None:
            got, total = self._fill, None
        else:
            hl = self._header_bytes
            length = self._header[4]
            checksum = bool(self._header[2] & F.FLAG_CHECKSUM)
            total = hl + length + self.framing.tail_length(length, checksum)
            got = hl + (self._fill if self._region in (_PAYLOAD, _SKIP) else 0)
            got += (length + self._fill) if self._region == _TAIL else 0
        message = self._message
        if message is not None:
            where = f"inside a message ({message.progress} complete)"
        else:
            where = "inside a frame"
        if self._header is None and self._fill and self._region == _HEADER:
            why = self.framing.foreign(bytes(self._hview[: min(self._fill, 4)]))
            if why:
                raise MalformedFrameError(why)
        raise truncated(where, got, total, message is not None)

    def _next_event(self) -> NextEvent:
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
            elif region == _PAYLOAD or region == _SKIP:
                self._region = _TAIL
                self._fill = 0
                assert self._header is not None and self._dest is not None
                self._need = self.framing.tail_length(self._header[4], self._dest.crc is not None)
            else:
                self._finish_frame()

    def _whole_frame(self) -> bool:
        """Fast path for small frames: when the next array frame lies whole in the first
        pending buffer, decode it in one step (same checks, fewer Python calls).  False
        (nothing consumed) when it does not, or for other framings and frame kinds."""
        mv = self._pending[0]
        if len(mv) < F.MIN_HEADER or not self.framing.whole_frames or mv[5] != F.KIND_ARRAY:
            return False
        out = self._next_out
        if (
            self._next_schema is None
            and self._message is None
            and (
                out is None or isinstance(out, np.ndarray)  # anything else: refused below
            )
        ):
            a = self._next_small(out)
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
        try:
            while not self._read_header():  # full validation, as on the slow path (which
                pass  # raises _need to h after the first 64 bytes: the same h, already here)
        finally:
            if self._skipping:  # refused, read past from here on: as on the slow path
                self._pending[0] = mv[h:]
        self._pending[0] = mv[h:]  # the header is consumed, exactly as on the slow path
        self._start_frame()  # a refused out= stops here, in the slow path's state
        assert self._dest is not None  # an array frame
        if length:  # as _consume(_PAYLOAD, ...) does, but for _fill (set just below)
            self._dest.copy(mv[h : h + length], 0)
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
            assert self._dest is not None
            self._dest.copy(chunk, self._fill)
        self._fill += n

    def _check_header(self) -> None:
        """Sequence, limits and structure: everything decidable from the header alone."""
        assert self._header is not None
        kind, code, _, shape, length, name, count, seq = self._header
        if kind == F.KIND_ERROR:  # the last word, anywhere: even after frames never sent
            return
        if self.framing.sequenced:
            if seq != self._seq:
                raise MalformedFrameError(f"frame sequence number {seq}, expected {self._seq}")
            self._seq = (seq + 1) & 0xFFFFFFFF
        message = self._message
        if kind == F.KIND_END or kind == F.KIND_ACK:
            if message is not None:
                raise MalformedFrameError(f"end of stream inside a message ({message.progress})")
            if kind == F.KIND_ACK and name:
                raise MalformedFrameError("an ack frame carries no name")
            return
        if kind == F.KIND_MESSAGE:
            if message is not None:
                raise MalformedFrameError("a message header inside a message")
            check_message(int(count), self.max_message_arrays)  # type: ignore[arg-type]
            return
        # an array: limits, representability, name, and schema (its own or its message's)
        try:
            text = check_array(
                code, shape, length, name, self.max_ndim, self.max_frame_bytes, count
            )
        except FrameTooLargeError:
            if message is None and length <= self.max_frame_bytes:
                self._skip(self._header[2], length)
            raise
        if message is not None:
            message.check(text, code, shape, length, self.max_frame_bytes, count)
        else:
            check_schema(self._next_schema, False, text, code, shape, count)

    def _skip(self, flags: int, length: int) -> None:
        """Refuse the array frame whose header was just read, and read past the rest
        of it: a frame of known length within ``max_frame_bytes`` refused for another
        limit costs the application that frame, not the stream (docs/FORMAT.md
        section 7).  The payload passes through the read-ahead (nothing is sized by
        the frame); trailer and padding are still checked."""
        self._next_out = self._next_schema = None  # they were meant for this frame
        self._dest = Discard(flags, self._impl)
        self._skipping = True
        self._refused_softly = True
        self._region = _SKIP
        self._fill = 0
        self._need = length

    def _start_frame(self) -> None:
        assert self._header is not None
        kind, code, flags, shape, length, name, count, seq = self._header
        if kind == F.KIND_END or kind == F.KIND_ACK or kind == F.KIND_ERROR:
            self._reset_frame()
            if kind == F.KIND_ERROR:  # the last word of the peer: nothing follows
                self._message = None
            else:  # the peer's stream ends here
                self._seq = 0
            self._events.append(control_event(kind, int(count), name, seq))  # type: ignore[arg-type]
            self._clean = not self._pending
            return
        message = self._message
        if kind == F.KIND_MESSAGE:
            # may raise SchemaMismatchError or BufferMismatchError, before anything changed
            message = Assembly(int(count), self._next_schema, self._next_out)  # type: ignore[arg-type]
            self._next_schema = self._next_out = None
            self._reset_frame()
            self._message = message
            if count == 0:
                self._end_message()
            return
        out = self._next_out if message is None else message.out.get(name.decode() if name else "")
        self._dest = Destination(code, flags, shape, out, self.keep_wire_order, self._impl, count)
        # destination accepted: the frame is committed
        if message is None:
            self._next_out = self._next_schema = None
        self._region = _PAYLOAD
        self._fill = 0
        self._need = length

    def _finish_frame(self) -> None:
        assert self._header is not None and self._dest is not None
        length, name = self._header[4], self._header[5]
        self._large_last = length >= DIRECT_MIN_BYTES
        self._dest.check_trailer(self._tail[: self._need])
        if self._skipping:  # a refused frame, read past: nothing to deliver
            self._skipping = False
            self.skipped += 1
            self._reset_frame()
            return
        array = self._dest.result()
        text = name.decode("utf-8") if name else None
        self._reset_frame()
        message = self._message
        if message is not None:
            message.add(text or "", array, length)
            if message.complete:
                self._end_message()
        else:
            self._events.append(Array(array, text))

    def _end_message(self) -> None:
        assert self._message is not None
        self._events.append(self._message.event())
        self._message = None
