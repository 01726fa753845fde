"""A userspace delay line for one NFQUEUE: delay, jitter and reordering without netem.

Run inside a network namespace (``ip netns exec NS python nfq_delayer.py --queue N ...``)
whose INPUT hook sends packets to queue N (tests/hosts.py sets that up).  Each packet is
held, then accepted back into the kernel:

* ``--delay-ms`` D and ``--jitter-ms`` J: held for the path's current delay, which
  wanders between D - J and D + J (a new random target every max(10 ms, 4 J), reached
  linearly), as a queue on a real path grows and drains.  It changes slower than time
  passes, so jitter alone never reorders: packets not picked below leave in arrival
  order;
* ``--reorder`` P and ``--reorder-distance`` K: each packet is picked with probability
  P and stepped out of the line: it leaves right after the next 1..K packets (uniformly)
  that arrived after it, or ``--reorder-max-ms`` after its own time if they do not
  come.  So about P of the packets arrive late, by 1..K places (a few more where picked
  packets are neighbours), however fast the traffic is, and none is held less than
  D - J.

Loss is not done here (an nft ``numgen random`` rule drops before the queue).  The
delayer prints ``ready`` once bound; it stops on SIGTERM/SIGINT, at the end of its stdin
(the test holds the pipe: if the test process dies, so does the delayer) or after
``--lifetime`` seconds, lets go of what it still holds (counted as ``flushed``) and
prints one JSON line of statistics: packets released on schedule, how many of those
left after a packet that arrived later, the shortest, mean and longest hold (which
include the delayer's own backlog if the traffic is faster than it), its CPU time.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import select
import signal
import sys
import time


class DelayLine:
    """The schedule, apart from the queue: ``arrive(pkt, now)``, ``next_due()`` and
    ``release(now)`` (which calls ``accept()`` on each packet whose time has come)."""

    def __init__(
        self,
        delay: float,
        jitter: float,
        reorder: float,
        distance: int,
        max_gap: float,
        rng: random.Random,
    ):
        self.delay, self.jitter, self.reorder = delay, jitter, reorder
        self.distance, self.max_gap, self.rng = distance, max_gap, rng
        self.line: collections.deque = collections.deque()  # [due, n, arrived, pkt]
        self.parked: list = []  # [due, n, arrived, pkt, packets still to let pass]
        self.arrived = 0
        self.tail = 0.0  # due time of the last packet in line
        self.period = max(0.010, 4 * jitter)
        self.segment = (-1.0, delay, -1.0, delay)  # (t0, delay at t0, t1, delay at t1)
        self.last_released = -1
        self.stats = {
            "packets": 0,
            "picked": 0,
            "out_of_order": 0,
            "flushed": 0,
            "min_hold_ms": None,
            "mean_hold_ms": 0.0,
            "max_hold_ms": 0.0,
        }
        self._held_total = 0.0

    def arrive(self, pkt, now: float) -> None:
        n, self.arrived = self.arrived, self.arrived + 1
        due = now + self.path_delay(now)
        if self.reorder and self.rng.random() < self.reorder:
            self.stats["picked"] += 1
            self.parked.append([due, n, now, pkt, self.rng.randint(1, self.distance)])
        else:
            self.tail = max(due, self.tail)
            self.line.append([self.tail, n, now, pkt])

    def path_delay(self, now: float) -> float:
        """The delay at ``now``: piecewise linear between random targets in D +- J,
        ``period`` apart, so its slope is at most 2 J / period <= 1/2."""
        t0, d0, t1, d1 = self.segment
        if now > t1:
            if now > t1 + self.period:  # idle for a while: start a new segment here
                t1, d1 = now, d1
            t0, d0 = t1, d1
            t1 = t0 + self.period
            d1 = max(0.0, self.delay + self.rng.uniform(-self.jitter, self.jitter))
            self.segment = (t0, d0, t1, d1)
        return d0 + (d1 - d0) * (now - t0) / self.period

    def _time(self, p: list) -> float:
        """When a parked packet leaves: at once when enough packets passed it (its
        arrival time sorts it first), ``max_gap`` after its own time if they do not come."""
        return p[2] if p[4] <= 0 else p[0] + self.max_gap

    def next_due(self) -> float | None:
        times = [self._time(p) for p in self.parked]
        if self.line:
            times.append(self.line[0][0])
        return min(times, default=None)

    def release(self, now: float, *, flush: bool = False) -> None:
        """Accept every packet whose time has come (all of them with ``flush``), in the
        order of their times -- also when this process fell behind."""
        while True:
            parked = min(self.parked, key=lambda p: (self._time(p), p[1]), default=None)
            head = self.line[0] if self.line else None
            if parked is not None and (head is None or self._time(parked) < head[0]):
                if not (flush or self._time(parked) <= now):
                    return
                self.parked.remove(parked)
                self._accept(parked, now, flush)
            elif head is not None:
                if not (flush or head[0] <= now):
                    return
                self.line.popleft()
                for q in self.parked:  # the picked packets it overtakes
                    if q[1] < head[1]:
                        q[4] -= 1
                self._accept(head, now, flush)
            else:
                return

    def _accept(self, p: list, now: float, flush: bool) -> None:
        p[3].accept()
        s = self.stats
        if flush:
            s["flushed"] += 1
            return
        hold = (now - p[2]) * 1e3
        s["packets"] += 1
        if p[1] < self.last_released:
            s["out_of_order"] += 1
        self.last_released = max(self.last_released, p[1])
        s["min_hold_ms"] = hold if s["min_hold_ms"] is None else min(s["min_hold_ms"], hold)
        s["max_hold_ms"] = max(s["max_hold_ms"], hold)
        self._held_total += hold
        s["mean_hold_ms"] = self._held_total / s["packets"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queue", type=int, required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0, help="probability, 0..1")
    p.add_argument("--reorder-distance", type=int, default=3)
    p.add_argument("--reorder-max-ms", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lifetime", type=float, default=600.0, help="seconds, then exit")
    args = p.parse_args(argv)

    from netfilterqueue import COPY_META, NetfilterQueue

    line = DelayLine(
        args.delay_ms / 1e3,
        args.jitter_ms / 1e3,
        args.reorder,
        max(1, args.reorder_distance),
        args.reorder_max_ms / 1e3,
        random.Random(args.seed),
    )
    stop = False

    def on_signal(signum, frame) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    nfq = NetfilterQueue()
    # COPY_META: the delayer never looks at payloads, so none are copied to userspace;
    # verdicts are given later, outside the callback (NetfilterQueue >= 1.0).
    nfq.bind(
        args.queue, lambda pkt: line.arrive(pkt, time.monotonic()), max_len=65536, mode=COPY_META
    )
    fd, stdin = nfq.get_fd(), sys.stdin.fileno()
    deadline = time.monotonic() + args.lifetime
    print("ready", flush=True)
    try:
        while not stop:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = min(0.2, deadline - now)
            due = line.next_due()
            if due is not None:
                wait = max(0.0, min(wait, due - now))
            try:
                ready, _, _ = select.select([fd, stdin], [], [], wait)
            except InterruptedError:
                continue
            if fd in ready:
                nfq.run(block=False)
            if stdin in ready and not os.read(stdin, 4096):
                break  # the test closed our stdin (or died)
            line.release(time.monotonic())
    finally:
        line.release(time.monotonic(), flush=True)
        nfq.unbind()
        print(json.dumps({**line.stats, "cpu_seconds": time.process_time()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
