"""The blocking listening side: Listener hands out Channels (transport.py).

Handshakes (TLS, authkey) of many connections progress side by side inside
``accept()``, each within ``handshake_timeout`` in all, driven without blocking by a
selector over the listening socket and every connection still in its handshake.
``max_handshakes`` bounds them (a new one drops the one that has waited longest), and
``max_connections`` bounds the established channels only -- so keyless, silent or
slow clients never take the slots of authenticated ones, nor delay them.  A
connection beyond ``max_connections`` hears why (an ERROR frame, ErrorCode.BUSY).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from ._channel_helpers import CONTROL_TIMEOUT, busy_frame
from ._listening import ListeningSocket
from ._sockets import Deadline, is_tls
from .auth import ServerHandshake
from .exceptions import AuthenticationError
from .transport import Channel

__all__ = ["Listener", "listen"]


class _Pending:
    """One accepted connection in its handshakes, driven without blocking."""

    __slots__ = (
        "auth",
        "conn",
        "deadline",
        "events",
        "started",
        "tls_done",
        "want_read",
        "want_write",
    )

    def __init__(self, conn: socket.socket, ctx: Any, key: bytes | None, timeout: float | None):
        conn.setblocking(False)
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.tls_done = ctx is None
        # What "try again later" is: with TLS also ssl's want-read/want-write, imported
        # here because TLS is in use (wirearray imports on a Python without ssl).
        self.want_read: tuple[type[BaseException], ...] = (BlockingIOError, InterruptedError)
        self.want_write: tuple[type[BaseException], ...] = ()
        if ctx is not None:
            import ssl

            self.want_read += (ssl.SSLWantReadError,)
            self.want_write = (ssl.SSLWantWriteError,)
            conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        self.conn: Any = conn  # an ssl.SSLSocket with TLS
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
                    with contextlib.suppress(OSError):  # ssl.SSLError subclasses it
                        self.conn.send(hs.data_to_send())
                    raise
            return True
        except self.want_read:
            self.events = selectors.EVENT_READ
        except self.want_write:
            self.events = selectors.EVENT_WRITE
        return False


class Listener(ListeningSocket):
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

    def __init__(self, address: Any, **options: Any):
        super().__init__(address, **options)
        self.handshake_failures = 0
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ, None)
        self._pending: dict[socket.socket, _Pending] = {}  # insertion order: oldest first
        self._ready: deque[Any] = deque()  # established sockets, and handshake errors

    def accept(self, timeout: float | None = None) -> Channel:
        """Wait (at most ``timeout`` seconds) for a connection whose handshakes are
        done, and return its Channel.  ``timeout=0`` is a poll: a connection already
        queued (and, with TLS or an authkey, whose handshakes can finish without
        waiting) is returned, else TimeoutError.

        Raises:
            TimeoutError: no connection in time.
            AuthenticationError, ssl.SSLError, OSError: one connection's handshake
                failed (that connection is closed; the others carry on).
        """
        deadline = Deadline(timeout)
        looked = False
        while True:
            while self._ready:
                item = self._ready.popleft()
                if isinstance(item, BaseException):
                    raise item
                channel = self._established(item)
                if channel is not None:
                    return channel
            # one look at what is queued even when no time is left (timeout=0: a poll)
            wait = deadline.left() if not looked else deadline.remaining()
            looked = True
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
        if self.full:
            self.refused += 1
            _refuse_busy(conn, self.max_connections or 0)
            return None
        try:
            conn.setblocking(True)
            channel = Channel(conn, **self._options)
        except BaseException:
            conn.close()
            raise
        return self._adopt(channel)

    def __iter__(self) -> Iterator[Channel]:
        while True:
            yield self.accept()

    @property
    def handshaking(self) -> int:
        """Connections in their handshake now."""
        return len(self._pending)

    def _close_more(self) -> None:
        for p in list(self._pending.values()):
            p.conn.close()
        self._pending.clear()
        for item in self._ready:
            if not isinstance(item, BaseException):
                item.close()
        self._ready.clear()
        self._sel.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _refuse_busy(conn: Any, limit: int) -> None:
    """Tell a connection the server is full (an ERROR frame), then close it."""
    try:
        conn.settimeout(CONTROL_TIMEOUT)
        conn.sendall(busy_frame(limit))
        if not is_tls(conn):
            conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        conn.close()


def listen(address: Any, **options: Any) -> Listener:
    """Listen on ``address`` (see :func:`connect`); returns a :class:`Listener`."""
    return Listener(address, **options)
