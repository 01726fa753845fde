"""Blocking socket transport: TCP (IPv4/IPv6), UNIX stream sockets and UDP.

A thin loop over the sans-I/O codec (wirearray.codec, docs/FORMAT.md):

* sending: each frame leaves in one ``sendmsg`` call where the platform has it (header,
  payload and trailer gathered by the kernel, never concatenated), ``sendall`` per
  buffer elsewhere and on TLS sockets.  Exceptions, both for speed: a small array (up
  to codec.SMALL_FRAME_BYTES = 64 KiB) is framed whole into one buffer by the compiled
  core and sent with one ``sendall`` (copying <= 64 KiB costs less than gathering three
  buffers in Python, and in network order the copy is the byte swap itself); a payload
  converted to network order leaves in staging chunks of up to 4 MiB, one call each
  (codec.DEFAULT_CHUNK_BYTES explains the size);
* ``send(a, flush=False)`` holds small frames in a send buffer so that many leave in
  one system call (on loopback a TCP send costs 4-5 us, which bounds a stream of one
  send per message to about 200-250 k messages/s here); the buffer goes out at
  ``send_buffer`` bytes, on ``flush()``, before any larger frame or message, before any
  receive (a peer may be waiting for it before it answers) and on ``close()``;
* receiving: ``recv_into`` the buffer the decoder names -- a read-ahead buffer for
  headers and small frames (many small frames per system call, each then decoded by
  one compiled call: Decoder.next_array), a window of the destination array for large
  payloads (no intermediate copy);
* TCP_NODELAY on; socket buffer sizes left to the OS (forcing SO_SNDBUF/SO_RCVBUF
  switches off Linux's receive autotuning and lowered throughput in our tests).

Failure semantics, the same for every transport:

* a timeout (``timeout=`` seconds) raises the builtin TimeoutError; at a frame
  boundary the channel stays usable, inside a frame it is broken;
* a peer that closes inside a frame raises TruncatedStreamError; one that closes at a
  boundary without an end-of-stream frame too (received=0), since only ``close()``
  sends that frame;
* OS errors (reset, refused, ...) pass through unwrapped;
* after any error inside a frame -- or a protocol error anywhere -- the channel's
  receive (or send) side refuses further use with StreamBrokenError rather than
  misread the stream; arrays returned before are untouched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from . import codec as _codec
from ._address import Endpoint, format_address, parse_address
from .auth import DEFAULT_HANDSHAKE_TIMEOUT, client_handshake, normalize_authkey, server_handshake
from .codec import NEED_DATA, Array, Decoder, Encoder, EndOfStream, Message
from .exceptions import (
    AddressError,
    DatagramTooLargeError,
    EndOfStreamError,
    SchemaMismatchError,
    SequenceError,
    StreamBrokenError,
    UsageError,
)

__all__ = ["Channel", "DatagramChannel", "Listener", "connect", "listen"]

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
#: Default for Channel(send_buffer=): what send(flush=False) holds before sending.
DEFAULT_SEND_BUFFER = 64 << 10


def _tune(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _views(parts: list) -> list[memoryview]:
    out = []
    for p in parts:
        mv = memoryview(p)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        if len(mv):
            out.append(mv)
    return out


def hold_frames(buf: bytearray, frames: Iterator[list]) -> None:
    """Append every buffer of an Encoder.frame()/message() iterator to a send buffer
    (what send(flush=False) holds: copied, so the array may change afterwards)."""
    for parts in frames:
        for v in _views(parts):
            buf += v


def check_send_buffer(send_buffer: int) -> int:
    if send_buffer < 0:
        raise UsageError("send_buffer must be >= 0")
    return send_buffer


def send_parts(sock: socket.socket, parts: list) -> None:
    """Send a list of buffers completely: one ``sendmsg`` per call where possible,
    resumed after partial sends; ``sendall`` per buffer where sendmsg is missing
    (Windows) or unusable (TLS sockets)."""
    views = _views(parts)
    if _HAS_SENDMSG and not hasattr(sock, "cipher"):
        while views:
            n = sock.sendmsg(views)
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if views and n:
                views[0] = views[0][n:]
    else:
        for v in views:
            sock.sendall(v)


def make_codec(
    format: str,
    byteorder: str,
    checksum: bool,
    max_frame_bytes: int,
    max_ndim: int,
    max_message_arrays: int,
    keep_wire_order: bool,
) -> tuple[Any, Any]:
    """The encoder and decoder of a channel (shared by the blocking and asyncio layers)."""
    if format == "wire":
        dec = Decoder(
            max_frame_bytes=max_frame_bytes,
            max_ndim=max_ndim,
            max_message_arrays=max_message_arrays,
            keep_wire_order=keep_wire_order,
        )
        return Encoder(byteorder=byteorder, checksum=checksum), dec
    if format == "npy":
        from .npy import NpyDecoder, NpyEncoder

        dec = NpyDecoder(
            max_frame_bytes=max_frame_bytes, max_ndim=max_ndim, keep_wire_order=keep_wire_order
        )
        return NpyEncoder(), dec
    raise UsageError(f"format must be 'wire' or 'npy', not {format!r}")


def bind_listening_socket(address: Any, backlog: int) -> tuple[socket.socket, Any, str | None]:
    """(listening socket, its reported address, UNIX path to unlink on close or None)."""
    ep = parse_address(address)
    family, socktype, proto, _, sockaddr = ep.resolve(socket.SOCK_STREAM, passive=True)[0]
    unix_path = None
    if ep.is_unix and not sockaddr.startswith("\0"):
        _remove_stale_socket(sockaddr)
        unix_path = sockaddr
    sock = socket.socket(family, socktype, proto)
    try:
        if family != getattr(socket, "AF_UNIX", None) and os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock, format_address(family, sock.getsockname()), unix_path


def array_of(ev: Any) -> np.ndarray:
    """recv()'s result: the array of an Array event; a message is a schema mismatch."""
    if isinstance(ev, Array):
        return ev.array
    raise SchemaMismatchError(
        f"expected a single array, received a message of {len(ev.arrays)} arrays (use recv_many())"
    )


def message_of(ev: Any) -> dict[str, np.ndarray]:
    """recv_many()'s result: the arrays of a Message event; an array is a mismatch."""
    if isinstance(ev, Message):
        return ev.arrays
    raise SchemaMismatchError("expected a message, received a single array (use recv())")


class _Side:
    """Broken-state bookkeeping for one direction of a channel."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def check(self, what: str) -> None:
        if self.error is not None:
            raise StreamBrokenError(
                f"cannot {what}: the channel broke earlier ({type(self.error).__name__}: "
                f"{self.error})"
            ) from self.error


class Channel:
    """One connection carrying arrays both ways.

    Created by :func:`connect` and :meth:`Listener.accept` (or around a connected
    socket).  Options (keyword-only, all transports alike):

    Args:
        byteorder: "network" (default; payloads big-endian) or "native" (sent as the
            arrays' memory is; a same-order receiver converts nothing).
        checksum: append a CRC32C to every payload (off by default).
        timeout: seconds a send or receive may block (None: forever).
        max_frame_bytes: the largest frame (and message) accepted from the peer,
            checked on the header before anything is allocated (default 1 GiB).
        max_ndim, max_message_arrays: further receive limits.
        keep_wire_order: return arrays in the byte order they travelled in.
        format: "wire" (default, docs/FORMAT.md) or "npy": every message is a
            standard .npy record, for peers that have only numpy (single arrays only).
        send_buffer: bytes of frames ``send(..., flush=False)`` may hold before they
            go out (default 64 KiB).
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
    ):
        self._enc, self._dec = make_codec(
            format,
            byteorder,
            checksum,
            max_frame_bytes,
            max_ndim,
            max_message_arrays,
            keep_wire_order,
        )
        self.format = format
        self.sock = sock
        sock.settimeout(timeout)
        _tune(sock)
        self._rx = _Side()
        self._tx = _Side()
        self._closed = False
        self._ended = False  # the peer's end-of-stream frame arrived
        self._on_close: Any = None  # the Listener's connection count
        self._wbuf = bytearray()  # frames held by send(flush=False)
        self._send_buffer = check_send_buffer(send_buffer)

    # ---- context manager, properties ----

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<wirearray.Channel {self.format} {state} fd={self.sock.fileno()}>"

    @property
    def timeout(self) -> float | None:
        return self.sock.gettimeout()

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

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
    ) -> None:
        """Send one array (any supported dtype and layout).

        The payload is not copied when it already has the wire byte order and is
        contiguous; otherwise it is converted through a staging buffer of up to 4 MiB.
        A small array (up to SMALL_FRAME_BYTES = 64 KiB) is framed whole into one buffer
        by the compiled core.  A frame leaves in one system call, except a large
        payload converted on the way (one call per staging chunk of up to 4 MiB).

        ``flush=False`` holds a small array's frame in the channel's send buffer
        instead, to go out with the next ones in one system call: when
        ``send_buffer`` bytes are held, on ``send()`` with ``flush=True``, ``flush()``,
        any receive, and ``close()``.  For streams of small arrays one way, where a
        TCP send per message (several microseconds on loopback) is the limit; the
        array may be modified once send() returns, as always.  Larger arrays are
        never held: they flush what is held and go out at once.

        Raises:
            UnsupportedDtypeError, UsageError: before anything is sent.
            TimeoutError, OSError: the send side is then broken.
        """
        self._check_open()
        self._tx.check("send")
        if byteorder is None and checksum is None and self.format != "npy":
            frame = self._enc.encode_small(array)
            if frame is not None:
                if not self._wbuf and (flush or len(frame) >= self._send_buffer):
                    self._sendall(frame)  # nothing held, or nothing to gain by holding
                    return
                self._wbuf += frame
                if flush or len(self._wbuf) >= self._send_buffer:
                    self.flush()
                return
        kw = {} if self.format == "npy" else {"byteorder": byteorder, "checksum": checksum}
        frames = self._enc.frame(array, **kw)  # validates before anything is sent
        if not flush and np.asarray(array).nbytes <= _codec.SMALL_FRAME_BYTES:
            hold_frames(self._wbuf, frames)
            if len(self._wbuf) >= self._send_buffer:
                self.flush()
            return
        if self._wbuf:
            self.flush()
        self._send_frames(frames)

    def flush(self) -> None:
        """Send the frames that ``send(..., flush=False)`` holds, now (one system call).

        Raises:
            TimeoutError, OSError: the send side is then broken.
        """
        if not self._wbuf or self._closed:
            return
        self._tx.check("send")
        data, self._wbuf = self._wbuf, bytearray()
        self._sendall(data)

    @property
    def pending_bytes(self) -> int:
        """Bytes held by ``send(..., flush=False)`` and not sent yet."""
        return len(self._wbuf)

    def _sendall(self, data: Any) -> None:
        try:
            self.sock.sendall(data)
        except BaseException as exc:
            self._tx.error = exc
            raise

    def send_many(
        self,
        arrays: Mapping[str, Any],
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> None:
        """Send named arrays as one message: the peer's recv_many() gets all or none."""
        self._check_open()
        self._tx.check("send")
        if self.format == "npy":
            raise UsageError("format='npy' carries single arrays; use send()")
        frames = self._enc.message(arrays, byteorder=byteorder, checksum=checksum)
        if self._wbuf:
            self.flush()
        self._send_frames(frames)

    def _send_frames(self, frames: Iterator[list]) -> None:
        try:
            for parts in frames:
                send_parts(self.sock, parts)
        except BaseException as exc:
            self._tx.error = exc
            raise

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
            EndOfStreamError: the peer ended the stream (close()).
            SchemaMismatchError: the frame did not match (or was a message).
            BufferMismatchError: ``out`` does not fit; nothing was consumed.
            TimeoutError, TruncatedStreamError, ProtocolError, OSError.
        """
        if self._wbuf:
            self.flush()  # a peer may wait for what is held before it answers
        if schema is None and not (self._closed or self._ended or self._rx.error):
            dec = self._dec
            a = dec.next_array(out)
            if a is not None:
                return a
            if dec.idle:  # nothing buffered: one read, then the fast path again
                try:
                    n = self.sock.recv_into(dec.get_buffer())
                except TimeoutError:
                    raise TimeoutError("timed out waiting for the next frame") from None
                except BaseException as exc:
                    self._rx.error = exc
                    raise
                dec.advance(n)
                a = dec.next_array(out)
                if a is not None:
                    return a
        return array_of(self._recv_event(out, schema))

    def recv_many(
        self, out: Mapping[str, np.ndarray] | None = None, *, schema: Any = None
    ) -> dict[str, np.ndarray]:
        """Receive one message sent with send_many(): a dict of name -> array.

        ``out`` and ``schema`` are dicts by name (see Decoder.expect).
        """
        if self.format == "npy":
            raise UsageError("format='npy' carries single arrays; use recv()")
        return message_of(self._recv_event(out, schema))

    def __iter__(self) -> Iterator[Any]:
        """Arrays (and dicts, for messages) until the peer ends the stream."""
        while True:
            try:
                ev = self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield ev.array if isinstance(ev, Array) else ev.arrays

    def _recv_event(self, out: Any, schema: Any) -> Any:
        self._check_open()
        if self._wbuf:
            self.flush()
        self._rx.check("receive")
        if self._ended:
            raise EndOfStreamError("the peer ended the stream")
        dec = self._dec
        dec.expect(out=out, schema=schema)
        try:
            while True:
                ev = dec.next_event()
                if ev is not NEED_DATA:
                    break
                buf = dec.get_buffer()
                try:
                    n = self.sock.recv_into(buf)
                except TimeoutError:
                    if not dec.at_boundary:
                        raise
                    raise TimeoutError("timed out waiting for the next frame") from None
                dec.advance(n)
        except UsageError:
            raise  # e.g. out= does not fit: reported before anything was consumed
        except TimeoutError as exc:
            if dec.at_boundary:
                raise
            self._rx.error = exc
            raise
        except BaseException as exc:
            self._rx.error = exc
            raise
        if isinstance(ev, EndOfStream):
            self._ended = True
            raise EndOfStreamError("the peer ended the stream")
        return ev

    # ---- closing ----

    def close(self) -> None:
        """End the stream cleanly (an end-of-stream frame) and close the socket.

        Idempotent; if the send side is broken the socket is just closed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._tx.error is None:
                if hasattr(self._enc, "end"):
                    self._wbuf += self._enc.end()
                if self._wbuf:
                    with contextlib.suppress(OSError):
                        send_parts(self.sock, [self._wbuf])
        finally:
            self.sock.close()
            if self._on_close is not None:
                self._on_close()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamBrokenError("the channel is closed")


def _connect_socket(ep: Endpoint, timeout: float | None) -> socket.socket:
    last: OSError | None = None
    for family, socktype, proto, _, sockaddr in ep.resolve(socket.SOCK_STREAM):
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    assert last is not None
    raise last


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
        timeout: bounds the connection attempt and every later send/receive.
        ssl: an ``ssl.SSLContext`` (e.g. ``ssl.create_default_context(cafile=...)``,
            with ``load_cert_chain`` for mutual TLS) to speak TLS.
        server_hostname: the name the server's certificate must carry (default: the
            host of ``address``; required for UNIX sockets when the context checks
            hostnames).
        authkey: a shared secret (>= 16 bytes) for the HMAC challenge-response
            handshake, run before any frame (inside TLS when both are given).
        handshake_timeout: bounds the TLS and authkey handshakes.
        options: see :class:`Channel`.

    Raises:
        AddressError: a malformed or unresolvable address.
        AuthenticationError: the authkey handshake failed (either side's key).
        ssl.SSLError, OSError: TLS failures, ConnectionRefusedError, TimeoutError...
    """
    ep = parse_address(address)
    key = normalize_authkey(authkey)
    sock = _connect_socket(ep, timeout)
    try:
        if ssl is not None:
            sock.settimeout(handshake_timeout)
            sock = ssl.wrap_socket(sock, server_hostname=server_hostname or ep.host)
        if key is not None:
            client_handshake(sock, key, handshake_timeout)
        return Channel(sock, timeout=timeout, **options)
    except BaseException:
        sock.close()
        raise


class Listener:
    """A listening socket that hands out :class:`Channel` objects.

    ``listener.address`` is the bound address (``(host, port)`` -- port 0 picks a free
    one -- or ``"unix:/path"``).  A UNIX path that exists is replaced only when it is
    a stale socket nobody listens on.

    Args:
        ssl: an ``ssl.SSLContext`` for TLS (server side; ``verify_mode=CERT_REQUIRED``
            and ``load_verify_locations`` for mutual TLS).
        authkey: shared secret for the challenge-response handshake.
        handshake_timeout: bounds the TLS and authkey handshakes of each connection.
        max_connections: channels open at once; beyond it new connections are
            accepted and closed at once (counted in ``refused``).
        idle_timeout: the accepted channels' ``timeout`` (a peer silent for that long
            between frames gets TimeoutError) unless ``timeout`` is given.
        options: channel options applied to every accepted channel.

    accept() raises what one connection's handshake raised (AuthenticationError,
    ssl.SSLError, TimeoutError); a server loop catches it and accepts the next one.
    """

    def __init__(
        self,
        address: Any,
        *,
        backlog: int = 128,
        ssl: Any = None,
        authkey: Any = None,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        **options: Any,
    ):
        self._ssl = ssl
        self._authkey = normalize_authkey(authkey)
        self._handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.active = 0
        self.refused = 0
        if idle_timeout is not None:
            options.setdefault("timeout", idle_timeout)
        self.sock, self.address, self._unix_path = bind_listening_socket(address, backlog)
        self._options = options
        self._closed = False

    def accept(self, timeout: float | None = None) -> Channel:
        """Wait (at most ``timeout`` seconds) for a connection, run its handshakes and
        return its Channel."""
        self.sock.settimeout(timeout)
        while True:
            conn, _ = self.sock.accept()
            if self.max_connections is None or self.active < self.max_connections:
                break
            self.refused += 1
            conn.close()
        try:
            if self._ssl is not None:
                conn.settimeout(self._handshake_timeout)
                conn = self._ssl.wrap_socket(conn, server_side=True)
            if self._authkey is not None:
                server_handshake(conn, self._authkey, self._handshake_timeout)
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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()


def _remove_stale_socket(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover of a dead process
        return
    finally:
        probe.close()
    raise AddressError(f"{path} is in use by another listener")


def listen(address: Any, **options: Any) -> Listener:
    """Listen on ``address`` (see :func:`connect`); returns a :class:`Listener`."""
    return Listener(address, **options)


# ---- UDP ----

#: The largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes).
MAX_UDP_PAYLOAD = 65507


class DatagramChannel:
    """Arrays that fit one datagram, over UDP (or UNIX datagram sockets).

    Each array travels as one self-contained frame in one datagram.  Frames carry
    sequence numbers, so loss, reordering and duplication are detected and never
    silent: ``stats`` counts them, and with ``on_gap="raise"`` (the default) the
    ``recv`` that notices one raises :class:`~wirearray.SequenceError` -- carrying the
    array that revealed it, so nothing received is dropped.  ``on_gap="count"`` only
    counts.

    Args:
        local: address to bind (``("127.0.0.1", 0)`` picks a port; None: any).
        remote: default peer for send(); recv() then accepts only that peer.
        max_datagram: largest datagram sent or accepted (default 65507, the IPv4
            UDP maximum); a larger frame raises DatagramTooLargeError before sending.
        byteorder, checksum, timeout, max_ndim, keep_wire_order: as for Channel.
    """

    def __init__(
        self,
        local: Any = None,
        remote: Any = None,
        *,
        byteorder: str = "network",
        checksum: bool = False,
        timeout: float | None = None,
        max_datagram: int = MAX_UDP_PAYLOAD,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        keep_wire_order: bool = False,
        on_gap: str = "raise",
    ):
        if local is None and remote is None:
            raise UsageError("a DatagramChannel needs a local or a remote address")
        if on_gap not in ("raise", "count"):
            raise UsageError("on_gap must be 'raise' or 'count'")
        ref = parse_address(local if local is not None else remote)
        family, _, proto, _, sockaddr = ref.resolve(socket.SOCK_DGRAM, passive=local is not None)[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        self._unix_path = None
        try:
            if local is not None:
                if ref.is_unix and not sockaddr.startswith("\0"):
                    if os.path.exists(sockaddr):
                        raise AddressError(f"{sockaddr} exists")
                    self._unix_path = sockaddr
                self.sock.bind(sockaddr)
            elif ref.is_unix:
                pass
            self._remote = None
            if remote is not None:
                rep = parse_address(remote)
                rinfo = [i for i in rep.resolve(socket.SOCK_DGRAM) if i[0] == family]
                if not rinfo:
                    raise AddressError(f"{remote!r} has no address of the local socket's family")
                self._remote = rinfo[0][4]
                self.sock.connect(self._remote)
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)
        self._enc = Encoder(byteorder=byteorder, checksum=checksum)
        self._dec_opts = {
            "max_frame_bytes": max_datagram,
            "max_ndim": max_ndim,
            "keep_wire_order": keep_wire_order,
        }
        self.max_datagram = max_datagram
        self.on_gap = on_gap
        self._buf = bytearray(max_datagram + 1)
        self._expected = 0
        self._recent: dict[int, None] = {}
        self.stats = {"sent": 0, "received": 0, "lost": 0, "reordered": 0, "duplicated": 0}
        self._closed = False

    @property
    def address(self) -> Any:
        return format_address(self.sock.family, self.sock.getsockname())

    def send(self, array: Any, *, to: Any = None) -> None:
        """Send one array in one datagram (to ``to``, else the channel's remote).

        Raises:
            DatagramTooLargeError: the frame exceeds max_datagram; nothing was sent.
        """
        a = np.asarray(array)
        frame = self._enc.encode(a)
        if len(frame) > self.max_datagram:
            self._enc._seq = (self._enc._seq - 1) & 0xFFFFFFFF  # not sent: no gap
            raise DatagramTooLargeError(
                f"a {a.dtype}{list(a.shape)} array needs a {len(frame)}-byte datagram; "
                f"this channel sends at most {self.max_datagram} (use a stream channel)"
            )
        if to is not None:
            self.sock.sendto(frame, parse_address(to).resolve(socket.SOCK_DGRAM)[0][4])
        elif self._remote is not None:
            self.sock.send(frame)
        else:
            raise UsageError("send() needs to= on a channel without a remote address")
        self.stats["sent"] += 1

    def recv(self, out: np.ndarray | None = None, *, schema: Any = None) -> np.ndarray:
        """Receive one array (see Channel.recv); raises SequenceError on a gap when
        ``on_gap="raise"``, after decoding the datagram."""
        return self.recv_from(out, schema=schema)[0]

    def recv_from(self, out: np.ndarray | None = None, *, schema: Any = None) -> tuple:
        """Like recv(), returning ``(array, sender_address)``."""
        n, sender = self.sock.recvfrom_into(self._buf)
        if n > self.max_datagram:
            raise DatagramTooLargeError(f"a datagram over {self.max_datagram} bytes arrived")
        ev, seq = _codec.decode_frame(
            memoryview(self._buf)[:n], out=out, schema=schema, **self._dec_opts
        )
        self.stats["received"] += 1
        self._track(seq, ev.array)
        return ev.array, sender

    def _track(self, seq: int, array: np.ndarray) -> None:
        expected = self._expected
        ahead = (seq - expected) & 0xFFFFFFFF
        problem = None
        if ahead == 0:
            self._expected = (seq + 1) & 0xFFFFFFFF
        elif ahead < 0x80000000:  # later than expected: the ones between are missing
            self.stats["lost"] += ahead
            self._expected = (seq + 1) & 0xFFFFFFFF
            problem = f"{ahead} datagram(s) lost before #{seq}"
        elif seq in self._recent:
            self.stats["duplicated"] += 1
            problem = f"datagram #{seq} duplicated"
        else:  # an earlier one, counted lost, arrived late
            self.stats["reordered"] += 1
            self.stats["lost"] = max(0, self.stats["lost"] - 1)
            problem = f"datagram #{seq} arrived after #{(expected - 1) & 0xFFFFFFFF}"
        self._recent[seq] = None
        if len(self._recent) > 4096:
            self._recent.pop(next(iter(self._recent)))
        if problem and self.on_gap == "raise":
            raise SequenceError(problem, seq=seq, expected=expected, array=array)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        if self._unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)

    def __enter__(self) -> DatagramChannel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
