"""Reference results and array factories for the byte-order tests."""

from __future__ import annotations

import numpy as np

#: Every dtype wirearray supports, by name.
SUPPORTED = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


def random_array(dtype, shape, rng: np.random.Generator) -> np.ndarray:
    """An array of random *bit patterns* (NaN payloads, denormals, -0.0 included).

    Booleans get 0/1 bytes only, as numpy requires.
    """
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "b":
        return (rng.integers(0, 2, size=shape)).astype(dt)
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    return raw.view(dt).reshape(shape)


def same_bytes(x: np.ndarray, y: np.ndarray) -> bool:
    """True when x and y have the same dtype, shape and element bytes (bit-exact)."""
    return (
        x.dtype == y.dtype
        and x.shape == y.shape
        and np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()
    )


def big(dt) -> np.dtype:
    return np.dtype(dt).newbyteorder(">")


def native(dt) -> np.dtype:
    return np.dtype(dt).newbyteorder("=")


def ref_hton(a: np.ndarray) -> np.ndarray:
    return a.astype(big(a.dtype))


def ref_ntoh(a: np.ndarray) -> np.ndarray:
    return a.view(big(a.dtype)).astype(native(a.dtype))


def ref_byteswap(a: np.ndarray) -> np.ndarray:
    return a.byteswap()


def layouts(base: np.ndarray) -> dict[str, np.ndarray]:
    """Views of ``base`` (a 3-d array, each dimension >= 4) in every layout worth testing."""
    flat = base.reshape(-1)
    unaligned_buf = np.zeros(flat.nbytes + 1, dtype=np.uint8)
    unaligned_buf[1:] = flat.view(np.uint8)
    unaligned = np.frombuffer(unaligned_buf.data, dtype=base.dtype, offset=1)
    ro = base.copy()
    ro.flags.writeable = False
    return {
        "c": base,
        "f": np.asfortranarray(base),
        "slice-step": base[::2, 1:, ::3],
        "negative": base[::-1, :, ::-2],
        "transposed": base.transpose(2, 0, 1),
        "f-sliced": np.asfortranarray(base)[1:, :, 1:],
        "column": base[:, 1, :],
        "0d": base[1:2, 2:3, 3:4].reshape(()),
        "1d": flat,
        "1d-strided": flat[1::3],
        "empty": base[:0],
        "empty-middle": base[:, 2:2, :],
        "unaligned": unaligned,
        "unaligned-2d": unaligned.reshape(base.shape[0], -1)[:, 1:],
        "readonly": ro,
        "broadcast": np.broadcast_to(flat[:7], (3, 7)),
        "length-1-axes": flat[:5].reshape(1, 5, 1),
    }


# ---- driving a codec Decoder ----
#
# Every way of feeding a Decoder must give the same events; these helpers feed one
# byte stream in a chosen way and report what came out, so tests can compare the ways.

#: How a stream can be fed: whole, one byte at a time, cut at random points, or through
#: get_buffer()/advance() with random recv sizes.
FEED_MODES = ["whole", "bytes", "split", "recv"]

#: Marks a clean end of input (EOF right after an END frame) in an event list.
EOF = "EOF"


def _drain(dec, events: list, limit: int) -> None:
    from wirearray.codec import NEED_DATA

    for _ in range(limit):
        ev = dec.next_event()
        if ev is NEED_DATA:
            return
        events.append(ev)
    raise AssertionError(f"next_event() returned {limit} events without NEED_DATA")


def _recv_sizes(rng, mode: str):
    while True:
        if mode == "recv-max":
            yield 1 << 62
        else:  # mostly small reads, sometimes large ones
            yield rng.choice([1, 2, 3, 7, 64, 100, 4096, 70_000, 1 << 20, 1 << 62])


def decode(data: bytes, mode: str = "whole", *, seed: int = 0, eof: bool = True, **kw):
    """Feed ``data`` to a fresh ``Decoder(**kw)`` in ``mode``; return (events, error).

    ``events`` are the events in order, ending with :data:`EOF` when the input ended
    cleanly; ``error`` is the WireError that stopped decoding, or None.  Events are
    drained after every piece of input, as a transport would.  After a ProtocolError,
    checks that the decoder refuses further use.  Any other exception propagates.
    """
    import itertools
    import random

    from wirearray.codec import Decoder, EndOfStream
    from wirearray.exceptions import ProtocolError, StreamBrokenError, WireError

    rng = random.Random(seed)
    dec = Decoder(**kw)
    events: list = []
    limit = len(data) + 10
    try:
        if mode in ("recv", "recv-max"):
            sizes = _recv_sizes(rng, mode)
            pos = 0
            while pos < len(data):
                buf = dec.get_buffer()
                n = min(len(buf), next(sizes), len(data) - pos)
                buf[:n] = data[pos : pos + n]  # what recv_into would do
                dec.advance(n)
                pos += n
                _drain(dec, events, limit)
            if eof:
                dec.get_buffer()
                dec.advance(0)
        else:
            if mode == "whole":
                cuts = sorted({0, len(data)})  # (b"" would mean EOF)
            elif mode == "bytes":
                cuts = list(range(len(data) + 1))
            elif mode == "split":
                k = rng.randint(0, min(20, len(data)))
                cuts = sorted({0, len(data), *(rng.randint(0, len(data)) for _ in range(k))})
            else:
                raise ValueError(mode)
            for a, b in itertools.pairwise(cuts):
                dec.receive_data(data[a:b])
                _drain(dec, events, limit)
            if eof:
                dec.receive_data(b"")
        if eof:
            # every complete frame was delivered before NEED_DATA: at EOF only a clean
            # end or an error remain
            ev = dec.next_event()
            assert isinstance(ev, EndOfStream), f"{ev!r} after EOF"
            events.append(EOF)
    except WireError as exc:
        if isinstance(exc, ProtocolError) and not dec.skipping:  # (skipping: usable)
            for call in (dec.next_event, lambda: dec.receive_data(b"x"), dec.get_buffer):
                try:
                    call()
                except StreamBrokenError as again:
                    assert again.__cause__ is exc
                else:
                    raise AssertionError("decoder usable after a ProtocolError") from exc
        return events, exc
    return events, None


def describe(event):
    """A comparable description of a decoder event (dtype, shape, order, bytes)."""
    from wirearray.codec import Array, EndOfStream, Message

    def arr(a):
        order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
        return (a.dtype.str, a.shape, order, a.tobytes())

    if isinstance(event, Array):
        return ("array", event.name, arr(event.array))
    if isinstance(event, Message):
        return ("message", tuple((k, arr(v)) for k, v in event.arrays.items()))
    if isinstance(event, EndOfStream):
        return ("end",)
    if event == EOF:
        return (EOF,)
    raise AssertionError(f"not an event: {event!r}")


def outcome(events, error):
    """(descriptions of the events, error type and its received/expected) -- comparable."""
    err = None
    if error is not None:
        err = (type(error), getattr(error, "received", None), getattr(error, "expected", None))
    return [describe(e) for e in events], err
