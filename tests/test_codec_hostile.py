"""The Decoder against hostile and broken input, for both implementations of the core.

Every value of every one-byte header field (with the header CRC recomputed, so the
field checks themselves run, and without, so the CRC must catch it); crafted headers
with lengths and dimensions near 2**64; frames truncated at every offset; every single
bit flipped; forged terabyte headers under tracemalloc; the configured limits.  In every
case only a ProtocolError may come out, the decoder then refuses further use, and what
it delivered before stays intact.  Plus the fuzz harness's TestOneInput on random and
mutated valid streams.
"""

from __future__ import annotations

import importlib.util
import pathlib
import tracemalloc

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from helpers import EOF, decode, outcome, same_bytes
from wirearray import _format as F
from wirearray.codec import NEED_DATA, Array, Decoder, Encoder, EndOfStream, Message
from wirearray.exceptions import (
    ChecksumError,
    FrameTooLargeError,
    MalformedFrameError,
    ProtocolError,
    StreamBrokenError,
    TruncatedStreamError,
    UnsupportedVersionError,
    WireError,
)

_spec = importlib.util.spec_from_file_location(
    "fuzz_decoder", pathlib.Path(__file__).parent / "fuzz" / "fuzz_decoder.py"
)
fuzz_decoder = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_decoder)


def with_crc(frame: bytes, offset: int = 0) -> bytes:
    """``frame`` with the CRC of the header starting at ``offset`` recomputed."""
    buf = bytearray(frame)
    h = (buf[offset + 10] << 8) | buf[offset + 11]
    h = max(F.MIN_HEADER, min(h, len(buf) - offset))
    buf[offset + 28 : offset + 32] = bytes(4)
    buf[offset + 28 : offset + 32] = F.crc32c(buf[offset : offset + h]).to_bytes(4, "big")
    return bytes(buf)


def reference_header_error(stream: bytes, offset: int) -> type | None:
    """The error the reference parser (_format) raises for the header at ``offset``."""
    try:
        h = F.header_length(stream[offset : offset + 64])
        if offset + h <= len(stream):
            F.parse_header(stream[offset : offset + h])
    except WireError as exc:
        return type(exc)
    return None


def sample(impl_name):
    """A stream of two array frames (seq 0, 1) and the arrays; the second frame has a
    two-byte name and a checksum.  Payloads hold no zero bytes."""
    enc = Encoder(checksum=True, implementation=impl_name)
    first = np.arange(1, 5, dtype=np.uint16)
    second = np.arange(0x01020304, 0x01020304 + 6, dtype=np.int32).reshape(2, 3)
    a = enc.encode(first, name="first")
    return a, enc.encode(second, name="ab"), first, second


def check_prefix_intact(events, first) -> None:
    assert isinstance(events[0], Array) and events[0].name == "first"
    assert same_bytes(events[0].array, first)


# ---- every value of every one-byte header field ----


@pytest.mark.parametrize("fix", [True, False], ids=["crc-fixed", "crc-stale"])
@pytest.mark.parametrize("offset", range(4, 12))
def test_every_value_of_one_byte_fields_in_an_array_header(impl_name, offset, fix):
    a, b, first, second = sample(impl_name)
    for value in range(256):
        frame = bytearray(b)
        frame[offset] = value
        frame = with_crc(bytes(frame)) if fix else bytes(frame)
        stream = a + frame
        events, err = decode(stream, eof=False, implementation=impl_name)
        check_prefix_intact(events, first)
        if value == b[offset]:
            assert err is None and same_bytes(events[1].array, second)
            continue
        assert err is None or isinstance(err, ProtocolError), err
        ref = reference_header_error(stream, len(a))
        if not fix:
            assert isinstance(err, MalformedFrameError) and len(events) == 1, (value, err)
            assert ref is not None and issubclass(ref, MalformedFrameError)
        if ref is not None:  # what the header parser says is what the decoder says
            assert type(err) is ref and len(events) == 1, (value, err, ref)
        # what each field's checks must say, whatever the reference parser does
        if offset == 4 and value in F.VERSIONS:  # version 2 includes version 1
            if fix:
                assert err is None and same_bytes(events[1].array, second)
        elif offset == 4:
            assert type(err) is UnsupportedVersionError
        elif offset in (10, 11) or (offset == 8 and value > 64):
            assert type(err) is MalformedFrameError
        elif offset == 5:  # kind: message and end frames carry no dtype or shape
            assert type(err) is MalformedFrameError
        elif offset == 6 and fix:  # dtype code: another of the same size reads the bytes
            if value in F.ITEMSIZE and F.ITEMSIZE[value] == 4:
                got = events[1].array
                assert got.dtype == F.DTYPES[value] and got.tobytes() == second.tobytes()
            else:
                assert type(err) is MalformedFrameError
        elif offset == 7 and fix:
            if value & ~F.FLAGS_KNOWN:
                assert type(err) is MalformedFrameError
            elif not value & F.FLAG_CHECKSUM:  # the trailer is read as (non-zero) padding
                assert type(err) is MalformedFrameError and "padding" in str(err)
            else:  # a valid frame: the same bytes, read in another order
                got = events[1].array
                order = "F" if value & F.FLAG_FORTRAN else "C"
                wire = np.dtype("i4").newbyteorder(">" if value & F.FLAG_BIG_ENDIAN else "<")
                payload = b[64 : 64 + 24]
                want = np.frombuffer(payload, wire).reshape((2, 3), order=order)
                assert same_bytes(got, want.astype("i4")) and got.flags.f_contiguous == (
                    order == "F"
                )


@pytest.mark.parametrize("fix", [True, False], ids=["crc-fixed", "crc-stale"])
@pytest.mark.parametrize("which", ["message", "end"])
def test_every_value_of_one_byte_fields_in_message_and_end_headers(impl_name, which, fix):
    enc = Encoder(implementation=impl_name)
    head = enc.encode(np.ones(2, np.int8), name="first")
    if which == "message":
        frame = enc.encode_message({"x": np.arange(3, dtype=np.int8)})
    else:
        frame = enc.end()
    for offset in range(4, 12):
        for value in range(256):
            mutated = bytearray(frame)
            mutated[offset] = value
            mutated = with_crc(bytes(mutated)) if fix else bytes(mutated)
            events, err = decode(head + mutated, implementation=impl_name)
            check_prefix_intact(events, np.ones(2, np.int8))
            # version 2 readers read version 1 and 2 frames alike (FORMAT.md section 9)
            if value == frame[offset] or (offset == 4 and value in F.VERSIONS and fix):
                if which == "end":
                    assert err is None and isinstance(events[1], EndOfStream) and events[2] == EOF
                else:  # a message, then EOF without END
                    assert isinstance(events[1], Message) and len(events) == 2
                    assert type(err) is TruncatedStreamError and err.received == 0
                continue
            assert isinstance(err, ProtocolError), (offset, value)
            ref = reference_header_error(head + mutated, len(head))
            if not fix or offset != 5 or value not in F.KINDS:
                assert ref is not None
            if ref is not None:
                assert type(err) is ref and len(events) == 1, (offset, value, err)


@pytest.mark.parametrize("fix", [True, False], ids=["crc-fixed", "crc-stale"])
def test_other_header_bytes(impl_name, fix):
    """Bytes 12..63 (count, payload length, sequence, CRC, shape, name, padding)."""
    a, b, first, _ = sample(impl_name)
    for offset in range(12, 64):
        if fix and 28 <= offset < 32:
            continue  # the CRC itself would be recomputed
        for value in {0, 1, 0x7F, 0x80, 0xFF, b[offset] ^ 1, b[offset] ^ 0x80} - {b[offset]}:
            frame = bytearray(b)
            frame[offset] = value
            frame = with_crc(bytes(frame)) if fix else bytes(frame)
            events, err = decode(a + frame, implementation=impl_name)
            check_prefix_intact(events, first)
            assert isinstance(err, ProtocolError), (offset, value)
            ref = reference_header_error(a + frame, len(a))
            if not fix:
                assert ref is MalformedFrameError
            if ref is not None:
                assert type(err) is ref and len(events) == 1
            elif 24 <= offset < 28:  # the sequence number
                assert type(err) is MalformedFrameError and "sequence" in str(err)


# ---- crafted headers: huge lengths, dimensions and overflowing products ----

U64 = 2**64 - 1
HUGE = [
    # (dtype code, shape, payload length, error with default limits, with no byte limit)
    (3, (2**63,), 2**63, FrameTooLargeError, MalformedFrameError),
    (3, (U64,), U64, FrameTooLargeError, MalformedFrameError),
    (12, (2**61 - 1,), 8 * (2**61 - 1), FrameTooLargeError, MalformedFrameError),
    (3, (2**32, 2**32), 0, MalformedFrameError, MalformedFrameError),  # wraps to 0
    (6, (2**62,), 0, MalformedFrameError, MalformedFrameError),  # 4 * 2**62 wraps to 0
    (14, (2**60,), 0, MalformedFrameError, MalformedFrameError),
    (3, (3, 2**63), 2**63, MalformedFrameError, MalformedFrameError),  # wraps to 2**63
    (3, (U64, U64), 1, MalformedFrameError, MalformedFrameError),  # wraps to 1
    (3, (2,) * 64, 0, MalformedFrameError, MalformedFrameError),  # 2**64 wraps to 0
    (3, (0, U64), 0, MalformedFrameError, MalformedFrameError),  # not representable
    (3, (2**63, 0), 0, MalformedFrameError, MalformedFrameError),
    (12, (0, 2**62), 0, MalformedFrameError, MalformedFrameError),  # 8 * 2**62 > intp
    (3, (2**40,), 2**40, FrameTooLargeError, None),
    (3, (1 << 30, 2), 1 << 31, FrameTooLargeError, None),
    (3, (U64, 0, U64), 1, MalformedFrameError, MalformedFrameError),
]


@pytest.mark.parametrize("case", HUGE, ids=str)
def test_crafted_huge_headers(impl_name, impl, case):
    code, shape, length, default_err, unlimited_err = case
    header = impl.pack_header(F.KIND_ARRAY, code, 0, shape, length)
    assert header == F.pack_header(F.KIND_ARRAY, code, 0, shape, length)
    for limits, want in [({}, default_err), ({"max_frame_bytes": 2**64}, unlimited_err)]:
        if want is None:
            continue
        for mode in ("whole", "bytes"):
            events, err = decode(header, mode, implementation=impl_name, **limits)
            assert events == [] and type(err) is want, (limits, mode, err)


def test_crafted_message_and_end_headers(impl_name, impl):
    def check(header, want, **kw):
        events, err = decode(header, implementation=impl_name, **kw)
        assert events == [] and type(err) is want, (err, want)

    for count in (1025, 2**31, 2**32 - 1):
        check(impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", count), FrameTooLargeError)
    # allowed by the limit: nothing is allocated by count, the stream simply ends
    _, err = decode(
        impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", 2**32 - 1),
        implementation=impl_name,
        max_message_arrays=2**32,
    )
    assert type(err) is TruncatedStreamError and err.received == 0
    for args in [(0, 0, (), U64), (0, 0, (1,), 0), (1, 0, (), 0), (0, 1, (), 0)]:
        code, flags, shape, length = args
        for kind in (F.KIND_MESSAGE, F.KIND_END):
            check(impl.pack_header(kind, code, flags, shape, length), MalformedFrameError)
    check(impl.pack_header(F.KIND_END, 0, 0, (), 0, b"", 1), MalformedFrameError)
    check(impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"x", 1), MalformedFrameError)
    # names: not UTF-8, or missing inside a message
    for name in (b"\xff" * 255, b"\xc3", b"a\xed\xa0\x80"):
        check(impl.pack_header(F.KIND_ARRAY, 3, 0, (0,), 0, name), MalformedFrameError)
    msg = impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", 2)
    nameless = impl.pack_header(F.KIND_ARRAY, 3, 0, (0,), 0, b"", 0, 1)
    check(msg + nameless, MalformedFrameError)
    x = impl.pack_header(F.KIND_ARRAY, 3, 0, (0,), 0, b"x", 0, 1)
    x2 = impl.pack_header(F.KIND_ARRAY, 3, 0, (0,), 0, b"x", 0, 2)
    check(msg + x + x2, MalformedFrameError)  # a name repeated
    check(msg + x + impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", 1, 2), MalformedFrameError)
    check(msg + x + impl.pack_header(F.KIND_END, 0, 0, (), 0, b"", 0, 2), MalformedFrameError)


# ---- truncation at every offset ----


def frames_of(stream: bytes):
    """(start, end, header length, kind, inside a message) of every frame."""
    out, pos, left = [], 0, 0
    while pos < len(stream):
        h = F.header_length(stream[pos : pos + 64])
        kind, _, flags, _, length, _, count, _ = F.parse_header(stream[pos : pos + h])
        end = pos + h + length + F.frame_tail(length, bool(flags & F.FLAG_CHECKSUM))
        out.append((pos, end, h, kind, left > 0))
        left = count if kind == F.KIND_MESSAGE else max(0, left - 1)
        pos = end
    return out


def expected_truncation(stream: bytes, k: int):
    """(number of events, error or None) for ``stream[:k]`` followed by EOF."""
    frames = frames_of(stream)
    n_events, pending_message = 0, 0
    for start, end, h, kind, in_message in frames:
        if end > k:
            received = k - start
            expected = end - start if received >= h else None
            return n_events, (TruncatedStreamError, received, expected)
        if kind == F.KIND_MESSAGE:
            pending_message = int.from_bytes(stream[start + 12 : start + 16], "big")
            n_events += pending_message == 0
        elif in_message:
            pending_message -= 1
            n_events += pending_message == 0
        else:
            n_events += 1
        if end == k:
            if kind == F.KIND_END:
                return n_events, None
            if not pending_message:
                return n_events, (TruncatedStreamError, 0, None)
    raise AssertionError("k beyond the stream")


def truncation_streams(impl_name):
    r = np.random.default_rng(1)
    enc = Encoder(checksum=True, implementation=impl_name)
    yield (
        enc.encode(r.random((3, 5)), name="t")
        + enc.encode_message({"m1": np.arange(7, dtype=np.int16), "m2": np.zeros((0, 2))})
        + enc.encode(np.arange(4, dtype="u1").reshape(1, 1, 1, 1, 1, 1, 4), name="n" * 200)
        + enc.encode_message({})
        + enc.end()
        + enc.encode(np.ones(2, np.complex64))
        + enc.end()
    )
    enc = Encoder(implementation=impl_name)
    yield enc.encode(np.arange(16, dtype=np.int32)) + enc.encode(np.array(1.5), name="s")


@pytest.mark.parametrize("which", [0, 1])
def test_truncated_at_every_offset(impl_name, which):
    stream = list(truncation_streams(impl_name))[which]
    whole, err = decode(stream, implementation=impl_name)
    complete = [outcome([e], None)[0][0] for e in whole if e != EOF]
    for k in range(len(stream)):
        n_events, want = expected_truncation(stream, k)
        for mode in ("whole", "split") if k % 7 else ("whole",):
            events, err = decode(stream[:k], mode, seed=k, implementation=impl_name)
            if want is None:
                assert err is None and events[-1] == EOF and len(events) == n_events + 1, k
            else:
                assert isinstance(err, TruncatedStreamError), (k, err)
                assert (type(err), err.received, err.expected) == want, (k, str(err))
                assert len(events) == n_events, k
            got = [outcome([e], None)[0][0] for e in events if e != EOF]
            assert got == complete[: len(got)], k  # what came before is intact


def test_truncated_inside_large_payloads(impl_name):
    """EOF while the payload is being received straight into the array (and swapped)."""
    enc = Encoder(checksum=True, implementation=impl_name)
    stream = enc.encode(np.arange(150_000, dtype=np.float64)) + enc.encode(
        np.arange(70_000, dtype=np.uint8)
    )
    first_end = frames_of(stream)[0][1]
    cuts = [0, 1, 63, 64, 65, 64 + 65_537, 64 + 1_000_001, first_end - 5, first_end - 1]
    cuts += [first_end, first_end + 64, first_end + 64 + 69_999, len(stream) - 1]
    for k in cuts:
        n_events, want = expected_truncation(stream, k)
        for mode, seed in [("recv", k), ("recv-max", 0), ("split", k)]:
            events, err = decode(stream[:k], mode, seed=seed, implementation=impl_name)
            assert (type(err), err.received, err.expected) == want, (k, mode)
            assert len(events) == n_events


# ---- bit flips ----


def regions(frame: bytes):
    """Which part of a checksummed frame each byte belongs to."""
    h = int.from_bytes(frame[10:12], "big")
    length = int.from_bytes(frame[16:24], "big")
    for i in range(len(frame)):
        if i < h:
            yield "header"
        elif i < h + length:
            yield "payload"
        elif i < h + length + 4:
            yield "trailer"
        else:
            yield "padding"


FLIP_ERRORS = {
    "header": MalformedFrameError,
    "payload": ChecksumError,
    "trailer": ChecksumError,
    "padding": MalformedFrameError,
}


def test_every_bit_flip_in_a_checksummed_frame(impl_name):
    a, b, first, _ = sample(impl_name)
    enc = Encoder(checksum=True, implementation=impl_name)
    enc.encode(np.zeros(1))
    long = enc.encode(np.arange(2, 26, dtype=">u2").reshape(2, 3, 2, 2)[:, ::-1], name="L" * 80)
    assert int.from_bytes(long[10:12], "big") == 192
    for frame in (b, long):
        for i, region in enumerate(regions(frame)):
            for bit in range(8):
                bad = bytearray(frame)
                bad[i] ^= 1 << bit
                events, err = decode(a + bytes(bad), eof=False, implementation=impl_name)
                check_prefix_intact(events, first)
                assert len(events) == 1
                assert isinstance(err, FLIP_ERRORS[region]), (i, bit, region, err)
                if region != "header":
                    assert type(err) is FLIP_ERRORS[region]


def test_bit_flips_in_a_message(impl_name):
    enc = Encoder(checksum=True, implementation=impl_name)
    stream = enc.encode_message(
        {"x": np.arange(1, 8, dtype=np.int16), "y": np.full((2, 2), 3.25, ">f8")}
    )
    spans = frames_of(stream)
    for start, end, *_ in spans:
        frame = stream[start:end]
        for i, region in enumerate(regions(frame)):
            bad = bytearray(stream)
            bad[start + i] ^= 1 << (i % 8)
            for mode in ("whole", "recv"):
                events, err = decode(bytes(bad), mode, seed=i, implementation=impl_name)
                assert events == []  # the message is delivered whole or not at all
                assert isinstance(err, FLIP_ERRORS[region]), (start, i, region, err)


def test_checksum_off_still_checks_structure(impl_name):
    """Without a checksum a payload flip goes unnoticed, but the padding is checked."""
    enc = Encoder(implementation=impl_name)
    frame = enc.encode(np.arange(3, dtype=np.int32))
    bad = bytearray(frame)
    bad[64] ^= 1
    (ev,), err = decode(bytes(bad), eof=False, implementation=impl_name)
    assert err is None and ev.array[0] == 1 << 24
    bad = bytearray(frame)
    bad[-1] ^= 1
    events, err = decode(bytes(bad), eof=False, implementation=impl_name)
    assert events == [] and type(err) is MalformedFrameError


def test_broken_decoder_refuses_everything(impl_name):
    a, b, first, _ = sample(impl_name)
    bad = bytearray(b)
    bad[70] ^= 4
    dec = Decoder(implementation=impl_name)
    buf = dec.get_buffer()
    buf[: len(a) + len(bad)] = a + bad
    dec.advance(len(a) + len(bad))
    ev = dec.next_event()
    with pytest.raises(ChecksumError) as info:
        dec.next_event()
    for call in (
        dec.next_event,
        dec.get_buffer,
        lambda: dec.advance(0),
        lambda: dec.receive_data(b"more"),
        lambda: dec.expect(out=None),
    ):
        with pytest.raises(StreamBrokenError) as again:
            call()
        assert again.value.__cause__ is info.value
    assert same_bytes(ev.array, first) and ev.array.flags.writeable


# ---- forged sizes and limits ----


def _peak_while(fn) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_tracemalloc_sees_numpy_allocations():
    """The control for the tests below: a 2 MiB array shows in the peak."""
    assert _peak_while(lambda: np.empty(2 << 20, np.uint8)) > 2 << 20


@pytest.mark.parametrize(
    "code, shape",
    [(3, (2**40,)), (12, (2**37,)), (14, (2**18, 2**18)), (2, (2**20, 1, 2**20))],
    ids=str,
)
@pytest.mark.parametrize("mode", ["whole", "bytes", "recv", "message"])
def test_terabyte_header_allocates_nothing(impl_name, code, shape, mode):
    header = F.pack_header(
        F.KIND_ARRAY, code, 0, shape, 2**40, b"x", 0, 1 if mode == "message" else 0
    )
    if mode == "message":
        header = F.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", 1) + header
    dec = Decoder(implementation=impl_name)  # (its read-ahead buffer is not the point)

    def feed():
        with pytest.raises(FrameTooLargeError):
            if mode == "recv":
                buf = dec.get_buffer()
                buf[: len(header)] = header
                dec.advance(len(header))
                dec.next_event()
            elif mode == "bytes":
                for i in range(len(header)):
                    dec.receive_data(header[i : i + 1])
                    assert dec.next_event() is NEED_DATA
            else:
                dec.receive_data(header)
                dec.next_event()

    assert _peak_while(feed) < 1 << 20


def test_max_frame_bytes(impl_name):
    enc = Encoder(implementation=impl_name)
    stream = enc.encode(np.zeros(1000, np.uint8)) + enc.encode(np.zeros(1001, np.uint8))
    events, err = decode(stream, eof=False, implementation=impl_name, max_frame_bytes=1000)
    assert len(events) == 1 and type(err) is FrameTooLargeError
    assert decode(stream, eof=False, implementation=impl_name, max_frame_bytes=1001)[1] is None
    # a message's payloads together
    msg = Encoder(implementation=impl_name).encode_message(
        {"a": np.zeros(600, np.uint8), "b": np.zeros(400, np.uint8)}
    )
    assert decode(msg, eof=False, implementation=impl_name, max_frame_bytes=1000)[1] is None
    events, err = decode(msg, eof=False, implementation=impl_name, max_frame_bytes=999)
    assert events == [] and type(err) is FrameTooLargeError
    # zero allows only empty arrays
    empty = Encoder(implementation=impl_name).encode(np.zeros((0, 5)))
    assert decode(empty, eof=False, implementation=impl_name, max_frame_bytes=0)[1] is None


def test_max_ndim(impl_name):
    a = np.zeros((1, 2, 1))
    frame = Encoder(implementation=impl_name).encode(a)
    assert decode(frame, eof=False, implementation=impl_name, max_ndim=3)[1] is None
    _, err = decode(frame, eof=False, implementation=impl_name, max_ndim=2)
    assert type(err) is FrameTooLargeError
    scalar = Encoder(implementation=impl_name).encode(np.float32(2))
    (ev,), err = decode(scalar, eof=False, implementation=impl_name, max_ndim=0)
    assert err is None and ev.array.shape == () and ev.array == 2


def test_max_message_arrays(impl_name):
    arrays = {f"a{i}": np.full(2, i) for i in range(3)}
    msg = Encoder(implementation=impl_name).encode_message(arrays)
    (ev,), err = decode(msg, eof=False, implementation=impl_name, max_message_arrays=3)
    assert err is None and list(ev.arrays) == list(arrays)
    events, err = decode(msg, eof=False, implementation=impl_name, max_message_arrays=2)
    assert events == [] and type(err) is FrameTooLargeError
    empty = Encoder(implementation=impl_name).encode_message({})
    (ev,), err = decode(empty, eof=False, implementation=impl_name, max_message_arrays=0)
    assert err is None and isinstance(ev, Message) and ev.arrays == {}


# ---- the fuzz harness, run briefly ----


SEEDS = fuzz_decoder.seed_inputs()


@st.composite
def mutated_valid(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    data[0] = draw(st.integers(0, 255))
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        if n <= 6:
            break
        op = draw(st.sampled_from(["set", "flip", "cut", "dup", "del", "u64"]))
        i = draw(st.integers(5, n - 1))
        if op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[i:]
        elif op == "dup":
            j = draw(st.integers(i, min(n, i + 200)))
            data[i:i] = data[i:j]
        elif op == "del":
            del data[i : i + draw(st.integers(1, 70))]
        else:
            data[i : i + 8] = draw(st.sampled_from([2**64 - 1, 2**63, 2**40, 0, 1])).to_bytes(
                8, "big"
            )
    return bytes(data)


@settings(max_examples=250, deadline=None)
@given(data=st.one_of(st.binary(max_size=400), mutated_valid()))
@example(data=b"\x04\0\0\0\0" + F.pack_header(F.KIND_ARRAY, 3, 0, (2**40,), 2**40))
@example(data=b"\x10\0\0\0\0")  # empty stream, no EOF
def test_fuzz_harness(data):
    fuzz_decoder.TestOneInput(data)


def test_fuzz_harness_can_fail(monkeypatch):
    """The harness catches an exception that is not a WireError."""
    seed = SEEDS[0]
    fuzz_decoder.TestOneInput(seed)

    def broken(self, *args):
        raise IndexError("boom")

    monkeypatch.setattr(Decoder, "_finish_frame", broken)
    with pytest.raises(IndexError):
        fuzz_decoder.TestOneInput(seed)


def test_fuzz_harness_runs_every_implementation(impl_name):
    assert impl_name in fuzz_decoder.IMPLEMENTATIONS
