"""The ZeroMQ benchmark: wirearray.zmq against pyzmq itself, on the same sockets, in
one run (``wirearray bench zmq``; bench/bench_zmq.py runs the same code under
pytest-benchmark).

The benchmarking process sends; receiver processes (``python -m wirearray._bench.zmq
receive CONTROL``) receive.  All methods of a group run over the same connected
sockets -- a PAIR, or an XPUB with 1, 2 or 4 SUBs -- over tcp://127.0.0.1, with their
rounds interleaved so that drift on a busy machine spreads over all of them.  A round
is ``count`` messages of one float64 array; its clock runs from the first send to the
last receiver's acknowledgement of the last message, so it times the whole stream as
the slowest receiver sees it.  Receivers allocate (and touch) their buffers before the
clock starts, and check the values on each method's first round.

The methods (sender / receiver):

* ``pyzmq-into``: ``send(a, copy=False)`` / ``recv_into(out)`` -- pyzmq's own fastest
  way to land the bytes in a reused array (no dtype, shape or byte order travels);
* ``wa-native``: ``send_array(a, byteorder="native", copy=False)`` /
  ``recv_array(out=out)`` -- the same bytes with wirearray's framing and checks;
* ``wa-network``: ``send_array(a)`` / ``recv_array(out=out)`` -- the default: network
  byte order, so both sides convert (the sender into reused staging buffers);
* ``pyzmq-view``: ``send(a, copy=False)`` / ``recv(copy=False)`` + ``np.frombuffer``;
* ``wa-view``: ``send_array(a, byteorder="native", copy=False)`` /
  ``recv_array(copy=False)`` (a read-only view of zmq's buffer);
* ``recipe``: pyzmq's documented ``send_array``/``recv_array`` recipe (a JSON part with
  dtype and shape, then the buffer; copy=False), a peer;
* PUB/SUB: ``pyzmq-into``, and ``wa-native`` / ``wa-network`` with a
  :class:`~wirearray.zmq.Sender` and a :class:`~wirearray.zmq.Receiver` (sequence
  numbers checked), per subscriber.

The targets (ratios of median round times in the same run) are :data:`TARGETS`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import wirearray

from .results import machine

KIB, MIB = 1 << 10, 1 << 20
SIZES = (64 * KIB, MIB, 16 * MIB)
PUBSUB_SIZE = MIB
SUBSCRIBERS = (1, 2, 4)
ROUND_BYTES = 64 * MIB
MAX_COUNT = 2000
ROUNDS = 5
WAIT_MS = 60_000


@dataclass(frozen=True)
class Method:
    key: str
    name: str
    baseline: bool = False


PAIR_METHODS = {
    m.key: m
    for m in (
        Method("pyzmq-into", "pyzmq send(copy=False) / recv_into(out)", baseline=True),
        Method("wa-native", "wirearray native: send_array(copy=False) / recv_array(out=)"),
        Method("wa-network", "wirearray network (default): send_array / recv_array(out=)"),
        Method("pyzmq-view", "pyzmq send(copy=False) / recv(copy=False) + np.frombuffer"),
        Method("wa-view", "wirearray native: send_array(copy=False) / recv_array(copy=False)"),
        Method("recipe", "pyzmq's send_array/recv_array recipe (copy=False) [peer]"),
    )
}
PUBSUB_METHODS = {
    m.key: m
    for m in (
        Method("pyzmq-into", "pyzmq PUB send(copy=False) / SUB recv_into(out)", baseline=True),
        Method("wa-native", "wirearray Sender (native, copy=False) / Receiver.recv(out=)"),
        Method("wa-network", "wirearray Sender (network, default) / Receiver.recv(out=)"),
    )
}


@dataclass(frozen=True)
class Target:
    """``method`` >= ``minimum`` x ``reference`` (ratio of round times) at ``sizes``."""

    label: str
    group: str
    method: str
    reference: str
    minimum: float
    sizes: tuple[int, ...]


TARGETS = (
    Target("recv_array(out=) vs pyzmq recv_into, >= 1 MiB", "pair", "wa-native", "pyzmq-into",
           0.95, (MIB, 16 * MIB)),
    Target("recv_array(out=) vs pyzmq recv_into, 64 KiB", "pair", "wa-native", "pyzmq-into",
           0.9, (64 * KIB,)),
    Target("recv_array(copy=False) vs recv(copy=False)+frombuffer, >= 1 MiB", "pair",
           "wa-view", "pyzmq-view", 0.9, (MIB, 16 * MIB)),
    Target("network order vs native, >= 1 MiB", "pair", "wa-network", "wa-native", 0.85,
           (MIB, 16 * MIB)),
    *(
        Target(f"PUB/SUB per subscriber, {n} subscriber{'s' if n > 1 else ''}",
               f"pubsub-{n}", "wa-network", "pyzmq-into", 0.9, (PUBSUB_SIZE,))
        for n in SUBSCRIBERS
    ),
)  # fmt: skip


def make_array(nbytes: int) -> np.ndarray:
    """float64 1, 2, 3, ... (the receivers recompute it to check)."""
    return np.arange(1, nbytes // 8 + 1, dtype=np.float64)


def round_count(nbytes: int) -> int:
    return max(8, min(MAX_COUNT, ROUND_BYTES // nbytes))


def unavailable() -> str | None:
    """Why the benchmark cannot run here (pyzmq missing or too old), or None."""
    try:
        import zmq
    except ImportError:
        return "pyzmq is not installed (pip install 'wirearray[zmq]')"
    if not hasattr(zmq.Socket, "recv_into"):
        return f"pyzmq {zmq.__version__} is older than 26.4 (pip install 'wirearray[zmq]')"
    return None


# ---- both sides of every method ----


def _recipe_send(sock: Any, a: np.ndarray) -> None:
    import zmq

    sock.send_json({"dtype": str(a.dtype), "shape": a.shape}, zmq.SNDMORE)
    sock.send(a, copy=False)


def _recipe_recv(sock: Any) -> np.ndarray:
    md = sock.recv_json()
    msg = sock.recv(copy=False)
    return np.frombuffer(msg, dtype=md["dtype"]).reshape(md["shape"])


def _sender(key: str, sock: Any, senders: dict) -> Callable[[np.ndarray], Any]:
    """The sending side of ``key``; ``senders``: the PUB/SUB runs' Sender objects."""
    from wirearray import zmq as wz

    if key in ("pyzmq-into", "pyzmq-view"):
        return lambda a: sock.send(a, copy=False)
    if key == "wa-native" and senders:
        return lambda a: senders["native"].send(a, copy=False)
    if key in ("wa-native", "wa-view"):
        return lambda a: wz.send_array(sock, a, byteorder="native", copy=False)
    if key == "wa-network":
        return senders["network"].send if senders else (lambda a: wz.send_array(sock, a))
    if key == "recipe":
        return lambda a: _recipe_send(sock, a)
    raise ValueError(key)


def _receiver(key: str, sock: Any, rx: Any, out: np.ndarray) -> Callable[[], np.ndarray]:
    from wirearray import zmq as wz

    if key == "pyzmq-into":
        view = out.view(np.uint8)

        def recv_into() -> np.ndarray:
            if sock.recv_into(view) != view.size:
                raise RuntimeError("a message of the wrong size")
            return out

        return recv_into
    if key in ("wa-native", "wa-network"):
        if rx is not None:
            return lambda: rx.recv(out=out)
        return lambda: wz.recv_array(sock, out=out)
    if key == "pyzmq-view":
        return lambda: np.frombuffer(sock.recv(copy=False), dtype=np.float64)
    if key == "wa-view":
        return lambda: wz.recv_array(sock, copy=False)
    if key == "recipe":
        return lambda: _recipe_recv(sock)
    raise ValueError(key)


# ---- the receiving process ----


def _receive_main(control: str) -> None:
    import zmq

    from wirearray import zmq as wz

    ctx = zmq.Context()
    ctl = ctx.socket(zmq.DEALER)
    ctl.setsockopt(zmq.LINGER, 0)
    ctl.setsockopt(zmq.RCVTIMEO, WAIT_MS)
    ctl.connect(control)
    ctl.send_json({"op": "hello", "pid": os.getpid()})
    setup = ctl.recv_json()
    sock = ctx.socket(zmq.SUB if setup["pattern"] == "pubsub" else zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, WAIT_MS)
    sock.setsockopt(zmq.RCVHWM, 0)
    if setup["pattern"] == "pubsub":
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    rx = wz.Receiver(sock) if setup["pattern"] == "pubsub" else None
    wz.set_limits(sock)
    sock.connect(setup["data"])
    ctl.send_json({"op": "connected"})
    buffers: dict[int, np.ndarray] = {}
    try:
        while True:
            cmd = ctl.recv_json()
            if cmd["op"] == "quit":
                break
            nbytes, count = cmd["nbytes"], cmd["count"]
            out = buffers.get(nbytes)
            if out is None:
                out = buffers[nbytes] = np.empty(nbytes // 8)
                out.fill(0)  # touched: no page faults inside the clock
            receive = _receiver(cmd["method"], sock, rx, out)
            ctl.send_json({"op": "ready"})
            a = None
            for _ in range(count):
                a = receive()
            ok = True
            if cmd["check"]:
                ok = (
                    a is not None
                    and a.shape == (nbytes // 8,)
                    and np.array_equal(a, make_array(nbytes))
                )
            del a
            stats = dict(rx.stats) if rx is not None else {}
            ctl.send_json({"op": "done", "ok": bool(ok), "stats": stats})
    finally:
        ctx.destroy(linger=0)


# ---- the sending side ----


class Bench:
    """One topology: the data socket (PAIR or XPUB) bound here, ``receivers``
    processes connected to it, and a ROUTER for the control messages."""

    def __init__(self, pattern: str, receivers: int = 1) -> None:
        import zmq

        from wirearray import zmq as wz

        self.pattern = pattern
        self.ctx = zmq.Context()
        self.data = self.ctx.socket(zmq.XPUB if pattern == "pubsub" else zmq.PAIR)
        self.data.setsockopt(zmq.SNDHWM, 0)  # no drops: a round's messages all arrive
        self.data.setsockopt(zmq.LINGER, 0)
        self.data.setsockopt(zmq.SNDTIMEO, WAIT_MS)
        if pattern == "pubsub":
            self.data.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.data.bind("tcp://127.0.0.1:*")
        self.ctl = self.ctx.socket(zmq.ROUTER)
        self.ctl.setsockopt(zmq.LINGER, 0)
        self.ctl.setsockopt(zmq.RCVTIMEO, WAIT_MS)
        self.ctl.bind("tcp://127.0.0.1:*")
        self.senders = (
            {"network": wz.Sender(self.data), "native": wz.Sender(self.data, byteorder="native")}
            if pattern == "pubsub"
            else {}
        )
        control = self.ctl.getsockopt(zmq.LAST_ENDPOINT).decode()
        argv = [sys.executable, "-m", "wirearray._bench.zmq", "receive", control]
        self.procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for _ in range(receivers)]
        self.ids: list[bytes] = []
        try:
            for _ in self.procs:
                ident, _msg = self._recv_ctl()
                self.ids.append(ident)
            endpoint = self.data.getsockopt(zmq.LAST_ENDPOINT).decode()
            for ident in self.ids:
                self._send_ctl(ident, {"pattern": pattern, "data": endpoint})
            for _ in self.ids:
                self._recv_ctl()  # connected
            if pattern == "pubsub":
                for _ in self.ids:  # every subscription has arrived: nothing is dropped
                    while self.data.recv()[:1] != b"\x01":
                        pass
        except BaseException:
            self.close()
            raise
        self._arrays: dict[int, np.ndarray] = {}
        self._checked: set[tuple[str, int]] = set()

    def _send_ctl(self, ident: bytes, obj: dict) -> None:
        self.ctl.send_multipart([ident, json.dumps(obj).encode()])

    def _recv_ctl(self) -> tuple[bytes, dict]:
        ident, msg = self.ctl.recv_multipart()
        return ident, json.loads(msg)

    def prepare(self, key: str, nbytes: int, count: int) -> Callable[[], float]:
        """Get the receivers ready for one round; returns the round to time (it
        returns its own duration in seconds, from the first send to the last ack)."""
        a = self._arrays.get(nbytes)
        if a is None:
            a = self._arrays[nbytes] = make_array(nbytes)
        check = (key, nbytes) not in self._checked
        self._checked.add((key, nbytes))
        for ident in self.ids:
            self._send_ctl(
                ident, {"op": "run", "method": key, "nbytes": nbytes, "count": count,
                        "check": check},
            )  # fmt: skip
        for _ in self.ids:
            self._recv_ctl()  # ready
        send = _sender(key, self.data, self.senders)

        def run() -> float:
            t0 = time.perf_counter()
            for _ in range(count):
                send(a)
            for _ in self.ids:
                _, done = self._recv_ctl()
                if not done["ok"]:
                    raise AssertionError(f"{key}: the receiver got wrong values")
                if done["stats"].get("lost"):
                    raise AssertionError(f"{key}: messages lost: {done['stats']}")
            return time.perf_counter() - t0

        return run

    def close(self) -> None:
        for ident in self.ids:
            try:
                self._send_ctl(ident, {"op": "quit"})
            except Exception:  # the receiver may be gone already
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.ctx.destroy(linger=0)

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- runs, tables, targets ----


@dataclass
class Result:
    group: str
    method: str
    name: str
    nbytes: int
    count: int
    receivers: int
    runs_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def gbps(self) -> float:
        """Payload GB/s per receiver."""
        return self.nbytes * self.count / self.median_s / 1e9


def run_group(
    group: str, sizes: Sequence[int], rounds: int = ROUNDS, progress: Callable | None = None
) -> list[Result]:
    """Every method of ``group`` ("pair" or "pubsub-N") at every size, interleaved."""
    pattern, receivers = ("pair", 1) if group == "pair" else ("pubsub", int(group.split("-")[1]))
    methods = PAIR_METHODS if pattern == "pair" else PUBSUB_METHODS
    results = []
    with Bench(pattern, receivers) as bench:
        for nbytes in sizes:
            count = round_count(nbytes)
            res = {
                k: Result(group, k, m.name, nbytes, count, receivers) for k, m in methods.items()
            }
            for key in methods:  # warm-up and check (not timed)
                bench.prepare(key, nbytes, count)()
            for _ in range(rounds):
                for key in methods:
                    res[key].runs_s.append(bench.prepare(key, nbytes, count)())
            results.extend(res.values())
            if progress is not None:
                progress(group, nbytes)
    return results


def ratio(results: Sequence[Result], group: str, method: str, reference: str, nbytes: int):
    by = {(r.group, r.method, r.nbytes): r for r in results}
    a, b = by.get((group, method, nbytes)), by.get((group, reference, nbytes))
    if a is None or b is None:
        return None
    return b.median_s / a.median_s


def evaluate_targets(results: Sequence[Result]) -> list[dict[str, Any]]:
    out = []
    for t in TARGETS:
        ratios = {n: ratio(results, t.group, t.method, t.reference, n) for n in t.sizes}
        ratios = {n: r for n, r in ratios.items() if r is not None}
        if ratios:
            out.append(
                {
                    "target": t.label,
                    "method": t.method,
                    "reference": t.reference,
                    "minimum": t.minimum,
                    "ratios": {str(n): round(r, 3) for n, r in ratios.items()},
                    "met": all(r >= t.minimum for r in ratios.values()),
                }
            )
    return out


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


def format_tables(results: Sequence[Result]) -> list[str]:
    lines = []
    groups: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        groups.setdefault((r.group, r.nbytes), []).append(r)
    for (group, nbytes), rs in groups.items():
        base = next((r for r in rs if (PAIR_METHODS | PUBSUB_METHODS)[r.method].baseline), None)
        title = "PAIR" if group == "pair" else f"PUB/SUB, {rs[0].receivers} subscriber(s)"
        lines.append(f"{title}, {_size(nbytes)} x {rs[0].count} per round")
        width = max(len(r.name) for r in rs)
        lines.append(f"  {'method':<{width}}  {'median':>10} {'GB/s':>7} {'/pyzmq':>7}")
        for r in rs:
            rel = f"{base.median_s / r.median_s:6.2f}x" if base else "      -"
            lines.append(f"  {r.name:<{width}}  {r.median_s * 1e3:8.2f} ms {r.gbps:7.2f} {rel}")
        lines.append("")
    return lines


def format_targets(evaluated: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for t in evaluated:
        ratios = ", ".join(f"{_size(int(n))} {r:.2f}x" for n, r in t["ratios"].items())
        mark = "met" if t["met"] else "NOT met"
        lines.append(f"  {t['target']}: >= {t['minimum']}x -- {ratios}: {mark}")
    return lines


def run_zmq_bench(
    sizes: Sequence[int] | None = None,
    subscribers: Sequence[int] | None = None,
    *,
    quick: bool = False,
    rounds: int = ROUNDS,
    json_path: str | None = None,
    out: Any = None,
) -> int:
    """``wirearray bench zmq``: the tables, the targets, optionally JSON; exit code."""
    out = out or sys.stdout
    why = unavailable()
    if why:
        print(f"wirearray bench zmq: skipped: {why}", file=out)
        return 0
    import zmq

    sizes = list(sizes or (SIZES[:2] if quick else SIZES))
    subscribers = list(subscribers or SUBSCRIBERS)
    info = wirearray.info()
    print(
        f"wirearray {info['wirearray']} ({info['implementation']}, {info['simd']}), "
        f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}, numpy {info['numpy']}; "
        f"tcp://127.0.0.1, float64 arrays, {rounds} interleaved rounds, medians; "
        f"on {machine()}",
        file=out,
        flush=True,
    )

    def progress(group: str, nbytes: int) -> None:
        print(f"  ... {group} {_size(nbytes)}", file=sys.stderr, flush=True)

    results = run_group("pair", sizes, rounds, progress)
    pubsub_size = PUBSUB_SIZE if PUBSUB_SIZE in sizes or not sizes else sizes[-1]
    for n in subscribers:
        results += run_group(f"pubsub-{n}", [pubsub_size], rounds, progress)
    print("", file=out)
    for line in format_tables(results):
        print(line, file=out)
    evaluated = evaluate_targets(results)
    print("Targets (ratios of median round times, this run):", file=out)
    for line in format_targets(evaluated):
        print(line, file=out)
    if json_path:
        doc = {
            "info": info,
            "pyzmq": zmq.__version__,
            "libzmq": zmq.zmq_version(),
            "rounds": rounds,
            "results": [
                {
                    "group": r.group, "method": r.method, "name": r.name, "nbytes": r.nbytes,
                    "count": r.count, "receivers": r.receivers, "runs_s": r.runs_s,
                    "median_s": r.median_s, "gbps": r.gbps,
                }
                for r in results
            ],
            "targets": evaluated,
        }  # fmt: skip
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return 0


def main(argv: Sequence[str]) -> None:
    if len(argv) == 2 and argv[0] == "receive":
        _receive_main(argv[1])
        return
    raise SystemExit("usage: python -m wirearray._bench.zmq receive CONTROL-ENDPOINT")


if __name__ == "__main__":
    main(sys.argv[1:])
