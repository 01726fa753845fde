"""Nothing lost: a close() that returns means the peer's application has every frame
(docs/FORMAT.md section 10), and a sender learns when the receiver refused the stream.

Real sockets and real peers: the receiving side runs in another thread (blocking
layer) or on the asyncio layer's loop thread, or is the command line in another
process.  Stream counts are small here; ``WIREARRAY_DELIVERY_STREAMS=100`` runs the
figure of docs/PERFORMANCE.md (100 of 100 streams of three 8 MiB arrays delivered
whole, per transport and layer).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time

import numpy as np
import pytest

import wirearray
from netutil import WAIT, Net, run_cli, start_serve
from wirearray import DeliveryError, ErrorCode, PeerError
from wirearray.codec import Encoder

trustme = pytest.importorskip("trustme", reason="pip install trustme (in the test extra)")

STREAMS = int(os.environ.get("WIREARRAY_DELIVERY_STREAMS", "3"))
BIG = 8 << 20  # bytes per array, as in the report that found the TLS tail loss
KEY = b"d" * 32


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


def arrays_for(i: int) -> list[np.ndarray]:
    rng = np.random.default_rng(i)
    return [rng.standard_normal(BIG // 8) for _ in range(3)]


def receive_streams(listener, n: int, box: dict) -> None:
    """Accept ``n`` connections one after another; check every array of each."""
    try:
        for i in range(n):
            with listener.accept(timeout=WAIT) as ch:
                got = ch.all()
                want = arrays_for(i)
                assert len(got) == len(want), (i, len(got))
                for g, w in zip(got, want, strict=True):
                    assert np.array_equal(g, w)
        box["ok"] = n
    except BaseException as exc:
        box["error"] = exc


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix"])
def test_every_stream_arrives_whole(net, transport, tmp_path, server_ctx, client_ctx):
    """A client sends three 8 MiB arrays and closes, STREAMS times: the server gets
    every byte of every stream (over TLS a close used to end in a reset that lost
    the tail: the server's session tickets were never read), and each close()
    returns -- confirmed."""
    address = f"unix:{tmp_path}/d.sock" if transport == "unix" else "127.0.0.1:0"
    server_opts = {"ssl": server_ctx} if transport == "tls" else {}
    client_opts = {"ssl": client_ctx, "server_hostname": "localhost"} if transport == "tls" else {}
    listener = net.listen(address, **server_opts)
    box: dict = {}
    t = threading.Thread(target=receive_streams, args=(listener, STREAMS, box), daemon=True)
    t.start()
    try:
        for i in range(STREAMS):
            ch = net.connect(listener.address, **client_opts)
            for a in arrays_for(i):
                ch.send(a)
            ch.close()  # returns only once the server confirmed all three arrays
    finally:
        t.join(WAIT)
        listener.close()
    assert "error" not in box, box.get("error")
    assert box["ok"] == STREAMS


def test_close_reports_what_the_peer_did_not_receive(net):
    """The receiver's application takes one of three arrays and closes: the sender's
    close() says so (its ACK counts what was received) instead of succeeding."""
    listener = net.listen("127.0.0.1:0")
    got = []

    def receiver():
        ch = listener.accept(timeout=WAIT)
        got.append(ch.recv())
        ch.close()  # ACK(1): one frame received

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    with pytest.raises(DeliveryError) as info:  # from a send (a reset), or from close
        for k in range(3):
            ch.send(np.full(1000, float(k)))
        t.join(WAIT)
        ch.close()
    assert (info.value.consumed, info.value.sent) == (1, 3)
    t.join(WAIT)
    listener.close()


def test_both_sides_close_at_once(net):
    """Simultaneous close: each side's ACK confirms the other's stream; both return."""
    listener = net.listen("127.0.0.1:0")
    box: dict = {}
    ready = threading.Barrier(2, timeout=WAIT)

    def server():
        try:
            ch = listener.accept(timeout=WAIT)
            ch.send(np.arange(5.0))
            assert np.array_equal(ch.recv(), np.arange(3))
            ready.wait()
            ch.close()
            box["ok"] = True
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=server, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    ch.send(np.arange(3))
    assert np.array_equal(ch.recv(), np.arange(5.0))
    ready.wait()
    ch.close()
    t.join(WAIT)
    assert box.get("ok"), box.get("error")
    listener.close()


def test_frame_over_the_receivers_limit_is_reported(net):
    """The receiver refuses a frame over max_frame_bytes: it sends an ERROR frame, and
    the sender's next call (here close) raises PeerError with the code and reason."""
    listener = net.listen("127.0.0.1:0", max_frame_bytes=1 << 16)
    box: dict = {}

    def receiver():
        try:
            ch = listener.accept(timeout=WAIT)
            ch.recv()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    with pytest.raises(PeerError) as info:
        ch.send(np.zeros(1 << 20))  # 8 MiB: the refusal can arrive during the send
        ch.close()
    assert info.value.code == ErrorCode.TOO_LARGE
    assert "max_frame_bytes=65536" in info.value.reason
    t.join(WAIT)
    assert isinstance(box.get("error"), wirearray.FrameTooLargeError)
    listener.close()


def test_schema_refusal_reaches_the_sender(net):
    listener = net.listen("127.0.0.1:0")

    def receiver():
        ch = listener.accept(timeout=WAIT)
        with pytest.raises(wirearray.SchemaMismatchError):
            ch.recv(schema=("float32", (None,)))

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    ch.send(np.arange(4, dtype="i8"))
    t.join(WAIT)
    with pytest.raises(PeerError) as info:
        ch.recv()
    assert info.value.code == ErrorCode.SCHEMA and "int64" in info.value.reason


def test_abort_tells_the_peer_why(net):
    listener = net.listen("127.0.0.1:0")
    box: dict = {}

    def receiver():
        ch = listener.accept(timeout=WAIT)
        try:
            ch.recv()
            ch.recv()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    ch = net.connect(listener.address)
    ch.send(np.arange(3))
    if net.layer == "blocking":
        ch.channel.abort("disk full", code=ErrorCode.APPLICATION)
    else:
        from netutil import _Loop

        _Loop.get().run(ch.channel.abort("disk full", code=ErrorCode.APPLICATION))
    t.join(WAIT)
    err = box.get("error")
    assert isinstance(err, PeerError) and err.reason == "disk full"


def test_an_exception_in_a_with_block_aborts_instead_of_ending(net):
    """Leaving ``with channel`` by an exception does not end the stream as if it were
    whole: the peer hears that the application failed."""
    listener = net.listen("127.0.0.1:0")
    box: dict = {}

    def receiver():
        ch = listener.accept(timeout=WAIT)
        try:
            box["items"] = ch.all()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    with pytest.raises(KeyError):
        with net.connect(listener.address) as ch:
            ch.send(np.arange(3))
            raise KeyError("boom")
    t.join(WAIT)
    err = box.get("error")
    assert isinstance(err, PeerError) and err.code == ErrorCode.APPLICATION
    assert "KeyError" in err.reason


def test_a_peer_that_never_confirms():
    """A peer that ends its stream and leaves without an ACK (what a peer before the
    close handshake does): close() raises DeliveryError rather than claim delivery."""
    srv = socket.create_server(("127.0.0.1", 0))
    ch = wirearray.connect(srv.getsockname(), timeout=WAIT)
    peer, _ = srv.accept()
    ch.send(np.arange(10))
    peer.recv(1 << 16)
    peer.sendall(Encoder().end())
    peer.close()
    with pytest.raises(DeliveryError, match="without confirming"):
        ch.close()
    srv.close()


def test_close_timeout_bounds_the_wait():
    srv = socket.create_server(("127.0.0.1", 0))
    ch = wirearray.connect(srv.getsockname(), timeout=WAIT, close_timeout=0.3)
    peer, _ = srv.accept()  # reads nothing, answers nothing
    ch.send(np.arange(10))
    start = time.monotonic()
    with pytest.raises(wirearray.DeliveryTimeoutError):
        ch.close()
    assert time.monotonic() - start < WAIT / 2
    ch.close()  # idempotent
    peer.close()
    srv.close()


# ---- the sender learns that the receiver refused everything ----


def refused_once(listener, error: type) -> None:
    with pytest.raises(error):
        listener.accept(timeout=WAIT)


def test_missing_authkey_is_reported_to_the_sender():
    listener = wirearray.listen("127.0.0.1:0", authkey=KEY, handshake_timeout=5)
    t = threading.Thread(target=refused_once, args=(listener, wirearray.AuthenticationError))
    t.start()
    ch = wirearray.connect(listener.address, timeout=WAIT)
    ch.send(np.arange(3))
    with pytest.raises(DeliveryError, match="authkey"):
        ch.close()
    t.join(WAIT)
    listener.close()


def test_plain_sender_against_tls_receiver_is_told(server_ctx):
    listener = wirearray.listen("127.0.0.1:0", ssl=server_ctx, handshake_timeout=5)
    t = threading.Thread(target=refused_once, args=(listener, ssl.SSLError))
    t.start()
    ch = wirearray.connect(listener.address, timeout=WAIT)
    ch.send(np.arange(3))
    with pytest.raises(DeliveryError):
        ch.close()
    t.join(WAIT)
    listener.close()


@pytest.mark.parametrize("sender,receiver", [("wire", "npy"), ("npy", "wire")])
def test_format_mismatch_is_reported_to_the_sender(net, sender, receiver):
    listener = net.listen("127.0.0.1:0", format=receiver)

    def serve():
        ch = listener.accept(timeout=WAIT)
        with pytest.raises(wirearray.MalformedFrameError, match="format="):
            ch.recv()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ch = net.connect(listener.address, format=sender)
    ch.send(np.arange(3.0))
    t.join(WAIT)
    with pytest.raises(PeerError) as info:
        ch.close()
    assert info.value.code == ErrorCode.PROTOCOL and "format=" in info.value.reason
    listener.close()


# ---- the command line ----


cli = run_cli


def test_cli_send_over_tls_delivers_a_large_file_whole(tmp_path, ca):
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    a = np.random.default_rng(5).standard_normal(16 << 20 // 8 * 8)  # 128 MiB
    np.save(tmp_path / "big.npy", a)
    out = tmp_path / "received"
    proc, address = start_serve(
        "127.0.0.1:0",
        "--tls-cert",
        str(tmp_path / "cert.pem"),
        "--tls-key",
        str(tmp_path / "key.pem"),
        "--connections",
        "1",
        "--out",
        str(out),
    )
    try:
        r = cli("send", address, str(tmp_path / "big.npy"), "--tls-ca", str(tmp_path / "ca.pem"))
        assert r.returncode == 0, r.stderr
        assert "all received by the peer" in r.stdout
        proc.wait(WAIT)
    finally:
        proc.kill()
    got = np.load(next(out.glob("*.npy")))
    assert np.array_equal(got, a)


@pytest.mark.parametrize(
    "serve_args,send_args,reason",
    [
        (["--max-frame-bytes", "1024"], [], "TOO_LARGE"),
        (["--format", "npy"], [], "format="),
    ],
    ids=["over-limit", "format"],
)
def test_cli_send_fails_with_the_receivers_reason(tmp_path, serve_args, send_args, reason):
    proc, address = start_serve("127.0.0.1:0", "--connections", "1", *serve_args)
    try:
        r = cli("send", address, "--random", "float64", "100000", *send_args)
        assert r.returncode == 1, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0] and "Traceback" not in r.stderr, r.stderr
        assert "received by the peer" not in r.stdout
    finally:
        proc.kill()
        proc.wait(WAIT)


def test_cli_send_without_the_servers_key_fails(tmp_path):
    keyfile = tmp_path / "key"
    keyfile.write_bytes(KEY)
    proc, address = start_serve("127.0.0.1:0", "--authkey-file", str(keyfile))
    try:
        r = cli("send", address, "--random", "float64", "1000")
        assert r.returncode == 1 and "authkey" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    finally:
        proc.kill()
        proc.wait(WAIT)


def test_cli_streams_arrive_whole(tmp_path):
    """``wirearray send`` of three 8 MiB arrays, STREAMS times, to one ``serve``: every
    send exits 0 (confirmed) and the server saved every array intact."""
    files = []
    for k, a in enumerate(arrays_for(0)):
        files.append(str(tmp_path / f"a{k}.npy"))
        np.save(files[-1], a)
    out = tmp_path / "received"
    proc, address = start_serve(
        "127.0.0.1:0", "--connections", str(STREAMS), "--out", str(out), "--summary"
    )
    try:
        for _ in range(STREAMS):
            r = cli("send", address, *files)
            assert r.returncode == 0, r.stderr
        proc.wait(WAIT)
    finally:
        proc.kill()
    saved = sorted(out.glob("*.npy"))
    assert len(saved) == 3 * STREAMS
    want = arrays_for(0)
    for i, path in enumerate(saved):
        assert np.array_equal(np.load(path), want[i % 3]), path.name
