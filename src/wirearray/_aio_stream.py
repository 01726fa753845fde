"""Byte streams on the asyncio event loop for the asyncio layer: plain sockets with
the loop's socket primitives (``sock_recv_into``, ``sock_sendall``; a non-blocking
``sendmsg`` first), TLS through ``ssl.SSLObject`` and memory BIOs so decrypted bytes
land in the caller's buffer, the connection handshakes (TLS, then authkey) within one
deadline, and the timeout helper (``asyncio.timeout`` where it exists).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import auth
from ._sockets import HAS_SENDMSG, shutdown_write
from .exceptions import AuthenticationError

if TYPE_CHECKING:
    import ssl

__all__ = ["SocketStream", "TLSStream", "secure_within", "with_timeout"]


_T = TypeVar("_T")

if sys.version_info >= (3, 11):

    async def with_timeout(coro: Awaitable[_T], timeout: float | None) -> _T:
        if timeout is None:
            return await coro
        try:
            async with asyncio.timeout(timeout):
                return await coro
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout} s") from None

else:  # pragma: no cover - Python 3.10

    async def with_timeout(coro: Awaitable[_T], timeout: float | None) -> _T:
        if timeout is None:
            return await coro
        try:
            # wait_for(coro, 0) cancels the coroutine before it runs a step; a positive
            # timeout lets it run until it would wait, as asyncio.timeout(0) does
            return await asyncio.wait_for(coro, max(timeout, 1e-9))
        except asyncio.TimeoutError:  # a distinct class before Python 3.11
            raise TimeoutError(f"timed out after {timeout} s") from None


class SocketStream:
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


class TLSStream(SocketStream):
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
        # ssl is imported where TLS is used, so wirearray imports on a Python without it.
        import ssl

        super().__init__(sock)
        self._want_read = ssl.SSLWantReadError
        self._eof = (ssl.SSLZeroReturnError, ssl.SSLEOFError)
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
            except self._want_read:
                await self._flush()
                await self._fill()

    async def recv_into(self, buf: Any) -> int:
        while True:
            try:
                # into a buffer, read() returns a count (typeshed says bytes)
                return cast(int, self.obj.read(len(buf), buf))
            except self._want_read:
                await self._flush()
                await self._fill()
            except self._eof:
                return 0

    def recv_now(self, buf: Any) -> int:
        while True:
            try:
                # into a buffer, read() returns a count (typeshed says bytes)
                return cast(int, self.obj.read(len(buf), buf))
            except self._want_read:
                data = self.sock.recv(self.READ)  # BlockingIOError: nothing more now
                if not data:
                    self._in.write_eof()
                else:
                    self._in.write(data)
            except self._eof:
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


async def secure(
    sock: socket.socket,
    ctx: Any,
    key: bytes | None,
    server_side: bool,
    server_hostname: str | None,
) -> Any:
    """TLS then authkey handshakes on a connected non-blocking socket; the stream.
    The caller bounds the whole with handshake_timeout."""
    stream: Any = SocketStream(sock)
    if ctx is not None:
        stream = TLSStream(sock, ctx, server_side, server_hostname)
        await stream.handshake()
    if key is not None:
        hs = auth.ServerHandshake(key) if server_side else auth.ClientHandshake(key)
        try:
            await auth.run_async(stream, hs)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise AuthenticationError(f"the peer closed during the handshake: {exc}") from None
    return stream


async def secure_within(
    sock: socket.socket,
    ctx: Any,
    key: bytes | None,
    server_side: bool,
    server_hostname: str | None,
    timeout: float | None,
) -> Any:
    try:
        return await with_timeout(secure(sock, ctx, key, server_side, server_hostname), timeout)
    except TimeoutError:
        if key is not None and ctx is None:
            raise AuthenticationError("authkey handshake timed out") from None
        raise TimeoutError(f"the handshake took more than {timeout} s") from None
