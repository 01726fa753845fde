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
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

import wirearray


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


def _serve(conn: Any) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    conn.send(srv.getsockname())
    while True:
        sock, _ = srv.accept()
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            line = b""
            while not line.endswith(b"\n"):
                chunk = sock.recv(1)
                if not chunk:
                    return  # the benchmark is over
                line += chunk
            req = json.loads(line)
            template = make_array(req["dtype"], tuple(req["shape"]))
            last = METHODS[req["method"]][1](sock, template, req["count"])
            ok = not req["check"] or (
                last.dtype == template.dtype
                and last.shape == template.shape
                and np.array_equal(last, template)
            )
            sock.sendall(b"k" if ok else b"x")


class StreamServer:
    """The receiving process, started once per benchmark module."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        if not self._parent.poll(60):
            raise RuntimeError("benchmark server did not start")
        self.address = self._parent.recv()
        self._checked: set = set()

    def run(self, method: str, a: np.ndarray, count: int) -> float:
        """Seconds from the first byte sent to the receiver's ack."""
        check = (method, a.dtype.str, a.shape) not in self._checked
        with socket.create_connection(self.address) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            req = {
                "method": method,
                "dtype": a.dtype.str,
                "shape": a.shape,
                "count": count,
                "check": check,
            }
            sock.sendall(json.dumps(req).encode() + b"\n")
            start = time.perf_counter()
            METHODS[method][0](sock, a, count)
            ack = sock.recv(1)
            elapsed = time.perf_counter() - start
        if ack != b"k":
            raise AssertionError(f"{method}: receiver got wrong arrays (ack {ack!r})")
        self._checked.add((method, a.dtype.str, a.shape))
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
