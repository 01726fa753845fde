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

import socket
from typing import Any

from . import auth
from ._address import parse_address
from ._aio_channel import AsyncChannel
from ._aio_server import AsyncListener, AsyncServer, Handler, listen, serve
from ._aio_stream import secure_within, with_timeout

__all__ = ["AsyncChannel", "AsyncListener", "AsyncServer", "Handler", "connect", "listen", "serve"]


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
    import asyncio

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
            # timeout=0 makes the channel poll; a connection (a round trip) cannot be
            # polled, so handshake_timeout bounds it then
            await with_timeout(
                loop.sock_connect(sock, sockaddr), handshake_timeout if timeout == 0 else timeout
            )
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        try:
            stream = await secure_within(
                sock, ssl, key, False, server_hostname or ep.host, handshake_timeout
            )
            return AsyncChannel(sock, timeout=timeout, _stream=stream, **options)
        except BaseException:
            sock.close()
            raise
    assert last is not None
    raise last
