"""Blocking socket transport: TCP (IPv4/IPv6) and UNIX stream sockets.

A thin loop over the sans-I/O channel core (``_connection.Connection``), which decides
what goes on the wire and what an event means; this module only moves bytes:

* sending: a small array (up to 64 KiB, no per-call options) on a plain socket with
  the compiled core is framed and handed to ``send(2)`` in one compiled call that
  never waits (``_sockets.py``, "The per-message send path": why a send on the
  descriptor keeps CPython's timeouts and polls meaning what they meant); what the
  socket cannot take at once follows with ``sendall`` under the deadline.  Otherwise
  what the core returns is sent in order -- a whole small frame or the held
  frames with one ``sendall``, a general frame's buffers with one ``sendmsg`` per
  buffer list where the platform has it (header, payload and trailer gathered by the
  kernel, never concatenated), ``sendall`` per buffer elsewhere and on TLS sockets;
* receiving: a small array on a plain socket with the compiled core is one compiled
  call (``SmallRx.take``, docs/ARCHITECTURE.md "From the socket into out="): the next
  frame decoded from the read-ahead, which, when empty, it refills with one
  ``recv(2)`` that never waits -- nothing there, or the peer's end, and the loop
  below waits or reports as it always did.  Otherwise ``recv_into`` the buffer the
  decoder names -- the read-ahead for headers and small frames (many per system
  call, each then decoded by one compiled call), a window of the destination array
  for large payloads (no intermediate copy);
* TCP_NODELAY on; socket buffer sizes left to the OS (forcing SO_SNDBUF/SO_RCVBUF
  switches off Linux's receive autotuning and lowered throughput in our tests).

Semantics, the same in the asyncio layer (the core holds the rules):

* ``timeout`` bounds each send or receive call as a whole (a deadline, not per system
  call).  A timeout at a frame boundary leaves the channel usable; inside a frame it
  breaks the channel's receive (or send) side;
* ``timeout=0`` is a poll (the socket is non-blocking): a receive returns a frame
  that has wholly arrived or raises TimeoutError, keeping any part of a frame for the
  next receive; a send raises TimeoutError before numbering anything when the socket
  cannot take a byte (the rules: ``_connection.py``, "Polls");
* a peer that closes inside a frame raises TruncatedStreamError, one that closes at a
  boundary without ending its stream too (received=0);
* ``close()`` ends the stream and waits (``close_timeout``) until the peer confirms it
  received every frame: a close() that returns means the peer's application has
  every frame; otherwise DeliveryError (PeerError when the peer said why);
* a receiver that refuses the stream (a protocol error, a limit, a deadline inside a
  frame) tells the sender with an ERROR frame before it stops; the sender's next send,
  receive or close raises PeerError with the code and the reason;
* OS errors (reset, refused, ...) pass through unwrapped, except that a send failing
  because the peer refused the stream raises the peer's PeerError (chained);
* after any error inside a frame -- or a protocol error anywhere, but a lone frame
  refused for ``max_ndim`` and read past (docs/FORMAT.md section 7) -- the side that
  failed refuses further use with StreamBrokenError; arrays returned before are
  untouched, and the buffers of the failed receive are released at once.

The listening side is listener.py.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from . import codec as _codec
from ._address import parse_address
from ._bulk import recv_payload
from ._channel_helpers import (
    CONTROL_TIMEOUT,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_SEND_BUFFER,
    array_of,
    item_of,
    message_of,
)
from ._common import array_to_send, byte_view
from ._connection import Connection
from ._sizes import SMALL_FRAME_BYTES
from ._sockets import (
    WOULD_BLOCK,
    Deadline,
    connect_socket,
    send_parts,
    shutdown_write,
    small_holder,
    small_receiving,
    small_sender,
    tune,
    writable_now,
)
from .auth import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    ClientHandshake,
    normalize_authkey,
    run_blocking,
)
from .codec import NEED_DATA, Array, Message
from .exceptions import (
    EndOfStreamError,
    ErrorCode,
    PeerError,
)

#: a receive that found nothing within its timeout, or nothing now in a poll
_NOTHING_NOW: tuple[type[OSError], ...] = (TimeoutError, *WOULD_BLOCK)

if TYPE_CHECKING:
    import ssl as _ssl

    from ._types import (
        Address,
        AuthKey,
        Buffer,
        Buffers,
        ByteOrder,
        Format,
        MessageOut,
        SchemaLike,
        SchemaSpec,
    )

__all__ = ["Channel", "connect"]


class Channel:
    """One connection carrying arrays both ways.

    Created by :func:`connect` and :meth:`Listener.accept` (or around a connected
    socket).  Options (keyword-only, all transports alike):

    Args:
        byteorder: "network" (default; payloads big-endian) or "native" (sent as the
            arrays' memory is; a same-order receiver converts nothing).
        checksum: append a CRC32C to every payload (off by default).
        timeout: seconds each send or receive call may take in all (None: forever;
            0: every call is a poll, see :func:`connect`).
        max_frame_bytes: the largest frame (and message) accepted from the peer,
            checked on the header before anything is allocated (default 1 GiB).
        max_ndim: most dimensions accepted (default: what this host's numpy supports,
            64 with numpy 2, 32 with numpy 1.x; codec.DEFAULT_MAX_NDIM).
        max_message_arrays: most arrays in one message (default 1024).
        keep_wire_order: return arrays in the byte order they travelled in.
        format: "wire" (default, docs/FORMAT.md) or "npy": every message is a
            standard .npy record, for peers that have only numpy (single arrays only).
        send_buffer: bytes of frames ``send(..., flush=False)`` may hold before they
            go out (default 64 KiB).
        close_timeout: seconds ``close()`` waits for the peer's confirmation (default:
            ``timeout``, else 10 s).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        byteorder: ByteOrder = "network",
        checksum: bool = False,
        timeout: float | None = None,
        max_frame_bytes: int = _codec.DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        max_message_arrays: int = _codec.DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        format: Format = "wire",
        send_buffer: int = DEFAULT_SEND_BUFFER,
        close_timeout: float | None = None,
    ):
        self._core = Connection(
            format=format,
            byteorder=byteorder,
            checksum=checksum,
            max_frame_bytes=max_frame_bytes,
            max_ndim=max_ndim,
            max_message_arrays=max_message_arrays,
            keep_wire_order=keep_wire_order,
            send_buffer=send_buffer,
            close_timeout=close_timeout,
        )
        self.sock = sock
        self._timeout = timeout
        sock.settimeout(timeout)
        tune(sock)
        self._on_close: Callable[[], None] | None = None  # the Listener's connection count
        # the per-message send path (module header): a plain socket and a compiled core
        self._send_small = small_sender(sock, self._core.enc)
        self._hold_small = small_holder(self._core.enc)
        self._want_big = 1 if self._core.enc.byteorder == "network" else -1
        # ... and the receive path's refill of the read-ahead (_sockets.small_receiving)
        self._recv_fd = small_receiving(sock, self._core.dec)

    # ---- context manager, properties ----

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:  # an incomplete stream: say so rather than end it as if it were whole
            self.abort(f"the application failed ({exc_type.__name__})")

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else "open"
        return f"<wirearray.Channel {self.format} {state} fd={self.sock.fileno()}>"

    @property
    def format(self) -> str:
        """ "wire" or "npy"."""
        return self._core.format

    @property
    def timeout(self) -> float | None:
        """Seconds each send or receive call may take in all (None: no limit)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.sock.settimeout(value)
        self._timeout = value

    @property
    def pending_bytes(self) -> int:
        """Bytes held by ``send(..., flush=False)`` and not sent yet."""
        return len(self._core.held)

    @property
    def closed(self) -> bool:
        return self._core.closed

    def fileno(self) -> int:
        return self.sock.fileno()

    # ---- sending ----

    def send(
        self,
        array: npt.ArrayLike,
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
        flush: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send one array, of any shape and layout.

        Dtypes: bool, integers, floats, complex, datetime64/timedelta64 with a unit,
        ``S``/``U``/``V`` and records of these (docs/FORMAT.md section 3); an ndarray
        subclass travels as its values, a ``numpy.ma.MaskedArray`` is refused.  The
        payload is not copied when it already has the wire byte order and is
        contiguous; otherwise it is converted through a staging buffer of up to 4 MiB.
        With the compiled core a small array (up to SMALL_FRAME_BYTES = 64 KiB) is
        framed whole into one buffer, and on a plain socket on POSIX framed and sent in
        one compiled call (docs/ARCHITECTURE.md, "The per-message path"); the fallback
        frames it as a header and its payload.  A frame leaves in one system
        call, except a large payload converted on the way (one call per staging chunk
        of up to 4 MiB).

        Args:
            array: the array (anything ``numpy.asarray`` accepts).
            byteorder, checksum: override the channel's for this array.
            flush: False holds a small array's frame in the send buffer, to go out
                with the next ones in one system call: when ``send_buffer`` bytes are
                held, on ``send()`` with ``flush=True``, ``flush()``, any receive and
                ``close()``.  Larger arrays are never held.  The array may be modified
                once send() returns, as always.
            progress: called with each number of bytes handed to the socket; the
                frame's buffers then go out in slices of at most 4 MiB.

        Raises:
            UnsupportedDtypeError, UsageError: before anything is sent.
            PeerError: the peer refused the stream (its code and reason).
            EndOfStreamError: the peer closed the channel.
            TimeoutError, OSError: the send side is then broken.
        """
        core = self._core
        if (
            not flush
            and self._hold_small is not None
            and byteorder is None
            and checksum is None
            and not core.send_blocked
            and self._timeout != 0
        ):  # one compiled call frames the array into the held frames
            enc = core.enc
            seq = enc._seq
            n = self._hold_small(
                core.held, array, self._want_big, enc.checksum, seq, SMALL_FRAME_BYTES
            )
            if n >= 0:
                enc._seq = (seq + 1) & 0xFFFFFFFF
                core.data_sent += 1
                if n >= core.send_buffer:
                    self._transmit(core.take_held(), None, None)
                return
        small = self._send_small
        if (
            small is not None
            and flush
            and byteorder is None
            and checksum is None
            and progress is None
            and not core.send_blocked
            and not core.held
        ):  # one compiled call frames the array and hands it to send(2)
            if self._timeout == 0 and not writable_now(self.sock):
                # a poll sends only when the socket reports room, as on the Python path
                # (a frame that then starts leaving but does not fit breaks the side)
                array_to_send(array)  # a misuse is reported as such, even now
                raise _full()
            enc = core.enc
            seq = enc._seq
            try:
                # the descriptor asked for each time: a socket closed behind the
                # channel's back says -1 (EBADF), never a number reused since
                fd = self.sock.fileno()
                r = small(fd, array, self._want_big, enc.checksum, seq, SMALL_FRAME_BYTES)
            except OSError as exc:  # the socket failed: the frame was numbered, as sent
                enc._seq = (seq + 1) & 0xFFFFFFFF
                core.data_sent += 1
                core.send_failed(exc)
                raise self._peer_report(exc) from exc
            if r is not None:
                if r:  # the socket took part of the frame, or none of it, now
                    rest, sent = r
                    if not sent and self._timeout == 0:
                        raise _full()  # a poll, nothing sent: nothing numbered
                    enc._seq = (seq + 1) & 0xFFFFFFFF
                    core.data_sent += 1
                    self._transmit(rest, None, None)  # waits, under the deadline
                    return
                enc._seq = (seq + 1) & 0xFFFFFFFF
                core.data_sent += 1
                return
        if core.send_blocked:
            core.check_send()
        if self._timeout == 0 and not writable_now(self.sock):
            array_to_send(array)  # a misuse is reported as such, even now
            raise _full()
        data, frames = core.prepare_array(array, byteorder, checksum, flush)
        if data is not None or frames is not None:
            self._transmit(data, frames, progress)

    def send_many(
        self,
        arrays: Mapping[str, npt.ArrayLike],
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send named arrays as one message: the peer's recv_many() gets all or none.

        Raises: as :meth:`send`; UsageError for a non-mapping or ``format="npy"``.
        """
        core = self._core
        core.check_send()
        if self._timeout == 0 and not writable_now(self.sock):
            raise _full()
        data, frames = core.prepare_message(arrays, byteorder, checksum)
        self._transmit(data, frames, progress)

    def flush(self) -> None:
        """Send the frames that ``send(..., flush=False)`` holds, now (one system call).

        Raises:
            TimeoutError, OSError: the send side is then broken.
        """
        core = self._core
        if not core.held or core.closed:
            return
        core.check_send()
        if self._timeout == 0 and not writable_now(self.sock):
            raise _full()  # the frames stay held
        self._transmit(core.take_held(), None, None)

    def _transmit(
        self,
        data: bytes | bytearray | None,
        frames: Iterator[Buffers] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        sock, core = self.sock, self._core
        deadline = Deadline(self._timeout) if self._timeout else None  # 0: a poll
        try:
            if progress is not None:
                self._send_sliced(data, frames, progress, deadline)
            else:
                if data is not None:
                    sock.sendall(data)  # sendall's timeout bounds the whole call
                if frames is not None:
                    for parts in frames:
                        send_parts(sock, parts, deadline)
        except WOULD_BLOCK:  # a poll: the frame started leaving but did not fit whole
            err = TimeoutError("the socket could not take the whole frame now (timeout=0)")
            core.send_failed(err)
            raise err from None
        except BaseException as exc:
            core.send_failed(exc)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise self._peer_report(exc) from exc
            raise
        finally:
            if deadline is not None and self._timeout is not None:
                sock.settimeout(self._timeout)

    def _send_sliced(
        self,
        data: Buffer | None,
        frames: Iterator[Buffers] | None,
        progress: Callable[[int], None],
        deadline: Deadline | None,
    ) -> None:
        step = 4 << 20

        def out(buf: Buffer) -> None:
            mv = byte_view(buf)
            for k in range(0, len(mv), step):
                piece = mv[k : k + step]
                if deadline is not None and deadline.at is not None:
                    self.sock.settimeout(deadline.remaining())
                self.sock.sendall(piece)
                progress(len(piece))

        if data is not None:
            out(data)
        for parts in frames or ():
            for p in parts:
                out(p)

    def _peer_report(self, exc: BaseException) -> BaseException:
        """A send failed with ``exc``: what to raise instead -- the peer's report
        (PeerError) or its close (what it received), read from what it left."""
        self._read_report()
        err = self._core.failed_send_error(exc)
        return exc if err is exc else err

    def _read_report(self) -> None:
        """Read, without waiting, what the peer left before its connection went."""
        sock = self.sock
        try:
            sock.settimeout(0.0)
            self._core.read_report(sock.recv_into)
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self._timeout)

    def _send_control(self, data: bytes | None) -> None:
        """Hand the peer a control frame (ACK, ERROR) without waiting long for it."""
        if not data:
            return
        sock = self.sock
        limit = CONTROL_TIMEOUT if self._timeout is None else min(self._timeout, CONTROL_TIMEOUT)
        try:
            sock.settimeout(limit)
            sock.sendall(data)
        except OSError as exc:
            self._core.control_failed(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self._timeout)

    def _refused(self, report: bytes | None) -> None:
        """This side refused the stream: tell the peer why, then end the connection at
        once -- nothing more can be read or sent on it, and a sender blocked on full
        buffers learns it now (its send fails, and finds the report)."""
        if report is not None:
            self._send_control(report)
            self._finish()

    # ---- receiving ----

    def recv(
        self, out: np.ndarray | None = None, *, schema: SchemaLike | None = None
    ) -> np.ndarray:
        """Receive one array.

        Args:
            out: receive into this array (same dtype in any byte order, same shape,
                writable, any layout) and one buffer serves a whole stream.  When its
                memory holds the elements in the frame's order (C-contiguous, or
                Fortran-contiguous for a Fortran frame) the payload lands in it
                directly; any other layout -- a strided slice such as
                ``grid[:, ::2]``, a transpose, negative strides, C order for a Fortran
                frame -- is filled through the decoder's read-ahead (at most 256 KiB,
                whatever the array's size), each piece written into its place with
                the byte order converted in the same pass (``Decoder.expect``).  The
                returned array is ``out``.  An ndarray subclass
                (``numpy.matrix``, a ``MaskedArray``, your own) receives the values
                only, as ``numpy.copyto(out, a)`` writes them, and keeps its class,
                attributes and mask (``Decoder.expect``).  After an error inside
                the frame (a timeout, truncation, a checksum failure) its contents
                are unspecified: any element may hold bytes of the failed frame, in
                either byte order.
            schema: a ``Schema``/``(dtype, shape)`` the array must match, with None as
                a wildcard; checked on the header, before the payload is read.

        Returns:
            ``out`` (above), or else a new writable array of the frame's shape and
            dtype in native byte order (in the order it travelled in with the
            channel's ``keep_wire_order=True``): numbers, bool, datetime64/timedelta64 with
            their unit, ``S``/``U``/``V``, records with the sender's names, offsets
            and item size (each field in that byte order); C order, or Fortran order for a
            Fortran-ordered frame.

        Frames held by ``send(flush=False)`` are sent first.  A small frame already
        in the read-ahead is taken, validated, converted and written in one compiled
        call, which refills an empty read-ahead with one ``recv(2)`` that does not
        wait (plain sockets, compiled core, POSIX); anything else -- ``schema=``,
        names, messages, large payloads, TLS, the fallback -- takes the decoder's
        general path (docs/ARCHITECTURE.md, "From the socket into ``out=``").  Both
        check the same things and raise the same errors.  With ``timeout=0`` it
        polls: ``TimeoutError`` when no whole frame has arrived, the channel usable.

        Raises:
            EndOfStreamError: the peer ended the stream (its close()).
            PeerError: the peer reported an error (its code and reason).
            FrameTooLargeError: the frame is over a limit (``max_frame_bytes``,
                ``max_ndim``, ``max_message_arrays``).  A lone array over ``max_ndim``
                whose payload is within ``max_frame_bytes`` is read past: the channel
                stays usable and the next recv() returns the array after it.
            SchemaMismatchError: the frame did not match (or was a message).
            BufferMismatchError: ``out`` does not fit (another dtype or shape,
                read-only, elements sharing memory); nothing was consumed.
            TimeoutError, TruncatedStreamError, ProtocolError, OSError.
        """
        core = self._core
        if core.held:
            self.flush()  # a peer may wait for what is held before it answers
        # one compiled call: the next small array from the read-ahead, refilled with
        # one recv(2) that does not wait when empty (SmallRx.take); the descriptor is
        # asked for each time: a socket closed behind the channel's back says -1
        try:
            a = core.fast_recv(out, self.sock.fileno() if self._recv_fd else -1)
        except BaseException as exc:  # its read failed: as a failed recv_into below
            self._refused(core.recv_failed(exc))
            raise
        if a is not None:
            return a
        if schema is None and core.receivable and core.dec.idle:
            dec = core.dec  # nothing buffered: one read, then the fast path again
            try:
                n = self.sock.recv_into(dec.get_buffer())
            except _NOTHING_NOW:
                raise TimeoutError("timed out waiting for the next frame") from None
            except BaseException as exc:
                self._refused(core.recv_failed(exc))
                raise
            dec.advance(n)
            a = core.fast_recv(out)
            if a is not None:
                return a
        return array_of(self._recv_event(out, schema))

    def recv_many(
        self,
        out: Mapping[str, np.ndarray] | None = None,
        *,
        schema: Mapping[str, SchemaLike] | None = None,
    ) -> dict[str, np.ndarray]:
        """Receive one message sent with send_many(): a dict of name -> array.

        ``out`` and ``schema`` are dicts by name (see Decoder.expect).  Raises as
        :meth:`recv`; UsageError on ``format="npy"``.
        """
        self._core.check_messages()
        return message_of(self._recv_event(out, schema))

    def recv_event(
        self, out: np.ndarray | MessageOut | None = None, *, schema: SchemaSpec = None
    ) -> Array | Message:
        """Receive the next array or message as a codec event (:class:`codec.Array`,
        with its name, or :class:`codec.Message`): for receivers that take both.

        Raises: as :meth:`recv`.
        """
        return self._recv_event(out, schema)

    def __iter__(self) -> Iterator[np.ndarray | dict[str, np.ndarray]]:
        """Arrays (and dicts, for messages) until the peer ends the stream."""
        while True:
            try:
                ev = self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield item_of(ev)

    def _recv_event(
        self, out: np.ndarray | MessageOut | None, schema: SchemaSpec
    ) -> Array | Message:
        core = self._core
        if core.held:
            self.flush()
        earlier = core.start_recv(out, schema)
        if earlier is not None:
            return earlier
        sock, dec = self.sock, core.dec
        deadline = Deadline(self._timeout) if self._timeout else None  # 0: a poll
        first = True
        try:
            while True:
                ev = dec.next_event()
                if ev is NEED_DATA:
                    if not first and deadline is not None:
                        sock.settimeout(deadline.remaining())
                    first = False
                    # a large payload: received, swapped and checksummed in C (_bulk.py)
                    if not recv_payload(sock, dec, sock.gettimeout()):
                        dec.advance(sock.recv_into(dec.get_buffer()))
                    continue
                result, reply = core.handle(ev)
                if reply is not None:
                    self._send_control(reply)
                if isinstance(result, (Array, Message)):
                    return result
                if isinstance(result, BaseException):
                    raise result
                # CONSUMED: an event the application does not see
        except (EndOfStreamError, PeerError):
            raise
        except WOULD_BLOCK:  # a poll (timeout=0): no whole frame yet, nothing failed
            core.poll_missed(out, schema)
            raise TimeoutError("no whole frame has arrived yet (timeout=0)") from None
        except BaseException as exc:
            interrupted = isinstance(exc, TimeoutError)
            self._refused(core.recv_failed(exc, interrupted=interrupted))
            if interrupted and core.rx_error is None:
                raise TimeoutError("timed out waiting for the next frame") from None
            raise
        finally:
            if not first and deadline is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(self._timeout)

    # ---- closing ----

    def close(self, timeout: float | None = None) -> None:
        """End the stream, wait until the peer confirms it received every frame, and
        close the socket (docs/FORMAT.md section 10).

        Frames held by ``send(flush=False)`` go out first.  Arrays the peer sends
        meanwhile are not delivered (and the peer learns they were not received).

        Args:
            timeout: seconds to wait for the confirmation (default: ``close_timeout``,
                else the channel's ``timeout`` unless it is None or 0, else 10 s); 0
                does not wait, and then nothing is confirmed or raised.

        Raises:
            PeerError: the peer refused the stream (its code and reason).
            DeliveryError: the peer confirmed only part of the stream, or closed
                without confirming; DeliveryTimeoutError: no confirmation in time.
            The socket is closed whatever happens; idempotent.
        """
        core = self._core
        if core.closed:
            return
        if timeout is None:
            timeout = core.close_timeout
        if timeout is None:
            # a polling channel (timeout=0) still waits: a confirmation is a round trip
            timeout = self._timeout if self._timeout else DEFAULT_CLOSE_TIMEOUT
        timed_out = False
        try:
            data = core.begin_close()
            if data is not None:
                try:
                    self.sock.settimeout(timeout if timeout > 0 else CONTROL_TIMEOUT)
                    self.sock.sendall(data)
                except OSError as exc:
                    core.send_failed(exc)
                    self._read_report()
            if core.half_close_on_close:
                shutdown_write(self.sock)
            if timeout > 0 and core.close_pending:
                try:
                    self._drain(Deadline(timeout))
                except TimeoutError:
                    timed_out = True
        finally:
            self._finish()
        if timeout > 0:
            err = core.close_result(timeout, timed_out=timed_out)
            if err is not None:
                raise err

    def _drain(self, deadline: Deadline) -> None:
        """Read until the core needs nothing more for the close (or the deadline)."""
        core, sock = self._core, self.sock
        dec = core.dec
        try:
            while core.close_pending:
                ev = core.next_closing_event()
                if ev is NEED_DATA:
                    buf = dec.get_buffer()
                    sock.settimeout(deadline.remaining())
                    n = sock.recv_into(buf)
                    if not n:
                        core.close_failed(None)
                        return
                    dec.advance(n)
                    continue
                self._send_control(core.handle(ev)[1])
        except TimeoutError:
            raise
        except OSError as exc:  # ssl.SSLError included: it subclasses OSError
            core.close_failed(exc)
        except Exception as exc:  # a ProtocolError: what the peer sent instead
            core.close_failed(exc)

    def abort(self, reason: str = "aborted", *, code: int = ErrorCode.APPLICATION) -> None:
        """End the channel at once with an error: the peer gets an ERROR frame with
        ``code`` and ``reason`` (at most 255 bytes of UTF-8) -- its next call raises
        PeerError -- and the socket is closed without waiting.  Held frames are
        dropped.  Idempotent; a no-op on a closed channel."""
        core = self._core
        if core.closed:
            return
        try:
            self._send_control(core.abort_frame(code, reason))
        finally:
            self._finish()

    def _finish(self) -> None:
        self._core.finish()
        self.sock.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


def _full() -> TimeoutError:
    return TimeoutError("the socket cannot take more now (timeout=0); nothing was sent")


def connect(
    address: Address,
    *,
    timeout: float | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    authkey: AuthKey | None = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    **options: Any,
) -> Channel:
    """Connect to a wirearray peer and return a :class:`Channel`.

    Args:
        address: ``("host", port)``, ``"host:port"``, ``"[::1]:port"`` or
            ``"unix:/path"``; names resolve with getaddrinfo, each address tried in turn.
        timeout: bounds the connection attempt and every later send/receive call
            (seconds; None: no limit).  0 makes every later call a poll, as
            ``socket.settimeout(0)`` does: a receive returns a frame that has wholly
            arrived, else raises TimeoutError and the channel stays usable (a frame
            partly arrived is continued by the next receive, which must pass the same
            ``out=`` and ``schema=``); a send raises TimeoutError, nothing sent, when
            the socket cannot take a byte now, and breaks the send side when a frame
            starts leaving but does not fit whole.  The connection itself is then
            bounded by ``handshake_timeout`` (a round trip cannot be polled), and
            ``close()`` waits ``close_timeout``, else 10 s, for the confirmation.
        ssl: an ``ssl.SSLContext`` (e.g. ``ssl.create_default_context(cafile=...)``,
            with ``load_cert_chain`` for mutual TLS) to speak TLS.
        server_hostname: the name the server's certificate must carry (default: the
            host of ``address``; required for UNIX sockets when the context checks
            hostnames).
        authkey: a shared secret (>= 16 bytes) for the HMAC challenge-response
            handshake, run before any frame (inside TLS when both are given).
        handshake_timeout: bounds the TLS and authkey handshakes together.
        options: see :class:`Channel`.

    Raises:
        AddressError: a malformed or unresolvable address.
        AuthenticationError: the authkey handshake failed (either side's key).
        ssl.SSLError, OSError: TLS failures, ConnectionRefusedError, TimeoutError...
    """
    ep = parse_address(address)
    key = normalize_authkey(authkey)
    # timeout=0 makes the channel poll; a connection (a round trip) cannot be polled,
    # so handshake_timeout bounds it then
    sock = connect_socket(ep, handshake_timeout if timeout == 0 else timeout)
    try:
        deadline = Deadline(handshake_timeout)
        if ssl is not None:
            sock.settimeout(deadline.remaining())  # do_handshake: one deadline in all
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname or ep.host)
        if key is not None:
            run_blocking(sock, ClientHandshake(key), deadline)
        return Channel(sock, timeout=timeout, **options)
    except TimeoutError:
        sock.close()
        raise TimeoutError(f"the handshake took more than {handshake_timeout} s") from None
    except BaseException:
        sock.close()
        raise
