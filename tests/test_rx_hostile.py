"""Hostile and unlucky peers against the receive paths, with real loopback sockets.

* A server (threads over a Listener, and ``aio.serve``) keeps serving honest clients
  while other peers trickle a small frame one byte per 10 ms, send garbage after
  valid small frames, close inside a frame, or send a frame whose sequence number
  jumps: each hostile connection ends with its own error, nobody else waits for it.
* A reset connection (RST) found by the compiled small-frame path's own read breaks
  the channel exactly as the general path's read does: later receives raise
  StreamBrokenError in both implementations, not a different error per path.
* SIGALRM every millisecond during a stream of small frames: nothing lost or
  reordered (EINTR retried, Python's handler run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time

import numpy as np
import pytest

import wirearray as wa
from wirearray import aio, codec
from wirearray.exceptions import ProtocolError, StreamBrokenError, TruncatedStreamError

WAIT = 20.0
ROUNDS = 40


def _frames(*arrays: np.ndarray, first_seq: int = 0) -> list[bytes]:
    enc = codec.Encoder()
    out = []
    for i, a in enumerate(arrays):
        if i == 0 and first_seq:
            for _ in range(first_seq):  # numbers consumed, bytes dropped: a seq jump
                list(enc.frame(a))
        out.append(b"".join(bytes(p) for parts in enc.frame(a) for p in parts))
    return out


def _trickle(address) -> None:
    with socket.create_connection(address) as s:
        for b in _frames(np.arange(8.0))[0]:
            s.send(bytes([b]))
            time.sleep(0.01)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(WAIT)
        while s.recv(4096):  # the server's answer, then its close
            pass


def _garbage(address) -> None:
    with socket.create_connection(address) as s:
        s.sendall(b"".join(_frames(np.arange(3.0), np.arange(3.0))) + b"\xff" * 200)
        s.settimeout(WAIT)
        while s.recv(4096):
            pass


def _cut(address) -> None:
    with socket.create_connection(address) as s:
        whole = _frames(np.arange(4.0), np.arange(9.0))
        s.sendall(whole[0] + whole[1][: len(whole[1]) // 2])
        s.shutdown(socket.SHUT_WR)  # the end inside the second frame
        s.settimeout(WAIT)
        while s.recv(4096):  # the answer to the first (unread, a close would be a reset)
            pass


def _seq_jump(address) -> None:
    with socket.create_connection(address) as s:
        s.sendall(_frames(np.arange(5.0), first_seq=7)[0])
        s.settimeout(WAIT)
        while s.recv(4096):
            pass


HOSTILE = {
    "trickle": (_trickle, None),  # a whole frame in the end: served, then its END-less close
    "garbage": (_garbage, ProtocolError),
    "cut": (_cut, TruncatedStreamError),
    "seq-jump": (_seq_jump, ProtocolError),
}


def _honest(address, k: int) -> None:
    with wa.connect(address, timeout=WAIT) as ch:
        for i in range(ROUNDS):
            a = np.full(3 + k, i, np.int32)
            ch.send(a)
            assert ch.recv()[0] == a.sum()


def _serve_one(ch: wa.Channel, outcomes: list) -> None:
    try:
        with ch:
            for a in ch:
                ch.send(np.array([a.sum()], np.int64))
        outcomes.append(None)
    except Exception as exc:
        outcomes.append(exc)


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_threaded_server_keeps_serving(hostile):
    attack, expected = HOSTILE[hostile]
    outcomes: list = []
    with wa.listen(("127.0.0.1", 0), timeout=WAIT, close_timeout=1.0) as listener:
        stop = threading.Event()

        def accept_loop() -> None:
            while not stop.is_set():
                try:
                    ch = listener.accept(timeout=0.05)
                except TimeoutError:
                    continue
                threading.Thread(target=_serve_one, args=(ch, outcomes), daemon=True).start()

        acceptor = threading.Thread(target=accept_loop, daemon=True)
        acceptor.start()
        bad = threading.Thread(target=attack, args=(listener.address,), daemon=True)
        bad.start()
        honest = [
            threading.Thread(target=_honest, args=(listener.address, k), daemon=True)
            for k in range(4)
        ]
        t0 = time.monotonic()
        for t in honest:
            t.start()
        for t in honest:
            t.join(WAIT)
            assert not t.is_alive()
        bad.join(WAIT)
        assert not bad.is_alive()
        deadline = time.monotonic() + WAIT
        while len(outcomes) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        acceptor.join(WAIT)
    assert time.monotonic() - t0 < WAIT
    errors = [o for o in outcomes if o is not None]
    if expected is None:
        assert all(isinstance(e, TruncatedStreamError) for e in errors), errors
    else:
        assert len(errors) == 1 and isinstance(errors[0], expected), errors


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_asyncio_server_keeps_serving(hostile):
    attack, expected = HOSTILE[hostile]
    outcomes: list = []

    async def handler(ch: aio.AsyncChannel) -> None:
        try:
            async for a in ch:
                await ch.send(np.array([a.sum()], np.int64))
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(exc)
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with await aio.serve(
            handler, ("127.0.0.1", 0), timeout=WAIT, on_refused=lambda e: None
        ) as server:
            bad = loop.run_in_executor(None, attack, server.address)
            honest = [loop.run_in_executor(None, _honest, server.address, k) for k in range(4)]
            await asyncio.wait_for(asyncio.gather(*honest), WAIT)
            await asyncio.wait_for(bad, WAIT)
            for _ in range(200):
                if len(outcomes) >= 5:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(main())
    errors = [o for o in outcomes if o is not None]
    if expected is None:
        assert all(isinstance(e, TruncatedStreamError) for e in errors), errors
    else:
        assert len(errors) == 1 and isinstance(errors[0], expected), errors


def _reset_pair() -> tuple[socket.socket, socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    with srv:
        c = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
    return c, s


def _reset_after_two(c: socket.socket) -> None:
    c.sendall(b"".join(_frames(np.arange(4.0), np.arange(4.0))))
    time.sleep(0.05)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # RST: the receiver's next read fails with ECONNRESET
    time.sleep(0.05)


def test_reset_breaks_the_channel_on_every_path():
    c, s = _reset_pair()
    with wa.Channel(s, timeout=WAIT) as rx:
        _reset_after_two(c)
        assert np.array_equal(rx.recv(), np.arange(4.0))
        assert np.array_equal(rx.recv(), np.arange(4.0))
        with pytest.raises(ConnectionResetError):
            rx.recv()
        with pytest.raises(StreamBrokenError):
            rx.recv()


def test_reset_breaks_the_async_channel():
    async def main() -> None:
        c, s = _reset_pair()
        s.setblocking(False)
        rx = aio.AsyncChannel(s, timeout=WAIT)
        _reset_after_two(c)
        assert np.array_equal(await rx.recv(), np.arange(4.0))
        assert np.array_equal(await rx.recv(), np.arange(4.0))
        with pytest.raises(ConnectionResetError):
            await rx.recv()
        with pytest.raises(StreamBrokenError):
            await rx.recv()
        await rx.abort()

    asyncio.run(main())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGALRM/setitimer: POSIX")
def test_sigalrm_every_millisecond_loses_nothing():
    n = 5000
    s1, s2 = socket.socketpair()
    tx, rx = wa.Channel(s1, timeout=WAIT), wa.Channel(s2, timeout=WAIT)
    calls = [0]

    def handler(signum, frame) -> None:
        calls[0] += 1

    def send() -> None:
        for i in range(n):
            tx.send(np.full(8, i, np.int64), flush=i % 7 == 0)
            if i % 500 == 0:
                time.sleep(0.01)  # the receiver catches up: waits, then refills
        tx.flush()

    old = signal.signal(signal.SIGALRM, handler)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        for i in range(n):
            a = rx.recv()
            assert (a == i).all(), (i, a)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    t.join(WAIT)
    assert calls[0] > 0
    s1.close()
    s2.close()


# ---- fork() and descriptors behind the channel's back ----


def _pair() -> tuple[wa.Channel, wa.Channel]:
    s1, s2 = socket.socketpair()
    return wa.Channel(s1, timeout=WAIT), wa.Channel(s2, timeout=WAIT)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork(): POSIX")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads alive
def test_forked_child_cannot_touch_the_parents_stream():
    """A child's close() used to send END on the shared socket: the parent's peer then
    saw the parent's stream end.  In the child the channel is closed, nothing sent."""
    tx, rx = _pair()
    tx.send(np.arange(3))
    assert np.array_equal(rx.recv(), np.arange(3))
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 0
        try:
            tx.close()  # nothing sent
            rx.close()
            for call in (lambda: tx.send(np.arange(2)), rx.recv):
                try:
                    call()
                    code |= 1
                except StreamBrokenError as exc:
                    code |= 0 if "fork" in str(exc) else 2
            code |= 0 if tx.closed else 4
        except BaseException:
            code |= 8
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    tx.send(np.arange(5))  # the parent's stream goes on, whole
    assert np.array_equal(rx.recv(), np.arange(5))
    tx.close(timeout=0)  # END, and the parent's peer sees it after the array
    with pytest.raises(wa.EndOfStreamError):
        rx.recv()
    rx.close()


def test_socket_closed_behind_the_channel():
    """sock.close() behind the channel's back: the compiled path sees fileno() -1 and
    the general path raises Python's OSError (EBADF), in both implementations."""
    tx, rx = _pair()
    tx.send(np.arange(3))
    rx.sock.close()
    with pytest.raises(OSError):
        rx.recv()
    with pytest.raises(StreamBrokenError):
        rx.recv()
    tx.sock.close()


def test_descriptor_reused_behind_the_channel():
    """os.close() of the descriptor and its reuse by another socket: no channel can
    tell; what the other socket carries is checked as frames like any input, so
    garbage raises ProtocolError (never silently delivered)."""
    tx, rx = _pair()
    tx.send(np.arange(3))
    assert np.array_equal(rx.recv(), np.arange(3))
    fd = rx.fileno()
    os.close(fd)
    a, b = socket.socketpair()
    try:
        assert fd in (a.fileno(), b.fileno())
        (b if a.fileno() == fd else a).sendall(b"GET / HTTP/1.1\r\n" * 8)
        with pytest.raises(ProtocolError):
            rx.recv()
    finally:
        # the broken channel closed "its" descriptor, which was the new socket's: one
        # of a, b finds it closed under it (EBADF), as any code sharing a descriptor
        for s in (a, b, tx.sock):
            with contextlib.suppress(OSError):
                s.close()
