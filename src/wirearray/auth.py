"""Authkey handshake: mutual challenge-response with HMAC-SHA256 (docs/SECURITY.md).

For servers on trusted networks without TLS (and, if wanted, inside TLS too), in the
spirit of ``multiprocessing.connection``'s authkey but mutual and bound to its
direction.  Both sides hold the same secret ``authkey`` (bytes).  Before any frame is
accepted in either direction:

1. server -> client: ``b"\\x89WAH"`` + version 1 + 27 zero bytes + a 32-byte random
   nonce ``Ns``  (64 bytes);
2. client -> server: ``HMAC(key, b"wirearray client" + Ns + Nc)`` + ``Nc``, the
   client's own 32-byte random nonce (64 bytes);
3. server checks it with ``hmac.compare_digest``; on failure it sends ``b"\\x89WAF"``
   + 60 zero bytes and closes; on success it sends ``b"\\x89WAS"`` + 28 zero bytes +
   ``HMAC(key, b"wirearray server" + Nc + Ns)`` (64 bytes);
4. the client checks the server's proof the same way (a server that does not hold the
   key is refused too).

Every message has a fixed size of 64 bytes, so a peer that sends garbage, nothing, or
a replayed answer (the server's nonce is fresh each time) is disconnected without
anything it sent being parsed further or allocated.  Failures raise
:class:`~wirearray.AuthenticationError` on both sides.

The exchange is written once, sans-I/O (:class:`ServerHandshake`,
:class:`ClientHandshake`: bytes in, bytes out), and driven by three loops: a blocking
one with a deadline (:func:`client_handshake`, :func:`server_handshake`), the
blocking Listener's non-blocking one (many handshakes at once, each with its own
deadline), and asyncio's.  ``handshake_timeout`` bounds a handshake as a whole.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import Any, Final

from . import _format as F
from ._sockets import Deadline
from .exceptions import AuthenticationError, UsageError

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "MESSAGE",
    "ClientHandshake",
    "ServerHandshake",
    "client_handshake",
    "normalize_authkey",
    "server_handshake",
]

MESSAGE: Final = 64
_HELLO = F.HANDSHAKE_HELLO
_OK = F.HANDSHAKE_OK
_FAIL = F.HANDSHAKE_FAIL
#: Seconds a connection's TLS and authkey handshakes may take together.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0


def normalize_authkey(authkey: Any) -> bytes | None:
    """bytes (or str, UTF-8 encoded) of at least 16 bytes; None for no handshake."""
    if authkey is None:
        return None
    if isinstance(authkey, str):
        authkey = authkey.encode("utf-8")
    if not isinstance(authkey, (bytes, bytearray)):
        raise UsageError(f"authkey must be bytes or str, not {type(authkey).__name__}")
    if len(authkey) < 16:
        raise UsageError("authkey must be at least 16 bytes (use os.urandom(32))")
    return bytes(authkey)


def _mac(key: bytes, label: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(key, label + a + b, hashlib.sha256).digest()


class _Handshake:
    """Bytes in (:meth:`receive_data`, ``b""`` at EOF), bytes out
    (:meth:`data_to_send`); ``want`` bytes are still expected; ``done`` when finished.
    A failure raises AuthenticationError from receive_data, after queueing any last
    message for the peer (send it, then close)."""

    def __init__(self, key: bytes):
        self._key = key
        self._out = bytearray()
        self._in = bytearray()
        self.done = False

    @property
    def want(self) -> int:
        return 0 if self.done else MESSAGE - len(self._in)

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._closed()
        self._in += data[: self.want]
        if len(self._in) == MESSAGE:
            msg, self._in = bytes(self._in), bytearray()
            self._message(msg)

    def _closed(self) -> None:
        raise AuthenticationError("the peer closed during the authkey handshake")

    def _message(self, msg: bytes) -> None:
        raise NotImplementedError


class ServerHandshake(_Handshake):
    """The server side: sends its hello at once, checks the client's answer."""

    def __init__(self, key: bytes):
        super().__init__(key)
        self._ns = os.urandom(32)
        self._out += _HELLO + self._ns

    def _closed(self) -> None:
        raise AuthenticationError("the client closed during the authkey handshake")

    def _message(self, answer: bytes) -> None:
        nc = answer[32:]
        if not hmac.compare_digest(answer[:32], _mac(self._key, b"wirearray client", self._ns, nc)):
            self._out += _FAIL
            self.done = True
            raise AuthenticationError("the client failed the authkey handshake")
        self._out += _OK + _mac(self._key, b"wirearray server", nc, self._ns)
        self.done = True


class ClientHandshake(_Handshake):
    """The client side: answers the server's hello, checks the server's proof."""

    def __init__(self, key: bytes):
        super().__init__(key)
        self._ns: bytes | None = None
        self._nc = os.urandom(32)

    def _closed(self) -> None:
        raise AuthenticationError("the server closed during the authkey handshake")

    def _message(self, msg: bytes) -> None:
        if self._ns is None:
            if msg[:32] != _HELLO:
                raise AuthenticationError("the server did not start an authkey handshake")
            self._ns = msg[32:]
            self._out += _mac(self._key, b"wirearray client", self._ns, self._nc) + self._nc
            return
        if msg[:4] == _FAIL[:4]:
            raise AuthenticationError("the server refused our authkey")
        if msg[:32] != _OK or not hmac.compare_digest(
            msg[32:], _mac(self._key, b"wirearray server", self._nc, self._ns)
        ):
            raise AuthenticationError("the server failed to prove it holds the authkey")
        self.done = True


def run_blocking(sock: socket.socket, hs: _Handshake, deadline: Deadline) -> None:
    """Drive a handshake on a connected blocking socket until done or the deadline.

    Raises:
        AuthenticationError: the handshake failed, timed out, or the peer left.
    """
    old = sock.gettimeout()
    try:
        while True:
            out = hs.data_to_send()
            if out:
                sock.settimeout(deadline.remaining())
                sock.sendall(out)
            if hs.done:
                return
            sock.settimeout(deadline.remaining())
            data = sock.recv(hs.want)
            try:
                hs.receive_data(data)
            except AuthenticationError:
                last = hs.data_to_send()
                if last:
                    try:
                        sock.settimeout(1.0)
                        sock.sendall(last)
                    except OSError:
                        pass
                raise
    except TimeoutError:
        raise AuthenticationError("authkey handshake timed out") from None
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise AuthenticationError(f"the peer closed during the authkey handshake: {exc}") from None
    finally:
        sock.settimeout(old)


def server_handshake(sock: socket.socket, key: bytes, timeout: float | None) -> None:
    """Run the server side on a connected blocking socket, within ``timeout`` seconds
    in all; raise AuthenticationError."""
    run_blocking(sock, ServerHandshake(key), Deadline(timeout))


def client_handshake(sock: socket.socket, key: bytes, timeout: float | None) -> None:
    """Run the client side on a connected blocking socket, within ``timeout`` seconds
    in all; raise AuthenticationError."""
    run_blocking(sock, ClientHandshake(key), Deadline(timeout))


# ---- asyncio (the async stream object has recv_exact(n) and sendall(data)) ----


async def run_async(stream: Any, hs: _Handshake) -> None:
    """Drive a handshake over an asyncio stream (bounded by the caller's timeout)."""
    while True:
        out = hs.data_to_send()
        if out:
            await stream.sendall(out)
        if hs.done:
            return
        data = await stream.recv_exact(hs.want)
        try:
            hs.receive_data(data if len(data) == hs.want else b"")
        except AuthenticationError:
            last = hs.data_to_send()
            if last:
                try:
                    await stream.sendall(last)
                except OSError:
                    pass
            raise


async def server_handshake_async(stream: Any, key: bytes) -> None:
    await run_async(stream, ServerHandshake(key))


async def client_handshake_async(stream: Any, key: bytes) -> None:
    await run_async(stream, ClientHandshake(key))
