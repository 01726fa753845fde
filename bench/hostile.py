"""Servers under attack on loopback: what an honest client sees while hostile clients
hammer the same server, and what a server's memory and descriptors do when peers
abort frames or sit idle.  The figures of docs/PERFORMANCE.md ("Servers under
attack") come from this script.

    python bench/hostile.py latency [--hostile 200] [--seconds 20]
    python bench/hostile.py memory [--aborts 20] [--frame-mib 256] [--sent-mib 192] [--idle 1000]
    python bench/hostile.py delivery [--streams 10]

``latency``: a server process -- ``wirearray serve`` (the command line) or an
``aio.serve`` echo server -- and an attacker process keeping ``--hostile`` connections
busy: idle ones, slowloris ones (one byte of a frame header every 0.5 s), garbage,
half frames then a disconnect, .npy headers of 10,000 bytes of nested tuples, and
(authkey servers) keyless ones; they reconnect as the server drops them.  Beside them
an honest client does a round trip again and again -- ``wirearray send`` semantics
against serve (send an array, close, wait for the confirmation), an echo against
aio.serve -- and every transfer is checked.  Printed: p50/p99/max of the round trip,
quiet and under attack.

``memory``: the server's RSS (from /proc) and open descriptors, before, after
``--aborts`` peers each announce a ``--frame-mib`` frame, send ``--sent-mib`` of it
(written into the half-filled array: real memory) and vanish,
and with ``--idle`` connections that sent one byte each.  No garbage collection is
forced in the server.

``delivery``: a TLS client sends three 8 MiB arrays and closes, ``--streams`` times,
first with ``close(timeout=0)`` (no close handshake: what a plain socket close does)
then with ``close()``; printed, how many streams the server received whole.  Needs
trustme (the bench extra).

Linux only (/proc); run on a quiet machine: these are latencies, not ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import wirearray
from wirearray.codec import Encoder

KEY = b"k" * 32

AIO_SERVER = """
import asyncio, sys
import numpy as np
from wirearray import aio

async def handler(ch):
    async for a in ch:
        await ch.send(a)

async def main():
    key = sys.argv[1].encode() if sys.argv[1] != "-" else None
    server = await aio.serve(handler, ("127.0.0.1", 0), authkey=key, idle_timeout=5,
                             max_connections=4096)
    print(server.address[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def start_server(kind: str, authkey: bool) -> tuple[subprocess.Popen, tuple[str, int]]:
    env = dict(os.environ)
    if kind == "serve":
        args = [sys.executable, "-m", "wirearray", "serve", "127.0.0.1:0", "--summary"]
        args += ["--max-connections", "4096", "--idle-timeout", "5"]
        if authkey:
            path = "/tmp/wirearray-bench-key"
            with open(path, "wb") as f:
                f.write(KEY)
            args += ["--authkey-file", path]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+) ", line).group(1))
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep it flowing
    else:
        code = textwrap.dedent(AIO_SERVER)
        proc = subprocess.Popen(
            [sys.executable, "-c", code, KEY.decode() if authkey else "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        port = int(proc.stdout.readline())
        threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, ("127.0.0.1", port)


ATTACKER = """
import asyncio, os, random, sys
address = ("127.0.0.1", int(sys.argv[1]))
n, seconds = int(sys.argv[2]), float(sys.argv[3])
header = bytes.fromhex(sys.argv[4])
npy = b"\\x93NUMPY\\x01\\x00" + (10000).to_bytes(2, "little") + (b"(" * 5000 + b")" * 4999 + b"\\n")

async def one(kind):
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        try:
            r, w = await asyncio.open_connection(*address)
            if kind == "idle":
                await asyncio.sleep(min(10, end - loop.time()))
            elif kind == "slowloris":
                for b in header:
                    w.write(bytes([b])); await w.drain(); await asyncio.sleep(0.5)
                    if loop.time() > end: break
            elif kind == "garbage":
                w.write(os.urandom(4096)); await w.drain(); await asyncio.sleep(0.05)
            elif kind == "half":
                w.write(header + os.urandom(1 << 16)); await w.drain(); await asyncio.sleep(0.05)
            elif kind == "npy":
                w.write(npy); await w.drain(); await asyncio.sleep(0.05)
            w.close()
        except OSError:
            await asyncio.sleep(0.05)

async def main():
    kinds = ["idle", "slowloris", "garbage", "half", "npy"]
    await asyncio.gather(*(one(kinds[i % len(kinds)]) for i in range(n)))

asyncio.run(main())
"""


def honest_round_trips(kind: str, address: tuple, authkey: bool, seconds: float) -> list[float]:
    """Round trips of one honest client for ``seconds``; every transfer checked."""
    key = KEY if authkey else None
    a = np.random.default_rng(0).standard_normal(1024)
    times = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        ch = wirearray.connect(address, authkey=key, timeout=30)
        if kind == "serve":
            ch.send(a)
            ch.close()  # returns once the server confirmed the array
        else:
            ch.send(a)
            b = ch.recv()
            ch.close()
            if not np.array_equal(a, b):
                raise AssertionError("an honest transfer came back wrong")
        times.append(time.perf_counter() - t0)
    return times


def percentiles(times: list[float]) -> str:
    ms = sorted(t * 1e3 for t in times)
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return (
        f"n={len(ms):5d}  p50 {statistics.median(ms):7.2f} ms  p99 {p(0.99):7.2f} ms  "
        f"max {ms[-1]:7.2f} ms"
    )


def cmd_latency(args: argparse.Namespace) -> None:
    header = next(iter(Encoder().frame(np.zeros(1 << 20))))[0][:64]
    print(
        f"{args.hostile} hostile connections, {args.seconds} s per run, honest client: "
        "connect, 8 KiB array, confirmed close (serve) / echo (aio.serve)"
    )
    for kind in ("serve", "aio"):
        for authkey in (False, True):
            proc, address = start_server(kind, authkey)
            try:
                quiet = honest_round_trips(kind, address, authkey, args.seconds / 4)
                attacker = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        textwrap.dedent(ATTACKER),
                        str(address[1]),
                        str(args.hostile),
                        str(args.seconds + 2),
                        bytes(header).hex(),
                    ],
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1.0)  # the attack in place
                loud = honest_round_trips(kind, address, authkey, args.seconds)
                attacker.wait(30)
            finally:
                proc.kill()
                proc.wait()
            label = f"{'wirearray serve' if kind == 'serve' else 'aio.serve echo'}" + (
                " + authkey" if authkey else ""
            )
            print(f"{label:<26} quiet:        {percentiles(quiet)}")
            print(f"{'':<26} under attack: {percentiles(loud)}")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cmd_memory(args: argparse.Namespace) -> None:
    frame_head = next(iter(Encoder(byteorder="native").frame(np.zeros(args.frame_mib << 17))))[0]
    for kind in ("serve", "aio"):
        proc, address = start_server(kind, False)
        try:
            time.sleep(0.5)
            base, base_fds = rss_kib(proc.pid), fds(proc.pid)
            peak = base
            for _ in range(args.aborts):
                with socket.create_connection(address) as s:
                    s.sendall(bytes(frame_head))
                    chunk = bytes(1 << 20)
                    for _ in range(args.sent_mib):
                        s.sendall(chunk)
                    time.sleep(0.2)
                    peak = max(peak, rss_kib(proc.pid))
            time.sleep(0.5)
            after, after_fds = rss_kib(proc.pid), fds(proc.pid)
            socks = []
            for _ in range(args.idle):
                s = socket.create_connection(address)
                s.sendall(b"\x89")
                socks.append(s)
            time.sleep(1.0)
            idle = rss_kib(proc.pid)
            for s in socks:
                s.close()
        finally:
            proc.kill()
            proc.wait()
        label = "wirearray serve" if kind == "serve" else "aio.serve"
        print(
            f"{label:<16} RSS baseline {base / 1024:6.1f} MiB; after {args.aborts} aborted "
            f"{args.frame_mib} MiB frames ({args.sent_mib} MiB of each sent) "
            f"{after / 1024:6.1f} MiB (+{(after - base) / 1024:.1f}; "
            f"peak {peak / 1024:.1f}); fds {base_fds} -> {after_fds}; "
            f"{args.idle} idle connections: {(idle - after) / args.idle:.1f} KiB each"
        )


def cmd_delivery(args: argparse.Namespace) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    arrays = [np.random.default_rng(k).standard_normal(1 << 20) for k in range(3)]
    for label, wait in (("close(timeout=0), no handshake", 0.0), ("close()", None)):
        outcomes: list[str] = []
        with wirearray.listen("127.0.0.1:0", ssl=server_ctx) as listener:

            def serve(listener: wirearray.Listener, outcomes: list[str]) -> None:
                for _ in range(args.streams):
                    with listener.accept(timeout=60) as ch:
                        try:
                            got = list(ch)
                            whole = len(got) == 3 and all(
                                np.array_equal(g, a) for g, a in zip(got, arrays, strict=True)
                            )
                            outcomes.append("whole" if whole else "wrong")
                        except wirearray.WireError as exc:
                            outcomes.append(type(exc).__name__)

            t = threading.Thread(target=serve, args=(listener, outcomes))
            t.start()
            for _ in range(args.streams):
                ch = wirearray.connect(
                    listener.address, ssl=client_ctx, server_hostname="localhost", timeout=60
                )
                for a in arrays:
                    ch.send(a)
                ch.close(timeout=wait)
            t.join(120)
        whole = outcomes.count("whole")
        others = sorted({o for o in outcomes if o != "whole"})
        print(
            f"TLS, three 8 MiB arrays, {label:<31} {whole} of {args.streams} streams whole"
            + (f" (the others: {', '.join(others)})" if others else "")
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--hostile", type=int, default=200)
    lat.add_argument("--seconds", type=float, default=20.0)
    mem = sub.add_parser("memory")
    mem.add_argument("--aborts", type=int, default=20)
    mem.add_argument("--frame-mib", type=int, default=256)
    mem.add_argument("--sent-mib", type=int, default=192)
    mem.add_argument("--idle", type=int, default=1000)
    dlv = sub.add_parser("delivery")
    dlv.add_argument("--streams", type=int, default=10)
    args = p.parse_args()
    print(
        f"wirearray {wirearray.__version__} ({wirearray.IMPLEMENTATION}), "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    {"latency": cmd_latency, "memory": cmd_memory, "delivery": cmd_delivery}[args.cmd](args)


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
