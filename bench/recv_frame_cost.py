"""The receive side's cost per buffered small frame, layer by layer.

    python bench/recv_frame_cost.py [--batch 100] [--rounds 1500] [--repeats 5]

One process, a UNIX socketpair: the sender puts ``--batch`` float64[16] frames on the
socket with ``send(flush=False)`` and one ``flush()``, then the receiver takes them
one call at a time -- so the figures are the receiver's CPU per frame with the frames
already buffered in the kernel (or in the read-ahead), not a transfer rate:

* ``Channel.recv(out=)`` and ``Channel.recv()``: what an application pays;
* ``Connection.fast_recv``: the channel core's call around it (the state test, the
  count the close handshake confirms), without ``Channel.recv``'s own Python;
* ``SmallRx.take`` alone: the compiled call under ``Channel.recv`` (decode at the
  read-ahead's cursor, refill with one ``recv(2)`` that never waits);
* ``decode_small`` on a bytes object: the compiled whole-frame decode by itself, and
  on a memoryview sliced per frame (what a decoder without the cursor pays).

Medians of ``--repeats`` runs, microseconds per frame (docs/PERFORMANCE.md, "The
per-frame cost of recv()").  Needs the compiled core.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable

import numpy as np

from wirearray import transport
from wirearray._implementation import get
from wirearray.codec import Encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=100, help="frames buffered per round")
    ap.add_argument("--rounds", type=int, default=1500, help="rounds per run")
    ap.add_argument("--repeats", type=int, default=5, help="runs; the median is shown")
    args = ap.parse_args()
    impl = get(None)
    if getattr(impl, "SmallRx", None) is None:
        raise SystemExit("needs the compiled core (wirearray.info()['implementation'])")
    batch, rounds = args.batch, args.rounds
    a = np.arange(16, dtype=np.float64)
    out = np.empty_like(a)
    s1, s2 = socket.socketpair()
    tx = transport.Channel(s1, timeout=5.0)
    rx = transport.Channel(s2, timeout=5.0)
    dec = rx._core.dec
    take, fd = dec._rx.take, s2.fileno()

    def fill() -> None:
        for _ in range(batch):
            tx.send(a, flush=False)
        tx.flush()

    def recv_out() -> None:
        r = rx.recv
        for _ in range(batch):
            r(out)

    def recv_new() -> None:
        r = rx.recv
        for _ in range(batch):
            r()

    def take_only() -> None:
        n = 0
        while n < batch:  # bounded: the batch is on the socket already
            if take(fd, out) is None:
                dec.advance(s2.recv_into(dec.get_buffer()))
                continue
            n += 1
        rx._core.consumed = dec.seq  # the channel's count, as Channel.recv keeps it

    frame = bytes(Encoder().encode_small(a))
    decode_small = impl.decode_small

    def decode_only() -> None:
        for _ in range(batch):
            decode_small(frame, 0, 1 << 40, 64, False, out)

    frames = frame * batch  # one after the other, as a read brings them (all seq 0)
    size = len(frame)

    def decode_sliced() -> None:  # the cursor's alternative: a memoryview sliced per frame
        mv = memoryview(frames)
        for i in range(batch):
            decode_small(mv[i * size :], 0, 1 << 40, 64, False, out)

    fast_recv = rx._core.fast_recv

    def core_only() -> None:  # Channel.recv's own Python left out
        n = 0
        while n < batch:  # bounded: the batch is on the socket already
            if fast_recv(out, fd) is None:
                dec.advance(s2.recv_into(dec.get_buffer()))
                continue
            n += 1

    def per_frame(fn: Callable[[], None], refill: bool) -> float:
        total = 0.0
        for _ in range(rounds):
            if refill:
                fill()
            t = time.perf_counter()
            fn()
            total += time.perf_counter() - t
        return total / (batch * rounds) * 1e6

    rows = [
        ("Channel.recv(out=)", recv_out, True),
        ("Channel.recv()", recv_new, True),
        ("Connection.fast_recv", core_only, True),
        ("SmallRx.take alone", take_only, True),
        ("decode_small on bytes", decode_only, False),
        ("decode_small, sliced", decode_sliced, False),
    ]
    print(f"float64[16] frames, {batch} buffered per round, {rounds} rounds, "
          f"median of {args.repeats} runs, us per frame")  # fmt: skip
    for label, fn, refill in rows:
        runs = [per_frame(fn, refill) for _ in range(args.repeats)]
        print(f"  {label:24s} {statistics.median(runs):6.3f}")
    s1.close()  # not Channel.close(): its handshake would wait for this thread
    s2.close()


if __name__ == "__main__":
    main()
