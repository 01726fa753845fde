"""The sans-I/O codec on well-formed streams, against both implementations of the core.

Round trips over every dtype, byte order, layout and ndim; the encoded payload checked
byte for byte against numpy; every stream fed whole, one byte at a time, cut at random
points and through get_buffer()/advance(), which must all give the same events;
messages, ``out=``, schemas, sequence numbers and the end of a stream.
"""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import (
    EOF,
    FEED_MODES,
    SUPPORTED,
    decode,
    layouts,
    native,
    outcome,
    random_array,
    same_bytes,
)
from wirearray import _format
from wirearray.codec import (
    DIRECT_MIN_BYTES,
    NEED_DATA,
    SWAP_CHUNK_BYTES,
    Array,
    Decoder,
    Encoder,
    EndOfStream,
    Message,
    Schema,
)
from wirearray.exceptions import (
    BufferMismatchError,
    ChecksumError,
    FrameTooLargeError,
    MalformedFrameError,
    SchemaMismatchError,
    StreamBrokenError,
    TruncatedStreamError,
    UnsupportedDtypeError,
    UsageError,
)

HOST_BIG = sys.byteorder == "big"
RNG_SEED = 20240611


def rng(salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(RNG_SEED + salt)


def frame_order(a: np.ndarray) -> str:
    """The order the encoder sends ``a`` in: F for Fortran-only arrays, else C."""
    return "F" if a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous else "C"


def wire_is_big(a: np.ndarray, policy: str) -> bool:
    if policy == "network":
        return True
    bo = a.dtype.byteorder
    return bo == ">" or (bo == "=" and HOST_BIG)


def check_frame(frame: bytes, a: np.ndarray, policy: str, checksum: bool) -> None:
    """The frame's payload, trailer, padding and flags, against numpy's own bytes."""
    h = int.from_bytes(frame[10:12], "big")
    assert h >= 64 and h % 64 == 0 and len(frame) % 64 == 0
    order = frame_order(a)
    if policy == "network":
        expected = a.astype(a.dtype.newbyteorder(">")).tobytes(order=order)
    else:  # the array's own memory order
        expected = a.tobytes(order=order)
    assert len(expected) == a.nbytes
    assert frame[h : h + a.nbytes] == expected
    assert int.from_bytes(frame[16:24], "big") == a.nbytes
    assert tuple(int.from_bytes(frame[32 + 8 * i : 40 + 8 * i], "big") for i in range(a.ndim)) == (
        a.shape
    )
    tail = frame[h + a.nbytes :]
    if checksum:
        assert tail[:4] == _format.crc32c(expected).to_bytes(4, "big")
        tail = tail[4:]
    assert len(tail) < 64 and not any(tail)
    flags = frame[7]
    assert bool(flags & _format.FLAG_BIG_ENDIAN) == wire_is_big(a, policy)
    assert bool(flags & _format.FLAG_FORTRAN) == (order == "F")
    assert bool(flags & _format.FLAG_CHECKSUM) == checksum


def one_array(data: bytes, impl_name: str, mode: str = "whole", **kw) -> Array:
    events, err = decode(data, mode, eof=False, implementation=impl_name, **kw)
    assert err is None, err
    (ev,) = events
    assert isinstance(ev, Array)
    return ev


def check_received(got: np.ndarray, sent: np.ndarray, *, wire_big: bool | None = None) -> None:
    """``got`` holds ``sent``'s values, bit for bit, in native order (or the wire's)."""
    if wire_big is None:
        assert got.dtype == native(sent.dtype) and got.dtype.byteorder in "=|"
    else:
        assert got.dtype == sent.dtype.newbyteorder(">" if wire_big else "<")
    assert same_bytes(got, sent.astype(got.dtype))
    assert got.flags.writeable
    assert frame_order(got) == frame_order(sent)


# ---- round trips ----


@pytest.mark.parametrize("dtype", SUPPORTED)
@pytest.mark.parametrize("policy", ["network", "native"])
def test_roundtrip_every_dtype_and_byte_order(impl_name, dtype, policy):
    base = random_array(dtype, (3, 5), rng(SUPPORTED.index(dtype)))
    for label in "=<>":
        a = base.astype(base.dtype.newbyteorder(label))
        for checksum in (False, True):
            enc = Encoder(byteorder=policy, checksum=checksum, implementation=impl_name)
            frame = enc.encode(a, name="x")
            check_frame(frame, a, policy, checksum)
            ev = one_array(frame, impl_name)
            assert ev.name == "x"
            check_received(ev.array, a)
            kept = one_array(frame, impl_name, keep_wire_order=True).array
            check_received(kept, a, wire_big=wire_is_big(a, policy))
            # per-call overrides of the encoder's defaults
            other = "native" if policy == "network" else "network"
            enc = Encoder(byteorder=other, checksum=not checksum, implementation=impl_name)
            frame = enc.encode(a, byteorder=policy, checksum=checksum)
            check_frame(frame, a, policy, checksum)
            assert one_array(frame, impl_name).name is None


@pytest.mark.parametrize("dtype", ["bool", "int16", "float64", "complex64"])
@pytest.mark.parametrize("policy", ["network", "native"])
def test_roundtrip_every_layout(impl_name, dtype, policy):
    base = random_array(dtype, (6, 5, 7), rng(1))
    for label in "<>":
        for what, view in layouts(base.astype(base.dtype.newbyteorder(label))).items():
            for checksum in (False, True):
                enc = Encoder(byteorder=policy, checksum=checksum, implementation=impl_name)
                frame = enc.encode(view)
                check_frame(frame, view, policy, checksum)
                got = one_array(frame, impl_name).array
                check_received(got, view)
                assert not np.shares_memory(got, view), what


@pytest.mark.parametrize(
    "make",
    [
        lambda r: random_array("float64", (100, 300), r)[:, ::-1],  # rows fill pieces
        lambda r: random_array("int32", (2000, 3), r).T,  # many rows per piece
        lambda r: random_array("complex128", (2, 3000), r)[:, ::2],  # a row spans pieces
        lambda r: random_array("float32", (100_000,), r),  # contiguous, swapped
        lambda r: np.asfortranarray(random_array("int16", (300, 70), r)),  # F, swapped
        lambda r: random_array("uint8", (300, 300), r)[::-1, 1::2],  # gathered, no swap
    ],
    ids=["neg-rows", "transposed", "row-split", "contiguous", "fortran", "bytes"],
)
@pytest.mark.parametrize("policy", ["network", "native"])
def test_converted_payloads_go_through_small_staging_chunks(impl_name, make, policy):
    a = make(rng(2))
    enc = Encoder(byteorder=policy, checksum=True, chunk_bytes=4096, implementation=impl_name)
    pieces = list(enc.frame(a, name="big"))
    sizes = [[len(memoryview(p).cast("B")) for p in parts] for parts in pieces]
    converted = not (a.flags.c_contiguous or a.flags.f_contiguous) or (
        a.dtype.itemsize > 1 and wire_is_big(a, policy) != HOST_BIG
    )
    if converted:  # staged: many sends, none bigger than the staging buffer
        assert len(pieces) > 1
        assert max(max(s) for s in sizes[1:]) <= 4096
    frame = Encoder(
        byteorder=policy, checksum=True, chunk_bytes=4096, implementation=impl_name
    ).encode(a, name="big")
    check_frame(frame, a, policy, True)
    check_received(one_array(frame, impl_name, "recv", seed=3).array, a)


def test_contiguous_payload_is_sent_without_copy(impl_name):
    a = np.arange(1000, dtype=">i4")  # already the wire's order and layout
    (parts,) = Encoder(implementation=impl_name).frame(a)
    assert any(np.shares_memory(np.asarray(p), a) for p in parts[1:])


def _shape_for(ndim: int, r: random.Random) -> tuple[int, ...]:
    shape = [1] * ndim
    for i in r.sample(range(ndim), min(ndim, 6)):  # at most 3**6 elements
        shape[i] = r.choice([2, 3])
    return tuple(shape)


@pytest.mark.parametrize("ndim", range(33))
def test_roundtrip_ndim(impl_name, ndim):
    r = random.Random(ndim)
    a = random_array("int32", _shape_for(ndim, r), rng(ndim))
    views = {"c": a, "f": np.array(a, order="F"), "transposed": a.T}
    if ndim:
        views["negative"] = a[..., ::-1]
        views["stepped"] = np.repeat(a, 2, axis=-1)[..., ::2]
    for what, view in views.items():
        frame = Encoder(checksum=True, implementation=impl_name).encode(view, name=what)
        check_frame(frame, view, "network", True)
        got = one_array(frame, impl_name, "split", seed=ndim)
        assert got.name == what and got.array.ndim == ndim
        check_received(got.array, view)


def test_default_max_ndim_is_what_numpy_supports():
    # numpy 2: 64 dimensions, numpy 1.x: 32; probed from numpy itself
    from wirearray import codec

    n = codec.DEFAULT_MAX_NDIM
    np.empty((1,) * n)
    if n < _format.MAX_NDIM:
        with pytest.raises(ValueError):
            np.empty((1,) * (n + 1))
    assert n == (64 if np.__version__ >= "2" else 32)
    assert Decoder().max_ndim == n


@pytest.mark.skipif(np.__version__ < "2", reason="numpy 1.x has at most 32 dimensions")
@pytest.mark.parametrize("mode", ["whole", "split", "recv"])
def test_33_and_64_dimensions_round_trip_with_the_default_limit(impl_name, mode):
    for ndim in (33, 64):
        a = random_array("float32", _shape_for(ndim, random.Random(ndim)), rng(ndim))
        for view in (a, np.asfortranarray(a), a.T):
            frame = Encoder(checksum=True, implementation=impl_name).encode(view)
            got = one_array(frame, impl_name, mode, seed=ndim)
            assert got.array.ndim == ndim
            check_received(got.array, view)
        _, err = decode(frame, eof=False, implementation=impl_name, max_ndim=32)
        assert isinstance(err, FrameTooLargeError)


@pytest.mark.skipif(np.__version__ < "2", reason="numpy 1.x has at most 32 dimensions")
def test_npy_records_of_64_dimensions_and_a_refused_one(impl_name):
    from wirearray.npy import NpyDecoder, NpyEncoder

    x = np.arange(6.0).reshape((2, 3) + (1,) * 62)
    enc = NpyEncoder(implementation=impl_name)
    records = enc.encode(x) + enc.encode(np.ones((1,) * 40)) + enc.encode(np.arange(3))
    got = _events_past_refusals(NpyDecoder(implementation=impl_name), records, [len(records)])
    assert np.array_equal(got[0].array, x) and got[0].array.shape == x.shape
    dec = NpyDecoder(max_ndim=32, implementation=impl_name)
    got = _events_past_refusals(dec, records, [len(records)])
    assert got[:2] == ["refused", "refused"] and got[2].array.tolist() == [0, 1, 2]
    assert got[3] == "EOF" and dec.skipped == 2


def _events_past_refusals(dec, data: bytes, sizes) -> list:
    """Feed ``data`` in pieces of ``sizes``; the events, with "refused" for each
    FrameTooLargeError the decoder survived, and "EOF" for the clean end."""
    from wirearray.codec import NEED_DATA, EndOfStream

    out: list = []
    pos = 0
    pieces = [*sizes]
    while True:
        try:
            ev = dec.next_event()
        except FrameTooLargeError:
            assert dec.skipping and not dec.broken
            out.append("refused")
            continue
        if ev is NEED_DATA:
            if pos >= len(data):
                if dec.eof:
                    raise AssertionError("NEED_DATA after the end of input")
                dec.receive_data(b"")
                continue
            n = pieces.pop(0) if pieces else len(data)
            dec.receive_data(data[pos : pos + n])
            pos += n
            continue
        if isinstance(ev, EndOfStream):
            out.append("EOF")
            return out
        out.append(ev)


@pytest.mark.parametrize("pieces", ["whole", "bytes-of-headers", "random"])
@pytest.mark.parametrize("checksum", [False, True])
def test_frame_over_max_ndim_is_refused_and_the_next_array_arrives(impl_name, pieces, checksum):
    # a frame refused for a limit whose length is known (within max_frame_bytes) is read
    # past: it raises its own error, the stream stays usable (docs/FORMAT.md section 7)
    enc = Encoder(checksum=checksum, implementation=impl_name)
    first, last = np.arange(5.0), np.arange(7, dtype=np.int16)
    # over max_ndim=4, within what numpy 1.x (32 dimensions) can make
    small = np.arange(6.0).reshape((2, 3) + (1,) * 4)  # 6 dimensions, 48 bytes
    large = np.ones((3,) + (1,) * 5 + (50_000,), ">u2")  # > DIRECT_MIN_BYTES, swapped
    wire = (
        enc.encode(first)
        + enc.encode(small)
        + enc.encode(large, name="big")
        + enc.encode(np.asfortranarray(np.ones((2, 2, 1, 1, 1))))
        + enc.encode(last)
        + enc.end()
    )
    r = random.Random(len(pieces))
    sizes = {
        "whole": [len(wire)],
        "bytes-of-headers": [1] * 200 + [70_000] * 10,
        "random": [r.choice([1, 63, 64, 65, 4096, 100_000]) for _ in range(200)],
    }[pieces]
    dec = Decoder(max_ndim=4, implementation=impl_name)
    events = _events_past_refusals(dec, wire, sizes)
    assert events[1:4] == ["refused"] * 3
    assert np.array_equal(events[0].array, first) and np.array_equal(events[4].array, last)
    assert events[5] == "EOF" and len(events) == 6
    assert dec.skipped == 3 and dec.seq == 0 and not dec.broken


def test_refusal_read_past_still_checks_the_refused_frame(impl_name):
    enc = Encoder(checksum=True, implementation=impl_name)
    bad = bytearray(enc.encode(np.ones((1, 1, 1, 200))))
    bad[64 + 5] ^= 1  # a payload byte: the CRC32C no longer matches
    dec = Decoder(max_ndim=2, implementation=impl_name)
    dec.receive_data(bytes(bad) + enc.encode(np.ones(2)))
    with pytest.raises(FrameTooLargeError):
        dec.next_event()
    with pytest.raises(ChecksumError):
        dec.next_event()
    assert dec.broken


def test_limit_refusals_that_break_the_stream(impl_name):
    enc = Encoder(implementation=impl_name)
    wire = enc.encode(np.ones((1, 1, 1, 300))) + enc.encode(np.ones(2))
    # over max_frame_bytes: its length is what is refused
    events, err = decode(wire, implementation=impl_name, max_ndim=2, max_frame_bytes=100)
    assert isinstance(err, FrameTooLargeError) and events == []
    # an array of a message: the message's length is not in its header
    msg = Encoder(implementation=impl_name).encode_message({"x": np.ones((1, 1, 1))})
    events, err = decode(msg, implementation=impl_name, max_ndim=2)
    assert isinstance(err, FrameTooLargeError) and events == []
    # a message of too many arrays, likewise
    msg = Encoder(implementation=impl_name).encode_message({"x": np.ones(1), "y": np.ones(1)})
    events, err = decode(msg, implementation=impl_name, max_message_arrays=1)
    assert isinstance(err, FrameTooLargeError) and events == []


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (2, 0, 4), (0, 0)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_roundtrip_empty(impl_name, shape, order):
    for dtype in ("bool", "uint16", "complex128"):
        a = np.zeros(shape, dtype=dtype, order=order)
        for checksum in (False, True):
            frame = Encoder(checksum=checksum, implementation=impl_name).encode(a)
            check_frame(frame, a, "network", checksum)
            assert len(frame) == 64 * (1 + checksum)
            for mode in FEED_MODES:
                got = one_array(frame, impl_name, mode).array
                assert got.shape == shape and got.dtype == np.dtype(dtype)


# ---- property test: random arrays, views, options and feeding ----


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(SUPPORTED)))
    label = draw(st.sampled_from("=<>"))
    ndim = draw(st.integers(0, 5))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    base = np.asarray(random_array(dtype, shape, np.random.default_rng(draw(st.integers(0, 99)))))
    base = base.astype(base.dtype.newbyteorder(label))
    if draw(st.booleans()):
        base = np.asfortranarray(base)
    if ndim:
        steps = st.sampled_from([1, 1, 2, -1, -2])
        base = base[tuple(slice(None, None, draw(steps)) for _ in range(ndim))]
        if ndim > 1 and draw(st.booleans()):
            base = base.transpose(draw(st.permutations(range(ndim))))
    return base


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(
        st.tuples(
            arrays(),
            st.sampled_from(["network", "native"]),
            st.booleans(),
            st.one_of(st.none(), st.text(min_size=1, max_size=8)),
        ),
        min_size=1,
        max_size=4,
    ),
    keep=st.booleans(),
    mode=st.sampled_from(FEED_MODES),
    seed=st.integers(0, 1000),
)
def test_roundtrip_property(impl_name, items, keep, mode, seed):
    enc = Encoder(implementation=impl_name)
    stream = b"".join(
        enc.encode(a, name=name, byteorder=policy, checksum=checksum)
        for a, policy, checksum, name in items
    )
    stream += enc.end()
    events, err = decode(stream, mode, seed=seed, implementation=impl_name, keep_wire_order=keep)
    assert err is None, err
    assert len(events) == len(items) + 2
    assert isinstance(events[-2], EndOfStream) and events[-1] == EOF
    for ev, (a, policy, _, name) in zip(events[:-2], items, strict=True):
        assert isinstance(ev, Array) and ev.name == name
        check_received(ev.array, a, wire_big=wire_is_big(a, policy) if keep else None)


# ---- every way of feeding gives the same events ----


def corpus(impl_name: str) -> dict[str, bytes]:
    r = rng(7)
    arr = lambda dt, shape: random_array(dt, shape, r)  # noqa: E731
    streams = {}
    enc = Encoder(implementation=impl_name)
    streams["single"] = enc.encode(arr("int32", (7,)))
    enc = Encoder(checksum=True, implementation=impl_name)
    streams["checksum-fortran"] = enc.encode(np.asfortranarray(arr("float64", (3, 4))), name="f")
    enc = Encoder(implementation=impl_name)
    streams["several"] = b"".join(
        enc.encode(arr(dt, (i, 3)), name=f"a{i}", byteorder=bo, checksum=bool(i % 2))
        for i, (dt, bo) in enumerate(
            [("int8", "network"), ("uint16", "native"), ("float16", "network"),
             ("complex64", "native"), ("bool", "network"), ("uint64", "network")]
        )
    ) + enc.end()  # fmt: skip
    enc = Encoder(checksum=True, implementation=impl_name)
    streams["message"] = (
        enc.encode_message(
            {"b": arr("float32", (2, 3)), "a": arr("int64", (4,)), "empty": np.zeros((0, 3))}
        )
        + enc.encode(arr("uint8", (5,)))
        + enc.encode_message({"ä name": np.asfortranarray(arr("int16", (3, 5)))})
        + enc.end()
    )
    enc = Encoder(implementation=impl_name)
    streams["empty-message"] = enc.encode_message({}) + enc.encode_message({}) + enc.end()
    enc = Encoder(implementation=impl_name)
    first = enc.encode(arr("int16", (3,))) + enc.end()
    streams["two-streams"] = first + enc.encode(arr("int16", (4,))) + enc.end() + enc.end()
    enc = Encoder(checksum=True, implementation=impl_name)
    streams["big-swapped"] = (
        enc.encode(arr("float64", (SWAP_CHUNK_BYTES // 8 + 20_001,)))
        + enc.encode(arr("complex128", (DIRECT_MIN_BYTES // 16 + 3, 1)), byteorder="native")
        + enc.encode(arr("int32", (3,)))
        + enc.encode(np.asfortranarray(arr("uint16", (300, 301))))
        + enc.end()
    )
    enc = Encoder(byteorder="native", implementation=impl_name)
    streams["big-native"] = (
        enc.encode(arr("uint8", (DIRECT_MIN_BYTES + 1,)))
        + enc.encode_message({"x": arr("float32", (50_000,)), "y": arr("int8", (70_001,))})
        + enc.encode(arr("int32", (DIRECT_MIN_BYTES,)), byteorder="network")
    )
    return streams


CORPUS_NAMES = list(corpus("python"))


@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_every_feeding_gives_the_same_events(impl_name, name):
    stream = corpus(impl_name)[name]
    ref = outcome(*decode(stream, "whole", implementation=impl_name))
    assert ref[0]
    modes = [("split", s) for s in range(4)] + [("recv", s) for s in range(4)]
    modes.append(("recv-max", 0))
    if len(stream) < 20_000:
        modes.append(("bytes", 0))
    for mode, seed in modes:
        got = outcome(*decode(stream, mode, seed=seed, implementation=impl_name))
        assert got == ref, (mode, seed)


def test_corpus_decodes_to_what_was_sent(impl_name):
    r = rng(3)
    sent = {
        "a": random_array("float32", (2, 3), r),
        "b": random_array("int64", (4,), r),
        "c": np.zeros((0, 3), ">u2"),
        "d": np.asfortranarray(random_array("complex64", (3, 2), r)),
    }
    enc = Encoder(checksum=True, implementation=impl_name)
    single = random_array("uint8", (5,), r)
    stream = enc.encode_message(sent) + enc.encode(single, name="s") + enc.end()
    events, err = decode(stream, "bytes", implementation=impl_name)
    assert err is None
    msg, arr, end, eof = events
    assert isinstance(msg, Message) and list(msg.arrays) == list(sent)
    for k, v in sent.items():
        check_received(msg.arrays[k], v)
    assert arr.name == "s" and same_bytes(arr.array, single)
    assert isinstance(end, EndOfStream) and eof == EOF


def test_message_is_delivered_only_when_complete(impl_name):
    r = rng(4)
    enc = Encoder(implementation=impl_name)
    sent = {"x": random_array("int32", (5,), r), "y": random_array("float64", (3, 2), r)}
    stream = enc.encode_message(sent)
    dec = Decoder(implementation=impl_name)
    for i in range(len(stream) - 1):
        dec.receive_data(stream[i : i + 1])
        assert dec.next_event() is NEED_DATA, i
    dec.receive_data(stream[-1:])
    msg = dec.next_event()
    assert isinstance(msg, Message) and list(msg.arrays) == ["x", "y"]
    assert all(same_bytes(msg.arrays[k], v) for k, v in sent.items())
    assert dec.next_event() is NEED_DATA


def test_received_arrays_do_not_alias_decoder_buffers(impl_name):
    r = rng(5)
    sent = [random_array("int16", (i % 7 + 1, 3), r) for i in range(200)]
    enc = Encoder(implementation=impl_name)
    stream = b"".join(
        enc.encode(a, byteorder=["network", "native"][i % 2]) for i, a in enumerate(sent)
    )
    for mode in ("recv", "recv-max", "split"):
        events, err = decode(stream, mode, eof=False, implementation=impl_name)
        assert err is None and len(events) == len(sent)
        for ev, a in zip(events, sent, strict=True):  # later reads did not overwrite earlier arrays
            assert same_bytes(ev.array, a) and ev.array.flags.writeable


# ---- out= ----


def _frame_and_array(impl_name, dtype="int32", shape=(4, 5), order="C", **kw):
    a = random_array(dtype, shape, rng(6))
    if order == "F":
        a = np.asfortranarray(a)
    return Encoder(implementation=impl_name, **kw).encode(a, name="o"), a


@pytest.mark.parametrize("out_order", ["=", "<", ">"])
@pytest.mark.parametrize("policy", ["network", "native"])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_out_receives_in_place_in_its_own_byte_order(impl_name, out_order, policy, layout):
    for shape in [(4, 5), (300, 70)]:  # read-ahead copy, and recv straight into out
        a = random_array("float64", shape, rng(6))
        a = np.asfortranarray(a) if layout == "F" else a
        for mode in ("whole", "recv"):
            enc = Encoder(byteorder=policy, implementation=impl_name)
            frame = enc.encode(a, name="o")
            out = np.full(shape, -1, dtype=np.dtype("f8").newbyteorder(out_order), order=layout)
            dec = Decoder(implementation=impl_name)
            dec.expect(out=out)
            got = _feed_one(dec, frame, mode)
            assert got.name == "o"
            assert np.shares_memory(got.array, out) and got.array.dtype == out.dtype
            assert same_bytes(out, a.astype(out.dtype))
            # out= is cleared once used: the next frame gets a new array
            again = _feed_one(dec, enc.encode(a), mode).array
            assert not np.shares_memory(again, out) and same_bytes(again, a.astype(again.dtype))


def _feed_one(dec, frame: bytes, mode: str) -> Array:
    if mode == "whole":
        dec.receive_data(frame)
    else:
        pos = 0
        while pos < len(frame):
            buf = dec.get_buffer()
            n = min(len(buf), len(frame) - pos, 50_000)
            buf[:n] = frame[pos : pos + n]
            dec.advance(n)
            pos += n
            if pos < len(frame):
                assert dec.next_event() is NEED_DATA
    ev = dec.next_event()
    assert isinstance(ev, Array)
    assert dec.next_event() is NEED_DATA
    return ev


def _bad_outs(shape, order):
    good = np.zeros(shape, "i4", order=order)
    ro = good.copy(order="K")
    ro.flags.writeable = False
    return {
        "dtype": np.zeros(shape, "u4", order=order),
        "itemsize": np.zeros(shape, "i8", order=order),
        "shape": np.zeros((*shape[::-1], 1), "i4"),
        "read-only": ro,
        "shared-memory": np.lib.stride_tricks.as_strided(
            np.zeros(shape[-1], "i4"), shape=shape, strides=(0, 4), writeable=True
        ),
        "not-ndarray": bytearray(good.nbytes),
    }


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("recover", ["none", "fitting"])
@pytest.mark.parametrize("mode", ["whole", "bytes", "recv"])
def test_mismatching_out_is_refused_before_the_payload(impl_name, order, recover, mode):
    frame, a = _frame_and_array(impl_name, "int32", (4, 5), order, checksum=True)
    h = int.from_bytes(frame[10:12], "big")
    for what, bad in _bad_outs(a.shape, order).items():
        dec = Decoder(implementation=impl_name)
        dec.expect(out=bad)
        snapshot = bytes(memoryview(bad).cast("B")) if isinstance(bad, bytearray) else bad.copy()
        if mode == "bytes":  # the header alone is enough to refuse
            for i in range(h - 1):
                dec.receive_data(frame[i : i + 1])
                assert dec.next_event() is NEED_DATA
            dec.receive_data(frame[h - 1 : h])
            rest = frame[h:]
        elif mode == "recv":
            buf = dec.get_buffer()
            buf[: len(frame)] = frame
            dec.advance(len(frame))
            rest = b""
        else:
            dec.receive_data(frame)
            rest = b""
        with pytest.raises(BufferMismatchError):
            dec.next_event()
        with pytest.raises(BufferMismatchError):  # still refused, still usable
            dec.next_event()
        assert (bytes(bad) == snapshot) if isinstance(bad, bytearray) else same_bytes(bad, snapshot)
        fitting = np.zeros(a.shape, ">i4", order=order)
        dec.expect(out=fitting if recover == "fitting" else None)
        if rest:
            assert dec.next_event() is NEED_DATA
            dec.receive_data(rest)
        ev = dec.next_event()
        assert isinstance(ev, Array) and ev.name == "o", what
        assert same_bytes(ev.array, a.astype(ev.array.dtype))
        assert np.shares_memory(ev.array, fitting) == (recover == "fitting")
        assert dec.next_event() is NEED_DATA


def test_message_out_by_name(impl_name):
    r = rng(8)
    sent = {"a": random_array("int32", (3, 4), r), "b": random_array("uint8", (70_000,), r)}
    stream = Encoder(checksum=True, implementation=impl_name).encode_message(sent)
    for mode in ("whole", "recv"):
        out_b = np.zeros(70_000, np.uint8)
        dec = Decoder(implementation=impl_name)
        dec.expect(out={"b": out_b})
        if mode == "whole":
            dec.receive_data(stream)
        else:
            pos = 0
            while pos < len(stream):
                buf = dec.get_buffer()
                n = min(len(buf), len(stream) - pos)
                buf[:n] = stream[pos : pos + n]
                dec.advance(n)
                pos += n
                if pos < len(stream):
                    assert dec.next_event() is NEED_DATA
        msg = dec.next_event()
        assert isinstance(msg, Message)
        assert msg.arrays["b"] is out_b or np.shares_memory(msg.arrays["b"], out_b)
        assert same_bytes(out_b, sent["b"]) and same_bytes(msg.arrays["a"], sent["a"])


@pytest.mark.parametrize("recover", ["none", "fitting"])
def test_message_out_mismatch_is_recoverable(impl_name, recover):
    r = rng(9)
    sent = {"a": random_array("int32", (6,), r), "b": random_array("float64", (2, 2), r)}
    stream = Encoder(implementation=impl_name).encode_message(sent)
    dec = Decoder(implementation=impl_name)
    dec.expect(out={"b": np.zeros((2, 3))})
    dec.receive_data(stream)
    with pytest.raises(BufferMismatchError):
        dec.next_event()
    fitting = np.zeros((2, 2))
    dec.expect(out={"b": fitting} if recover == "fitting" else None)
    msg = dec.next_event()
    assert isinstance(msg, Message)
    assert all(same_bytes(msg.arrays[k], v) for k, v in sent.items())
    assert np.shares_memory(msg.arrays["b"], fitting) == (recover == "fitting")
    # a message refuses a single array as out=
    dec = Decoder(implementation=impl_name)
    dec.expect(out=np.zeros(6, np.int32))
    dec.receive_data(stream)
    with pytest.raises(BufferMismatchError):
        dec.next_event()
    dec.expect()
    assert isinstance(dec.next_event(), Message)


# ---- schemas ----


@pytest.mark.parametrize(
    "schema",
    [
        None,
        Schema(),
        Schema(np.float32),
        Schema(">f4", (3, None)),
        Schema(shape=(None, None)),
        Schema("<f4", (3, 4)),
        ("float32", (3, 4)),
        ("=f4", None),
        (None, (None, 4)),
    ],
)
def test_matching_schema(impl_name, schema):
    frame, a = _frame_and_array(impl_name, "float32", (3, 4))
    dec = Decoder(implementation=impl_name)
    dec.expect(schema=schema)
    dec.receive_data(frame)
    assert same_bytes(dec.next_event().array, a)


@pytest.mark.parametrize(
    "schema",
    [
        Schema(np.float64),
        Schema(np.int32),
        Schema(shape=(3,)),
        Schema(shape=(3, 4, 1)),
        Schema(shape=(None, 5)),
        ("float32", (4, 3)),
        ("float32", ()),
        ({"x": ("float32", (3, 4))}),  # a message expected
    ],
)
def test_mismatching_schema_raises_from_the_header(impl_name, schema):
    frame, _ = _frame_and_array(impl_name, "float32", (3, 4))
    h = int.from_bytes(frame[10:12], "big")
    dec = Decoder(implementation=impl_name)
    dec.expect(schema=schema)
    dec.receive_data(frame[:h])  # no payload byte needed
    with pytest.raises(SchemaMismatchError):
        dec.next_event()
    with pytest.raises(StreamBrokenError):
        dec.next_event()


def test_schema_mismatch_says_what_came_and_what_was_expected(impl_name):
    """The message names the array when it has a name, and only then (no ``array ''``)."""
    for name, start in ((None, "array: got "), ("t", "array 't': got ")):
        enc = Encoder(implementation=impl_name)
        frame = enc.encode(np.zeros(3), name=name)
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=("float32", None))
        dec.receive_data(frame)
        with pytest.raises(SchemaMismatchError) as info:
            dec.next_event()
        assert str(info.value) == start + "dtype float64 (expected float32)"


def test_message_schemas(impl_name):
    r = rng(10)
    sent = {"a": random_array("int32", (6,), r), "b": random_array("float64", (2, 2), r)}
    enc = lambda: Encoder(implementation=impl_name)  # noqa: E731
    stream = enc().encode_message(sent)
    ok = {"a": ("int32", (None,)), "b": Schema(np.float64, (2, 2))}
    wildcard_b = {"a": ("int32", (6,)), "b": None}
    for schema in (ok, wildcard_b):
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=schema)
        dec.receive_data(stream)
        assert isinstance(dec.next_event(), Message)
    for bad in [
        {"a": ("int32", (6,))},  # b unexpected
        {"a": ("int32", (6,)), "b": None, "c": None},  # c missing
        {"a": ("int64", (6,)), "b": None},  # wrong dtype
        {"a": None, "b": (None, (4,))},  # wrong shape
        ("int32", (6,)),  # a single array expected
    ]:
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=bad)
        dec.receive_data(stream)
        with pytest.raises(SchemaMismatchError):
            dec.next_event()
        with pytest.raises(StreamBrokenError):
            dec.next_event()


def test_schema_validation():
    with pytest.raises(UnsupportedDtypeError):
        Schema(object)
    with pytest.raises(UsageError):
        Schema(shape=(-1,))
    with pytest.raises(UsageError):
        Schema(shape=(1.5,))
    with pytest.raises(UsageError):
        Schema.coerce([np.int8, (1,)])
    assert Schema(">i4").dtype == np.dtype("i4")


# ---- sequence numbers and the end of a stream ----


def test_frame_out_of_sequence_is_malformed(impl_name):
    a = np.arange(3, dtype=np.int16)
    enc1, enc2 = Encoder(implementation=impl_name), Encoder(implementation=impl_name)
    first = enc1.encode(a)
    events, err = decode(first + enc2.encode(a), implementation=impl_name)
    assert len(events) == 1 and same_bytes(events[0].array, a)
    assert isinstance(err, MalformedFrameError) and "sequence" in str(err)
    # a frame skipped
    enc1.encode(a)
    events, err = decode(first + enc1.encode(a), implementation=impl_name)
    assert len(events) == 1 and isinstance(err, MalformedFrameError)
    # arrays inside a message count too
    enc = Encoder(implementation=impl_name)
    msg = enc.encode_message({"x": a, "y": a})
    _, err = decode(msg + Encoder(implementation=impl_name).encode(a), implementation=impl_name)
    assert isinstance(err, MalformedFrameError)
    assert decode(msg + enc.encode(a), eof=False, implementation=impl_name)[1] is None


def test_end_resets_the_sequence(impl_name):
    a = np.arange(3, dtype=np.int16)
    enc = Encoder(implementation=impl_name)
    first = enc.encode(a) + enc.encode(a) + enc.end()
    for second in (enc, Encoder(implementation=impl_name)):  # the same or a new sender
        stream = first + second.encode(a) + second.encode(a) + second.end()
        events, err = decode(stream, "bytes", implementation=impl_name)
        assert err is None
        kinds = [type(e).__name__ if e != EOF else EOF for e in events]
        assert kinds == ["Array", "Array", "EndOfStream", "Array", "Array", "EndOfStream", EOF]
    # without the END the second stream's frames are out of sequence
    _, err = decode(
        first[:-64] + Encoder(implementation=impl_name).encode(a), implementation=impl_name
    )
    assert isinstance(err, MalformedFrameError)


@pytest.mark.parametrize("mode", FEED_MODES)
def test_eof_after_end_is_a_clean_end(impl_name, mode):
    enc = Encoder(implementation=impl_name)
    stream = enc.encode(np.ones(3)) + enc.end()
    events, err = decode(stream, mode, implementation=impl_name)
    assert err is None and isinstance(events[1], EndOfStream) and events[2] == EOF
    # only END
    events, err = decode(Encoder(implementation=impl_name).end(), mode, implementation=impl_name)
    assert err is None and isinstance(events[0], EndOfStream) and events[1] == EOF


@pytest.mark.parametrize("mode", FEED_MODES)
def test_eof_at_a_boundary_without_end_is_truncation(impl_name, mode):
    def enc():
        return Encoder(implementation=impl_name)

    for stream in (b"", enc().encode(np.ones(3)), enc().end() + enc().encode(np.ones(2))):
        events, err = decode(stream, mode, implementation=impl_name)
        assert isinstance(err, TruncatedStreamError)
        assert err.received == 0 and err.expected is None
        assert EOF not in events


def test_eof_repeats(impl_name):
    dec = Decoder(implementation=impl_name)
    dec.receive_data(Encoder(implementation=impl_name).end())
    dec.receive_data(b"")
    assert [type(dec.next_event()) for _ in range(3)] == [EndOfStream] * 3


# ---- API misuse ----


def test_encoder_usage_errors(impl_name):
    enc = Encoder(implementation=impl_name)
    titled = np.dtype({"names": ["a"], "formats": ["<i4"], "titles": ["A"]})
    for bad in (np.array([object()]), np.zeros(2, "M8"), np.zeros(2, "g"), np.zeros(2, titled)):
        with pytest.raises(UnsupportedDtypeError):
            enc.encode(bad)
        with pytest.raises(UnsupportedDtypeError):
            enc.encode_message({"x": bad})
    if np.dtype(np.longdouble).itemsize > 8:
        with pytest.raises(UnsupportedDtypeError):
            enc.encode(np.zeros(2, np.longdouble))
    for name in ("", "x" * 256, "é" * 128, b"x", 3):
        with pytest.raises(UsageError):
            enc.encode(np.ones(1), name=name)
        with pytest.raises(UsageError):
            enc.encode_message({name: np.ones(1)})
    with pytest.raises(UsageError):
        enc.encode(np.ones(1), byteorder="little")
    with pytest.raises(UsageError):
        Encoder(byteorder="big")
    with pytest.raises(UsageError):
        Encoder(chunk_bytes=100)
    with pytest.raises(UsageError):
        enc.encode_message([np.ones(1)])
    with pytest.raises(UsageError):  # a message's byte order is checked before anything
        enc.encode_message({"x": np.ones(1)}, byteorder="little")
    # nothing was sent or counted: the next frames still decode as the first ones
    stream = enc.encode(np.ones(1), name="x" * 255) + enc.encode(np.ones(2))
    assert len(stream) == 320 + 64 + 128
    events, err = decode(stream, eof=False, implementation=impl_name)
    assert err is None and [e.array.size for e in events] == [1, 2]


def test_decoder_usage_errors(impl_name):
    for kw in ({"max_frame_bytes": -1}, {"max_ndim": 65}, {"max_message_arrays": -1}):
        with pytest.raises(UsageError):
            Decoder(implementation=impl_name, **kw)
    with pytest.raises(ValueError):
        Decoder(implementation="rust")
    frame = Encoder(implementation=impl_name).encode(np.ones(3))
    dec = Decoder(implementation=impl_name)
    dec.receive_data(frame + frame[:10])
    with pytest.raises(UsageError):  # events or input pending
        dec.get_buffer()
    assert isinstance(dec.next_event(), Array)
    assert dec.next_event() is NEED_DATA
    buf = dec.get_buffer()
    with pytest.raises(UsageError):
        dec.advance(len(buf) + 1)
    with pytest.raises(UsageError):
        dec.advance(-1)
    dec.advance(0)  # EOF inside a frame header
    with pytest.raises(TruncatedStreamError) as info:
        dec.next_event()
    assert info.value.received == 10 and info.value.expected is None
    with pytest.raises(UsageError):
        Decoder(implementation=impl_name).advance(1)  # no get_buffer() before


def test_end_of_input_is_empty_data_and_nothing_may_follow(impl_name):
    enc = Encoder(implementation=impl_name)
    wire = enc.encode(np.arange(3)) + enc.end()
    dec = Decoder(implementation=impl_name)
    dec.receive_data(wire)
    dec.receive_data(b"")
    dec.receive_data(b"")  # the end may be fed again
    assert isinstance(dec.next_event(), Array)
    assert isinstance(dec.next_event(), EndOfStream)
    with pytest.raises(UsageError, match="after the end of input"):
        dec.receive_data(b"x")
    dec = Decoder(implementation=impl_name)
    dec.get_buffer()
    dec.advance(0)
    buf = dec.get_buffer()
    buf[:1] = b"x"
    with pytest.raises(UsageError, match="after the end of input"):
        dec.advance(1)


# ---- docs/FORMAT.md's answers at the edges of the rules ----


def _resealed(frame: bytes | bytearray) -> bytes:
    """``frame`` with its header CRC32C recomputed (after a field was changed)."""
    b = bytearray(frame)
    h = (b[10] << 8) | b[11]
    b[28:32] = bytes(4)
    b[28:32] = _format.crc32c(bytes(b[:h])).to_bytes(4, "big")
    return bytes(b)


@pytest.mark.parametrize("mode", FEED_MODES)
def test_a_connection_closed_before_any_frame_is_truncated(impl_name, mode):
    # FORMAT.md section 6: a wire stream without its END frame is truncated, however
    # short; a .npy stream ends cleanly at any record boundary, the empty one included
    from wirearray.npy import NPY

    events, err = decode(b"", mode, implementation=impl_name)
    assert events == [] and type(err) is TruncatedStreamError
    assert (err.received, err.expected) == (0, None)
    events, err = decode(b"", mode, implementation=impl_name, framing=NPY)
    assert events == [EOF] and err is None


def test_names_are_utf8_with_nul_allowed_and_compared_as_bytes(impl_name):
    # FORMAT.md section 2: any character, NUL included; invalid UTF-8 is malformed;
    # uniqueness within a message is by bytes, without Unicode normalisation
    enc = Encoder(implementation=impl_name)
    wire = enc.encode(np.arange(2), name="a\x00b")
    nfc, nfd = "\u00e9", "e\u0301"
    wire += enc.encode_message({nfc: np.ones(1), nfd: np.zeros(1), "\x00": np.arange(3)})
    events, err = decode(wire, eof=False, implementation=impl_name)
    assert err is None
    assert events[0].name == "a\x00b"
    assert sorted(events[1].arrays) == sorted([nfc, nfd, "\x00"])
    assert events[1].arrays[nfc][0] == 1 and events[1].arrays[nfd][0] == 0
    for raw in (b"\xff", b"\xc3", b"a\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"):
        frame = _format.pack_header(_format.KIND_ARRAY, 3, 0, (1,), 1, raw) + b"\x07" + bytes(63)
        events, err = decode(frame, eof=False, implementation=impl_name)
        assert type(err) is MalformedFrameError and "UTF-8" in str(err), raw
    with pytest.raises(UsageError, match="UTF-8"):
        enc.encode(np.ones(1), name="\ud800")
    # the same bytes twice in a message: refused
    head = _format.pack_header(_format.KIND_MESSAGE, 0, 0, (), 0, b"", 2, 0)
    twice = b"".join(
        _format.pack_header(_format.KIND_ARRAY, 3, 0, (1,), 1, nfd.encode(), 0, seq)
        + b"\x01"
        + bytes(63)
        for seq in (1, 2)
    )
    _, err = decode(head + twice, eof=False, implementation=impl_name)
    assert type(err) is MalformedFrameError and "repeated" in str(err)


@pytest.mark.parametrize("mode", ["whole", "bytes"])
def test_fortran_flag_on_0d_and_1d_frames_changes_nothing(impl_name, mode):
    # FORMAT.md section 2: allowed on any ARRAY frame; senders set it only on 2+ dims
    enc = Encoder(checksum=True, implementation=impl_name)
    for a in (np.float32(2.5), np.arange(5, dtype=">i4"), np.ones((1, 4), order="F")):
        frame = enc.encode(a)
        assert not frame[7] & _format.FLAG_FORTRAN  # the sender does not set it
        flagged = bytearray(frame)
        flagged[7] |= _format.FLAG_FORTRAN
        flagged[24:28] = bytes(4)  # seq 0, as the decoder expects
        got = one_array(_resealed(flagged), impl_name, mode).array
        assert got.shape == a.shape and np.array_equal(got, a)


def test_a_fortran_frame_is_delivered_in_fortran_order(impl_name):
    # FORMAT.md section 4: the values are what must arrive; wirearray keeps the order
    a = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))
    frame = Encoder(implementation=impl_name).encode(a)
    assert frame[7] & _format.FLAG_FORTRAN
    got = one_array(frame, impl_name).array
    assert got.flags.f_contiguous and not got.flags.c_contiguous and np.array_equal(got, a)


def test_the_decoder_checks_in_the_documented_order(impl_name):
    # FORMAT.md section 6, steps 4 and 5: seq before the limits; max_ndim, then
    # max_frame_bytes, then the name
    def first_error(frame: bytes, **limits) -> str:
        _, err = decode(frame, eof=False, implementation=impl_name, **limits)
        return f"{type(err).__name__}: {err}"

    pack = _format.pack_header
    payload = bytes(64 * 20)
    three_d = pack(_format.KIND_ARRAY, 3, 0, (2, 2, 300), 1200, b"\xff", 0, 5) + payload
    assert first_error(three_d, max_ndim=2, max_frame_bytes=10).startswith(
        "MalformedFrameError: frame sequence number 5"
    )
    three_d = pack(_format.KIND_ARRAY, 3, 0, (2, 2, 300), 1200, b"\xff", 0, 0) + payload
    assert "max_ndim=2" in first_error(three_d, max_ndim=2, max_frame_bytes=10)
    assert "max_frame_bytes=10" in first_error(three_d, max_frame_bytes=10)
    assert "UTF-8" in first_error(three_d)


def test_the_frame_size_limit_counts_payload_bytes(impl_name):
    # FORMAT.md section 7: payload_len only, not header, trailer or padding; a
    # message's arrays together
    enc = Encoder(checksum=True, implementation=impl_name)
    exact = enc.encode(np.zeros(1000, "u1"), name="n" * 200)  # 1344 bytes on the wire
    assert len(exact) > 1000
    assert one_array(exact, impl_name, max_frame_bytes=1000).array.size == 1000
    over = Encoder(implementation=impl_name).encode(np.zeros(1001, "u1"))
    _, err = decode(over, eof=False, implementation=impl_name, max_frame_bytes=1000)
    assert type(err) is FrameTooLargeError
    for second, ok in ((500, True), (501, False)):
        msg = Encoder(implementation=impl_name).encode_message(
            {"a": np.zeros(500, "u1"), "b": np.zeros(second, "u1")}
        )
        events, err = decode(msg, eof=False, implementation=impl_name, max_frame_bytes=1000)
        assert (err is None and len(events) == 1) if ok else type(err) is FrameTooLargeError


@pytest.mark.parametrize(
    "several",
    [{"x": np.arange(3.0)}, [np.arange(3.0), np.arange(2.0)], [np.arange(3.0), "text"]],
    ids=["dict", "ragged-list", "mixed-list"],
)
def test_several_arrays_given_to_frame_point_at_a_message(impl_name, several):
    enc = Encoder(implementation=impl_name)
    for call in (enc.encode, enc.frame):
        with pytest.raises(UsageError, match=r"send_many.*Encoder\.message"):
            call(several)
    assert enc.seq == 0  # nothing numbered
    assert np.array_equal(one_array(enc.encode(np.arange(2.0)), impl_name).array, np.arange(2.0))


def test_a_masked_array_is_refused_by_the_encoder(impl_name):
    m = np.ma.masked_array(np.arange(3, dtype="i4"), mask=[1, 0, 0])
    enc = Encoder(implementation=impl_name)
    for call in (enc.encode, enc.frame, lambda a: enc.encode_message({"m": a})):
        with pytest.raises(UsageError, match="mask"):
            call(m)
    assert enc.seq == 0  # nothing numbered
    plain = np.ma.getdata(m)
    assert np.array_equal(one_array(enc.encode(plain), impl_name).array, plain)
