"""Wire-format primitives: the compiled and the pure-Python implementations agree.

pack_header, header_length, parse_header and crc32c of ``wirearray._cwire`` and
``wirearray.fallback`` (i.e. ``wirearray._format``) must give the same bytes, the same
results and the same exceptions with the same messages, on valid and invalid input.
CRC32C is checked against published vectors, incrementally, on the compiled portable
path, and on the fallback's lane-parallel path for large inputs.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import load_cwire
from wirearray import _format as F
from wirearray import fallback
from wirearray.exceptions import MalformedFrameError, UnsupportedVersionError, WireError

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def cw():
    return load_cwire()


def result(fn, *args):
    """What ``fn(*args)`` returns, or the type and message of what it raises."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # compared, not swallowed: both sides must raise the same
        return (type(exc), str(exc))


def same(cw, name, *args):
    got = result(getattr(cw, name), *args)
    want = result(getattr(fallback, name), *args)
    assert got == want, (name, args)
    return want


def fix_crc(buf: bytes) -> bytes:
    b = bytearray(buf)
    h = max(64, min(len(b), (b[10] << 8) | b[11])) if len(b) >= 12 else len(b)
    if len(b) >= 32:
        b[28:32] = bytes(4)
        b[28:32] = struct.pack(">I", F.crc32c(b[:h]))
    return bytes(b)


# ---- pack_header / parse_header / header_length ----

u64 = st.one_of(
    st.integers(0, 9),
    st.sampled_from([2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 2**64 - 1),
)
fields = st.fixed_dictionaries(
    {
        "kind": st.one_of(st.sampled_from(F.KINDS), st.integers(0, 255)),
        "code": st.one_of(st.integers(0, 45), st.integers(0, 255)),
        "flags": st.one_of(st.integers(0, 7), st.integers(0, 255)),
        "shape": st.lists(u64, max_size=64).map(tuple),
        "payload_len": u64,
        "name": st.binary(max_size=255),
        "count": st.one_of(
            st.integers(0, 3), st.sampled_from([2**31 - 1, 2**31]), st.integers(0, 2**32 - 1)
        ),
        "seq": st.integers(0, 2**32 - 1),
    }
)


#: record dtypes for the header tests (tests/test_record_wire.py draws random ones)
RECORDS = [
    np.dtype([("x", "<f4"), ("t", "<M8[10ms]"), ("s", "S3"), ("u", "<U2", (2,))]),
    np.dtype([("id", "<u2"), ("p", [("x", "<f8"), ("v", "V3")])], align=True),
    np.dtype([]),
]


@st.composite
def consistent_fields(draw):
    """Fields of a valid header of any kind (array payload = prod(shape) * itemsize)."""
    kind = draw(st.sampled_from(F.KINDS))
    seq = draw(st.integers(0, 2**32 - 1))
    if kind != F.KIND_ARRAY:
        count = draw(st.integers(0, 2**32 - 1)) if kind != F.KIND_END else 0
        name = draw(st.binary(max_size=255)) if kind == F.KIND_ERROR else b""
        return dict(
            kind=kind, code=0, flags=0, shape=(), payload_len=0, name=name, count=count, seq=seq
        )
    code = draw(st.integers(1, F.N_CODES - 1))
    # a datetime64/timedelta64 code carries its multiplier in count (FORMAT.md section 2),
    # S/U/V their length, a record its descriptor (here: its dtype, as parse_header gives it)
    count = draw(st.one_of(st.integers(1, 16), st.integers(1, 2**31 - 1))) if code >= 15 else 0
    if code == F.CODE_UNICODE:
        count = draw(st.one_of(st.integers(1, 16), st.integers(1, (2**31 - 1) // 4)))
    elif code == F.CODE_RECORD:
        count = draw(st.sampled_from(RECORDS))
    shape = draw(st.lists(st.one_of(st.integers(0, 3), st.integers(0, 2**20)), max_size=64))
    n = F.item_size(code, count)
    for d in shape:
        n *= d
    if n >= 2**64:  # make it fit: an empty array
        shape[draw(st.integers(0, len(shape) - 1))] = 0
        n = 0
    shape = tuple(shape)
    return dict(
        kind=kind,
        code=code,
        flags=draw(st.integers(0, 7)),
        shape=shape,
        payload_len=n,
        name=draw(st.binary(max_size=255)),
        count=count,
        seq=seq,
    )


def pack_args(f):
    keys = ("kind", "code", "flags", "shape", "payload_len", "name", "count", "seq")
    return tuple(f[k] for k in keys)


@SETTINGS
@given(f=consistent_fields())
def test_valid_headers_round_trip_identically(cw, f):
    header = same(cw, "pack_header", *pack_args(f))[1]
    record = isinstance(f["count"], np.dtype)
    desc = F.encode_descriptor(f["count"]) if record else b""
    h = F.header_size(len(f["shape"]), len(f["name"]), len(desc))
    assert len(header) == h and h % 64 == 0
    # FORMAT.md section 9: the lowest version that has the kind and the dtype
    version = 2 if f["kind"] in (F.KIND_ACK, F.KIND_ERROR) else 3 if f["code"] >= 15 else 1
    version = 4 if f["code"] in F.RECORD_CODES else version
    assert header[:4] == F.MAGIC and header[4] == version
    assert header[10:12] == h.to_bytes(2, "big")
    assert same(cw, "header_length", header[:64]) == ("ok", h)
    assert same(cw, "header_length", header) == ("ok", h)
    # a record's dtype comes back in this host's order (its fields' order on the wire
    # is the frame's flag, not the descriptor's)
    want = pack_args({**f, "count": f["count"].newbyteorder("=")} if record else f)
    assert same(cw, "parse_header", header) == ("ok", want)
    # memoryview and bytearray input, and a longer buffer (the header is a prefix)
    for buf in (bytearray(header), memoryview(header), header + b"\xff" * 70):
        assert same(cw, "parse_header", buf) == ("ok", want)


@SETTINGS
@given(f=fields)
def test_any_field_values_pack_and_parse_identically(cw, f):
    packed = same(cw, "pack_header", *pack_args(f))
    assert packed[0] == "ok"
    header = packed[1]
    parsed = same(cw, "parse_header", header)
    if parsed[0] == "ok":
        assert parsed[1] == pack_args(f)
    else:
        assert issubclass(parsed[0], MalformedFrameError)


@st.composite
def mutated_headers(draw):
    f = draw(st.one_of(consistent_fields(), fields))
    buf = bytearray(F.pack_header(*pack_args(f)))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        buf = bytearray(fix_crc(bytes(buf)))
    if draw(st.integers(0, 5)) == 0:
        buf = buf[: draw(st.integers(0, len(buf)))]
    return bytes(buf)


@SETTINGS
@given(buf=st.one_of(mutated_headers(), st.binary(min_size=0, max_size=200)))
def test_invalid_headers_fail_identically(cw, buf):
    for name in ("header_length", "parse_header"):
        r = same(cw, name, buf)
        if r[0] != "ok":
            assert issubclass(r[0], (WireError, ValueError))
            assert r[0] is ValueError or issubclass(r[0], MalformedFrameError)


HEADER = F.pack_header(F.KIND_ARRAY, 6, 5, (3, 4), 48, b"ab", 0, 7)
#: datetime64[10ms] (code 22), shape (3,), version 3
TIME_HEADER = F.pack_header(F.KIND_ARRAY, 22, 1, (3,), 24, b"", 10, 0)


def _v(header: bytes, version: int) -> bytes:
    """``header`` with its version byte replaced (CRC not recomputed)."""
    return header[:4] + bytes([version]) + header[5:]


def _with(offset, value, *, crc=True):
    b = bytearray(HEADER)
    b[offset : offset + len(value)] = value
    return fix_crc(bytes(b)) if crc else bytes(b)


INVALID = {
    "short": (HEADER[:63], ValueError),
    "empty": (b"", ValueError),
    "magic": (b"\x89WAX" + HEADER[4:], MalformedFrameError),
    "magic-first": (b"\x00" + HEADER[1:], MalformedFrameError),
    "version-0": (_with(4, b"\x00"), UnsupportedVersionError),
    "version-5": (_with(4, b"\x05"), UnsupportedVersionError),
    "version-255": (_with(4, b"\xff"), UnsupportedVersionError),
    "ndim-65": (_with(8, b"\x41"), MalformedFrameError),
    "ndim-255": (_with(8, b"\xff"), MalformedFrameError),
    "h-mismatch": (_with(10, b"\x00\x80"), MalformedFrameError),
    "h-zero": (_with(10, b"\x00\x00"), MalformedFrameError),
    "crc": (_with(28, b"\0\0\0\0", crc=False), MalformedFrameError),
    "crc-stale": (_with(5, b"\x02", crc=False), MalformedFrameError),
    "kind-0": (_with(5, b"\x00"), MalformedFrameError),
    "kind-4": (_with(5, b"\x04"), MalformedFrameError),
    "kind-message": (_with(5, b"\x02"), MalformedFrameError),
    "code-0": (_with(6, b"\x00"), MalformedFrameError),
    "code-41-in-v1": (_with(6, b"\x29"), MalformedFrameError),
    "code-45": (fix_crc(_v(_with(6, b"\x2d"), 4)), MalformedFrameError),
    # datetime64/timedelta64 exist from version 3 on; count holds the multiplier,
    # 1 .. 2**31 - 1 (numpy's C int), checked before anything is sized from it
    "time-v1": (fix_crc(_v(TIME_HEADER, 1)), MalformedFrameError),
    "time-v2": (fix_crc(_v(TIME_HEADER, 2)), MalformedFrameError),
    "time-code-in-v1": (_with(6, b"\x0f"), MalformedFrameError),
    "time-multiplier-0": (
        F.pack_header(F.KIND_ARRAY, 22, 0, (2,), 16, b"", 0),
        MalformedFrameError,
    ),
    "time-multiplier-2**31": (
        F.pack_header(F.KIND_ARRAY, 35, 0, (2,), 16, b"", 2**31),
        MalformedFrameError,
    ),
    "time-multiplier-max": (
        F.pack_header(F.KIND_ARRAY, 35, 0, (2,), 16, b"", 2**32 - 1),
        MalformedFrameError,
    ),
    "time-payload": (F.pack_header(F.KIND_ARRAY, 40, 0, (2,), 15, b"", 1), MalformedFrameError),
    "code-255": (_with(6, b"\xff"), MalformedFrameError),
    "code-size": (_with(6, b"\x08"), MalformedFrameError),
    "flags": (_with(7, b"\x08"), MalformedFrameError),
    "count": (_with(12, b"\0\0\0\x01"), MalformedFrameError),
    "payload": (_with(16, (49).to_bytes(8, "big")), MalformedFrameError),
    "payload-wrap": (
        fix_crc(F.pack_header(F.KIND_ARRAY, 6, 0, (2**62,), 0)),
        MalformedFrameError,
    ),
    "padding": (_with(63, b"\x01"), MalformedFrameError),
    "name-in-padding": (_with(9, b"\x01"), MalformedFrameError),
    "truncated-h": (F.pack_header(F.KIND_ARRAY, 3, 0, (1,) * 5, 1, b"x" * 100)[:64], ValueError),
    "end-count": (F.pack_header(F.KIND_END, 0, 0, (), 0, b"", 1), MalformedFrameError),
    "end-name": (F.pack_header(F.KIND_END, 0, 0, (), 0, b"n"), MalformedFrameError),
    "message-shape": (F.pack_header(F.KIND_MESSAGE, 0, 0, (0,), 0, b"", 1), MalformedFrameError),
    "message-flags": (F.pack_header(F.KIND_MESSAGE, 0, 1, (), 0, b"", 1), MalformedFrameError),
    # the close-protocol frames exist from version 2 on, and carry no array fields
    "ack-v1": (fix_crc(_v(F.pack_header(F.KIND_ACK, 0, 0, (), 0, b"", 3), 1)), MalformedFrameError),
    "error-v1": (
        fix_crc(_v(F.pack_header(F.KIND_ERROR, 0, 0, (), 0, b"why", 2), 1)),
        MalformedFrameError,
    ),
    "ack-name": (F.pack_header(F.KIND_ACK, 0, 0, (), 0, b"n", 1), MalformedFrameError),
    "ack-shape": (F.pack_header(F.KIND_ACK, 0, 0, (1,), 0, b"", 1), MalformedFrameError),
    "error-dtype": (F.pack_header(F.KIND_ERROR, 3, 0, (), 0, b"why", 1), MalformedFrameError),
    "error-payload": (F.pack_header(F.KIND_ERROR, 0, 0, (), 8, b"why", 1), MalformedFrameError),
    "kind-6-v2": (fix_crc(_v(_with(5, b"\x06"), 2)), MalformedFrameError),
}


def _two(*changes, crc=True):
    """HEADER with several fields changed (CRC recomputed afterwards unless crc=False)."""
    b = bytearray(HEADER)
    for offset, value in changes:
        b[offset : offset + len(value)] = value
    return fix_crc(bytes(b)) if crc else bytes(b)


# docs/FORMAT.md section 6: a header with two defects is reported by the earlier check
CHECK_ORDER = {
    "magic before version": (_two((0, b"\0"), (4, b"\x07")), MalformedFrameError, "bad magic"),
    "version before crc": (_two((4, b"\x07"), crc=False), UnsupportedVersionError, "version 7"),
    "version before ndim": (_two((4, b"\x07"), (8, b"\x41")), UnsupportedVersionError, "version"),
    "ndim before crc": (_two((8, b"\x41"), crc=False), MalformedFrameError, "ndim 65"),
    "header_len before crc": (
        _two((10, b"\x00\x80"), crc=False),
        MalformedFrameError,
        "header length",
    ),
    "crc before padding": (_two((63, b"\x01"), crc=False), MalformedFrameError, "checksum"),
    "crc before kind": (_two((5, b"\x09"), crc=False), MalformedFrameError, "checksum"),
    "padding before kind": (_two((63, b"\x01"), (5, b"\x09")), MalformedFrameError, "padding"),
    "kind before dtype": (_two((5, b"\x09"), (6, b"\x00")), MalformedFrameError, "kind 9"),
    "dtype before flags": (_two((6, b"\x00"), (7, b"\x08")), MalformedFrameError, "dtype code 0"),
    "flags before count": (_two((7, b"\x08"), (12, b"\0\0\0\1")), MalformedFrameError, "flag"),
    "count before length": (
        _two((12, b"\0\0\0\1"), (16, (49).to_bytes(8, "big"))),
        MalformedFrameError,
        "count",
    ),
}


@pytest.mark.parametrize("case", CHECK_ORDER)
def test_checks_run_in_the_documented_order(impl_name, case):
    from wirearray.codec import Decoder

    buf, exc, words = CHECK_ORDER[case]
    dec = Decoder(implementation=impl_name)
    dec.receive_data(buf + bytes(64))
    with pytest.raises(exc, match=words):
        dec.next_event()


@pytest.mark.parametrize("case", CHECK_ORDER)
def test_both_implementations_follow_the_order(cw, case):
    buf, exc, words = CHECK_ORDER[case]
    r = same(cw, "parse_header", buf)
    assert r[0] is exc and words in r[1], r


@pytest.mark.parametrize("case", INVALID)
def test_invalid_examples(cw, case):
    buf, exc = INVALID[case]
    r = same(cw, "parse_header", buf)
    assert r[0] is exc, r
    assert same(cw, "header_length", buf[:64])[0] in ("ok", exc)
    assert same(cw, "parse_header", memoryview(buf))[0] is exc


def test_pack_header_limits(cw):
    for args in [(1, 3, 0, (1,) * 65, 1), (1, 3, 0, (), 1, b"x" * 256)]:
        r = same(cw, "pack_header", *args)
        assert r[0] is ValueError


def test_header_examples(cw):
    """Known bytes: a little array header, the end header, and a maximal one."""
    h = same(cw, "pack_header", F.KIND_ARRAY, 6, F.FLAG_BIG_ENDIAN, (2, 3), 24, b"ab", 0, 1)[1]
    assert h[:32].hex() == (
        "89574152" "01" "01" "06" "01" "02" "02" "0040" "00000000" "0000000000000018" "00000001"
        + h[28:32].hex()
    )  # fmt: skip
    assert h[32:50] == bytes.fromhex("00000000000000020000000000000003") + b"ab"
    assert not any(h[50:])
    assert F.crc32c(h[:28] + bytes(4) + h[32:]) == int.from_bytes(h[28:32], "big")
    end = same(cw, "pack_header", F.KIND_END, 0, 0, (), 0, b"", 0, 0)[1]
    assert len(end) == 64 and end[5] == 3
    big = same(cw, "pack_header", 1, 14, 7, (1,) * 64, 16, b"\xff" * 255, 0, 2**32 - 1)[1]
    assert len(big) == F.MAX_HEADER == 832
    assert same(cw, "parse_header", big)[0] == "ok"  # (UTF-8 names are the decoder's check)


# ---- CRC32C ----

VECTORS = [
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"", 0),
]


@pytest.mark.parametrize(
    "data, want", VECTORS, ids=lambda v: v.hex()[:16] if isinstance(v, bytes) else hex(v)
)
def test_crc32c_known_vectors(impl, data, want):
    assert impl.crc32c(data) == want
    assert impl.crc32c(bytearray(data)) == want
    assert impl.crc32c(memoryview(data)) == want
    assert impl.crc32c(np.frombuffer(data, np.uint8)) == want
    assert F._crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF == want


def test_crc32c_of_multibyte_buffers(impl):
    a = np.arange(1000, dtype=np.float64)
    assert impl.crc32c(a) == impl.crc32c(a.tobytes())
    assert impl.crc32c(memoryview(a.tobytes()).cast("I")) == impl.crc32c(a.tobytes())


@SETTINGS
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=5))
def test_crc32c_incremental(impl, data, cuts):
    whole = impl.crc32c(data)
    assert whole == F._crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    crc = 0
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    for a, b in itertools.pairwise(points):
        crc = impl.crc32c(data[a:b], crc)
    assert crc == whole
    assert impl.crc32c(b"", whole) == whole


@SETTINGS
@given(data=st.binary(max_size=300), crc=st.integers(-(2**40), 2**40))
def test_crc32c_seed_argument_agrees(cw, data, crc):
    assert same(cw, "crc32c", data, crc) == ("ok", fallback.crc32c(data, crc))


def test_crc32c_errors_agree_in_type(cw):
    for bad in ("text", None, 3, [1, 2]):
        assert result(cw.crc32c, bad)[0] is TypeError
        assert result(fallback.crc32c, bad)[0] is TypeError


def test_compiled_portable_path_equals_dispatch(cw):
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes()
    for n in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 1000, 4095, 4096, 65_537, 69_999]:
        for offset in (0, 1, 3, 7):  # unaligned starts
            chunk = raw[offset : offset + n]
            for seed in (0, 1, 0xE3069283, 0xFFFFFFFF):
                want = cw.crc32c(chunk, seed)
                assert cw._crc32c_portable(chunk, seed) == want, (n, offset, seed)
                assert fallback.crc32c(chunk, seed) == want


@pytest.mark.parametrize(
    "n", [16_383, 16_384, 16_385, 16_384 + 7, 32_769, 65_537, 100_003, 262_147]
)
def test_fallback_lane_algorithm_equals_byte_loop(n):
    """Inputs of 16 KiB and more take the numpy lane path; odd lengths leave a tail."""
    rng = np.random.default_rng(n)
    data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    for seed in (0, 0x12345678):
        want = F._crc_bytes(seed ^ 0xFFFFFFFF, data) ^ 0xFFFFFFFF
        assert F.crc32c(data, seed) == want
        assert F.crc32c(memoryview(data), seed) == want
        assert F.crc32c(np.frombuffer(data, np.uint8), seed) == want
    # split, and continued: the second part takes the byte loop or the lane path again
    want = F._crc_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    for cut in (n // 3, n - 16_384, 16_383):
        assert F.crc32c(data[cut:], F.crc32c(data[:cut])) == want


def test_fallback_lane_algorithm_on_large_inputs(cw):
    """Lane counts up to 2**10 (inputs of megabytes), against the compiled CRC."""
    rng = np.random.default_rng(11)
    for n in (1 << 20, (1 << 22) + 12_345):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        assert fallback.crc32c(data) == cw.crc32c(data)
        assert fallback.crc32c(data[1:], 7) == cw.crc32c(data[1:], 7)
