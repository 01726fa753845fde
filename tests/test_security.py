"""TLS (with certificates made in the test by trustme), mutual TLS and the authkey
handshake, on both layers; every refusal is a specific error, and servers keep
serving others."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading

import numpy as np
import pytest

import wirearray
from netutil import WAIT, Net
from wirearray import AuthenticationError, MalformedFrameError, aio

trustme = pytest.importorskip("trustme", reason="pip install trustme (in the test extra)")

KEY = b"k" * 32


@pytest.fixture(params=["blocking", "asyncio"])
def net(request) -> Net:
    return Net(request.param)


def serve_once(net: Net, address, check, **options):
    """A server accepting one connection in a thread (asyncio: on the loop thread),
    running ``check(channel)``; returns (thread, box) with the result or error."""
    listener = net.listen(address, **options)
    box: dict = {}

    def run():
        try:
            ch = listener.accept(timeout=WAIT)
            try:
                box["result"] = check(ch)
            finally:
                ch.close()
        except BaseException as exc:  # reported to the test
            box["error"] = exc
        finally:
            listener.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return listener.address, t, box


def echo_once(ch):
    a = ch.recv()
    ch.send(a)
    return a


class TestTLS:
    def test_round_trip_lands_in_out(self, net, server_ctx, client_ctx):
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, ssl=server_ctx)
        x = np.random.default_rng(0).standard_normal(1 << 18)  # 2 MiB
        with net.connect(addr, ssl=client_ctx, server_hostname="localhost") as ch:
            ch.send(x, byteorder="network", checksum=True)
            out = np.empty_like(x)
            assert ch.recv(out=out) is out and np.array_equal(out, x)
        t.join(WAIT)
        assert "error" not in box

    def test_over_unix_socket(self, net, server_ctx, client_ctx, tmp_path):
        addr, t, _box = serve_once(net, f"unix:{tmp_path}/tls.sock", echo_once, ssl=server_ctx)
        with net.connect(addr, ssl=client_ctx, server_hostname="localhost") as ch:
            ch.send(np.arange(5))
            assert ch.recv().tolist() == [0, 1, 2, 3, 4]
        t.join(WAIT)

    def test_unknown_ca(self, net, server_ctx):
        other = trustme.CA()
        ctx = ssl.create_default_context()
        other.configure_trust(ctx)
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, ssl=server_ctx)
        with pytest.raises(ssl.SSLCertVerificationError):
            net.connect(addr, ssl=ctx, server_hostname="localhost")
        t.join(WAIT)
        assert isinstance(box.get("error"), (ssl.SSLError, OSError))

    def test_wrong_hostname(self, net, server_ctx, client_ctx):
        addr, t, _box = serve_once(net, "127.0.0.1:0", echo_once, ssl=server_ctx)
        with pytest.raises(ssl.SSLCertVerificationError):
            net.connect(addr, ssl=client_ctx, server_hostname="not-the-server.example")
        t.join(WAIT)

    def test_plain_client_against_tls_server(self, net, server_ctx):
        addr, t, box = serve_once(
            net, "127.0.0.1:0", echo_once, ssl=server_ctx, handshake_timeout=2
        )
        with net.connect(addr, timeout=5) as ch:
            ch.send(np.arange(3))
            with pytest.raises((wirearray.ProtocolError, OSError)):
                ch.recv()  # the server's TLS alert is not a frame
        t.join(WAIT)
        assert isinstance(box.get("error"), (ssl.SSLError, OSError))

    def test_tls_client_against_plain_server(self, net, client_ctx):
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, timeout=5)
        with pytest.raises((ssl.SSLError, OSError)):
            net.connect(addr, ssl=client_ctx, server_hostname="localhost", handshake_timeout=3)
        t.join(WAIT)
        assert isinstance(box.get("error"), (MalformedFrameError, OSError))


@pytest.fixture(scope="module")
def mtls_server_ctx(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    return ctx


class TestMutualTLS:
    def test_client_certificate_required(self, net, ca, mtls_server_ctx):
        good = ssl.create_default_context()
        ca.configure_trust(good)
        ca.issue_cert("client@example").configure_cert(good)
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, ssl=mtls_server_ctx)
        with net.connect(addr, ssl=good, server_hostname="localhost") as ch:
            ch.send(np.ones(4))
            assert ch.recv().tolist() == [1.0] * 4
        t.join(WAIT)
        assert "error" not in box

    @pytest.mark.parametrize("who", ["none", "stranger"])
    def test_missing_or_wrong_client_certificate(self, net, ca, mtls_server_ctx, who):
        bad = ssl.create_default_context()
        ca.configure_trust(bad)
        if who == "stranger":
            trustme.CA().issue_cert("intruder").configure_cert(bad)
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, ssl=mtls_server_ctx)
        with pytest.raises((ssl.SSLError, OSError, wirearray.WireError)):
            # TLS 1.3 reports the refusal on the first read, not in the handshake
            with net.connect(addr, ssl=bad, server_hostname="localhost", timeout=5) as ch:
                ch.send(np.ones(2))
                ch.recv()
        t.join(WAIT)
        assert isinstance(box.get("error"), ssl.SSLError)


class TestAuthkey:
    def test_right_key(self, net):
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, authkey=KEY)
        with net.connect(addr, authkey=KEY) as ch:
            ch.send(np.arange(3.0))
            assert ch.recv().tolist() == [0.0, 1.0, 2.0]
        t.join(WAIT)
        assert "error" not in box

    def test_wrong_key_refused_on_both_sides(self, net):
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, authkey=KEY)
        with pytest.raises(AuthenticationError, match="refused"):
            net.connect(addr, authkey=b"x" * 32)
        t.join(WAIT)
        assert isinstance(box.get("error"), AuthenticationError)

    def test_client_without_key(self, net):
        addr, t, box = serve_once(net, "127.0.0.1:0", echo_once, authkey=KEY)
        with net.connect(addr, timeout=5) as ch:
            ch.send(np.arange(3.0))  # 64+ bytes of frame: the server takes it as an answer
            with pytest.raises(MalformedFrameError, match="authkey"):
                ch.recv()
        t.join(WAIT)
        assert isinstance(box.get("error"), AuthenticationError)

    def test_server_without_key(self, net):
        addr, t, _box = serve_once(net, "127.0.0.1:0", echo_once, timeout=5)
        with pytest.raises(AuthenticationError):
            net.connect(addr, authkey=KEY, handshake_timeout=1)
        t.join(WAIT)

    def test_short_key_is_a_usage_error(self):
        with pytest.raises(wirearray.UsageError):
            wirearray.listen("127.0.0.1:0", authkey=b"short")

    def test_replayed_answer_is_refused(self):
        """Record an honest client's answer, replay it on a new connection."""
        with wirearray.listen("127.0.0.1:0", authkey=KEY) as listener:
            recorded = {}

            def honest():
                s = socket.create_connection(listener.address)
                hello = s.recv(64)
                from wirearray import auth

                hs = auth.ClientHandshake(KEY)  # the sans-I/O client side
                hs.receive_data(hello)
                answer = hs.data_to_send()
                recorded["answer"] = answer
                s.sendall(answer)
                s.recv(64)
                s.close()

            t = threading.Thread(target=honest)
            t.start()
            listener.accept(timeout=WAIT).close()
            t.join(WAIT)

            s = socket.create_connection(listener.address)
            t = threading.Thread(target=lambda: (s.recv(64), s.sendall(recorded["answer"])))
            t.start()
            with pytest.raises(AuthenticationError):
                listener.accept(timeout=WAIT)
            t.join(WAIT)
            s.close()


def test_async_server_survives_garbage_and_strangers(server_ctx, client_ctx):
    """Pre-handshake garbage, forged headers, wrong keys and plain clients against a TLS
    + authkey server: each refused, honest clients served all along."""

    async def handler(ch):
        async for a in ch:
            await ch.send(a + 1)

    async def main():
        async with await aio.serve(
            handler, ("127.0.0.1", 0), ssl=server_ctx, authkey=KEY, handshake_timeout=2
        ) as server:
            addr = server.address
            loop = asyncio.get_running_loop()

            async def garbage(data):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, addr)
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    await loop.sock_sendall(s, data)
                    await asyncio.wait_for(loop.sock_recv(s, 100), 5)
                s.close()

            async def honest(i):
                async with await aio.connect(
                    addr, ssl=client_ctx, server_hostname="localhost", authkey=KEY, timeout=10
                ) as ch:
                    await ch.send(np.full(3, i))
                    assert (await ch.recv()).tolist() == [i + 1] * 3

            forged = wirearray.codec.Encoder().encode(np.zeros(1))[:64]
            jobs = [
                garbage(os.urandom(300)),
                garbage(forged),
                garbage(b"\x16\x03\x01" + os.urandom(60)),
            ]
            jobs += [honest(i) for i in range(10)]
            await asyncio.gather(*jobs)
            with pytest.raises((ssl.SSLError, OSError)):
                await aio.connect(
                    addr, ssl=client_ctx, server_hostname="localhost", authkey=b"w" * 32, timeout=5
                )
            await honest(99)
            assert server.handshake_failures >= 3

    asyncio.run(main())


def test_cli_serve_and_send_with_tls_and_authkey(ca, tmp_path):
    """Secrets come from files or the environment, never from the command line."""
    import re
    import subprocess
    import sys

    cert = ca.issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "key").write_bytes(KEY + b"\n")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wirearray",
            "serve",
            "127.0.0.1:0",
            "--connections",
            "1",
            "--tls-cert",
            str(tmp_path / "server.pem"),
            "--tls-key",
            str(tmp_path / "server.pem"),
            "--authkey-file",
            str(tmp_path / "key"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    address = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)
    env = {**os.environ, "WIREARRAY_AUTHKEY": KEY.decode()}
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "wirearray",
            "send",
            address,
            "--random",
            "f8",
            "10",
            "--tls-ca",
            str(tmp_path / "ca.pem"),
            "--server-hostname",
            "localhost",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "WIREARRAY_AUTHKEY": "w" * 32},
    )
    assert bad.returncode == 1 and "AuthenticationError" in bad.stderr
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "wirearray",
            "send",
            address,
            "--random",
            "f8",
            "10",
            "--tls-ca",
            str(tmp_path / "ca.pem"),
            "--server-hostname",
            "localhost",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )
    assert good.returncode == 0, good.stderr
    out, err = server.communicate(timeout=WAIT)
    assert "float64 (10,)" in out and "refused a connection" in err


def test_cli_deployment_recipe(ca, tmp_path):
    """docs/SECURITY.md's deployment recipe, run as written: the two commands are read
    from the document, with the files made here (certificates from trustme), the
    address on loopback and the server's name ``localhost``."""
    import re
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "SECURITY.md").read_text()
    block = re.search(r"## Deploying `wirearray serve`\n\n```sh\n(.*?)```", doc, re.S)[1]
    commands = [c for c in block.replace("\\\n", " ").splitlines() if c and c[0] != "#"]
    serve_line, send_line = (c for c in commands if "wirearray" in c)
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    client_ca = trustme.CA()
    client_cert = client_ca.issue_cert("client@example")
    files = {
        "server.pem": server_cert.cert_chain_pems[0],
        "server.key": server_cert.private_key_pem,
        "clients-ca.pem": client_ca.cert_pem,
        "ca.pem": ca.cert_pem,
        "client.pem": client_cert.cert_chain_pems[0],
        "client.key": client_cert.private_key_pem,
    }
    for name, blob in files.items():
        blob.write_to_path(str(tmp_path / name))
    (tmp_path / "secret").write_bytes(KEY)
    np.save(tmp_path / "data.npy", np.arange(1000.0))

    def argv(line: str) -> list[str]:
        out = []
        for word in shlex.split(line):
            if word in files or word == "data.npy":
                word = str(tmp_path / word)
            word = word.replace("/run/secrets/wirearray", str(tmp_path / "secret"))
            out.append(word)
        return out

    serve = argv(serve_line)
    assert serve[:2] == ["wirearray", "serve"] and serve[2] == "0.0.0.0:5555"
    serve[2] = "127.0.0.1:0"  # traffic stays on loopback
    server = subprocess.Popen(
        [sys.executable, "-m", *serve[:2], *serve[2:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        address = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)
        env_word, *send = argv(send_line)
        assert env_word.startswith("WIREARRAY_AUTHKEY=") and send[:2] == ["wirearray", "send"]
        send[2] = send[2].replace("server:5555", address)
        send += ["--server-hostname", "localhost"]  # the document's "server" is this host
        r = subprocess.run(
            [sys.executable, "-m", *send],
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={**os.environ, "WIREARRAY_AUTHKEY": KEY.decode()},
        )
        assert r.returncode == 0, r.stderr
        assert "all received by the peer" in r.stdout
    finally:
        server.terminate()
        out, err = server.communicate(timeout=WAIT)
    assert "float64 (1000,)" in out, (out, err)
