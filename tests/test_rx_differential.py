"""Differential: a real Channel against the pure-Python decoder, on the same bytes.

Random streams of mixed frames -- small and large arrays of every dtype family
(integers, floats, complex, bool, datetime64/timedelta64, S, U, records), named
arrays, messages, both byte orders, checksums, Fortran order, END and ERROR frames --
are written raw, in random chunks with random pauses, into one end of a socketpair.
The other end is a ``Channel`` (with the compiled core: its one-call small-frame path
and refills, interleaved with the general path) received with a random mix of
``recv()``, ``recv(out=)`` of several layouts and byte orders, polls
(``timeout=0``), ``recv_event()`` and ``recv_many()``.  The reference is
``codec.Decoder(implementation="python")`` fed the same bytes: the same arrays, the
same error class at the same point, the same sequence number.  Mutated streams (bit
flips, truncation, forged lengths and sequence numbers) must give the same exception
class in both, never a hang or a crash.

The default run is bounded (a few dozen streams, seconds); set
WIREARRAY_RX_DIFF_STREAMS to run more (e.g. 2000 for an hour's soak).
"""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

import wirearray as wa
from wirearray import codec
from wirearray.exceptions import EndOfStreamError, PeerError, ProtocolError, WireError

STREAMS = int(os.environ.get("WIREARRAY_RX_DIFF_STREAMS", "24"))
WAIT = 10.0

DTYPES = [
    "i1", "u1", "<i2", ">u2", "<i4", ">i8", "<f2", ">f4", "<f8", ">c8", "<c16", "?",
    "<M8[ns]", ">m8[10ms]", "S5", "<U3", ">U2",
    np.dtype([("a", "<i4"), ("b", ">f8"), ("c", "S3")]),
]  # fmt: skip


def _array(rng: np.random.Generator, large: bool) -> np.ndarray:
    dt = np.dtype(DTYPES[rng.integers(len(DTYPES))])
    if large:
        shape: tuple[int, ...] = (int(rng.integers(9000, 20000)),)
    elif rng.random() < 0.2:  # a few KiB: still the small-frame path's, fills reads fast
        shape = (int(rng.integers(2, 9)), int(rng.integers(20, 120)))
    else:
        shape = tuple(int(x) for x in rng.integers(0, 5, size=int(rng.integers(0, 4))))
    raw = rng.integers(0, 256, size=int(np.prod(shape)) * dt.itemsize, dtype=np.uint8)
    if dt.kind == "U":
        n = int(np.prod(shape)) * dt.itemsize // 4  # numpy draws in native order only
        raw = rng.integers(32, 0x2FFF, size=n, dtype=np.uint32).astype("<u4")
        a = raw.view("<U1").reshape(-1)
        a = np.frombuffer(raw.tobytes(), dt.newbyteorder("<")).astype(dt) if dt.itemsize else a
        a = a.reshape(shape)
    elif dt.kind == "b":
        a = (raw % 2).astype("?").reshape(shape)
    elif dt.kind == "V":
        a = np.zeros(shape, dt)
        a["a"] = rng.integers(-1000, 1000, size=shape)
        a["b"] = rng.standard_normal(size=shape)
        a["c"] = b"xy"
    else:
        a = np.frombuffer(raw.tobytes(), dt).reshape(shape)
    if len(shape) > 1 and rng.random() < 0.3:
        a = np.asfortranarray(a)
    return a


def _stream(rng: np.random.Generator) -> tuple[bytes, list[int]]:
    """A random stream, as bytes, and the offsets where its frames end."""
    enc = codec.Encoder()
    out = bytearray()
    ends: list[int] = []
    # a long run of small frames now and then: the receiver falls behind its peer and
    # the compiled path refills the read-ahead itself (SmallRx.take)
    count = int(rng.integers(100, 400)) if rng.random() < 0.3 else int(rng.integers(1, 14))
    for _ in range(count):
        r = rng.random()
        byteorder = ("network", "native")[int(rng.integers(2))]
        checksum = bool(rng.integers(2))
        if r < 0.12:
            msg = {f"n{i}": _array(rng, rng.random() < 0.1) for i in range(int(rng.integers(0, 3)))}
            parts = enc.message(msg, byteorder=byteorder, checksum=checksum)
        else:
            name = "x" if rng.random() < 0.15 else None
            a = _array(rng, rng.random() < 0.08)
            parts = enc.frame(a, name=name, byteorder=byteorder, checksum=checksum)
        for bufs in parts:
            for p in bufs:
                out += bytes(p)
        ends.append(len(out))
    r = rng.random()
    if r < 0.6:
        out += enc.end()
    elif r < 0.7:
        out += enc.error(1, "gone")
    return bytes(out), ends


def _mutate(rng: np.random.Generator, data: bytes) -> bytes:
    b = bytearray(data)
    how = int(rng.integers(4))
    if how == 0:  # bit flips
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(len(b)))
            b[i] ^= 1 << int(rng.integers(8))
    elif how == 1:  # truncated
        del b[int(rng.integers(len(b))) :]
    elif how == 2:  # a forged payload length in the first header (CRC recomputed or not)
        b[16:24] = int(rng.integers(0, 1 << 62)).to_bytes(8, "big")
    else:  # a forged sequence number in the first header
        b[24:28] = int(rng.integers(1, 1 << 32)).to_bytes(4, "big")
    return bytes(b)


def _reference(data: bytes) -> tuple[list, type | None, int]:
    """The pure-Python decoder over ``data`` then EOF: the events before the first
    error, the error's class (None after EndOfStream/ERROR), its seq at the end."""
    dec = codec.Decoder(implementation="python")
    events: list = []
    dec.receive_data(data)
    dec.receive_data(b"")
    try:
        while True:
            ev = dec.next_event()
            if ev is codec.NEED_DATA:
                return events, None, dec.seq
            if isinstance(ev, codec.EndOfStream):
                return events, EndOfStreamError, dec.seq
            if isinstance(ev, codec.ErrorReport):
                return events, PeerError, dec.seq
            events.append(ev)
    except WireError as exc:
        return events, type(exc), dec.seq


def _writer(
    sock: socket.socket, data: bytes, ends: list[int], rng: np.random.Generator
) -> threading.Thread:
    """Write ``data`` in random pieces, some ending at frame boundaries (``ends``):
    a read that ends on one leaves the compiled path to refill the read-ahead."""
    n = max(8, len(data) // 400)
    cuts = {0, len(data), *(int(x) for x in rng.integers(0, len(data) + 1, size=n))}
    if ends and rng.random() < 0.5:
        cuts = {0, len(data), *(ends[int(i)] for i in rng.integers(0, len(ends), size=n))}
    cuts = sorted(cuts)
    pauses = rng.random(len(cuts)) < 8 / n * 0.3

    def run() -> None:
        try:
            for k in range(len(cuts) - 1):
                sock.sendall(data[cuts[k] : cuts[k + 1]])
                if pauses[k]:
                    time.sleep(0.002)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(WAIT)
            while sock.recv(65536):  # what the receiver reports (ACK, ERROR)
                pass
        except OSError:
            pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _out_like(rng: np.random.Generator, a: np.ndarray) -> np.ndarray | None:
    """An out= for ``a``: C, Fortran, strided, other byte order -- or None."""
    r = rng.random()
    if r < 0.4:
        return None
    dt = a.dtype
    if r < 0.55 and dt.kind in "iufcmMU" and dt.itemsize > 1:
        dt = dt.newbyteorder("S")
    if r < 0.7 or a.ndim == 0:
        return np.zeros(a.shape, dt, order="F" if rng.random() < 0.5 else "C")
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dt)
    return big[..., ::2]


def _same_array(got: np.ndarray, want: np.ndarray) -> None:
    """Same shape, dtype (any byte order) and values, compared as this host's bytes
    (NaN payloads and record padding included)."""
    assert got.shape == want.shape
    native = want.dtype.newbyteorder("=")
    assert got.dtype.newbyteorder("=") == native
    assert np.ascontiguousarray(got).astype(native).tobytes() == (
        np.ascontiguousarray(want).astype(native).tobytes()
    )


def _drive(ch: wa.Channel, rng: np.random.Generator, ref: list, ref_err: type | None) -> None:
    """Receive what ``ref`` says comes, with a random mix of calls; then the error."""
    for ev in ref:
        if isinstance(ev, codec.Message):
            got = ch.recv_many() if rng.random() < 0.5 else ch.recv_event().arrays
            assert list(got) == list(ev.arrays)
            for k, a in ev.arrays.items():
                _same_array(got[k], a)
            continue
        want = ev.array
        out = _out_like(rng, want)
        how = rng.random()
        if how < 0.25:  # polls until the frame is whole, then the same out=
            for _ in range(int(rng.integers(1, 4))):
                ch.timeout = 0
                try:
                    got = ch.recv(out=out)
                    break
                except TimeoutError:
                    pass
                finally:
                    ch.timeout = WAIT
            else:
                got = ch.recv(out=out)
        elif how < 0.4:
            got = ch.recv_event(out=out).array
        else:
            got = ch.recv(out=out)
        if out is not None:
            assert got is out
        _same_array(got, want)
    if ref_err is None:  # EOF at a frame boundary without END
        with pytest.raises(wa.TruncatedStreamError):
            ch.recv()
        return
    with pytest.raises(WireError) as info:
        ch.recv_event()
    assert type(info.value) is ref_err, (type(info.value), ref_err, info.value)


def _run(seed: int, mutate: bool) -> None:
    rng = np.random.default_rng(seed)
    data, ends = _stream(rng)
    if mutate:
        data = _mutate(rng, data)
    ref, ref_err, ref_seq = _reference(data)
    s1, s2 = socket.socketpair()
    t = _writer(s1, data, ends, rng)
    ch = wa.Channel(s2, timeout=WAIT, close_timeout=0.5)
    try:
        _drive(ch, rng, ref, ref_err)
        if not issubclass(ref_err or WireError, ProtocolError):
            assert ch._core.dec.seq == ref_seq or ch._core.dec.broken
    finally:
        ch.abort() if not ch.closed else None
        s2.close()
        t.join(WAIT)
        s1.close()
        assert not t.is_alive()


@pytest.mark.parametrize("seed", range(STREAMS))
def test_channel_matches_the_reference(seed):
    _run(seed, mutate=False)


@pytest.mark.parametrize("seed", range(STREAMS))
def test_mutated_stream_same_error(seed):
    _run(10_000 + seed, mutate=True)
