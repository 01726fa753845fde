"""wirearray.zmq's cached receive routes against hostile messages, on real pyzmq sockets.

A route is worked out once per kind of header and cached by the header part's bytes
(``_zmq_read.py``).  A message whose header part is byte for byte a cached one but
whose payload parts differ (shorter, longer, split in two, missing, one too many)
must be refused with MalformedFrameError by every route -- into a new array, into
``out=`` of this host's order, of the other order, strided -- and the good message
that follows must arrive intact.  Limits belong to the receiver: the same header
bytes, cached under a generous receiver, are still refused by a strict one.
"""

from __future__ import annotations

import numpy as np
import pytest

from wirearray.exceptions import FrameTooLargeError, MalformedFrameError

zmq = pytest.importorskip("zmq")
wz = pytest.importorskip("wirearray.zmq")

BIG = np.arange(200_000.0)  # a split frame: header part, payload part(s)


@pytest.fixture
def pair():
    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    for s in (a, b):
        s.setsockopt(zmq.RCVTIMEO, 10_000)
    a.bind("inproc://routes-hostile")
    b.connect("inproc://routes-hostile")
    yield a, b
    a.close(linger=0)
    b.close(linger=0)
    ctx.destroy(linger=0)


def _parts(a, b, arr, **kw) -> list[bytes]:
    wz.send_array(a, arr, **kw)
    return b.recv_multipart()


OUTS = {
    "new": lambda: None,
    "native": lambda: np.empty(BIG.shape),
    "other-order": lambda: np.empty(BIG.shape, BIG.dtype.newbyteorder("S")),
    "strided": lambda: np.empty(2 * BIG.size)[::2],
}


@pytest.mark.parametrize("out", list(OUTS))
@pytest.mark.parametrize(
    "opts", [{}, {"checksum": True}, {"byteorder": "native"}], ids=["net", "crc", "native"]
)
def test_cached_header_with_other_payload_parts(pair, out, opts):
    a, b = pair
    good = _parts(a, b, BIG, **opts)
    payload = good[2]
    forged = [
        [*good[:2], payload[:-8], *good[3:]],  # shorter
        [*good[:2], payload + bytes(8), *good[3:]],  # longer
        [*good[:2], payload[:800000], payload[800000:], *good[3:]],  # split
        good[:2],  # the payload missing
        [*good, b"x"],  # one part too many
    ]
    for parts in forged:
        for _ in range(2):  # the second time, the header's route is cached
            a.send_multipart(good)
            assert np.array_equal(wz.recv_array(b, OUTS[out]()), BIG)
            a.send_multipart(parts)
            with pytest.raises(MalformedFrameError):
                wz.recv_array(b, OUTS[out]())
    a.send_multipart(good)
    got = wz.recv_array(b, OUTS[out]())
    assert np.array_equal(got, BIG)


def test_limits_are_the_receivers_not_the_cached_routes(pair):
    a, b = pair
    good = _parts(a, b, BIG)
    cube = _parts(a, b, np.zeros((2, 2, 2)))
    for _ in range(2):
        a.send_multipart(good)
        assert np.array_equal(wz.recv_array(b), BIG)
        a.send_multipart(good)
        with pytest.raises(FrameTooLargeError):
            wz.recv_array(b, max_frame_bytes=BIG.nbytes - 1)
        a.send_multipart(cube)
        assert wz.recv_array(b).shape == (2, 2, 2)
        a.send_multipart(cube)
        with pytest.raises(FrameTooLargeError):
            wz.recv_array(b, max_ndim=2)
    rx_loose, rx_strict = wz.Receiver(b), wz.Receiver(b, max_frame_bytes=1000)
    wz.Sender(a).send(BIG)
    assert np.array_equal(rx_loose.recv(), BIG)
    a.send_multipart(good)  # the same header bytes (seq 0), to the strict receiver
    with pytest.raises(FrameTooLargeError):
        rx_strict.recv()
