"""The schedule of tests/nfq_delayer.py on simulated time: no queue, root or network, so
it runs in the default suite and the two-host tests can trust what it does."""

from __future__ import annotations

import random

from nfq_delayer import DelayLine


class FakePacket:
    def __init__(self, n: int, log: list):
        self.n, self.log = n, log

    def accept(self) -> None:
        self.log.append(self.n)


def simulate(line: DelayLine, count: int, step: float) -> list[int]:
    """``count`` packets arriving every ``step`` seconds; the release order."""
    log: list[int] = []
    for n in range(count + 1):
        arrival = n * step if n < count else float("inf")
        # what the delayer's loop does: wake at each due time before the next arrival
        while (due := line.next_due()) is not None and due <= arrival:
            line.release(due)
        if n < count:
            line.arrive(FakePacket(n, log), arrival)
    return log


def test_delay_and_jitter_keep_the_order():
    line = DelayLine(0.020, 0.002, 0.0, 3, 0.010, random.Random(1))
    order = simulate(line, 5000, 0.0001)
    assert order == list(range(5000))
    assert line.stats["out_of_order"] == 0
    assert 18.0 <= line.stats["min_hold_ms"] and line.stats["max_hold_ms"] <= 22.0 + 0.2
    assert 19.0 < line.stats["mean_hold_ms"] < 21.0


def test_reordering_rate_and_distance():
    line = DelayLine(0.020, 0.002, 0.25, 3, 0.010, random.Random(2))
    order = simulate(line, 20000, 0.0001)
    assert sorted(order) == list(range(20000))  # nothing lost or duplicated
    late, highest = 0, -1
    for n in order:
        late += n < highest
        highest = max(highest, n)
    assert late == line.stats["out_of_order"]
    assert line.stats["picked"] - 3 <= late <= line.stats["picked"]  # the last may stay
    assert 0.23 < late / 20000 < 0.27
    # late by at most a few places (others picked next to it add up), never early
    position = {n: i for i, n in enumerate(order)}
    assert max(position[n] - n for n in range(20000)) <= 12
    assert line.stats["min_hold_ms"] >= 18.0


def test_slow_traffic_is_not_stalled():
    """A picked packet with nobody behind it leaves ``max_gap`` after its time."""
    line = DelayLine(0.020, 0.0, 1.0, 3, 0.010, random.Random(3))
    order = simulate(line, 3, 1.0)
    assert order == [0, 1, 2]
    assert line.stats["max_hold_ms"] <= 30.0 + 1e-6


def test_flush_lets_everything_go():
    log: list[int] = []
    line = DelayLine(0.020, 0.0, 0.5, 3, 0.010, random.Random(4))
    for n in range(100):
        line.arrive(FakePacket(n, log), 0.0)
    line.release(0.0, flush=True)
    assert sorted(log) == list(range(100))
    assert line.stats["flushed"] == 100 and line.stats["packets"] == 0
