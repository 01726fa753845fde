"""Streaming methods for the benchmarks: each moves ``count`` copies of one array from
a sender (the benchmark process) to a receiver (a separate server process) over TCP
loopback, fully -- the receiver ends up with arrays of the right dtype, shape and
values, checked on the first round of every benchmark.

The server process speaks a tiny control protocol: per connection a JSON request line
(method, dtype, shape, count, check), then the method's own traffic, then one ack
byte (``k``, or ``x`` when the check failed).  Both sides of a method live here, side
by side, so that what is compared is visible in one place.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import ssl
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

import wirearray
import wirearray.auth

AUTHKEY = b"benchmark-authkey-0123456789abcdef"


def make_array(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return np.arange(n, dtype=np.float64).astype(dtype).reshape(shape) + 1


# ---- the methods: (send(sock, a, count), recv(sock, template, count) -> last array) ----


def _recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionError("peer went away")
        got += k


def send_raw(sock, a, count):
    payload = memoryview(a).cast("B")
    for _ in range(count):
        sock.sendall(payload)


def recv_raw(sock, template, count):
    out = np.empty_like(template)
    view = memoryview(out).cast("B")
    for _ in range(count):
        _recv_exact_into(sock, view)
    return out


def _wa_sender(byteorder: str) -> Callable:
    def send(sock, a, count):
        ch = wirearray.Channel(sock, byteorder=byteorder)
        for _ in range(count):
            ch.send(a)

    return send


def recv_wa_reused(sock, template, count):
    ch = wirearray.Channel(sock)
    out = np.empty_like(template)
    for _ in range(count):
        ch.recv(out=out)
    return out


def recv_wa_fresh(sock, template, count):
    ch = wirearray.Channel(sock)
    a = None
    for _ in range(count):
        a = ch.recv()
    return a


def send_mp_bytes(sock, a, count):
    conn = Connection(os.dup(sock.fileno()))  # its own descriptor: closing it keeps sock
    payload = memoryview(a).cast("B")
    for _ in range(count):
        conn.send_bytes(payload)
    conn.close()


def recv_mp_bytes(sock, template, count):
    """multiprocessing.connection carries bytes only: dtype and shape are known in
    advance (that is the job wirearray's header does)."""
    conn = Connection(os.dup(sock.fileno()))
    out = np.empty_like(template)
    for _ in range(count):
        conn.recv_bytes_into(out)
    conn.close()
    return out


METHODS: dict[str, tuple[Callable, Callable]] = {
    "raw sendall/recv_into": (send_raw, recv_raw),
    "wirearray native, reused out": (_wa_sender("native"), recv_wa_reused),
    "wirearray network, reused out": (_wa_sender("network"), recv_wa_reused),
    "wirearray native, fresh arrays": (_wa_sender("native"), recv_wa_fresh),
    "wirearray network, fresh arrays": (_wa_sender("network"), recv_wa_fresh),
    "mp.connection send_bytes/recv_bytes_into": (send_mp_bytes, recv_mp_bytes),
}


# ---- server process ----


def _serve(conn: Any, tls_pem: str | None) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    conn.send(srv.getsockname())
    server_ctx = None
    if tls_pem:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(tls_pem)
    while True:
        raw, _ = srv.accept()
        with raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            line = b""
            while not line.endswith(b"\n"):
                chunk = raw.recv(1)
                if not chunk:
                    return  # the benchmark is over
                line += chunk
            req = json.loads(line)
            sock = raw
            if req.get("tls"):  # the request line is plain; TLS starts after it
                sock = server_ctx.wrap_socket(raw, server_side=True)
            if req.get("authkey"):
                wirearray.auth.server_handshake(sock, AUTHKEY, 10)
            template = make_array(req["dtype"], tuple(req["shape"]))
            last = METHODS[req["method"]][1](sock, template, req["count"])
            ok = not req["check"] or (
                last.dtype == template.dtype
                and last.shape == template.shape
                and np.array_equal(last, template)
            )
            sock.sendall(b"k" if ok else b"x")


class StreamServer:
    """The receiving process, started once per benchmark module.  With ``tls=True`` a
    certificate is made here (trustme, as in the tests) and connections may ask for
    TLS; the handshake happens before a round's clock starts."""

    def __init__(self, tls: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        pem = None
        self.client_ctx = None
        if tls:
            import tempfile

            import trustme

            ca = trustme.CA()
            self._tmp = tempfile.TemporaryDirectory()
            pem = os.path.join(self._tmp.name, "server.pem")
            ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(pem)
            self.client_ctx = ssl.create_default_context()
            ca.configure_trust(self.client_ctx)
        self.proc = ctx.Process(target=_serve, args=(child, pem), daemon=True)
        self.proc.start()
        if not self._parent.poll(60):
            raise RuntimeError("benchmark server did not start")
        self.address = self._parent.recv()
        self._checked: set = set()

    def _open(self, req: dict) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(json.dumps(req).encode() + b"\n")
        if req.get("tls"):
            sock = self.client_ctx.wrap_socket(sock, server_hostname="localhost")
        return sock

    def run(self, method: str, a: np.ndarray, count: int, *, tls: bool = False) -> float:
        """Seconds from the first byte sent to the receiver's ack."""
        key = (method, a.dtype.str, a.shape, tls)
        req = {
            "method": method,
            "dtype": a.dtype.str,
            "shape": a.shape,
            "count": count,
            "check": key not in self._checked,
            "tls": tls,
        }
        with self._open(req) as sock:
            start = time.perf_counter()
            METHODS[method][0](sock, a, count)
            ack = sock.recv(1)
            elapsed = time.perf_counter() - start
        if ack != b"k":
            raise AssertionError(f"{method}: receiver got wrong arrays (ack {ack!r})")
        self._checked.add(key)
        return elapsed

    def handshake(self, authkey: bool, tls: bool) -> float:
        """Seconds to connect and complete the TLS and/or authkey handshakes."""
        req = {
            "method": "raw sendall/recv_into",
            "dtype": "<f8",
            "shape": [1],
            "count": 0,
            "check": False,
            "tls": tls,
            "authkey": authkey,
        }
        start = time.perf_counter()
        with self._open(req) as sock:
            if authkey:
                wirearray.auth.client_handshake(sock, AUTHKEY, 10)
            elapsed = time.perf_counter() - start
            if sock.recv(1) != b"k":
                raise AssertionError("handshake benchmark: no ack")
        return elapsed

    def close(self) -> None:
        with socket.create_connection(self.address) as sock:
            sock.shutdown(socket.SHUT_WR)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()


if __name__ == "__main__":  # a quick look without pytest
    server = StreamServer()
    for nbytes in (1 << 20, 16 << 20):
        a = make_array("float64", (nbytes // 8,))
        for m in METHODS:
            t = min(server.run(m, a, 20) for _ in range(3))
            print(f"{nbytes >> 20:4d} MiB {m:45s} {20 * nbytes / t / 1e9:6.2f} GB/s")
    server.close()
    sys.exit(0)
