"""The sans-I/O channel core without sockets: two Connection objects exchange bytes by
hand, so every rule both layers follow is pinned once -- held frames, failures at and
inside frames, the close handshake in every order (docs/FORMAT.md section 10), and
refusal reports."""

from __future__ import annotations

import numpy as np
import pytest

from wirearray import (
    BufferMismatchError,
    DeliveryError,
    DeliveryTimeoutError,
    EndOfStreamError,
    ErrorCode,
    PeerError,
    StreamBrokenError,
)
from wirearray._connection import CONSUMED, Connection
from wirearray.codec import NEED_DATA, Array, Encoder


def flat(data, frames) -> bytes:
    out = bytes(data) if data is not None else b""
    for parts in frames or ():
        out += b"".join(bytes(memoryview(p).cast("B")) for p in parts)
    return out


def send(conn: Connection, a, flush=True, **kw) -> bytes:
    return flat(*conn.prepare_array(a, kw.get("byteorder"), kw.get("checksum"), flush))


def deliver(conn: Connection, data: bytes) -> tuple[list, bytes]:
    """Feed ``data``; returns (what the application gets, replies to send back)."""
    out, replies = [], b""
    if data:
        conn.dec.receive_data(data)
    while True:
        ev = conn.dec.next_event()
        if ev is NEED_DATA:
            return out, replies
        result, reply = conn.handle(ev)
        replies += reply or b""
        if result is not CONSUMED:
            out.append(result)
            if isinstance(result, BaseException):
                return out, replies


def test_small_frames_are_one_buffer_and_held_in_order():
    a = Connection()
    data = send(a, np.arange(3.0))
    assert isinstance(data, bytes) and len(data) == 128
    assert send(a, np.arange(2.0), flush=False) == b""  # held
    assert send(a, np.arange(1.0), byteorder="native", flush=False) == b""  # general path
    assert len(a.held) == 256
    big = send(a, np.arange(20000.0))  # larger: held frames go first, then it
    b = Connection()
    got, _ = deliver(b, data + big)
    assert [len(e.array) for e in got] == [3, 2, 1, 20000]  # sequence numbers checked


def test_held_frames_leave_at_the_send_buffer():
    a = Connection(send_buffer=300)
    assert send(a, np.arange(2.0), flush=False) == b""
    assert send(a, np.arange(2.0), flush=False) == b""
    assert len(send(a, np.arange(2.0), flush=False)) == 384  # 3 x 128 >= 300


def test_timeout_at_a_boundary_keeps_the_channel_usable():
    a, b = Connection(), Connection()
    frame = send(a, np.arange(4))
    assert b.recv_failed(TimeoutError(), interrupted=True) is None
    assert b.rx_error is None
    got, _ = deliver(b, frame)
    assert got[0].array.tolist() == [0, 1, 2, 3]


def test_timeout_inside_a_frame_breaks_and_reports():
    a, b = Connection(), Connection()
    frame = send(a, np.arange(4000.0))
    b.dec.receive_data(frame[:100])
    assert b.dec.next_event() is NEED_DATA
    report = b.recv_failed(TimeoutError("slow"), interrupted=True)
    assert report is not None and b.rx_error is not None
    assert b.dec._dest is None and b.dec._readahead is None  # released at once
    with pytest.raises(StreamBrokenError):
        b.check_recv()
    got, _ = deliver(a, report)
    assert isinstance(got[0], PeerError) and got[0].code == ErrorCode.TIMEOUT
    with pytest.raises(PeerError):  # and the sender's next send hears it too
        a.check_send()


def test_stored_errors_keep_no_traceback():
    b = Connection()
    b.dec.receive_data(b"\x89WAR")
    b.dec.next_event()  # inside a frame now
    try:
        raise TimeoutError("inside")
    except TimeoutError as exc:
        b.recv_failed(exc, interrupted=True)
        raised = exc
    assert raised.__traceback__ is not None  # the caller's exception keeps its own
    assert b.rx_error.__traceback__ is None and b.rx_error is not raised
    assert str(b.rx_error) == "inside"


def close_pair(first: Connection, second: Connection, first_msg: bytes) -> bytes:
    """first has begun closing and sent first_msg; second's application reads on."""
    got, reply = deliver(second, first_msg)
    assert isinstance(got[-1], EndOfStreamError)
    return reply


def test_close_confirmed_by_the_receivers_ack():
    a, b = Connection(), Connection()
    wire = b"".join(send(a, np.arange(k)) for k in range(1, 4))
    end = a.begin_close()
    got, ack = deliver(b, wire + end)  # b's application reads 3 arrays, then the END
    assert len(got) == 4 and isinstance(got[3], EndOfStreamError)
    assert a.close_pending
    deliver(a, ack)
    assert a.confirmed and not a.close_pending
    assert a.close_result(1.0, timed_out=False) is None
    assert b.begin_close() is None and not b.close_pending  # nothing of b's to confirm
    assert b.close_result(1.0, timed_out=False) is None


def test_close_after_partial_receipt_says_how_much():
    a, b = Connection(), Connection()
    frames = [send(a, np.arange(k)) for k in range(1, 4)]
    deliver(b, frames[0])  # b's application reads one array...
    ack = b.begin_close()  # ...and closes: ACK(1)
    assert not b.close_pending
    end = a.begin_close()
    assert end is not None
    deliver(a, ack)
    err = a.close_result(1.0, timed_out=False)
    assert isinstance(err, DeliveryError) and (err.consumed, err.sent) == (1, 3)


def test_simultaneous_close_confirms_both_streams():
    a, b = Connection(), Connection()
    ab = send(a, np.arange(3))
    ba = send(b, np.arange(5))
    deliver(a, ba)
    deliver(b, ab)  # both applications read everything, then both close at once
    a_last, b_last = a.begin_close(), b.begin_close()
    _, a_reply = deliver(a, b_last)
    _, b_reply = deliver(b, a_last)
    deliver(a, b_reply)
    deliver(b, a_reply)
    assert a.confirmed and b.confirmed
    assert a.close_result(1.0, timed_out=False) is None
    assert b.close_result(1.0, timed_out=False) is None


def test_responder_with_frames_of_its_own_waits_for_their_confirmation():
    a, b = Connection(), Connection()
    request = send(a, np.arange(3))
    got, _ = deliver(b, request)
    reply = send(b, got[0].array * 2)
    end = a.begin_close()  # a closes before reading the reply: it will be dropped
    got, ack = deliver(b, end)  # b reads a's END: ACK(1), b's stream ends (1 frame)
    assert isinstance(got[0], EndOfStreamError) and b.close_pending
    _, a_answer = deliver(a, reply + ack)  # a drops the reply, confirms 0 of b's 1
    assert a.confirmed and a.discarded == 1
    deliver(b, a_answer)
    err = b.close_result(1.0, timed_out=False)
    assert isinstance(err, DeliveryError) and (err.consumed, err.sent) == (0, 1)


def test_a_peer_that_never_answers():
    a = Connection()
    send(a, np.arange(3))
    a.begin_close()
    assert isinstance(a.close_result(0.5, timed_out=True), DeliveryTimeoutError)
    b = Connection()
    send(b, np.arange(3))
    b.begin_close()
    b.close_failed(None)  # EOF
    err = b.close_result(0.5, timed_out=False)
    assert isinstance(err, DeliveryError) and "without confirming" in str(err)


def test_nothing_sent_needs_no_confirmation():
    a = Connection()
    assert a.begin_close() == Encoder().end()  # END, readable by version-1 peers
    assert not a.close_pending and a.close_result(1.0, timed_out=False) is None


def test_refusal_report_for_a_protocol_error():
    a, b = Connection(), Connection(max_frame_bytes=100)
    frame = send(a, np.arange(1000.0))
    b.dec.receive_data(frame)
    with pytest.raises(Exception) as info:
        b.dec.next_event()
    report = b.recv_failed(info.value)
    got, _ = deliver(a, report)
    assert isinstance(got[0], PeerError) and got[0].code == ErrorCode.TOO_LARGE
    with pytest.raises(StreamBrokenError):
        b.check_send()  # the refusing side sends nothing more


def test_abort_after_the_exchange_is_over_sends_nothing():
    a, b = Connection(), Connection()
    end = a.begin_close()
    deliver(b, end)
    assert b.abort_frame(ErrorCode.APPLICATION, "late") is None


def test_send_after_the_peer_closed():
    a, b = Connection(), Connection()
    deliver(b, a.begin_close())
    with pytest.raises(EndOfStreamError):
        b.check_send()


def test_an_ack_for_frames_never_sent_is_malformed():
    a, b = Connection(), Connection()
    send(b, np.arange(3))  # b sent 1 frame
    bogus = Encoder().ack(5)
    with pytest.raises(Exception, match="ack for 5 frames"):
        deliver(b, bogus)
    assert a is not None


def test_arrays_read_while_a_send_failed_stay_for_recv():
    a, b = Connection(), Connection()
    frame = send(a, np.arange(4.0))
    b.dec.receive_data(frame)
    b.stash(b.dec.next_event())
    out = np.empty(4)
    ev = b.start_recv(out, None)
    assert isinstance(ev, Array) and ev.array is out and out.tolist() == [0, 1, 2, 3]


def test_an_array_read_while_a_send_failed_needs_the_out_the_frame_would():
    a, b, c = Connection(), Connection(), Connection()
    frame = send(a, np.arange(4.0))
    # the right dtype and shape, but every element in the same memory
    strided = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(4,), strides=(0,))
    c.dec.receive_data(frame)  # the ordinary path refuses it...
    c.start_recv(strided, None)
    with pytest.raises(BufferMismatchError) as direct:
        c.dec.next_event()
    b.dec.receive_data(frame)  # ...and so does the array kept while a send failed
    b.stash(b.dec.next_event())
    with pytest.raises(BufferMismatchError) as kept:
        b.start_recv(strided, None)
    assert str(kept.value) == str(direct.value)
    assert not strided.any()


def test_an_array_read_while_a_send_failed_lands_in_an_out_of_any_layout():
    a, b = Connection(), Connection()
    sent = np.arange(12.0).reshape(3, 4)
    b.dec.receive_data(send(a, sent))
    b.stash(b.dec.next_event())
    grid = np.full((3, 8), -1.0)
    ev = b.start_recv(grid[:, ::-2], None)  # strided and reversed, as recv() takes it
    assert isinstance(ev, Array) and np.shares_memory(ev.array, grid)
    assert np.array_equal(grid[:, ::-2], sent) and (grid[:, -2::-2] == -1).all()


def test_an_array_kept_for_recv_survives_a_misfit_out():
    a, b = Connection(), Connection()
    b.dec.receive_data(send(a, np.arange(4.0)))
    b.stash(b.dec.next_event())
    with pytest.raises(BufferMismatchError):
        b.start_recv(np.empty(5), None)  # refused: the array stays
    ev = b.start_recv(None, None)
    assert isinstance(ev, Array) and ev.array.tolist() == [0, 1, 2, 3]
