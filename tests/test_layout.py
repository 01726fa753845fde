"""Receiving into an ``out=`` of any layout: strided slices, transposes, negative
strides, C order for a Fortran frame and Fortran order for a C frame, through the
codec (fed whole, byte by byte, in random pieces and by the recv_into protocol), the
.npy framing, TCP and UNIX streams on both loops, and UDP.  Large payloads are several
times the read-ahead that serves as the staging buffer, so pieces end inside elements.

Every destination sits in a larger array filled with a sentinel: what the frame did
not address must keep it (no write outside ``out``), and arrays received before keep
their values.
"""

from __future__ import annotations

import io
import itertools
import random
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wirearray
from helpers import random_array
from netutil import WAIT, Net, finish, has_ipv6, run_peer
from wirearray import (
    BufferMismatchError,
    DatagramChannel,
    StreamBrokenError,
    TruncatedStreamError,
)
from wirearray.codec import NEED_DATA, READAHEAD_BYTES, Array, Decoder, Encoder, EndOfStream
from wirearray.npy import NpyDecoder

DTYPES = ["bool", "u1", ">i2", "<f2", "<i4", ">f4", "<f8", ">u8", "<c8", ">c16"]
SMALL = (7, 5)
LARGE = (613, 521)  # 319 373 elements: 1.2-19 x READAHEAD_BYTES; odd, so pieces split items


def sentinel_byte(dt: np.dtype) -> int:
    return 1 if dt.kind == "b" else 0xA5


def in_sentinel(shape: tuple, dt: np.dtype, order: str = "C") -> np.ndarray:
    """A new array whose every byte is the sentinel."""
    n = int(np.prod(shape)) * dt.itemsize
    raw = np.full(n, sentinel_byte(dt), np.uint8)
    return raw.view(dt).reshape(shape, order=order)


def layouts(
    a: np.ndarray, out_dt: np.dtype
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Name -> (array to send, out, the array out is a view of), for a 2-d ``a``."""
    r, c = a.shape
    f = np.asfortranarray(a)
    cases = {}
    base = in_sentinel((r, 2 * c), out_dt)
    cases["strided-columns"] = (a, base[:, ::2], base)
    base = in_sentinel((r, c), out_dt)
    cases["C-out-for-F-frame"] = (f, base, base)
    base = in_sentinel((r, c), out_dt, "F")
    cases["F-out-for-C-frame"] = (a, base, base)
    base = in_sentinel((r, c), out_dt)
    cases["negative-strides"] = (a, base[::-1, ::-1], base)
    base = in_sentinel((r + 3, c), out_dt, "F")
    cases["fortran-slice-F-frame"] = (f, base[1:-2], base)
    base = in_sentinel((c, 2, r), out_dt)
    cases["transposed"] = (a, base[:, 1, :].T, base)
    base = in_sentinel((2 * r * c,), out_dt)
    cases["1-d-reversed"] = (a.reshape(-1), base[::-2], base)
    raw = in_sentinel((2 * r * c * out_dt.itemsize + 1,), np.dtype("u1"))
    if out_dt.kind == "b":
        raw[...] = 1
    base = raw[1:].view(out_dt).reshape(r, 2 * c)  # misaligned for every item size > 1
    cases["unaligned-strided"] = (a, base[:, 1::2], base)
    base = in_sentinel((0, 2 * c), out_dt)
    cases["empty"] = (a[:0], base[:, ::2], base)
    return cases


def contiguous(a: np.ndarray) -> bool:
    return a.flags.c_contiguous or a.flags.f_contiguous


def bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def check_landed(out: np.ndarray, base: np.ndarray, sent: np.ndarray) -> None:
    """``out`` holds ``sent``'s values bit for bit; the rest of ``base`` is untouched."""
    want = sent.astype(out.dtype)
    assert bits(out) == bits(want)
    out[...] = np.frombuffer(bytes([sentinel_byte(out.dtype)]) * out.dtype.itemsize, out.dtype)[0]
    assert not np.any(base.reshape(-1).view(np.uint8) != sentinel_byte(out.dtype))
    out[...] = want  # as received, for checks that follow


def feed(
    stream: bytes, outs: list, mode: str, seed: int, impl_name: str, dec: Decoder | None = None
) -> list:
    """Decode ``stream`` (ending with an END frame) into ``outs`` in order, fed as
    ``mode`` says, to ``dec`` (a new Decoder by default); return the delivered
    arrays.  In "recv" mode (the transports'
    protocol), check that no buffer the decoder names for a strided out is a window
    of it or larger than the read-ahead."""
    rng = random.Random(seed)
    if dec is None:
        dec = Decoder(implementation=impl_name)
    todo = list(outs)
    dec.expect(out=todo.pop(0) if todo else None)
    got: list = []

    def drain() -> None:
        while (ev := dec.next_event()) is not NEED_DATA:
            if isinstance(ev, EndOfStream):
                got.append(ev)
                return
            assert isinstance(ev, Array)
            got.append(ev.array)
            dec.expect(out=todo.pop(0) if todo else None)

    if mode == "recv":
        pos = 0
        while pos < len(stream):
            buf = dec.get_buffer()
            mem = np.frombuffer(buf, np.uint8)
            windows = [np.shares_memory(mem, o) for o in outs]
            for o, window in zip(outs, windows, strict=True):
                assert not (window and o.size > 1 and not contiguous(o))
            if not any(windows):
                assert len(buf) <= READAHEAD_BYTES
            want = rng.choice([1, 3, 7, 100, 4099, 70_001, 1 << 20, 1 << 30])
            n = min(len(buf), want, len(stream) - pos)
            buf[:n] = stream[pos : pos + n]  # what recv_into does
            dec.advance(n)
            pos += n
            drain()
    else:
        if mode == "whole":
            cuts = [0, len(stream)]
        elif mode == "bytes":
            cuts = list(range(len(stream) + 1))
        else:  # random pieces
            cuts = sorted({0, len(stream), *(rng.randrange(len(stream)) for _ in range(40))})
        for a, b in itertools.pairwise(cuts):
            dec.receive_data(stream[a:b])
            drain()
    dec.receive_data(b"")
    drain()
    assert isinstance(got[-1], EndOfStream)
    return [g for g in got if not isinstance(g, EndOfStream)]


@pytest.mark.parametrize("byteorder", ["network", "native"])
@pytest.mark.parametrize("out_order", ["=", ">"])
@pytest.mark.parametrize("mode", ["whole", "bytes", "split", "recv"])
def test_small_frames_into_every_layout(impl_name, byteorder, out_order, mode):
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        a = random_array(dtype, SMALL, rng)
        out_dt = a.dtype.newbyteorder(out_order)
        for name, (sent, out, base) in layouts(a, out_dt).items():
            enc = Encoder(byteorder=byteorder, checksum=name.startswith("C"))
            stream = enc.encode(sent) + enc.end()
            (got,) = feed(stream, [out], mode, seed=len(name), impl_name=impl_name)
            assert got is out, name
            check_landed(out, base, sent)


@pytest.mark.parametrize("byteorder", ["network", "native"])
@pytest.mark.parametrize("mode", ["split", "recv"])
@pytest.mark.parametrize("dtype", ["bool", "<f2", ">f8", "<c16"])
def test_large_frames_pass_through_the_read_ahead(impl_name, byteorder, mode, dtype):
    """Payloads 1.2-19 x READAHEAD_BYTES, in pieces that end mid-element."""
    rng = np.random.default_rng(2)
    a = random_array(dtype, LARGE, rng)
    for name in ("strided-columns", "C-out-for-F-frame", "negative-strides", "transposed"):
        sent, out, base = layouts(a, a.dtype.newbyteorder("="))[name]
        enc = Encoder(byteorder=byteorder, checksum=True)
        stream = enc.encode(sent) + enc.end()
        (got,) = feed(stream, [out], mode, seed=3, impl_name=impl_name)
        assert got is out
        check_landed(out, base, sent)


@pytest.mark.parametrize("mode", ["whole", "split", "recv"])
def test_a_stream_into_interleaved_outs_keeps_earlier_arrays(impl_name, mode):
    """Frames into the even and the odd columns of one array, a contiguous out between:
    each lands in its own elements, and the ones received before keep their values."""
    rng = np.random.default_rng(4)
    shape = (300, 257)
    sent = [random_array("<f8", shape, rng) for _ in range(3)]
    base = in_sentinel((300, 514), np.dtype("<f8"))
    plain = np.empty(shape)
    outs = [base[:, ::2], plain, base[:, 1::2]]
    enc = Encoder(checksum=True)
    stream = b"".join(enc.encode(s) for s in sent) + enc.end()
    got = feed(stream, outs, mode, seed=5, impl_name=impl_name)
    assert [g is o for g, o in zip(got, outs, strict=True)] == [True] * 3
    assert bits(base[:, ::2]) == bits(sent[0]) and bits(plain) == bits(sent[1])
    assert bits(base[:, 1::2]) == bits(sent[2])


def test_a_message_into_strided_outs(impl_name):
    rng = np.random.default_rng(6)
    x, y = random_array(">i4", (40, 30), rng), random_array("<c8", (90_000,), rng)
    stream = Encoder(checksum=True).encode_message({"x": x, "y": y})
    for mode in ("whole", "split", "recv"):
        xb, yb = in_sentinel((40, 60), np.dtype("i4")), in_sentinel((180_000,), np.dtype("c8"))
        dec = Decoder(implementation=impl_name)
        dec.expect(out={"x": xb[:, ::2], "y": yb[::-2]})
        chunks = (
            [stream]
            if mode == "whole"
            else [stream[i : i + 4097] for i in range(0, len(stream), 4097)]
        )
        events = []
        for chunk in chunks:
            dec.receive_data(chunk)
            while (ev := dec.next_event()) is not NEED_DATA:
                events.append(ev)
        (msg,) = events
        assert np.shares_memory(msg.arrays["x"], xb) and np.shares_memory(msg.arrays["y"], yb)
        check_landed(msg.arrays["x"], xb, x)
        check_landed(msg.arrays["y"], yb, y)


def test_npy_records_into_other_layouts(impl_name):
    """numpy's own .npy writer as the peer: a Fortran record into a C out, a C record
    into a strided one."""
    rng = np.random.default_rng(7)
    a = random_array(">f8", (200, 333), rng)
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asfortranarray(a))
    np.lib.format.write_array(buf, a)
    stream = buf.getvalue()
    for mode in ("whole", "split", "recv"):
        c_out = in_sentinel(a.shape, np.dtype("f8"))
        base = in_sentinel((200, 666), np.dtype("<f8"))
        dec = NpyDecoder(implementation=impl_name)
        got = feed(stream, [c_out, base[:, ::2]], mode, seed=8, impl_name=impl_name, dec=dec)
        assert got[0] is c_out and got[1] is not None
        check_landed(c_out, c_out, a)
        check_landed(base[:, ::2], base, a)


@pytest.mark.parametrize("cut_at", ["header", "first-item", "mid-item", "mid-payload", "trailer"])
def test_a_truncated_payload_into_a_strided_out(impl_name, cut_at):
    a = random_array("<c16", (300, 101), np.random.default_rng(9))
    frame = Encoder(checksum=True).encode(a)
    h = int.from_bytes(frame[10:12], "big")
    k = {
        "header": h - 1,
        "first-item": h + 16,
        "mid-item": h + 16 * 1000 + 5,
        "mid-payload": h + a.nbytes // 2 + 3,
        "trailer": h + a.nbytes + 2,
    }[cut_at]
    base = in_sentinel((300, 202), np.dtype("c16"))
    dec = Decoder(implementation=impl_name)
    dec.expect(out=base[:, ::2])
    dec.receive_data(frame[:k])
    assert dec.next_event() is NEED_DATA
    dec.receive_data(b"")
    with pytest.raises(TruncatedStreamError) as info:
        dec.next_event()
    assert info.value.received == k
    assert info.value.expected == (None if cut_at == "header" else len(frame))
    with pytest.raises(StreamBrokenError):
        dec.next_event()
    assert set(bits(base[:, 1::2])) == {0xA5}  # the gaps: never written


def test_read_only_and_self_overlapping_outs_are_refused(impl_name):
    a = np.arange(20.0).reshape(4, 5)
    frame = Encoder().encode(a)
    ro = np.zeros((4, 10))[:, ::2]
    ro.flags.writeable = False
    shared = np.lib.stride_tricks.as_strided(np.zeros(5), (4, 5), (0, 8), writeable=True)
    for bad, why in ((ro, "read-only"), (shared, "share memory")):
        dec = Decoder(implementation=impl_name)
        dec.expect(out=bad)
        dec.receive_data(frame)
        with pytest.raises(BufferMismatchError, match=why):
            dec.next_event()
        assert not bad.any()
        good = np.zeros((5, 4)).T  # the stream is intact: another out takes the frame
        dec.expect(out=good)
        assert dec.next_event().array is good and np.array_equal(good, a)


@st.composite
def random_layouts(draw):
    """(array to send, out of any layout, base out is a view of)."""
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    a = random_array(dtype, shape, np.random.default_rng(draw(st.integers(0, 99))))
    if draw(st.booleans()):
        a = np.asfortranarray(a)
    perm = draw(st.permutations(range(ndim)))
    steps = draw(st.lists(st.sampled_from([1, 2, -1, -2, 3]), min_size=ndim, max_size=ndim))
    base_shape = tuple(shape[p] * abs(s) for p, s in zip(perm, steps, strict=True))
    out_dt = dtype.newbyteorder(draw(st.sampled_from("<>")))
    base = in_sentinel(base_shape, out_dt, draw(st.sampled_from("CF")))
    view = base[tuple(slice(None, None, s) for s in steps)]
    out = view.transpose(np.argsort(perm))
    assert out.shape == shape
    return a, out, base


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=random_layouts(),
    byteorder=st.sampled_from(["network", "native"]),
    cuts=st.lists(st.integers(0, 4000), max_size=12),
)
def test_random_layouts_and_pieces(impl_name, case, byteorder, cuts):
    a, out, base = case
    enc = Encoder(byteorder=byteorder, checksum=bool(len(cuts) % 2))
    stream = enc.encode(a) + enc.end()
    dec = Decoder(implementation=impl_name)
    dec.expect(out=out)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    events = []
    for lo, hi in itertools.pairwise(bounds):
        dec.receive_data(stream[lo:hi])
        while (ev := dec.next_event()) is not NEED_DATA:
            events.append(ev)
    assert events[0].array is out and isinstance(events[1], EndOfStream)
    check_landed(out, base, a)


# ---- over sockets ----

FAMILIES = ["ipv4", "unix"] + (["ipv6"] if has_ipv6() else [])

ECHO = """
import wirearray
with wirearray.listen(sys.argv[1], timeout=60) as listener:
    a = listener.address
    print(a if isinstance(a, str) else f"{a[0]}:{a[1]}" if ":" not in a[0] else f"[{a[0]}]:{a[1]}",
          flush=True)
    with listener.accept(timeout=60) as ch:
        for item in ch:
            ch.send_many(item) if isinstance(item, dict) else ch.send(item)
"""


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


@pytest.fixture(params=FAMILIES)
def address(request, tmp_path):
    return {"ipv4": "127.0.0.1:0", "ipv6": "[::1]:0", "unix": f"unix:{tmp_path}/wa.sock"}[
        request.param
    ]


def test_channels_receive_into_every_layout(net, address):
    proc = run_peer(ECHO, address)
    addr = proc.stdout.readline().strip() if proc.stdout else ""
    if not addr:
        finish(proc)
    rng = np.random.default_rng(10)
    kept = []
    with net.connect(addr) as ch:
        for shape in (SMALL, LARGE):
            for dtype in ("<f2", ">c16", "u1"):
                a = random_array(dtype, shape, rng)
                for name, (sent, out, base) in layouts(a, a.dtype.newbyteorder("=")).items():
                    for byteorder in ("network", "native"):
                        ch.send(sent, byteorder=byteorder, checksum=byteorder == "native")
                        assert ch.recv(out=out) is out, name
                        check_landed(out, base, sent)
                    kept.append((out.copy(), out))
        ch.send_many({"x": a, "y": a[::-1]})
        xb, yb = (
            in_sentinel((a.shape[0], 2 * a.shape[1]), a.dtype),
            in_sentinel(a.shape, a.dtype, "F"),
        )
        msg = ch.recv_many(out={"x": xb[:, ::2], "y": yb})
        check_landed(msg["x"], xb, a)
        check_landed(msg["y"], yb, a[::-1])
    finish(proc)
    for copy, out in kept:  # arrays received before: untouched by later frames
        assert bits(copy) == bits(out)


def test_a_channel_cut_inside_a_strided_payload(net, address):
    from test_transport import raw_server

    enc = Encoder()
    first = random_array(">f8", (300, 300), np.random.default_rng(11))
    f1, f2 = enc.encode(first), enc.encode(first[::-1])
    cuts = [100, 64 + 300 * 300 * 4 + 3, len(f2) - 1]
    t, box = raw_server(address, [lambda c, k=k: c.sendall(f1 + f2[:k]) for k in cuts])
    for k in cuts:
        base1 = in_sentinel((300, 600), np.dtype("f8"))
        base2 = in_sentinel((300, 600), np.dtype("f8"))
        with net.connect(box["address"]) as ch:
            assert ch.recv(out=base1[:, ::2]) is not None
            check_landed(base1[:, ::2], base1, first)
            with pytest.raises(TruncatedStreamError) as info:
                ch.recv(out=base2[:, 1::2])
            assert info.value.received == k and info.value.expected == len(f2)
            with pytest.raises(StreamBrokenError):
                ch.recv()
        check_landed(base1[:, ::2], base1, first)  # the array before: intact
        assert set(bits(base2[:, ::2])) == {0xA5}
    t.join(WAIT)
    assert "error" not in box


def test_datagrams_into_every_layout():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT)
    senders = [DatagramChannel(remote=rx.address, byteorder=b) for b in ("network", "native")]
    try:
        rng = np.random.default_rng(12)
        for dtype in DTYPES:
            a = random_array(dtype, (40, 11), rng)
            for name, (sent, out, base) in layouts(a, a.dtype.newbyteorder(">")).items():
                for tx in senders:
                    tx.send(sent)
                    assert rx.recv(out=out) is out, name
                    check_landed(out, base, sent)
    finally:
        for ch in (*senders, rx):
            ch.close()


# A peer that sends a 256 MiB array without holding one: a 1 MiB block repeated by a
# zero stride (the encoder gathers it through its staging buffer).
SEND_REPEATED = """
import wirearray
blocks, byteorders = int(sys.argv[2]), sys.argv[3].split(",")
block = np.arange(2048 * 64, dtype=np.float64).reshape(2048, 64)
a = np.lib.stride_tricks.as_strided(block, (blocks, 2048, 64), (0, *block.strides))
with wirearray.connect(sys.argv[1], timeout=60) as ch:
    for byteorder in byteorders:
        ch.send(a, byteorder=byteorder)
"""


def test_a_256_mib_strided_receive_allocates_no_payload_sized_buffer():
    """The staging is the read-ahead: traced memory while 256 MiB arrive into a
    negative-stride view stays within a few read-aheads."""
    blocks = 256
    byteorders = ["network", "native"]
    block = np.arange(2048 * 64, dtype=np.float64).reshape(2048, 64)
    out_base = np.empty((blocks, 2048, 64))  # 256 MiB, allocated before tracing
    out = out_base[::-1]  # not contiguous: every byte passes through the staging
    peak = 0
    with wirearray.listen("127.0.0.1:0", timeout=WAIT) as listener:
        host, port = listener.address[:2]
        proc = run_peer(SEND_REPEATED, f"{host}:{port}", str(blocks), ",".join(byteorders))
        with listener.accept() as ch:
            tracemalloc.start()
            try:
                for _ in byteorders:
                    out_base[...] = 0
                    tracemalloc.reset_peak()
                    start = tracemalloc.get_traced_memory()[0]
                    assert ch.recv(out=out) is out
                    peak = max(peak, tracemalloc.get_traced_memory()[1] - start)
                    assert (out == block).all()
            finally:
                tracemalloc.stop()
            for _ in ch:  # to the end of the stream
                pass
        finish(proc)
    assert peak < 4 * READAHEAD_BYTES, f"peak traced memory {peak} bytes for a 256 MiB receive"
