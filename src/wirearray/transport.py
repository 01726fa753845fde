"""Blocking socket transport: TCP (IPv4/IPv6) and UNIX stream sockets.

A thin loop over the sans-I/O channel core (``_connection.Connection``), which decides
what goes on the wire and what an event means; this module only moves bytes:

* sending: what the core returns is sent in order -- a whole small frame or the held
  frames with one ``sendall``, a general frame's buffers with one ``sendmsg`` per
  buffer list where the platform has it (header, payload and trailer gathered by the
  kernel, never concatenated), ``sendall`` per buffer elsewhere and on TLS sockets;
* receiving: ``recv_into`` the buffer the decoder names -- the read-ahead for headers
  and small frames (many per system call, each then decoded by one compiled call),
  a window of the destination array for large payloads (no intermediate copy);
* TCP_NODELAY on; socket buffer sizes left to the OS (forcing SO_SNDBUF/SO_RCVBUF
  switches off Linux's receive autotuning and lowered throughput in our tests).

Semantics, the same in the asyncio layer (the core holds the rules):

* ``timeout`` bounds each send or receive call as a whole (a deadline, not per system
  call).  A timeout at a frame boundary leaves the channel usable; inside a frame it
  breaks the channel's receive (or send) side;
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
* after any error inside a frame -- or a protocol error anywhere -- the side that
  failed refuses further use with StreamBrokenError; arrays returned before are
  untouched, and the buffers of the failed receive are released at once.

Listener: handshakes (TLS, authkey) of many connections progress side by side, each
within ``handshake_timeout`` in all; ``max_handshakes`` bounds them (the oldest is
dropped for a new one), ``max_connections`` bounds the established channels only.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl as _ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from . import codec as _codec
from ._address import parse_address
from ._connection import (
    CONSUMED,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_SEND_BUFFER,
    Connection,
    array_of,
    item_of,
    message_of,
)
from ._sockets import (
    Deadline,
    bind_listening_socket,
    connect_socket,
    is_tls,
    send_parts,
    shutdown_write,
    tune,
    unlink_quietly,
)
from .auth import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    ClientHandshake,
    ServerHandshake,
    normalize_authkey,
    run_blocking,
)
from .codec import NEED_DATA, Encoder
from .exceptions import (
    AuthenticationError,
    EndOfStreamError,
    ErrorCode,
    PeerError,
    UsageError,
)

__all__ = ["Channel", "Listener", "connect", "listen"]

#: Longest wait to hand the peer a control frame (ACK, ERROR) on the way out.
CONTROL_TIMEOUT = 2.0
#: Default bound on connections in their handshake at once (Listener, aio.serve).
DEFAULT_MAX_HANDSHAKES = 128
#: Bytes read, at most, to find the peer's report after a send failed.
_REPORT_READ_LIMIT = 1 << 20


class Channel:
    """One connection carrying arrays both ways.

    Created by :func:`connect` and :meth:`Listener.accept` (or around a connected
    socket).  Options (keyword-only, all transports alike):

    Args:
        byteorder: "network" (default; payloads big-endian) or "native" (sent as the
            arrays' memory is; a same-order receiver converts nothing).
        checksum: append a CRC32C to every payload (off by default).
        timeout: seconds each send or receive call may take in all (None: forever).
        max_frame_bytes: the largest frame (and message) accepted from the peer,
            checked on the header before anything is allocated (default 1 GiB).
        max_ndim, max_message_arrays: further receive limits.
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
        byteorder: str = "network",
        checksum: bool = False,
        timeout: float | None = None,
        max_frame_bytes: int = _codec.DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        max_message_arrays: int = _codec.DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        format: str = "wire",
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

    # ---- context manager, properties ----

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
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
        array: Any,
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        flush: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send one array (any supported dtype and layout).

        The payload is not copied when it already has the wire byte order and is
        contiguous; otherwise it is converted through a staging buffer of up to 4 MiB.
        A small array (up to SMALL_FRAME_BYTES = 64 KiB) is framed whole into one buffer
        by the compiled core.  A frame leaves in one system call, except a large
        payload converted on the way (one call per staging chunk of up to 4 MiB).

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
        core.check_send()
        data, frames = core.prepare_array(array, byteorder, checksum, flush)
        if data is not None or frames is not None:
            self._transmit(data, frames, progress)

    def send_many(
        self,
        arrays: Mapping[str, Any],
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send named arrays as one message: the peer's recv_many() gets all or none.

        Raises: as :meth:`send`; UsageError for a non-mapping or ``format="npy"``.
        """
        core = self._core
        core.check_send()
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
        self._transmit(core.take_held(), None, None)

    def _transmit(self, data: Any, frames: Any, progress: Any) -> None:
        sock, core = self.sock, self._core
        deadline = Deadline(self._timeout) if self._timeout is not None else None
        try:
            if progress is not None:
                self._send_sliced(data, frames, progress, deadline)
            else:
                if data is not None:
                    sock.sendall(data)  # sendall's timeout bounds the whole call
                if frames is not None:
                    for parts in frames:
                        send_parts(sock, parts, deadline)
        except BaseException as exc:
            core.send_failed(exc)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise self._peer_report(exc) from exc
            raise
        finally:
            if deadline is not None and self._timeout is not None:
                sock.settimeout(self._timeout)

    def _send_sliced(self, data: Any, frames: Any, progress: Any, deadline: Any) -> None:
        step = 4 << 20

        def out(buf: Any) -> None:
            mv = memoryview(buf).cast("B")
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
        """Read, without waiting, what the peer left before its connection went (its
        ERROR report, its ACK); arrays found stay for the next recv()."""
        core, dec, sock = self._core, self._core.dec, self.sock
        if not core.wire or core.rx_error is not None or not dec.at_boundary:
            return
        got = 0
        try:
            sock.settimeout(0.0)
            while got < _REPORT_READ_LIMIT and core.peer_error is None:
                ev = dec.next_event()
                if ev is NEED_DATA:
                    n = sock.recv_into(dec.get_buffer())
                    dec.advance(n)
                    if not n:
                        break
                    got += n
                    continue
                core.stash(ev)  # no reply: our send side failed
        except Exception:  # nothing (more) to read, or it was not a report
            pass
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
            self._core.send_failed(exc)
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

    def recv(self, out: np.ndarray | None = None, *, schema: Any = None) -> np.ndarray:
        """Receive one array.

        Args:
            out: receive into this array (same dtype in any byte order, same shape,
                writable, contiguous in the frame's order): the payload lands in it
                directly and one buffer serves a whole stream.  The returned array is
                ``out`` (a view of it when only the byte-order label differs).
            schema: a ``Schema``/``(dtype, shape)`` the array must match, with None as
                a wildcard; checked on the header, before the payload is read.

        Raises:
            EndOfStreamError: the peer ended the stream (its close()).
            PeerError: the peer reported an error (its code and reason).
            SchemaMismatchError: the frame did not match (or was a message).
            BufferMismatchError: ``out`` does not fit; nothing was consumed.
            TimeoutError, TruncatedStreamError, ProtocolError, OSError.
        """
        core = self._core
        if core.held:
            self.flush()  # a peer may wait for what is held before it answers
        a = core.fast_recv(out)
        if a is not None:
            return a
        if schema is None and core.receivable and core.dec.idle:
            dec = core.dec  # nothing buffered: one read, then the fast path again
            try:
                n = self.sock.recv_into(dec.get_buffer())
            except TimeoutError:
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
        self, out: Mapping[str, np.ndarray] | None = None, *, schema: Any = None
    ) -> dict[str, np.ndarray]:
        """Receive one message sent with send_many(): a dict of name -> array.

        ``out`` and ``schema`` are dicts by name (see Decoder.expect).  Raises as
        :meth:`recv`; UsageError on ``format="npy"``.
        """
        if self._core.format == "npy":
            raise UsageError("format='npy' carries single arrays; use recv()")
        return message_of(self._recv_event(out, schema))

    def recv_event(self, out: Any = None, *, schema: Any = None) -> _codec.Array | _codec.Message:
        """Receive the next array or message as a codec event (:class:`codec.Array`,
        with its name, or :class:`codec.Message`): for receivers that take both.

        Raises: as :meth:`recv`.
        """
        return self._recv_event(out, schema)

    def __iter__(self) -> Iterator[Any]:
        """Arrays (and dicts, for messages) until the peer ends the stream."""
        while True:
            try:
                ev = self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield item_of(ev)

    def _recv_event(self, out: Any, schema: Any) -> Any:
        core = self._core
        if core.held:
            self.flush()
        ev = core.start_recv(out, schema)
        if ev is not None:
            return ev
        sock, dec = self.sock, core.dec
        deadline = Deadline(self._timeout) if self._timeout is not None else None
        first = True
        try:
            while True:
                ev = dec.next_event()
                if ev is NEED_DATA:
                    buf = dec.get_buffer()
                    if not first and deadline is not None:
                        sock.settimeout(deadline.remaining())
                    first = False
                    dec.advance(sock.recv_into(buf))
                    continue
                result, reply = core.handle(ev)
                if reply is not None:
                    self._send_control(reply)
                if result is CONSUMED:
                    continue
                if isinstance(result, BaseException):
                    raise result
                return result
        except (EndOfStreamError, PeerError):
            raise
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
                else the channel's ``timeout``, else 10 s); 0 does not wait, and then
                nothing is confirmed or raised.

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
            timeout = self._timeout if self._timeout is not None else DEFAULT_CLOSE_TIMEOUT
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
            if not core.wire:
                shutdown_write(self.sock)  # an npy stream ends with the half-close
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
                ev = dec.next_event()
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
        except (OSError, _ssl.SSLError) as exc:
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


def connect(
    address: Any,
    *,
    timeout: float | None = None,
    ssl: Any = None,
    server_hostname: str | None = None,
    authkey: Any = None,
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    **options: Any,
) -> Channel:
    """Connect to a wirearray peer and return a :class:`Channel`.

    Args:
        address: ``("host", port)``, ``"host:port"``, ``"[::1]:port"`` or
            ``"unix:/path"``; names resolve with getaddrinfo, each address tried in turn.
        timeout: bounds the connection attempt and every later send/receive call.
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
    sock = connect_socket(ep, timeout)
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


class _Pending:
    """One accepted connection in its handshakes, driven without blocking."""

    __slots__ = ("auth", "conn", "deadline", "events", "started", "tls_done")

    def __init__(self, conn: socket.socket, ctx: Any, key: bytes | None, timeout: float | None):
        conn.setblocking(False)
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.tls_done = ctx is None
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        self.conn = conn
        self.auth = ServerHandshake(key) if key is not None else None
        self.events = selectors.EVENT_READ | selectors.EVENT_WRITE

    def step(self) -> bool:
        """Progress as far as the socket allows; True once every handshake is done.
        Sets ``events`` to what to wait for next; raises what failed."""
        try:
            if not self.tls_done:
                self.conn.do_handshake()
                self.tls_done = True
            hs = self.auth
            while hs is not None:
                out = hs.data_to_send()
                if out:
                    n = self.conn.send(out)
                    if n < len(out):  # rare: 64 bytes; keep the rest for later
                        hs._out[:0] = out[n:]
                        self.events = selectors.EVENT_WRITE
                        return False
                if hs.done:
                    break
                data = self.conn.recv(hs.want)
                try:
                    hs.receive_data(data)
                except AuthenticationError:
                    with contextlib.suppress(OSError, _ssl.SSLError):
                        self.conn.send(hs.data_to_send())
                    raise
            return True
        except (_ssl.SSLWantReadError, BlockingIOError, InterruptedError):
            self.events = selectors.EVENT_READ
        except _ssl.SSLWantWriteError:
            self.events = selectors.EVENT_WRITE
        return False


class Listener:
    """A listening socket that hands out :class:`Channel` objects.

    ``listener.address`` is the bound address (``(host, port)`` -- port 0 picks a free
    one -- or ``"unix:/path"``).  A UNIX path that exists is replaced only when it is
    a stale socket nobody listens on.

    Args:
        ssl: an ``ssl.SSLContext`` for TLS (server side; ``verify_mode=CERT_REQUIRED``
            and ``load_verify_locations`` for mutual TLS).
        authkey: shared secret for the challenge-response handshake.
        handshake_timeout: seconds a connection's TLS and authkey handshakes may take
            in all (default 10).
        max_handshakes: connections in their handshake at once (default 128); a new
            one beyond it drops the one that has waited longest.
        max_connections: established channels open at once; beyond it a connection
            that completed its handshake gets an ERROR frame (ErrorCode.BUSY) and is
            closed (counted in ``refused``).  Connections in their handshake never
            take these slots.
        idle_timeout: the accepted channels' ``timeout`` (a peer silent for that long
            gets TimeoutError, a frame that takes longer is cut) unless ``timeout`` is
            given.
        options: channel options applied to every accepted channel.

    The handshakes of many connections progress side by side inside ``accept()``, so
    a slow, silent or keyless client delays nobody.  ``accept()`` raises what one
    connection's handshake raised (AuthenticationError, ssl.SSLError, TimeoutError);
    a server loop catches it and accepts the next one.  Counters: ``active``,
    ``refused``, ``handshake_failures``.
    """

    def __init__(
        self,
        address: Any,
        *,
        backlog: int = 128,
        ssl: Any = None,
        authkey: Any = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        **options: Any,
    ):
        if max_handshakes < 1:
            raise UsageError("max_handshakes must be >= 1")
        self._ssl = ssl
        self._authkey = normalize_authkey(authkey)
        self._handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.max_connections = max_connections
        self.active = 0
        self.refused = 0
        self.handshake_failures = 0
        if idle_timeout is not None:
            options.setdefault("timeout", idle_timeout)
        self.sock, self.address, self._unix_path = bind_listening_socket(address, backlog)
        self.sock.setblocking(False)
        self._options = options
        self._closed = False
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._pending: dict[socket.socket, _Pending] = {}  # insertion order: oldest first
        self._ready: deque[Any] = deque()  # established sockets, and handshake errors

    def accept(self, timeout: float | None = None) -> Channel:
        """Wait (at most ``timeout`` seconds) for a connection whose handshakes are
        done, and return its Channel.

        Raises:
            TimeoutError: no connection in time.
            AuthenticationError, ssl.SSLError, OSError: one connection's handshake
                failed (that connection is closed; the others carry on).
        """
        deadline = Deadline(timeout)
        while True:
            while self._ready:
                item = self._ready.popleft()
                if isinstance(item, BaseException):
                    raise item
                channel = self._established(item)
                if channel is not None:
                    return channel
            wait = deadline.remaining()
            soonest = min((p.deadline for p in self._pending.values() if p.deadline), default=None)
            if soonest is not None:
                left = max(0.0, soonest - time.monotonic())
                wait = left if wait is None else min(wait, left)
            for key, _ in self._sel.select(wait):
                if key.data is None:
                    self._accept_new()
                else:
                    self._progress(key.data)
            self._expire()

    def _accept_new(self) -> None:
        for _ in range(64):  # what is queued now, in bounded bites
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: report it, keep the listener
                self._ready.append(exc)
                return
            if self._ssl is None and self._authkey is None:
                self._ready.append(conn)
                continue
            if len(self._pending) >= self.max_handshakes:
                oldest = next(iter(self._pending.values()))
                self._drop(oldest, AuthenticationError("handshake dropped: too many at once"))
            try:
                p = _Pending(conn, self._ssl, self._authkey, self._handshake_timeout)
            except OSError as exc:
                conn.close()
                self.handshake_failures += 1
                self._ready.append(exc)
                continue
            self._pending[p.conn] = p
            self._sel.register(p.conn, p.events, p)
            self._progress(p)

    def _progress(self, p: _Pending) -> None:
        try:
            done = p.step()
        except (OSError, AuthenticationError) as exc:
            self._drop(p, exc)
            return
        if done:
            self._sel.unregister(p.conn)
            del self._pending[p.conn]
            self._ready.append(p.conn)
        else:
            self._sel.modify(p.conn, p.events, p)

    def _expire(self) -> None:
        now = time.monotonic()
        for p in [p for p in self._pending.values() if p.deadline and p.deadline <= now]:
            err: BaseException = (
                AuthenticationError("authkey handshake timed out")
                if p.tls_done
                else TimeoutError("the TLS handshake timed out")
            )
            self._drop(p, err)

    def _drop(self, p: _Pending, exc: BaseException) -> None:
        self._sel.unregister(p.conn)
        del self._pending[p.conn]
        p.conn.close()
        self.handshake_failures += 1
        if len(self._ready) < 1024:  # reported by accept(), without growing unbounded
            self._ready.append(exc)

    def _established(self, conn: Any) -> Channel | None:
        if self.max_connections is not None and self.active >= self.max_connections:
            self.refused += 1
            _refuse_busy(conn, self.max_connections)
            return None
        try:
            conn.setblocking(True)
            channel = Channel(conn, **self._options)
        except BaseException:
            conn.close()
            raise
        self.active += 1
        channel._on_close = self._channel_closed
        return channel

    def _channel_closed(self) -> None:
        self.active -= 1

    def __iter__(self) -> Iterator[Channel]:
        while True:
            yield self.accept()

    @property
    def handshaking(self) -> int:
        """Connections in their handshake now."""
        return len(self._pending)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for p in list(self._pending.values()):
            p.conn.close()
        self._pending.clear()
        for item in self._ready:
            if not isinstance(item, BaseException):
                item.close()
        self._ready.clear()
        self._sel.close()
        self.sock.close()
        unlink_quietly(self._unix_path)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()


def _refuse_busy(conn: Any, limit: int) -> None:
    """Tell a connection the server is full (an ERROR frame), then close it."""
    try:
        conn.settimeout(CONTROL_TIMEOUT)
        conn.sendall(Encoder().error(ErrorCode.BUSY, f"server busy: {limit} connections open"))
        if not is_tls(conn):
            conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        conn.close()


def listen(address: Any, **options: Any) -> Listener:
    """Listen on ``address`` (see :func:`connect`); returns a :class:`Listener`."""
    return Listener(address, **options)
