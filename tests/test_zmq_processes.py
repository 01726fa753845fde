"""wirearray.zmq across processes (tests/zmq_peer.py): every pattern over ipc:// (in a
temporary directory) and tcp://127.0.0.1, every byte checked from the sequence
number, and a publisher restart whose lost messages the sequence numbers report.

Every wait is bounded: peers have RCVTIMEO/SNDTIMEO, their output is read with a
timeout, and they are killed on the way out.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack

import numpy as np
import pytest

from zmqutil import Endpoints, Handshakes, bind, bounded, peer, read_json, require_zmq

require_zmq()

import zmq  # noqa: E402

import wirearray  # noqa: E402
from wirearray import zmq as wz  # noqa: E402
from zmq_peer import payload  # noqa: E402

NBYTES = 100_000  # split frames
WAIT = 60.0


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


@pytest.fixture
def endpoints():
    e = Endpoints()
    yield e
    e.close()


def spec(**fields: object) -> str:
    base = {"nbytes": NBYTES, "dtype": "float64", "seed": 3, "timeout_ms": 30_000}
    base.update(fields)
    return json.dumps(base)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.tobytes() == b.tobytes()  # random bytes as float64 include NaNs


def xpub(ctx) -> zmq.Socket:
    """An XPUB that shows every subscription (not only the first to each topic)."""
    s = bounded(ctx.socket(zmq.XPUB))
    s.setsockopt(zmq.XPUB_VERBOSE, 1)
    return s


def result(proc) -> dict:
    r = read_json(proc, WAIT)
    assert r.get("ok"), r
    return r


def test_pair_both_byte_orders(ctx, endpoints):
    ep = endpoints.new("ipc")
    with peer("recv", spec(socket="PAIR", bind=[ep], count=20, on_gap="raise")) as p:
        read_json(p, WAIT)  # ready
        a = bounded(ctx.socket(zmq.PAIR))
        a.connect(ep)
        tx = wz.Sender(a, checksum=True)
        for i in range(20):
            tx.send(payload(3, i, NBYTES, "float64"), byteorder="native" if i % 2 else None)
        r = result(p)
    assert r["received"] == 20 and r["bad"] == 0 and r["seqs"] == list(range(20))


def test_push_to_pull_workers(ctx, endpoints):
    push = bounded(ctx.socket(zmq.PUSH))
    ep = bind(push, endpoints.new("tcp"))
    shakes = Handshakes(push)
    with ExitStack() as stack:
        workers = [
            stack.enter_context(peer("recv", spec(socket="PULL", connect=[ep], count=40, idle_s=2)))
            for _ in range(3)
        ]
        for w in workers:
            read_json(w, WAIT)
        shakes.wait(3)
        shakes.close()
        tx = wz.Sender(push, checksum=True)
        for i in range(30):
            tx.send(payload(3, i, NBYTES, "float64"))
        results = [result(w) for w in workers]
    seqs = sorted(s for r in results for s in r["seqs"])
    assert seqs == list(range(30)), "every message exactly once"
    assert all(r["received"] == 10 for r in results)  # round-robin over three
    assert all(r["stats"]["lost"] == 0 for r in results)  # PULL: gaps not checked


def test_many_producers_into_one_collector(ctx, endpoints):
    pull = bounded(ctx.socket(zmq.PULL))
    rx = wz.Receiver(pull, on_gap="raise")  # each producer's sequence is whole here
    ep = bind(pull, endpoints.new("ipc"))
    seeds = (10, 11)
    with ExitStack() as stack:
        producers = [
            stack.enter_context(peer("send", spec(socket="PUSH", connect=[ep], count=15, seed=s)))
            for s in seeds
        ]
        for p in producers:
            read_json(p, WAIT)
        out = np.empty(NBYTES // 8)
        by_origin: dict[int, list] = {}
        for _ in range(30):
            a = rx.recv(out=out)
            seed = next(
                s for s in seeds if same_bytes(a, payload(s, rx.last_seq, NBYTES, "float64"))
            )
            by_origin.setdefault(rx.last_origin, []).append((seed, rx.last_seq))
        sent = {int(result(p)["origin"]): s for p, s in zip(producers, seeds, strict=True)}
    assert set(by_origin) == set(sent)
    for origin, got in by_origin.items():
        assert got == [(sent[origin], i) for i in range(15)]
    assert rx.stats == {"received": 30, "lost": 0, "reordered": 0, "duplicated": 0, "refused": 0}


def test_pub_to_subscribers(ctx, endpoints):
    pub = xpub(ctx)
    ep = bind(pub, endpoints.new("ipc"))
    with ExitStack() as stack:
        subs = [
            stack.enter_context(
                peer("recv", spec(socket="SUB", connect=[ep], count=25, on_gap="raise"))
            )
            for _ in range(2)
        ]
        for s in subs:
            read_json(s, WAIT)
        for _ in subs:
            assert pub.recv()[:1] == b"\x01"
        tx = wz.Sender(pub)
        for i in range(25):
            tx.send(payload(3, i, NBYTES, "float64"))
        results = [result(s) for s in subs]
    for r in results:
        assert r["seqs"] == list(range(25)) and r["stats"]["lost"] == 0
    assert results[0]["sha256"] == results[1]["sha256"]


def test_router_server_dealer_clients():
    with ExitStack() as stack:
        server = stack.enter_context(
            peer("rpc-server", spec(bind=["tcp://127.0.0.1:*"], count=3 * 12, checksum=True))
        )
        address = read_json(server, WAIT)["ready"]
        clients = [
            stack.enter_context(peer("rpc-client", spec(connect=[address], count=12, seed=k)))
            for k in range(3)
        ]
        for c in clients:
            read_json(c, WAIT)
        for c in clients:
            r = result(c)
            assert r["calls"] == 12 and r["bad"] == 0 and r["stats"]["lost"] == 0
        r = result(server)
        assert r["clients"] == 3 and r["stats"]["lost"] == 0


def test_publisher_restart_is_reported(ctx, endpoints):
    """A publisher process dies and another takes its place: the new one is a new
    origin, and the messages it sent before the subscriber reconnected (which PUB
    drops without a word) count as lost from its first sequence number."""
    ep = endpoints.new("ipc")
    sub = bounded(ctx.socket(zmq.SUB))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RECONNECT_IVL, 300)
    rx = wz.Receiver(sub, on_gap="count")
    with peer("send", spec(socket="XPUB", bind=[ep], count=20, subscribers=1)) as first:
        read_json(first, WAIT)
        sub.connect(ep)
        got = [rx.recv() for _ in range(20)]
        one = result(first)
    origin_one = rx.last_origin
    assert all(same_bytes(a, payload(3, i, NBYTES, "float64")) for i, a in enumerate(got))
    with peer(
        "send", spec(socket="XPUB", bind=[ep], count=30, blind=10, subscribers=1, settle_s=0.05)
    ) as second:
        read_json(second, WAIT)
        deadline = time.monotonic() + WAIT
        # Receive (and so keep the SUB socket working: a zmq socket re-sends its
        # subscriptions after a reconnection only when it is used) until all 30
        # messages of the new origin are received or reported lost.
        while True:
            new = [o for k, o in rx.origin_stats().items() if k != origin_one]
            if new and new[0]["received"] + new[0]["lost"] >= 30:
                break
            assert time.monotonic() < deadline, rx.origin_stats()
            if sub.poll(200):
                rx.recv()
        two = result(second)
    origins = rx.origin_stats()
    assert set(origins) == {origin_one, int(two["origin"])}
    assert origins[origin_one]["received"] == one["sent"] == 20
    assert origins[origin_one]["lost"] == 0
    new = origins[int(two["origin"])]
    assert new["received"] + new["lost"] == two["sent"] == 30, new
    assert new["lost"] >= two["blind"] == 10, (two, new)
    assert rx.stats["lost"] == new["lost"]
    print(f"\nrestart: {new['lost']} of 30 messages of the new publisher reported lost")


def test_wrong_peer_is_refused_not_hung(ctx, endpoints):
    """A plain pyzmq peer sending raw bytes: ProtocolErrors, counted, no hang."""
    ep = endpoints.new("tcp")
    pull = bounded(ctx.socket(zmq.PULL))
    rx = wz.Receiver(pull)
    ep = bind(pull, ep)
    push = bounded(ctx.socket(zmq.PUSH))
    push.connect(ep)
    for msg in ([b"hello"], [b"\x89WAZ" + b"\0" * 28, b"x" * 100], [np.zeros(3).tobytes()]):
        push.send_multipart(msg)
    for _ in range(3):
        with pytest.raises(wirearray.ProtocolError):
            rx.recv()
    assert rx.stats["refused"] == 3


EXIT_WITH_MESSAGES_IN_FLIGHT = """
import sys, numpy as np, zmq
from wirearray import zmq as wz
s = zmq.Context.instance().socket(zmq.PUSH)
s.setsockopt(zmq.LINGER, 1000)
s.connect(sys.argv[1])
for i in range(16):
    wz.send_array(s, np.full(1 << 20, float(i)))  # staging buffers, zero-copy
    wz.send_array(s, np.full(1 << 18, float(i)), byteorder="native", copy=False)
s.close()  # and exit at once: libzmq is still sending from those buffers
"""


def test_exit_with_messages_in_flight(ctx, endpoints):
    """A process that exits while libzmq still sends from staging buffers (or from
    arrays sent with copy=False) exits cleanly: pyzmq drops its references at exit,
    wirearray keeps those buffers alive until the process is gone."""
    pull = bounded(ctx.socket(zmq.PULL))
    pull.setsockopt(zmq.RCVHWM, 1)  # read nothing meanwhile: the sender's queue stays full
    ep = bind(pull, endpoints.new("tcp"))
    for _ in range(3):
        r = subprocess.run(
            [sys.executable, "-c", EXIT_WITH_MESSAGES_IN_FLIGHT, ep],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert r.returncode == 0 and "Bad address" not in r.stderr, r.stderr
        while pull.poll(200):
            pull.recv_multipart()
