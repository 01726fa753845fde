"""DatagramChannel: arrays that fit one datagram; loss, reordering and duplication are
reported (never silent), and an oversized array is refused before anything is sent."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import wirearray
from helpers import SUPPORTED, random_array
from wirearray import DatagramChannel, DatagramTooLargeError, MalformedFrameError, SequenceError
from wirearray.codec import Encoder

WAIT = 10.0


@pytest.fixture
def pair():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT)
    tx = DatagramChannel(remote=rx.address, timeout=WAIT)
    yield tx, rx
    tx.close()
    rx.close()


def test_round_trip_every_dtype(pair):
    tx, rx = pair
    rng = np.random.default_rng(1)
    for dtype in SUPPORTED:
        a = random_array(dtype, (3, 5), rng)[:, ::2]
        tx.send(a)
        got = rx.recv()
        assert got.dtype == a.dtype and got.tobytes() == np.ascontiguousarray(a).tobytes()
    assert rx.stats["received"] == len(SUPPORTED) and rx.stats["lost"] == 0


def test_recv_into_out_and_sender_address(pair):
    tx, rx = pair
    out = np.empty(100)
    tx.send(np.arange(100.0))
    got, sender = rx.recv_from(out=out)
    assert got is out and out[99] == 99.0
    assert sender == tx.address


def test_too_large_is_refused_before_sending(pair):
    tx, rx = pair
    with pytest.raises(DatagramTooLargeError):
        tx.send(np.zeros(9000))  # 72 KB > 65507
    tx.send(np.ones(3))  # the refused one left no gap in the sequence
    assert rx.recv().tolist() == [1.0, 1.0, 1.0]
    small = DatagramChannel(remote=rx.address, max_datagram=1024)
    with pytest.raises(DatagramTooLargeError):
        small.send(np.zeros(200))
    small.close()


def _raw_sender(rx):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(rx.address)
    return s


def test_loss_reordering_duplication_are_reported(pair):
    _, rx = pair
    enc = Encoder()
    frames = [enc.encode(np.full(4, float(i))) for i in range(5)]
    s = _raw_sender(rx)
    s.send(frames[0])
    assert rx.recv()[0] == 0.0
    s.send(frames[2])  # 1 is missing
    with pytest.raises(SequenceError) as info:
        rx.recv()
    assert info.value.seq == 2 and info.value.expected == 1
    assert info.value.array[0] == 2.0  # nothing received is dropped
    s.send(frames[1])  # late
    with pytest.raises(SequenceError, match="arrived after"):
        rx.recv()
    s.send(frames[1])  # again
    with pytest.raises(SequenceError, match="duplicated"):
        rx.recv()
    s.send(frames[3])
    assert rx.recv()[0] == 3.0
    assert rx.stats == {
        "sent": 0,
        "received": 5,
        "lost": 0,
        "reordered": 1,
        "duplicated": 1,
        "restarts": 0,
    }
    s.close()


def test_on_gap_count_only():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT, on_gap="count")
    enc = Encoder()
    frames = [enc.encode(np.arange(i + 1)) for i in range(4)]
    s = _raw_sender(rx)
    for k in (0, 3):
        s.send(frames[k])
    assert rx.recv().size == 1 and rx.recv().size == 4
    assert rx.stats["lost"] == 2
    rx.close()
    s.close()


def test_garbage_datagram_is_an_error_not_a_crash(pair):
    _, rx = pair
    s = _raw_sender(rx)
    s.send(b"\x89WAR" + b"\0" * 60)
    with pytest.raises(wirearray.ProtocolError):
        rx.recv()
    s.send(Encoder().encode_message({"x": np.zeros(1)}))
    with pytest.raises(MalformedFrameError):
        rx.recv()
    s.send(Encoder().encode(np.arange(2.0)))  # the channel still works
    assert rx.recv().tolist() == [0.0, 1.0]
    s.close()


def test_udp_over_ipv6_and_unix(tmp_path):
    from netutil import has_ipv6

    if has_ipv6():
        with DatagramChannel(local="[::1]:0", timeout=WAIT) as rx:
            with DatagramChannel(remote=rx.address) as tx:
                tx.send(np.arange(3, dtype="i2"))
                assert rx.recv().tolist() == [0, 1, 2]
    path = tmp_path / "dgram.sock"
    with DatagramChannel(local=f"unix:{path}", timeout=WAIT) as rx:
        with DatagramChannel(local=f"unix:{tmp_path}/tx.sock", remote=f"unix:{path}") as tx:
            tx.send(np.arange(3, dtype="u8"))
            assert rx.recv().tolist() == [0, 1, 2]


def test_a_datagram_is_exactly_one_array_frame(pair):
    # docs/FORMAT.md section 5, "Datagrams": the datagram's length is the frame's;
    # names and checksums as on a stream; anything else is dropped with its own error
    _, rx = pair
    s = _raw_sender(rx)
    frame = Encoder(checksum=True).encode(np.arange(3.0), name="x")
    enc = Encoder()
    bad = [
        frame + bytes(64),  # trailing bytes
        frame[:-64] if len(frame) > 64 else frame[:10],  # cut short
        frame + Encoder().encode(np.ones(1)),  # two frames
        enc.end(),  # no END (nor ACK, ERROR, MESSAGE) frames
    ]
    for datagram in bad:
        s.send(datagram)
        with pytest.raises(wirearray.ProtocolError):
            rx.recv()
    s.send(frame)  # named, checksummed: accepted; the channel goes on
    assert rx.recv().tolist() == [0.0, 1.0, 2.0]
    s.close()


def test_seq_counts_the_datagrams_of_a_sender_from_0():
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(("127.0.0.1", 0))
    raw.settimeout(WAIT)
    ref = Encoder()  # one stream's numbering: 0, 1, 2, ...
    with DatagramChannel(remote=raw.getsockname()) as tx:
        for i in range(3):
            tx.send(np.full(2, i))
            datagram = raw.recv(1 << 16)
            assert int.from_bytes(datagram[24:28], "big") == i
            assert datagram == ref.encode(np.full(2, i))
    raw.close()


@pytest.mark.skipif(np.__version__ < "2", reason="numpy 1.x has at most 32 dimensions")
def test_64_dimensions_by_default(pair):
    tx, rx = pair
    a = np.arange(6.0).reshape((2, 3) + (1,) * 62)
    tx.send(a)
    got = rx.recv()
    assert got.shape == a.shape and np.array_equal(got, a)
