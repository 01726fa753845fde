"""The asyncio listening side: AsyncListener and AsyncServer (``serve``); see aio.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from ._aio_channel import AsyncChannel
from ._aio_stream import secure_within, with_timeout
from ._channel_helpers import CONTROL_TIMEOUT, busy_frame, error_code
from ._listening import ListeningSocket
from .exceptions import EndOfStreamError, ErrorCode, PeerError, WireError

__all__ = ["AsyncListener", "AsyncServer", "Handler", "listen", "serve"]


class AsyncListener(ListeningSocket):
    """A listening socket for asyncio; ``await accept()`` returns an AsyncChannel.

    Takes the arguments of :class:`wirearray.Listener` (``ssl``, ``authkey``,
    ``handshake_timeout``, ``max_handshakes``, ``max_connections``, ``idle_timeout``
    and channel options).  ``accept()`` runs one connection's handshakes at a time;
    :func:`serve` runs each in its own task.
    """

    async def accept(self, timeout: float | None = None) -> AsyncChannel:
        """Wait for a connection, run its handshakes, return its AsyncChannel.

        Raises: TimeoutError; what the handshake raised (AuthenticationError,
        ssl.SSLError, TimeoutError); a connection beyond ``max_connections`` is told
        ErrorCode.BUSY and closed, and accept() waits for the next.
        """
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await with_timeout(loop.sock_accept(self.sock), timeout)
            try:
                conn.setblocking(False)
                stream = await secure_within(
                    conn, self._ssl, self._authkey, True, None, self._handshake_timeout
                )
            except BaseException:
                conn.close()
                raise
            if self.full:
                self.refused += 1
                await _refuse_busy(conn, stream, self.max_connections or 0)
                continue
            return self._channel(conn, stream)

    def _channel(self, conn: socket.socket, stream: Any) -> AsyncChannel:
        try:
            channel = AsyncChannel(conn, _stream=stream, **self._options)
        except BaseException:
            conn.close()
            raise
        return self._adopt(channel)

    async def __aenter__(self) -> AsyncListener:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def _refuse_busy(conn: socket.socket, stream: Any, limit: int) -> None:
    """Tell a connection the server is full (an ERROR frame), then close it."""
    try:
        await with_timeout(stream.sendall(busy_frame(limit)), CONTROL_TIMEOUT)
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
        self._tasks: set[asyncio.Task[Any]] = set()
        self._handshaking: dict[asyncio.Task[Any], socket.socket] = {}  # oldest first
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
            stream = await secure_within(
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
        if lst.full:
            lst.refused += 1
            await _refuse_busy(conn, stream, lst.max_connections or 0)
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
