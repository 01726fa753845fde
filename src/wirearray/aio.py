"""asyncio transport: the Channel API as coroutines, on TCP and UNIX sockets.

Built on the event loop's socket primitives (``loop.sock_recv_into``,
``loop.sock_sendall``) over non-blocking sockets rather than on streams, so that --
as in the blocking transport -- large payloads are received straight into their
destination arrays and never pass through intermediate ``bytes`` objects.  Sending
tries one non-blocking ``sendmsg`` of the whole frame first and only waits (and
sends per buffer) for what the kernel did not take.

Semantics (timeouts, truncation, broken channels, end of stream) are those of
:mod:`wirearray.transport`; see its header.  ``timeout=`` bounds each send/recv call
as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from . import auth
from . import codec as _codec
from ._address import parse_address
from .codec import NEED_DATA, Array, EndOfStream
from .exceptions import (
    AuthenticationError,
    EndOfStreamError,
    StreamBrokenError,
    UsageError,
    WireError,
)
from .transport import (
    _HAS_SENDMSG,
    DEFAULT_SEND_BUFFER,
    _Side,
    _tune,
    _views,
    array_of,
    bind_listening_socket,
    check_send_buffer,
    hold_frames,
    make_codec,
    message_of,
)

__all__ = ["AsyncChannel", "AsyncListener", "AsyncServer", "connect", "listen", "serve"]


async def _with_timeout(coro: Awaitable[Any], timeout: float | None) -> Any:
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:  # a distinct class before Python 3.11
        raise TimeoutError(f"timed out after {timeout} s") from None


class _SocketStream:
    """Plain socket I/O on the event loop: sendmsg first, then waits for the rest."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    async def recv_into(self, buf: Any) -> int:
        return await asyncio.get_running_loop().sock_recv_into(self.sock, buf)

    async def send_views(self, views: list) -> None:
        loop = asyncio.get_running_loop()
        if _HAS_SENDMSG:
            try:
                n = self.sock.sendmsg(views)
            except (BlockingIOError, InterruptedError):
                n = 0
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if views and n:
                views[0] = views[0][n:]
        for v in views:
            await loop.sock_sendall(self.sock, v)

    async def sendall(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = await self.recv_into(view[got:])
            if not k:
                break
            got += k
        return bytes(buf[:got])


class _TLSStream(_SocketStream):
    """TLS over the event loop's socket calls with an ``ssl.SSLObject`` and memory BIOs:
    ``SSLObject.read(n, buffer)`` decrypts straight into the destination window, so
    payloads land in their arrays under TLS too.  Encryption proceeds in 256 KiB
    slices, so a large payload is never held encrypted whole."""

    SLICE = 256 << 10

    def __init__(
        self,
        sock: socket.socket,
        ctx: ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None,
    ):
        super().__init__(sock)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )

    async def _flush(self) -> None:
        data = self._out.read()
        if data:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _fill(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 1 << 18)
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    async def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()

    async def recv_into(self, buf: Any) -> int:
        while True:
            try:
                return self.obj.read(len(buf), buf)
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0

    async def send_views(self, views: list) -> None:
        for v in views:
            for k in range(0, len(v), self.SLICE):
                self.obj.write(v[k : k + self.SLICE])
                await self._flush()

    async def sendall(self, data: bytes) -> None:
        await self.send_views([memoryview(data)])


class AsyncChannel:
    """One connection carrying arrays both ways, for asyncio.

    Same options and semantics as :class:`wirearray.Channel`; the send and receive
    methods are coroutines and ``async for`` iterates until the peer ends the stream.
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
        _stream: Any = None,
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
        sock.setblocking(False)
        _tune(sock)
        self._stream = _stream if _stream is not None else _SocketStream(sock)
        self._on_close: Any = None
        self.timeout = timeout
        self._rx = _Side()
        self._tx = _Side()
        self._closed = False
        self._ended = False
        self._send_lock = asyncio.Lock()
        self._recv_lock = asyncio.Lock()
        self._send_buffer = check_send_buffer(send_buffer)
        self._wbuf = bytearray()  # frames held by send(flush=False), in sequence order

    async def __aenter__(self) -> AsyncChannel:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # ---- sending ----

    async def send(
        self,
        array: Any,
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        flush: bool = True,
    ) -> None:
        """Send one array (see Channel.send, ``flush=False`` included)."""
        self._check_open()
        self._tx.check("send")
        if byteorder is None and checksum is None and self.format != "npy":
            frame = self._enc.encode_small(array)
            if frame is not None:
                # Always through the send buffer: frames enter it in sequence order
                # (no await between numbering and appending), and whoever sends next
                # under the lock takes all of it first.
                self._wbuf += frame
                if flush or len(self._wbuf) >= self._send_buffer:
                    await self.flush()
                return
        kw = {} if self.format == "npy" else {"byteorder": byteorder, "checksum": checksum}
        if not flush and np.asarray(array).nbytes <= _codec.SMALL_FRAME_BYTES:
            hold_frames(self._wbuf, self._enc.frame(array, **kw))
            if len(self._wbuf) >= self._send_buffer:
                await self.flush()
            return
        await self._send_frames(lambda: self._enc.frame(array, **kw))

    async def send_many(
        self,
        arrays: Mapping[str, Any],
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> None:
        """Send named arrays as one message (see Channel.send_many)."""
        self._check_open()
        self._tx.check("send")
        if self.format == "npy":
            raise UsageError("format='npy' carries single arrays; use send()")
        await self._send_frames(
            lambda: self._enc.message(arrays, byteorder=byteorder, checksum=checksum)
        )

    async def flush(self) -> None:
        """Send the frames that ``send(..., flush=False)`` holds (see Channel.flush)."""
        if self._wbuf and not self._closed:
            self._tx.check("send")
            await self._send_frames(list)

    @property
    def pending_bytes(self) -> int:
        """Bytes held by ``send(..., flush=False)`` and not sent yet."""
        return len(self._wbuf)

    async def _send_frames(self, make_frames: Callable[[], Any]) -> None:
        """Under the send lock: number the frames (``make_frames()``, which validates
        and may raise with nothing sent), then send what the buffer holds -- all of
        it numbered earlier -- and the frames."""
        async with self._send_lock:
            frames = make_frames()
            held, self._wbuf = self._wbuf, bytearray()
            try:
                await _with_timeout(self._send_all(frames, held), self.timeout)
            except BaseException as exc:
                self._tx.error = exc
                raise

    async def _send_all(self, frames: Any, held: Any = b"") -> None:
        if held:
            await self._stream.sendall(held)
        for parts in frames:
            await self._stream.send_views(_views(parts))

    # ---- receiving ----

    async def recv(self, out: np.ndarray | None = None, *, schema: Any = None) -> np.ndarray:
        """Receive one array (see Channel.recv)."""
        if self._wbuf:
            await self.flush()
        if schema is None and not (self._closed or self._ended or self._rx.error):
            a = self._dec.next_array(out)  # whole frames already received: no await
            if a is not None:
                return a
        return array_of(await self._recv_event(out, schema))

    async def recv_many(
        self, out: Mapping[str, np.ndarray] | None = None, *, schema: Any = None
    ) -> dict[str, np.ndarray]:
        """Receive one message (see Channel.recv_many)."""
        if self.format == "npy":
            raise UsageError("format='npy' carries single arrays; use recv()")
        return message_of(await self._recv_event(out, schema))

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                ev = await self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield ev.array if isinstance(ev, Array) else ev.arrays

    async def _recv_event(self, out: Any, schema: Any) -> Any:
        self._check_open()
        if self._wbuf:
            await self.flush()  # a peer may wait for what is held before it answers
        async with self._recv_lock:
            self._rx.check("receive")
            if self._ended:
                raise EndOfStreamError("the peer ended the stream")
            dec = self._dec
            dec.expect(out=out, schema=schema)
            try:
                ev = await _with_timeout(self._recv_loop(), self.timeout)
            except UsageError:
                raise
            except TimeoutError:
                if not dec.at_boundary:
                    self._rx.error = TimeoutError("timed out inside a frame")
                raise
            except asyncio.CancelledError:
                if not dec.at_boundary:
                    self._rx.error = StreamBrokenError("a receive was cancelled inside a frame")
                raise
            except BaseException as exc:
                self._rx.error = exc
                raise
            if isinstance(ev, EndOfStream):
                self._ended = True
                raise EndOfStreamError("the peer ended the stream")
            return ev

    async def _recv_loop(self) -> Any:
        dec, stream = self._dec, self._stream
        while True:
            ev = dec.next_event()
            if ev is not NEED_DATA:
                return ev
            buf = dec.get_buffer()
            n = await stream.recv_into(buf)
            dec.advance(n)

    # ---- closing ----

    async def close(self) -> None:
        """End the stream (end-of-stream frame) and close the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tx.error is None:
                if hasattr(self._enc, "end"):
                    self._wbuf += self._enc.end()
                if self._wbuf:

                    async def last_words() -> None:
                        async with self._send_lock:  # after a send in progress, if any
                            held, self._wbuf = self._wbuf, bytearray()
                            await self._send_all((), held)

                    with contextlib.suppress(OSError, TimeoutError):  # the wait is bounded too
                        await _with_timeout(last_words(), self.timeout or 5.0)
        finally:
            self.sock.close()
            if self._on_close is not None:
                self._on_close()

    def _check_open(self) -> None:
        if self._closed:
            raise StreamBrokenError("the channel is closed")


async def _secure(
    sock: socket.socket,
    ctx: Any,
    key: bytes | None,
    server_side: bool,
    server_hostname: str | None,
    handshake_timeout: float | None,
) -> Any:
    """TLS then authkey handshakes on a connected non-blocking socket; the stream."""
    stream: Any = _SocketStream(sock)
    if ctx is not None:
        stream = _TLSStream(sock, ctx, server_side, server_hostname)
        await _with_timeout(stream.handshake(), handshake_timeout)
    if key is not None:
        if server_side:
            coro = auth.server_handshake_async(stream, key)
        else:
            coro = auth.client_handshake_async(stream, key)
        try:
            await _with_timeout(coro, handshake_timeout)
        except TimeoutError:
            raise AuthenticationError("authkey handshake timed out") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise AuthenticationError(f"the peer closed during the handshake: {exc}") from None
    return stream


async def connect(
    address: Any,
    *,
    timeout: float | None = None,
    ssl: Any = None,
    server_hostname: str | None = None,
    authkey: Any = None,
    handshake_timeout: float | None = auth.DEFAULT_HANDSHAKE_TIMEOUT,
    **options: Any,
) -> AsyncChannel:
    """Connect to a wirearray peer (see wirearray.connect for every argument)."""
    ep = parse_address(address)
    key = auth.normalize_authkey(authkey)
    loop = asyncio.get_running_loop()
    if ep.is_unix:
        infos = ep.resolve(socket.SOCK_STREAM)
    else:
        infos = await loop.run_in_executor(None, ep.resolve, socket.SOCK_STREAM)
    last: OSError | None = None
    for family, socktype, proto, _, sockaddr in infos:
        sock = socket.socket(family, socktype, proto)
        sock.setblocking(False)
        try:
            await _with_timeout(loop.sock_connect(sock, sockaddr), timeout)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        try:
            stream = await _secure(
                sock, ssl, key, False, server_hostname or ep.host, handshake_timeout
            )
            return AsyncChannel(sock, timeout=timeout, _stream=stream, **options)
        except BaseException:
            sock.close()
            raise
    assert last is not None
    raise last


class AsyncListener:
    """A listening socket for asyncio; ``await accept()`` returns an AsyncChannel.

    Takes the arguments of :class:`wirearray.Listener` (``ssl``, ``authkey``,
    ``handshake_timeout``, ``max_connections``, ``idle_timeout`` and channel options).
    """

    def __init__(
        self,
        address: Any,
        *,
        backlog: int = 128,
        ssl: Any = None,
        authkey: Any = None,
        handshake_timeout: float | None = auth.DEFAULT_HANDSHAKE_TIMEOUT,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        **options: Any,
    ):
        self._ssl = ssl
        self._authkey = auth.normalize_authkey(authkey)
        self._handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self.active = 0
        self.refused = 0
        if idle_timeout is not None:
            options.setdefault("timeout", idle_timeout)
        self.sock, self.address, self._unix_path = bind_listening_socket(address, backlog)
        self.sock.setblocking(False)
        self._options = options
        self._closed = False

    async def accept(self, timeout: float | None = None) -> AsyncChannel:
        """Wait for a connection, run its handshakes, return its AsyncChannel."""
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await _with_timeout(loop.sock_accept(self.sock), timeout)
            if self.max_connections is None or self.active < self.max_connections:
                break
            self.refused += 1
            conn.close()
        try:
            conn.setblocking(False)
            stream = await _secure(
                conn, self._ssl, self._authkey, True, None, self._handshake_timeout
            )
            channel = AsyncChannel(conn, _stream=stream, **self._options)
        except BaseException:
            conn.close()
            raise
        self.active += 1
        channel._on_close = self._channel_closed
        return channel

    def _channel_closed(self) -> None:
        self.active -= 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)

    async def __aenter__(self) -> AsyncListener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def listen(address: Any, **options: Any) -> AsyncListener:
    """Listen on ``address``; returns an AsyncListener (see wirearray.listen)."""
    return AsyncListener(address, **options)


Handler = Callable[[AsyncChannel], Awaitable[Any]]


class AsyncServer:
    """Runs ``handler(channel)`` for every accepted connection, each in its own task.

    The channel is closed when the handler returns.  An exception in one handler
    closes that connection only and the server keeps accepting: errors caused by the
    peer (WireError, OSError: bad data, truncation, timeouts, resets) are counted in
    ``peer_errors``; anything else is a bug of the handler and goes to the loop's
    exception handler.  Handshakes (TLS, authkey) run in each connection's own
    task, so a slow or failing client delays nobody; failures are counted in
    ``handshake_failures``.  Beyond ``max_connections`` (the listener's) new
    connections are closed at once.
    """

    def __init__(self, listener: AsyncListener, handler: Handler):
        self.listener = listener
        self.address = listener.address
        self._handler = handler
        self._tasks: set[asyncio.Task] = set()
        self.handshake_failures = 0
        self.peer_errors = 0
        self.last_peer_error: str | None = None
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        listener = self.listener
        while True:
            try:
                conn, _ = await loop.sock_accept(listener.sock)
            except OSError:
                if listener._closed:
                    return
                await asyncio.sleep(0.05)  # e.g. EMFILE: back off instead of spinning
                continue
            if (
                listener.max_connections is not None
                and len(self._tasks) >= listener.max_connections
            ):
                listener.refused += 1
                conn.close()
                continue
            task = loop.create_task(self._run(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: socket.socket) -> None:
        lst = self.listener
        try:
            conn.setblocking(False)
            stream = await _secure(conn, lst._ssl, lst._authkey, True, None, lst._handshake_timeout)
            channel = AsyncChannel(conn, _stream=stream, **lst._options)
        except (OSError, WireError):
            self.handshake_failures += 1
            conn.close()
            return
        try:
            await self._handler(channel)
        except (WireError, OSError) as exc:
            # The peer's doing (bad data, truncation, timeout, reset): counted, not
            # logged -- a hostile client must not fill the logs or keep tracebacks.
            self.peer_errors += 1
            self.last_peer_error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug in the handler: reported; the server goes on
            asyncio.get_running_loop().call_exception_handler(
                {"message": "wirearray handler failed", "exception": exc}
            )
        finally:
            await channel.close()

    @property
    def connections(self) -> int:
        """Handlers running now."""
        return len(self._tasks)

    def close(self) -> None:
        """Stop accepting and cancel running handlers."""
        self._accepting.cancel()
        self.listener.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._accepting
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        await self._accepting

    async def __aenter__(self) -> AsyncServer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
        await self.wait_closed()


async def serve(handler: Handler, address: Any, **options: Any) -> AsyncServer:
    """Start serving: ``handler(channel)`` runs for each connection; returns the server.

    Options: those of :class:`AsyncListener` (``ssl``, ``authkey``,
    ``max_connections``, ``idle_timeout``, channel options).
    ``async with await aio.serve(handler, ("127.0.0.1", 0)) as server: ...``
    """
    return AsyncServer(AsyncListener(address, **options), handler)
