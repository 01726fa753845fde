"""Benchmarks of the frame codec against the byte-order kernels it is built on.

Target (issue: wire format and codec): decoding a 64 MiB network-order frame into a
preallocated array runs at >= 0.9x the speed of ``ntoh()`` into a preallocated array,
i.e. the codec adds next to nothing to the conversion itself.  The encoder's chunked
network-order output is lined up the same way against ``hton(out=)``.

Groups (``pytest bench/``; ``--bench-quick`` drops nothing here, 64 MiB takes ~10 ms):

* ``decode float64 64MiB``: ``ntoh(wire, out=)`` [baseline]; ``Decoder.receive_data``
  with the frame in memory (swap fused into the copy); the recv_into protocol
  (``get_buffer``/``advance``, the buffer filled by a memcpy standing in for the
  kernel's copy, then swapped in place chunk by chunk); and ``np.copyto``.
* ``encode float64 64MiB``: ``hton(a, out=)`` [baseline]; walking all the buffers of
  ``Encoder.frame`` (swapping through the 256 KiB staging buffer); ``np.copyto``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import wirearray
from wirearray.codec import NEED_DATA, Decoder, Encoder

N = (64 << 20) // 8
IMPLS = ["cython", "python"]


def _impl_or_skip(name: str):
    try:
        from wirearray import _implementation

        return _implementation.get(name)
    except ImportError:
        pytest.skip("compiled core not importable")


def _setup(benchmark: Any, group: str, method: str, impl: str, baseline: bool = False) -> None:
    benchmark.group = group
    mod = _impl_or_skip(impl) if impl in IMPLS else None
    benchmark.extra_info.update(
        method=method,
        implementation=impl,
        simd=mod.get_simd() if mod else "numpy",
        nbytes=N * 8,
        baseline=baseline,
    )


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    a = np.random.default_rng(1).standard_normal(N)
    enc = Encoder()
    frame = enc.encode(a)
    h = int.from_bytes(frame[10:12], "big")
    frame += enc.end()  # END resets the sequence: the same bytes decode again and again
    return {"a": a, "frame": frame, "wire": np.frombuffer(frame, ">f8", count=N, offset=h)}


def _decode_whole(dec: Decoder, frame: bytes, out: np.ndarray) -> np.ndarray:
    dec.expect(out=out)
    dec.receive_data(frame)
    ev = dec.next_event()
    dec.next_event()  # the END frame
    return ev.array


def _decode_recv_into(dec: Decoder, frame: memoryview, out: np.ndarray) -> np.ndarray:
    dec.expect(out=out)
    pos = 0
    result = None
    while True:
        ev = dec.next_event()
        if ev is not NEED_DATA:
            if result is not None:
                return result  # ev is the END frame
            result = ev.array
            continue
        buf = dec.get_buffer()
        n = min(len(buf), len(frame) - pos)
        buf[:n] = frame[pos : pos + n]  # what the kernel's copy in recv_into does
        pos += n
        dec.advance(n)


@pytest.mark.parametrize("impl", IMPLS)
def bench_decode_ntoh_baseline(benchmark: Any, data: dict, impl: str) -> None:
    _setup(benchmark, "decode float64 64MiB", f"ntoh(wire, out=) [{impl}]", impl, impl == "cython")
    mod = _impl_or_skip(impl)
    out = np.empty(N)
    benchmark(mod.ntoh, data["wire"], out)
    assert np.array_equal(out, data["a"])


@pytest.mark.parametrize("impl", IMPLS)
def bench_decode_receive_data(benchmark: Any, data: dict, impl: str) -> None:
    _setup(benchmark, "decode float64 64MiB", f"Decoder.receive_data [{impl}]", impl)
    dec = Decoder(implementation=impl)
    out = np.empty(N)
    result = benchmark(_decode_whole, dec, data["frame"], out)
    assert result is out and np.array_equal(out, data["a"])


@pytest.mark.parametrize("impl", IMPLS)
def bench_decode_recv_into(benchmark: Any, data: dict, impl: str) -> None:
    _setup(benchmark, "decode float64 64MiB", f"Decoder get_buffer/advance [{impl}]", impl)
    dec = Decoder(implementation=impl)
    out = np.empty(N)
    result = benchmark(_decode_recv_into, dec, memoryview(data["frame"]), out)
    assert result is out and np.array_equal(out, data["a"])


def bench_decode_copyto(benchmark: Any, data: dict) -> None:
    _setup(benchmark, "decode float64 64MiB", "np.copyto (memcpy ceiling)", "numpy")
    out = np.empty(N)
    benchmark(np.copyto, out, data["a"])


def _encode_walk(enc: Encoder, a: np.ndarray) -> int:
    total = 0
    for parts in enc.frame(a):
        for p in parts:
            total += memoryview(p).nbytes  # a transport would sendmsg() these
    return total


@pytest.mark.parametrize("impl", IMPLS)
def bench_encode_hton_baseline(benchmark: Any, data: dict, impl: str) -> None:
    _setup(benchmark, "encode float64 64MiB", f"hton(a, out=) [{impl}]", impl, impl == "cython")
    mod = _impl_or_skip(impl)
    out = np.empty(N, ">f8")
    benchmark(mod.hton, data["a"], out)


@pytest.mark.parametrize("impl", IMPLS)
def bench_encode_frame(benchmark: Any, data: dict, impl: str) -> None:
    _setup(benchmark, "encode float64 64MiB", f"Encoder.frame chunks [{impl}]", impl)
    enc = Encoder(implementation=impl)
    total = benchmark(_encode_walk, enc, data["a"])
    assert total == len(data["frame"]) - 64  # the data frame holds an END frame too


def bench_encode_copyto(benchmark: Any, data: dict) -> None:
    _setup(benchmark, "encode float64 64MiB", "np.copyto (memcpy ceiling)", "numpy")
    out = np.empty(N)
    benchmark(np.copyto, out, data["a"])


def test_info() -> None:  # pragma: no cover - documents what ran, for the logs
    print(wirearray.info())
