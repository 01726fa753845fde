"""Hostile and unlucky peers against the close handshake and the servers: a close()
that returns means the peer's application has every frame, nothing hangs past its
timeout, and every failure is a specific wirearray exception (docs/SECURITY.md).

Real sockets on loopback, hand-written peers where the case needs bytes an honest
peer would not send; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

import numpy as np
import pytest

import wirearray
from netutil import WAIT, Net
from wirearray import DeliveryError, aio
from wirearray.codec import Encoder


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


def reset(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a close with unread bytes does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- a close() that returns means the peer's application has every frame ----


def test_a_reset_after_the_peers_close_is_no_confirmation(net):
    """An honest receiver takes one of three arrays and closes, which resets the
    connection (our two other frames sit unread in its buffer).  The sender's receive
    sees the peer's ACK(1) -- the end of its stream -- and the ACK it answers with
    meets the reset.  That failed answer must not make close() return as if the peer
    had every frame: the peer said it received 1 of 3."""
    listener = net.listen("127.0.0.1:0")
    sent, done = threading.Event(), threading.Event()

    def receiver():
        ch = listener.accept(timeout=WAIT)
        assert sent.wait(WAIT)
        ch.recv()
        ch.close()  # ACK(1); the unread frames make the close a reset
        done.set()

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    for k in range(3):
        ch.send(np.full(1000, float(k)))
    sent.set()
    assert done.wait(WAIT)
    time.sleep(0.1)  # the ACK and the reset are both here
    with pytest.raises(wirearray.EndOfStreamError):
        ch.recv()
    with pytest.raises(DeliveryError) as info:
        ch.close()
    assert (info.value.consumed, info.value.sent) == (1, 3)
    t.join(WAIT)
    listener.close()


def test_a_peer_that_ends_and_resets_confirms_nothing():
    """A peer that read none of our frames ends its stream (END) and resets: the ACK
    our receive answers with fails, and close() must still say nothing was confirmed."""
    srv = socket.create_server(("127.0.0.1", 0))
    ch = wirearray.connect(srv.getsockname(), timeout=WAIT)
    peer, _ = srv.accept()
    for _ in range(3):
        ch.send(np.arange(10))
    time.sleep(0.05)
    peer.sendall(Encoder().end())
    reset(peer)
    time.sleep(0.05)
    with pytest.raises(wirearray.EndOfStreamError):
        ch.recv()
    with pytest.raises(DeliveryError):
        ch.close()
    srv.close()


def test_a_second_close_waits_for_the_verdict_of_the_first():
    """asyncio: while one task's close() waits for a confirmation that never comes,
    another task's close() must not return as if the stream had been confirmed."""

    async def main():
        srv = socket.create_server(("127.0.0.1", 0))
        srv.setblocking(False)
        loop = asyncio.get_running_loop()
        ch = await aio.connect(srv.getsockname(), timeout=WAIT)
        peer, _ = await loop.sock_accept(srv)  # reads nothing, confirms nothing
        try:
            await ch.send(np.arange(10))
            first = asyncio.create_task(ch.close(timeout=0.5))
            await asyncio.sleep(0.1)
            with pytest.raises(wirearray.DeliveryTimeoutError):
                await asyncio.wait_for(ch.close(), WAIT)
            with pytest.raises(wirearray.DeliveryTimeoutError):
                await first
        finally:
            peer.close()
            srv.close()

    asyncio.run(main())


def test_an_abort_ends_a_waiting_close_at_once():
    """asyncio: abort() from another task while close() waits for the peer's
    confirmation ends that wait now (the socket is gone) and close() says the stream
    was not confirmed -- it neither sits out its timeout on a closed socket nor
    returns as if delivered."""

    async def main():
        srv = socket.create_server(("127.0.0.1", 0))
        srv.setblocking(False)
        loop = asyncio.get_running_loop()
        ch = await aio.connect(srv.getsockname(), timeout=WAIT)
        peer, _ = await loop.sock_accept(srv)
        try:
            await ch.send(np.arange(10))
            closing = asyncio.create_task(ch.close(timeout=WAIT))
            await asyncio.sleep(0.1)
            start = time.monotonic()
            await ch.abort("stop")
            with pytest.raises(DeliveryError):
                await asyncio.wait_for(closing, WAIT)
            assert time.monotonic() - start < 2
        finally:
            peer.close()
            srv.close()

    asyncio.run(main())
