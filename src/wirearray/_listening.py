"""What the blocking Listener and the asyncio AsyncListener share: the bound
listening socket, the settings of the handshake phase and of established channels,
and the counters.  The loops that accept and run handshakes are theirs
(listener.py, _aio_server.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ._channel_helpers import DEFAULT_MAX_HANDSHAKES
from ._sockets import bind_listening_socket, unlink_quietly
from .auth import DEFAULT_HANDSHAKE_TIMEOUT, normalize_authkey
from .exceptions import UsageError

__all__ = ["ListeningSocket"]


class _Counted(Protocol):
    _on_close: Callable[[], None] | None


_C = TypeVar("_C", bound=_Counted)


class ListeningSocket:
    """A bound, non-blocking listening socket with the listener settings (see
    :class:`wirearray.Listener` for each argument) and counters: ``active``
    (established channels open), ``refused`` (turned away at ``max_connections``)."""

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
        if max_connections is not None and max_connections < 1:
            raise UsageError("max_connections must be >= 1 or None")
        self._ssl = ssl
        self._authkey = normalize_authkey(authkey)
        self._handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.max_connections = max_connections
        self.active = 0
        self.refused = 0
        if idle_timeout is not None:
            options.setdefault("timeout", idle_timeout)
        self._options = options
        self.sock, self.address, self._unix_path = bind_listening_socket(address, backlog)
        self.sock.setblocking(False)
        self._closed = False

    @property
    def full(self) -> bool:
        """True when ``max_connections`` channels are open."""
        return self.max_connections is not None and self.active >= self.max_connections

    def _adopt(self, channel: _C) -> _C:
        """Count an established channel until it closes."""
        self.active += 1
        channel._on_close = self._channel_closed
        return channel

    def _channel_closed(self) -> None:
        self.active -= 1

    def close(self) -> None:
        """Stop listening (a UNIX socket's path is removed); idempotent.  Channels
        already handed out stay open."""
        if self._closed:
            return
        self._closed = True
        self._close_more()
        self.sock.close()
        unlink_quietly(self._unix_path)

    def _close_more(self) -> None:
        """What a listener closes besides its socket."""

    def fileno(self) -> int:
        return self.sock.fileno()
