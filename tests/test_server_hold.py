"""Nothing hung, nothing paid for: servers keep serving honest clients while others
are idle, slow, keyless, hostile or gone, and a peer's bytes buy no memory or CPU out
of proportion (docs/SECURITY.md).

Every case is a real server -- ``wirearray serve`` in another process, a Listener in a
thread, or ``aio.serve`` -- with real sockets on loopback.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import wirearray
from netutil import WAIT, run_cli, start_serve
from wirearray import DatagramChannel, SequenceError, aio
from wirearray.codec import Encoder

KEY = b"h" * 32


cli = run_cli


def tcp(address: str) -> socket.socket:
    if address.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(address[5:])
        return s
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=WAIT)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


# ---- the command line serves many clients at once ----


def test_serve_is_concurrent_and_bounded():
    """An idle client and one dripping a byte a second do not block an honest one;
    --max-connections bounds open connections, and the one over it hears BUSY."""
    proc, address = start_serve("127.0.0.1:0", "--max-connections", "3")
    idle, drip = tcp(address), tcp(address)
    try:
        drip.sendall(Encoder().encode(np.arange(4))[:10])  # a frame that never completes
        r = cli("send", address, "--random", "int32", "5", "--timeout", "20")
        assert r.returncode == 0, r.stderr
        hold = tcp(address)  # the third open connection: still served
        busy = cli("send", address, "--random", "int32", "5", "--timeout", "20")
        assert busy.returncode == 1 and "BUSY" in busy.stderr, busy.stderr
        hold.close()
    finally:
        idle.close()
        drip.close()
        out, err = stop(proc)
    assert "[2]" in out or "[3]" in out, out  # lines name their connection
    assert "Traceback" not in err, err


def test_serve_survives_peers_that_vanish(tmp_path):
    """Broken pipes end one connection, never the server: a UNIX client that leaves
    early, a bare connect-and-close (a health check) against TLS and authkey servers."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    cert.private_key_pem.write_to_path(tmp_path / "key.pem")
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    (tmp_path / "authkey").write_bytes(KEY)
    setups = {
        "unix": ([f"unix:{tmp_path}/s.sock"], []),
        "tls": (
            [
                "127.0.0.1:0",
                "--tls-cert",
                str(tmp_path / "cert.pem"),
                "--tls-key",
                str(tmp_path / "key.pem"),
            ],
            ["--tls-ca", str(tmp_path / "ca.pem"), "--server-hostname", "localhost"],
        ),
        "authkey": (["127.0.0.1:0", "--authkey-file", str(tmp_path / "authkey")], []),
    }
    for name, (serve_args, send_args) in setups.items():
        if name == "authkey":
            send_args = ["--authkey-file", str(tmp_path / "authkey")]
        proc, address = start_serve(*serve_args)
        try:
            for _ in range(3):  # health checks, and a client gone mid-frame
                tcp(address).close()
                s = tcp(address)
                s.sendall(b"\x89WAR\x01")
                s.close()
            r = cli("send", address, "--random", "float64", "1000", *send_args)
            assert r.returncode == 0, (name, r.stderr)
            assert proc.poll() is None, (name, proc.returncode)
        finally:
            out, err = stop(proc)
        assert "Traceback" not in err, (name, err)
        assert "1 message," in out, (name, out)


def test_serve_into_a_closed_pipe_ends_quietly(tmp_path):
    """``wirearray serve | head -1``: the server stops when its output is gone (at its
    next line), without a traceback or a SIGPIPE death (exit status 141)."""
    path = tmp_path / "pipe.sock"
    code = (
        f"{sys.executable} -m wirearray serve unix:{path} | head -1 > /dev/null; "
        "echo ${PIPESTATUS[0]}"
    )
    proc = subprocess.Popen(
        ["bash", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + WAIT
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # head has read the first line and left
        cli("send", f"unix:{path}", "--random", "float64", "10", "--count", "3")
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert out.strip() == "0", (out, err)
    assert "Traceback" not in err


# ---- deadlines, not per-call timeouts ----


@pytest.mark.parametrize("layer", ["blocking", "asyncio"])
def test_a_dripping_frame_is_cut_by_the_timeout(layer):
    """A peer sending one byte every 0.05 s never lets a single system call time out,
    yet the receive ends at its deadline (and the channel is broken: inside a frame)."""
    srv = socket.create_server(("127.0.0.1", 0))
    frame = Encoder().encode(np.arange(1000.0))
    stop_drip = threading.Event()

    def drip():
        with socket.create_connection(srv.getsockname()) as s:
            for b in frame:
                if stop_drip.wait(0.05):
                    return
                s.send(bytes([b]))

    t = threading.Thread(target=drip, daemon=True)
    t.start()
    conn, _ = srv.accept()
    start = time.monotonic()
    try:
        if layer == "blocking":
            ch = wirearray.Channel(conn, timeout=0.5)
            with pytest.raises(TimeoutError):
                ch.recv()
            with pytest.raises(wirearray.StreamBrokenError):
                ch.recv()
        else:

            async def main():
                ch = aio.AsyncChannel(conn, timeout=0.5)
                with pytest.raises(TimeoutError):
                    await ch.recv()

            asyncio.run(main())
        assert time.monotonic() - start < 5  # the 8 s drip did not stretch it
    finally:
        stop_drip.set()
        t.join(WAIT)
        srv.close()


def test_a_slow_handshake_does_not_hold_accept():
    """A keyless client that dribbles its handshake holds nothing: the Listener runs
    handshakes side by side, and each has one deadline in all."""
    with wirearray.listen("127.0.0.1:0", authkey=KEY, handshake_timeout=1.0) as listener:
        slow = [tcp(f"127.0.0.1:{listener.address[1]}") for _ in range(5)]
        for s in slow:
            s.sendall(b"x")  # one byte of the 64 the handshake wants, then silence
        got = {}

        def honest():
            with wirearray.connect(listener.address, authkey=KEY, timeout=WAIT) as ch:
                ch.send(np.arange(3))

        t = threading.Thread(target=honest)
        start = time.monotonic()
        t.start()
        while "ch" not in got:
            try:
                got["ch"] = listener.accept(timeout=WAIT)
            except wirearray.AuthenticationError:
                continue  # a slow client dropped at its deadline
        with got["ch"] as ch:
            assert ch.recv().tolist() == [0, 1, 2]
        t.join(WAIT)
        assert time.monotonic() - start < 1.0  # served before any slow one timed out
        for s in slow:
            s.close()


# ---- handshakes do not take the established connections' slots ----


def test_keyless_connections_do_not_lock_out_clients_asyncio():
    async def main():
        async def handler(ch):
            await ch.send(await ch.recv())

        async with await aio.serve(
            handler, ("127.0.0.1", 0), authkey=KEY, max_connections=2, handshake_timeout=30
        ) as server:
            loop = asyncio.get_running_loop()
            idle = []
            for _ in range(10):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, server.address)
                idle.append(s)
            await asyncio.sleep(0.2)
            assert server.handshaking == 10 and server.connections == 0
            for _ in range(3):  # honest clients, one after another: all served
                async with await aio.connect(server.address, authkey=KEY, timeout=WAIT) as ch:
                    await ch.send(np.arange(4))
                    assert (await ch.recv()).tolist() == [0, 1, 2, 3]
            for s in idle:
                s.close()

    asyncio.run(asyncio.wait_for(main(), WAIT))


def test_handshakes_are_bounded_oldest_first():
    """Beyond max_handshakes a new connection drops the one that waited longest."""

    async def main():
        async def handler(ch):
            await ch.send(await ch.recv())

        async with await aio.serve(
            handler, ("127.0.0.1", 0), authkey=KEY, max_handshakes=4, handshake_timeout=30
        ) as server:
            loop = asyncio.get_running_loop()
            idle = []
            for _ in range(12):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, server.address)
                idle.append(s)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert server.handshaking <= 4 and server.handshake_failures >= 8
            async with await aio.connect(server.address, authkey=KEY, timeout=WAIT) as ch:
                await ch.send(np.arange(2))
                assert (await ch.recv()).tolist() == [0, 1]
            for s in idle:
                s.close()

    asyncio.run(asyncio.wait_for(main(), WAIT))


def test_keyless_connections_do_not_lock_out_clients_blocking():
    with wirearray.listen(
        "127.0.0.1:0", authkey=KEY, max_connections=1, handshake_timeout=30
    ) as listener:
        idle = [tcp(f"127.0.0.1:{listener.address[1]}") for _ in range(8)]
        box = {}

        def honest():
            with wirearray.connect(listener.address, authkey=KEY, timeout=WAIT) as ch:
                ch.send(np.arange(3))
                box["echo"] = ch.recv()

        t = threading.Thread(target=honest)
        t.start()
        with listener.accept(timeout=WAIT) as ch:
            ch.send(ch.recv())
        t.join(WAIT)
        assert box["echo"].tolist() == [0, 1, 2]
        assert listener.handshaking == 8 and listener.active == 0
        for s in idle:
            s.close()


# ---- a dead connection's memory goes with it ----


def test_aborted_frames_leave_nothing_behind():
    """A peer that vanishes inside a large frame: the half-filled array is freed when
    the connection ends -- with the garbage collector off, so no reference cycle may
    hold it (the stored error keeps no traceback)."""
    n = 64 << 20  # bytes announced per frame

    async def main():
        done = asyncio.Event()
        count = {"n": 0}

        async def handler(ch):
            try:
                await ch.recv()
            finally:
                count["n"] += 1
                if count["n"] == 3:
                    done.set()

        async with await aio.serve(handler, ("127.0.0.1", 0)) as server:
            loop = asyncio.get_running_loop()
            header = Encoder().encode(np.zeros(0))  # to learn the layout
            assert header
            frame_head = next(iter(Encoder(byteorder="native").frame(np.zeros(n // 8))))[0]
            base = tracemalloc.get_traced_memory()[0]
            for _ in range(3):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, server.address)
                await loop.sock_sendall(s, bytes(frame_head) + bytes(1 << 20))
                await asyncio.sleep(0.2)
                s.close()
            await asyncio.wait_for(done.wait(), WAIT)
            await asyncio.sleep(0.1)
            return tracemalloc.get_traced_memory()[0] - base, server.peer_errors

    gc.disable()
    tracemalloc.start()
    try:
        grown, errors = asyncio.run(main())
    finally:
        tracemalloc.stop()
        gc.enable()
    assert errors == 3
    assert grown < 8 << 20, f"{grown / 2**20:.1f} MiB still held after three aborted frames"


def test_a_connection_pays_for_the_bytes_its_peer_sent():
    """A connection whose peer sent one byte holds the read-ahead at its first size,
    not at its largest (the read-ahead grows with the data)."""
    from wirearray.codec import INITIAL_READAHEAD_BYTES, READAHEAD_BYTES, Decoder

    dec = Decoder()
    assert len(dec.get_buffer()) == INITIAL_READAHEAD_BYTES  # before any byte: small
    a, b = socket.socketpair()
    ch = wirearray.Channel(b, timeout=0.2)
    a.sendall(b"\x89")  # one byte of a header, then silence
    tracemalloc.start()
    try:
        with pytest.raises(TimeoutError):
            ch.recv()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < READAHEAD_BYTES // 4
    assert ch._core.dec._readahead is None  # broken inside a frame: released at once
    # a stream of small frames grows it (each read that fills it doubles it)
    enc = Encoder()
    ch2 = wirearray.Channel(a, timeout=WAIT)
    c, d = socket.socketpair()
    rx = wirearray.Channel(d, timeout=WAIT)
    tx = wirearray.Channel(c, timeout=WAIT)
    t = threading.Thread(target=lambda: [rx.recv() for _ in range(4000)])
    t.start()
    for _ in range(4000):
        tx.send(np.arange(16.0), flush=False)
    tx.flush()
    t.join(WAIT)
    assert INITIAL_READAHEAD_BYTES < len(rx._core.dec._readahead) <= READAHEAD_BYTES
    assert enc is not None
    for x in (ch, ch2, rx, tx):
        x.close(timeout=0)


def test_hostile_npy_headers_are_rejected_in_proportion():
    """numpy's own reader allocates what a header claims and evaluates the literal;
    an npy channel caps headers at 10,000 bytes and rejects deep or long literals in
    one linear pass (milliseconds, not the 0.3 s a 64 KiB literal cost before)."""
    from wirearray.npy import MAX_NPY_HEADER, NpyDecoder

    cases = {
        "nested": "{'shape': " + "(" * 4000 + ")" * 4000 + "}",
        "long-shape": "{'descr': '<f8', 'fortran_order': False, 'shape': (" + "1, " * 3000 + ")}",
        "huge-claim": "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000, 99999), }",
        "code": "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': ()}",
    }
    for name, text in cases.items():
        raw = text.encode()[: MAX_NPY_HEADER - 1] + b"\n"
        record = b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw
        dec = NpyDecoder(max_frame_bytes=1 << 30)
        dec.receive_data(record)
        start = time.process_time()
        with pytest.raises(wirearray.ProtocolError):
            dec.next_event()
        assert time.process_time() - start < 0.05, name
    big = b"\x93NUMPY\x02\x00" + (1 << 20).to_bytes(4, "little")
    dec = NpyDecoder()
    dec.receive_data(big)
    with pytest.raises(wirearray.MalformedFrameError, match="limit"):
        dec.next_event()


# ---- UDP: per sender ----


def test_udp_tracks_each_sender_on_its_own():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT)
    tx1 = DatagramChannel(remote=rx.address)
    tx2 = DatagramChannel(remote=rx.address)
    try:
        for k in range(20):  # two honest senders, interleaved: no gap, no duplicate
            (tx1 if k % 2 else tx2).send(np.full(3, k))
            rx.recv()
        assert rx.stats["lost"] == rx.stats["duplicated"] == rx.stats["reordered"] == 0
        assert rx.senders == 2
        # a sender bound to a fixed address that starts its count over: a restart,
        # counted, not a gap or a duplicate
        fixed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fixed.bind(("127.0.0.1", 0))
        for run in range(2):
            enc = Encoder()  # a new process: sequence numbers from 0
            for k in range(5):
                fixed.sendto(enc.encode(np.full(2, run * 10 + k)), rx.address)
                assert rx.recv()[0] == run * 10 + k
        assert rx.stats["restarts"] == 1
        assert rx.stats["lost"] == rx.stats["duplicated"] == rx.stats["reordered"] == 0
        fixed.close()
    finally:
        for c in (rx, tx1, tx2):
            c.close()


def test_udp_sender_table_is_bounded():
    rx = DatagramChannel(local=("127.0.0.1", 0), timeout=WAIT, max_senders=8)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(30)]
    try:
        enc = Encoder()
        first, _, third = (enc.encode(np.arange(2)) for _ in range(3))
        for s in socks:
            s.sendto(first, rx.address)
            rx.recv()
        assert rx.senders == 8 and rx.stats["received"] == 30
        with pytest.raises(SequenceError, match="lost"):  # the latest sender is tracked
            socks[-1].sendto(third, rx.address)
            rx.recv()
    finally:
        for s in socks:
            s.close()
        rx.close()


def test_idle_connections_cost_little():
    """Idle connections on an asyncio server: at most 64 KiB of traced memory each."""

    async def main():
        async def handler(ch):
            async for _ in ch:
                pass

        async with await aio.serve(handler, ("127.0.0.1", 0)) as server:
            loop = asyncio.get_running_loop()
            base = tracemalloc.get_traced_memory()[0]
            socks = []
            for _ in range(200):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, server.address)
                await loop.sock_sendall(s, b"\x89")
                socks.append(s)
            await asyncio.sleep(0.5)
            per = (tracemalloc.get_traced_memory()[0] - base) / len(socks)
            for s in socks:
                s.close()
            return per

    tracemalloc.start()
    try:
        per = asyncio.run(main())
    finally:
        tracemalloc.stop()
    assert per < 64 << 10, f"{per / 1024:.0f} KiB per idle connection"
