"""bool payloads on the wire: one byte, 0 or 1 (docs/FORMAT.md section 3).

A numpy bool array whose memory holds other bytes (``np.array([0, 1, 2, 4, 255],
"u1").view(bool)``) goes out as 0 and 1 on every encode path -- the codec's frames
and messages, the compiled whole-frame path, ``.npy`` records, channels (blocking,
asyncio), datagrams and ZeroMQ -- with both implementations, whatever the layout or
size; the caller's array is never changed.  The wire bytes are read back with the
pure-Python header parser, not with the decoder under test.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import numpy as np
import pytest

import wirearray
from wirearray import _format as F
from wirearray import aio
from wirearray.codec import ONE_COPY_BYTES, Decoder, Encoder
from wirearray.npy import NpyEncoder

U8 = np.uint8
DIRTY = np.array([0, 1, 2, 4, 255], U8).view(bool)


def dirty(shape, seed: int = 0) -> np.ndarray:
    """A bool array of ``shape`` whose bytes include 0, 1 and others (2..255)."""
    r = np.random.default_rng(seed)
    raw = r.integers(0, 256, size=shape, dtype=U8)
    raw[r.random(shape) < 0.4] = 0
    raw.flat[: min(raw.size, 5)] = [0, 1, 2, 4, 255][: min(raw.size, 5)]
    return raw.view(bool)


def layouts(a: np.ndarray) -> dict[str, np.ndarray]:
    out = {"c": a}
    if a.ndim >= 2:
        out["fortran"] = np.asfortranarray(a)
        out["transposed"] = a.T
        out["strided"] = a[:, ::2]
    if a.ndim >= 1:
        out["negative"] = a[::-1]
    return out


def wire_payloads(wire: bytes) -> list[tuple[bytes, bool]]:
    """(payload bytes, Fortran flag) of each ARRAY frame in a wire-format byte string."""
    out, pos = [], 0
    while pos < len(wire):
        head = wire[pos : pos + F.MIN_HEADER]
        h = F.header_length(head)
        kind, _, flags, _, length, _, _, _ = F.parse_header(wire[pos : pos + h])
        if kind == F.KIND_ARRAY:
            out.append((wire[pos + h : pos + h + length], bool(flags & F.FLAG_FORTRAN)))
        pos += h + length + F.frame_tail(length, bool(flags & F.FLAG_CHECKSUM))
    return out


def expected(a: np.ndarray, fortran: bool) -> bytes:
    """The payload the format wants: ``byte != 0`` in the frame's memory order."""
    truth = a.view(U8) != 0
    return (
        np.asarray(truth, order="F" if fortran else "C")
        .astype(U8)
        .tobytes(order="F" if fortran else "C")
    )


def check_wire(wire: bytes, arrays: list[np.ndarray]) -> None:
    got = wire_payloads(wire)
    assert len(got) == len(arrays)
    for (payload, fortran), a in zip(got, arrays, strict=True):
        if a.dtype != bool:
            continue
        assert set(payload) <= {0, 1}
        assert payload == expected(a, fortran)


SHAPES = [(5,), (3, 4), (0,), (), (2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("checksum", [False, True])
@pytest.mark.parametrize("byteorder", ["network", "native"])
def test_encoder_frames(impl_name, shape, checksum, byteorder):
    for name, a in layouts(dirty(shape)).items():
        before = a.view(U8).copy()
        enc = Encoder(checksum=checksum, byteorder=byteorder, implementation=impl_name)
        check_wire(enc.encode(a, name=name), [a])
        small = enc.encode_small(a)  # the compiled whole-frame path (None: not taken)
        if small is not None:
            check_wire(small, [a])
        assert np.array_equal(a.view(U8), before)  # the caller's memory is untouched


def test_the_example_of_the_issue(impl_name):
    wire = Encoder(implementation=impl_name).encode(DIRTY)
    assert wire_payloads(wire) == [(bytes([0, 1, 1, 1, 1]), False)]
    small = Encoder(implementation=impl_name).encode_small(DIRTY)
    assert small is None or small == wire
    # a clean array keeps the zero-copy path: its own memory is the payload
    clean = np.array([True, False, True])
    parts = next(Encoder(implementation=impl_name).frame(clean))
    assert any(isinstance(p, np.ndarray) and np.shares_memory(p, clean) for p in parts)


@pytest.mark.parametrize("chunk_bytes", [4096, 1 << 20])
@pytest.mark.parametrize("where", ["start", "end", "nowhere"])
def test_large_arrays_through_the_staging_buffer(impl_name, chunk_bytes, where):
    # larger than one copy (ONE_COPY_BYTES) and than the staging buffer: chunked
    n = ONE_COPY_BYTES + 3 * 4096 + 17
    raw = (np.arange(n) % 2).astype(U8)
    if where == "start":
        raw[3] = 7
    elif where == "end":
        raw[-1] = 128
    a = raw.view(bool)
    enc = Encoder(checksum=True, chunk_bytes=chunk_bytes, implementation=impl_name)
    for view in (a, a[::-1], a.reshape(-1, 1)[:, 0], np.asfortranarray(a[: n - 17].reshape(4, -1))):
        lists, wire = 0, b""
        for parts in enc.frame(view):  # each list is valid until the next one is asked
            lists += 1
            wire += b"".join(bytes(p) for p in parts)
            borrowed = any(isinstance(p, np.ndarray) and np.shares_memory(p, view) for p in parts)
        check_wire(wire, [view])
        if where == "nowhere" and view.flags.c_contiguous:  # zero copy: the array itself
            assert lists == 1 and borrowed
    assert raw[-1] == (128 if where == "end" else 0) and raw[3] == (7 if where == "start" else 1)


def test_messages_and_npy_records(impl_name):
    arrays = {"a": dirty((4, 3), 1), "b": dirty((7,), 2)[::2], "c": np.arange(3.0)}
    wire = Encoder(implementation=impl_name).encode_message(arrays)
    check_wire(wire, [arrays["a"], arrays["b"], arrays["c"]])
    for a in layouts(dirty((6, 5), 3)).values():
        record = NpyEncoder(implementation=impl_name).encode(a)
        header_end = record.index(b"\n") + 1
        payload = record[header_end:]
        fortran = b"'fortran_order': True" in record[:header_end]
        assert payload == expected(a, fortran)


def test_receivers_deliver_the_bytes_that_arrive(impl_name):
    # docs/FORMAT.md section 3: a receiver stores what arrives (as numpy's own view of
    # such bytes does); a forged frame with a byte 2 arrives with it
    frame = bytearray(Encoder(checksum=False, implementation=impl_name).encode(DIRTY))
    h = F.header_length(frame[:64])
    frame[h : h + 5] = bytes([0, 1, 2, 4, 255])
    dec = Decoder(implementation=impl_name)
    dec.receive_data(bytes(frame))
    got = dec.next_event().array
    assert got.dtype == bool and got.view(U8).tolist() == [0, 1, 2, 4, 255]


def _raw_reader(listener_sock: socket.socket, box: dict) -> None:
    conn, _ = listener_sock.accept()
    with conn:
        data = bytearray()
        while chunk := conn.recv(1 << 16):
            data += chunk
    box["wire"] = bytes(data)


@pytest.mark.parametrize("layer", ["blocking", "asyncio"])
def test_channels(layer):
    arrays = [DIRTY, dirty((300, 400), 4), dirty((300, 400), 5)[:, ::3], dirty((40, 50), 6).T]
    srv = socket.create_server(("127.0.0.1", 0))
    box: dict = {}
    t = threading.Thread(target=_raw_reader, args=(srv, box))
    t.start()
    address = srv.getsockname()[:2]
    if layer == "blocking":
        ch = wirearray.connect(address, timeout=30)
        for a in arrays:
            ch.send(a)
        ch.send_many({"m": arrays[1]})
        ch.close(timeout=0)
    else:

        async def send() -> None:
            ch = await aio.connect(address, timeout=30)
            for a in arrays:
                await ch.send(a)
            await ch.send_many({"m": arrays[1]})
            await ch.close(timeout=0)

        asyncio.run(send())
    t.join(30)
    srv.close()
    check_wire(box["wire"], [*arrays, arrays[1]])


def test_datagrams():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(30)
    with wirearray.DatagramChannel(remote=rx.getsockname(), checksum=True) as tx:
        for a in (DIRTY, dirty((50, 60), 7)[::2]):
            tx.send(a)
            check_wire(rx.recv(1 << 16), [a])
    rx.close()


def test_zeromq(impl_name):
    from zmqutil import bounded, require_zmq

    require_zmq()
    import zmq

    from wirearray import zmq as wz

    ctx = zmq.Context()
    try:
        tx, rx = bounded(ctx.socket(zmq.PAIR)), bounded(ctx.socket(zmq.PAIR))
        tx.bind("inproc://bool-wire")
        rx.connect("inproc://bool-wire")
        big = dirty((400, 300), 8)  # split into parts, staged when converted
        cases = [DIRTY, big, big[:, ::2], np.asfortranarray(big), dirty((3, 4), 9).T]
        sender = wz.Sender(tx, checksum=True, implementation=impl_name)
        for a in cases:
            for how in ("sender", "send_array", "send_many"):
                if how == "sender":
                    sender.send(a)
                elif how == "send_array":  # the package's implementation
                    wz.send_array(tx, a, copy=False)
                else:
                    sender.send_many({"x": a})
                parts = rx.recv_multipart()
                check_wire(b"".join(parts[1:]), [a])
    finally:
        ctx.destroy(linger=0)
