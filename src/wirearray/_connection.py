"""The sans-I/O channel core: everything a channel decides, for every I/O loop.

In the manner of h11's ``Connection``: :class:`Connection` holds the codec pair, the
frames ``send(flush=False)`` holds, the state of both directions and of the close
handshake, and the failure bookkeeping -- and never touches a socket.  The blocking
layer (``transport.py``) and the asyncio layer (``aio.py``) are sibling loops over it:
each asks the core what to send and hands it what arrived, so a rule is written once
and both layers follow it (tests/test_connection.py checks the core without sockets).

Rules that live here, with one answer for both layers:

* **Small frames.** An unnamed array of up to codec.SMALL_FRAME_BYTES with the
  channel's byte order and checksum is framed whole by the compiled core
  (Encoder.encode_small) and leaves in one call; ``flush=False`` holds it (and any
  small array) in the send buffer until ``send_buffer`` bytes, a flush, a larger frame
  or message, a receive, or close.  Held bytes always leave before anything numbered
  after them: the loops send what :meth:`prepare_array` returns, in order, under their
  send lock.
* **Failures.** A timeout (or, in asyncio, a cancellation) at a frame boundary with
  nothing of a frame consumed leaves that direction usable, and so does a frame
  refused for a limit that the decoder reads past (docs/FORMAT.md section 7: it is
  left out of the ACK's count); any other failure breaks it: later calls raise
  StreamBrokenError.  Errors are kept without their traceback
  (whose frames could keep a half-received array alive through a reference cycle),
  and a broken receive side releases every decoder buffer at once.
* **Timeouts** bound each send or receive call as a whole (a deadline), never a single
  system call: a peer dripping one byte per interval cannot stretch a receive.
* **Polls** (``timeout=0``, as ``socket.settimeout(0)``) do what they can without
  waiting.  A receive returns a frame that has wholly arrived, else raises
  TimeoutError; part of a frame that arrived is kept, not a failure -- a peer's large
  frame arrives over many polls -- and the receive that continues it must name the
  same ``out=`` and ``schema=`` as the one that started it (BufferMismatchError
  otherwise, with nothing consumed), since the frame is already landing there
  (:meth:`poll_missed`).  A send raises TimeoutError, with nothing numbered, when the
  socket cannot take a byte now; a frame that starts leaving but does not fit whole
  is a timeout inside a frame (the send side breaks), as a partial ``sendall`` is.
* **The close handshake** (docs/FORMAT.md section 10).  An ACK frame says "your
  application received the first ``count`` frames of your stream, and my stream ends
  here".  ``close()`` ends this side's stream -- with END when the application
  received nothing of the peer's stream (so a version-1 reader reads it), else with
  ACK(frames received) -- then, if it sent frames, waits until the peer's ACK names
  all of them.  A receiver whose application reads the peer's END answers at once
  with ACK (which ends its own stream); whoever sees the peer's stream end beyond
  what it already confirmed answers with an ACK of what its application received.
  Frames that arrive while closing are never delivered, and never confirmed: a peer
  whose frames were dropped learns it from the count.  A receiver that refuses the
  stream (a protocol error, a limit, a deadline inside a frame) or whose application
  fails sends an ERROR frame with a code and a reason; the other side raises
  PeerError with them.  For ``format="npy"`` (no control frames) the end of the
  stream is the half-close, and the peer's own close confirms it.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import numpy as np

from . import codec as _codec
from ._channel_helpers import (
    DEFAULT_SEND_BUFFER,
    check_send_buffer,
    deliver_into,
    error_code,
    hold_frames,
    make_codec,
)
from ._common import array_to_send, detached
from ._types import ByteOrder
from .codec import NEED_DATA, Ack, Array, Encoder, EndOfStream, ErrorReport, Message
from .exceptions import (
    BufferMismatchError,
    DeliveryError,
    DeliveryTimeoutError,
    EndOfStreamError,
    MalformedFrameError,
    PeerError,
    ProtocolError,
    StreamBrokenError,
    TruncatedStreamError,
    UsageError,
)

__all__ = ["CONSUMED", "Connection"]

#: Bytes read, at most, to find the peer's report after a send failed.
REPORT_READ_LIMIT: Final = 1 << 20

#: What Connection.handle() returns for an event the application must not see.
CONSUMED: Final = object()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _same_out(a: Any, b: Any) -> bool:
    """The same destination: the same array, or dicts of the same arrays by name."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(a[k] is b[k] for k in a)
    return a is b


def _same_schema(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _refreshing(
    method: Callable[Concatenate[Connection, _P], _R],
) -> Callable[Concatenate[Connection, _P], _R]:
    """Mark a method that moves the state: the hot-path flags are recomputed after it."""

    @functools.wraps(method)
    def wrapper(self: Connection, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._refresh()

    return wrapper


#: every live core, so that a forked child can disown the ones it inherited
_LIVE: weakref.WeakSet[Connection] = weakref.WeakSet()


def _disown_after_fork() -> None:
    """In a child made by fork(): every channel inherited from the parent is closed
    here, without a byte sent or read -- its socket is shared with the parent, whose
    stream a single frame (an END from close(), a recv's read) would corrupt.  Only
    the state changes; the descriptor stays open (close it, or use ``.sock``, as the
    application decides).  docs/ARCHITECTURE.md "Channels and fork()"."""
    for core in list(_LIVE):
        core.inherited = True
        core.closed = True
        core._refresh()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_disown_after_fork)

_INHERITED = (
    "the channel was opened by the parent process: in a fork()ed child it is closed "
    "(close() sends nothing there; its socket carries the parent's stream); open "
    "channels after fork()"
)


class Connection:
    """The state of one channel, whatever drives its I/O.

    Args: those of :class:`wirearray.Channel` that concern framing and state
    (``format``, ``byteorder``, ``checksum``, the receive limits, ``keep_wire_order``,
    ``send_buffer``, ``close_timeout``).
    """

    def __init__(
        self,
        *,
        format: str = "wire",
        byteorder: ByteOrder = "network",
        checksum: bool = False,
        max_frame_bytes: int = _codec.DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        max_message_arrays: int = _codec.DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        send_buffer: int = DEFAULT_SEND_BUFFER,
        close_timeout: float | None = None,
    ):
        self.enc, self.dec = make_codec(
            format,
            byteorder,
            checksum,
            max_frame_bytes,
            max_ndim,
            max_message_arrays,
            keep_wire_order,
        )
        self._rx = self.dec._rx  # the decoder's per-message state (Decoder._arm)
        self.framing = self.dec.framing
        self.format = format
        #: whether the framing has control frames (END, ACK, ERROR) and messages
        self.wire = self.framing.control_frames
        # control frames (ERROR) of an npy channel come from a wire encoder of their own
        self._control = self.enc if self.wire else Encoder()
        self.held = bytearray()  # frames held by send(flush=False), in sequence order
        self.send_buffer = check_send_buffer(send_buffer)
        if close_timeout is not None and close_timeout < 0:
            raise UsageError("close_timeout must be >= 0 or None")
        self.close_timeout = close_timeout
        self.inbox: deque[Any] = deque()  # events decoded while a send failed
        # (out, schema) of the poll that left a frame partly received, or None
        self.polled: tuple[Any, Any] | None = None
        # this side's stream
        self.tx_error: BaseException | None = None  # detached
        # tx_error came from a control frame (ACK, ERROR) handed over on the side, not
        # from a call of the application: it has not been told
        self.tx_error_unseen = False
        self.tx_ended = False  # our stream ended: END, ACK or ERROR sent
        self.end_seq: int | None = None  # frames of our stream: what the peer must name
        self.data_sent = 0  # frames numbered in our stream
        self.peer_consumed: int | None = None  # the count of the peer's last ACK
        self.sent_error = False  # we sent an ERROR frame: nothing more from us
        # the peer's stream
        self.rx_error: BaseException | None = None  # detached
        self.consumed = 0  # frames of the peer's stream our application received
        self.refused = 0  # frames of the peer's stream refused for a limit and read past
        self.claimed: int | None = None  # the count of our last ACK
        self.peer_ended = False  # the peer's stream ended (its END or ACK arrived)
        self.peer_end_seq = 0
        self.peer_error: PeerError | None = None
        self.peer_error_seen = False  # raised to the application once already
        self.discarded = 0  # data frames that arrived while closing
        self.eof = False
        self.closing = False
        self.closed = False
        self.close_problem: BaseException | None = None
        self.peer_problem: BaseException | None = None  # what the peer sent instead
        self.failed_before_close = False
        # what the per-message paths test, kept by _refresh() whenever the state moves
        self.send_blocked = False
        self.recv_blocked = False
        self.inherited = False  # set in a fork()ed child: closed, nothing sent (_LIVE)
        _LIVE.add(self)

    def _refresh(self) -> None:
        """Recompute send_blocked and recv_blocked (one test each on the hot paths)."""
        done = self.closing or self.closed
        self.send_blocked = (
            done or self.tx_ended or self.tx_error is not None or self.peer_error is not None
        )
        self.recv_blocked = (
            done
            or self.rx_error is not None
            or self.peer_ended
            or self.peer_error is not None
            or bool(self.inbox)
        )

    @property
    def confirmed(self) -> bool:
        """The peer's ACK named every frame of our (ended) stream."""
        return self.end_seq is not None and self.peer_consumed == self.end_seq

    # ---- checks ----

    def check_send(self) -> None:
        """Raise what a send would meet: a closed or broken channel, a peer that
        reported an error or closed."""
        if not self.send_blocked:
            return
        if self.inherited:
            raise StreamBrokenError(_INHERITED)
        if self.closed or self.closing:
            raise StreamBrokenError("the channel is closed")
        if self.tx_error is not None:
            self.tx_error_unseen = False
            raise StreamBrokenError(
                f"cannot send: the channel broke earlier ({type(self.tx_error).__name__}: "
                f"{self.tx_error})"
            ) from self.tx_error
        if self.peer_error is not None:
            raise self._raise_peer_error()
        if self.tx_ended:
            if self.sent_error:
                raise StreamBrokenError("cannot send: this side ended the channel with an error")
            raise EndOfStreamError("the peer closed the channel: it reads nothing more")

    def check_recv(self) -> None:
        if self.inherited:
            raise StreamBrokenError(_INHERITED)
        if self.closed or self.closing:
            raise StreamBrokenError("the channel is closed")
        if self.inbox:
            return
        if self.rx_error is not None:
            raise StreamBrokenError(
                f"cannot receive: the channel broke earlier ({type(self.rx_error).__name__}: "
                f"{self.rx_error})"
            ) from self.rx_error
        if self.peer_error is not None:
            raise self._raise_peer_error()
        if self.peer_ended:
            raise EndOfStreamError("the peer ended the stream")

    def _raise_peer_error(self) -> PeerError:
        assert self.peer_error is not None
        self.peer_error_seen = True
        err = self.peer_error
        return PeerError(err.code, err.reason)

    @property
    def receivable(self) -> bool:
        """True when the fast receive path may run (no state to report first)."""
        return not self.recv_blocked

    # ---- sending ----

    def hold(self, array: Any, byteorder: ByteOrder | None, checksum: bool | None) -> bool:
        """``send(array, flush=False)``: number a small array's frame into the send
        buffer and return True -- no I/O, so a loop may do it without its send lock
        (held bytes always leave before anything numbered later).  False, with nothing
        numbered, for an array over SMALL_FRAME_BYTES: it must be sent at once."""
        if byteorder is None and checksum is None:
            frame = self.enc.encode_small(array)
            if frame is not None:
                self.data_sent += 1
                self.held += frame
                return True
        if array_to_send(array).nbytes > _codec.SMALL_FRAME_BYTES:
            return False
        frames = self.enc.frame(array, byteorder=byteorder, checksum=checksum)  # validates
        self.data_sent += 1
        hold_frames(self.held, frames)
        return True

    def prepare_array(
        self, array: Any, byteorder: ByteOrder | None, checksum: bool | None, flush: bool
    ) -> tuple[Any, Iterator[list] | None]:
        """Number and frame one array.  Returns ``(data, frames)``: send ``data`` (a
        bytes-like, or None) first, then each buffer list of ``frames`` (or None).
        ``(None, None)``: the frame is held.  Raises before numbering anything for an
        array or option that cannot travel."""
        if byteorder is None and checksum is None:
            frame = self.enc.encode_small(array)
            if frame is not None:
                self.data_sent += 1
                held = self.held
                if flush:
                    if not held:
                        return frame, None  # one buffer, one call
                    held += frame
                    return self.take_held(), None
                held += frame
                if len(held) >= self.send_buffer:
                    return self.take_held(), None
                return None, None
        if not flush and self.hold(array, byteorder, checksum):
            if len(self.held) >= self.send_buffer:
                return self.take_held(), None
            return None, None
        # validates before anything is numbered
        frames = self.enc.frame(array, byteorder=byteorder, checksum=checksum)
        self.data_sent += 1
        return self.take_held(), frames

    def prepare_message(
        self, arrays: Mapping[str, Any], byteorder: ByteOrder | None, checksum: bool | None
    ) -> tuple[Any, Iterator[list]]:
        """Number and frame a message; ``(held data or None, frames)``."""
        if not self.framing.messages:
            raise UsageError(f"format={self.format!r} carries single arrays; use send()")
        frames = self.enc.message(arrays, byteorder=byteorder, checksum=checksum)
        self.data_sent += 1 + len(arrays)
        return self.take_held(), frames

    def check_messages(self) -> None:
        """Raise UsageError when the framing carries no messages (recv_many)."""
        if not self.framing.messages:
            raise UsageError(f"format={self.format!r} carries single arrays; use recv()")

    def take_held(self) -> bytearray | None:
        """The held frames, to send now (None when nothing is held)."""
        if not self.held:
            return None
        data, self.held = self.held, bytearray()
        return data

    @_refreshing
    def send_failed(self, exc: BaseException) -> None:
        """A send raised ``exc``: the send side is broken (a frame may be half sent)."""
        self.tx_error = detached(exc)
        self.tx_error_unseen = False
        self.held = bytearray()

    @_refreshing
    def control_failed(self, exc: BaseException) -> None:
        """Handing the peer a control frame (an ACK answering its END or ACK, an
        ERROR) failed: the send side is broken, but no call of the application raised
        it -- close() still owes the application the verdict on its stream."""
        if self.tx_error is None:
            self.tx_error = detached(exc)
            self.tx_error_unseen = True
        self.held = bytearray()

    def failed_send_error(self, exc: BaseException) -> BaseException:
        """What a failed send raises once the bytes the peer left were read into the
        inbox (Connection.stash): its report (PeerError), or its close (a
        DeliveryError saying what it received), else ``exc`` itself."""
        err: BaseException
        if self.peer_error is not None:
            err = self._raise_peer_error()
        elif self.peer_ended and self.peer_consumed is not None:
            err = DeliveryError(
                f"the peer closed the channel after receiving {self.peer_consumed} of "
                f"{self.data_sent} frames"
            )
            err.consumed, err.sent = self.peer_consumed, self.data_sent
        elif self.peer_ended:
            err = EndOfStreamError("the peer closed the channel: it reads nothing more")
        elif self.peer_problem is not None:
            err = DeliveryError(f"the peer did not take the stream: {self.peer_problem}")
        else:
            return exc
        err.__cause__ = exc
        return err

    def read_report(self, read_now: Any) -> None:
        """A send failed: read, with ``read_now(buffer) -> int`` (a read that does not
        wait, raising when nothing is there), what the peer left before its connection
        went -- its ERROR report, its ACK -- without replying; arrays found stay for the
        next receive.  At most REPORT_READ_LIMIT bytes; only at a frame boundary."""
        dec = self.dec
        if not self.wire or self.rx_error is not None or not dec.at_boundary:
            return
        got = 0
        try:
            while got < REPORT_READ_LIMIT and self.peer_error is None:
                try:
                    ev = dec.next_event()
                except ProtocolError as exc:
                    if self.soft_refusal(exc):  # a frame refused and read past
                        continue
                    raise
                if ev is NEED_DATA:
                    n = read_now(dec.get_buffer())
                    dec.advance(n)
                    if not n:
                        return
                    got += n
                    continue
                self.stash(ev)
        except ProtocolError as exc:  # not wirearray frames: what they are says why
            self.peer_problem = detached(exc)
        except Exception:  # nothing (more) to read now: what is known
            return

    @property
    def half_close_on_close(self) -> bool:
        """An npy stream has no END frame: its end is the half-close."""
        return not self.wire

    # ---- receiving ----

    def fast_recv(self, out: Any, fd: int = -1) -> np.ndarray | None:
        """The next array when its frame lies whole in the read-ahead (see
        Decoder.next_array), else None with nothing consumed.  ``fd`` >= 0: the
        descriptor of a plain stream socket, which the compiled path may refill the
        read-ahead from with one recv(2) that does not wait (``SmallRx.take``)."""
        rx = self._rx
        if self.recv_blocked or not rx.ready:
            return None
        a: np.ndarray | None = rx.take(fd, out)
        if a is not None:
            self.polled = None
            self.consumed = (rx.seq - self.refused) & 0xFFFFFFFF
        return a

    @_refreshing
    def start_recv(self, out: Any, schema: Any) -> Array | Message | None:
        """Before a receive loop: raise what the state says, or return an event decoded
        earlier (while a send failed); else set the destination and return None."""
        self.check_recv()
        if self.inbox:
            ev = self.inbox[0]
            if out is not None and isinstance(ev, Array):
                ev = Array(deliver_into(out, ev.array), ev.name)  # a misfit out= keeps it
            self.inbox.popleft()
            if isinstance(ev, BaseException):
                raise ev
            return ev
        polled = self.polled
        if polled is not None and self.dec.in_frame:
            if not (_same_out(out, polled[0]) and _same_schema(schema, polled[1])):
                raise BufferMismatchError(
                    "a poll (timeout=0) started receiving a frame into the out= and "
                    "schema= it was given: the receive that continues it must pass the "
                    "same ones"
                )
            return None  # the frame goes on where the poll left it
        self.polled = None
        self.dec.expect(out=out, schema=schema)
        return None

    def poll_missed(self, out: Any, schema: Any) -> None:
        """A poll (``timeout=0``) found no whole frame: nothing fails.  When part of a
        frame arrived, the next receive continues it (see :meth:`start_recv`)."""
        self.polled = (out, schema) if self.dec.in_frame else None

    @_refreshing
    def stash(self, ev: Any) -> bytes | None:
        """Keep an event decoded while a send failed, for the next receive; returns a
        reply to send, as handle() does."""
        result, reply = self.handle(ev)
        if result is not CONSUMED:
            self.inbox.append(result)
        return reply

    def handle(self, ev: Any) -> tuple[Any, bytes | None]:
        """Process one decoded event.  Returns ``(result, reply)``: send ``reply`` (if
        any) first, then give ``result`` to the application -- an Array or Message, an
        exception to raise (EndOfStreamError, PeerError), or CONSUMED."""
        if isinstance(ev, (Array, Message)):  # changes nothing the flags track
            if self.closing:
                self.discarded += 1
                return CONSUMED, None
            self.consumed = (self.dec.seq - self.refused) & 0xFFFFFFFF
            return ev, None
        return self._handle_control(ev)

    @_refreshing
    def _handle_control(self, ev: Any) -> tuple[Any, bytes | None]:
        if isinstance(ev, EndOfStream):
            if self.dec.eof:  # the input ended (npy: the end of the stream; wire: after END)
                self.eof = True
            self.peer_ended = True
            self.peer_end_seq = ev.seq
            if not self.closing:
                # the application reads END after every frame but those it was refused
                self.consumed = (ev.seq - self.refused) & 0xFFFFFFFF
            reply = self._answer()
            if self.closing:
                return CONSUMED, reply
            return EndOfStreamError("the peer ended the stream"), reply
        if isinstance(ev, Ack):
            limit = self.end_seq if self.end_seq is not None else self.data_sent
            if ev.count > limit:
                raise MalformedFrameError(
                    f"an ack for {ev.count} frames of a stream of {limit} frames"
                )
            self.peer_consumed = ev.count
            self.peer_ended = True
            self.peer_end_seq = ev.seq
            reply = self._answer()
            if self.closing:
                return CONSUMED, reply
            return EndOfStreamError("the peer closed the channel"), reply
        if isinstance(ev, ErrorReport):
            self.peer_error = PeerError(ev.code, ev.reason)
            self.peer_ended = True
            if self.closing:
                return CONSUMED, None
            return self._raise_peer_error(), None
        raise AssertionError(f"unknown event {ev!r}")

    def _answer(self) -> bytes | None:
        """The peer's stream ended: confirm what our application received of it with
        an ACK (which also ends our stream), unless an earlier ACK said as much."""
        if self.tx_error is not None or self.sent_error or not self.wire:
            return None
        if self.claimed is not None and self.claimed >= self.peer_end_seq:
            return None
        if self.tx_ended and self.peer_end_seq == 0:
            return None  # an empty stream, and ours has ended: nothing to say
        held = None
        if not self.tx_ended:
            self.tx_ended = True
            self.end_seq = self.enc.seq
            held = self.take_held()  # numbered before the ACK: they go first
        self.claimed = self.consumed
        ack = self.enc.ack(self.consumed)
        return ack if held is None else bytes(held + ack)

    @_refreshing
    def _error_frame(self, code: int, reason: str) -> bytes | None:
        if self.tx_error is not None or self.sent_error:
            return None
        self.sent_error = True
        self.tx_ended = True
        self.held = bytearray()
        return self._control.error(code, reason)

    def next_closing_event(self) -> Any:
        """The decoder's next event while closing: a frame refused for a limit and
        read past is passed over (nothing that arrives while closing is delivered)."""
        while True:
            try:
                return self.dec.next_event()
            except ProtocolError:
                if not self.dec.skipping:
                    raise

    def soft_refusal(self, exc: BaseException) -> bool:
        """Whether ``exc`` refused one frame that the decoder now reads past (a limit,
        the frame's length known: docs/FORMAT.md section 7): the receive side stays
        usable, and the frame counts as not received -- the ACK that confirms the
        peer's stream leaves it out, so the peer's close() learns a frame was lost."""
        if isinstance(exc, ProtocolError) and self.dec.skipping:
            self.refused += 1
            return True
        return False

    @_refreshing
    def recv_failed(self, exc: BaseException, *, interrupted: bool = False) -> bytes | None:
        """A receive raised ``exc``.  ``interrupted``: a timeout or cancellation, which
        leaves the channel usable at a frame boundary.  Returns an ERROR frame to send
        when the peer should hear why (its bytes broke a rule, or a deadline passed
        inside a frame); the receive side is then broken and its buffers released."""
        if isinstance(exc, UsageError):  # the caller's mistake, reported before consuming
            return None
        if self.soft_refusal(exc):
            return None
        if interrupted and self.dec.at_boundary:
            return None
        self.rx_error = detached(exc)
        self.dec.release()
        self.inbox.clear()
        if isinstance(exc, TruncatedStreamError) or not isinstance(
            exc, (ProtocolError, TimeoutError)
        ):
            return None  # the peer is gone, or an OS error: nobody to tell
        if self.peer_ended:
            return None
        reason = str(exc) if isinstance(exc, ProtocolError) else "no complete frame in time"
        return self._error_frame(error_code(exc), f"refused: {reason}")

    @_refreshing
    def abort_frame(self, code: int, reason: str) -> bytes | None:
        """The ERROR frame that aborts the channel (Channel.abort), or None when the
        send side cannot carry it or the close exchange is already over."""
        self.closing = True
        if self.tx_ended and self.peer_ended:
            return None
        return self._error_frame(code, reason)

    # ---- closing ----

    @_refreshing
    def begin_close(self) -> bytes | bytearray | None:
        """Start closing: returns what to send (held frames, then END or ACK), or None."""
        self.closing = True
        # an earlier failure the application saw: close() has nothing to add.  A failed
        # ACK answering the peer's end is not one (the application saw a clean end).
        self.failed_before_close = self.rx_error is not None or (
            self.tx_error is not None and not self.tx_error_unseen
        )
        if self.tx_error is not None or self.sent_error:
            return None
        data: bytes | bytearray | None = self.take_held()
        if not self.tx_ended and self.wire:
            self.tx_ended = True
            self.end_seq = self.enc.seq
            if self.consumed or self.peer_ended:
                self.claimed = self.consumed
                last = self.enc.ack(self.consumed)
            else:  # nothing of the peer's to confirm: END, which version 1 reads
                last = self.enc.end()
            data = last if data is None else data + last
        return data

    @property
    def needs_confirmation(self) -> bool:
        """Whether close() must see the peer confirm our stream before it returns."""
        if self.tx_error is not None:
            return False
        if not self.wire:  # the peer's own close confirms an npy stream
            return self.data_sent > 0 and not self.eof
        return self.data_sent > 0 and not self.confirmed

    @property
    def close_pending(self) -> bool:
        """Whether close() must keep reading for the peer's confirmation."""
        if self.eof or self.rx_error is not None or self.peer_error is not None:
            return False
        if not self.wire:
            return self.needs_confirmation
        if self.sent_error or (self.peer_ended and self.peer_consumed is not None):
            return False  # refused, or the peer's last word named its count
        return self.needs_confirmation

    @_refreshing
    def close_failed(self, exc: BaseException | None) -> None:
        """Close's wait ended on ``exc`` (a receive error) or EOF (None)."""
        if exc is None:
            self.eof = True
        else:
            self.rx_error = detached(exc)
            self.close_problem = self.rx_error

    def close_result(
        self, timeout: float | None, *, timed_out: bool, interrupted: bool = False
    ) -> BaseException | None:
        """What close() raises once the socket is closed: None when every frame was
        confirmed (or nothing needed confirming, or the application already saw the
        connection fail), else a DeliveryError saying what is known.  ``interrupted``:
        another task ended the channel (abort) while close() waited."""
        if self.peer_error is not None:
            return None if self.peer_error_seen else self._raise_peer_error()
        if interrupted and self.wire and self.data_sent and not self.confirmed:
            err = DeliveryError(
                "the channel was aborted while close() waited for the peer's confirmation"
            )
            err.consumed, err.sent = self.peer_consumed, self.data_sent
            return err
        if self.failed_before_close or self.sent_error:
            return None  # the application was told why already
        if not self.wire:
            if self.data_sent and not self.eof and timed_out:
                return DeliveryTimeoutError(
                    f"the peer did not close its end within {timeout} s "
                    "(format='npy': its close confirms the stream)"
                )
            if self.data_sent and not self.eof and self.tx_error is not None:
                return DeliveryError(f"the connection failed while closing: {self.tx_error}")
            return None
        sent = self.end_seq if self.end_seq is not None else self.data_sent
        if not sent or self.confirmed:
            return None
        problem = self.close_problem or self.peer_problem or self.tx_error
        if self.peer_consumed is not None and self.peer_ended:
            err = DeliveryError(
                f"the peer's application received {self.peer_consumed} of the {sent} frames "
                "of the stream (it closed before the rest, or refused some over its limits)"
            )
        elif problem is not None:
            err = DeliveryError(
                f"the peer did not confirm the stream: {type(problem).__name__}: {problem}"
            )
            err.__cause__ = problem
        elif timed_out:
            err = DeliveryTimeoutError(
                f"the peer did not confirm the stream within {timeout} s "
                "(it is not reading, or reads slowly)"
            )
        else:
            err = DeliveryError(
                "the peer closed the connection without confirming the stream "
                "(it closed early or predates the close handshake)"
            )
        err.consumed, err.sent = self.peer_consumed, sent
        return err

    @_refreshing
    def finish(self) -> None:
        """The socket is closed: drop every buffer."""
        self.closed = True
        self.held = bytearray()
        self.inbox.clear()
        self.dec.release()
