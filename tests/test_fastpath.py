"""The per-message fast path: whole small frames in one compiled call.

``Encoder.encode_small`` / ``Decoder.next_array`` (over the compiled core's
``encode_small`` / ``decode_small``) are accelerators, not a second codec: each must
give exactly what the general path gives, or decline (None) having changed nothing,
so that the general path decides and reports.  The pure-Python implementation has no
fast path: there both always decline, and the transport takes the general path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import SUPPORTED, random_array
from wirearray import (
    BufferMismatchError,
    ChecksumError,
    FrameTooLargeError,
    MalformedFrameError,
    ProtocolError,
    WireError,
)
from wirearray.codec import NEED_DATA, SMALL_FRAME_BYTES, Array, Decoder, Encoder


def general_decoder(**kw) -> Decoder:
    """A decoder with the fast path switched off: the reference."""
    d = Decoder(**kw)
    d._small = None
    return d


def general_result(data: bytes, out=None, **kw):
    """What the general path makes of ``data``: an array, or the exception it raises."""
    d = general_decoder(**kw)
    d.receive_data(data)
    d.expect(out=out)
    try:
        ev = d.next_event()
    except WireError as exc:
        return exc
    return ev.array if isinstance(ev, Array) else ev


def fast_result(data: bytes, impl_name: str, out=None, **kw):
    d = Decoder(implementation=impl_name, **kw)
    d.receive_data(data)
    return d.next_array(out), d


def bits(a: np.ndarray) -> tuple:
    return a.dtype.str, a.shape, a.flags.c_contiguous, np.ascontiguousarray(a).tobytes()


def layouts(a: np.ndarray) -> list[np.ndarray]:
    out = [a, a.astype(a.dtype.newbyteorder(">")), a.astype(a.dtype.newbyteorder("<"))]
    if a.ndim > 1:
        out.append(np.asfortranarray(a))
    return out


# ---- sending ----


@pytest.mark.parametrize("dtype", SUPPORTED)
@pytest.mark.parametrize("shape", [(), (0,), (16,), (3, 5), (2, 0, 3), (2, 3, 4)])
def test_encode_small_is_the_general_frame(impl_name, dtype, shape):
    rng = np.random.default_rng(1)
    for a in layouts(random_array(dtype, shape, rng)):
        for byteorder in ("network", "native"):
            for checksum in (False, True):
                fast = Encoder(byteorder=byteorder, checksum=checksum, implementation=impl_name)
                ref = Encoder(byteorder=byteorder, checksum=checksum, implementation="python")
                got = fast.encode_small(a)
                if impl_name == "python":
                    assert got is None and fast._seq == 0
                    continue
                assert got == ref.encode(a), (a.dtype, a.shape, byteorder, checksum)
                # the sequence goes on: a second frame is numbered 1 on both paths
                assert fast.encode_small(a) == ref.encode(a)


@given(
    dtype=st.sampled_from(SUPPORTED),
    shape=st.lists(st.integers(0, 6), max_size=4).map(tuple),
    byteorder=st.sampled_from(["network", "native"]),
    checksum=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None)
def test_encode_small_property(dtype, shape, byteorder, checksum, seed):
    pytest.importorskip("wirearray._cwire")
    a = random_array(dtype, shape, np.random.default_rng(seed))
    fast = Encoder(byteorder=byteorder, checksum=checksum, implementation="cython")
    ref = Encoder(byteorder=byteorder, checksum=checksum, implementation="python")
    assert fast.encode_small(a, limit=a.nbytes) == ref.encode(a)


def test_encode_small_declines_and_numbers_nothing(impl_name):
    enc = Encoder(implementation=impl_name)
    big = np.zeros(SMALL_FRAME_BYTES // 8 + 1)
    for a in (
        np.arange(20.0)[::2],  # not contiguous
        np.zeros((4, 4))[:, :2],  # neither C nor Fortran
        big,  # over the limit
        np.array(["x"]),  # not a wire dtype
        [1.0, 2.0],  # not an ndarray
        np.zeros(3, dtype=[("a", "f8")]),
    ):
        assert enc.encode_small(a) is None
    assert enc._seq == 0
    assert (enc.encode_small(big, limit=big.nbytes) is None) == (impl_name == "python")


# ---- receiving ----

FRAMES = [
    (np.arange(16.0), {}),
    (np.arange(12, dtype=">i4").reshape(3, 4), {}),
    (np.asfortranarray(np.arange(12, dtype="<u2").reshape(3, 4)), {}),
    (np.array(3 + 4j, dtype="c8"), {"checksum": True}),
    (np.zeros((0, 7), dtype="f2"), {"checksum": True}),
    (np.array([True, False, True]), {}),
]


@pytest.mark.parametrize("a, opts", FRAMES)
@pytest.mark.parametrize("byteorder", ["network", "native"])
@pytest.mark.parametrize("keep_wire_order", [False, True])
def test_next_array_is_the_general_result(impl_name, a, opts, byteorder, keep_wire_order):
    enc = Encoder(byteorder=byteorder, implementation="python", **opts)
    data = enc.encode(a) + enc.end()  # something after the frame
    want = general_result(data, keep_wire_order=keep_wire_order)
    got, d = fast_result(data, impl_name, keep_wire_order=keep_wire_order)
    if impl_name == "python":
        assert got is None
        return
    assert bits(got) == bits(want)
    # the rest of the stream is the general path's business, and intact
    assert d.next_event().__class__.__name__ == "EndOfStream"


@pytest.mark.parametrize("a, opts", FRAMES)
def test_next_array_into_out(impl_name, a, opts):
    data = Encoder(implementation="python", **opts).encode(a)
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    for dt in (a.dtype.newbyteorder("<"), a.dtype.newbyteorder(">")):
        out = np.zeros(a.shape, dtype=dt, order=order)
        got, _ = fast_result(data, impl_name, out=out)
        if impl_name == "python":
            assert got is None
            continue
        assert got is out and np.array_equal(out, a)


def _misfits(a: np.ndarray) -> list:
    other = np.int8 if a.dtype.itemsize != 1 else np.int16
    c = np.zeros(a.shape, a.dtype)
    out = [
        np.zeros(a.shape, other),  # dtype
        np.zeros((*a.shape, 1), a.dtype),  # shape
        a.tolist(),  # not an ndarray
    ]
    ro = c.copy()
    ro.flags.writeable = False
    out.append(ro)
    return out


def _other_layouts(a: np.ndarray) -> list:
    """Destinations that fit but are not contiguous in the frame's order."""
    c = np.zeros(a.shape, a.dtype)
    out = []
    if a.ndim > 1 and a.size > 1:  # (an empty array is both C and Fortran contiguous)
        out.append(np.asfortranarray(c) if a.flags.c_contiguous else np.ascontiguousarray(c))
    if a.ndim and a.size > 1:
        out.append(np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)[..., ::-2])
    return out


@pytest.mark.parametrize("a, opts", FRAMES)
def test_next_array_leaves_a_misfit_out_to_the_general_path(impl_name, a, opts):
    data = Encoder(implementation="python", **opts).encode(a)
    for out in _misfits(a):
        got, d = fast_result(data, impl_name, out=out)
        assert got is None
        # nothing consumed: the general path refuses the out= and then delivers
        d.expect(out=out)
        with pytest.raises(BufferMismatchError):
            d.next_event()
        d.expect(out=None)
        assert np.array_equal(d.next_event().array, a)


@pytest.mark.parametrize("a, opts", FRAMES)
def test_next_array_leaves_other_layouts_to_the_general_path(impl_name, a, opts):
    data = Encoder(implementation="python", **opts).encode(a)
    for out in _other_layouts(a):
        got, d = fast_result(data, impl_name, out=out)
        assert got is None
        # nothing consumed: the general path fills out through the read-ahead
        d.expect(out=out)
        assert d.next_event().array is out and np.array_equal(out, a)


def test_next_array_declines_names_messages_and_limits(impl_name):
    a = np.arange(16.0)
    enc = Encoder(implementation="python")
    named = b"".join(bytes(p) for parts in enc.frame(a, name="x") for p in parts)

    def fresh() -> Encoder:
        return Encoder(implementation="python")

    cases = [
        (named, {}, None),
        (fresh().encode_message({"x": a}), {}, None),
        (fresh().end(), {}, None),
        (fresh().encode(a), {"max_frame_bytes": 127}, FrameTooLargeError),
        (fresh().encode(a.reshape(2, 8)), {"max_ndim": 1}, FrameTooLargeError),
    ]
    for data, kw, error in cases:
        got, d = fast_result(data, impl_name, **kw)
        assert got is None
        if error is not None:
            with pytest.raises(error):
                d.next_event()
        else:
            assert d.next_event() is not NEED_DATA
    # a frame numbered out of turn
    enc = Encoder(implementation="python")
    enc.encode(a)
    got, d = fast_result(enc.encode(a), impl_name)
    assert got is None
    with pytest.raises(MalformedFrameError, match="sequence"):
        d.next_event()


def test_next_array_declines_every_damaged_frame(impl_name):
    """Every single-bit flip of a frame, and every truncation: the fast path declines
    unless the general path, too, accepts the bytes -- and then gives the same array
    (a flipped payload bit without a checksum is not detectable by either)."""
    for a, opts in FRAMES[:4]:
        frame = Encoder(implementation="python", **opts).encode(a)
        for cut in range(len(frame)):
            assert fast_result(frame[:cut], impl_name)[0] is None
        for i in range(len(frame)):
            for bit in range(8):
                data = bytearray(frame)
                data[i] ^= 1 << bit
                got, _ = fast_result(bytes(data), impl_name)
                want = general_result(bytes(data))
                if isinstance(want, ProtocolError):
                    assert got is None, (a.dtype, i, bit, want)
                elif got is not None:
                    assert bits(got) == bits(want), (a.dtype, i, bit)
    # a flipped payload bit with a checksum: declined, and the general path says why
    a, opts = FRAMES[3]
    data = bytearray(Encoder(implementation="python", **opts).encode(a))
    data[70] ^= 1
    got, d = fast_result(bytes(data), impl_name)
    assert got is None
    with pytest.raises(ChecksumError):
        d.next_event()


@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 400), max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_stream_with_fast_and_general_paths_mixed(sizes, cuts, seed):
    """A transport's loop -- next_array() first, the general path when it declines --
    over a stream of small frames split anywhere gives every array, in order."""
    rng = np.random.default_rng(seed)
    arrays = [random_array(SUPPORTED[n % len(SUPPORTED)], (n,), rng) for n in sizes]
    enc = Encoder(implementation="python")
    data = b"".join(enc.encode(a) for a in arrays) + enc.end()
    pieces, pos = [], 0
    for c in cuts:
        pieces.append(data[pos : pos + c])
        pos += c
    pieces.append(data[pos:])
    dec = Decoder()
    got = []
    feed = iter(pieces)
    while True:
        a = dec.next_array()
        if a is not None:
            got.append(a)
            continue
        ev = dec.next_event()
        if ev is NEED_DATA:
            dec.receive_data(next(feed, b""))
            continue
        if not isinstance(ev, Array):
            break
        got.append(ev.array)
    assert len(got) == len(arrays)
    for x, y in zip(got, arrays, strict=True):
        assert bits(x) == bits(y.astype(y.dtype.newbyteorder("=")))


def test_after_a_large_frame_the_next_header_is_read_alone(impl_name):
    """recv_into protocol: after a large frame the decoder offers 64 bytes for the next
    header, so the next large payload lands in its array rather than in the read-ahead
    (from which it would be copied); a small frame after it still decodes."""
    from wirearray.codec import INITIAL_READAHEAD_BYTES, READAHEAD_BYTES, EndOfStream

    enc = Encoder(implementation="python")
    big = np.arange(READAHEAD_BYTES // 4, dtype="f8")  # 512 KiB: more than the read-ahead
    data = enc.encode(big) + enc.encode(big * 2) + enc.encode(np.arange(3.0)) + enc.end()
    dec = Decoder(implementation=impl_name)
    pos, offered, got = 0, [], []
    while True:
        ev = dec.next_event()
        if ev is NEED_DATA:
            buf = dec.get_buffer()
            offered.append((len(got), len(buf)))
            n = min(len(buf), len(data) - pos)
            buf[:n] = data[pos : pos + n]
            pos += n
            dec.advance(n)
            continue
        if isinstance(ev, EndOfStream):
            break
        got.append(ev.array)
    assert [len(a) for a in got] == [len(big), len(big), 3]
    assert np.array_equal(got[1], big * 2) and np.array_equal(got[2], np.arange(3.0))
    # nothing known yet: the read-ahead at its first size (it grows with the data)
    assert offered[0] == (0, INITIAL_READAHEAD_BYTES)
    after_first = [size for k, size in offered if k == 1]
    assert after_first[0] == 64  # the second frame's header, alone
    assert all(size >= 64 << 10 for size in after_first[1:-1])  # its payload: direct
