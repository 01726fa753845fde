"""Streaming benchmarks: wirearray channels against a raw ``sendall``/``recv_into`` of
the same bytes on the same socket type (the ceiling), and multiprocessing.connection.

Targets (issue: socket transport), ratios to raw in the same run:
* native byte order: >= 0.95x raw at 1 MiB and above;
* network byte order (swapped on both sides): >= 0.85x raw at 16 MiB and above;
* float64[16] messages one way: >= 1.3x the message rate of multiprocessing.connection
  ``send_bytes``/``recv_bytes_into`` (which carries no dtype or shape).

Each round streams ``count`` arrays from this process to a receiver process over TCP
loopback and waits for its acknowledgement; the receiver checks dtype, shape and
values on the first round.  The summary's third column is the ratio to the group's
baseline (raw, or multiprocessing.connection for small messages).
"""

from __future__ import annotations

from typing import Any

import pytest

import wirearray
from streampeers import METHODS, StreamServer, make_array

SIZES = {"1MiB": 1 << 20, "16MiB": 16 << 20, "64MiB": 64 << 20}
STREAM_BYTES = 256 << 20  # per round, so every size moves the same volume
SMALL_COUNT = 5000


@pytest.fixture(scope="module")
def server():
    s = StreamServer()
    yield s
    s.close()


def _info(benchmark: Any, group: str, method: str, nbytes: int, baseline: bool) -> None:
    benchmark.group = group
    benchmark.extra_info.update(
        method=method,
        implementation=wirearray.IMPLEMENTATION,
        simd=wirearray.get_simd(),
        nbytes=nbytes,
        baseline=baseline,
    )


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("method", list(METHODS))
def bench_stream(benchmark: Any, server: StreamServer, size: str, method: str) -> None:
    nbytes = SIZES[size]
    count = max(4, STREAM_BYTES // nbytes)
    a = make_array("float64", (nbytes // 8,))
    _info(
        benchmark,
        f"stream float64 {size} x{count}",
        method,
        count * nbytes,
        method.startswith("raw"),
    )
    benchmark.pedantic(server.run, args=(method, a, count), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize(
    "method",
    [
        "wirearray native, reused out",
        "wirearray network, reused out",
        "mp.connection send_bytes/recv_bytes_into",
        "raw sendall/recv_into",
    ],
)
def bench_small_messages(benchmark: Any, server: StreamServer, method: str) -> None:
    a = make_array("float64", (16,))
    _info(
        benchmark,
        f"messages float64[16] x{SMALL_COUNT}",
        method,
        SMALL_COUNT * a.nbytes,
        method.startswith("mp."),
    )
    benchmark.pedantic(server.run, args=(method, a, SMALL_COUNT), rounds=5, warmup_rounds=1)


@pytest.fixture(scope="module")
def tls_server():
    pytest.importorskip("trustme", reason="pip install trustme (test extra)")
    s = StreamServer(tls=True)
    yield s
    s.close()


TLS_METHODS = [
    "raw sendall/recv_into",
    "wirearray native, reused out",
    "wirearray network, reused out",
]


@pytest.mark.parametrize("size", ["1MiB", "16MiB"])
@pytest.mark.parametrize("method", TLS_METHODS)
def bench_stream_tls(benchmark: Any, tls_server: StreamServer, size: str, method: str) -> None:
    """Target: >= 0.9x a raw TLS sendall/recv_into of the same bytes (the cipher should
    be the only cost)."""
    nbytes = SIZES[size]
    count = max(4, (64 << 20) // nbytes)
    a = make_array("float64", (nbytes // 8,))
    _info(
        benchmark,
        f"TLS stream float64 {size} x{count}",
        method,
        count * nbytes,
        method.startswith("raw"),
    )
    benchmark.pedantic(
        tls_server.run, args=(method, a, count), kwargs={"tls": True}, rounds=5, warmup_rounds=1
    )


@pytest.mark.parametrize("mode", ["plain connect", "authkey", "TLS", "TLS + authkey"])
def bench_handshake(benchmark: Any, tls_server: StreamServer, mode: str) -> None:
    """The cost per connection of each handshake (connect included)."""
    _info(benchmark, "handshake per connection", mode, 0, mode == "plain connect")
    benchmark.pedantic(
        tls_server.handshake, args=("authkey" in mode, "TLS" in mode), rounds=30, warmup_rounds=2
    )
