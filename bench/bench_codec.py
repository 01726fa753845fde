"""Benchmarks of the frame codec against the byte-order kernels it is built on.

Target (docs/PERFORMANCE.md): decoding a 64 MiB network-order frame into a
preallocated array runs at >= 0.9x the speed of ``ntoh()`` into a preallocated array,
i.e. the codec adds next to nothing to the conversion itself.  The encoder's chunked
network-order output is lined up the same way against ``hton(out=)``.

Groups (``pytest bench/``; ``--bench-quick`` drops nothing here, 64 MiB takes ~10 ms):

* ``decode float64 64MiB``: ``ntoh(wire, out=)`` [baseline]; ``Decoder.receive_data``
  with the frame in memory (swap fused into the copy); the recv_into protocol
  (``get_buffer``/``advance``, the buffer filled by a memcpy standing in for the
  kernel's copy, then swapped in place chunk by chunk); and ``np.copyto``.
* ``encode float64 64MiB``: ``hton(a, out=)`` [baseline]; walking all the buffers of
  ``Encoder.frame`` (swapping through the staging buffer, 4 MiB chunks); ``np.copyto``.
* ``encode/decode float64[16] x1000``: the per-frame cost that bounds a stream of small
  arrays, without sockets -- 1000 frames encoded by the compiled whole-frame path
  (``Encoder.encode_small``) and by the general path (``Encoder.frame``, as gathered
  for ``sendmsg``) [baseline, compiled core]; 1000 buffered frames decoded by
  ``Decoder.next_array`` and by the general ``next_event`` loop [baseline].
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


def _setup(
    benchmark: Any, group: str, method: str, impl: str, baseline: bool = False, nbytes: int = N * 8
) -> None:
    benchmark.group = group
    mod = _impl_or_skip(impl) if impl in IMPLS else None
    benchmark.extra_info.update(
        method=method,
        implementation=impl,
        simd=mod.get_simd() if mod else "numpy",
        nbytes=nbytes,
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


SMALL = 1000
SMALL_BYTES = SMALL * 128  # array bytes per round
ENC_SMALL = "encode float64[16] x1000"
DEC_SMALL = "decode float64[16] x1000"


@pytest.fixture(scope="module")
def small() -> dict[str, Any]:
    a = np.arange(16.0)
    enc = Encoder(implementation="python")
    stream = b"".join(enc.encode(a) for _ in range(SMALL)) + enc.end()
    return {"a": a, "stream": stream}


def _encode_small_loop(enc: Encoder, a: np.ndarray) -> int:
    enc._seq = 0
    return sum(len(enc.encode_small(a)) for _ in range(SMALL))


def _encode_general_loop(enc: Encoder, a: np.ndarray) -> int:
    enc._seq = 0
    total = 0
    for _ in range(SMALL):
        for parts in enc.frame(a):
            total += len(parts)  # the buffers a transport would gather
    return total


def _decode_loop(dec_factory: Any, stream: bytes, out: np.ndarray, fast: bool) -> int:
    dec = dec_factory()
    dec.receive_data(stream)
    n = 0
    while True:
        if fast and dec.next_array(out) is not None:
            n += 1
            continue
        dec.expect(out=out)
        ev = dec.next_event()
        if ev is NEED_DATA or not hasattr(ev, "array"):
            return n
        n += 1


def bench_small_encode_fast(benchmark: Any, small: dict) -> None:
    _setup(benchmark, ENC_SMALL, "Encoder.encode_small [cython]", "cython", nbytes=SMALL_BYTES)
    enc = Encoder(byteorder="native", implementation="cython")
    assert benchmark(_encode_small_loop, enc, small["a"]) == SMALL * 192


@pytest.mark.parametrize("impl", IMPLS)
def bench_small_encode_general(benchmark: Any, small: dict, impl: str) -> None:
    name = f"Encoder.frame (general) [{impl}]"
    _setup(benchmark, ENC_SMALL, name, impl, impl == "cython", nbytes=SMALL_BYTES)
    enc = Encoder(byteorder="native", implementation=impl)
    assert benchmark(_encode_general_loop, enc, small["a"]) == SMALL * 2


def bench_small_decode_fast(benchmark: Any, small: dict) -> None:
    _setup(benchmark, DEC_SMALL, "Decoder.next_array [cython]", "cython", nbytes=SMALL_BYTES)
    out = np.empty(16)

    def factory() -> Decoder:
        return Decoder(implementation="cython")

    assert benchmark(_decode_loop, factory, small["stream"], out, True) == SMALL


@pytest.mark.parametrize("impl", IMPLS)
def bench_small_decode_general(benchmark: Any, small: dict, impl: str) -> None:
    name = f"Decoder.next_event (general) [{impl}]"
    _setup(benchmark, DEC_SMALL, name, impl, impl == "cython", nbytes=SMALL_BYTES)
    out = np.empty(16)

    def factory() -> Decoder:
        dec = Decoder(implementation=impl)
        dec._small = None  # the general path only
        return dec

    assert benchmark(_decode_loop, factory, small["stream"], out, False) == SMALL


def test_info() -> None:  # pragma: no cover - documents what ran, for the logs
    print(wirearray.info())
