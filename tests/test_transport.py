"""Transport behaviour, written once and bound to the blocking and the asyncio layer
(fixture ``net``), over IPv4, IPv6 (where ::1 exists) and UNIX sockets (``family``).

Peers are real: other processes running wirearray's blocking API, or raw sockets in
threads for the fault cases (cut, reset, stalled, dripping streams).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import wirearray
from helpers import SUPPORTED, random_array
from netutil import WAIT, Net, finish, has_ipv6, run_peer
from wirearray import (
    EndOfStreamError,
    FrameTooLargeError,
    SchemaMismatchError,
    StreamBrokenError,
    TruncatedStreamError,
)
from wirearray.codec import SMALL_FRAME_BYTES, Encoder

FAMILIES = ["ipv4", "unix"] + (["ipv6"] if has_ipv6() else [])


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


@pytest.fixture(params=FAMILIES)
def address(request, tmp_path):
    """A listen address of each family (port 0: the OS picks)."""
    return {
        "ipv4": "127.0.0.1:0",
        "ipv6": "[::1]:0",
        "unix": f"unix:{tmp_path}/wa.sock",
    }[request.param]


def show(address) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return address


# A peer process: echo every array/message back until the end of the stream.
ECHO_PEER = """
import json, wirearray
opts = json.loads(sys.argv[2])
with wirearray.listen(sys.argv[1], timeout=60, **opts) as listener:
    a = listener.address
    print(a if isinstance(a, str) else (f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"),
          flush=True)
    with listener.accept(timeout=60) as ch:
        for item in ch:
            if isinstance(item, dict):
                ch.send_many(item)
            else:
                ch.send(item)
"""

# A peer process: send arrays described on the command line, then close.
SEND_PEER = """
import json, wirearray
spec = json.loads(sys.argv[2])
with wirearray.connect(sys.argv[1], timeout=60, byteorder=spec.get("byteorder", "network")) as ch:
    for dtype, n, seed in spec["arrays"]:
        rng = np.random.default_rng(seed)
        ch.send(rng.integers(0, 255, n * np.dtype(dtype).itemsize, dtype=np.uint8).view(dtype))
"""


def expected_array(dtype: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, n * np.dtype(dtype).itemsize, dtype=np.uint8).view(dtype)


def start_echo(address: str, **opts) -> tuple:
    proc = run_peer(ECHO_PEER, address, json.dumps(opts))
    line = proc.stdout.readline().strip()
    if not line:
        finish(proc)
    return proc, line


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b.astype(a.dtype)).tobytes()
    )


class TestTransport:
    """Every test runs on both layers and every address family."""

    def test_round_trip_every_dtype_and_layout(self, net, address):
        proc, addr = start_echo(address)
        rng = np.random.default_rng(5)
        sent = []
        with net.connect(addr) as ch:
            for dtype in SUPPORTED:
                base = random_array(dtype, (6, 5, 4), rng)
                for a in (
                    base,
                    np.asfortranarray(base),
                    base[::2, ::-1, 1:],
                    base.transpose(2, 0, 1),
                    base.astype(base.dtype.newbyteorder(">")),
                    base[1, 2, 3:4].reshape(()),
                    base[:0],
                ):
                    for byteorder in ("network", "native"):
                        ch.send(a, byteorder=byteorder, checksum=byteorder == "native")
                        sent.append(a)
                        got = ch.recv()
                        assert got.dtype == a.dtype.newbyteorder("=")
                        assert bits_equal(got, a), (dtype, byteorder)
            ch.send_many({"x": sent[0], "y": sent[3], "empty": sent[6]})
            msg = ch.recv_many()
            assert list(msg) == ["x", "y", "empty"]
            assert bits_equal(msg["y"], sent[3])
        finish(proc)

    @pytest.mark.parametrize("nbytes", [0, 8, 1000 * 8, (1 << 20) + 8, 64 << 20, 256 << 20])
    def test_sizes(self, net, address, nbytes):
        if nbytes >= 64 << 20 and not address.startswith(("unix", "127")):
            pytest.skip("the large sizes run on IPv4 and UNIX only, to keep the suite fast")
        if nbytes >= 256 << 20 and not address.startswith("127"):
            pytest.skip("256 MiB runs on IPv4 only, to keep the suite fast")
        proc, addr = start_echo(address)
        a = np.arange(nbytes // 8, dtype=np.float64)
        with net.connect(addr) as ch:
            for byteorder in ("native", "network"):
                ch.send(a, byteorder=byteorder)
                out = np.empty_like(a)
                got = ch.recv(out=out)
                assert got is out and np.array_equal(out, a)
        finish(proc)

    def test_many_messages_and_iteration_to_end(self, net, address):
        spec = {"arrays": [["float32", i % 17, i] for i in range(300)] + [["int64", 50000, 7]]}
        with net.listen(address) as listener:
            proc = run_peer(SEND_PEER, show(listener.address), json.dumps(spec))
            with listener.accept() as ch:
                items = ch.all()
            finish(proc)
        assert len(items) == len(spec["arrays"])
        for got, (dtype, n, seed) in zip(items, spec["arrays"], strict=True):
            assert bits_equal(got, expected_array(dtype, n, seed))

    def test_recv_after_end_of_stream(self, net, address):
        spec = {"arrays": [["uint8", 3, 1]]}
        with net.listen(address) as listener:
            proc = run_peer(SEND_PEER, show(listener.address), json.dumps(spec))
            with listener.accept() as ch:
                assert ch.recv().tolist() == expected_array("uint8", 3, 1).tolist()
                with pytest.raises(EndOfStreamError):
                    ch.recv()
                with pytest.raises(EndOfStreamError):  # stays ended
                    ch.recv()
            finish(proc)

    def test_schema_checked_before_payload(self, net, address):
        proc, addr = start_echo(address)
        with net.connect(addr) as ch:
            ch.send(np.zeros((4, 3)))
            with pytest.raises(SchemaMismatchError):
                ch.recv(schema=(np.float32, (None, 3)))
            with pytest.raises(StreamBrokenError):
                ch.recv()
        proc.kill()
        proc.communicate()


def _raw_server(address: str, behaviours: list, ready: threading.Event, box: dict):
    """A raw-socket server thread: one connection per behaviour(conn) callable."""
    from wirearray._address import format_address, parse_address

    ep = parse_address(address)
    fam, st, proto, _, sockaddr = ep.resolve(socket.SOCK_STREAM, passive=True)[0]
    srv = socket.socket(fam, st, proto)
    srv.bind(sockaddr)
    srv.listen(16)
    srv.settimeout(WAIT)
    box["address"] = show(format_address(fam, srv.getsockname()))
    ready.set()
    try:
        for behave in behaviours:
            conn, _ = srv.accept()
            try:
                behave(conn)
            finally:
                conn.close()
    except Exception as exc:  # reported by the test
        box["error"] = exc
    finally:
        srv.close()


def raw_server(address: str, behaviours: list) -> tuple:
    ready, box = threading.Event(), {}
    t = threading.Thread(target=_raw_server, args=(address, behaviours, ready, box), daemon=True)
    t.start()
    assert ready.wait(WAIT)
    return t, box


def two_frames() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    enc = Encoder(checksum=True)
    a, b = np.arange(5.0), np.arange(3000, dtype=np.int32).reshape(30, 100)
    return enc.encode(a), enc.encode(b), a, b


class TestFaults:
    def test_peer_closes_at_every_kind_of_cut(self, net, address):
        f1, f2, a, _ = two_frames()
        cuts = [0, 1, 31, 63, 64, 65, len(f2) // 2, len(f2) - 70, len(f2) - 1]
        behaviours = [lambda c, k=k: c.sendall(f1 + f2[:k]) for k in cuts]
        t, box = raw_server(address, behaviours)
        for k in cuts:
            with net.connect(box["address"]) as ch:
                assert np.array_equal(ch.recv(), a)  # the complete frame is intact
                with pytest.raises(TruncatedStreamError) as info:
                    ch.recv()
                assert info.value.received == k
                assert info.value.expected in (None, len(f2))
                with pytest.raises(StreamBrokenError):
                    ch.recv()
        t.join(WAIT)
        assert "error" not in box

    def test_reset_mid_frame(self, net, address):
        if address.startswith("unix"):
            pytest.skip("SO_LINGER resets are a TCP feature")
        f1, f2, a, _ = two_frames()

        def reset(conn):
            conn.sendall(f1 + f2[:100])
            time.sleep(0.2)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")

        t, box = raw_server(address, [reset])
        with net.connect(box["address"]) as ch:
            assert np.array_equal(ch.recv(), a)
            with pytest.raises((ConnectionResetError, TruncatedStreamError)):
                ch.recv()
            with pytest.raises(StreamBrokenError):
                ch.recv()
        t.join(WAIT)

    def test_stalled_peer(self, net, address):
        f1, f2, a, b = two_frames()
        release = threading.Event()

        def stall_inside(conn):
            conn.sendall(f1 + f2[:200])
            release.wait(WAIT)

        def stall_between(conn):
            conn.sendall(f1)
            release.wait(WAIT)
            conn.sendall(f2)
            time.sleep(0.5)

        t, box = raw_server(address, [stall_inside, stall_between])
        with net.connect(box["address"], timeout=0.4) as ch:
            assert np.array_equal(ch.recv(), a)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                ch.recv()
            assert time.monotonic() - start < 5
            with pytest.raises(StreamBrokenError):  # the frame was half read
                ch.recv()
        release.set()
        time.sleep(0.05)
        release.clear()
        with net.connect(box["address"], timeout=0.4) as ch:
            assert np.array_equal(ch.recv(), a)
            with pytest.raises(TimeoutError):  # between frames: nothing lost
                ch.recv()
            release.set()
            assert np.array_equal(ch.recv(), b)
        t.join(WAIT)
        assert "error" not in box

    def test_dripping_sender(self, net, address):
        f1, f2, a, b = two_frames()

        def drip(conn):
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(f1)):
                conn.sendall(f1[i : i + 1])
                time.sleep(0.0002)
            conn.sendall(f2 + Encoder().end()[:0])

        t, box = raw_server(address, [drip])
        with net.connect(box["address"]) as ch:
            assert np.array_equal(ch.recv(), a)
            assert np.array_equal(ch.recv(), b)
        t.join(WAIT)

    def test_over_limit_frame_closes_only_that_connection(self, net, address):
        with net.listen(address, max_frame_bytes=1 << 20) as listener:
            addr = show(listener.address)
            big = run_peer(SEND_PEER, addr, json.dumps({"arrays": [["float64", 1 << 18, 1]]}))
            with listener.accept() as ch, pytest.raises(FrameTooLargeError):
                ch.recv()
            small = run_peer(SEND_PEER, addr, json.dumps({"arrays": [["float64", 1000, 2]]}))
            with listener.accept() as ch:
                assert np.array_equal(ch.recv(), expected_array("float64", 1000, 2))
            finish(small)
            big.kill()
            big.communicate()

    @pytest.mark.skipif(np.__version__ < "2", reason="numpy 1.x has at most 32 dimensions")
    def test_33_and_64_dimensions_by_default(self, net, address):
        arrays = [np.arange(6.0).reshape((2, 3) + (1,) * (n - 2)) for n in (33, 64)]
        with net.listen(address) as listener:

            def send() -> None:
                with wirearray.connect(listener.address, timeout=WAIT) as ch:
                    for a in arrays:
                        ch.send(a)
                    ch.send_many({"m": arrays[1]})

            t = threading.Thread(target=send)
            t.start()
            with listener.accept() as ch:
                for a in arrays:
                    got = ch.recv()
                    assert got.shape == a.shape and np.array_equal(got, a)
                assert ch.recv_many()["m"].shape == arrays[1].shape
                with pytest.raises(EndOfStreamError):
                    ch.recv()
            t.join(WAIT)

    def test_frame_over_max_ndim_is_refused_and_the_next_array_arrives(self, net, address):
        # the refused frame raises its own error; the channel stays usable, and the
        # sender's close learns that one frame did not reach the application
        first, refused, last = np.arange(3.0), np.ones((2,) * 5), np.arange(4, dtype="i2")
        box: dict = {}
        with net.listen(address, max_ndim=4) as listener:

            def send() -> None:
                with wirearray.connect(listener.address, timeout=WAIT) as ch:
                    for a in (first, refused, np.ones((1,) * 5 + (40_000,)), last):
                        ch.send(a)
                    try:
                        ch.close()
                    except wirearray.DeliveryError as exc:
                        box["error"] = exc

            t = threading.Thread(target=send)
            t.start()
            with listener.accept() as ch:
                assert np.array_equal(ch.recv(), first)
                for _ in range(2):
                    with pytest.raises(FrameTooLargeError, match="max_ndim=4"):
                        ch.recv()
                assert np.array_equal(ch.recv(), last)
                with pytest.raises(EndOfStreamError):
                    ch.recv()
            t.join(WAIT)
        err = box["error"]
        assert (err.consumed, err.sent) == (2, 4)

    def test_send_flush_false_holds_small_frames_until_flush(self, net, address):
        with wirearray.listen(address, timeout=WAIT) as listener:
            ch = net.connect(show(listener.address))
            rx = listener.accept()
            arrays = [np.arange(n, dtype="f8") for n in range(1, 6)]
            for a in arrays:
                ch.send(a, flush=False)
            assert ch.pending_bytes == 5 * 128  # five 64-byte headers + padded payloads
            rx.timeout = 0.2
            with pytest.raises(TimeoutError):  # nothing has left
                rx.recv()
            ch.flush()
            assert ch.pending_bytes == 0
            rx.timeout = WAIT
            for a in arrays:
                assert np.array_equal(rx.recv(), a)
            rx.close()  # its ACK names the 5 frames it received: ch.close() returns at once
            ch.close()

    def test_held_frames_keep_their_order(self, net, address):
        """Held frames go out before anything sent after them: at send_buffer, before
        a large array (never held), before a message, and on close()."""
        with wirearray.listen(address, timeout=WAIT) as listener:
            ch = net.connect(show(listener.address), send_buffer=1000)
            rx = listener.accept()
            got: list = []

            def receive():  # concurrently: the large array need not fit socket buffers
                with contextlib.suppress(EndOfStreamError):
                    while True:
                        got.append(rx.recv() if len(got) != 12 else rx.recv_many()["x"])

            t = threading.Thread(target=receive)
            t.start()
            small = [np.full(16, i, "f8") for i in range(12)]
            for a in small[:8]:
                ch.send(a, flush=False)
                assert ch.pending_bytes < 1000  # flushed whenever it reached 1000
            ch.send(small[8], byteorder="native", flush=False)  # the general path holds too
            ch.send(small[9].astype("i2"), checksum=True, flush=False)
            big = np.arange(SMALL_FRAME_BYTES // 8 + 1024, dtype="f8")  # over the limit
            ch.send(big, flush=False)  # too large to hold: the held frames go first
            assert ch.pending_bytes == 0
            ch.send(small[10], flush=False)
            ch.send_many({"x": small[11]})
            ch.send(small[0], flush=False)
            ch.close()  # flushes, then ends the stream
            t.join(WAIT)
            rx.close()
            want = [*small[:9], small[9].astype("i2"), big, small[10], small[11], small[0]]
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and np.array_equal(g, w)

    def test_recv_sends_held_frames_first(self, net, address):
        proc, addr = start_echo(address)
        with net.connect(addr) as ch:
            for i in range(3):
                ch.send(np.full(4, i), flush=False)  # the echo peer waits for these
                assert np.array_equal(ch.recv(), np.full(4, i))
        finish(proc)


def test_no_payload_sized_allocation_when_receiving_into_out(tmp_path):
    """recv(out=) of 64 MiB frames: traced peak memory stays far below one payload."""
    n = 8 << 20
    with wirearray.listen("127.0.0.1:0", timeout=WAIT) as listener:
        spec = {"arrays": [["float64", n, s] for s in range(3)], "byteorder": "network"}
        proc = run_peer(SEND_PEER, show(listener.address), json.dumps(spec))
        out = np.empty(n)
        peak = 0
        with listener.accept() as ch:
            tracemalloc.start()
            try:
                for s in range(3):
                    tracemalloc.reset_peak()
                    base = tracemalloc.get_traced_memory()[0]
                    got = ch.recv(out=out)
                    peak = max(peak, tracemalloc.get_traced_memory()[1] - base)
                    assert got is out
                    assert bits_equal(out, expected_array("float64", n, s))
            finally:
                tracemalloc.stop()
        finish(proc)
    assert peak < 2 << 20, f"peak traced memory {peak} bytes while receiving 64 MiB frames"


def test_address_errors():
    for bad in ["nohostport", "[::1:80", "host:notaport", "host:70000", "unix:", 42, ("h",)]:
        with pytest.raises(wirearray.AddressError):
            wirearray.connect(bad, timeout=1)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("tcp://127.0.0.1:5555", "'127.0.0.1:5555'"),
        ("unix:///tmp/wa.sock", "'unix:/tmp/wa.sock'"),
        ("ipc:///tmp/wa.sock", "'unix:/tmp/wa.sock'"),
        ("http://example.com:80", "'host:port' or 'unix:/path'"),
    ],
)
def test_url_addresses_are_refused_with_the_spelling_to_use(url, hint):
    with pytest.raises(wirearray.AddressError, match="is a URL") as info:
        wirearray.connect(url, timeout=1)
    assert hint in str(info.value)
    with pytest.raises(wirearray.AddressError, match="is a URL"):
        wirearray.listen(url)
    with pytest.raises(wirearray.AddressError, match="is a URL"):
        wirearray.DatagramChannel(local=url)


@pytest.mark.parametrize(
    "several",
    [
        {"x": np.arange(3.0)},
        [np.arange(3.0), np.arange(2.0)],
        (np.arange(3.0), "text"),
    ],
    ids=["dict", "ragged-list", "mixed-tuple"],
)
def test_several_arrays_given_to_send_point_at_send_many(net, several):
    """send(dict) / send([a, b]) is a UsageError naming send_many, raised before
    anything is numbered: the channel goes on as if the call never happened."""
    with net.listen("127.0.0.1:0") as listener:
        with net.connect(show(listener.address)) as ch:
            server = listener.accept()
            for flush in (True, False):
                with pytest.raises(wirearray.UsageError, match="send_many"):
                    ch.send(several, flush=flush)
            ch.send(np.arange(4.0))
            got = server.recv()
            assert np.array_equal(got, np.arange(4.0))
            server.close()


def test_a_masked_array_is_refused_not_sent_without_its_mask(net):
    """A frame carries values only: a MaskedArray (small or large, alone or in a
    message) is a UsageError before anything is numbered -- never its data sent with
    the mask silently dropped, as np.save would."""
    small = np.ma.masked_array(np.arange(4.0), mask=[0, 1, 0, 0])
    large = np.ma.masked_array(np.arange(100_000.0), mask=False)
    with net.listen("127.0.0.1:0") as listener:
        with net.connect(show(listener.address)) as ch:
            server = listener.accept()
            for m in (small, large):
                for flush in (True, False):
                    with pytest.raises(wirearray.UsageError, match="mask"):
                        ch.send(m, flush=flush)
            with pytest.raises(wirearray.UsageError, match="mask"):
                ch.send_many({"ok": np.ones(2), "m": small})
            ch.send(small.filled(-1.0))  # the way the message points at
            got = server.recv()
            assert np.array_equal(got, [0.0, -1.0, 2.0, 3.0])
            server.close()
    with wirearray.DatagramChannel(local="127.0.0.1:0") as dg:
        with pytest.raises(wirearray.UsageError, match="mask"):
            dg.send(small, to=dg.address)


def test_several_arrays_given_to_a_datagram_send_point_at_send_many():
    with wirearray.DatagramChannel(local="127.0.0.1:0") as ch:
        with pytest.raises(wirearray.UsageError, match="send_many"):
            ch.send({"x": np.arange(3)}, to=ch.address)


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ConnectionRefusedError):
        wirearray.connect(("127.0.0.1", port), timeout=5)


def test_stale_unix_socket_is_replaced(tmp_path):
    path = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    with wirearray.listen(f"unix:{path}") as listener:
        assert listener.address == f"unix:{path}"
        with pytest.raises(wirearray.AddressError):
            wirearray.listen(f"unix:{path}")  # in use
    assert not path.exists()  # removed on close


@pytest.mark.skipif(sys.platform == "win32", reason="sendmsg")
def test_partial_sendmsg_is_resumed():
    """A frame bigger than the socket buffers leaves through several sendmsg calls."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sender, receiver = wirearray.Channel(a, timeout=WAIT), wirearray.Channel(b, timeout=WAIT)
    x = np.random.default_rng(0).standard_normal(1 << 20)
    t = threading.Thread(target=sender.send, args=(x,))
    t.start()
    assert np.array_equal(receiver.recv(), x)
    t.join(WAIT)
    receiver.close()  # its ACK confirms the frame: the sender's close needs no wait
    sender.close()


class CountingSocket(socket.socket):
    """A real socket that counts its send calls (each is still the real system call)."""

    calls: list

    def sendmsg(self, buffers, *args):
        self.calls.append(("sendmsg", len(buffers)))
        return super().sendmsg(buffers, *args)

    def sendall(self, data, *args):
        self.calls.append(("sendall", 1))
        return super().sendall(data, *args)


@pytest.mark.parametrize("byteorder", ["native", "network"])
def test_one_send_call_per_small_frame(byteorder):
    """A small array's frame is one buffer and one call; with flush=False, many
    frames share one call."""
    a_fd, b_sock = socket.socketpair()
    a_sock = CountingSocket(fileno=a_fd.detach())
    a_sock.calls = []
    sender = wirearray.Channel(a_sock, byteorder=byteorder)
    receiver = wirearray.Channel(b_sock, timeout=WAIT)
    x = np.arange(16.0)
    for _ in range(3):
        sender.send(x)
    for _ in range(10):
        sender.send(x, flush=False)
    sender.flush()
    for _ in range(13):
        assert np.array_equal(receiver.recv(), x)
    if wirearray.IMPLEMENTATION == "cython":  # the compiled core frames it whole
        assert a_sock.calls == [("sendall", 1)] * 4
    else:  # the general path: a gather per frame; held frames are still one call
        assert a_sock.calls == [("sendmsg", 2)] * 3 + [("sendall", 1)]
    receiver.close()
    sender.close()


def test_async_senders_share_the_send_buffer_in_order():
    """Tasks sending at once -- small frames held or not, large ones, messages --
    never put frames on the wire out of sequence (the receiver checks every number)."""
    from wirearray import aio

    async def main():
        async def handler(ch):
            async for item in ch:
                got.append(item)

        got: list = []
        server = await aio.serve(handler, ("127.0.0.1", 0), timeout=WAIT)
        ch = await aio.connect(server.address, timeout=WAIT)

        async def sender(k):
            for i in range(40):
                if i % 13 == 5:
                    await ch.send(np.full(1 << 16, k, "f8"))  # large: not held
                elif i % 17 == 3:
                    await ch.send_many({"k": np.array([k, i])})
                else:
                    await ch.send(np.array([k, i]), flush=i % 3 == 0)
                if i % 7 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(sender(k) for k in range(8)))
        await ch.close()
        for _ in range(200):
            if len(got) == 320:
                break
            await asyncio.sleep(0.02)
        server.close()
        await server.wait_closed()
        return got

    import asyncio

    got = asyncio.run(main())
    assert len(got) == 320
    # each task's arrays arrive whole, in the order that task sent them
    seen: dict[int, list] = {k: [] for k in range(8)}
    for x in got:
        if isinstance(x, dict):
            k, i = x["k"].tolist()
            seen[k].append(i)
        elif x.size == 2:
            k, i = x.tolist()
            seen[k].append(i)
        else:
            assert x.size == 1 << 16 and np.all(x == x[0])
            seen[int(x[0])].append("large")
    for k in range(8):
        numbers = [i for i in seen[k] if i != "large"]
        assert numbers == sorted(numbers) and len(seen[k]) == 40


@pytest.mark.skipif(not hasattr(socket.socket, "sendmsg"), reason="no sendmsg here")
@pytest.mark.parametrize("byteorder", ["native", "network"])
def test_one_sendmsg_per_frame(byteorder):
    """Header, payload and padding leave in one sendmsg call; a payload converted to
    network order through the staging buffer leaves one call per chunk (4 MiB: see
    codec.DEFAULT_CHUNK_BYTES) -- never concatenated."""
    a_fd, b_sock = socket.socketpair()
    a_sock = CountingSocket(fileno=a_fd.detach())
    a_sock.calls = []
    sender = wirearray.Channel(a_sock, byteorder=byteorder)  # no timeout: sendmsg sends all
    receiver = wirearray.Channel(b_sock, timeout=WAIT)
    x = np.random.default_rng(0).standard_normal(9 << 17)  # 9 MiB
    t = threading.Thread(target=sender.send, args=(x,))
    t.start()
    assert np.array_equal(receiver.recv(), x)
    t.join(WAIT)
    if byteorder == "native" or sys.byteorder == "big":  # the memory is the wire's order
        assert a_sock.calls == [("sendmsg", 2)]  # header + the array itself (no padding)
    else:  # swapped through the staging buffer: [header, chunk], then one call per chunk
        assert a_sock.calls == [("sendmsg", 2)] + [("sendmsg", 1)] * 2
    receiver.close()
    sender.close()


def test_async_close_does_not_wait_forever_for_a_stuck_send():
    """close() while another task's send is stuck (the peer reads nothing) returns
    within the close timeout: waiting for the send lock is bounded too."""
    import asyncio

    from wirearray import aio

    async def main():
        srv = socket.create_server(("127.0.0.1", 0))
        ch = await aio.connect(srv.getsockname(), timeout=None)
        peer, _ = srv.accept()  # never reads
        stuck = asyncio.ensure_future(ch.send(np.zeros(8 << 20)))  # 64 MiB: fills buffers
        await asyncio.sleep(0.2)
        assert not stuck.done()
        await ch.send(np.arange(3.0), flush=False)  # held, to be sent by close()
        ch.timeout = 0.3
        start = time.monotonic()
        with pytest.raises(wirearray.DeliveryError):  # nothing was confirmed, in time
            await ch.close()
        elapsed = time.monotonic() - start
        stuck.cancel()
        with contextlib.suppress(BaseException):
            await stuck
        peer.close()
        srv.close()
        return elapsed

    async def bounded():
        return await asyncio.wait_for(main(), WAIT)  # a hang fails instead of hanging

    assert asyncio.run(bounded()) < 3
