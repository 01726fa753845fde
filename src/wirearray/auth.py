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

Every message has a fixed size of 64 bytes, read under the handshake timeout, so a
peer that sends garbage, nothing, or a replayed answer (the server's nonce is fresh
each time) is disconnected without anything it sent being parsed further or
allocated.  Failures raise :class:`~wirearray.AuthenticationError` on both sides.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
from typing import Any

from .exceptions import AuthenticationError, UsageError

__all__ = ["MESSAGE", "client_handshake", "normalize_authkey", "server_handshake"]

MESSAGE = 64
_HELLO = b"\x89WAH\x01" + bytes(27)
_OK = b"\x89WAS" + bytes(28)
_FAIL = b"\x89WAF" + bytes(60)
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


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


def _client_answer(key: bytes, hello: bytes) -> tuple[bytes, bytes]:
    if len(hello) != MESSAGE or hello[:32] != _HELLO:
        raise AuthenticationError("the server did not start an authkey handshake")
    ns, nc = hello[32:], os.urandom(32)
    return _mac(key, b"wirearray client", ns, nc) + nc, nc


def _client_check(key: bytes, reply: bytes, ns: bytes, nc: bytes) -> None:
    if reply[:4] == _FAIL[:4]:
        raise AuthenticationError("the server refused our authkey")
    if (
        len(reply) != MESSAGE
        or reply[:32] != _OK
        or not hmac.compare_digest(reply[32:], _mac(key, b"wirearray server", nc, ns))
    ):
        raise AuthenticationError("the server failed to prove it holds the authkey")


def _server_check(key: bytes, ns: bytes, answer: bytes) -> bytes:
    """The success message to send, or raise AuthenticationError."""
    if len(answer) != MESSAGE:
        raise AuthenticationError("the client closed during the authkey handshake")
    nc = answer[32:]
    if not hmac.compare_digest(answer[:32], _mac(key, b"wirearray client", ns, nc)):
        raise AuthenticationError("the client failed the authkey handshake")
    return _OK + _mac(key, b"wirearray server", nc, ns)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            break
        got += k
    return bytes(buf[:got])


def server_handshake(sock: socket.socket, key: bytes, timeout: float | None) -> None:
    """Run the server side on a connected blocking socket; raise AuthenticationError."""
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        ns = os.urandom(32)
        sock.sendall(_HELLO + ns)
        answer = _recv_exact(sock, MESSAGE)
        try:
            ok = _server_check(key, ns, answer)
        except AuthenticationError:
            try:
                sock.sendall(_FAIL)
            except OSError:
                pass
            raise
        sock.sendall(ok)
    except TimeoutError:
        raise AuthenticationError("authkey handshake timed out") from None
    finally:
        sock.settimeout(old)


def client_handshake(sock: socket.socket, key: bytes, timeout: float | None) -> None:
    """Run the client side on a connected blocking socket; raise AuthenticationError."""
    old = sock.gettimeout()
    sock.settimeout(timeout)
    try:
        hello = _recv_exact(sock, MESSAGE)
        answer, nc = _client_answer(key, hello)
        sock.sendall(answer)
        _client_check(key, _recv_exact(sock, MESSAGE), hello[32:], nc)
    except TimeoutError:
        raise AuthenticationError("authkey handshake timed out") from None
    except (ConnectionResetError, BrokenPipeError) as exc:
        raise AuthenticationError(f"the server closed during the handshake: {exc}") from None
    finally:
        sock.settimeout(old)


# ---- asyncio (the async stream object has recv_exact(n) and sendall(data)) ----


async def server_handshake_async(stream: Any, key: bytes) -> None:
    ns = os.urandom(32)
    await stream.sendall(_HELLO + ns)
    answer = await stream.recv_exact(MESSAGE)
    try:
        ok = _server_check(key, ns, answer)
    except AuthenticationError:
        try:
            await stream.sendall(_FAIL)
        except OSError:
            pass
        raise
    await stream.sendall(ok)


async def client_handshake_async(stream: Any, key: bytes) -> None:
    hello = await stream.recv_exact(MESSAGE)
    answer, nc = _client_answer(key, hello)
    await stream.sendall(answer)
    _client_check(key, await stream.recv_exact(MESSAGE), hello[32:], nc)
