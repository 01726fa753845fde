"""``out=`` of an ndarray subclass, on every receive path: the values land as
``numpy.copyto(out, a)`` writes them, and what is returned is ``out`` itself (class,
attributes and mask kept).

numpy is the reference: every expectation is ``np.copyto`` into a twin of the same
``out``.  ``numpy.matrix`` is the hard case: its ``ravel``/``reshape`` stay 2-d, so a
destination that flattens it through its own methods mis-shapes the payload (a
large frame failed with BufferMismatchError, or with numpy's broadcast ValueError for
an ``out`` of the other byte order).  Paths: the stream decoder (both
implementations, whole frame and one byte at a time), Channel and AsyncChannel over a
socketpair (small frames take the compiled one-call path, large ones the general
loop), DatagramChannel, wirearray.zmq.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import numpy as np
import pytest

import wirearray as wa
from wirearray import aio, codec

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

WAIT = 10.0


class Tagged(np.ndarray):
    """A subclass carrying an attribute through __array_finalize__."""

    def __array_finalize__(self, obj: object) -> None:
        self.tag = getattr(obj, "tag", None)


def _tagged(a: np.ndarray) -> np.ndarray:
    t = a.view(Tagged)
    t.tag = "kept"
    return t


#: out= makers: (name, f(src) -> a zeroed out of src's shape in some class/layout/order)
OUTS = {
    "matrix": lambda s: np.asmatrix(np.zeros(s.shape, s.dtype)),
    "matrix-fortran": lambda s: np.asmatrix(np.zeros(s.shape, s.dtype, order="F")),
    "matrix-transposed": lambda s: np.asmatrix(np.zeros(s.shape[::-1], s.dtype)).T,
    "matrix-strided": lambda s: np.asmatrix(np.zeros((s.shape[0], 2 * s.shape[1]), s.dtype))[
        :, ::2
    ],
    "matrix-big-endian": lambda s: np.asmatrix(np.zeros(s.shape, s.dtype.newbyteorder(">"))),
    "matrix-little-endian": lambda s: np.asmatrix(np.zeros(s.shape, s.dtype.newbyteorder("<"))),
    "tagged": lambda s: _tagged(np.zeros(s.shape, s.dtype)),
    "tagged-transposed": lambda s: _tagged(np.zeros(s.shape[::-1], s.dtype).T),
    "masked": lambda s: np.ma.masked_array(np.zeros(s.shape, s.dtype), mask=np.eye(*s.shape)),
}

SMALL = np.arange(6.0).reshape(2, 3)
LARGE = np.arange(600 * 500, dtype="<f8").reshape(600, 500)  # over the small-frame path


def _expected(make, src: np.ndarray) -> np.ndarray:
    twin = make(src)
    np.copyto(twin, src)
    return twin


def _check(got: object, out: np.ndarray, make, src: np.ndarray) -> None:
    want = _expected(make, src)
    assert got is out
    assert type(out) is type(want)
    assert np.asarray(out).tobytes() == np.asarray(want).tobytes()
    if isinstance(want, Tagged):
        assert out.tag == "kept"
    if isinstance(want, np.ma.MaskedArray):
        assert np.array_equal(np.ma.getmaskarray(out), np.ma.getmaskarray(want))


def _frame(src: np.ndarray, **kw) -> bytes:
    enc = codec.Encoder(**kw)
    return b"".join(bytes(p) for parts in enc.frame(src) for p in parts)


@pytest.mark.parametrize(
    ("src", "bytewise"),
    [(SMALL, False), (SMALL, True), (LARGE, False)],
    ids=["small-whole", "small-bytewise", "large-whole"],
)
@pytest.mark.parametrize("name", list(OUTS))
def test_decoder_expect(impl_name, name, src, bytewise):
    make = OUTS[name]
    dec = codec.Decoder(implementation=impl_name)
    out = make(src)
    dec.expect(out=out)
    data = _frame(src, checksum=True)
    for piece in [data[i : i + 1] for i in range(len(data))] if bytewise else [data]:
        dec.receive_data(piece)
    ev = dec.next_event()
    _check(ev.array, out, make, src)


@pytest.mark.parametrize("name", list(OUTS))
def test_decoder_message(impl_name, name):
    make = OUTS[name]
    enc = codec.Encoder()
    data = b"".join(bytes(p) for parts in enc.message({"a": SMALL, "b": LARGE}) for p in parts)
    dec = codec.Decoder(implementation=impl_name)
    outs = {"a": make(SMALL), "b": make(LARGE)}
    dec.expect(out=outs)
    dec.receive_data(data)
    ev = dec.next_event()
    for k, src in (("a", SMALL), ("b", LARGE)):
        _check(ev.arrays[k], outs[k], make, src)


def _send_in_thread(sock: socket.socket, arrays) -> threading.Thread:
    def run() -> None:
        tx = wa.Channel(sock, timeout=WAIT, close_timeout=1.0)
        for a in arrays:
            tx.send(a)
        tx.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("name", list(OUTS))
def test_channel(name):
    """Small frames (the compiled one-call path where it runs) and a large one."""
    make = OUTS[name]
    s1, s2 = socket.socketpair()
    sources = [SMALL, SMALL, LARGE, SMALL]
    t = _send_in_thread(s1, sources)
    with wa.Channel(s2, timeout=WAIT, close_timeout=1.0) as rx:
        for src in sources:
            out = make(src)
            _check(rx.recv(out=out), out, make, src)
    t.join(WAIT)


@pytest.mark.parametrize("name", ["matrix", "matrix-strided", "masked", "tagged-transposed"])
def test_async_channel(name):
    make = OUTS[name]
    sources = [SMALL, LARGE, SMALL]

    async def main() -> None:
        s1, s2 = socket.socketpair()
        s2.setblocking(False)
        t = _send_in_thread(s1, sources)
        rx = aio.AsyncChannel(s2, timeout=WAIT, close_timeout=1.0)
        for src in sources:
            out = make(src)
            _check(await rx.recv(out=out), out, make, src)
        await rx.close()
        await asyncio.get_running_loop().run_in_executor(None, t.join, WAIT)

    asyncio.run(main())


@pytest.mark.parametrize("name", list(OUTS))
def test_datagram(name):
    make = OUTS[name]
    with wa.DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT) as rx:
        with wa.DatagramChannel(remote=rx.address) as tx:
            tx.send(SMALL)
            out = make(SMALL)
            _check(rx.recv(out=out), out, make, SMALL)


@pytest.mark.parametrize("name", list(OUTS))
@pytest.mark.parametrize("src", [SMALL, LARGE], ids=["small", "large"])
def test_zmq(name, src):
    zmq = pytest.importorskip("zmq")
    import wirearray.zmq as wz

    make = OUTS[name]
    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        a.bind("inproc://out-subclass")
        b.connect("inproc://out-subclass")
        for byteorder in ("network", "native"):
            wz.send_array(a, src, byteorder=byteorder)
            out = make(src)
            _check(wz.recv_array(b, out), out, make, src)
        a.close(linger=0)
        b.close(linger=0)
    finally:
        ctx.destroy(linger=0)
