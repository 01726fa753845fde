"""``timeout=0`` is a poll, as ``socket.settimeout(0)`` is: every call does what it can
without waiting -- returns a frame that has wholly arrived, sends what the socket can
take now, accepts a queued connection -- and otherwise raises TimeoutError with the
channel intact.  Both layers (fixture ``net``), real sockets; the suite runs once per
implementation (WIREARRAY_PUREPYTHON=1 for the fallback)."""

from __future__ import annotations

import select
import socket
import threading
import time

import numpy as np
import pytest

import wirearray
from netutil import WAIT, Net
from wirearray.codec import Encoder

FAMILIES = ["ipv4", "unix"]


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


@pytest.fixture(params=FAMILIES)
def address(request, tmp_path):
    return {"ipv4": "127.0.0.1:0", "unix": f"unix:{tmp_path}/poll.sock"}[request.param]


def show(address) -> str:
    if isinstance(address, tuple):
        return f"{address[0]}:{address[1]}"
    return address


def wait_readable(sock, timeout: float = WAIT) -> None:
    assert select.select([sock], [], [], timeout)[0], "nothing arrived"


def poll_until(call, timeout: float = WAIT):
    """Call a polling receive until it returns; (result, polls that found nothing)."""
    misses, end = 0, time.monotonic() + timeout
    while True:
        try:
            return call(), misses
        except TimeoutError:
            misses += 1
            assert time.monotonic() < end, "no frame in time"
            time.sleep(0.001)


def test_recv_poll_returns_what_arrived_else_timeout_with_the_channel_intact(net, address):
    with net.listen(address) as listener:
        with net.connect(show(listener.address), timeout=0) as ch:
            server = listener.accept()
            for _ in range(3):  # nothing there: TimeoutError, not BlockingIOError, repeatedly
                with pytest.raises(TimeoutError):
                    ch.recv()
                with pytest.raises(TimeoutError):
                    ch.recv_many()
            server.send(np.arange(5.0))
            wait_readable(ch.sock)
            assert np.array_equal(ch.recv(), np.arange(5.0))
            with pytest.raises(TimeoutError):
                ch.recv()
            for i in range(20):  # several small frames arrive in one read
                server.send(np.full(3, i, "i4"), flush=False)
            server.send_many({"a": np.ones(2), "b": np.zeros(1, "u1")})
            got = [poll_until(ch.recv)[0] for _ in range(20)]
            assert [int(a[0]) for a in got] == list(range(20))
            msg, _ = poll_until(ch.recv_many)
            assert sorted(msg) == ["a", "b"] and np.array_equal(msg["a"], np.ones(2))
            out = np.empty(4, ">f8")
            server.send(np.arange(4.0))
            got_out, _ = poll_until(lambda: ch.recv(out=out))
            assert np.shares_memory(got_out, out) and np.array_equal(got_out, np.arange(4.0))
            ch.send(np.arange(2))  # the channel sends too
            assert np.array_equal(server.recv(), np.arange(2))
            server.close_thread = threading.Thread(target=lambda: list(server.all()))
            server.close_thread.start()
        server.close_thread.join(WAIT)  # ch.close() above was confirmed by the reader
        server.close()


def test_a_large_frame_arrives_over_many_polls(net, address, tmp_path):
    """What a poll finds of a large frame is kept, and the polls that follow complete
    it in place.  The peer holds the frame's last bytes back until a poll has found
    the rest and come back empty, so a poll certainly ends inside the frame."""
    big = np.random.default_rng(1).standard_normal(1 << 20)  # 8 MiB
    enc = Encoder()
    frame = enc.encode(big)
    if address.startswith("unix:"):
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(f"{tmp_path}/large.sock")
        srv.listen()
        where = f"unix:{tmp_path}/large.sock"
    else:
        srv = socket.create_server(("127.0.0.1", 0))
        where = show(srv.getsockname())
    try:
        with net.connect(where, timeout=0) as ch:
            peer, _ = srv.accept()
            with peer:
                head = len(frame) - 4096
                feeder = threading.Thread(target=peer.sendall, args=(frame[:head],))
                feeder.start()
                out = np.empty_like(big)
                misses, end = 0, time.monotonic() + WAIT
                while feeder.is_alive() or misses == 0:  # until all but the tail is in
                    with pytest.raises(TimeoutError):
                        ch.recv(out=out)
                    misses += 1
                    assert time.monotonic() < end, "the head did not arrive"
                    time.sleep(0.001)
                feeder.join(WAIT)
                with pytest.raises(TimeoutError):  # everything but the tail has been read
                    ch.recv(out=out)
                peer.sendall(frame[head:] + enc.encode(big[:3]) + enc.end())
                got, _ = poll_until(lambda: ch.recv(out=out))
                assert got is out or np.shares_memory(got, out)
                assert np.array_equal(got, big)
                assert np.array_equal(poll_until(ch.recv)[0], big[:3])
                with pytest.raises(wirearray.EndOfStreamError):
                    poll_until(ch.recv)
    finally:
        srv.close()


def test_a_frame_a_poll_started_needs_the_same_out(net):
    """The next receive continues the frame a poll left partly received, into the out=
    of that poll: another out= is refused with nothing consumed."""
    enc = Encoder()
    frame = enc.encode(np.arange(1000.0))
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        with net.connect(srv.getsockname(), timeout=0) as ch:
            peer, _ = srv.accept()
            with peer:
                peer.sendall(frame[:3000])
                wait_readable(ch.sock)
                time.sleep(0.05)
                out = np.zeros(1000)
                with pytest.raises(TimeoutError):
                    ch.recv(out=out)
                with pytest.raises(wirearray.BufferMismatchError, match="same"):
                    ch.recv(out=np.zeros(1000))
                with pytest.raises(wirearray.BufferMismatchError, match="same"):
                    ch.recv()
                peer.sendall(frame[3000:])
                got, _ = poll_until(lambda: ch.recv(out=out))
                assert np.shares_memory(got, out) and np.array_equal(out, np.arange(1000.0))
                peer.sendall(enc.encode(np.arange(3)) + enc.end())
                assert np.array_equal(poll_until(ch.recv)[0], np.arange(3))
                with pytest.raises(wirearray.EndOfStreamError):
                    poll_until(ch.recv)
    finally:
        srv.close()


def test_send_poll_refuses_before_numbering_when_the_socket_is_full(net, address):
    with net.listen(address) as listener:
        with net.connect(show(listener.address), timeout=0) as ch:
            server = listener.accept()
            sent = 0
            a = np.arange(128.0)  # 1 KiB: fits whenever the socket reports space
            with pytest.raises(TimeoutError, match="nothing was sent"):
                for _ in range(1 << 20):  # until the peer's and our buffers are full
                    ch.send(a + sent)
                    sent += 1
            assert sent > 10
            got = []
            reader = threading.Thread(target=lambda: got.extend(server.all()))
            reader.start()
            poll_until(lambda: ch.send(a + sent))  # the channel goes on
            sent += 1
        reader.join(WAIT)
        server.close()
    assert len(got) == sent
    assert all(np.array_equal(g, a + i) for i, g in enumerate(got))


def test_accept_poll(net, address):
    with net.listen(address) as listener:
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0)
        with net.connect(show(listener.address), timeout=WAIT) as ch:
            wait_readable(listener.listener.sock)
            server = listener.accept(timeout=0)
            ch.send(np.arange(3))
            assert np.array_equal(server.recv(), np.arange(3))
            server.close_thread = threading.Thread(target=lambda: list(server.all()))
            server.close_thread.start()
        server.close_thread.join(WAIT)
        server.close()


def test_datagram_poll():
    with wirearray.DatagramChannel(local="127.0.0.1:0", timeout=0) as rx:
        with wirearray.DatagramChannel(remote=rx.address, timeout=0) as tx:
            with pytest.raises(TimeoutError):
                rx.recv()
            tx.send(np.arange(4, dtype="u2"))
            wait_readable(rx.sock)
            assert np.array_equal(rx.recv(), np.arange(4, dtype="u2"))
            with pytest.raises(TimeoutError):
                rx.recv()
            tx.send(np.ones(2))
            wait_readable(rx.sock)
            assert np.array_equal(rx.recv(), np.ones(2))
            assert rx.stats["lost"] == 0


def test_recv_poll_over_tls(net, server_ctx, client_ctx):
    """TLS sockets say "nothing now" with SSLWantReadError: a poll there is a
    TimeoutError too, and a frame that arrives is received."""
    with net.listen("127.0.0.1:0", ssl=server_ctx) as listener:
        accepted: list = []
        acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()))
        acceptor.start()  # the server's side of the TLS handshake
        with net.connect(show(listener.address), timeout=0, ssl=client_ctx) as ch:
            acceptor.join(WAIT)
            (server,) = accepted
            with pytest.raises(TimeoutError):
                ch.recv()
            big = np.arange(1 << 18, dtype="i8")  # 2 MiB: many TLS records
            sender = threading.Thread(target=lambda: (server.send(np.arange(3)), server.send(big)))
            sender.start()
            assert np.array_equal(poll_until(ch.recv)[0], np.arange(3))
            assert np.array_equal(poll_until(ch.recv)[0], big)
            sender.join(WAIT)
            with pytest.raises(TimeoutError):
                ch.recv()
            server.close_thread = threading.Thread(target=lambda: list(server.all()))
            server.close_thread.start()
        server.close_thread.join(WAIT)
        server.close()
