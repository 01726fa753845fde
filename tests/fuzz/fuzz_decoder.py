"""Fuzz harness for the sans-I/O Decoder: whatever bytes arrive, only WireError escapes.

Run it for hours with atheris (``pip install atheris``; not a test dependency)::

    python tests/fuzz/fuzz_decoder.py --write-corpus corpus/   # valid streams to start from
    python tests/fuzz/fuzz_decoder.py corpus/ -max_total_time=14400

The test suite runs :func:`TestOneInput` on random and mutated valid inputs with
hypothesis (tests/test_codec_hostile.py), so a crash found here can become a test.

Input layout: byte 0 controls the run, bytes 1-4 seed the random cuts, the rest is the
byte stream fed to the decoder.  Control bits:

* 0-1: feeding -- whole, one byte at a time, cut at random points, or through
  ``get_buffer()``/``advance()`` with random recv sizes;
* 2: recompute every header CRC first, so that mutations reach the field checks
  instead of all dying at the header checksum;
* 3: ``keep_wire_order=True``;
* 4: no EOF at the end.

Checked on every input, for each implementation (the compiled core unless
WIREARRAY_PUREPYTHON=1, and the pure-Python one): only WireError subclasses escape, and
never a UsageError (the harness does not misuse the API); after a ProtocolError every
further call raises StreamBrokenError, except after a lone frame over ``max_ndim``,
which is read past (recorded as "refused": every way of feeding must agree on it
too); arrays delivered before an error are unchanged after it; no array exceeds the
limits; and every implementation and every way of feeding give the same events and the
same error.
"""

from __future__ import annotations

import itertools
import os
import random
import sys

import numpy as np

from wirearray import _format as F
from wirearray.codec import NEED_DATA, Array, Decoder, Encoder, EndOfStream, Message
from wirearray.exceptions import (
    FrameTooLargeError,
    ProtocolError,
    StreamBrokenError,
    TruncatedStreamError,
    WireError,
)

#: Limits small enough that no input makes the fuzzer allocate much.
# max_ndim below what one seed frame carries (6 dimensions), so that frames refused for
# it and read past (docs/FORMAT.md section 7) are exercised in every feeding mode
LIMITS = {"max_frame_bytes": 1 << 20, "max_message_arrays": 64, "max_ndim": 5}
MODES = ("whole", "bytes", "split", "recv")
BYTEWISE_MAX = 8192  # longer inputs are cut at random points instead


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def _implementations() -> list[str]:
    if _flag("WIREARRAY_PUREPYTHON"):
        return ["python"]
    try:
        from wirearray import _cwire  # noqa: F401
    except ImportError:
        if _flag("WIREARRAY_REQUIRE_EXTENSION"):
            raise
        return ["python"]
    return ["cython", "python"]


IMPLEMENTATIONS = _implementations()


def fix_header_crcs(stream: bytes) -> bytes:
    """Recompute the CRC of every header found by walking the frames from the start."""
    buf = bytearray(stream)
    pos = 0
    for _ in range(4096):
        if pos + F.MIN_HEADER > len(buf) or buf[pos : pos + 4] != F.MAGIC:
            break
        h = (buf[pos + 10] << 8) | buf[pos + 11]
        if h < F.MIN_HEADER or pos + h > len(buf):
            break
        buf[pos + F.CRC_OFFSET : pos + F.CRC_OFFSET + 4] = bytes(4)
        crc = F.crc32c(memoryview(buf)[pos : pos + h])
        buf[pos + F.CRC_OFFSET : pos + F.CRC_OFFSET + 4] = crc.to_bytes(4, "big")
        try:
            _, _, flags, _, length, _, _, _ = F.parse_header(bytes(buf[pos : pos + h]))
        except WireError:
            break
        if length > len(buf):
            break
        pos += h + length + F.frame_tail(length, bool(flags & F.FLAG_CHECKSUM))
    return bytes(buf)


def _describe(event):
    def arr(a):
        assert isinstance(a, np.ndarray) and a.nbytes <= LIMITS["max_frame_bytes"]
        return (
            a.dtype.str,
            a.shape,
            a.flags.f_contiguous and not a.flags.c_contiguous,
            a.tobytes(),
        )

    if isinstance(event, Array):
        return ("array", event.name, arr(event.array))
    if isinstance(event, Message):
        assert len(event.arrays) <= LIMITS["max_message_arrays"]
        return ("message", tuple((k, arr(v)) for k, v in event.arrays.items()))
    assert isinstance(event, EndOfStream), event
    return ("end",)


def run(stream: bytes, implementation: str, mode: str, seed: int, keep: bool, eof: bool):
    """Feed ``stream`` to a fresh Decoder; return (event descriptions, error summary)."""
    rng = random.Random(seed)
    dec = Decoder(implementation=implementation, keep_wire_order=keep, **LIMITS)
    events: list = []
    seen: list = []

    def drain() -> None:
        for _ in range(len(stream) + 8):
            try:
                ev = dec.next_event()
            except FrameTooLargeError:
                if not dec.skipping:  # the stream is broken: reported below
                    raise
                seen.append(("refused",))  # one frame refused and read past
                continue
            if ev is NEED_DATA:
                return
            events.append(ev)
            seen.append(_describe(ev))
        raise AssertionError("next_event() never returned NEED_DATA")

    try:
        if mode == "recv":
            pos = 0
            while pos < len(stream):
                buf = dec.get_buffer()
                n = min(len(buf), len(stream) - pos, rng.choice([1, 3, 64, 1000, 1 << 30]))
                buf[:n] = stream[pos : pos + n]
                dec.advance(n)
                pos += n
                drain()
            if eof:
                dec.get_buffer()
                dec.advance(0)
        else:
            if mode == "whole" or (mode == "bytes" and len(stream) > BYTEWISE_MAX):
                cuts = sorted({0, len(stream)})  # (b"" would mean EOF)
            elif mode == "bytes":
                cuts = list(range(len(stream) + 1))
            else:
                cuts = sorted({0, len(stream), *(rng.randrange(len(stream) + 1) for _ in range(8))})
            for a, b in itertools.pairwise(cuts):
                dec.receive_data(stream[a:b])
                drain()
            if eof:
                dec.receive_data(b"")
        if eof:
            ev = dec.next_event()  # all complete frames were delivered: a clean end or an error
            assert isinstance(ev, EndOfStream), ev
            seen.append(("eof",))
        error = None
    except WireError as exc:
        # the harness never misuses the API: every error is the bytes' fault
        assert isinstance(exc, ProtocolError), repr(exc)
        for call in (dec.next_event, dec.get_buffer, lambda: dec.receive_data(b"\0")):
            try:
                call()
            except StreamBrokenError:
                pass
            else:
                raise AssertionError("decoder usable after a ProtocolError") from exc
        error = (type(exc).__name__,)
        if isinstance(exc, TruncatedStreamError):
            error += (exc.received, exc.expected)
    # arrays delivered before the error (or the end) were not touched since
    delivered = [d for d in seen if d != ("refused",)]
    assert [_describe(e) for e in events] == delivered[: len(events)]
    return seen, error


def TestOneInput(data: bytes) -> None:  # the name atheris and libFuzzer use
    """Decode ``data`` (control byte, seed, stream) every way; see the module docstring."""
    if len(data) < 5:
        return
    control = data[0]
    seed = int.from_bytes(data[1:5], "little")
    stream = data[5:]
    if control & 4:
        stream = fix_header_crcs(stream)
    mode = MODES[control & 3]
    keep, eof = bool(control & 8), not control & 16
    reference = run(stream, IMPLEMENTATIONS[0], "whole", 0, keep, eof)
    for impl in IMPLEMENTATIONS:
        got = run(stream, impl, mode, seed, keep, eof)
        assert got == reference, (impl, mode, got[1], reference[1])


def seed_streams() -> list[bytes]:
    """Valid streams covering every frame kind, flag, dtype and layout (no control bytes)."""
    r = np.random.default_rng(1)
    streams = []
    for checksum in (False, True):
        for byteorder in ("network", "native"):
            enc = Encoder(checksum=checksum, byteorder=byteorder)
            parts = [
                enc.encode(r.integers(0, 100, (2, 3)).astype(np.int32), name="a"),
                enc.encode(np.asfortranarray(r.random((3, 2))).astype(">f4")),
                enc.encode(np.zeros((0, 2), np.complex64), name="empty"),
                enc.encode(np.array(True)),
                enc.encode_message({"x": np.arange(5, dtype=np.uint16), "y": np.ones(3, "f2")}),
                enc.encode_message({}),
                enc.encode(np.arange(12, dtype=np.int64).reshape(1, 2, 1, 3, 2)[..., ::-1]),
                enc.encode(np.arange(4, dtype=np.int16).reshape(1, 2, 1, 1, 2, 1)),  # refused
                enc.encode(np.array([[1.5]])),
                enc.end(),
            ]
            streams.append(b"".join(parts))
            streams.append(parts[0])
            streams.append(
                Encoder(checksum=checksum).encode_message({"m": np.arange(4.0).reshape(2, 2).T})
            )
    streams.append(Encoder().encode(np.arange(3, dtype="u1"), name="ü" * 100))
    return streams


def seed_inputs() -> list[bytes]:
    """:func:`seed_streams` with a control byte (each feeding, CRC repair on) and a seed."""
    out = []
    for i, stream in enumerate(seed_streams()):
        out.append(bytes([4 | (i % 4)]) + i.to_bytes(4, "little") + stream)
    return out


def _write_corpus(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for i, data in enumerate(seed_inputs()):
        with open(os.path.join(directory, f"seed-{i:03d}"), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-corpus":
        _write_corpus(sys.argv[2])
        sys.exit(0)
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed (pip install atheris); see the module docstring")

    if hasattr(atheris, "instrument_all"):
        atheris.instrument_all()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
