"""What the kernel's TCP loopback path costs, apart from wirearray: the two measurements
behind docs/PERFORMANCE.md's "Send-call size" table and "Small messages" section.

    python bench/loopback_calls.py calls      # sender alone: GB/s and CPU per GB by call size
    python bench/loopback_calls.py small      # one send per message: rate by receiver

``calls``: one process sends 16 MiB float64 arrays (``--mib``) to a receiver that only
drains (4 MiB ``recv_into``), as raw ``sendall(a)``, as raw ``sendall`` of 1 and 4 MiB
slices, and as wirearray's network-order Encoder with staging chunks of 256 KiB, 1 MiB
and 4 MiB (one ``sendmsg`` per chunk, as the transport sends them).  Runs interleaved,
medians of ``--repeats`` (7); the sender's user and system CPU time per GB come from
``getrusage``.

``small``: 50 000 float64[16] messages, one send each, against different receivers:
one that drains (1 MiB reads), wirearray's ``Channel.recv(out=)``, wirearray with its
read-ahead capped (``--caps``, bytes per read: an experiment, not an option of the
library), and ``multiprocessing.connection`` on both sides.  Prints messages/s and,
where ``nstat`` exists (iproute2), TCP segments per message: near 0.01 when the
kernel coalesces the sender's writes because the receiver keeps its buffer full, 1-2
when every message is a segment of its own.  Run nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import time
from multiprocessing.connection import Connection

import numpy as np

import wirearray
import wirearray._sizes as _sizes  # the read-ahead cap, varied by the "small" run
from wirearray.codec import Encoder
from wirearray.transport import send_parts


def _server(handler) -> tuple[int, int]:
    """A forked receiver accepting connections forever; returns (port, pid)."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        while True:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = b""
            while len(head) < 32:
                head += c.recv(32 - len(head))
            mode = head.decode().strip()
            handler(c, mode)
            c.sendall(b"k")
            c.close()
    srv.close()
    return port, pid


def _connect(port: int, mode: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mode.encode().ljust(32))
    return s


# ---- calls ----


def _drain(c: socket.socket, mode: str) -> None:
    buf = memoryview(bytearray(4 << 20))
    while c.recv_into(buf):
        pass


def cmd_calls(args: argparse.Namespace) -> None:
    n = args.mib << 20
    count = max(8, (256 << 20) // n)
    a = np.random.default_rng(0).standard_normal(n // 8)
    port, pid = _server(_drain)

    def run(kind: str, size: int) -> tuple[float, float, float]:
        s = _connect(port, "drain")
        enc = Encoder(byteorder="network", chunk_bytes=max(size, 4096))
        mv = memoryview(a).cast("B")
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(count):
            if kind == "raw":
                s.sendall(mv)
            elif kind == "raw slices":
                for k in range(0, n, size):
                    s.sendall(mv[k : k + size])
            else:
                for parts in enc.frame(a):
                    send_parts(s, parts)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        dt, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        s.close()
        gb = n * count / 1e9
        return (
            gb / dt,
            (r1.ru_utime - r0.ru_utime) / gb * 1e3,
            (r1.ru_stime - r0.ru_stime) / gb * 1e3,
        )

    cases = [("raw", 0), ("raw slices", 1 << 20), ("raw slices", 4 << 20)]
    cases += [("network order", k) for k in (256 << 10, 1 << 20, 4 << 20)]
    results: dict = {c: [] for c in cases}
    for _ in range(args.repeats):
        for c in cases:
            results[c].append(run(*c))
    os.kill(pid, 9)
    print(f"sender alone, {args.mib} MiB float64 arrays, medians of {args.repeats}:")
    print(f"{'sender':<28}{'GB/s':>8}{'user ms/GB':>12}{'sys ms/GB':>11}")
    for (kind, size), runs in results.items():
        label = kind + (f", {size >> 10} KiB calls" if size else "")
        med = [statistics.median(r[i] for r in runs) for i in range(3)]
        print(f"{label:<28}{med[0]:8.2f}{med[1]:12.0f}{med[2]:11.0f}")


# ---- small ----

N_SMALL = 50_000
_READAHEAD = _sizes.READAHEAD_BYTES


def _receive_small(c: socket.socket, mode: str) -> None:
    out = np.empty(16)
    if mode == "drain":
        _drain(c, mode)
    elif mode == "mp":
        conn = Connection(c.dup().detach())
        for _ in range(N_SMALL):
            conn.recv_bytes_into(out)
        conn.close()
    else:  # "wirearray" or "wirearray:CAP"
        _sizes.READAHEAD_BYTES = int(mode.split(":")[1]) if ":" in mode else _READAHEAD
        ch = wirearray.Channel(c)
        for _ in range(N_SMALL):
            ch.recv(out=out)


def _segments() -> int | None:
    if not shutil.which("nstat"):
        return None
    out = subprocess.run(["nstat", "-az", "--json"], capture_output=True, text=True).stdout
    return json.loads(out)["kernel"].get("TcpOutSegs", 0)


def cmd_small(args: argparse.Namespace) -> None:
    port, pid = _server(_receive_small)
    a = np.arange(16.0)

    def run(sender: str, receiver: str) -> tuple[float, float | None]:
        s = _connect(port, receiver)
        seg0 = _segments()
        t0 = time.perf_counter()
        if sender == "mp":
            conn = Connection(s.dup().detach())
            payload = memoryview(a).cast("B")
            for _ in range(N_SMALL):
                conn.send_bytes(payload)
            conn.close()
        else:
            ch = wirearray.Channel(s, byteorder="native")
            for _ in range(N_SMALL):
                ch.send(a)
        if receiver == "drain":
            s.shutdown(socket.SHUT_WR)
        s.recv(1)
        rate = N_SMALL / (time.perf_counter() - t0)
        seg1 = _segments()
        s.close()
        return rate, None if seg0 is None else (seg1 - seg0) / N_SMALL

    cases = [("wirearray", "drain"), ("wirearray", "wirearray")]
    cases += [("wirearray", f"wirearray:{cap}") for cap in args.caps]
    cases += [("mp", "mp")]
    results: dict = {c: [] for c in cases}
    for _ in range(args.repeats):
        for c in cases:
            results[c].append(run(*c))
    os.kill(pid, 9)
    print(f"{N_SMALL} float64[16] messages, one send each, medians of {args.repeats}:")
    print(f"{'sender -> receiver':<36}{'k msg/s':>9}{'segments/msg':>14}")
    for (snd, rcv), runs in results.items():
        rate = statistics.median(r[0] for r in runs) / 1e3
        segs = [r[1] for r in runs if r[1] is not None]
        seg = f"{statistics.median(segs):.2f}" if segs else "-"
        print(f"{snd + ' -> ' + rcv:<36}{rate:9.0f}{seg:>14}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calls", help="sender alone: throughput and CPU by send-call size")
    c.add_argument("--mib", type=int, default=16)
    c.add_argument("--repeats", type=int, default=7)
    c.set_defaults(func=cmd_calls)
    s = sub.add_parser("small", help="one send per message: rate by receiver")
    s.add_argument("--caps", type=lambda t: [int(x) for x in t.split(",")], default=[1024, 4096])
    s.add_argument("--repeats", type=int, default=5)
    s.set_defaults(func=cmd_small)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
