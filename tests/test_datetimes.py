"""datetime64 and timedelta64: every unit and multiplier numpy has, NaT kept.

They are int64 underneath: the byte-order functions convert them with the int64
kernels and keep the unit and multiplier in the result's dtype; the codec carries the
unit in the dtype code and the multiplier in the header's count field (docs/FORMAT.md
sections 3 and 9).  References are numpy's own ``astype`` and ``byteswap``.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FEED_MODES, decode, layouts, same_bytes
from netutil import Net, finish, run_peer
from wirearray import (
    BufferMismatchError,
    DatagramChannel,
    MalformedFrameError,
    ProtocolError,
    SchemaMismatchError,
    UnsupportedDtypeError,
)
from wirearray import _format as F
from wirearray.codec import Decoder, Encoder, Schema
from wirearray.npy import NPY

#: numpy's datetime units, coarsest first (the order of the wire codes)
UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")
#: the largest multiplier numpy accepts (its metadata holds a C int)
MAX_MULTIPLIER = 2**31 - 1
NAT = np.iinfo(np.int64).min
ORDERS = ("=", "<", ">")

TIME_DTYPES = [f"{k}8[{m}{u}]" for k in "Mm" for u in UNITS for m in ("", "10")] + [
    "M8[2147483647as]",
    "m8[3W]",
    "M8[10ms]",
]

rng = np.random.default_rng(20261130)


def time_array(dtype, shape=(5, 6, 7)) -> np.ndarray:
    """Random int64 values of ``dtype`` (NaT, 0, -1 and both extremes among them)."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    values = rng.integers(NAT, 2**63 - 1, size=n, dtype=np.int64, endpoint=True)
    values[:5] = [NAT, 0, -1, 2**63 - 1, NAT + 1][:n]
    return values.view(dt.newbyteorder("=")).astype(dt).reshape(shape)


def time_dtypes():
    """Hypothesis: any datetime64/timedelta64 dtype numpy accepts, in any byte order."""
    return st.builds(
        lambda kind, unit, mult, order: np.dtype(f"{order}{kind}8[{mult}{unit}]"),
        st.sampled_from("Mm"),
        st.sampled_from(UNITS),
        st.one_of(st.integers(1, 16), st.integers(1, MAX_MULTIPLIER)),
        st.sampled_from(ORDERS),
    )


# ---- hton / ntoh / byteswap ----


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", TIME_DTYPES)
def test_byte_order_functions_match_numpy(impl, dtype, order):
    a = time_array(np.dtype(dtype).newbyteorder(order))
    big, nat = a.dtype.newbyteorder(">"), a.dtype.newbyteorder("=")
    h = impl.hton(a)
    assert same_bytes(h, a.astype(big))
    assert np.datetime_data(h.dtype) == np.datetime_data(a.dtype)
    n = impl.ntoh(h)
    assert same_bytes(n, a.astype(nat))
    assert same_bytes(impl.ntoh(a), a.view(a.dtype.newbyteorder(">")).astype(nat))
    assert same_bytes(impl.byteswap(a), a.byteswap())
    assert np.isnat(n.reshape(-1)[0]) and np.isnat(n.reshape(-1)[4]) is np.False_


@pytest.mark.parametrize("dtype", ["M8[ns]", ">m8[7us]"])
def test_every_layout(path_impl, dtype):
    for name, a in layouts(time_array(dtype, (6, 5, 7))).items():
        big = a.dtype.newbyteorder(">")
        assert same_bytes(path_impl.hton(a), a.astype(big)), name
        assert same_bytes(path_impl.byteswap(a), a.byteswap()), name
        assert same_bytes(path_impl.ntoh(a), a.view(big).astype(a.dtype.newbyteorder("="))), name


def test_out_and_inplace(impl):
    a = time_array("M8[10ms]", (50,))
    out = np.empty(50, "M8[s]")  # another unit: written as bytes, viewed as the result's
    r = impl.hton(a, out=out)
    assert r.dtype == np.dtype(">M8[10ms]") and np.shares_memory(r, out)
    assert r.tobytes() == a.astype(">M8[10ms]").tobytes()
    same = np.empty(50, ">M8[10ms]")
    assert impl.hton(a, out=same) is same
    b = a.copy()
    assert impl.byteswap(b, inplace=True) is b
    assert b.tobytes() == a.byteswap().tobytes()
    raw = impl.ntoh(a.astype(">m8[3W]").tobytes(), dtype="m8[3W]", shape=(5, 10))
    assert raw.dtype == np.dtype("m8[3W]") and raw.shape == (5, 10)
    assert raw.view(np.int64).ravel().tolist() == a.view(np.int64).tolist()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dt=time_dtypes(), n=st.integers(0, 40))
def test_hypothesis_units_and_multipliers(impl, dt, n):
    a = time_array(dt, (n,))
    assert same_bytes(impl.hton(a), a.astype(dt.newbyteorder(">")))
    assert same_bytes(impl.ntoh(impl.hton(a)), a.astype(dt.newbyteorder("=")))
    assert same_bytes(impl.byteswap(a), a.byteswap())


@pytest.mark.parametrize("dtype", ["M8", "m8", ">M8", "<m8"])
def test_generic_unit_refused(impl, dtype):
    """numpy keeps no generic unit in another byte order (np.empty(1, '>M8') is
    little-endian), so no result could carry one: refused, with the way out named."""
    a = np.zeros(3, dtype)
    for fn in (impl.hton, impl.ntoh, impl.byteswap):
        with pytest.raises(UnsupportedDtypeError, match="without a unit"):
            fn(a)
    with pytest.raises(UnsupportedDtypeError):
        impl.ntoh(bytes(8), dtype="M8")


# ---- the codec: frames, every feeding, schemas, out=, hostile headers ----


def _frame(enc: Encoder, a: np.ndarray, **kw) -> bytes:
    return b"".join(bytes(memoryview(b).cast("B")) for parts in enc.frame(a, **kw) for b in parts)


#: every wire code: each unit of both kinds, multipliers 1, 10 and numpy's largest
CODEC_DTYPES = [f"{k}8[{u}]" for k in "Mm" for u in UNITS] + [
    "M8[10ms]",
    "m8[3W]",
    f"m8[{MAX_MULTIPLIER}as]",
]


@pytest.mark.parametrize("dtype", CODEC_DTYPES)
@pytest.mark.parametrize("policy", ["network", "native"])
def test_frame_header_and_round_trip(impl_name, dtype, policy):
    unit, mult = np.datetime_data(np.dtype(dtype))
    for label in "<>":
        a = time_array(np.dtype(dtype).newbyteorder(label), (3, 4))
        frame = _frame(Encoder(byteorder=policy, implementation=impl_name), a, checksum=True)
        # FORMAT.md section 3: one code per kind and unit; section 2: count = multiplier;
        # section 9: version 3, so a version-1 or -2 reader refuses the frame
        assert frame[4] == F.VERSION_TIME
        assert frame[6] == (15 if dtype[0] == "M" else 28) + UNITS.index(unit)
        assert int.from_bytes(frame[12:16], "big") == mult
        assert bool(frame[7] & F.FLAG_BIG_ENDIAN) == (policy == "network" or label == ">")
        other = "python" if impl_name == "cython" else "cython"
        if other == "python" or not os.environ.get("WIREARRAY_PUREPYTHON"):
            assert frame == _frame(
                Encoder(byteorder=policy, implementation=other), a, checksum=True
            )
        for mode in FEED_MODES:
            events, err = decode(frame, mode, eof=False, implementation=impl_name)
            assert err is None and len(events) == 1, (mode, err)
            got = events[0].array
            assert same_bytes(got, a.astype(a.dtype.newbyteorder("=")))
        events, err = decode(
            frame, "split", eof=False, implementation=impl_name, keep_wire_order=True
        )
        got = events[0].array
        big = bool(frame[7] & F.FLAG_BIG_ENDIAN)
        assert same_bytes(got, a.astype(a.dtype.newbyteorder(">" if big else "<")))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dt=time_dtypes(), n=st.integers(0, 30), seed=st.integers(0, 2**16))
def test_hypothesis_codec_round_trip(impl_name, dt, n, seed):
    a = time_array(dt, (n,))
    enc = Encoder(byteorder="native" if seed % 2 else "network", implementation=impl_name)
    data = _frame(enc, a, name="t") + enc.encode_message({"t": a}) + enc.end()
    events, err = decode(data, "split", seed=seed, implementation=impl_name)
    assert err is None
    assert same_bytes(events[0].array, a.astype(dt.newbyteorder("=")))
    assert same_bytes(events[1].arrays["t"], a.astype(dt.newbyteorder("=")))


def test_schema_names_the_unit_and_multiplier(impl_name):
    a = time_array("M8[10ms]", (4,))
    frame = Encoder(implementation=impl_name).encode(a)
    for ok in (Schema("M8[10ms]"), (">M8[10ms]", (4,)), Schema(None, (None,))):
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=ok)
        dec.receive_data(frame)
        assert dec.next_event().array.dtype == np.dtype("M8[10ms]")
    for bad in ("M8[ms]", "M8[20ms]", "m8[10ms]", "i8"):
        dec = Decoder(implementation=impl_name)
        dec.expect(schema=(bad, None))
        dec.receive_data(frame)
        with pytest.raises(SchemaMismatchError, match="datetime64\\[10ms\\]"):
            dec.next_event()
    with pytest.raises(UnsupportedDtypeError):
        Schema("M8")


def test_out_of_the_same_unit_only(impl_name):
    a = time_array("m8[3W]", (2, 5))
    frame = Encoder(implementation=impl_name).encode(a)
    out = np.empty((5, 2), ">m8[3W]").T  # same dtype, another layout and byte order
    dec = Decoder(implementation=impl_name)
    dec.expect(out=out)
    dec.receive_data(frame)
    assert dec.next_event().array is out
    assert out.astype("m8[3W]").tobytes() == a.tobytes()
    for wrong in (np.empty((2, 5), "m8[W]"), np.empty((2, 5), "M8[3W]"), np.empty((2, 5), "i8")):
        dec = Decoder(implementation=impl_name)
        dec.expect(out=wrong)
        dec.receive_data(frame)
        with pytest.raises(BufferMismatchError):
            dec.next_event()


def _time_header(code: int, count: int, version: int = 3, n: int = 2**27) -> bytes:
    """A datetime frame's header announcing ``n`` elements (1 GiB), CRC valid."""
    h = bytearray(F.pack_header(F.KIND_ARRAY, code, 0, (n,), 8 * n, b"", count, 0))
    h[4] = version
    h[F.CRC_OFFSET : F.CRC_OFFSET + 4] = bytes(4)
    h[F.CRC_OFFSET : F.CRC_OFFSET + 4] = F.crc32c(bytes(h)).to_bytes(4, "big")
    return bytes(h)


@pytest.mark.parametrize(
    ("code", "count", "version", "match"),
    [
        (22, 0, 3, "multiplier 0 of a datetime64 frame"),
        (35, 2**31, 3, "multiplier 2147483648 of a timedelta64 frame"),
        (35, 2**32 - 1, 3, "multiplier 4294967295"),
        (22, 10, 1, "unknown dtype code 22"),  # a time code in a version-1 frame
        (22, 10, 2, "unknown dtype code 22"),
        (41, 1, 3, "unknown dtype code 41"),  # no such unit
        (255, 1, 3, "unknown dtype code 255"),
        (8, 10, 3, "count must be 0"),  # int64 takes no multiplier
    ],
)
def test_hostile_headers_refused_before_the_payload(impl_name, code, count, version, match):
    """Only the header arrives: the error comes from it, before anything is allocated
    for the 1 GiB it announces."""
    header = _time_header(code, count, version)
    for mode in FEED_MODES:
        events, err = decode(
            header, mode, eof=False, implementation=impl_name, max_frame_bytes=2**31
        )
        assert events == [] and isinstance(err, MalformedFrameError), (mode, err)
        assert isinstance(err, ProtocolError) and match in str(err)


def test_version_3_reader_keeps_reading_older_frames(impl_name):
    """Version 3 changes nothing for the other dtypes: their frames stay version 1."""
    enc = Encoder(implementation=impl_name)
    assert enc.encode(np.arange(3))[4] == 1
    assert enc.encode(time_array("M8[ns]", (3,)))[4] == 3
    assert enc.end()[4] == 1


# ---- .npy: numpy's own writer and reader ----


@pytest.mark.parametrize("dtype", ["M8[10ms]", ">m8[3W]", "<M8[ns]", "m8[as]", "M8[Y]"])
def test_npy_interop_with_numpy(impl_name, dtype):
    a = time_array(dtype, (3, 4))
    for arr in (a, np.asfortranarray(a)):
        buf = io.BytesIO()
        np.save(buf, arr)
        events, err = decode(
            buf.getvalue(), "split", eof=False, framing=NPY, implementation=impl_name
        )
        assert err is None
        got = events[0].array
        assert got.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")
        assert same_bytes(got.astype(a.dtype), arr)
        records = Encoder(framing=NPY, implementation=impl_name).encode(arr)
        back = np.load(io.BytesIO(records))
        assert back.dtype == arr.dtype and same_bytes(back, arr)


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
@pytest.mark.parametrize("fmt", ["wire", "npy"])
def test_round_trip_over_tcp_and_unix(layer, family, fmt, tmp_path):
    address = "127.0.0.1:0" if family == "ipv4" else f"unix:{tmp_path}/wa.sock"
    proc = run_peer(ECHO, address, json.dumps({"format": fmt}))
    try:
        addr = proc.stdout.readline().strip()
        sent = [time_array(d, (40, 3)) for d in ("M8[10ms]", ">m8[3W]", "M8[ns]", "m8[7fs]")]
        sent.append(np.asfortranarray(sent[0])[::2])
        sent.append(time_array("M8[us]", (70_000, 3)))  # received straight into the array
        sent.append(sent[-1].astype(">M8[us]"))
        with Net(layer).connect(addr, format=fmt) as ch:
            for a in sent:
                opts = {} if fmt == "npy" else {"byteorder": "native", "checksum": True}
                for byteorder in ("network",) if fmt == "npy" else ("network", "native"):
                    if fmt == "wire":
                        opts["byteorder"] = byteorder
                    ch.send(a, **opts)
                    got = ch.recv()
                    assert got.dtype.newbyteorder("=") == a.dtype.newbyteorder("=")
                    assert same_bytes(got.astype(a.dtype), np.ascontiguousarray(a))
            if fmt == "wire":
                ch.send_many({"t": sent[0], "d": sent[1]})
                msg = ch.recv_many(schema={"t": ("M8[10ms]", None), "d": ("m8[3W]", (40, 3))})
                assert same_bytes(msg["d"].astype(">m8[3W]"), sent[1])
    finally:
        finish(proc)


def test_round_trip_over_udp():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=10)
    tx = DatagramChannel(remote=rx.address, timeout=10)
    try:
        for d in ("M8[10ms]", ">m8[3W]", f"M8[{MAX_MULTIPLIER}s]"):
            a = time_array(d, (7, 3))
            tx.send(a)
            got = rx.recv()
            assert same_bytes(got, a.astype(a.dtype.newbyteorder("=")))
    finally:
        tx.close()
        rx.close()


def test_round_trip_over_zeromq():
    zmq = pytest.importorskip("zmq")
    import wirearray.zmq as wz

    ctx = zmq.Context()
    a_sock, b_sock = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    try:
        a_sock.bind("inproc://datetimes")
        b_sock.connect("inproc://datetimes")
        for d, n in (("M8[10ms]", 5), (">m8[3W]", 20_000), ("M8[ns]", 0), ("M8[s]", 300_000)):
            a = time_array(d, (n,))
            for byteorder in ("network", "native"):
                wz.send_array(a_sock, a, byteorder=byteorder, checksum=True)
                got = wz.recv_array(b_sock, schema=(d, None))
                assert same_bytes(got, a.astype(a.dtype.newbyteorder("=")))
                out = np.empty(n, d)
                wz.send_array(a_sock, a, byteorder=byteorder)
                assert wz.recv_array(b_sock, out=out) is out and same_bytes(out, a)
            wz.send_many(a_sock, {"t": a})
            assert same_bytes(wz.recv_many(b_sock)["t"], a.astype(a.dtype.newbyteorder("=")))
    finally:
        a_sock.close(0)
        b_sock.close(0)
        ctx.term()


# ---- the compiled whole-frame paths ----


@pytest.mark.parametrize("dtype", ["M8[10ms]", ">m8[3W]", "M8[as]", f"m8[{MAX_MULTIPLIER}Y]"])
@pytest.mark.parametrize("byteorder", ["network", "native"])
def test_whole_frame_paths_are_the_general_ones(impl_name, dtype, byteorder):
    """encode_small writes the general path's frame (version 3, the multiplier in
    count); next_array delivers what next_event does -- or both decline (fallback)."""
    for a in (time_array(dtype, (3, 4)), np.asfortranarray(time_array(dtype, (3, 4)))):
        fast = Encoder(byteorder=byteorder, checksum=True, implementation=impl_name)
        ref = Encoder(byteorder=byteorder, checksum=True, implementation="python")
        frame = ref.encode(a)
        got = fast.encode_small(a)
        assert got is None if impl_name == "python" else got == frame
        for keep in (False, True):
            dec = Decoder(implementation=impl_name, keep_wire_order=keep)
            dec.receive_data(frame)
            arr = dec.next_array()
            general = Decoder(implementation="python", keep_wire_order=keep)
            general.receive_data(frame)
            want = general.next_event().array
            if arr is None:
                assert impl_name == "python"
                continue
            assert same_bytes(arr, want) and arr.flags.f_contiguous == want.flags.f_contiguous
            out = np.empty(a.shape, dtype)  # an out=: left to the general path, which fits it
            dec = Decoder(implementation=impl_name)
            dec.receive_data(frame)
            assert dec.next_array(out=out) is None
            dec.expect(out=out)
            assert dec.next_event().array is out and same_bytes(out, a)
