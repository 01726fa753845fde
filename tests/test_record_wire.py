"""Records and S/U/V on the wire (format version 4, docs/FORMAT.md section 3).

What arrives is held to numpy's own ``astype(dtype.newbyteorder(">"))`` byte for byte
in every field, with zeros in the padding (the sender zeroes it); round trips go
through the codec split every way and through TCP, UNIX, UDP, asyncio and ZeroMQ;
``.npy`` records go both ways with a peer process that has only numpy.  A record's
field descriptor is checked by both implementations with the same result, on random
record dtypes and on random mutations of their descriptors; hostile descriptors are
refused from the header, before anything is allocated for the frame; and a real
version-3 reader (the code this package had before version 4) refuses the frames by
their version.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import load_cwire
from helpers import FEED_MODES, decode
from netutil import Net, finish, run_peer
from test_records import field_mask, random_records, record_dtypes, same_fields
from wirearray import (
    BufferMismatchError,
    DatagramChannel,
    MalformedDescriptorError,
    MalformedFrameError,
    ProtocolError,
    SchemaMismatchError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
    fallback,
)
from wirearray import _format as F
from wirearray.codec import NEED_DATA, Decoder, Encoder, Schema
from wirearray.npy import NPY

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

PACKED = np.dtype([("x", "<f4"), ("y", ">f4"), ("t", "<u8"), ("v", "<f4", (3,))])
ALIGNED = np.dtype(
    [("id", ">u2"), ("p", [("x", "<f8"), ("c", "<c8"), ("u", ">U3")]), ("h", "<f2", (2, 2))],
    align=True,
)
STRINGS = np.dtype([("label", "S5"), ("name", "<U4"), ("raw", "V3"), ("ok", "?")])
PADDED = np.dtype(
    {"names": ["a", "b", "s"], "formats": ["<i2", ">f8", "<U2"], "offsets": [2, 8, 20],
     "itemsize": 40}
)  # fmt: skip
DEEP = np.dtype([("a", [("b", [("c", [("d", ">i8", (2,)), ("e", "M8[10ms]")])])]), ("z", "u1")])
RECORDS = [PACKED, ALIGNED, STRINGS, PADDED, DEEP]
PLAIN = [np.dtype("S7"), np.dtype("<U5"), np.dtype(">U3"), np.dtype("V6")]
DTYPES = RECORDS + PLAIN


def frame_of(enc: Encoder, a: np.ndarray, **kw) -> bytes:
    return b"".join(bytes(memoryview(b).cast("B")) for parts in enc.frame(a, **kw) for b in parts)


def wire_form(a: np.ndarray, big: bool) -> np.ndarray:
    """numpy's reference for a payload: astype to the wire's order, padding zeroed."""
    dt = a.dtype.newbyteorder(">" if big else "<")
    want = np.ascontiguousarray(a.astype(dt))
    if dt.names:
        rows = want.reshape(-1).view(np.uint8).reshape(-1, dt.itemsize)
        rows[:, ~field_mask(dt)] = 0
    return want


def same_values(got: np.ndarray, want: np.ndarray) -> None:
    """The same bytes in every field once ``want`` is in ``got``'s dtype (an ``out=``
    keeps its own padding: only fields are compared)."""
    assert got.shape == want.shape
    want = want.astype(got.dtype)
    mask = field_mask(got.dtype)
    g = np.ascontiguousarray(got).reshape(-1).view(np.uint8).reshape(-1, got.dtype.itemsize)
    w = np.ascontiguousarray(want).reshape(-1).view(np.uint8).reshape(-1, got.dtype.itemsize)
    assert np.array_equal(g[:, mask], w[:, mask])


def payload(frame: bytes) -> bytes:
    h = (frame[10] << 8) | frame[11]
    n = int.from_bytes(frame[16:24], "big")
    return frame[h : h + n]


# ---- the frame: version, code, count, descriptor, payload ----


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("policy", ["network", "native"])
def test_payload_is_numpys_astype_byte_for_byte(impl_name, dtype, policy):
    for order in ("=", "S"):
        dt = dtype.newbyteorder(order)
        a = random_records(dt, (4, 3))
        frame = frame_of(Encoder(byteorder=policy, implementation=impl_name), a, checksum=True)
        assert frame[4] == F.VERSION_RECORD
        assert frame[6] == F.dtype_code(dt) and frame[6] in F.RECORD_CODES
        big = bool(frame[7] & F.FLAG_BIG_ENDIAN)
        if policy == "network":
            assert big
        elif dt.names:  # "native" for records: the host's order
            assert big == (sys.byteorder == "big")
        assert payload(frame) == wire_form(a, big).tobytes()
        if dt.names:
            assert int.from_bytes(frame[12:16], "big") == len(F.encode_descriptor(dt))
        # both implementations write the same frame
        other = Encoder(byteorder=policy, implementation="python")
        assert frame == frame_of(other, a, checksum=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_split_every_way(impl_name, dtype):
    a = random_records(dtype, (5, 4))
    for policy in ("network", "native"):
        enc = Encoder(byteorder=policy, checksum=True, implementation=impl_name)
        data = frame_of(enc, a, name="r") + enc.encode_message({"r": a, "n": np.arange(3)})
        data += enc.end()
        for mode in FEED_MODES:
            events, err = decode(data, mode, implementation=impl_name)
            assert err is None, (mode, err)
            same_fields(
                events[0].array,
                wire_form(a, sys.byteorder == "big").view(a.dtype.newbyteorder("=")),
            )
            assert events[0].name == "r"
            same_fields(events[1].arrays["r"], events[0].array)
        for big in (False, True):  # keep_wire_order: the frame's own order, as numpy's astype
            one = Encoder(byteorder="network" if big else "native", implementation=impl_name)
            frame = frame_of(one, a)
            events, err = decode(frame, "split", eof=False, implementation=impl_name,
                                 keep_wire_order=True)  # fmt: skip
            assert err is None
            wire_big = bool(frame[7] & F.FLAG_BIG_ENDIAN)
            same_fields(events[0].array, wire_form(a, wire_big))


@SETTINGS
@given(dt=record_dtypes(), n=st.integers(0, 9), seed=st.integers(0, 2**16))
def test_hypothesis_random_records_round_trip(impl_name, dt, n, seed):
    a = random_records(dt, (n,))
    enc = Encoder(byteorder="native" if seed % 2 else "network", implementation=impl_name)
    frame = frame_of(enc, a)
    assert payload(frame) == wire_form(a, bool(frame[7] & F.FLAG_BIG_ENDIAN)).tobytes()
    events, err = decode(frame + enc.end(), "split", seed=seed, implementation=impl_name)
    assert err is None
    same_fields(events[0].array, a.astype(dt.newbyteorder("=")))


def test_out_for_records(impl_name):
    a = random_records(ALIGNED, (6, 5))
    frame = Encoder(implementation=impl_name).encode(a)
    for out in (
        np.empty((6, 5), ALIGNED),
        np.empty((6, 5), ALIGNED.newbyteorder(">")),  # received straight in: the wire's dtype
        np.empty((5, 6), ALIGNED.newbyteorder("S")).T,  # another layout
        np.empty((12, 5), ALIGNED)[::2],
    ):
        dec = Decoder(implementation=impl_name)
        dec.expect(out=out)
        dec.receive_data(frame)
        got = dec.next_event().array
        assert got is out
        same_values(got, a)
    dec = Decoder(implementation=impl_name)
    dec.expect(out=np.empty((6, 5), PACKED))
    dec.receive_data(frame)
    with pytest.raises(BufferMismatchError):
        dec.next_event()


def test_schema_names_records_and_strings(impl_name):
    a = random_records(ALIGNED, (4,))
    frame = Encoder(implementation=impl_name).encode(a)
    for ok in (Schema(ALIGNED), (ALIGNED.newbyteorder(">"), (4,)), Schema(None, (None,))):
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=ok)
        dec.receive_data(frame)
        same_fields(dec.next_event().array, a.astype(ALIGNED.newbyteorder("=")))
    for bad in (Schema(PACKED), Schema(np.dtype(ALIGNED.descr)), ("U3", None)):
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=bad)
        dec.receive_data(frame)
        with pytest.raises(SchemaMismatchError):
            dec.next_event()
    s = np.array(["ab", "cdé"], "<U3")
    dec = Decoder(implementation=impl_name)
    dec.expect(schema=("U3", (2,)))
    dec.receive_data(Encoder(implementation=impl_name).encode(s))
    assert dec.next_event().array.tolist() == ["ab", "cdé"]


@pytest.mark.parametrize(
    ("dtype", "why"),
    [
        (np.dtype([("x", "f4"), ("o", "O")]), "object"),
        (np.dtype([("x", "f4"), ("t", "M8")]), "unit"),
        (np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [0, 2]}), "overlap"),
        (np.dtype((np.int64, [("a", "<i4"), ("b", ">i4")])), "union"),
        (np.dtype({"names": ["a"], "formats": ["<i4"], "titles": ["A"]}), "title"),
        (np.dtype({"names": ["b", "a"], "formats": ["<i4", "<i4"], "offsets": [4, 0]}), "order"),
        (
            np.dtype(
                [
                    (
                        "a",
                        [
                            (
                                "b",
                                [("c", [("d", [("e", [("f", [("g", [("h", [("i", "u1")])])])])])])],
                            )
                        ],
                    )
                ]
            ),
            "deep",
        ),
        (np.dtype([(f"f{i}", "u1") for i in range(F.MAX_FIELDS + 1)]), "fields"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_what_the_format_refuses(impl_name, dtype, why):
    """Refused by the sender with a clear UnsupportedDtypeError, before anything is sent."""
    enc = Encoder(implementation=impl_name)
    with pytest.raises(UnsupportedDtypeError):
        enc.encode(np.zeros(2, dtype))
    assert enc.seq == 0
    with pytest.raises(UnsupportedDtypeError):
        Schema(dtype)


# ---- both implementations read the descriptor alike ----


def _record_header(dt: np.dtype, shape=(3,), name=b"", flags=F.FLAG_BIG_ENDIAN) -> bytes:
    n = dt.itemsize
    for d in shape:
        n *= d
    return F.pack_header(F.KIND_ARRAY, F.CODE_RECORD, flags, shape, n, name, dt, 0)


def _with_descriptor(desc: bytes, shape=(3,), itemsize: int | None = None, name=b"") -> bytes:
    """A v4 record header carrying ``desc`` as it is (payload_len from ``itemsize``)."""
    ndim, h = len(shape), F.header_size(len(shape), len(name), len(desc))
    n = itemsize if itemsize is not None else 0
    for d in shape:
        n *= d
    buf = bytearray(h)
    F._FIXED.pack_into(buf, 0, F.MAGIC, 4, 1, F.CODE_RECORD, 1, ndim, len(name), h, len(desc),
                       n, 0, 0)  # fmt: skip
    struct.pack_into(f">{ndim}Q", buf, 32, *shape)
    at = 32 + 8 * ndim
    buf[at : at + len(name)] = name
    buf[at + len(name) : at + len(name) + len(desc)] = desc
    struct.pack_into(">I", buf, 28, F.crc32c(buf))
    return bytes(buf)


def _result(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # compared: both sides must raise the same
        return (type(exc), str(exc))


def _same(cw, name, *args):
    got, want = _result(getattr(cw, name), *args), _result(getattr(fallback, name), *args)
    assert got == want, (name, args)
    return want


@pytest.fixture
def cw():
    return load_cwire()


@SETTINGS
@given(dt=record_dtypes(), name=st.binary(max_size=20), shape=st.lists(st.integers(0, 4),
       max_size=3))  # fmt: skip
def test_c_and_python_agree_on_random_records(cw, dt, name, shape):
    header = _same(cw, "pack_header", F.KIND_ARRAY, F.CODE_RECORD, 1, tuple(shape),
                   dt.itemsize * int(np.prod(shape)), name, dt, 5)[1]  # fmt: skip
    r = _same(cw, "parse_header", header)
    assert r[0] == "ok" and r[1][6] == dt.newbyteorder("=")
    assert _same(cw, "header_length", header[:64]) == ("ok", len(header))


@SETTINGS
@given(dt=record_dtypes(), data=st.data())
def test_c_and_python_agree_on_mutated_descriptors(cw, dt, data):
    desc = bytearray(F.encode_descriptor(dt))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(desc) - 1))
        desc[i] = data.draw(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 44, 0xFF])))
    if data.draw(st.integers(0, 4)) == 0:
        desc = desc[: data.draw(st.integers(0, len(desc)))]
    if data.draw(st.integers(0, 4)) == 0:
        desc += bytes(data.draw(st.integers(1, 9)))
    header = _with_descriptor(bytes(desc), (2,), dt.itemsize)
    for name in ("header_length", "parse_header"):
        r = _same(cw, name, header)
        if r[0] != "ok":
            assert issubclass(r[0], MalformedFrameError), r


@pytest.mark.parametrize("impl_name2", ["cython", "python"])
def test_descriptor_check_order(impl_name2):
    """FORMAT.md section 3: the first failure of the walk is the one reported, at the
    byte where it was found."""
    impl = load_cwire() if impl_name2 == "cython" else fallback
    good = F.encode_descriptor(np.dtype([("a", "<i4"), ("b", "<f8")]))
    assert impl.parse_header(_with_descriptor(good, (1,), 12))[6] == np.dtype(
        [("a", "=i4"), ("b", "=f8")]  # native: a receiver delivers its own order
    )
    for desc, words in HOSTILE.values():
        with pytest.raises(MalformedDescriptorError, match=words):
            impl.parse_header(_with_descriptor(desc, (1,), 12))


def _rec(itemsize: int, fields: list[bytes], flags: int = 0, nfields: int | None = None) -> bytes:
    n = len(fields) if nfields is None else nfields
    return struct.pack(">IHBB", itemsize, n, flags, 0) + b"".join(fields)


def _field(name: bytes, offset: int, code: int, param: int = 0, dims=(), nested=b"") -> bytes:
    return (bytes([len(name)]) + name + struct.pack(">IBBI", offset, code, len(dims), param)
            + struct.pack(f">{len(dims)}I", *dims) + nested)  # fmt: skip


def _nest(depth: int) -> bytes:
    rec = _rec(1, [_field(b"x", 0, 3)])
    for _ in range(depth - 1):
        rec = _rec(1, [_field(b"r", 0, F.CODE_RECORD, nested=rec)])
    return rec


#: descriptors a hostile peer may send, and the words of their refusal
HOSTILE = {
    "overlap": (_rec(12, [_field(b"a", 0, 6), _field(b"b", 2, 6)]), "overlap"),
    "out of order": (_rec(12, [_field(b"a", 4, 6), _field(b"b", 0, 6)]), "overlap"),
    "past itemsize": (_rec(12, [_field(b"a", 0, 6), _field(b"b", 8, 12)]), "past"),
    "offset wraps": (_rec(12, [_field(b"a", 2**32 - 4, 6)]), "past"),
    "nested past": (
        _rec(12, [_field(b"a", 8, F.CODE_RECORD, nested=_rec(8, [_field(b"x", 0, 8)]))]),
        "past",
    ),
    "recursion": (_nest(F.MAX_DEPTH + 1), "nested more than"),
    "huge subarray": (_rec(12, [_field(b"a", 0, 12, dims=(2**16, 2**16))]), "elements"),
    "huge dim": (_rec(12, [_field(b"a", 0, 3, dims=(2**32 - 1,))]), "elements"),
    "huge subarray of records": (
        _rec(12, [_field(b"a", 0, F.CODE_RECORD, dims=(2**31 - 1,), nested=_rec(2, []))]),
        "past",
    ),
    "subarray ndim": (_rec(12, [_field(b"a", 0, 3, dims=(1,) * 33)]), "dimensions"),
    "huge itemsize": (_rec(2**32 - 1, []), "item size"),
    "many fields": (_rec(12, [], nfields=0xFFFF), "ends inside"),
    "fields over the limit": (
        _rec(600, [_field(b"%d" % i, i, 2) for i in range(513)]),
        "more than 512 fields",
    ),
    "truncated": (_rec(12, [_field(b"a", 0, 6)])[:-3], "ends inside"),
    "trailing": (_rec(12, [_field(b"a", 0, 6)]) + b"\0", "bytes after"),
    "empty": (b"", "ends inside"),
    "empty name": (_rec(12, [_field(b"", 0, 6)]), "name of 0 bytes"),
    "unknown code": (_rec(12, [_field(b"a", 0, 45)]), "unknown field dtype code"),
    "code 0": (_rec(12, [_field(b"a", 0, 0)]), "unknown field dtype code"),
    "time without multiplier": (_rec(12, [_field(b"a", 0, 22, 0)]), "parameter"),
    "number with param": (_rec(12, [_field(b"a", 0, 6, 1)]), "parameter"),
    "S of 0": (_rec(12, [_field(b"a", 0, F.CODE_BYTES, 0)]), "parameter"),
    "huge U": (_rec(12, [_field(b"a", 0, F.CODE_UNICODE, 2**30)]), "parameter"),
    "record flags": (_rec(12, [], flags=2), "flag"),
    "bad utf-8 name": (_rec(12, [_field(b"\xff", 0, 6)]), "UTF-8"),
    "repeated name": (_rec(12, [_field(b"a", 0, 6), _field(b"a", 4, 6)]), "repeated"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_descriptors_refused_before_allocation(impl_name, case):
    """Only the header arrives, announcing a payload of 1 GiB: the descriptor is
    refused from it, and the decoder allocated nothing of that size on the way."""
    desc, words = HOSTILE[case]
    header = _with_descriptor(desc, (2**26,), 12)  # 768 MiB announced
    tracemalloc.start()
    try:
        for mode in FEED_MODES:
            events, err = decode(header, mode, eof=False, implementation=impl_name,
                                 max_frame_bytes=2**31)  # fmt: skip
            assert events == [] and isinstance(err, MalformedDescriptorError), (mode, err)
            assert isinstance(err, ProtocolError) and words in str(err), str(err)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_descriptor_length_bounded_from_the_first_64_bytes(impl_name):
    header = bytearray(_with_descriptor(_rec(12, [_field(b"a", 0, 6)]), (1,), 12))
    header[12:16] = (F.MAX_DESCRIPTOR + 1).to_bytes(4, "big")
    for claim in (F.MAX_DESCRIPTOR + 1, 2**32 - 1):
        header[12:16] = claim.to_bytes(4, "big")
        _events, err = decode(bytes(header[:64]), "whole", eof=False, implementation=impl_name)
        assert isinstance(err, MalformedDescriptorError) and "exceeds" in str(err)


# ---- older readers refuse version 4 by its version ----

#: the last commit whose reader speaks versions 1 to 3 only
V3_COMMIT = "6cee78b"

V3_READER = """
import sys
sys.path.insert(0, sys.argv[1])
from wirearray.codec import Decoder
from wirearray.exceptions import UnsupportedVersionError
dec = Decoder()
dec.receive_data(bytes.fromhex(sys.argv[2]))
try:
    dec.next_event()
except UnsupportedVersionError as exc:
    print("refused:", exc)
"""


def test_a_version_3_reader_refuses_by_version(tmp_path):
    root = Path(__file__).resolve().parent.parent
    try:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", V3_COMMIT, "src/wirearray"],
            capture_output=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no git history to take the version-3 reader from")
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(tmp_path, filter="data")
        except TypeError:  # an interpreter without extraction filters (our own archive)
            tar.extractall(tmp_path)
    for a in (np.zeros(2, ALIGNED), np.array(["ab"]), np.array([b"xy"])):
        frame = Encoder().encode(a)
        out = subprocess.run(
            [sys.executable, "-c", V3_READER, str(tmp_path / "src"), frame.hex()],
            capture_output=True, text=True, timeout=120,
            env={**{k: v for k, v in os.environ.items() if k != "WIREARRAY_REQUIRE_EXTENSION"},
                 "WIREARRAY_PUREPYTHON": "1"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "refused: wire-format version 4" in out.stdout


def test_version_4_reader_keeps_reading_older_frames(impl_name):
    enc = Encoder(implementation=impl_name)
    assert enc.encode(np.arange(3))[4] == 1
    assert enc.encode(np.zeros(3, "M8[ns]"))[4] == 3
    assert enc.encode(np.zeros(3, PACKED))[4] == 4
    with pytest.raises(UnsupportedVersionError):
        fallback.header_length(bytes([*F.MAGIC, 5]) + bytes(59))


# ---- .npy: a peer with numpy only ----

NUMPY_PEER = """
import socket, json
from numpy.lib import format as npformat
host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
f = sock.makefile("rwb", buffering=0)
specs = json.loads(sys.argv[2])
for descr, n in specs:
    dt = np.lib.format.descr_to_dtype(descr if isinstance(descr, str) else
        [tuple(tuple(x) if isinstance(x, list) and x and isinstance(x[0], int) else x
               for x in field) for field in descr])
    a = np.frombuffer(np.arange(n * dt.itemsize, dtype=np.uint32).astype(np.uint8).tobytes(), dt)
    npformat.write_array(f, a)
for _ in specs:
    b = npformat.read_array(f)
    print(json.dumps([npformat.dtype_to_descr(b.dtype), b.tobytes().hex()]), flush=True)
sock.shutdown(socket.SHUT_WR)
assert "wirearray" not in sys.modules
"""

NPY_DTYPES = [
    np.dtype([("x", "<f4"), ("t", "<M8[10ms]"), ("s", "S3")]),
    np.dtype([("x", ">f8"), ("u", ">U2"), ("v", ">i2", (2, 3))]),
    np.dtype([("n", [("a", "u1"), ("b", "<i4")]), ("c", "<c8")], align=True),
    np.dtype("<M8[10ms]"),
    np.dtype(">m8[3W]"),
    np.dtype("<U3"),
    np.dtype("S4"),
]


@pytest.mark.parametrize("layer", ["blocking", "asyncio"])
def test_npy_with_a_numpy_only_peer(layer):
    from numpy.lib import format as npformat

    big_host = sys.byteorder == "big"

    specs = [[npformat.dtype_to_descr(dt), 5] for dt in NPY_DTYPES]
    with Net(layer).listen("127.0.0.1:0", format="npy") as listener:
        host, port = listener.address
        proc = run_peer(NUMPY_PEER, f"{host}:{port}", json.dumps(specs))
        with listener.accept() as ch:
            got = [ch.recv() for _ in NPY_DTYPES]
            for a in got:  # back, as wirearray writes them
                ch.send(a)
            out = finish(proc)
    for dt, a in zip(NPY_DTYPES, got, strict=True):
        raw = np.arange(5 * dt.itemsize, dtype=np.uint32).astype(np.uint8).tobytes()
        want = np.frombuffer(raw, dt)
        assert a.dtype == dt.newbyteorder("=")
        mask = field_mask(dt)
        got_bytes = a.view(np.uint8).reshape(5, -1)[:, mask]
        assert np.array_equal(
            got_bytes, want.astype(a.dtype).view(np.uint8).reshape(5, -1)[:, mask]
        )
    for line, a in zip(out.splitlines(), got, strict=True):
        # what numpy read back: its reader copies records field by field into memory of
        # its own, so only the fields are ours to compare (the padding is numpy's)
        _descr, data = json.loads(line)
        back = np.frombuffer(bytes.fromhex(data), a.dtype.newbyteorder(">" if big_host else "<"))
        same_values(back, a)


def test_npy_descr_limits():
    """A .npy header's record list is read within the descriptor limits, no eval."""
    deep = "[('a', " * (F.MAX_DEPTH + 1) + "'u1'" + ")]" * (F.MAX_DEPTH + 1)
    many = "[" + ", ".join(f"('f{i}', 'u1')" for i in range(F.MAX_FIELDS + 1)) + "]"
    for descr, words in ((deep, "nested"), (many, "fields"), ("[('a', __import__)]", "name"),
                         ("[('a', '<f4'), ('b', '|O')]", "does not accept"),
                         ("[(('t', 'a'), '<f4')]", "dict")):  # fmt: skip
        text = f"{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}"
        raw = text.encode() + b" " * (-(len(text) + 11) % 64) + b"\n"
        data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw + bytes(64)
        _, err = decode(data, "whole", eof=False, framing=NPY)
        assert isinstance(err, MalformedFrameError) and words in str(err), (descr, err)
    mixed = np.zeros(2, [("a", "<i4"), ("b", ">i4")])
    buf = io.BytesIO()
    np.save(buf, mixed)
    _events, err = decode(buf.getvalue(), "whole", eof=False, framing=NPY)
    assert isinstance(err, MalformedFrameError) and "mixes byte orders" in str(err)


# ---- transports ----

ECHO = """
import json, wirearray
with wirearray.listen(sys.argv[1], timeout=60, **json.loads(sys.argv[2])) as listener:
    a = listener.address
    print(a if isinstance(a, str) else f"{a[0]}:{a[1]}", flush=True)
    with listener.accept(timeout=60) as ch:
        for item in ch:
            ch.send_many(item) if isinstance(item, dict) else ch.send(item)
"""


@pytest.mark.parametrize("layer", ["blocking", "asyncio"])
@pytest.mark.parametrize("family", ["ipv4", "unix"])
def test_round_trip_over_tcp_and_unix(layer, family, tmp_path):
    address = "127.0.0.1:0" if family == "ipv4" else f"unix:{tmp_path}/wa.sock"
    proc = run_peer(ECHO, address, json.dumps({"format": "wire"}))
    try:
        addr = proc.stdout.readline().strip()
        sent = [random_records(dt, (40, 3)) for dt in DTYPES]
        sent.append(np.asfortranarray(sent[1])[::2])
        sent.append(random_records(PACKED, (70_000, 3)))  # large: the direct receive path
        with Net(layer).connect(addr) as ch:
            for a in sent:
                for byteorder in ("network", "native"):
                    ch.send(a, byteorder=byteorder, checksum=True)
                    got = ch.recv()
                    same_fields(got, np.ascontiguousarray(a).astype(a.dtype.newbyteorder("=")))
            ch.send_many({"r": sent[0], "s": sent[-3]})
            msg = ch.recv_many(schema={"r": (PACKED, None), "s": (sent[-3].dtype, (40, 3))})
            same_fields(msg["r"], sent[0].astype(PACKED.newbyteorder("=")))
    finally:
        finish(proc)


def test_round_trip_over_udp():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=10)
    tx = DatagramChannel(remote=rx.address, timeout=10)
    try:
        for dt in DTYPES:
            a = random_records(dt, (7, 3))
            tx.send(a)
            same_fields(rx.recv(), a.astype(dt.newbyteorder("=")))
    finally:
        tx.close()
        rx.close()


def test_round_trip_over_zeromq():
    zmq = pytest.importorskip("zmq")
    import wirearray.zmq as wz

    ctx = zmq.Context()
    a_sock, b_sock = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a_sock.bind("inproc://records")
        b_sock.connect("inproc://records")
        dts = ((PACKED, 5), (ALIGNED, 20_000), (STRINGS, 0), (np.dtype(">U3"), 30_000))
        for dt, n in (*dts, (np.dtype("S5"), 7), (np.dtype("V3"), 40_000)):
            a = random_records(dt, (n,))
            # a converted send first leaves non-zero bytes in the sender's staging buffers,
            # where a record's padding must not pick them up
            wz.send_array(a_sock, np.full(max(1, a.nbytes // 8), np.nan))
            wz.recv_array(b_sock)
            for byteorder in ("network", "native"):
                wz.send_array(a_sock, a, byteorder=byteorder, checksum=True)
                got = wz.recv_array(b_sock, schema=(dt, None))
                same_fields(got, a.astype(dt.newbyteorder("=")))
                out = np.empty(n, dt)
                wz.send_array(a_sock, a, byteorder=byteorder)
                assert wz.recv_array(b_sock, out=out) is out
                same_values(out, a)
            wz.send_many(a_sock, {"r": a})
            same_fields(wz.recv_many(b_sock)["r"], a.astype(dt.newbyteorder("=")))
    finally:
        a_sock.close(0)
        b_sock.close(0)
        ctx.term()


def test_fast_paths_decline_and_the_general_path_delivers(impl_name):
    a = random_records(ALIGNED, (3,))
    enc = Encoder(implementation=impl_name)
    assert enc.encode_small(a) is None
    frame = enc.encode(a)
    dec = Decoder(implementation=impl_name)
    dec.receive_data(frame)
    assert dec.next_array() is None
    same_fields(dec.next_event().array, a.astype(ALIGNED.newbyteorder("=")))


@pytest.mark.parametrize("policy", ["network", "native"])
def test_large_records_convert_chunk_by_chunk(impl_name, policy):
    """Over one staging buffer, a record array is converted chunk by chunk (C and
    Fortran order): the same bytes as numpy's astype, padding zero."""
    for a in (
        random_records(ALIGNED, (40_000,)),
        np.asfortranarray(random_records(PACKED, (300, 500))),
    ):
        enc = Encoder(
            byteorder=policy, checksum=True, chunk_bytes=1 << 16, implementation=impl_name
        )
        frame = frame_of(enc, a)
        big = bool(frame[7] & F.FLAG_BIG_ENDIAN)
        order = "F" if a.ndim > 1 else "C"
        assert frame[7] & F.FLAG_FORTRAN == (F.FLAG_FORTRAN if order == "F" else 0)
        want = np.asarray(wire_form(a, big), order=order).reshape(-1, order=order)
        assert payload(frame) == want.tobytes()
        events, err = decode(frame, "recv", eof=False, implementation=impl_name)
        assert err is None
        same_fields(
            np.ascontiguousarray(events[0].array),
            wire_form(a, big).astype(a.dtype.newbyteorder("=")),
        )


@pytest.mark.parametrize("policy", [True, False, None])
def test_zeromq_staging_never_leaks_into_padding(impl, policy):
    """A record payload copied into a reused staging buffer (ZeroMQ's copying sends)
    is its bytes, padding zeros included: the buffer's old bytes never travel."""
    pytest.importorskip("zmq")
    from wirearray import _zmq_message as zm
    from wirearray._zmq_staging import _StagingPool

    a = random_records(ALIGNED, (zm.ZERO_COPY_BYTES // ALIGNED.itemsize + 10,))
    pool = _StagingPool()
    dirty = np.full(-(-a.nbytes // (64 << 10)) * (64 << 10), 0xEE, np.uint8)
    pool.give(dirty, None)  # the buffer a previous send used
    parts = zm._Parts()
    zm._encode_array(parts, impl, pool, a, None, policy, False, True, 0)
    data = b"".join(bytes(memoryview(p).cast("B")) for p, _ in parts.parts)
    big = bool(data[7] & F.FLAG_BIG_ENDIAN)
    assert payload(data) == wire_form(a, big).tobytes()


@pytest.mark.parametrize("fresh", [False, True], ids=["into-out", "fresh"])
def test_a_swapped_record_payload_is_converted_where_it_lands(impl_name, fresh):
    """A network-order record frame received into out= (or a new array of native
    fields) lands in that array's own memory and is swapped there (on a little-endian
    host; a big-endian one receives it as it is): no second array of the payload's
    size, and the values are numpy's."""
    dt = np.dtype([("x", "f4"), ("y", "f4"), ("t", "u8"), ("k", "i2")], align=True)  # native
    a = np.zeros(1 << 18, dt)  # 6 MiB
    a["x"], a["t"], a["k"] = np.arange(a.size), np.arange(a.size) * 3, -7
    frame = Encoder(implementation=impl_name).encode(a)
    dec = Decoder(implementation=impl_name)
    out = None if fresh else np.full(a.shape, 1, dt)
    dec.expect(out=out)
    tracemalloc.start()
    try:
        mv = memoryview(frame)
        for k in range(0, len(mv), 1 << 20):
            dec.receive_data(mv[k : k + (1 << 20)])
            while (ev := dec.next_event()) is not NEED_DATA:
                got = ev.array
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.dtype == dt
    same_fields(got, a)
    if not fresh:
        assert got is out
    # fresh: the array itself (6 MiB) and the read-ahead; never a second copy (the
    # fallback's swap in place goes through numpy, field by field, with temporaries)
    if impl_name == "cython":
        assert peak < (a.nbytes + (2 << 20) if fresh else 2 << 20), peak
