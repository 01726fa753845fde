"""wirearray.zmq on real pyzmq sockets, in one process: every dtype, layout and byte
order, out=, copy=False, schemas, send_many, the wire mapping against the Encoder,
hostile messages, sequence numbers and their gaps, every socket pattern, asyncio.

Every socket has RCVTIMEO/SNDTIMEO (tests/zmqutil.py): a receive that gets nothing
fails the test with zmq.Again instead of hanging, and every loop has a fixed count.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest

from zmqutil import TRANSPORTS, Endpoints, Handshakes, bind, bounded, require_zmq

require_zmq()

import zmq  # noqa: E402
import zmq.asyncio  # noqa: E402

import wirearray  # noqa: E402
from wirearray import _zmq_message, _zmq_read, _zmq_staging, _zmq_stateful  # noqa: E402
from wirearray import zmq as wz  # noqa: E402
from wirearray.codec import Encoder  # noqa: E402

DTYPES = [
    "?", "i1", "u1", "<i2", ">i2", "<u2", "<i4", ">u4", "<i8", ">u8",
    "<f2", ">f4", "<f8", ">f8", "<c8", ">c16",
]  # fmt: skip
BIG = 300 * 1024  # bytes: over WHOLE_FRAME_BYTES, so the frame is split


def make(dtype: str, shape: tuple, layout: str = "C", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape)) if shape else 1
    if dt.kind == "b":
        base = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        base = rng.integers(max(info.min, -1000), min(info.max, 1000), n, endpoint=True)
    elif dt.kind == "c":
        base = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    else:
        base = rng.standard_normal(n)
    a = base.astype(dt).reshape(shape)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        return np.concatenate([a, a], axis=-1)[..., ::2] if a.ndim else a
    return a


def same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("=")
    assert np.array_equal(got, want)


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def endpoints():
    e = Endpoints()
    yield e
    e.close()


def connected(ctx, endpoints, transport, kind_a=zmq.PAIR, kind_b=zmq.PAIR, before=None):
    """Sockets (a, b): a binds, b connects; ``before(a, b)`` runs before bind/connect."""
    a, b = bounded(ctx.socket(kind_a)), bounded(ctx.socket(kind_b))
    if before is not None:
        before(a, b)
    ep = bind(a, endpoints.new(transport))
    if transport == "inproc":
        b.connect(ep)
        return a, b
    shakes = Handshakes(a)
    b.connect(ep)
    shakes.wait(1)
    shakes.close()
    return a, b


@pytest.fixture(params=TRANSPORTS)
def pair(request, ctx, endpoints):
    """A connected PAIR (sender, receiver) over each transport."""
    return connected(ctx, endpoints, request.param)


@pytest.fixture
def inproc(ctx, endpoints):
    return connected(ctx, endpoints, "inproc")


# ---- import and packaging ----


def test_import_wirearray_does_not_import_zmq():
    code = "import sys, wirearray; print('zmq' in sys.modules, 'wirearray.zmq' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]


def test_missing_pyzmq_names_the_extra(tmp_path):
    fake = tmp_path / "hide"
    fake.mkdir()
    (fake / "zmq.py").write_text("raise ImportError('No module named zmq (test)')\n")
    path = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    code = "import wirearray.zmq"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError") and "wirearray[zmq]" in last, last


# ---- round trips and the wire mapping ----


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("nbytes", [64, BIG], ids=["whole", "split"])
def test_every_dtype_layout_byteorder(inproc, dtype, layout, nbytes):
    a, b = inproc
    itemsize = np.dtype(dtype).itemsize
    cols = 8
    rows = max(1, nbytes // itemsize // cols)
    arr = make(dtype, (rows, cols), layout)
    for byteorder in ("network", "native"):
        for checksum in (False, True):
            wz.send_array(a, arr, byteorder=byteorder, checksum=checksum)
            got = wz.recv_array(b)
            same(got, arr)
            assert got.dtype.isnative or got.dtype.itemsize == 1
            if layout == "F":
                assert got.flags.f_contiguous
            # the joined frame parts are exactly the Encoder's frame
            wz.send_array(a, arr, byteorder=byteorder, checksum=checksum)
            parts = b.recv_multipart()
            enc = Encoder(byteorder=byteorder, checksum=checksum)
            assert b"".join(parts[1:]) == enc.encode(arr)


@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (1,) * 32])
def test_edge_shapes(pair, shape):
    a, b = pair
    arr = make("<f8", shape)
    wz.send_array(a, arr)
    same(wz.recv_array(b), arr)


def test_every_transport(pair):
    a, b = pair
    for arr in (np.arange(10.0), make("<i4", (512, 256), "F")):
        wz.send_array(a, arr, checksum=True)
        same(wz.recv_array(b), arr)


def test_part_layout(inproc):
    """Small frames travel whole in one part; larger ones as header, payload, tail."""
    a, b = inproc
    small = np.arange(8, dtype=np.float64)
    wz.send_array(a, small)
    origin, frame = b.recv_multipart()
    assert len(origin) == wz.ORIGIN_BYTES and origin[:4] == wz.ORIGIN_MAGIC
    assert len(frame) == 128
    big = np.arange(wz.WHOLE_FRAME_BYTES // 8 + 1, dtype=np.float64)
    for checksum, tail in ((False, 56), (True, 56)):  # 65544 + 56; 65544 + 4 + 52
        wz.send_array(a, big, byteorder="native", checksum=checksum)
        parts = b.recv_multipart()
        assert [len(p) for p in parts] == [32, 64, big.nbytes, tail]
        assert parts[2] == big.tobytes()
    below = np.zeros(wz.WHOLE_FRAME_BYTES // 4 - 1, dtype=np.float32)
    wz.send_array(a, below)
    assert [len(p) for p in b.recv_multipart()] == [32, 64 + below.nbytes + 4]
    at_limit = np.zeros(wz.WHOLE_FRAME_BYTES // 4, dtype=np.float32)  # no padding either
    wz.send_array(a, at_limit)
    assert [len(p) for p in b.recv_multipart()] == [32, 64, at_limit.nbytes]


def test_large_payloads_split_in_pieces(inproc, monkeypatch):
    """Payloads of SPLIT_BYTES (2 GiB) and more travel in PIECE_BYTES (1 GiB) parts;
    the same rule at small sizes, so that the test needs no gigabytes."""
    monkeypatch.setattr(_zmq_message, "SPLIT_BYTES", 1 << 20)
    monkeypatch.setattr(_zmq_message, "PIECE_BYTES", 256 << 10)
    a, b = inproc
    arr = make("<f8", ((5 << 20) // 16 + 3,))  # 2.5 MiB + 24 bytes
    for byteorder in ("network", "native"):
        wz.send_array(a, arr, byteorder=byteorder, checksum=True)
        parts = b.recv_multipart()
        assert [len(p) for p in parts[2:-1]] == [256 << 10] * 10 + [24]
        assert b"".join(parts[1:]) == Encoder(byteorder=byteorder, checksum=True).encode(arr)
        b_out = np.empty_like(arr)
        wz.send_array(a, arr, byteorder=byteorder, checksum=True)
        assert wz.recv_array(b, out=b_out) is b_out
        same(b_out, arr)
        wz.send_array(a, arr, byteorder=byteorder)
        same(wz.recv_array(b, copy=False), arr)  # a copy: a view spans one part only
    just_below = make("<f8", ((1 << 20) // 8 - 1,))
    wz.send_array(a, just_below)
    assert [len(p) for p in b.recv_multipart()][2] == just_below.nbytes


def test_send_many_round_trip_and_bytes(pair):
    a, b = pair
    msg = {
        "x": np.arange(5, dtype=np.int16),
        "big": make("<f8", (300, 200), "F"),
        "empty": np.zeros((0, 3), np.uint8),
        "é": np.array(True),
    }
    for byteorder in ("network", "native"):
        wz.send_many(a, msg, byteorder=byteorder, checksum=True)
        got = wz.recv_many(b)
        assert list(got) == list(msg)
        for k in msg:
            same(got[k], msg[k])
        wz.send_many(a, msg, byteorder=byteorder, checksum=True)
        parts = b.recv_multipart()
        enc = Encoder(byteorder=byteorder, checksum=True)
        assert b"".join(parts[1:]) == enc.encode_message(msg)


def test_send_many_is_all_or_nothing(inproc):
    """A message with an unsendable array raises before anything is sent."""
    a, b = inproc
    with pytest.raises(wirearray.UnsupportedDtypeError):
        wz.send_many(a, {"ok": np.zeros(3), "bad": np.array([object()])})
    with pytest.raises(wirearray.UsageError):
        wz.send_many(a, {"ok": np.zeros(3), "": np.zeros(2)})
    m = np.ma.masked_array(np.zeros(3), mask=[0, 1, 0])  # the mask would be lost
    with pytest.raises(wirearray.UsageError, match="mask"):
        wz.send_many(a, {"ok": np.zeros(3), "m": m})
    with pytest.raises(wirearray.UsageError, match="mask"):
        wz.send_array(a, m)
    assert b.poll(50) == 0
    wz.send_many(a, {"ok": np.zeros(3)})
    assert list(wz.recv_many(b)) == ["ok"]


def test_names(inproc):
    a, b = inproc
    wz.send_array(a, np.arange(3), name="temperature")
    assert b"temperature" in b.recv_multipart()[1][:64]
    wz.send_array(a, np.arange(3), name="temperature")
    same(wz.recv_array(b), np.arange(3))
    with pytest.raises(wirearray.UsageError):
        wz.send_array(a, np.arange(3), name="x" * 256)


# ---- receiving: out=, copy=False, schemas, limits ----


@pytest.mark.parametrize("size", [16, BIG // 8])
def test_out_with_the_swap_in_the_same_copy(inproc, size):
    a, b = inproc
    arr = make("<f8", (size,))
    for out_dtype in ("<f8", ">f8"):
        out = np.empty(size, out_dtype)
        for byteorder in ("network", "native"):
            wz.send_array(a, arr, byteorder=byteorder, checksum=True)
            got = wz.recv_array(b, out=out)
            assert got is out
            same(out, arr)
    outm = {"big": np.empty(size, ">f8")}
    wz.send_many(a, {"big": arr, "other": arr[:3]})
    got = wz.recv_many(b, out=outm)
    assert got["big"] is outm["big"]
    same(got["other"], arr[:3])


def test_out_that_does_not_fit_costs_that_message_only(inproc):
    a, b = inproc
    for size in (16, BIG // 8):
        wz.send_array(a, np.zeros(size))
        wz.send_array(a, np.ones(4))
        with pytest.raises(wirearray.BufferMismatchError):
            wz.recv_array(b, out=np.empty(size + 1))
        same(wz.recv_array(b), np.ones(4))
        wz.send_array(a, np.zeros(size))
        with pytest.raises(wirearray.BufferMismatchError):
            wz.recv_array(b, out=np.empty(size, np.float32))
        wz.send_array(a, np.zeros((size, 2)))
        with pytest.raises(wirearray.BufferMismatchError):  # elements sharing memory
            wz.recv_array(b, out=np.lib.stride_tricks.as_strided(np.empty(2), (size, 2), (0, 8)))
    ro = np.empty(4)
    ro.flags.writeable = False
    wz.send_array(a, np.ones(4))
    with pytest.raises(wirearray.BufferMismatchError):
        wz.recv_array(b, out=ro)


@pytest.mark.parametrize("size", [16, BIG // 8])
def test_copy_false_views(inproc, size):
    a, b = inproc
    arr = make("<f8", (size // 4, 4))
    wz.send_array(a, arr, byteorder="native")
    v = wz.recv_array(b, copy=False)
    same(v, arr)
    assert not v.flags.writeable and not v.flags.owndata
    with pytest.raises(ValueError):
        v[0, 0] = 1.0
    # network order on this host needs a conversion: a converted, writable copy
    wz.send_array(a, arr, byteorder="network", checksum=True)
    c = wz.recv_array(b, copy=False)
    same(c, arr)
    if sys.byteorder == "little":
        assert c.flags.writeable
    # one-byte items never need one
    u8 = make("u1", (size,))
    wz.send_array(a, u8, checksum=True)
    v8 = wz.recv_array(b, copy=False)
    same(v8, u8)
    assert not v8.flags.writeable
    wz.send_many(a, {"a": arr, "b": u8}, byteorder="native")
    views = wz.recv_many(b, copy=False)
    assert not views["a"].flags.writeable and not views["b"].flags.writeable


def _other_layouts(arr: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(array to send, out not contiguous in the frame's order, the array out views),
    every base filled with 0xA5 bytes (1 for bool)."""
    r, c = arr.shape
    fill = 1 if arr.dtype.kind == "b" else 0xA5

    def base(shape, order="C"):
        raw = np.full(int(np.prod(shape)) * arr.dtype.itemsize, fill, np.uint8)
        return raw.view(arr.dtype.newbyteorder(">")).reshape(shape, order=order)

    wide, c_out, f_out, flipped = base((r, 2 * c)), base((r, c)), base((r, c), "F"), base((r, c))
    return [
        (arr, wide[:, ::2], wide),
        (np.asfortranarray(arr), c_out, c_out),
        (arr, f_out, f_out),
        (arr, flipped[::-1, ::-1], flipped),
    ]


def _landed(out: np.ndarray, base: np.ndarray, sent: np.ndarray) -> None:
    """out holds sent's values; nothing else of base was written."""
    same(out, sent)
    fill = 1 if out.dtype.kind == "b" else 0xA5
    out[...] = np.frombuffer(bytes([fill]) * out.dtype.itemsize, out.dtype)[0]
    assert set(np.ascontiguousarray(base).tobytes()) == {fill}


@pytest.mark.parametrize("nbytes", [64, BIG, "pieces"], ids=["whole", "split", "pieces"])
def test_out_of_any_layout(inproc, nbytes, monkeypatch):
    """Strided, transposed, reversed and other-order destinations, filled from the parts
    zmq received; with "pieces" the payload travels in parts that end mid-element."""
    if nbytes == "pieces":
        monkeypatch.setattr(_zmq_message, "SPLIT_BYTES", 1 << 20)
        monkeypatch.setattr(_zmq_message, "PIECE_BYTES", 100_003)
        nbytes = (1 << 20) + 48
    a, b = inproc
    for dtype in ("?", ">i2", "<f8", ">c16"):
        arr = make(dtype, (max(2, nbytes // np.dtype(dtype).itemsize // 8), 8))
        for sent, out, base in _other_layouts(arr):
            for byteorder in ("network", "native"):
                for checksum in (False, True):
                    wz.send_array(a, sent, byteorder=byteorder, checksum=checksum)
                    assert wz.recv_array(b, out=out) is out
                    _landed(out, base, sent)
        (sent, x, xb), (_, y, yb) = _other_layouts(arr)[:2]
        wz.send_many(a, {"x": sent, "y": np.asfortranarray(sent)}, checksum=True)
        got = wz.recv_many(b, out={"x": x, "y": y})
        assert got["x"] is x and got["y"] is y
        _landed(x, xb, sent)
        _landed(y, yb, sent)


def test_copy_false_view_outlives_the_next_messages(inproc):
    a, b = inproc
    arr = make("<i8", (BIG // 8,))
    wz.send_array(a, arr, byteorder="native")
    v = wz.recv_array(b, copy=False)
    for k in range(3):
        wz.send_array(a, np.full(arr.shape, k), byteorder="native")
        wz.recv_array(b)
    same(v, arr)


def test_schema(inproc):
    a, b = inproc
    for size in (16, BIG // 8):
        wz.send_array(a, np.zeros((size, 2)))
        same(wz.recv_array(b, schema=(np.float64, (None, 2))), np.zeros((size, 2)))
        wz.send_array(a, np.zeros((size, 2)))
        wz.send_array(a, np.ones(3))
        with pytest.raises(wirearray.SchemaMismatchError):
            wz.recv_array(b, schema=wirearray.Schema(np.float32))
        same(wz.recv_array(b), np.ones(3))
    wz.send_many(a, {"x": np.zeros(2), "y": np.ones(3, np.int32)})
    got = wz.recv_many(b, schema={"x": (np.float64, (2,)), "y": (np.int32, None)})
    assert set(got) == {"x", "y"}
    wz.send_many(a, {"x": np.zeros(2)})
    with pytest.raises(wirearray.SchemaMismatchError, match="lacks"):
        wz.recv_many(b, schema={"x": None, "y": None})
    wz.send_many(a, {"x": np.zeros(2), "z": np.zeros(1)})
    with pytest.raises(wirearray.SchemaMismatchError, match="unexpected"):
        wz.recv_many(b, schema={"x": None})
    wz.send_array(a, np.ones(2))
    same(wz.recv_array(b), np.ones(2))


def test_array_and_message_mix_ups(inproc):
    a, b = inproc
    wz.send_many(a, {"x": np.zeros(2)})
    with pytest.raises(wirearray.SchemaMismatchError, match="recv_many"):
        wz.recv_array(b)
    for size in (16, BIG // 8):
        wz.send_array(a, np.zeros(size))
        with pytest.raises(wirearray.SchemaMismatchError, match="recv_array"):
            wz.recv_many(b)
    wz.send_array(a, np.ones(2))
    same(wz.recv_array(b), np.ones(2))


def test_limits_from_the_header(inproc):
    a, b = inproc
    wz.send_array(a, np.zeros(1000))
    with pytest.raises(wirearray.FrameTooLargeError):
        wz.recv_array(b, max_frame_bytes=7999)
    wz.send_array(a, np.zeros((1,) * 5))
    with pytest.raises(wirearray.FrameTooLargeError):
        wz.recv_array(b, max_ndim=4)
    wz.send_many(a, {"x": np.zeros(600), "y": np.zeros(600)})
    with pytest.raises(wirearray.FrameTooLargeError):
        wz.recv_many(b, max_frame_bytes=9000)
    wz.send_many(a, {str(i): np.zeros(1) for i in range(5)})
    with pytest.raises(wirearray.FrameTooLargeError):
        wz.recv_many(b, max_message_arrays=4)
    wz.send_array(a, np.ones(2))
    same(wz.recv_array(b), np.ones(2))


def test_a_header_seen_before_is_checked_against_each_receivers_limits(inproc):
    """Split frames: the same header part, accepted once, is still refused by a
    receiver with lower limits or another schema (parsed headers are remembered per
    limits, schemas are checked every time)."""
    a, b = inproc
    arr = np.zeros(BIG // 8)
    for _ in range(2):
        wz.send_array(a, arr)
        same(wz.recv_array(b), arr)
        wz.send_array(a, arr)
        with pytest.raises(wirearray.FrameTooLargeError):
            wz.recv_array(b, max_frame_bytes=BIG - 1)
        wz.send_array(a, arr)
        with pytest.raises(wirearray.FrameTooLargeError):
            wz.recv_array(b, max_ndim=0)
        wz.send_array(a, arr)
        with pytest.raises(wirearray.SchemaMismatchError):
            wz.recv_array(b, schema=(np.float64, (BIG // 8 - 1,)))
        wz.send_many(a, {"x": arr})  # the array's header inside a message: sequence 1
        same(wz.recv_many(b)["x"], arr)
    wz.send_array(a, arr)
    same(wz.recv_array(b, max_frame_bytes=BIG), arr)


def test_a_header_claiming_terabytes_allocates_nothing(inproc):
    """Forged headers: a huge payload length is refused from the header, before any
    allocation, and the next message arrives."""
    import tracemalloc

    a, b = inproc
    impl = wirearray._impl
    origin = _zmq_message._pack_origin(impl, 0, 0)
    header = impl.pack_header(1, 12, 0, (1 << 37,), 1 << 40, b"", 0, 0)
    tracemalloc.start()
    try:
        a.send_multipart([origin, header, b"\0" * 64])
        with pytest.raises(wirearray.FrameTooLargeError):
            wz.recv_array(b)
        assert tracemalloc.get_traced_memory()[1] < 1 << 20
    finally:
        tracemalloc.stop()
    wz.send_array(a, np.ones(2))
    same(wz.recv_array(b), np.ones(2))


def test_set_limits_and_max_part_bytes(ctx):
    s = ctx.socket(zmq.PULL)
    try:
        wz.set_limits(s, max_frame_bytes=1 << 20, hwm_bytes=10 << 20)
        assert s.getsockopt(zmq.MAXMSGSIZE) == wz.max_part_bytes(1 << 20) == (1 << 20) + 9092
        assert s.getsockopt(zmq.RCVHWM) == s.getsockopt(zmq.SNDHWM) == 9
        wz.set_limits(s, max_frame_bytes=8 << 30)
        assert s.getsockopt(zmq.MAXMSGSIZE) == (1 << 31) - 1
        with pytest.raises(wirearray.UsageError):
            wz.set_limits(s, hwm_bytes=0)
    finally:
        s.close(0)


def test_receiver_warns_of_limits_it_cannot_apply(ctx, endpoints):
    import warnings

    s = bounded(ctx.socket(zmq.PULL))
    bind(s, endpoints.new("ipc"))
    with pytest.warns(RuntimeWarning, match="before bind/connect"):
        wz.Receiver(s, max_frame_bytes=1 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wz.Receiver(s, max_frame_bytes=1 << 20)  # the same limits: nothing to say
        i = bounded(ctx.socket(zmq.PULL))
        bind(i, endpoints.new("inproc"))
        wz.Receiver(i, max_frame_bytes=1 << 20)  # inproc decodes nothing
    with pytest.raises(wirearray.UsageError):
        wz.Receiver(s, envelope=-1)
    s.close(0)
    i.close(0)


# ---- sending: the caller's array, zero copy, staging buffers ----


def test_array_may_change_after_send(ctx, endpoints):
    """copy=True (the default): the message is unaffected by later changes to the
    array, even while it waits in zmq's queue for a peer."""
    push = bounded(ctx.socket(zmq.PUSH))
    pull = bounded(ctx.socket(zmq.PULL))
    ep = endpoints.new("ipc")
    push.connect(ep)  # no peer yet: messages queue in the connecting socket
    for byteorder in ("native", "network"):
        arr = np.arange(BIG // 8, dtype=np.float64)
        assert wz.send_array(push, arr, byteorder=byteorder) is None
        arr[:] = -1
    bind(pull, ep)
    for _ in range(2):
        same(wz.recv_array(pull), np.arange(BIG // 8, dtype=np.float64))


def test_copy_false_sends_from_the_array(inproc):
    a, b = inproc
    arr = np.arange(wz.ZERO_COPY_BYTES // 8, dtype=np.float64)
    tracker = wz.send_array(a, arr, byteorder="native", copy=False)
    assert isinstance(tracker, zmq.MessageTracker)
    v = wz.recv_array(b, copy=False)
    # inproc hands the very buffer over: the view *is* the sender's memory
    assert np.shares_memory(v, arr) or np.array_equal(v, arr)
    del v
    tracker.wait(10)
    assert tracker.done
    # a conversion makes a copy: nothing refers to the array, no tracker
    assert wz.send_array(a, arr, byteorder="network", copy=False) is None
    wz.recv_array(b)
    # and a whole frame (under ZERO_COPY_BYTES) is a copy: no tracker either
    small = arr[: wz.ZERO_COPY_BYTES // 8 - 1]
    assert wz.send_array(a, small, byteorder="native", copy=False) is None
    same(wz.recv_array(b), small)


@pytest.mark.parametrize("many", [False, True])
def test_copy_false_tracker_is_done_only_when_libzmq_is(inproc, many):
    """The tracker of a copy=False send stays pending while the message waits in
    zmq's queue (libzmq refers to the array), and is done once it was received."""
    a, b = inproc
    arr = np.arange(wz.ZERO_COPY_BYTES // 2, dtype=np.float64)
    if many:
        tracker = wz.send_many(a, {"x": arr, "y": arr[::-1].copy()}, byteorder="native", copy=False)
    else:
        tracker = wz.send_array(a, arr, byteorder="native", copy=False)
    assert isinstance(tracker, zmq.MessageTracker)
    time.sleep(0.05)
    assert not tracker.done
    with pytest.raises(zmq.NotDone):
        tracker.wait(0.05)
    got = wz.recv_many(b) if many else {"x": wz.recv_array(b)}
    same(got["x"], arr)
    tracker.wait(10)
    assert tracker.done


def released(pool, timeout: float = 10.0) -> None:
    """Wait until pyzmq dropped every view ``pool``'s buffers in flight were sent from."""
    deadline = time.monotonic() + timeout
    while any(not _zmq_staging._released(refs) for _, refs in list(pool._busy)):
        assert time.monotonic() < deadline, "libzmq never released a staging buffer"
        time.sleep(0.001)


def test_staging_buffers_are_reused(inproc):
    a, b = inproc
    tx = wz.Sender(a)
    arr = make("<f8", (wz.ZERO_COPY_BYTES // 8,))
    out = np.empty_like(arr)

    def settle() -> None:  # pyzmq's garbage collector releases buffers a bit later
        released(tx._pool)

    for _ in range(3):  # bursts: as many buffers as messages queued, then reused
        for _ in range(10):
            tx.send(arr)
        for _ in range(10):
            same(wz.recv_array(b, out=out), arr)
        settle()
    first = tx._pool.allocations
    assert first <= 10, "a fresh staging buffer per message"
    for _ in range(30):  # one at a time: the buffers of the bursts take turns
        tx.send(arr)
        same(wz.recv_array(b, out=out), arr)
        settle()
    tx.send(arr[:10_000])  # smaller: an idle buffer serves it
    wz.recv_array(b)
    assert tx._pool.allocations == first


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_staging_buffers_are_not_reused_while_libzmq_holds_them(
    ctx, endpoints, transport, impl_name
):
    """A slow receiver behind a large high-water mark: every network-order message
    waits in zmq's queues, sent from its own staging buffer, while the sender goes on
    converting more.  A buffer reused too early would show as another message's values."""
    made = {}

    def before(a, b):
        a.setsockopt(zmq.SNDHWM, 0)
        made["rx"] = wz.Receiver(b, implementation=impl_name)

    a, _ = connected(ctx, endpoints, transport, before=before)
    tx = wz.Sender(a, implementation=impl_name)
    rx = made["rx"]
    n = 96 << 10  # bytes per message: split, converted into a staging buffer

    def msg(i: int) -> np.ndarray:
        return np.arange(i * n // 8, (i + 1) * n // 8, dtype="<u8")

    sent = got = 0
    out = np.empty(n // 8, "<u8")
    for burst, take in ((120, 40), (120, 150), (40, 20), (60, 130)):  # taking fewer, then all
        for _ in range(burst):
            tx.send(msg(sent))
            sent += 1
        for _ in range(take):
            # out= of the other byte order: the receiver converts from zmq's buffer
            assert rx.recv(out=out.view(">u8") if got % 2 else out) is not None
            want = msg(got)
            assert np.array_equal(out.view(">u8") if got % 2 else out, want), f"message {got}"
            got += 1
    assert got == sent and rx.stats["lost"] == 0
    assert tx._pool.allocations < sent  # reused all the same


def test_staging_pool_keeps_what_a_burst_needed(monkeypatch):
    """Buffers a burst had in flight at once are kept for the next burst (no new
    allocations) beyond KEEP_STAGING_BYTES; bursts that need less give them back."""
    monkeypatch.setattr(_zmq_staging, "KEEP_STAGING_BYTES", 1 << 20)
    pool = _zmq_staging._StagingPool()
    size = 256 << 10

    class View:  # what pyzmq holds while libzmq sends from the buffer
        pass

    def burst(count: int) -> None:
        held = [View() for _ in range(count)]
        for v in held:
            pool.give(pool.take(size), (weakref.ref(v),))
        del v
        held.clear()  # libzmq done with all of them
        pool._reap(True)

    burst(16)  # 4 MiB in flight: over the 1 MiB kept at least
    assert pool.allocations == 16 and pool._idle_bytes == 16 * size
    burst(16)
    assert pool.allocations == 16, "the second burst allocated again"
    for _ in range(8):  # one at a time: what is kept halves towards what is needed
        burst(1)
    assert pool._idle_bytes <= 1 << 20
    assert pool.allocations == 16


def test_buffers_in_flight_are_held_until_released_and_kept_at_exit():
    """The registry of zero-copy buffers holds each until pyzmq dropped its view; one
    message stuck in a queue does not make it keep every later, released one; at exit
    whatever it still holds is kept alive for good."""
    flight = _zmq_staging._InFlight()

    class View:  # what pyzmq holds while libzmq sends from the buffer
        pass

    stuck = View()
    flight.add(np.zeros(1), (weakref.ref(stuck),))
    for _ in range(1000):
        v = View()
        flight.add(np.zeros(1), (weakref.ref(v),))
        del v  # released at once
    assert len(flight._entries) < 100
    live = View()
    buf = np.zeros(4)
    flight.add(buf, (weakref.ref(live),))
    before = sys.getrefcount(buf)
    flight.keep_at_exit()
    assert sys.getrefcount(buf) == before  # the registry's reference became a leaked one
    assert not flight._entries


def test_staging_pool_keeps_a_bounded_idle_set(monkeypatch):
    monkeypatch.setattr(_zmq_staging, "KEEP_STAGING_BYTES", 1 << 20)
    pool = _zmq_staging._StagingPool()
    bufs = [pool.take(300_000) for _ in range(8)]  # 320 KiB each once rounded up
    for buf in bufs:
        pool.give(buf, None)
    assert pool._idle_bytes <= 1 << 20 and len(pool._idle) == 3
    big = pool.take(5 << 20)
    pool.give(big, None)
    assert pool._idle == [big]  # one buffer is kept whatever its size


def test_send_errors(inproc):
    a, _ = inproc
    with pytest.raises(wirearray.UnsupportedDtypeError):
        wz.send_array(a, np.array([object()]))
    with pytest.raises(wirearray.UsageError):
        wz.send_array(a, np.zeros(2), byteorder="little")
    with pytest.raises(wirearray.UsageError):
        wz.send_array(a, np.zeros(2), flags=zmq.SNDMORE)
    with pytest.raises(wirearray.UsageError):
        wz.send_array(a, np.zeros(2), envelope=b"topic")
    with pytest.raises(wirearray.UsageError):
        wz.send_array(a, np.zeros(2), envelope=["topic"])


def test_dontwait_sends_nothing_and_keeps_the_sequence(ctx):
    push = bounded(ctx.socket(zmq.PUSH))  # no peer: DONTWAIT cannot queue
    push.setsockopt(zmq.IMMEDIATE, 1)
    push.connect("tcp://127.0.0.1:9")
    tx = wz.Sender(push)
    with pytest.raises(zmq.Again):
        tx.send(np.zeros(BIG // 8), flags=zmq.DONTWAIT)
    with pytest.raises(zmq.Again):
        wz.send_array(push, np.zeros(4), flags=zmq.DONTWAIT)
    assert tx.stats["sent"] == 0 and tx._stream(()).seq == 0
    push.close(0)


def test_recv_timeout_and_dontwait(inproc):
    _, b = inproc
    b.setsockopt(zmq.RCVTIMEO, 50)
    with pytest.raises(zmq.Again):
        wz.recv_array(b)
    with pytest.raises(zmq.Again):
        wz.recv_array(b, flags=zmq.DONTWAIT)
    rx = wz.Receiver(b)
    with pytest.raises(zmq.Again):
        rx.recv()
    assert rx.stats["refused"] == 0


# ---- hostile messages ----


def raw_message(arr, *, checksum=True, name=None, sequenced=None, byteorder="network"):
    """The parts wirearray.zmq sends for ``arr``, as a list of bytes."""
    ctx = zmq.Context.instance()
    a, b = bounded(ctx.socket(zmq.PAIR)), bounded(ctx.socket(zmq.PAIR))
    ep = f"inproc://raw-{id(a)}"
    a.bind(ep)
    b.connect(ep)
    try:
        if sequenced is None:
            wz.send_array(a, arr, checksum=checksum, name=name, byteorder=byteorder)
        else:
            sequenced.sock = a
            sequenced.send(arr, name=name)
        return b.recv_multipart()
    finally:
        a.close(0)
        b.close(0)


SMALL_ARR = np.arange(6, dtype=np.float64).reshape(2, 3)
BIG_ARR = np.arange(BIG // 8, dtype=np.float64)


def check_refused_then_next(a, b, rx, parts, expect=wirearray.ProtocolError):
    before = rx.stats["refused"]
    a.send_multipart(parts)
    wz.send_array(a, np.arange(3.0))
    with pytest.raises(expect):
        rx.recv()
    assert rx.stats["refused"] == before + 1
    same(rx.recv(), np.arange(3.0))


def test_every_bit_flip_of_a_small_message(inproc):
    """A flipped bit anywhere in the origin part, header, payload (with its checksum)
    or padding: a ProtocolError for that message, then the next message arrives."""
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    parts = raw_message(SMALL_ARR, checksum=True)
    for index, part in enumerate(parts):
        for pos in range(len(part)):
            bad = bytearray(part)
            bad[pos] ^= 1 << (pos % 8)
            flipped = [*parts[:index], bytes(bad), *parts[index + 1 :]]
            a.send_multipart(flipped)
            wz.send_array(a, np.arange(3.0))
            with pytest.raises(wirearray.ProtocolError):
                rx.recv()
            same(rx.recv(), np.arange(3.0))
    assert rx.stats["refused"] == sum(len(p) for p in parts)


def test_bit_flips_of_a_split_message(inproc):
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    parts = raw_message(BIG_ARR, checksum=True)
    assert len(parts) == 4
    rng = np.random.default_rng(1)
    for index, part in enumerate(parts):
        positions = range(len(part)) if len(part) <= 64 else rng.integers(0, len(part), 40)
        for pos in positions:
            bad = bytearray(part)
            bad[pos] ^= 0x10
            check_refused_then_next(a, b, rx, [*parts[:index], bytes(bad), *parts[index + 1 :]])


class _Sub(np.ndarray):
    pass


ROUTE_DTYPES = ["<f8", ">i4", "<c8", "?", "S3", "<U2", "M8[ms]", "m8[us]"]


def _route_array(dtype: str, layout: str = "C") -> np.ndarray:
    """A 2-D array of ``dtype`` over BIG bytes (a split frame), distinct values."""
    dt = np.dtype(dtype)
    n = BIG // dt.itemsize
    if dt.kind in "SU":
        base = np.array([str(i % 997) for i in range(n)]).astype(dt)
    elif dt.kind in "mM":
        base = np.arange(n).astype(dt)
    else:
        base = make(dtype, (n,))
    a = base.reshape(n // 8, 8)
    return np.asfortranarray(a) if layout == "F" else a


@pytest.mark.parametrize("dtype", ROUTE_DTYPES)
@pytest.mark.parametrize("layout", ["C", "F"])
def test_one_part_payload_routes(inproc, dtype, layout):
    """A split frame's payload part lands straight in out= (or a new array) when it
    travels in this host's order, is converted from zmq's buffer in one pass when
    not, and a destination the route does not take (another byte order, the other
    layout, a subclass) still gets the values: every dtype kind, with and without
    a checksum, through recv_array and a Receiver."""
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    arr = _route_array(dtype, layout)
    dt = arr.dtype
    outs = [
        np.empty(arr.shape, dt.newbyteorder("="), order=layout),  # the route
        np.empty(arr.shape, dt.newbyteorder(">" if dt.itemsize > 1 else "="), order=layout),
        np.empty(arr.shape, dt, order="F" if layout == "C" else "C"),  # the other layout
        np.empty(arr.shape, dt, order=layout).view(_Sub),  # a subclass
    ]
    for byteorder in ("network", "native"):
        for checksum in (False, True):
            for out in outs:
                wz.send_array(a, arr, byteorder=byteorder, checksum=checksum)
                got = wz.recv_array(b, out=out)
                assert got is out
                assert np.array_equal(np.asarray(out), arr)
            wz.send_array(a, arr, byteorder=byteorder, checksum=checksum)
            got = rx.recv()
            same(got, arr)
            assert got.dtype.isnative or got.dtype.itemsize == 1 or got.dtype.kind in "SU"
            assert got.flags.f_contiguous if layout == "F" else got.flags.c_contiguous
    assert rx.stats["received"] == 4 and rx.stats["refused"] == 0


@pytest.mark.parametrize("byteorder", ["network", "native"])
@pytest.mark.parametrize("dtype", ["<f8", "M8[ms]"])
@pytest.mark.parametrize("dest", ["out", "new"])
def test_bad_tail_after_the_payload_landed_costs_that_message_only(inproc, byteorder, dtype, dest):
    """The payload part lands in the destination (or is converted into it) before the
    tail is read: a wrong CRC, non-zero padding, a missing tail, an extra part or a
    short payload part is the message's ProtocolError, out='s content is then
    unspecified, and the next message arrives whole."""
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    arr = _route_array(dtype)[:, :7]  # 7 columns: the payload needs padding
    arr = np.ascontiguousarray(arr)
    out = np.empty(arr.shape, arr.dtype.newbyteorder("=")) if dest == "out" else None
    good = raw_message(arr, checksum=True, byteorder=byteorder)
    assert len(good) == 4  # origin, header, payload, tail (CRC and padding)
    bad_crc = bytearray(good[3])
    bad_crc[0] ^= 1
    bad_pad = bytearray(good[3])
    bad_pad[-1] = 1
    hostile = [
        ([*good[:3], bytes(bad_crc)], wirearray.ChecksumError),
        ([*good[:3], bytes(bad_pad)], wirearray.MalformedFrameError),
        (good[:3], wirearray.MalformedFrameError),  # no tail
        ([*good, b"extra"], wirearray.MalformedFrameError),
        ([*good[:2], good[2][:-8], good[3]], wirearray.MalformedFrameError),  # short
        ([*good[:2], good[2] + bytes(8), good[3]], wirearray.MalformedFrameError),  # long
    ]
    nxt = arr[::-1].copy()
    for parts, expect in hostile:
        a.send_multipart(parts)
        wz.send_array(a, nxt, byteorder=byteorder, checksum=True)
        with pytest.raises(expect):
            rx.recv(out=out)
        got = rx.recv(out=out)
        assert got is out if out is not None else True
        same(got, nxt)
    assert rx.stats["refused"] == len(hostile)
    # a part that ends the message where the payload belongs
    a.send_multipart(good[:2])
    wz.send_array(a, nxt, byteorder=byteorder)
    with pytest.raises(wirearray.MalformedFrameError):
        wz.recv_array(b, out=out)
    same(wz.recv_array(b, out=out), nxt)


def test_a_header_part_is_looked_up_as_it_is(inproc):
    """A header part of a split frame is found in the cache of checked headers by its
    bytes; the same header bytes inside a whole frame, and a header part with other
    limits, are each checked as they should be."""
    a, b = inproc
    arr = BIG_ARR
    parts = raw_message(arr, checksum=False, byteorder="native")
    header = parts[1]
    for _ in range(2):
        a.send_multipart(parts)
        same(wz.recv_array(b), arr)
    # the cached header, with a receiver whose limits it breaks
    a.send_multipart(parts)
    wz.send_array(a, np.arange(3.0))
    with pytest.raises(wirearray.FrameTooLargeError):
        wz.recv_array(b, max_frame_bytes=arr.nbytes - 1)
    same(wz.recv_array(b, max_frame_bytes=arr.nbytes - 1), np.arange(3.0))
    # a part that starts with the cached header but is longer: not a header part
    a.send_multipart([parts[0], header + bytes(64)])
    wz.send_array(a, np.arange(3.0))
    with pytest.raises(wirearray.MalformedFrameError):
        wz.recv_array(b)
    same(wz.recv_array(b), np.arange(3.0))


@pytest.mark.parametrize("arr", [SMALL_ARR, BIG_ARR], ids=["whole", "split"])
def test_hostile_structures(inproc, arr):
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    parts = raw_message(arr, checksum=True)
    origin, frames = parts[0], parts[1:]
    cases = {
        "no frame": [origin],
        "no origin part": frames,
        "two origin parts": [origin, *parts],
        "extra part": [*parts, b"x"],
        "extra empty part": [*parts, b""],
        "empty frame part": [origin, b""],
        "short origin": [origin[:31], *frames],
        "long origin": [origin + b"\0", *frames],
        "a frame of another version": [origin, b"\x89WAR\x09" + frames[0][5:], *frames[1:]],
        "cut in the header": [origin, frames[0][:40]],
        "frame then junk in its part": [origin, frames[0] + b"\0" * 64, *frames[1:]],
        "unknown origin flags": [_origin_with(origin, flags=0x80), *frames],
        "origin without id but with seq": [_origin_with(origin, seq=5), *frames],
    }
    if len(frames) == 1:  # whole: header + payload + tail in one part
        whole = frames[0]
        cases["missing tail"] = [origin, whole[:-64]]
        cases["split wrongly"] = [origin, whole[:64], whole[64:100], whole[100:]]
        cases["header only"] = [origin, whole[:64]]
    else:
        header, payload, tail = frames
        cases["missing tail"] = [origin, header, payload]
        cases["short payload"] = [origin, header, payload[:-8], tail]
        cases["long payload"] = [origin, header, payload + b"\0" * 8, tail]
        cases["payload in two parts"] = [origin, header, payload[:1000], payload[1000:], tail]
        cases["missing payload"] = [origin, header, tail]
        cases["whole and split mixed"] = [origin, header + payload + tail, tail]
        cases["tail too long"] = [origin, header, payload, tail + b"\0"]
    for why, bad in cases.items():
        try:
            check_refused_then_next(a, b, rx, bad)
        except BaseException as exc:
            raise AssertionError(f"case {why!r}: {exc!r}") from exc
    # nothing wrong: it arrives
    a.send_multipart(parts)
    same(rx.recv(), arr)


def _origin_with(origin: bytes, *, flags=None, seq=None) -> bytes:
    import struct

    buf = bytearray(origin)
    if flags is not None:
        buf[5] = flags
    if seq is not None:
        struct.pack_into(">Q", buf, 16, seq)
    struct.pack_into(">I", buf, 28, 0)
    struct.pack_into(">I", buf, 28, wirearray._impl.crc32c(buf))
    return bytes(buf)


def test_hostile_messages(inproc):
    """Messages that break the structure of a message of several arrays."""
    a, b = inproc
    rx = wz.Receiver(b, on_gap="off")
    wz.send_many(a, {"x": np.zeros(3), "y": np.ones(2)})
    parts = b.recv_multipart()
    origin, head, fx, fy = parts
    impl = wirearray._impl
    head3 = impl.pack_header(2, 0, 0, (), 0, b"", 3, 0)
    cases = {
        "one array missing": [origin, head, fx],
        "one array too many": [origin, head3, fx, fy],
        "arrays swapped (sequence)": [origin, head, fy, fx],
        "message inside a message": [origin, head, head, fx, fy],
    }
    for why, bad in cases.items():
        a.send_multipart(bad)
        wz.send_many(a, {"ok": np.zeros(1)})
        with pytest.raises(wirearray.ProtocolError):
            rx.recv_many()
        assert list(rx.recv_many()) == ["ok"], why
    assert rx.stats["refused"] == len(cases)


def test_oversized_part_against_maxmsgsize(ctx, endpoints):
    """A part over ZMQ_MAXMSGSIZE: libzmq drops the message and the connection; the
    peer reconnects, later messages arrive, and the lost one shows as a gap."""
    pull = bounded(ctx.socket(zmq.PULL))
    rx = wz.Receiver(pull, max_frame_bytes=4096, on_gap="raise")
    ep = bind(pull, endpoints.new("tcp"))
    push = bounded(ctx.socket(zmq.PUSH))
    push.setsockopt(zmq.RECONNECT_IVL, 20)
    push.connect(ep)
    tx = wz.Sender(push)
    tx.send(np.zeros(8))
    same(rx.recv(), np.zeros(8))
    tx.send(np.zeros(100_000))  # its frame part exceeds MAXMSGSIZE
    tx.send(np.ones(8))
    with pytest.raises(wirearray.SequenceError) as info:
        rx.recv()
    same(info.value.array, np.ones(8))
    assert (info.value.seq, info.value.expected) == (2, 1)
    assert rx.stats == {"received": 2, "lost": 1, "reordered": 0, "duplicated": 0, "refused": 0}
    tx.send(np.full(8, 2.0))
    same(rx.recv(), np.full(8, 2.0))


# ---- sequence numbers ----


def test_origin_bookkeeping():
    o = _zmq_stateful._Origin(0)
    assert o.track(1) is None and o.track(2) is None
    assert o.track(5) == ("lost", 2) and o.lost == 2
    assert o.track(3) == ("reordered", 1) and o.lost == 1
    assert o.track(3) == ("duplicated", 1)
    assert o.track(5) == ("duplicated", 1)
    assert o.track(6) is None
    assert o.track(6 + 100) == ("lost", 99)
    assert o.track(6 + 50) == ("reordered", 1)  # inside the window
    assert o.track(6 + 50) == ("duplicated", 1)
    assert o.track(4) == ("reordered", 1)  # beyond the window: counted late
    assert (o.received, o.reordered, o.duplicated) == (12, 3, 3)
    late = _zmq_stateful._Origin(10)
    assert late.lost == 10
    assert late.track(9) == ("reordered", 1) and late.lost == 9


def forged(a, origin, seq, arr):
    """Send ``arr`` with a chosen origin id and sequence number."""
    impl = wirearray._impl
    frame = Encoder().encode(arr)
    a.send_multipart([_zmq_message._pack_origin(impl, origin, seq), frame])


def test_gaps_raise_with_the_array(inproc):
    a, b = inproc
    rx = wz.Receiver(b)
    assert rx.on_gap == "raise"
    for seq in (0, 1, 2):
        forged(a, 7, seq, np.full(2, seq))
        same(rx.recv(), np.full(2, seq))
    forged(a, 7, 5, np.full(2, 5))
    with pytest.raises(wirearray.SequenceError) as info:
        rx.recv()
    e = info.value
    same(e.array, np.full(2, 5))
    assert (e.seq, e.expected, e.origin, e.envelope) == (5, 3, 7, [])
    assert isinstance(e, wirearray.ProtocolError)
    forged(a, 7, 3, np.full(2, 3))
    with pytest.raises(wirearray.SequenceError, match="arrived after"):
        rx.recv()
    forged(a, 7, 3, np.full(2, 3))
    with pytest.raises(wirearray.SequenceError, match="duplicated"):
        rx.recv()
    assert rx.stats == {"received": 6, "lost": 1, "reordered": 1, "duplicated": 1, "refused": 0}
    assert rx.origin_stats()[7] == {
        "received": 6, "lost": 1, "reordered": 1, "duplicated": 1, "next_seq": 6,
    }  # fmt: skip
    # another origin is another sequence; the first message from one starts it
    forged(a, 8, 0, np.zeros(1))
    rx.recv()
    forged(a, 9, 4, np.zeros(1))
    with pytest.raises(wirearray.SequenceError, match="first message"):
        rx.recv()
    assert rx.stats["lost"] == 5
    # unsequenced messages are never checked
    wz.send_array(a, np.zeros(1))
    rx.recv()
    assert (rx.last_origin, rx.last_seq) == (0, 0)


def test_gap_policies(ctx, endpoints):
    a, b = connected(ctx, endpoints, "inproc")
    count = wz.Receiver(b, on_gap="count")
    forged(a, 3, 0, np.zeros(1))
    forged(a, 3, 10, np.zeros(1))
    count.recv()
    count.recv()
    assert count.stats["lost"] == 9
    off = wz.Receiver(b, on_gap="off")
    forged(a, 3, 20, np.zeros(1))
    off.recv()
    assert off.stats["lost"] == 0 and off.origin_stats() == {}
    with pytest.raises(wirearray.UsageError):
        wz.Receiver(b, on_gap="ignore")
    _, pull = connected(ctx, endpoints, "inproc", zmq.PUSH, zmq.PULL)
    assert wz.Receiver(pull).on_gap == "off"  # PUSH fans out: each worker sees a subset


def test_refused_message_is_not_a_gap(inproc):
    """A message refused for its frame still arrived: its sequence number counts."""
    a, b = inproc
    rx = wz.Receiver(b)
    tx = wz.Sender(a)
    tx.send(np.zeros(2))
    rx.recv()
    tx.send(np.zeros(2))
    with pytest.raises(wirearray.SchemaMismatchError):
        rx.recv(schema=(np.int8, None))
    tx.send(np.zeros(2))
    rx.recv()
    assert rx.stats == {"received": 2, "lost": 0, "reordered": 0, "duplicated": 0, "refused": 1}


def test_sender_sequences_per_envelope(inproc):
    a, b = inproc
    tx = wz.Sender(a)
    rx = wz.Receiver(b, envelope=1)
    for i in range(6):
        tx.send(np.full(1, i), envelope=[b"even" if i % 2 == 0 else b"odd"])
    seqs: dict[bytes, list] = {}
    for _ in range(6):
        env, arr = rx.recv()
        seqs.setdefault(env[0], []).append((rx.last_origin, rx.last_seq, int(arr[0])))
    assert [s for _, s, _ in seqs[b"even"]] == [0, 1, 2]
    assert [s for _, s, _ in seqs[b"odd"]] == [0, 1, 2]
    assert len({o for o, _, _ in seqs[b"even"]}) == 1
    assert seqs[b"even"][0][0] != seqs[b"odd"][0][0] == tx.origin([b"odd"])
    assert rx.stats["lost"] == 0 and tx.stats["sent"] == 6


# ---- socket patterns, in one process ----


def test_push_pull_workers(ctx, endpoints):
    push = bounded(ctx.socket(zmq.PUSH))
    ep = bind(push, endpoints.new("tcp"))
    shakes = Handshakes(push)
    workers = [bounded(ctx.socket(zmq.PULL)) for _ in range(3)]
    receivers = [wz.Receiver(w) for w in workers]
    for w in workers:
        w.connect(ep)
    shakes.wait(3)
    shakes.close()
    tx = wz.Sender(push)
    for i in range(30):
        tx.send(np.full(1000, i), checksum=True)
    got = {}
    for rx in receivers:
        assert rx.on_gap == "off"
        for _ in range(10):  # round-robin over three connected workers
            arr = rx.recv()
            got[rx.last_seq] = int(arr[0])
    assert got == {i: i for i in range(30)}


def test_pub_sub_topics(ctx, endpoints):
    pub = bounded(ctx.socket(zmq.XPUB))
    pub.setsockopt(zmq.XPUB_VERBOSE, 1)
    ep = bind(pub, endpoints.new("ipc"))
    subs = {}
    for topic in (b"a", b"b"):
        s = bounded(ctx.socket(zmq.SUB))
        s.setsockopt(zmq.SUBSCRIBE, topic)
        subs[topic] = (s, wz.Receiver(s, envelope=1))
        s.connect(ep)
    for _ in subs:  # XPUB shows each subscription: no message is sent before it
        assert pub.recv()[:1] == b"\x01"
    tx = wz.Sender(pub)
    for i in range(20):
        tx.send(np.full(3, i), envelope=[b"a" if i % 4 else b"b"])
    for topic, (_, rx) in subs.items():
        want = [i for i in range(20) if (i % 4 != 0) == (topic == b"a")]
        for k, i in enumerate(want):
            env, arr = rx.recv()
            assert env == [topic] and rx.last_seq == k
            same(arr, np.full(3, i))
        assert rx.stats["lost"] == 0


def test_router_dealer_rpc(ctx, endpoints):
    """Array RPC: a ROUTER server and three DEALER clients; each client sees its own
    contiguous sequence of replies, so the default gap check raises nothing."""
    router = bounded(ctx.socket(zmq.ROUTER))
    server_rx, server_tx = wz.Receiver(router), wz.Sender(router)
    ep = bind(router, endpoints.new("tcp"))
    assert server_rx.envelope == 1
    clients = []
    for k in range(3):
        d = bounded(ctx.socket(zmq.DEALER))
        rx = wz.Receiver(d)
        d.connect(ep)
        clients.append((k, d, wz.Sender(d), rx))
    for rnd in range(4):
        for k, _, tx, _ in clients:
            tx.send(np.full((50, 50), 10.0 * k + rnd))
        for _ in clients:
            env, arr = server_rx.recv()
            server_tx.send(arr * 2, envelope=env)
        for k, _, _, rx in clients:
            same(rx.recv(), np.full((50, 50), 2 * (10.0 * k + rnd)))
    assert server_rx.stats["lost"] == 0
    for *_, rx in clients:
        assert rx.stats == {"received": 4, "lost": 0, "reordered": 0, "duplicated": 0, "refused": 0}


def test_req_rep(ctx, endpoints):
    rep = bounded(ctx.socket(zmq.REP))
    req = bounded(ctx.socket(zmq.REQ))
    req.connect(bind(rep, endpoints.new("ipc")))
    for i in range(3):
        wz.send_array(req, np.arange(i + 1))
        wz.send_array(rep, wz.recv_array(rep) + 1)
        same(wz.recv_array(req), np.arange(i + 1) + 1)


def test_slow_subscriber_loss_is_counted(ctx, endpoints):
    """A slow SUB behind tiny high-water marks: ZeroMQ drops most messages without a
    word; the sequence numbers count every one."""
    pub = bounded(ctx.socket(zmq.XPUB))
    pub.setsockopt(zmq.SNDHWM, 2)
    ep = bind(pub, endpoints.new("tcp"))
    sub = bounded(ctx.socket(zmq.SUB))
    sub.setsockopt(zmq.RCVHWM, 2)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    rx = wz.Receiver(sub, on_gap="count")
    sub.connect(ep)
    assert pub.recv()[:1] == b"\x01"
    tx = wz.Sender(pub)
    for i in range(200):
        tx.send(np.full(20_000, i))  # 160 KB each: the pipes fill at once
    received = 0
    while sub.poll(300):
        rx.recv()
        received += 1
        assert received <= 200
    tx.send(np.zeros(1))  # the last word: reveals loss at the end of the burst
    rx.recv()
    assert rx.stats["received"] == received + 1
    assert received < 200 and rx.stats["lost"] == 200 - received
    assert rx.stats["received"] + rx.stats["lost"] == 201


# ---- asyncio ----


def test_asyncio(endpoints):
    async def main():
        ctx = zmq.asyncio.Context()
        try:
            a = bounded(ctx.socket(zmq.PAIR))
            b = bounded(ctx.socket(zmq.PAIR))
            ep = bind(a, endpoints.new("ipc"))
            rx = wz.Receiver(b)
            b.connect(ep)
            tx = wz.Sender(a)
            arrs = [make("<f8", (8,)), make("<i4", (BIG // 4,)), make(">c16", (40, 30), "F")]
            recv = asyncio.ensure_future(rx.recv())  # waiting before anything is sent
            await asyncio.sleep(0.05)
            for arr in arrs:
                await tx.send(arr)
            same(await recv, arrs[0])
            same(await rx.recv(), arrs[1])
            out = np.empty((40, 60), dtype=">c16")[:, ::2]  # any layout
            assert await rx.recv(out=out) is out
            same(out, arrs[2])
            await wz.send_array(a, arrs[0])
            same(await wz.recv_array(b), arrs[0])
            await wz.send_many(a, {"x": arrs[1]})
            same((await wz.recv_many(b))["x"], arrs[1])
            # concurrent receivers on other sockets keep working
            b.setsockopt(zmq.RCVTIMEO, 100)
            with pytest.raises(zmq.Again):
                await rx.recv()
            with pytest.raises(zmq.Again):
                await wz.recv_array(b, flags=zmq.DONTWAIT)
            a.send_multipart([b"junk"])
            with pytest.raises(wirearray.MalformedFrameError):
                await rx.recv()
            await tx.send(arrs[0])
            same(await rx.recv(), arrs[0])
            assert rx.stats["refused"] == 1 and rx.stats["lost"] == 0
        finally:
            ctx.destroy(linger=0)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_asyncio_send_waits_for_room(endpoints):
    """A send that meets the high-water mark waits for POLLOUT instead of failing."""

    async def main():
        ctx = zmq.asyncio.Context()
        try:
            push = bounded(ctx.socket(zmq.PUSH))
            push.setsockopt(zmq.SNDHWM, 1)
            pull = bounded(ctx.socket(zmq.PULL))
            pull.setsockopt(zmq.RCVHWM, 1)
            rx = wz.Receiver(pull)
            pull.connect(bind(push, endpoints.new("ipc")))
            tx = wz.Sender(push)

            async def produce():
                for i in range(20):
                    await tx.send(np.full(100_000, i))

            task = asyncio.ensure_future(produce())
            await asyncio.sleep(0.1)
            assert not task.done()  # blocked on the high-water mark, the loop free
            for i in range(20):
                same(await rx.recv(), np.full(100_000, i))
            await task
        finally:
            ctx.destroy(linger=0)

    asyncio.run(asyncio.wait_for(main(), 60))


# ---- CURVE (docs/SECURITY.md) ----


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq built without CURVE")
def test_curve_admits_only_known_keys(ctx, endpoints):
    from zmq.auth.thread import ThreadAuthenticator

    server_public, server_secret = zmq.curve_keypair()
    good_public, good_secret = zmq.curve_keypair()
    bad_public, bad_secret = zmq.curve_keypair()

    class Admitted:
        def callback(self, domain: str, key: bytes) -> bool:
            return key == good_public

    auth = ThreadAuthenticator(ctx)
    auth.start()
    try:
        auth.configure_curve_callback(domain="*", credentials_provider=Admitted())
        server = bounded(ctx.socket(zmq.PULL))
        server.curve_secretkey, server.curve_publickey = server_secret, server_public
        server.curve_server = True
        rx = wz.Receiver(server)
        ep = bind(server, endpoints.new("tcp"))

        def client(public: bytes, secret: bytes) -> wz.Sender:
            s = bounded(ctx.socket(zmq.PUSH))
            s.curve_secretkey, s.curve_publickey = secret, public
            s.curve_serverkey = server_public
            s.connect(ep)
            return wz.Sender(s)

        bad = client(bad_public, bad_secret)  # kept: a closed socket drops its queue
        bad.send(np.ones(3))
        plain = bounded(ctx.socket(zmq.PUSH))
        plain.connect(ep)
        wz.send_array(plain, np.ones(3))
        assert server.poll(500) == 0, "a client without an admitted key got through"
        good = client(good_public, good_secret)
        good.send(np.arange(3.0))
        same(rx.recv(), np.arange(3.0))
        assert server.poll(200) == 0
        assert rx.stats["received"] == 1 and rx.stats["refused"] == 0
    finally:
        auth.stop()


def test_interrupted_receive_leaves_a_message_boundary(inproc, monkeypatch):
    """An exception between two parts (here a KeyboardInterrupt before the tail part is
    read) discards the rest of that message: the next receive reads the next one."""
    a, b = inproc
    wz.send_array(a, BIG_ARR, checksum=True)  # origin, header, payload, tail
    wz.send_array(a, np.arange(3.0))
    real = _zmq_read._read_tail

    def interrupted(reader, tail_len):
        monkeypatch.setattr(_zmq_read, "_read_tail", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(_zmq_read, "_read_tail", interrupted)
    with pytest.raises(KeyboardInterrupt):
        wz.recv_array(b)
    same(wz.recv_array(b), np.arange(3.0))


@pytest.mark.skipif(np.__version__ < "2", reason="numpy 1.x has at most 32 dimensions")
def test_up_to_64_dimensions_by_default_and_a_refusal_costs_one_message(inproc):
    a, b = inproc
    for ndim in (33, 64):
        x = np.arange(6.0).reshape((2, 3) + (1,) * (ndim - 2))
        wz.send_array(a, x)
        got = wz.recv_array(b)
        assert got.shape == x.shape and np.array_equal(got, x)
    rx = wz.Receiver(b, max_ndim=32)
    wz.send_array(a, np.ones((1,) * 33))
    with pytest.raises(wirearray.FrameTooLargeError, match="max_ndim=32"):
        rx.recv()
    wz.send_array(a, np.arange(2.0))
    assert rx.recv().tolist() == [0.0, 1.0]
