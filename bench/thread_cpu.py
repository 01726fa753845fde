"""CPU time of each side of a stream, apart from wall-clock noise: the sending and the
receiving thread's own CPU time (``getrusage(RUSAGE_THREAD)``, Linux) per 16 MiB
float64 array over a UNIX socket, into a reused ``out=``, for a raw
``sendall``/``recv_into`` loop and wirearray in native and network byte order --
the receive side with the compiled payload loop (pyx/wa_recv.h) and, for
comparison, with the Python loop it replaces (``--python-loop`` patches it out).

    python bench/thread_cpu.py [--runs 5] [--count 20] [--python-loop]

Used by docs/PERFORMANCE.md ("Large payloads received in one compiled call", and
why the send side keeps its loop): CPU time per array is what a loaded machine
leaves comparable when its wall-clock rates are not.  Medians of ``runs`` runs of
``count`` arrays each, milliseconds per array.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading

import numpy as np

import wirearray as wa
import wirearray.transport as _transport

N = (16 << 20) // 8  # 16 MiB of float64


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime + r.ru_stime


def _raw(path: str, count: int) -> tuple[float, float]:
    import socket

    a = np.arange(N, dtype=np.float64)
    out = np.empty_like(a)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    got: dict[str, float] = {}

    def receiver() -> None:
        conn, _ = srv.accept()
        view = memoryview(out).cast("B")
        t0 = _cpu()
        for _ in range(count):
            k = 0
            while k < len(view):
                n = conn.recv_into(view[k:])
                if not n:
                    raise ConnectionError("peer closed")
                k += n
        got["recv"] = _cpu() - t0
        conn.close()

    th = threading.Thread(target=receiver)
    th.start()
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    t0 = _cpu()
    for _ in range(count):
        c.sendall(a)
    sent = _cpu() - t0
    th.join()
    c.close()
    srv.close()
    return sent, got["recv"]


def _wirearray(path: str, count: int, byteorder: str) -> tuple[float, float]:
    a = np.arange(N, dtype=np.float64)
    out = np.empty_like(a)
    listener = wa.listen("unix:" + path)
    got: dict[str, float] = {}

    def receiver() -> None:
        ch = listener.accept(timeout=30)
        t0 = _cpu()
        for _ in range(count):
            ch.recv(out=out)
        got["recv"] = _cpu() - t0
        ch.close()

    th = threading.Thread(target=receiver)
    th.start()
    ch = wa.connect("unix:" + path, byteorder=byteorder)
    t0 = _cpu()
    for _ in range(count):
        ch.send(a)
    sent = _cpu() - t0
    ch.close()
    th.join()
    listener.close()
    return sent, got["recv"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--python-loop", action="store_true", help="receive without the compiled loop")
    args = ap.parse_args()
    if args.python_loop:
        _transport.recv_payload = lambda sock, dec, timeout: False  # the Python loop
    methods = {
        "raw sendall/recv_into": lambda p: _raw(p, args.count),
        "wirearray native": lambda p: _wirearray(p, args.count, "native"),
        "wirearray network": lambda p: _wirearray(p, args.count, "network"),
    }
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in methods}
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.runs):  # interleaved: every method once per run
            for i, (name, fn) in enumerate(methods.items()):
                path = os.path.join(d, f"s{r}-{i}")
                times[name].append(fn(path))
    loop = "Python loop" if args.python_loop else "compiled loop"
    print(f"CPU ms per 16 MiB array (median of {args.runs} x {args.count}; receive: {loop})")
    print(f"{'method':<24} {'send':>8} {'receive':>8}")
    for name, ts in times.items():
        s = statistics.median(t[0] for t in ts) / args.count * 1e3
        rcv = statistics.median(t[1] for t in ts) / args.count * 1e3
        print(f"{name:<24} {s:8.2f} {rcv:8.2f}")


if __name__ == "__main__":
    main()
