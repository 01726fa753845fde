"""ZeroMQ benchmarks: wirearray.zmq against pyzmq itself on the same sockets, process to
process over tcp://127.0.0.1 (the harness of ``wirearray bench zmq``,
wirearray._bench.zmq, under pytest-benchmark).

One group per socket pattern and size, each lining up against pyzmq's own way of
doing the same job:

* PAIR, 64 KiB / 1 MiB / 16 MiB: ``recv_array(out=)`` (native byte order, and the
  network-order default) against pyzmq ``recv_into`` [baseline]; ``recv_array(copy=False)``
  against ``recv(copy=False)`` + ``np.frombuffer``; pyzmq's documented send_array recipe
  as a peer;
* PUB/SUB with 1, 2 and 4 subscribers, 1 MiB: a wirearray Sender/Receiver (sequence
  numbers checked) against pyzmq ``send(copy=False)`` / ``recv_into`` [baseline], per
  subscriber.

A round streams ``count`` arrays (64 MiB, at most 2000 messages) and ends with every
receiver's acknowledgement; the receivers' buffers are allocated and touched before
the round (pytest-benchmark's ``setup``), and each method's first round checks the
values.  The summary prints each group's ratios to its baseline, then the targets
(docs/PERFORMANCE.md, "ZeroMQ").  Skipped, with the reason, without pyzmq >= 26.4.
"""

from __future__ import annotations

import pytest

from wirearray._bench import zmq as zb

_WHY = zb.unavailable()
if _WHY:
    pytest.skip(_WHY, allow_module_level=True)

KIB, MIB = 1 << 10, 1 << 20
CASES = [("pair", n, key) for n in zb.SIZES for key in zb.PAIR_METHODS] + [
    (f"pubsub-{s}", zb.PUBSUB_SIZE, key) for s in zb.SUBSCRIBERS for key in zb.PUBSUB_METHODS
]


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


@pytest.fixture(scope="module")
def topologies():
    """One zb.Bench (sockets and receiver processes) per pattern, made on first use."""
    made: dict[str, zb.Bench] = {}

    def get(group: str) -> zb.Bench:
        if group not in made:
            pattern, n = ("pair", 1) if group == "pair" else ("pubsub", int(group.split("-")[1]))
            made[group] = zb.Bench(pattern, n)
        return made[group]

    yield get
    for b in made.values():
        b.close()


@pytest.mark.parametrize(
    ("group", "nbytes", "key"),
    CASES,
    ids=[f"{g}-{_size(n).replace(' ', '')}-{k}" for g, n, k in CASES],
)
def bench_zmq(benchmark, topologies, group, nbytes, key):
    bench = topologies(group)
    methods = zb.PAIR_METHODS if group == "pair" else zb.PUBSUB_METHODS
    count = zb.round_count(nbytes)
    bench.prepare(key, nbytes, count)()  # warm-up; the receiver checks the values
    title = "PAIR" if group == "pair" else f"PUB/SUB {group.split('-')[1]} subscriber(s)"
    benchmark.group = f"zmq {title}, {_size(nbytes)}"
    benchmark.extra_info.update(
        kind="zmq",
        key=key,
        zmq_group=group,
        method=methods[key].name,
        baseline=methods[key].baseline,
        nbytes=nbytes * count,  # per receiver and round: GB/s per receiver
        size=nbytes,
        messages=count,
    )
    benchmark.pedantic(
        lambda run: run(),
        setup=lambda: ((bench.prepare(key, nbytes, count),), {}),
        rounds=zb.ROUNDS,
    )
