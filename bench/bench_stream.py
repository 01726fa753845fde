"""Streaming benchmarks: wirearray against the raw ceiling and the peers a user would
pick instead, process to process over TCP loopback.

The methods (both sides of each) are in wirearray._bench.peers, shared with ``python -m
wirearray bench stream``: raw ``sendall``/``recv_into`` into a reused and into fresh
arrays; a raw Python framing (a 16-byte length header and the payload in one
``sendall``, read with ``recv_into``); wirearray in native and network byte order, into
a reused ``out=`` and into fresh arrays; numpy's textbook ``astype('>f8')`` +
``sendall`` / ``recv_into`` + ``byteswap(inplace=True)``; pickle protocol 5 with
out-of-band buffers (reused and fresh); ``multiprocessing.connection`` bytes and pickled
objects; pyzmq's ``send_array``/``recv_array`` recipe (copy=False, PAIR over
tcp://127.0.0.1); pyarrow IPC tensors and a RecordBatch stream; numpy's ``.npy``
``write_array``/``read_array`` on a socket file. pyzmq and pyarrow runs, and the TLS
ones without trustme, are skipped with the reason when those are not installed (the
``bench`` extra installs them).

Targets (docs/PERFORMANCE.md), ratios to other methods in the same run; the
summary at the end of the session prints each beside its baselines:
* native byte order: >= 1.0x raw at 1 MiB and above;
* network byte order (swapped on both sides): >= 0.9x raw at 16 MiB and above for
  float64, >= 0.85x for a 20-byte record array (bench_stream_records: every field
  converted through its swap plan, padding zeroed);
* float64[16] messages one way, one ``send()`` each: >= 1.3x the message rate of
  multiprocessing.connection ``send_bytes``/``recv_bytes_into`` (which carries no
  dtype or shape), >= 1.0x the raw 16-byte-header loop; with ``send(flush=False)``
  >= 5x multiprocessing.connection;
* TLS: >= 0.9x a raw TLS ``sendall``/``recv_into`` of the same bytes.

One group per array size, from 16 float64 items (128 B: the small-message rate) to
256 MiB.  A round streams ``count`` arrays and waits for the receiver's ack; the
connection, the receiver's buffers and any zmq socket are set up before the round's
clock starts (pytest-benchmark's ``setup``), and the receiver checks dtype, shape and
values on the warm-up round.  256 MiB runs only a few methods by default (the
ceilings, wirearray, the astype path, pickle 5): ``--bench-full`` runs all of them
there, ``--bench-quick`` drops the size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import wirearray
from streampeers import (
    CEILING,
    METHODS,
    StreamServer,
    dtype_spec,
    make_array,
    tls_unavailable,
    unavailable,
)

KIB, MIB = 1 << 10, 1 << 20
#: Group label -> float64 items.
SIZES = {
    "128 B": 16,
    "64 KiB": 8 * KIB,
    "1 MiB": 128 * KIB,
    "16 MiB": 2 * MIB,
    "64 MiB": 8 * MIB,
    "256 MiB": 32 * MIB,
}
HUGE = "256 MiB"
#: The methods run at 256 MiB without --bench-full.
HUGE_METHODS = {
    "raw",
    "raw-fresh",
    "wa-native",
    "wa-native-fresh",
    "wa-network",
    "wa-network-fresh",
    "astype-byteswap",
    "pickle5",
    "pickle5-fresh",
}
ROUND_BYTES = 128 * MIB  # per round, so the larger sizes move the same volume
SMALL_COUNT = 5000  # at most this many messages per round


def round_count(nbytes: int) -> int:
    return max(2, min(SMALL_COUNT, ROUND_BYTES // nbytes))


def _marks(size: str, key: str) -> list:
    if size != HUGE:
        return []
    return [pytest.mark.dram] + ([] if key in HUGE_METHODS else [pytest.mark.full])


CASES = [
    pytest.param(size, key, id=f"{key}-{size.replace(' ', '')}", marks=_marks(size, key))
    for size in SIZES
    for key in METHODS
    if METHODS[key].runs_at(SIZES[size] * 8)
]


@pytest.fixture(scope="module")
def server():
    s = StreamServer()
    yield s
    s.close()


def _info(benchmark: Any, group: str, kind: str, key: str, nbytes: int, count: int) -> None:
    benchmark.group = group
    benchmark.extra_info.update(
        kind=kind,
        method=METHODS[key].name,
        key=key,
        ceiling=key == CEILING,
        counterpart=METHODS[key].counterpart,
        size=nbytes,
        messages=count,
        nbytes=nbytes * count,
        implementation=wirearray.IMPLEMENTATION,
        simd=wirearray.get_simd(),
    )


def _time_rounds(benchmark: Any, server: StreamServer, key: str, a: Any, count: int, **kw: Any):
    """Each round: server.open() untimed (connect, request, receiver ready), then the
    stream timed until the receiver's ack.  The warm-up round is the checked one."""
    benchmark.pedantic(
        lambda run: run.go(),
        setup=lambda: ((server.open(key, a, count, **kw),), {}),
        rounds=5,
        warmup_rounds=1,
    )


@pytest.mark.parametrize(("size", "key"), CASES)
def bench_stream(benchmark: Any, server: StreamServer, size: str, key: str) -> None:
    why = unavailable(key)
    if why:
        pytest.skip(why)
    a = make_array("float64", (SIZES[size],))
    count = round_count(a.nbytes)
    _info(benchmark, f"stream float64 {size} x{count}", "stream", key, a.nbytes, count)
    _time_rounds(benchmark, server, key, a, count)


#: The record streamed by bench_stream_records: the 20-byte layout of bench_records.py.
RECORD_20 = np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8"), ("n", "<i4")])
#: Its methods: the ceiling, and wirearray converting every field (network order).
RECORD_METHODS = ("raw", "raw-fresh", "wa-network", "wa-network-fresh", "wa-native")


@pytest.mark.parametrize("key", RECORD_METHODS)
def bench_stream_records(benchmark: Any, server: StreamServer, key: str) -> None:
    """A 16 MiB record array: wirearray in network order (every field swapped, padding
    zeroed, on both sides) against raw sendall/recv_into of the same bytes.
    Target: >= 0.85x raw."""
    a = make_array(dtype_spec(RECORD_20), (16 * MIB // RECORD_20.itemsize,))
    count = round_count(a.nbytes)
    _info(benchmark, f"stream record[20 B] 16 MiB x{count}", "stream", key, a.nbytes, count)
    _time_rounds(benchmark, server, key, a, count)


@pytest.fixture(scope="module")
def tls_server():
    why = tls_unavailable()
    if why:
        pytest.skip(why)
    s = StreamServer(tls=True)
    yield s
    s.close()


TLS_METHODS = ["raw", "wa-native", "wa-network"]


@pytest.mark.parametrize("size", ["1 MiB", "16 MiB"], ids=["1MiB", "16MiB"])
@pytest.mark.parametrize("key", TLS_METHODS)
def bench_stream_tls(benchmark: Any, tls_server: StreamServer, size: str, key: str) -> None:
    """Target: >= 0.9x a raw TLS sendall/recv_into of the same bytes (the cipher should
    be the only cost)."""
    a = make_array("float64", (SIZES[size],))
    count = max(4, (64 * MIB) // a.nbytes)
    _info(benchmark, f"TLS stream float64 {size} x{count}", "tls stream", key, a.nbytes, count)
    _time_rounds(benchmark, tls_server, key, a, count, tls=True)


@pytest.mark.parametrize("mode", ["plain connect", "authkey", "TLS", "TLS + authkey"])
def bench_handshake(benchmark: Any, tls_server: StreamServer, mode: str) -> None:
    """The cost per connection of each handshake (connect included)."""
    benchmark.group = "handshake per connection"
    benchmark.extra_info.update(
        method=mode,
        implementation=wirearray.IMPLEMENTATION,
        simd=wirearray.get_simd(),
        nbytes=0,
        baseline=mode == "plain connect",
    )
    benchmark.pedantic(
        tls_server.handshake, args=("authkey" in mode, "TLS" in mode), rounds=30, warmup_rounds=2
    )
