"""wirearray.zmq's own cost per message, apart from the transport: one process, inproc
PAIR sockets (libzmq hands messages over by reference, no I/O thread, no kernel), the
sender queueing ``count`` messages, then the receiver taking them.  Prints microseconds
per message for the send and the receive side of pyzmq (send(copy=False) /
recv_into) and of wirearray (Sender / Receiver.recv(out=), native and network byte
order), best of ``repeats`` runs.  With ``--one-by-one`` each message is received
before the next is sent (nothing queued: buffers stay in cache, and libzmq releases
each zero-copy message before the next send).

    python bench/zmq_overhead.py [--repeats 5] [--count 500] [--one-by-one]

Used by docs/PERFORMANCE.md ("ZeroMQ") to say what bounds the small-message ratios:
the streaming benchmark (``wirearray bench zmq``) times whole streams between
processes, where this overhead competes with libzmq's I/O threads for two cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import zmq

from wirearray import zmq as wz


def _methods(a_sock: zmq.Socket, b_sock: zmq.Socket, rx: wz.Receiver, n: int) -> list:
    """(name, send, receive) for an ``n``-byte float64 array."""
    a = np.arange(n // 8, dtype=np.float64)
    out = np.empty_like(a)
    raw_out = out.view(np.uint8)
    tx_native = wz.Sender(a_sock, byteorder="native")
    tx_network = wz.Sender(a_sock)
    return [
        (
            "pyzmq send(copy=False)/recv_into",
            lambda: a_sock.send(a, copy=False),
            lambda: b_sock.recv_into(raw_out),
        ),
        (
            "wirearray native (copy=False)",
            lambda: tx_native.send(a, copy=False),
            lambda: rx.recv(out=out),
        ),
        ("wirearray network (default)", lambda: tx_network.send(a), lambda: rx.recv(out=out)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--one-by-one", action="store_true", help="receive each message at once")
    args = ap.parse_args()
    ctx = zmq.Context()
    a_sock, b_sock = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a_sock.setsockopt(zmq.SNDHWM, 0)
    b_sock.setsockopt(zmq.RCVHWM, 0)
    a_sock.bind("inproc://overhead")
    b_sock.connect("inproc://overhead")
    rx = wz.Receiver(b_sock)
    print(f"{'payload':>8}  {'method':<34} {'send us':>8} {'recv us':>8}")
    for n in (8 << 10, 64 << 10, 1 << 20):
        for name, send, recv in _methods(a_sock, b_sock, rx, n):
            best_s = best_r = float("inf")
            for _ in range(args.repeats):
                if args.one_by_one:
                    t_send = t_recv = 0.0
                    for _ in range(args.count):
                        t0 = time.perf_counter()
                        send()
                        t1 = time.perf_counter()
                        recv()
                        t_send += t1 - t0
                        t_recv += time.perf_counter() - t1
                else:
                    t0 = time.perf_counter()
                    for _ in range(args.count):
                        send()
                    t1 = time.perf_counter()
                    for _ in range(args.count):
                        recv()
                    t_send, t_recv = t1 - t0, time.perf_counter() - t1
                best_s = min(best_s, t_send / args.count)
                best_r = min(best_r, t_recv / args.count)
            label = f"{n >> 10} KiB"
            print(f"{label:>8}  {name:<34} {best_s * 1e6:8.1f} {best_r * 1e6:8.1f}")
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
