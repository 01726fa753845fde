"""Socket helpers shared by the blocking and the asyncio layers.

Nothing here knows the wire format.  What is here is written once because both
layers need it the same way: how buffers are gathered for ``sendmsg``, how a listening
socket is bound (and a stale UNIX socket replaced), TCP options, and deadlines.

Deadlines, not per-call timeouts: a channel's ``timeout`` bounds each send or receive
*call as a whole*.  A blocking loop of several system calls sets the socket's timeout
to what remains before each call after the first (``Deadline.remaining``), so a peer
that drips one byte per interval cannot stretch an operation; ``socket.sendall``
already treats its timeout that way (Python >= 3.5).

``timeout=0`` is a poll, as ``socket.settimeout(0)`` is: a call does what it can
without waiting.  The socket is then non-blocking, so a call that would wait raises
``BlockingIOError`` (``ssl.SSLWantReadError``/``SSLWantWriteError`` on TLS sockets:
``WOULD_BLOCK``), which the channels turn into ``TimeoutError`` like any other
deadline; ``writable_now`` lets a send find out before it numbers a frame.

The per-message send path (``small_sender``): on a plain stream socket, a small
array's frame is built and handed to ``send(2)`` on the socket's descriptor in one
compiled call (``_cwire.send_small``), which never waits: it passes MSG_DONTWAIT, so
it behaves the same whether CPython keeps the descriptor blocking (no timeout) or
O_NONBLOCK (any timeout, which CPython implements with poll() around non-blocking
calls).  What the socket cannot take at once -- the whole frame, or its rest after a
partial send -- is then sent by ``sendall`` (asyncio: the stream's ``sendall``)
under the channel's deadline, so a frame is never half numbered nor lost, and a
timeout or a poll means what it meant.  TLS sockets (the bytes must pass through the
TLS layer), socket subclasses, Windows (winsock has no MSG_DONTWAIT) and the
pure-Python implementation keep the Python path.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys
import time
from typing import Any, Final

from ._address import Endpoint, format_address, parse_address
from ._channel_helpers import views
from .exceptions import AddressError

__all__ = [
    "HAS_SENDMSG",
    "WOULD_BLOCK",
    "Deadline",
    "bind_listening_socket",
    "connect_socket",
    "is_tls",
    "send_parts",
    "shutdown_write",
    "small_holder",
    "small_sender",
    "tune",
]

HAS_SENDMSG: Final = hasattr(socket.socket, "sendmsg")


def _would_block() -> tuple[type[OSError], ...]:
    # ssl is optional (a Python built without OpenSSL has no TLS sockets either)
    try:
        import ssl
    except ImportError:
        return (BlockingIOError,)
    return (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


#: what a non-blocking socket (``timeout=0``) raises for "nothing now", plain or TLS
WOULD_BLOCK: Final = _would_block()


def small_holder(enc: Any) -> Any:
    """The compiled ``hold_small`` (``send(flush=False)`` of a small array in one call)
    for encoder ``enc``, or None: the pure-Python implementation, another framing."""
    if enc._small is None:
        return None
    return getattr(enc._impl, "hold_small", None)


def small_sender(sock: Any, enc: Any) -> Any:
    """The compiled ``send_small`` for ``sock`` and encoder ``enc``, or None where the
    per-message send path does not apply (module header)."""
    impl = enc._impl
    if enc._small is None or not getattr(impl, "HAVE_SEND_SMALL", False):
        return None  # the pure-Python implementation, or a framing without whole frames
    if type(sock) is not socket.socket or sock.type != socket.SOCK_STREAM:
        return None  # TLS (ssl.SSLSocket), other wrappers, datagrams
    return impl.send_small


def small_receiving(sock: Any, dec: Any) -> bool:
    """Whether the compiled receive path may refill ``dec``'s read-ahead from
    ``sock``'s descriptor itself (``SmallRx.take``: one recv(2) that never waits): a
    plain stream socket (not TLS, whose bytes are not the wire's; no subclass that
    may override recv) with the compiled core on a platform that has the call."""
    if sys.platform == "win32" or not getattr(dec._impl, "HAVE_RECV_SMALL", False):
        return False
    if dec._small is None:
        return False  # a framing without whole frames (npy): no compiled decode
    return type(sock) is socket.socket and sock.type == socket.SOCK_STREAM


def writable_now(sock: Any) -> bool:
    """True when a send on ``sock`` would not wait (some buffer space is free)."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit
        p = select.poll()
        p.register(sock.fileno(), select.POLLOUT)
        return bool(p.poll(0))
    return bool(select.select([], [sock], [], 0)[1])


class Deadline:
    """A point in time ``timeout`` seconds from now (None: never)."""

    __slots__ = ("at", "timeout")

    def __init__(self, timeout: float | None):
        self.timeout = timeout
        self.at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (None: no deadline); raises TimeoutError once it has passed."""
        if self.at is None:
            return None
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {self.timeout} s")
        return left

    def left(self) -> float | None:
        """Seconds left, 0.0 once the deadline has passed (None: no deadline)."""
        if self.at is None:
            return None
        return max(0.0, self.at - time.monotonic())


def tune(sock: socket.socket) -> None:
    """TCP_NODELAY on TCP sockets (a frame leaves in one call: never wait for more)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def is_tls(sock: Any) -> bool:
    """True for ssl.SSLSocket (no sendmsg, no MSG_PEEK, no half-close)."""
    return hasattr(sock, "cipher")


def send_parts(sock: socket.socket, parts: list, deadline: Deadline | None = None) -> None:
    """Send a list of buffers completely on a blocking socket: one ``sendmsg`` per call
    where possible, resumed after partial sends; ``sendall`` per buffer where sendmsg
    is missing (Windows) or unusable (TLS sockets).  With a deadline, each call after
    the first gets the time that remains (the caller restores the socket timeout)."""
    bufs = views(parts)
    if HAS_SENDMSG and not is_tls(sock):
        first = True
        while bufs:
            if not first and deadline is not None and deadline.at is not None:
                sock.settimeout(deadline.remaining())
            first = False
            n = sock.sendmsg(bufs)
            while bufs and n >= len(bufs[0]):
                n -= len(bufs.pop(0))
            if bufs and n:
                bufs[0] = bufs[0][n:]
    else:
        for i, v in enumerate(bufs):
            if i and deadline is not None and deadline.at is not None:
                sock.settimeout(deadline.remaining())
            sock.sendall(v)


def shutdown_write(sock: socket.socket) -> None:
    """Half-close: the peer reads EOF after what was sent (TLS sockets: nothing, as an
    SSLSocket cannot half-close and keep reading)."""
    if is_tls(sock):
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def connect_socket(ep: Endpoint, timeout: float | None) -> socket.socket:
    """A blocking socket connected to the first address of ``ep`` that answers,
    within ``timeout`` seconds in all."""
    deadline = Deadline(timeout)
    last: OSError | None = None
    for family, socktype, proto, _, sockaddr in ep.resolve(socket.SOCK_STREAM):
        sock = socket.socket(family, socktype, proto)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
            if isinstance(exc, TimeoutError):
                break
    assert last is not None
    raise last


def bind_listening_socket(address: Any, backlog: int) -> tuple[socket.socket, Any, str | None]:
    """(listening socket, its reported address, UNIX path to unlink on close or None)."""
    ep = parse_address(address)
    family, socktype, proto, _, sockaddr = ep.resolve(socket.SOCK_STREAM, passive=True)[0]
    unix_path = None
    if ep.is_unix and not sockaddr.startswith("\0"):
        remove_stale_socket(sockaddr)
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


def remove_stale_socket(path: str) -> None:
    """Unlink a UNIX socket file nobody listens on (a dead process's leftover);
    refuse a file that is not a socket or that a live listener owns."""
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
        os.unlink(path)
        return
    finally:
        probe.close()
    raise AddressError(f"{path} is in use by another listener")


def unlink_quietly(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)
