"""wirearray.zmq's own cost per message, apart from the transport: one process, inproc
PAIR sockets (libzmq hands messages over by reference, no I/O thread, no kernel), the
sender queueing ``count`` messages, then the receiver taking them.  Prints microseconds
per message for the send and the receive side of pyzmq (send(copy=False) /
recv_into) and of wirearray (Sender / Receiver.recv(out=), native and network byte
order), best of ``repeats`` runs.  With ``--one-by-one`` each message is received
before the next is sent (nothing queued: buffers stay in cache, and libzmq releases
each zero-copy message before the next send).

With ``--breakdown`` it times the receive side only, wall clock and the receiving
thread's CPU time (``time.thread_time``: what other processes on a loaded machine
take does not count), for the same bytes received several ways: pyzmq's
``recv_into`` of one part; pyzmq receiving the parts of a wirearray message itself
(origin and header parts as Frames, ``recv_into`` of the payload and the RCVMORE
check: the zmq calls wirearray makes, with none of its Python); ``recv_array(out=)``;
``Receiver.recv(out=)``; and ``recv(copy=False)`` + ``np.frombuffer`` against
``recv_array(copy=False)``.  The difference between the second row and the
wirearray rows is wirearray's own Python per message.  For split frames (64 KiB and
up) four more rows: a network-order payload landed in a native ``out=`` by one
conversion pass from zmq's buffer (``recv_array``'s way) or by ``recv_into`` and an
in-place swap (the stream decoder's way), and pyzmq's own cost of one small part
received as a Frame and of one ``RCVMORE`` query.

With ``--copied`` the breakdown's payloads are sent with a copy: in one process, a
payload sent without one is released through pyzmq's garbage-collector thread when
the *receiver* drops it, a wake-up (eventfd) and a GIL hand-over per message that
the receiving process of a real (TCP, IPC) stream never pays.

    python bench/zmq_overhead.py [--repeats 5] [--count 500] [--one-by-one]
                                 [--breakdown [--copied]]

Used by docs/PERFORMANCE.md ("ZeroMQ") to say what bounds the small-message ratios:
the streaming benchmark (``wirearray bench zmq``) times whole streams between
processes, where this overhead competes with libzmq's I/O threads for two cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import zmq

import wirearray
from wirearray import zmq as wz

_MORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)


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


def _breakdown(a_sock: zmq.Socket, b_sock: zmq.Socket, n: int, copied: bool = False) -> list:
    """(name, send, receive) for the receive-side breakdown of an ``n``-byte array:
    every send puts the same bytes on the socket (the parts of one wirearray message,
    or the payload alone), the payload without a copy -- or, with ``copied``, copied
    by libzmq, so that the receiver frees memory libzmq allocated (as after a TCP
    receive) instead of waking pyzmq's garbage-collector thread for every message."""
    a = np.arange(n // 8, dtype=np.float64)
    out = np.empty_like(a)
    # the parts a native-order wirearray message of ``a`` has, as the Sender makes them
    probe = a_sock.context.socket(zmq.PAIR)
    probe_rx = a_sock.context.socket(zmq.PAIR)
    probe.bind("inproc://overhead-probe")
    probe_rx.connect("inproc://overhead-probe")
    wz.send_array(probe, a, byteorder="native")
    parts = probe_rx.recv_multipart()  # origin, header, payload; or origin, whole frame
    probe.close(linger=0)
    probe_rx.close(linger=0)
    split = len(parts) == 3
    head = parts[:-1] if split else parts[:1]
    last = None if split else parts[1]

    def send_payload() -> None:
        a_sock.send(a, copy=copied)

    def send_message() -> None:
        for p in head:
            a_sock.send(p, _MORE)
        if split:
            a_sock.send(a, copy=copied)
        else:
            a_sock.send(last)

    def recv_parts() -> None:  # the zmq calls of a wirearray receive, nothing else
        b_sock.recv(0, False)
        b_sock.recv(0, False)
        b_sock.recv_into(out)
        b_sock.getsockopt(_RCVMORE)

    # a payload in network order received into a native out=: one conversion pass from
    # zmq's buffer (what recv_array does) against landing it, then swapping in place
    big = a.astype(">f8")
    out_be = out.view(">f8")  # the same memory under the wire's dtype

    def send_big() -> None:
        a_sock.send(big, copy=copied)

    def convert_from_frame() -> None:
        wirearray.ntoh(np.frombuffer(b_sock.recv(0, False), ">f8"), out=out)

    def send_small() -> None:
        a_sock.send(head[0])

    def land_then_swap() -> None:
        b_sock.recv_into(out_be)
        wirearray.byteswap(out, inplace=True)

    rx_native = wz.Receiver(b_sock, on_gap="off")
    rows = [
        ("pyzmq recv_into, 1 part", send_payload, lambda: b_sock.recv_into(out)),
        ("pyzmq, wirearray's parts", send_message, recv_parts),
        ("recv_array(out=)", send_message, lambda: wz.recv_array(b_sock, out=out)),
        ("Receiver.recv(out=)", send_message, lambda: rx_native.recv(out=out)),
        (
            "pyzmq recv(copy=False)+frombuffer",
            send_payload,
            lambda: np.frombuffer(b_sock.recv(copy=False), dtype=a.dtype),
        ),
        ("recv_array(copy=False)", send_message, lambda: wz.recv_array(b_sock, copy=False)),
    ]
    if split:  # the two ways of landing a swapped payload part, and pyzmq's cost per part
        rows += [
            ("network payload: Frame + one pass", send_big, convert_from_frame),
            ("network payload: recv_into + swap", send_big, land_then_swap),
            ("pyzmq: a small part as a Frame", send_small, lambda: b_sock.recv(0, False)),
            ("pyzmq: the RCVMORE query alone", lambda: None, lambda: b_sock.getsockopt(_RCVMORE)),
        ]
    else:  # a whole frame in one part: no payload part of its own
        rows = [r for r in rows if r[0] != "pyzmq, wirearray's parts"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--one-by-one", action="store_true", help="receive each message at once")
    ap.add_argument("--breakdown", action="store_true", help="the receive side, several ways")
    ap.add_argument("--copied", action="store_true", help="--breakdown: payloads sent with a copy")
    args = ap.parse_args()
    ctx = zmq.Context()
    a_sock, b_sock = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a_sock.setsockopt(zmq.SNDHWM, 0)
    b_sock.setsockopt(zmq.RCVHWM, 0)
    a_sock.bind("inproc://overhead")
    b_sock.connect("inproc://overhead")
    if args.breakdown:
        print(f"{'payload':>8}  {'receive':<34} {'wall us':>8} {'CPU us':>8}")
    else:
        rx = wz.Receiver(b_sock)
        print(f"{'payload':>8}  {'method':<34} {'send us':>8} {'recv us':>8}")
    for n in (8 << 10, 64 << 10, 1 << 20):
        if args.breakdown:
            rows = _breakdown(a_sock, b_sock, n, args.copied)
        else:
            rows = _methods(a_sock, b_sock, rx, n)
        for name, send, recv in rows:
            best_s = best_r = best_c = float("inf")
            for _ in range(args.repeats):
                t_cpu = 0.0
                if args.one_by_one:
                    t_send = t_recv = 0.0
                    for _ in range(args.count):
                        t0 = time.perf_counter()
                        send()
                        t1 = time.perf_counter()
                        c1 = time.thread_time()
                        recv()
                        t_cpu += time.thread_time() - c1
                        t_send += t1 - t0
                        t_recv += time.perf_counter() - t1
                else:
                    t0 = time.perf_counter()
                    for _ in range(args.count):
                        send()
                    t1 = time.perf_counter()
                    c1 = time.thread_time()
                    for _ in range(args.count):
                        recv()
                    t_cpu = time.thread_time() - c1
                    t_send, t_recv = t1 - t0, time.perf_counter() - t1
                best_s = min(best_s, t_send / args.count)
                best_r = min(best_r, t_recv / args.count)
                best_c = min(best_c, t_cpu / args.count)
            label = f"{n >> 10} KiB"
            if args.breakdown:
                print(f"{label:>8}  {name:<34} {best_r * 1e6:8.1f} {best_c * 1e6:8.1f}")
            else:
                print(f"{label:>8}  {name:<34} {best_s * 1e6:8.1f} {best_r * 1e6:8.1f}")
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
