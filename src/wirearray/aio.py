"""asyncio transport: the Channel API as coroutines, on TCP and UNIX sockets.

A sibling of the blocking layer over the same sans-I/O core (``_connection``), which
holds every rule -- framing, held frames, failures, the close handshake, refusal
reports; see ``transport.py``'s header for the semantics, which are the same here.
This module only moves bytes, on the event loop's socket primitives
(``loop.sock_recv_into``, ``loop.sock_sendall``) over non-blocking sockets rather than
on streams, so that large payloads are received straight into their destination arrays
and never pass through intermediate ``bytes`` objects.  Sending tries one
non-blocking ``sendmsg`` of the whole frame first and only waits (and sends per
buffer) for what the kernel did not take.

Concurrency: one task may receive while others send.  Frames are numbered and sent
under one send lock, so frames of concurrent senders never interleave and leave in
sequence order.  ``close()`` from one task while others are inside a send or a
receive: they end with StreamBrokenError once the channel is closed, never hang.

Servers (:func:`serve`): handshakes run in each connection's own task, bounded by
``max_handshakes`` (the oldest is dropped for a new one) and ``handshake_timeout``;
``max_connections`` counts established channels only, so keyless or silent clients
cannot lock out authenticated ones.  A handler's failure is reported to its client
(an ERROR frame) before the connection closes; a handler that returns closes the
channel with the orderly close (bounded by ``close_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from . import auth
from . import codec as _codec
from ._address import parse_address
from ._connection import (
    CONSUMED,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_SEND_BUFFER,
    Connection,
    array_of,
    error_code,
    item_of,
    message_of,
    views,
)
from ._sockets import HAS_SENDMSG, bind_listening_socket, shutdown_write, tune, unlink_quietly
from .codec import NEED_DATA, Encoder
from .exceptions import (
    AuthenticationError,
    EndOfStreamError,
    ErrorCode,
    PeerError,
    StreamBrokenError,
    UsageError,
    WireError,
)

__all__ = ["AsyncChannel", "AsyncListener", "AsyncServer", "connect", "listen", "serve"]

#: Longest wait to hand the peer a control frame (ACK, ERROR) on the way out.
CONTROL_TIMEOUT = 2.0
#: Default bound on connections in their handshake at once.
DEFAULT_MAX_HANDSHAKES = 128
_REPORT_READ_LIMIT = 1 << 20


if sys.version_info >= (3, 11):

    async def _with_timeout(coro: Awaitable[Any], timeout: float | None) -> Any:
        if timeout is None:
            return await coro
        try:
            async with asyncio.timeout(timeout):
                return await coro
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout} s") from None

else:  # pragma: no cover - Python 3.10

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

    def recv_now(self, buf: Any) -> int:
        """What is readable now, without waiting (BlockingIOError if nothing)."""
        return self.sock.recv_into(buf)

    async def send_views(self, bufs: list) -> None:
        loop = asyncio.get_running_loop()
        if HAS_SENDMSG:
            try:
                n = self.sock.sendmsg(bufs)
            except (BlockingIOError, InterruptedError):
                n = 0
            while bufs and n >= len(bufs[0]):
                n -= len(bufs.pop(0))
            if bufs and n:
                bufs[0] = bufs[0][n:]
        for v in bufs:
            await loop.sock_sendall(self.sock, v)

    async def sendall(self, data: Any) -> None:
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

    def shutdown_write(self) -> None:
        shutdown_write(self.sock)


class _TLSStream(_SocketStream):
    """TLS over the event loop's socket calls with an ``ssl.SSLObject`` and memory BIOs:
    ``SSLObject.read(n, buffer)`` decrypts straight into the destination window, so
    payloads land in their arrays under TLS too.  Encryption proceeds in 256 KiB
    slices, so a large payload is never held encrypted whole."""

    SLICE = 256 << 10
    READ = 64 << 10

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
        data = await asyncio.get_running_loop().sock_recv(self.sock, self.READ)
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

    def recv_now(self, buf: Any) -> int:
        while True:
            try:
                return self.obj.read(len(buf), buf)
            except ssl.SSLWantReadError:
                data = self.sock.recv(self.READ)  # BlockingIOError: nothing more now
                if not data:
                    self._in.write_eof()
                else:
                    self._in.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0

    async def send_views(self, bufs: list) -> None:
        for v in bufs:
            for k in range(0, len(v), self.SLICE):
                self.obj.write(v[k : k + self.SLICE])
                await self._flush()

    async def sendall(self, data: Any) -> None:
        await self.send_views([memoryview(data).cast("B")])

    def shutdown_write(self) -> None:
        pass  # TLS: no half-close (the peer's ACK comes over the same session)


class AsyncChannel:
    """One connection carrying arrays both ways, for asyncio.

    Same options and semantics as :class:`wirearray.Channel` (``close_timeout``
    included); the send and receive methods are coroutines and ``async for`` iterates
    until the peer ends the stream.
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
        _stream: Any = None,
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
        sock.setblocking(False)
        tune(sock)
        self._stream = _stream if _stream is not None else _SocketStream(sock)
        self._on_close: Callable[[], None] | None = None
        self.timeout = timeout
        self._send_lock = asyncio.Lock()
        self._recv_lock = asyncio.Lock()
        self._io_tasks: set[asyncio.Task] = set()  # tasks inside a send or receive
        self._cancelled: set[asyncio.Task] = set()  # ... that close() cancelled

    async def __aenter__(self) -> AsyncChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:  # an incomplete stream: say so rather than end it as if it were whole
            await self.abort(f"the application failed ({exc_type.__name__})")

    @property
    def format(self) -> str:
        """ "wire" or "npy"."""
        return self._core.format

    @property
    def pending_bytes(self) -> int:
        """Bytes held by ``send(..., flush=False)`` and not sent yet."""
        return len(self._core.held)

    @property
    def closed(self) -> bool:
        return self._core.closed

    def fileno(self) -> int:
        return self.sock.fileno()

    # ---- I/O bookkeeping: close() never leaves a task hanging on a closed socket ----

    @contextlib.contextmanager
    def _io(self) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self._io_tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if task is not None and task in self._cancelled:
                self._cancelled.discard(task)
                if sys.version_info >= (3, 11):
                    task.uncancel()
                raise StreamBrokenError("the channel was closed during the call") from None
            raise
        finally:
            if task is not None:
                self._io_tasks.discard(task)

    # ---- sending ----

    async def send(
        self,
        array: Any,
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        flush: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send one array (see Channel.send, ``flush=False`` and ``progress`` included)."""
        core = self._core
        core.check_send()
        if not flush and core.hold(array, byteorder, checksum):  # no I/O: no lock needed
            if len(core.held) >= core.send_buffer:
                await self.flush()
            return
        with self._io():
            async with self._send_lock:  # frames are numbered and sent in one order
                core.check_send()
                data, frames = core.prepare_array(array, byteorder, checksum, True)
                await self._transmit(data, frames, progress)

    async def send_many(
        self,
        arrays: Mapping[str, Any],
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send named arrays as one message (see Channel.send_many)."""
        core = self._core
        core.check_send()
        with self._io():
            async with self._send_lock:
                core.check_send()
                data, frames = core.prepare_message(arrays, byteorder, checksum)
                await self._transmit(data, frames, progress)

    async def flush(self) -> None:
        """Send the frames that ``send(..., flush=False)`` holds (see Channel.flush)."""
        core = self._core
        if not core.held or core.closed:
            return
        core.check_send()
        with self._io():
            async with self._send_lock:
                data = core.take_held()
                if data is not None:
                    await self._transmit(data, None, None)

    async def _transmit(self, data: Any, frames: Any, progress: Any) -> None:
        """Under the send lock: send ``data`` then ``frames``, within the timeout."""
        try:
            await _with_timeout(self._send_all(data, frames, progress), self.timeout)
        except BaseException as exc:
            self._core.send_failed(exc)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise self._peer_report(exc) from exc
            raise

    async def _send_all(self, data: Any, frames: Any, progress: Any) -> None:
        stream = self._stream
        if progress is None:
            if data is not None:
                await stream.sendall(data)
            for parts in frames or ():
                await stream.send_views(views(parts))
            return
        step = 4 << 20
        for buf in ([data] if data is not None else []) + [p for ps in frames or () for p in ps]:
            mv = memoryview(buf).cast("B")
            for k in range(0, len(mv), step):
                await stream.sendall(mv[k : k + step])
                progress(len(mv[k : k + step]))

    def _peer_report(self, exc: BaseException) -> BaseException:
        """A send failed with ``exc``: what to raise instead -- the peer's report
        (PeerError) or its close (what it received), read from what it left."""
        self._read_report()
        err = self._core.failed_send_error(exc)
        return exc if err is exc else err

    def _read_report(self) -> None:
        """Read, without waiting, what the peer left before its connection went (its
        ERROR report, its ACK); arrays found stay for the next recv()."""
        core = self._core
        dec = core.dec
        if not core.wire or core.rx_error is not None or not dec.at_boundary:
            return
        if self._recv_lock.locked():
            return  # a receiving task reads the report itself
        got = 0
        with contextlib.suppress(Exception):
            while got < _REPORT_READ_LIMIT and core.peer_error is None:
                ev = dec.next_event()
                if ev is NEED_DATA:
                    n = self._stream.recv_now(dec.get_buffer())
                    dec.advance(n)
                    if not n:
                        break
                    got += n
                    continue
                core.stash(ev)

    async def _send_control(self, data: bytes | None) -> None:
        """Hand the peer a control frame (ACK, ERROR), after any send in progress, without
        waiting long for it."""
        if not data:
            return

        async def locked() -> None:
            async with self._send_lock:
                await self._stream.sendall(data)

        try:
            await _with_timeout(locked(), CONTROL_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self._core.send_failed(exc)

    # ---- receiving ----

    async def recv(self, out: np.ndarray | None = None, *, schema: Any = None) -> np.ndarray:
        """Receive one array (see Channel.recv)."""
        core = self._core
        if core.held:
            await self.flush()
        if schema is None:
            a = core.fast_recv(out)  # whole frames already received: no await
            if a is not None:
                return a
        return array_of(await self._recv_event(out, schema))

    async def recv_many(
        self, out: Mapping[str, np.ndarray] | None = None, *, schema: Any = None
    ) -> dict[str, np.ndarray]:
        """Receive one message (see Channel.recv_many)."""
        if self._core.format == "npy":
            raise UsageError("format='npy' carries single arrays; use recv()")
        return message_of(await self._recv_event(out, schema))

    async def recv_event(
        self, out: Any = None, *, schema: Any = None
    ) -> _codec.Array | _codec.Message:
        """Receive the next array or message as a codec event (see Channel.recv_event)."""
        return await self._recv_event(out, schema)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                ev = await self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield item_of(ev)

    async def _recv_event(self, out: Any, schema: Any) -> Any:
        core = self._core
        if core.held:
            await self.flush()  # a peer may wait for what is held before it answers
        with self._io():
            async with self._recv_lock:
                ev = core.start_recv(out, schema)
                if ev is not None:
                    return ev
                try:
                    return await _with_timeout(self._recv_loop(), self.timeout)
                except (EndOfStreamError, PeerError):
                    raise
                except (TimeoutError, asyncio.CancelledError) as exc:
                    await self._refused(core.recv_failed(exc, interrupted=True))
                    if isinstance(exc, TimeoutError) and core.rx_error is None:
                        raise TimeoutError("timed out waiting for the next frame") from None
                    raise
                except BaseException as exc:
                    await self._refused(core.recv_failed(exc))
                    raise

    async def _refused(self, report: bytes | None) -> None:
        """This side refused the stream: tell the peer why, then end the connection at
        once (see Channel._refused)."""
        if report is not None:
            await self._send_control(report)
            self._finish()

    async def _recv_loop(self) -> Any:
        core, stream = self._core, self._stream
        dec = core.dec
        while True:
            ev = dec.next_event()
            if ev is NEED_DATA:
                dec.advance(await stream.recv_into(dec.get_buffer()))
                continue
            result, reply = core.handle(ev)
            if reply is not None:
                await self._send_control(reply)
            if result is CONSUMED:
                if core.closing:
                    raise StreamBrokenError("the channel was closed during the call")
                continue
            if isinstance(result, BaseException):
                raise result
            return result

    # ---- closing ----

    async def close(self, timeout: float | None = None) -> None:
        """End the stream, wait until the peer confirms it received every frame, and
        close the socket (see Channel.close for ``timeout`` and what it raises)."""
        core = self._core
        if core.closed or core.closing:
            return
        if timeout is None:
            timeout = core.close_timeout
        if timeout is None:
            timeout = self.timeout if self.timeout is not None else DEFAULT_CLOSE_TIMEOUT
        timed_out = False
        try:
            try:
                await _with_timeout(self._closing(timeout > 0), timeout or CONTROL_TIMEOUT)
            except TimeoutError:
                timed_out = True
        finally:
            self._finish()
        if timeout > 0:
            err = core.close_result(timeout, timed_out=timed_out)
            if err is not None:
                raise err

    async def _closing(self, wait: bool) -> None:
        core = self._core
        async with self._send_lock:  # after a send in progress, if any
            data = core.begin_close()
            if data is not None:
                try:
                    await self._stream.sendall(data)
                except OSError as exc:
                    core.send_failed(exc)
                    self._read_report()
        if not core.wire:
            self._stream.shutdown_write()  # an npy stream ends with the half-close
        if not wait or not core.close_pending:
            return
        async with self._recv_lock:  # a receiving task may have read the answer already
            dec = core.dec
            try:
                while core.close_pending:
                    ev = dec.next_event()
                    if ev is NEED_DATA:
                        n = await self._stream.recv_into(dec.get_buffer())
                        if not n:
                            core.close_failed(None)
                            return
                        dec.advance(n)
                        continue
                    await self._send_control(core.handle(ev)[1])
            except (OSError, WireError) as exc:
                core.close_failed(exc)

    async def abort(self, reason: str = "aborted", *, code: int = ErrorCode.APPLICATION) -> None:
        """End the channel at once with an error (see Channel.abort)."""
        core = self._core
        if core.closed:
            return
        try:
            data = core.abort_frame(code, reason)
            if data is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    await _with_timeout(self._stream.sendall(data), CONTROL_TIMEOUT)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._core.closed:
            return
        self._core.finish()
        current = asyncio.current_task()
        for task in list(self._io_tasks):  # a send or receive waiting on this socket
            if task is not current and not task.done():
                self._cancelled.add(task)
                task.cancel()
        self.sock.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


async def _secure(
    sock: socket.socket,
    ctx: Any,
    key: bytes | None,
    server_side: bool,
    server_hostname: str | None,
) -> Any:
    """TLS then authkey handshakes on a connected non-blocking socket; the stream.
    The caller bounds the whole with handshake_timeout."""
    stream: Any = _SocketStream(sock)
    if ctx is not None:
        stream = _TLSStream(sock, ctx, server_side, server_hostname)
        await stream.handshake()
    if key is not None:
        hs = auth.ServerHandshake(key) if server_side else auth.ClientHandshake(key)
        try:
            await auth.run_async(stream, hs)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise AuthenticationError(f"the peer closed during the handshake: {exc}") from None
    return stream


async def _secure_within(
    sock: socket.socket,
    ctx: Any,
    key: bytes | None,
    server_side: bool,
    server_hostname: str | None,
    timeout: float | None,
) -> Any:
    try:
        return await _with_timeout(_secure(sock, ctx, key, server_side, server_hostname), timeout)
    except TimeoutError:
        if key is not None and ctx is None:
            raise AuthenticationError("authkey handshake timed out") from None
        raise TimeoutError(f"the handshake took more than {timeout} s") from None


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
            stream = await _secure_within(
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
    ``handshake_timeout``, ``max_handshakes``, ``max_connections``, ``idle_timeout``
    and channel options).  ``accept()`` runs one connection's handshakes at a time;
    :func:`serve` runs each in its own task.
    """

    def __init__(
        self,
        address: Any,
        *,
        backlog: int = 128,
        ssl: Any = None,
        authkey: Any = None,
        handshake_timeout: float | None = auth.DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        **options: Any,
    ):
        if max_handshakes < 1:
            raise UsageError("max_handshakes must be >= 1")
        self._ssl = ssl
        self._authkey = auth.normalize_authkey(authkey)
        self._handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
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
        """Wait for a connection, run its handshakes, return its AsyncChannel.

        Raises: TimeoutError; what the handshake raised (AuthenticationError,
        ssl.SSLError, TimeoutError); a connection beyond ``max_connections`` is told
        ErrorCode.BUSY and closed, and accept() waits for the next.
        """
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await _with_timeout(loop.sock_accept(self.sock), timeout)
            try:
                conn.setblocking(False)
                stream = await _secure_within(
                    conn, self._ssl, self._authkey, True, None, self._handshake_timeout
                )
            except BaseException:
                conn.close()
                raise
            if self.max_connections is not None and self.active >= self.max_connections:
                self.refused += 1
                await _refuse_busy(conn, stream, self.max_connections)
                continue
            return self._channel(conn, stream)

    def _channel(self, conn: socket.socket, stream: Any) -> AsyncChannel:
        try:
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
        unlink_quietly(self._unix_path)

    async def __aenter__(self) -> AsyncListener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def _refuse_busy(conn: socket.socket, stream: Any, limit: int) -> None:
    """Tell a connection the server is full (an ERROR frame), then close it."""
    try:
        frame = Encoder().error(ErrorCode.BUSY, f"server busy: {limit} connections open")
        await _with_timeout(stream.sendall(frame), CONTROL_TIMEOUT)
        stream.shutdown_write()
    except (OSError, TimeoutError):
        pass
    finally:
        conn.close()


async def listen(address: Any, **options: Any) -> AsyncListener:
    """Listen on ``address``; returns an AsyncListener (see wirearray.listen)."""
    return AsyncListener(address, **options)


Handler = Callable[[AsyncChannel], Awaitable[Any]]


class AsyncServer:
    """Runs ``handler(channel)`` for every accepted connection, each in its own task.

    When the handler returns, the channel is closed with the orderly close (a
    client's unconfirmed stream is counted in ``peer_errors``, not raised).  An
    exception in one handler ends that connection only and the server keeps
    accepting: errors caused by the peer (WireError, OSError: bad data, truncation,
    timeouts, resets) are counted in ``peer_errors``; anything else is a bug of the
    handler, reported to the client (ERROR frame, ErrorCode.APPLICATION, with the
    exception's type only) and to the loop's exception handler.

    Handshakes (TLS, authkey) run in each connection's own task within
    ``handshake_timeout``; at most ``max_handshakes`` at once (a new connection drops
    the one that has waited longest); failures are counted in
    ``handshake_failures``.  ``max_connections`` bounds established channels: beyond
    it a connection is told ErrorCode.BUSY once its handshake is done, and closed.
    """

    def __init__(
        self,
        listener: AsyncListener,
        handler: Handler,
        *,
        on_refused: Callable[[BaseException], Any] | None = None,
    ):
        self.listener = listener
        self.address = listener.address
        self._handler = handler
        self._on_refused = on_refused
        self._tasks: set[asyncio.Task] = set()
        self._handshaking: dict[asyncio.Task, socket.socket] = {}  # oldest first
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
            if len(self._handshaking) >= listener.max_handshakes:
                oldest = next(iter(self._handshaking))
                oldest.cancel()
                self._handshaking.pop(oldest, None)
            task = loop.create_task(self._run(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, conn: socket.socket) -> None:
        lst = self.listener
        task = asyncio.current_task()
        assert task is not None
        self._handshaking[task] = conn
        try:
            conn.setblocking(False)
            stream = await _secure_within(
                conn, lst._ssl, lst._authkey, True, None, lst._handshake_timeout
            )
        except (OSError, WireError, asyncio.CancelledError) as exc:
            self.handshake_failures += 1
            conn.close()
            if self._on_refused is not None and not isinstance(exc, asyncio.CancelledError):
                self._on_refused(exc)
            return
        finally:
            self._handshaking.pop(task, None)
        if lst.max_connections is not None and lst.active >= lst.max_connections:
            lst.refused += 1
            await _refuse_busy(conn, stream, lst.max_connections)
            if self._on_refused is not None:
                self._on_refused(PeerError(ErrorCode.BUSY, "max_connections reached"))
            return
        channel = lst._channel(conn, stream)
        try:
            await self._handler(channel)
        except EndOfStreamError:  # the client closed while the handler read on: an end
            with contextlib.suppress(WireError, OSError):
                await channel.close()
        except (WireError, OSError) as exc:
            # The peer's doing (bad data, truncation, timeout, reset): counted, not
            # logged -- a hostile client must not fill the logs or keep tracebacks.
            self._peer_error(exc)
            await channel.abort(f"the stream failed: {error_code(exc).name}", code=error_code(exc))
        except asyncio.CancelledError:
            await channel.abort("the server is shutting down", code=ErrorCode.SHUTDOWN)
            raise
        except Exception as exc:  # a bug in the handler: the client hears, the loop too
            await channel.abort(f"the server's handler failed ({type(exc).__name__})")
            asyncio.get_running_loop().call_exception_handler(
                {"message": "wirearray handler failed", "exception": exc}
            )
        else:
            try:
                await channel.close()
            except (WireError, OSError) as exc:
                self._peer_error(exc)

    def _peer_error(self, exc: BaseException) -> None:
        self.peer_errors += 1
        self.last_peer_error = f"{type(exc).__name__}: {exc}"

    @property
    def connections(self) -> int:
        """Established channels now (handlers running)."""
        return self.listener.active

    @property
    def handshaking(self) -> int:
        """Connections in their handshake now."""
        return len(self._handshaking)

    def close(self) -> None:
        """Stop accepting and cancel running handlers (their clients are told
        ErrorCode.SHUTDOWN)."""
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


async def serve(
    handler: Handler,
    address: Any,
    *,
    on_refused: Callable[[BaseException], Any] | None = None,
    **options: Any,
) -> AsyncServer:
    """Start serving: ``handler(channel)`` runs for each connection; returns the server.

    Args:
        handler: a coroutine function called with each connection's AsyncChannel.
        address: as for :func:`wirearray.listen`.
        on_refused: called (on the loop) with the reason whenever a connection is
            refused before its handler runs: a failed or dropped handshake, or
            ``max_connections`` reached (a PeerError with ErrorCode.BUSY).
        options: those of :class:`AsyncListener` (``ssl``, ``authkey``,
            ``handshake_timeout``, ``max_handshakes``, ``max_connections``,
            ``idle_timeout``, channel options such as ``close_timeout``).

    ``async with await aio.serve(handler, ("127.0.0.1", 0)) as server: ...``
    """
    return AsyncServer(AsyncListener(address, **options), handler, on_refused=on_refused)
