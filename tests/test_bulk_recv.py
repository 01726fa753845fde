"""Large payloads as they really arrive: split anywhere, dripping, stalling, cut off,
interrupted by signals.  The compiled core receives them in one call (``_bulk.py``,
pyx/wa_recv.h), the fallback with the decoder's ``get_buffer``/``advance`` loop; both
must give the same arrays and the same errors.  A raw socket plays the peer, so the
bytes and their timing are the test's; the channels are the real blocking and asyncio
ones (fixture ``net``), over UNIX and loopback TCP.  The suite runs once per
implementation (WIREARRAY_PUREPYTHON=1 for the fallback); the tests of the compiled
loop itself skip under the fallback.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import struct
import threading
import time

import numpy as np
import pytest

from netutil import WAIT, Net
from wirearray import _bulk
from wirearray._decoder import Decoder
from wirearray._events import NEED_DATA
from wirearray.codec import Encoder
from wirearray.exceptions import ChecksumError, StreamBrokenError, TruncatedStreamError

#: every swap unit, a byte, and complex (two units per element)
DTYPES = ["u1", "u2", "i4", "f4", "f8", "c8", "c16", "M8[ns]"]
#: payloads of a few hundred KiB: most of them received the large-payload way
COUNT = 100_001  # an odd count: the payload is no multiple of a chunk


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


@pytest.fixture(params=["unix", "tcp"])
def family(request) -> str:
    return request.param


@contextlib.contextmanager
def raw_peer(net: Net, family: str, tmp_path, **options):
    """(channel, peer socket): a wirearray channel connected to a raw socket."""
    if family == "unix":
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = str(tmp_path / "bulk.sock")
        lsock.bind(path)
        address = f"unix:{path}"
    else:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{lsock.getsockname()[1]}"
    lsock.listen(1)
    lsock.settimeout(WAIT)
    with lsock:
        ch = net.connect(address, **options)
        peer, _ = lsock.accept()
    if family == "tcp":
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield ch, peer
    finally:
        peer.close()
        ch.sock.close()


def reference(dtype: str, seed: int = 0) -> np.ndarray:
    """An array whose every byte differs from its neighbours: a swap that is off by
    one byte or one element shows."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, COUNT * np.dtype(dtype).itemsize, dtype=np.uint8)
    a = raw.view(dtype)
    if a.dtype.kind in "fc":  # no NaN payloads: compare with array_equal
        a = np.nan_to_num(a)
    return a


def pieces(data: bytes, sizes) -> list[bytes]:
    out, i = [], 0
    for n in sizes:
        if i >= len(data):
            break
        out.append(data[i : i + n])
        i += n
    if i < len(data):
        out.append(data[i:])
    return out


def feed(peer: socket.socket, parts, pause: float = 0.0, end: bool = False) -> threading.Thread:
    """Send ``parts`` one send each from a thread, ``pause`` seconds apart (a pause
    makes the receiver see each piece apart); then, with ``end``, shut down writing."""

    def run():
        with contextlib.suppress(OSError):
            for p in parts:
                peer.sendall(p)
                if pause:
                    time.sleep(pause)
            if end:
                peer.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def split_frame(frame: bytes, rng: random.Random) -> list[bytes]:
    """The frame cut at odd places: a few pieces of random size, a stretch of one to
    seven bytes each (partial elements, for every item size), then a big remainder."""
    sizes = [rng.randrange(1, 300), rng.randrange(1, 70_000)]
    sizes += [rng.randrange(1, 8) for _ in range(24)]
    sizes += [rng.randrange(1, 200_000) for _ in range(3)]
    return pieces(frame, sizes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("byteorder", ["network", "native"])
def test_split_payloads_arrive_whole_and_swapped(net, family, tmp_path, dtype, byteorder):
    a = reference(dtype)
    checksum = dtype in ("u2", "f8", "c8", "M8[ns]")
    enc = Encoder(byteorder=byteorder, checksum=checksum)
    frame = enc.encode(a)
    rng = random.Random(f"{dtype}{byteorder}{family}")
    with raw_peer(net, family, tmp_path, byteorder=byteorder, timeout=WAIT) as (ch, peer):
        t = feed(peer, split_frame(frame, rng), pause=0.002)
        got = ch.recv()
        t.join(WAIT)
        assert got.dtype == a.dtype.newbyteorder("=")
        assert np.array_equal(got, a)
        # into an out= of the frame's layout too (received into, not scattered)
        out = np.empty_like(a)
        t = feed(peer, split_frame(enc.encode(a[::-1].copy()), rng))
        assert ch.recv(out=out) is out
        t.join(WAIT)
        assert np.array_equal(out, a[::-1])


def test_one_byte_drips(net, tmp_path):
    a = reference("f8", seed=1)
    frame = Encoder(checksum=True).encode(a)
    head = 200  # the header and a little payload, then the payload one byte at a time
    parts = [frame[:head]] + [frame[i : i + 1] for i in range(head, head + 400)]
    with raw_peer(net, "unix", tmp_path, timeout=WAIT) as (ch, peer):
        t = feed(peer, [*parts, frame[head + 400 :]], pause=0.0005)
        assert np.array_equal(ch.recv(), a)
        t.join(WAIT)


def test_a_damaged_payload_fails_its_checksum(net, tmp_path):
    a = reference("i4", seed=2)
    frame = bytearray(Encoder(checksum=True).encode(a))
    frame[len(frame) // 2] ^= 0x10  # in the part received the large-payload way
    with raw_peer(net, "unix", tmp_path, timeout=WAIT) as (ch, peer):
        feed(peer, [bytes(frame[:5000]), bytes(frame[5000:])], pause=0.01)
        with pytest.raises(ChecksumError):
            ch.recv()


@pytest.mark.parametrize("cut", [0.3, 0.999])
def test_peer_closing_mid_payload_is_a_truncated_stream(net, family, tmp_path, cut):
    a = reference("f8", seed=3)
    frame = Encoder().encode(a)
    with raw_peer(net, family, tmp_path, timeout=WAIT) as (ch, peer):
        t = feed(peer, [frame[:5000], frame[5000 : int(len(frame) * cut)]], 0.01, end=True)
        with pytest.raises(TruncatedStreamError):
            ch.recv()
        t.join(WAIT)


def test_a_peer_resetting_mid_payload_is_a_connection_error(net, tmp_path):
    a = reference("f8", seed=12)
    frame = Encoder().encode(a)
    with raw_peer(net, "tcp", tmp_path, timeout=WAIT) as (ch, peer):
        peer.sendall(frame[:5000])
        time.sleep(0.05)  # the receiver is inside the payload
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()  # an RST, not a FIN
        with pytest.raises(ConnectionError):
            ch.recv()


def test_a_peer_stalling_mid_payload_times_out_and_breaks_the_channel(net, family, tmp_path):
    a = reference("u2", seed=4)
    frame = Encoder().encode(a)
    with raw_peer(net, family, tmp_path, timeout=0.3) as (ch, peer):
        peer.sendall(frame[: len(frame) // 2])
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ch.recv()
        assert time.monotonic() - start < 5  # the deadline held (0.3 s, loaded host)
        with contextlib.suppress(OSError):  # the channel may have ended the connection
            peer.sendall(frame[len(frame) // 2 :])
        with pytest.raises(StreamBrokenError):
            ch.recv()  # a frame cut by a timeout cannot be resumed (as before)


def test_a_deadline_covers_the_whole_frame_not_each_read(net, tmp_path):
    a = reference("f4", seed=5)
    frame = Encoder().encode(a)
    parts = pieces(frame, [1000] * 200)  # 200 pieces 10 ms apart: 2 s against 0.5 s
    with raw_peer(net, "unix", tmp_path, timeout=0.5) as (ch, peer):
        feed(peer, parts, pause=0.01)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            ch.recv()
        assert time.monotonic() - start < 5


@pytest.mark.parametrize("dtype", ["u1", "f8", "c8"])
def test_polls_keep_a_partial_payload(net, family, tmp_path, dtype):
    a = reference(dtype, seed=6)
    a = a[: 150_001 // a.itemsize]  # each piece fits the socket's buffer: sent at once
    frame = Encoder(checksum=True).encode(a)
    cuts = sorted([300, 70_001, 70_004, len(frame) // 2 + 3, len(frame) - 1, len(frame)])
    with raw_peer(net, family, tmp_path, timeout=0) as (ch, peer):
        start = 0
        for end in cuts:
            with pytest.raises(TimeoutError):
                ch.recv()  # nothing new, or a partial frame: kept, not broken
            peer.sendall(frame[start:end])
            start = end
            time.sleep(0.02)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                got = ch.recv()
                break
            except TimeoutError:
                assert time.monotonic() < deadline
                time.sleep(0.005)
        assert np.array_equal(got, a)


# ---- signals (blocking channels: Python runs handlers in the main thread) ----


@contextlib.contextmanager
def itimer(handler, first: float, interval: float = 0.0):
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, first, interval)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")
@pytest.mark.parametrize("timeout", [None, WAIT])
def test_signals_during_a_long_receive_are_handled_and_it_goes_on(tmp_path, timeout):
    a = reference("f8", seed=7)
    frame = Encoder(checksum=True).encode(a)
    calls = []
    with raw_peer(Net("blocking"), "unix", tmp_path, timeout=timeout) as (ch, peer):
        feed(peer, pieces(frame, [100_000, 1, 3, 7] + [5000] * 40), pause=0.01)
        with itimer(lambda *_: calls.append(1), 0.005, 0.005):
            got = ch.recv()
        assert np.array_equal(got, a)
        assert len(calls) >= 5  # interrupted many times mid-payload, resumed each time


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")
@pytest.mark.parametrize("exc", [KeyboardInterrupt, Interrupted])
@pytest.mark.parametrize("timeout", [None, WAIT])
def test_a_handler_that_raises_stops_the_receive_at_once(tmp_path, exc, timeout):
    a = reference("i4", seed=8)
    frame = Encoder().encode(a)

    def handler(*_):
        raise exc("stop")

    with raw_peer(Net("blocking"), "unix", tmp_path, timeout=timeout) as (ch, peer):
        peer.sendall(frame[: len(frame) // 2])  # then the peer stalls (closes at WAIT)
        closer = threading.Timer(WAIT, peer.close)
        closer.start()
        try:
            start = time.monotonic()
            with itimer(handler, 0.2), pytest.raises(exc):
                ch.recv()
            assert time.monotonic() - start < 5
        finally:
            closer.cancel()
        with pytest.raises(StreamBrokenError):
            ch.recv()


# ---- the compiled loop itself, under the decoder ----


def _cwire():
    from conftest import load_cwire

    return load_cwire()


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_compiled_loop_takes_large_payloads_and_the_decoder_the_rest(dtype):
    _cwire()  # skips under the fallback
    a = reference(dtype, seed=9)
    frame = Encoder(checksum=True).encode(a)
    rng = random.Random(dtype)
    rx, tx = socket.socketpair()
    with rx, tx:
        rx.settimeout(WAIT)
        t = feed(tx, split_frame(frame, rng), pause=0.002)
        dec = Decoder(implementation="cython")
        compiled = python = 0
        while True:
            ev = dec.next_event()
            if ev is not NEED_DATA:
                break
            if _bulk.recv_payload(rx, dec, rx.gettimeout()):
                compiled += 1
            else:
                dec.advance(rx.recv_into(dec.get_buffer()))
                python += 1
        t.join(WAIT)
    assert np.array_equal(ev.array, a)
    assert compiled >= 1 and python >= 2  # header and tail by the decoder's loop


def test_the_compiled_loop_refuses_what_it_cannot_do():
    cw = _cwire()
    rx, tx = socket.socketpair()
    with rx, tx:
        buf = bytearray(64)
        with pytest.raises(ValueError):
            cw._recv_payload(rx.fileno(), buf, 0, 3, None, None)  # no such unit
        with pytest.raises(ValueError):
            cw._recv_payload(rx.fileno(), buf, 4, 4, None, None)  # pos: a whole unit
        with pytest.raises(BufferError):
            cw._recv_payload(rx.fileno(), bytes(64), 0, 0, None, None)  # read-only
        end, crc, status, exc = cw._recv_payload(rx.fileno(), buf, 0, 0, 0, 0)
        assert (end, crc, status, exc) == (0, 0, cw._RX_AGAIN, None)
        tx.sendall(bytes(range(10)))
        time.sleep(0.05)
        end, crc, status, exc = cw._recv_payload(rx.fileno(), buf, 0, 2, 0, 0.05)
        assert (end, status) == (10, cw._RX_TIMEOUT)
        assert crc == cw.crc32c(bytes(range(10)))  # of the wire's bytes, before the swap
        assert bytes(buf[:10]) == bytes([1, 0, 3, 2, 5, 4, 7, 6, 9, 8])
        bad = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        fd = bad.fileno()
        bad.close()
        end, crc, status, exc = cw._recv_payload(fd, buf, 0, 0, None, None)
        assert status == cw._RX_ERROR and isinstance(exc, OSError)


def test_tls_and_other_socket_types_keep_the_python_loop():
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with dgram:
        assert _bulk._payload_fd(dgram) == -1
    rx, tx = socket.socketpair()
    with rx, tx:
        assert _bulk._payload_fd(rx) == rx.fileno()

        class Wrapped(socket.socket):  # as ssl.SSLSocket is: a subclass
            pass

        with Wrapped(fileno=os.dup(rx.fileno())) as wrapped:
            assert _bulk._payload_fd(wrapped) == -1


def test_the_channel_keeps_working_after_large_frames(net, tmp_path):
    """Large, small and large again: the read-ahead and the compiled loop hand over
    cleanly at frame boundaries, and a message of large arrays arrives whole."""
    arrays = [reference("f8", 10), np.arange(5, dtype=">i2"), reference("c8", 11)]
    enc = Encoder(checksum=True)
    data = b"".join(enc.encode(x) for x in arrays)
    data += enc.encode_message({"a": arrays[0], "b": arrays[2]})
    with raw_peer(net, "unix", tmp_path, timeout=WAIT) as (ch, peer):
        feed(peer, pieces(data, [7, 100_000, 3] * 20), pause=0.001)
        for x in arrays:
            assert np.array_equal(ch.recv(), x)
        msg = ch.recv_many()
        assert np.array_equal(msg["a"], arrays[0]) and np.array_equal(msg["b"], arrays[2])
