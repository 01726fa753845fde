"""One end of a wirearray.zmq test, run as its own process (tests/test_zmq_processes.py,
and inside network namespaces by tests/test_many_hosts.py).

    python zmq_peer.py ROLE SPEC

ROLE is ``send``, ``recv``, ``rpc-server`` or ``rpc-client``; SPEC is JSON:

* ``socket``: the zmq socket type ("PUSH", "PULL", "XPUB", "SUB", "PAIR", "ROUTER",
  "DEALER"); ``bind`` / ``connect``: lists of endpoints;
* ``count``: messages to send, receive or exchange; ``nbytes``, ``dtype``, ``seed``:
  message ``i`` of a sender is :func:`payload` (seed, i) -- the receiver recomputes it
  from the sequence number, so every byte is checked;
* ``byteorder``, ``checksum``; ``timeout_ms``: RCVTIMEO/SNDTIMEO (every wait bounded);
  ``ipv6``: allow IPv6 endpoints;
* send: ``subscribers`` (XPUB: wait for that many subscriptions), ``peers`` (wait for
  that many handshakes), ``interval_s`` (pause between messages), ``blind`` (send
  that many messages before binding, so that nobody gets them: an XPUB or PUB
  without peers drops them, as when a publisher restarts), ``final_after_s`` (then a
  last message after that pause, which reveals loss at the end of the burst),
  ``heartbeat_ms`` (ZMTP PING interval; ``heartbeat_timeout_ms``, default four
  intervals, ends a connection that stays silent that long), ``linger_ms``;
* recv: ``subscribe`` (SUB), ``on_gap`` (default: the socket type's), ``idle_s``
  (stop when nothing arrives for that long), ``hwm``, ``reconnect_ms``,
  ``heartbeat_ms``, ``hello`` (an endpoint to tell "ready" to, once the first message
  arrived, with a PUSH socket).

Each process prints JSON lines: ``{"ready": endpoint}`` once bound/connected, then one
result line (``{"ok": true, ...}``).  A failed check is ``{"ok": false, "error": ...}``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np
import zmq

import wirearray
from wirearray import zmq as wz


def say(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def payload(seed: int, i: int, nbytes: int, dtype: str) -> np.ndarray:
    """Message ``i`` of a stream: random bytes from ``seed``, the first 8 replaced by
    ``i``, the rest XORed with ``i``'s low byte (cheap to recompute, unique per i)."""
    base = _base(seed, nbytes)
    b = base ^ np.uint8(i & 0xFF)
    b[:8] = np.frombuffer(int(i).to_bytes(8, "little"), np.uint8)[: min(8, nbytes)]
    dt = np.dtype(dtype)
    return b.view(dt) if nbytes % dt.itemsize == 0 else b


_BASES: dict[tuple[int, int], np.ndarray] = {}


def _base(seed: int, nbytes: int) -> np.ndarray:
    key = (seed, nbytes)
    if key not in _BASES:
        _BASES[key] = np.frombuffer(np.random.default_rng(seed).bytes(nbytes), np.uint8)
    return _BASES[key]


def make_socket(ctx: zmq.Context, spec: dict) -> zmq.Socket:
    sock = ctx.socket(getattr(zmq, spec["socket"]))
    ms = int(spec.get("timeout_ms", 30_000))
    sock.setsockopt(zmq.RCVTIMEO, ms)
    sock.setsockopt(zmq.SNDTIMEO, ms)
    sock.setsockopt(zmq.LINGER, int(spec.get("linger_ms", 5000)))
    if spec.get("ipv6"):
        sock.setsockopt(zmq.IPV6, 1)
    if spec.get("hwm") is not None:
        sock.setsockopt(zmq.SNDHWM, spec["hwm"])
        sock.setsockopt(zmq.RCVHWM, spec["hwm"])
    if spec.get("reconnect_ms") is not None:
        sock.setsockopt(zmq.RECONNECT_IVL, spec["reconnect_ms"])
    if spec.get("heartbeat_ms"):
        hb = spec["heartbeat_ms"]
        sock.setsockopt(zmq.HEARTBEAT_IVL, hb)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, spec.get("heartbeat_timeout_ms", 4 * hb))
    if spec["socket"] == "SUB":
        sock.setsockopt(zmq.SUBSCRIBE, spec.get("subscribe", "").encode())
    if spec["socket"] == "XPUB":  # show every subscription, not only a topic's first
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    return sock


def attach(sock: zmq.Socket, spec: dict) -> None:
    for ep in spec.get("bind", []):
        sock.bind(ep)
    for ep in spec.get("connect", []):
        sock.connect(ep)
    say(ready=sock.getsockopt(zmq.LAST_ENDPOINT).decode())


def wait_handshakes(sock: zmq.Socket, mon: zmq.Socket, count: int, timeout: float) -> None:
    from zmq.utils.monitor import recv_monitor_message

    deadline = time.monotonic() + timeout
    seen = 0
    while seen < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{seen} of {count} peers connected within {timeout} s")
        if mon.poll(int(left * 1000) + 1):
            if recv_monitor_message(mon)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                seen += 1
    sock.disable_monitor()
    mon.close(0)


def role_send(ctx: zmq.Context, spec: dict) -> dict:
    sock = make_socket(ctx, spec)
    mon = None
    if spec.get("peers"):
        mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    tx = wz.Sender(sock, byteorder=spec.get("byteorder", "network"), checksum=spec.get("checksum"))
    n, dtype, seed = spec["nbytes"], spec.get("dtype", "uint8"), spec.get("seed", 1)
    sent = 0
    started = time.monotonic()
    blind = spec.get("blind", 0)
    for _ in range(blind):  # before binding: nobody can be there (a restart's case)
        tx.send(payload(seed, sent, n, dtype))
        sent += 1
    attach(sock, spec)
    if mon is not None:
        wait_handshakes(sock, mon, spec["peers"], spec.get("timeout_ms", 30_000) / 1000)
    for _ in range(spec.get("subscribers", 0)):
        while sock.recv()[:1] != b"\x01":  # XPUB: a subscription
            pass
    time.sleep(spec.get("settle_s", 0))
    interval = spec.get("interval_s", 0)
    while sent < spec["count"]:
        tx.send(payload(seed, sent, n, dtype))
        sent += 1
        if interval:
            time.sleep(interval)
    if spec.get("final_after_s") is not None:
        time.sleep(spec["final_after_s"])
        tx.send(payload(seed, sent, n, dtype))
        sent += 1
    return {
        "ok": True,
        "sent": sent,
        "blind": blind,
        "origin": tx.origin(),
        "seconds": time.monotonic() - started,
    }


def role_recv(ctx: zmq.Context, spec: dict) -> dict:
    sock = make_socket(ctx, spec)
    rx = wz.Receiver(
        sock,
        on_gap=spec.get("on_gap"),  # None: the socket type's default
        max_frame_bytes=spec.get("max_frame_bytes", 1 << 30),
        envelope=spec.get("envelope"),
    )
    attach(sock, spec)
    n, dtype, seed = spec["nbytes"], spec.get("dtype", "uint8"), spec.get("seed", 1)
    out = np.empty(n // np.dtype(dtype).itemsize, dtype)
    hello = None
    digest = hashlib.sha256()
    seqs: list[int] = []
    bad = 0
    idle_ms = int(spec.get("idle_s", 5) * 1000)
    started = time.monotonic()
    while len(seqs) < spec["count"]:
        if not sock.poll(idle_ms):
            break
        try:
            a = rx.recv(out=out)
        except wirearray.SequenceError as exc:  # on_gap="raise": the array is attached
            a = exc.array
        if not np.array_equal(
            a.view(np.uint8), payload(seed, rx.last_seq, n, dtype).view(np.uint8)
        ):
            bad += 1
        digest.update(memoryview(a).cast("B"))
        seqs.append(rx.last_seq)
        if spec.get("hello") and hello is None:
            hello = make_socket(ctx, {"socket": "PUSH"})
            hello.connect(spec["hello"])
            hello.send(b"ready")
    return {
        "ok": bad == 0,
        "received": len(seqs),
        "bad": bad,
        "seqs": seqs,
        "stats": rx.stats,
        "origins": {f"{k:016x}": v for k, v in rx.origin_stats().items()},
        "sha256": digest.hexdigest(),
        "seconds": time.monotonic() - started,
    }


def role_rpc_server(ctx: zmq.Context, spec: dict) -> dict:
    sock = make_socket(ctx, {**spec, "socket": "ROUTER"})
    rx, tx = wz.Receiver(sock), wz.Sender(sock, checksum=spec.get("checksum"))
    attach(sock, spec)
    clients: dict[str, int] = {}
    for _ in range(spec["count"]):
        env, a = rx.recv()
        tx.send(a * 2 + 1, envelope=env)
        key = env[0].hex()
        clients[key] = clients.get(key, 0) + 1
    return {"ok": True, "served": spec["count"], "clients": len(clients), "stats": rx.stats}


def role_rpc_client(ctx: zmq.Context, spec: dict) -> dict:
    sock = make_socket(ctx, {**spec, "socket": "DEALER"})
    rx, tx = wz.Receiver(sock), wz.Sender(sock, checksum=spec.get("checksum"))
    attach(sock, spec)
    n, seed = spec["nbytes"], spec.get("seed", 1)
    bad = 0
    for i in range(spec["count"]):
        a = payload(seed, i, n, "uint8").astype(np.float64)
        tx.send(a)
        if not np.array_equal(rx.recv(), a * 2 + 1):
            bad += 1
    return {"ok": bad == 0, "calls": spec["count"], "bad": bad, "stats": rx.stats}


ROLES = {
    "send": role_send,
    "recv": role_recv,
    "rpc-server": role_rpc_server,
    "rpc-client": role_rpc_client,
}


def main() -> None:
    role, spec = sys.argv[1], json.loads(sys.argv[2])
    ctx = zmq.Context()
    try:
        result = ROLES[role](ctx, spec)
    except (wirearray.WireError, zmq.ZMQError, TimeoutError) as exc:
        result = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    say(**result)
    ctx.destroy(linger=int(spec.get("linger_ms", 5000)))


if __name__ == "__main__":
    main()
