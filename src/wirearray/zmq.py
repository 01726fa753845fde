"""wirearray over ZeroMQ: typed arrays on any pyzmq socket, loss that is never silent.

ZeroMQ (pyzmq) gives fan-out (PUB/SUB), worker pools (PUSH/PULL), many producers into
one collector, request/reply (ROUTER/DEALER), reconnection, backpressure, CURVE and
asyncio.  This module puts wirearray frames (docs/FORMAT.md) on those sockets without
wrapping or owning them: the caller creates, configures, binds and closes the socket.
``import wirearray`` never imports this module; ``import wirearray.zmq`` imports pyzmq
(the ``wirearray[zmq]`` extra).

Wire mapping (docs/FORMAT.md section 11, "Over ZeroMQ"): one zmq message is

    envelope parts   ROUTER identities, SUB topics: as many as the caller says
    origin part      32 bytes: magic "\\x89WAZ", version, flags, origin id, message
                     sequence number, CRC32C (a header of its own, checked first)
    frame parts      whose concatenation is exactly a FORMAT.md frame (or, for
                     send_many, a MESSAGE frame and its array frames), each frame
                     either whole in one part (payloads under 64 KiB) or as header,
                     payload (one part; from 2 GiB, parts of 1 GiB), tail (CRC32C
                     trailer and padding, when not empty)

Design choices, and why:

* **The origin part, not a frame field.**  A FORMAT.md frame has no sender field and
  a new field would be a new format version; a separate fixed part keeps every frame
  a plain version-1 frame (``decode_frame`` reads the joined parts) and lets a
  receiver tell streams apart.  An origin is one Sender *and one envelope*: a
  ROUTER that replies to four clients, or a PUB that sends under four topics, keeps
  four sequences, so every receiver sees a contiguous one (a DEALER sees only its own
  replies, a SUB only its topics).  Origin ids are random 64-bit numbers chosen when
  the sequence starts: a restarted publisher is a new origin, and the sequence number
  of the first message a receiver gets from it says how many it missed.
* **Each message is a stream of its own**, frame sequence numbers from 0 (no END
  frame): zmq messages are atomic, so the frame sequence only checks the structure
  inside one message, and loss between messages is the origin part's business.
* **Small frames whole, large ones split.**  Under 64 KiB of payload a frame goes in
  one part: pyzmq copies such parts anyway (``zmq.COPY_THRESHOLD``), and one part
  decodes in one call into the compiled core.  Larger payloads go in a part of their
  own, sent without a copy (from the array, or from a staging buffer holding the
  converted bytes; ZERO_COPY_BYTES says why not copied), and are received straight
  into the destination (``recv_into``) or converted from zmq's buffer into it in one
  pass.  libzmq fails
  on parts of 2 GiB and more, hence the 1 GiB pieces.
* **Staging buffers are reused, released by zmq's MessageTracker.**  A payload that
  must be converted (network order on a little-endian host, a non-contiguous view)
  is converted once into a staging buffer that libzmq then sends from; a pool keeps
  those buffers and reuses one as soon as its tracker says libzmq is done with it,
  so a stream of large arrays costs no allocation and no page faults per message.
  Every message zmq still queues holds its own buffer (a burst of sends that zmq
  queues needs as many); between bursts a pool keeps up to 64 MiB of idle buffers
  (or the one largest), never blocking a send to wait for one.
* **The caller's array may change as soon as a send returns** (as with
  ``Channel.send``), unless ``copy=False``: then a payload that needs no conversion
  is sent from the array's own memory and the send returns the MessageTracker to
  wait on before changing the array.
* **Limits before allocation.**  libzmq holds a whole message before the first part
  is readable, so ``max_frame_bytes`` also sets ``ZMQ_MAXMSGSIZE`` (the largest part
  libzmq accepts; a peer sending a larger one is disconnected and the message is
  gone -- the receiver learns it from the next sequence number).  What libzmq cannot
  bound is the *number* of parts of a message; for untrusted peers use CURVE
  (docs/SECURITY.md).  wirearray's own allocations happen only after a header passed
  every check.
* **Exiting with messages in flight is safe.**  pyzmq drops its references to buffers
  sent without a copy when the interpreter exits, while libzmq may still be sending
  from them; the ones still in flight then are kept alive until the process is gone.
  (Messages still queued are lost at exit unless the context is terminated first:
  ``ctx.term()`` waits up to ``ZMQ_LINGER``.)
* **A malformed message costs that message only.**  zmq keeps message boundaries, so
  after a ProtocolError the rest of the bad message is discarded and the next one is
  read normally; a Receiver counts refusals in ``stats``.
* **Gap checking fits the pattern.**  A Receiver on a PULL socket does not check gaps
  by default (PUSH deals messages out round-robin: each worker sees a subset); on
  every other socket a gap raises SequenceError, with the array that revealed it.
  Stateless ``send_array`` carries no sequence (origin 0) and is never checked.

asyncio: every function and method here also takes a ``zmq.asyncio`` socket and then
returns an awaitable (pyzmq's own convention).  Parts after the first are read without
waiting: zmq delivers all parts of a message at once.
"""

from __future__ import annotations

import atexit
import os
import struct
import sys
import threading
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

try:
    import zmq
    import zmq.asyncio
except ImportError as _exc:  # pragma: no cover - exercised by tests/test_zmq.py in a subprocess
    raise ImportError(
        f"wirearray.zmq needs pyzmq >= 26.4 ({_exc}): pip install 'wirearray[zmq]'"
    ) from _exc
if not hasattr(zmq.Socket, "recv_into"):  # pragma: no cover
    raise ImportError(
        f"wirearray.zmq needs pyzmq >= 26.4 (Socket.recv_into), found pyzmq {zmq.__version__}: "
        "pip install 'wirearray[zmq]'"
    )

import numpy as np

from . import _format as F
from ._common import check_dtype
from ._implementation import get as _get_impl
from .codec import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_ARRAYS, DEFAULT_MAX_NDIM, Schema
from .exceptions import (
    BufferMismatchError,
    ChecksumError,
    FrameTooLargeError,
    MalformedFrameError,
    ProtocolError,
    SchemaMismatchError,
    SequenceError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
    UsageError,
)

__all__ = [
    "ORIGIN_BYTES",
    "ORIGIN_MAGIC",
    "Delivery",
    "Receiver",
    "Sender",
    "max_part_bytes",
    "recv_array",
    "recv_many",
    "send",
    "send_array",
    "send_many",
    "serve",
    "set_limits",
]

#: First bytes of the origin part ("\x89WAZ": the frame magic with Z for ZeroMQ).
ORIGIN_MAGIC = b"\x89WAZ"
#: Version of the origin part's layout.
ORIGIN_VERSION = 1
#: Size of the origin part.
ORIGIN_BYTES = 32
#: Origin flag bit 0: the origin id and sequence number are meaningful.
ORIGIN_SEQUENCED = 0x01
#: Frames with payloads under this size travel whole, in one part (pyzmq copies parts
#: under zmq.COPY_THRESHOLD, 64 KiB, anyway); larger payloads go in parts of their own.
WHOLE_FRAME_BYTES = 64 << 10
#: Payload parts of this size and more are handed to libzmq without a copy (from the
#: array, or from a staging buffer), with a MessageTracker; smaller ones travel whole,
#: copied.  A copy is cheaper than pyzmq's tracking only while zmq queues almost
#: nothing: send+receive of 64 KiB over inproc took 26 us copied against 38 us without
#: a copy one message at a time, but 93 against 32 us with 500 messages queued (each
#: copy lands in fresh memory: page faults), and 201 against 61 us at 256 KiB.  Without
#: a copy there is no such cliff (bench/zmq_overhead.py measures the per-message costs).
ZERO_COPY_BYTES = WHOLE_FRAME_BYTES
#: Payloads of this size and more are split into parts of PIECE_BYTES (libzmq fails on
#: parts of 2 GiB and more); smaller ones travel in one part.
SPLIT_BYTES = 1 << 31
PIECE_BYTES = 1 << 30
#: Most sequences (origins) a Receiver tracks, and a Sender keeps (one per envelope);
#: beyond it the least recently used is forgotten (a Sender starts a new origin for
#: it, a Receiver treats its next message as a new origin's).
MAX_ORIGINS = 65536
#: Sequence numbers below the highest seen that a Receiver remembers individually, to
#: tell a late message (reordered) from a repeated one (duplicated).
SEQ_WINDOW = 64
#: Idle staging memory a pool keeps for reuse (at least one buffer, whatever its size).
KEEP_STAGING_BYTES = 64 << 20

_ORIGIN = struct.Struct(">4sBBHQQII")  # magic, version, flags, 0, origin, seq, 0, crc
_U64 = (1 << 64) - 1
_HOST_BIG = sys.byteorder == "big"
_WIRE_DTYPES = {
    (code, big): dt.newbyteorder(">" if big else "<")
    for code, dt in F.DTYPES.items()
    for big in (False, True)
}
_INTP_MAX = int(np.iinfo(np.intp).max)
_DISCARD = bytearray(0)
_ZEROS = bytes(F.ALIGN)
_ZERO4 = bytes(4)
_CODES: dict[np.dtype, int] = {}  # dtype -> wire code (0: unsupported), memoised
# plain ints: pyzmq's constants are enum.IntFlag members, whose | and & run Python code
_MORE = int(zmq.SNDMORE)
_DONTWAIT = int(zmq.DONTWAIT)
_RCVMORE = int(zmq.RCVMORE)
_EVENTS = int(zmq.EVENTS)

#: Envelope parts: a ROUTER peer's identity, a PUB topic (bytes each).
Envelope = Sequence[bytes]


# ---- the origin part ----


def _pack_origin(impl: Any, origin: int, seq: int) -> bytes:
    flags = ORIGIN_SEQUENCED if origin else 0
    buf = bytearray(_ORIGIN.pack(ORIGIN_MAGIC, ORIGIN_VERSION, flags, 0, origin, seq, 0, 0))
    struct.pack_into(">I", buf, F.CRC_OFFSET, impl.crc32c(buf))
    return bytes(buf)


def _parse_origin(impl: Any, mv: memoryview) -> tuple[int, int]:
    """(origin, seq) of an origin part; origin 0 for an unsequenced message.

    Raises:
        MalformedFrameError, UnsupportedVersionError: not a valid origin part.
    """
    if len(mv) == ORIGIN_BYTES:
        magic, version, flags, zero16, origin, seq, zero32, crc = _ORIGIN.unpack(mv)
        if (
            magic == ORIGIN_MAGIC
            and version == ORIGIN_VERSION
            and not zero16
            and not zero32
            and impl.crc32c(_ZERO4, impl.crc32c(mv[: F.CRC_OFFSET])) == crc
            and ((flags == ORIGIN_SEQUENCED and origin) or (flags == 0 and not origin and not seq))
        ):
            return origin, seq
    _origin_error(impl, mv)
    raise AssertionError("unreachable")  # pragma: no cover


def _origin_error(impl: Any, mv: memoryview) -> None:
    """Raise the error that says what is wrong with an origin part."""
    n = len(mv)
    head = bytes(mv[:4])
    if head != ORIGIN_MAGIC:
        if head == F.MAGIC:
            raise MalformedFrameError(
                "a frame where the origin part belongs: the sender is not wirearray.zmq, "
                "or the envelope count is wrong"
            )
        raise MalformedFrameError(
            f"not an origin part ({n} bytes starting {head!r}): a wrong envelope count "
            "(a ROUTER socket's messages start with the peer's identity: envelope=1), "
            "or a sender that is not wirearray.zmq"
        )
    if n != ORIGIN_BYTES:
        raise MalformedFrameError(f"origin part of {n} bytes (expected {ORIGIN_BYTES})")
    _magic, version, flags, zero16, _origin, _seq, zero32, crc = _ORIGIN.unpack(mv)
    if version != ORIGIN_VERSION:
        raise UnsupportedVersionError(
            f"origin part version {version} (this reader speaks {ORIGIN_VERSION})"
        )
    if impl.crc32c(_ZERO4, impl.crc32c(mv[: F.CRC_OFFSET])) != crc:
        raise MalformedFrameError("origin part checksum mismatch (corrupted)")
    if flags & ~ORIGIN_SEQUENCED or zero16 or zero32:
        raise MalformedFrameError("origin part: unknown flags or non-zero reserved bytes")
    raise MalformedFrameError(
        "origin part: a sequenced message needs an origin id, an unsequenced one "
        "carries origin and sequence 0"
    )


# ---- limits ----


def max_part_bytes(max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """The largest zmq message part a receiver with this ``max_frame_bytes`` accepts:
    a whole frame of that payload (header of at most 832 bytes and tail of at most 67
    included), capped at 2 GiB - 1 (larger payloads travel in 1 GiB parts).  This is
    the value :func:`set_limits` gives ``ZMQ_MAXMSGSIZE``."""
    if max_frame_bytes < 0:
        raise UsageError("max_frame_bytes must be >= 0")
    return min(max_frame_bytes + F.MAX_HEADER + F.TRAILER + F.ALIGN, SPLIT_BYTES - 1)


def _socket_limits(max_frame_bytes: int, hwm_bytes: int | None) -> dict[int, int]:
    opts: dict[int, int] = {int(zmq.MAXMSGSIZE): max_part_bytes(max_frame_bytes)}
    if hwm_bytes is not None:
        if hwm_bytes <= 0:
            raise UsageError("hwm_bytes must be > 0")
        per_message = max(max_frame_bytes, 1) + F.MAX_HEADER + ORIGIN_BYTES + F.ALIGN
        hwm = max(1, min(hwm_bytes // per_message, 1 << 30))
        opts[int(zmq.RCVHWM)] = hwm
        opts[int(zmq.SNDHWM)] = hwm
    return opts


def set_limits(
    sock: zmq.Socket,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    hwm_bytes: int | None = None,
) -> None:
    """Make libzmq enforce wirearray's limits on ``sock``; call it before bind/connect.

    * ``ZMQ_MAXMSGSIZE`` = :func:`max_part_bytes` (``max_frame_bytes``): libzmq
      disconnects a peer that sends a larger part, before buffering it.
    * with ``hwm_bytes``: ``ZMQ_SNDHWM`` and ``ZMQ_RCVHWM`` (counted in messages, per
      connected peer) = ``hwm_bytes // (max_frame_bytes + 960)``, at least 1: the
      number of the largest messages allowed that fit the byte budget.  Choose
      ``max_frame_bytes`` near the real array sizes, or the count gets small (a
      1 GiB limit with a 4 GiB budget queues 3 messages per peer).

    libzmq applies these options to connections made *after* they are set (existing
    ones keep the old values), hence "before bind/connect".  It cannot bound the
    number of parts of a message: use CURVE for untrusted peers (docs/SECURITY.md).

    Raises:
        UsageError: a negative limit or a budget <= 0.
    """
    for opt, value in _socket_limits(max_frame_bytes, hwm_bytes).items():
        sock.setsockopt(opt, value)


def _default_envelope(sock: zmq.Socket) -> int:
    return 1 if sock.type == zmq.ROUTER else 0


# ---- staging buffers ----


class _StagingPool:
    """Staging buffers for converted payloads, reused once libzmq is done with them.

    ``take(n)`` returns a buffer of at least n bytes that nothing else uses;
    ``give(buf, tracker)`` hands it back with the MessageTracker of the send that
    refers to it.  A buffer is reused only when its tracker is done: libzmq released
    every reference (sent on every pipe, or dropped) and pyzmq's garbage-collector
    thread said so.  Buffers in flight wait in send order (at most MAX_IN_FLIGHT are
    followed; zmq keeps the others alive and frees them itself); idle ones are kept up
    to KEEP_STAGING_BYTES (or one buffer, if larger).  So a stream settles on the
    buffers its pipeline needs -- a burst of sends queued by zmq needs one per queued
    message, a steady stream two or three -- and reuses them without new allocations
    or page faults.  Thread-safe (the stateless functions share one pool).
    """

    MAX_IN_FLIGHT = 1024
    #: In-flight buffers looked at, besides the oldest, before allocating a new one.
    SCAN = 16

    def __init__(self) -> None:
        self._idle: list[np.ndarray] = []
        self._idle_bytes = 0
        self._busy: deque[tuple[np.ndarray, Any]] = deque()
        self._lock = threading.Lock()
        self.allocations = 0  # buffers allocated so far (tests, benchmarks)

    def _reap(self) -> None:
        busy = self._busy
        while busy and busy[0][1].done:  # trackers complete roughly in send order
            buf = busy.popleft()[0]
            self._idle.append(buf)
            self._idle_bytes += buf.size
        for i in range(min(self.SCAN, len(busy)) - 1, 0, -1):
            if busy[i][1].done:
                buf = busy[i][0]
                del busy[i]
                self._idle.append(buf)
                self._idle_bytes += buf.size

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            self._reap()
            idle = self._idle
            best = -1
            # the most recently freed buffer that fits without waste: still in cache
            for i in range(len(idle) - 1, -1, -1):
                size = idle[i].size
                if nbytes <= size <= 2 * nbytes + (64 << 10):
                    best = i
                    break
                if size >= nbytes and (best < 0 or size < idle[best].size):
                    best = i
            if best >= 0:
                buf = idle.pop(best)
                self._idle_bytes -= buf.size
                return buf
            self.allocations += 1
        # rounded up, so that arrays of slightly different sizes share buffers
        size = -(-nbytes // (64 << 10)) * (64 << 10)
        return np.empty(size, dtype=np.uint8)

    def give(self, buf: np.ndarray, tracker: Any) -> None:
        with self._lock:
            if tracker is None or tracker.done:
                self._idle.append(buf)
                self._idle_bytes += buf.size
            else:
                self._busy.append((buf, tracker))
                if len(self._busy) > self.MAX_IN_FLIGHT:
                    self._busy.popleft()
            idle = self._idle
            while len(idle) > 1 and self._idle_bytes > KEEP_STAGING_BYTES:
                self._idle_bytes -= idle.pop(0).size  # the least recently returned


_POOL = _StagingPool()


class _InFlight:
    """Every buffer handed to libzmq without a copy, until its tracker is done.

    While the process runs, pyzmq's garbage collector keeps such buffers alive until
    libzmq has sent them.  At exit it drops them (its atexit handler clears its
    references) while libzmq's I/O thread may still be sending -- reading freed memory,
    which aborts the process.  So at exit the buffers still in flight are kept alive
    for good (one reference leaked each): the memory stays valid until the process is
    gone, whatever order the interpreter tears down in.
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[Any, Any]] = deque()
        self._lock = threading.Lock()

    def add(self, obj: Any, tracker: Any) -> None:
        with self._lock:
            entries = self._entries
            while entries and entries[0][1].done:
                entries.popleft()
            entries.append((obj, tracker))

    def keep_at_exit(self) -> None:
        import ctypes

        with self._lock:
            for obj, tracker in self._entries:
                if not tracker.done:
                    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
            self._entries.clear()


_IN_FLIGHT = _InFlight()
atexit.register(_IN_FLIGHT.keep_at_exit)


# ---- encoding: arrays to parts ----


def _name_bytes(name: str | None) -> bytes:
    if name is None:
        return b""
    if not isinstance(name, str):
        raise UsageError(f"array names are str, not {type(name).__name__}")
    b = name.encode("utf-8")
    if not 0 < len(b) <= F.MAX_NAME:
        raise UsageError("array names are 1 to 255 bytes of UTF-8")
    return b


def _want_big(byteorder: str) -> bool | None:
    if byteorder == "network":
        return True
    if byteorder == "native":
        return None
    raise UsageError(f"byteorder must be 'network' or 'native', not {byteorder!r}")


def _mem_is_big(dt: np.dtype) -> bool:
    return dt.byteorder == ">" or (dt.byteorder == "=" and _HOST_BIG)


class _Parts:
    """The parts of one message being built: (buffer, zero-copy?) pairs, the staging
    buffers they use, and whether a zero-copy part refers to the caller's memory."""

    __slots__ = ("borrowed", "parts", "staging")

    def __init__(self) -> None:
        self.parts: list[tuple[Any, bool]] = []
        self.staging: list[tuple[np.ndarray, bool]] = []  # (buffer, sent without a copy?)
        self.borrowed = False


def _encode_array(
    out: _Parts,
    impl: Any,
    pool: _StagingPool,
    array: Any,
    name: str | None,
    want_big: bool | None,
    checksum: bool,
    copy: bool,
    seq: int,
) -> None:
    """Append the parts of one array frame (frame sequence number ``seq``) to ``out``."""
    a = array if type(array) is np.ndarray else np.asarray(array)
    if seq == 0 and name is None and a.nbytes < WHOLE_FRAME_BYTES:
        small = getattr(impl, "encode_small", None)
        if small is not None:
            frame = small(a, -1 if want_big is None else int(want_big), checksum, 0, a.nbytes)
            if frame is not None:
                out.parts.append((frame, False))
                return
    dt = a.dtype
    code = _CODES.get(dt)
    if code is None:
        code = _CODES[dt] = F.dtype_code(dt)
    if not code:
        check_dtype(dt)
        raise UnsupportedDtypeError(f"wirearray cannot send dtype {dt!r}")
    if a.ndim > F.MAX_NDIM:
        raise UsageError(f"{a.ndim} dimensions; the wire format carries at most 64")
    name_b = _name_bytes(name)
    mem_big = _mem_is_big(dt)
    wire_big = mem_big if want_big is None else want_big
    swap = dt.itemsize > 1 and wire_big != mem_big
    fortran = a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1
    contiguous = a.flags.c_contiguous or fortran
    order: Literal["C", "F"] = "F" if fortran else "C"
    flags = (
        (F.FLAG_BIG_ENDIAN if wire_big else 0)
        | (F.FLAG_FORTRAN if fortran else 0)
        | (F.FLAG_CHECKSUM if checksum else 0)
    )
    header = impl.pack_header(F.KIND_ARRAY, code, flags, a.shape, a.nbytes, name_b, 0, seq)
    n = a.nbytes
    if n < WHOLE_FRAME_BYTES:
        if swap:
            a = impl.byteswap(a)
        if not (a.flags.c_contiguous or fortran):
            a = np.ascontiguousarray(a)
        payload = a.reshape(-1, order=order).view(np.uint8)
        tail = _tail(impl, payload, checksum, n)
        out.parts.append((b"".join((header, payload.data, tail)), False))
        return
    zero_copy = n >= ZERO_COPY_BYTES
    if not swap and contiguous and (not copy or not zero_copy):
        # the array's own memory: without a copy (copy=False), or copied by libzmq
        payload = a.reshape(-1, order=order).view(np.uint8)
        out.borrowed = zero_copy
    else:
        buf = pool.take(n)
        out.staging.append((buf, zero_copy))
        payload = buf[:n]
        dest = payload.view(dt).reshape(a.shape, order=order)
        if swap:
            impl.byteswap(a, out=dest)
        else:
            np.copyto(dest, a)
    out.parts.append((header, False))
    if n < SPLIT_BYTES:
        out.parts.append((payload, zero_copy))
    else:
        for k in range(0, n, PIECE_BYTES):
            out.parts.append((payload[k : k + PIECE_BYTES], zero_copy))
    tail = _tail(impl, payload, checksum, n)
    if tail:
        out.parts.append((tail, False))


def _tail(impl: Any, payload: np.ndarray, checksum: bool, n: int) -> bytes:
    pad = F.frame_tail(n, checksum) - (F.TRAILER if checksum else 0)
    if checksum:
        return impl.crc32c(payload).to_bytes(4, "big") + _ZEROS[:pad]
    return _ZEROS[:pad]


def _encode_message(
    out: _Parts,
    impl: Any,
    pool: _StagingPool,
    arrays: Mapping[str, Any],
    want_big: bool | None,
    checksum: bool,
    copy: bool,
) -> None:
    if not isinstance(arrays, Mapping):
        raise UsageError("a message is a mapping of names to arrays")
    items = [(k, np.asarray(v)) for k, v in arrays.items()]
    for k, v in items:  # every name and dtype before anything is converted
        _name_bytes(k)
        if not F.dtype_code(v.dtype):
            check_dtype(v.dtype)
            raise UnsupportedDtypeError(f"wirearray cannot send dtype {v.dtype!r}")
    out.parts.append((impl.pack_header(F.KIND_MESSAGE, 0, 0, (), 0, b"", len(items), 0), False))
    for i, (k, v) in enumerate(items, 1):
        _encode_array(out, impl, pool, v, k, want_big, checksum, copy, i)


def _check_envelope(envelope: Envelope) -> list[Any]:
    if envelope == ():
        return []
    if isinstance(envelope, (bytes, str)):
        raise UsageError("envelope is a sequence of parts, e.g. [identity] or [b'topic']")
    parts = list(envelope)
    for p in parts:
        if isinstance(p, str):
            raise UsageError("envelope parts are bytes (encode topic strings)")
    return parts


def _check_flags(flags: int) -> int:
    flags = int(flags)
    if flags & ~_DONTWAIT:
        raise UsageError("flags may only be zmq.DONTWAIT: a send is always a whole message")
    return flags


def _send_parts(sock: zmq.Socket, envelope: list, origin: bytes, built: _Parts, flags: int):
    """Send one whole message; returns the MessageTracker of its zero-copy parts (or
    None).  Raises zmq.Again (DONTWAIT, or SNDTIMEO) with nothing sent."""
    parts = built.parts
    trackers = []
    more = flags | _MORE
    first = True
    for p in envelope:
        sock.send(p, more if first else _MORE)
        first = False
    sock.send(origin, more if first else _MORE)
    last = len(parts) - 1
    for i, (buf, zero_copy) in enumerate(parts):
        f = _MORE if i < last else 0
        if zero_copy:
            tracker = sock.send(buf, f, copy=False, track=True)
            _IN_FLIGHT.add(buf, tracker)
            trackers.append(tracker)
        else:
            sock.send(buf, f)
    if not trackers:
        return None
    return trackers[0] if len(trackers) == 1 else zmq.MessageTracker(*trackers)


def _release(pool: _StagingPool, built: _Parts, tracker: Any) -> None:
    """Staging buffers back to the pool: free at once if libzmq copied them."""
    for buf, zero_copy in built.staging:
        pool.give(buf, tracker if zero_copy else None)


# ---- decoding: parts to arrays ----


@dataclass(frozen=True, slots=True)
class _Limits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_ndim: int = DEFAULT_MAX_NDIM
    max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 0 or not 0 <= self.max_ndim <= F.MAX_NDIM:
            raise UsageError("limits must be >= 0 (and max_ndim <= 64)")
        if self.max_message_arrays < 0:
            raise UsageError("max_message_arrays must be >= 0")


class _Incoming:
    """What is known of the message being read (the Receiver's bookkeeping uses it
    also when the message is refused): its envelope and origin."""

    __slots__ = ("envelope", "origin", "seq")

    def __init__(self) -> None:
        self.envelope: list[bytes] = []
        self.origin: int | None = None
        self.seq = 0


class _Reader:
    """Reads the parts of one zmq message from a (blocking) socket, one at a time."""

    __slots__ = ("more", "sock")

    def __init__(self, sock: zmq.Socket):
        self.sock = sock
        self.more = False

    def first(self, flags: int) -> Any:
        f = self.sock.recv(flags, copy=False)
        self.more = f.more
        return f

    def frame(self, what: str) -> Any:
        if not self.more:
            raise MalformedFrameError(f"the message ended where {what} belongs")
        f = self.sock.recv(copy=False)
        self.more = f.more
        return f

    def into(self, buf: Any, want: int, what: str) -> int:
        """recv_into ``buf`` (``want`` bytes long); the part must be exactly that long."""
        if not self.more:
            raise MalformedFrameError(f"the message ended where {what} belongs")
        n = self.sock.recv_into(buf)
        self.more = bool(self.sock.getsockopt(_RCVMORE))
        if n != want:
            raise MalformedFrameError(f"{what}: a part of {n} bytes (expected {want})")
        return n

    def end(self) -> None:
        if self.more:
            raise MalformedFrameError("extra parts after the frame(s) the message announced")

    def drain(self) -> None:
        """Discard what is left of the message, so that the next read starts a new one."""
        sock = self.sock
        while self.more:
            sock.recv_into(_DISCARD)
            self.more = bool(sock.getsockopt(_RCVMORE))


def _fit_out(out: Any, wire_dt: np.dtype, shape: tuple, order: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise BufferMismatchError(f"out must be an ndarray, not {type(out).__name__}")
    if out.dtype.newbyteorder("=") != wire_dt.newbyteorder("="):
        raise BufferMismatchError(f"out has dtype {out.dtype}; the frame carries {wire_dt}")
    if out.shape != tuple(shape):
        raise BufferMismatchError(f"out has shape {out.shape}; the frame carries {shape}")
    if not out.flags.writeable:
        raise BufferMismatchError("out is read-only")
    if not (out.flags.f_contiguous if order == "F" else out.flags.c_contiguous):
        raise BufferMismatchError(
            f"out must be {'Fortran' if order == 'F' else 'C'}-contiguous "
            f"(the frame is in {order} order)"
        )
    return out


def _payload_parts(length: int) -> list[int]:
    """Sizes of the payload parts of a split frame (the sender's rule, exactly)."""
    if length == 0:
        return []
    if length < SPLIT_BYTES:
        return [length]
    return [min(PIECE_BYTES, length - k) for k in range(0, length, PIECE_BYTES)]


class _MessageState:
    """Names and payload bytes of the message being read (FORMAT.md section 2 rules)."""

    __slots__ = ("names", "nbytes")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.nbytes = 0


def _read_array(
    reader: _Reader,
    impl: Any,
    first: Any,
    seq: int,
    out: Any,
    schema: Schema | None,
    limits: _Limits,
    copy: bool,
    msg: _MessageState | None,
) -> tuple[str | None, np.ndarray]:
    """One array frame whose first part is ``first``: validate its header against the
    limits and the schema, then land the payload (whole, or in its own parts)."""
    mv = memoryview(first)
    size = len(mv)
    if size < F.MIN_HEADER:
        raise MalformedFrameError(f"a frame part of {size} bytes (a header has at least 64)")
    head = mv[: F.MIN_HEADER]
    if bytes(head[:4]) == ORIGIN_MAGIC:
        raise MalformedFrameError("a second origin part where a frame belongs")
    h = impl.header_length(head)
    if size < h:
        raise MalformedFrameError(f"a frame part of {size} bytes; its header alone has {h}")
    kind, code, flags, shape, length, name, _count, fseq = impl.parse_header(mv[:h])
    if kind != F.KIND_ARRAY:
        if kind == F.KIND_MESSAGE and msg is None:
            raise SchemaMismatchError("expected a single array, received a message (recv_many)")
        raise MalformedFrameError(f"frame kind {kind} where an array frame belongs")
    if fseq != seq:
        raise MalformedFrameError(f"frame sequence number {fseq}, expected {seq}")
    if len(shape) > limits.max_ndim:
        raise FrameTooLargeError(f"{len(shape)} dimensions exceed max_ndim={limits.max_ndim}")
    if length > limits.max_frame_bytes:
        raise FrameTooLargeError(
            f"frame of {length} bytes exceeds max_frame_bytes={limits.max_frame_bytes}"
        )
    nonzero = F.ITEMSIZE[code]
    for n in shape:
        if n:
            nonzero *= n
    if nonzero > _INTP_MAX:
        raise MalformedFrameError(f"shape {shape} cannot be represented on this host")
    try:
        text = name.decode("utf-8") if name else None
    except UnicodeDecodeError:
        raise MalformedFrameError("array name is not valid UTF-8") from None
    if msg is not None:
        if text is None:
            raise MalformedFrameError("an array inside a message has no name")
        if text in msg.names:
            raise MalformedFrameError(f"array name {text!r} repeated in a message")
        if msg.nbytes + length > limits.max_frame_bytes:
            raise FrameTooLargeError(
                f"message payloads exceed max_frame_bytes={limits.max_frame_bytes}"
            )
        msg.names.add(text)
        msg.nbytes += length
    if schema is not None:
        why = schema.mismatch(code, shape)
        if why:
            raise SchemaMismatchError(f"array {text or ''!r}: got {why}".replace(" '' ", " "))
    checksum = bool(flags & F.FLAG_CHECKSUM)
    tail_len = F.frame_tail(length, checksum)
    total = h + length + tail_len
    whole = size == total
    if not whole and not (size == h and total > h):
        raise MalformedFrameError(
            f"a frame part of {size} bytes: neither the {h}-byte header nor the whole "
            f"{total}-byte frame"
        )
    wire_big = bool(flags & F.FLAG_BIG_ENDIAN)
    wire_dt = _WIRE_DTYPES[code, wire_big]
    order: Literal["C", "F"] = "F" if flags & F.FLAG_FORTRAN else "C"
    itemsize = wire_dt.itemsize
    pieces = [length] if whole else _payload_parts(length)
    crc = 0
    # A read-only view of zmq's buffer: no conversion, no out=, one piece.
    if out is None and not copy and len(pieces) <= 1 and (itemsize == 1 or wire_big == _HOST_BIG):
        if whole:
            src = mv[h : h + length]
            tail = mv[h + length :]
        else:
            src = memoryview(reader.frame("the payload")) if length else mv[:0]
            if len(src) != length:
                raise MalformedFrameError(
                    f"the payload: a part of {len(src)} bytes (expected {length})"
                )
            tail = _read_tail(reader, tail_len)
        if checksum:
            crc = impl.crc32c(src)
        _check_tail(tail, checksum, crc)
        view = np.frombuffer(src, dtype=F.DTYPES[code], count=length // itemsize)
        view = view.reshape(shape, order=order)
        view.flags.writeable = False
        return text, view
    if out is not None:
        dt = out.dtype if type(out) is np.ndarray else None
        if (
            dt is not None
            and dt.kind == wire_dt.kind
            and dt.itemsize == itemsize
            and out.shape == shape
            and out.flags.writeable
            and (out.flags.c_contiguous if order == "C" else out.flags.f_contiguous)
        ):
            dest = out  # the common case, without _fit_out's dtype arithmetic
        else:
            dest = _fit_out(out, wire_dt, shape, order)
    else:
        try:
            dest = np.empty(shape, dtype=F.DTYPES[code], order=order)
        except (ValueError, MemoryError) as exc:
            raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc
    swap = itemsize > 1 and _mem_is_big(dest.dtype) != wire_big
    if not whole and not swap and len(pieces) == 1 and not checksum:
        # libzmq copies the payload part into the destination itself
        reader.into(dest, length, "the payload")
        _check_tail(_read_tail(reader, tail_len), False, 0)
        return text, dest
    dest_bytes = dest.reshape(-1, order=order).view(np.uint8)
    unit = (itemsize // 2 if wire_dt.kind == "c" else itemsize) if swap else 0
    units = dest_bytes.view(f"u{unit}") if unit else None
    if whole:
        src = mv[h : h + length]
        if checksum:
            crc = impl.crc32c(src)
        _land(impl, src, dest_bytes, units, unit, 0)
        _check_tail(mv[h + length :], checksum, crc)
        return text, dest
    offset = 0
    for piece in pieces:
        window = dest_bytes[offset : offset + piece]
        if unit:
            # converted in one pass from zmq's buffer into the destination
            src = memoryview(reader.frame("the payload"))
            if len(src) != piece:
                raise MalformedFrameError(
                    f"the payload: a part of {len(src)} bytes (expected {piece})"
                )
            if checksum:
                crc = impl.crc32c(src, crc)
            _land(impl, src, dest_bytes, units, unit, offset)
        else:
            # no conversion: libzmq copies the part into the destination itself
            reader.into(window, piece, "the payload")
            if checksum:
                crc = impl.crc32c(window, crc)
        offset += piece
    _check_tail(_read_tail(reader, tail_len), checksum, crc)
    return text, dest


def _land(impl: Any, src: Any, dest_bytes: np.ndarray, units: Any, unit: int, offset: int):
    n = len(src)
    if not n:
        return
    if unit:
        view = np.frombuffer(src, dtype=units.dtype)
        impl.byteswap(view, out=units[offset // unit : (offset + n) // unit])
    else:
        dest_bytes[offset : offset + n] = np.frombuffer(src, dtype=np.uint8)


def _read_tail(reader: _Reader, tail_len: int) -> memoryview:
    if not tail_len:
        return memoryview(b"")
    tail = memoryview(reader.frame("the frame's tail"))
    if len(tail) != tail_len:
        raise MalformedFrameError(f"a tail part of {len(tail)} bytes (expected {tail_len})")
    return tail


def _check_tail(tail: memoryview, checksum: bool, crc: int) -> None:
    pad_from = 0
    if checksum:
        sent = int.from_bytes(tail[:4], "big")
        if sent != crc:
            raise ChecksumError(
                f"payload checksum mismatch (CRC32C 0x{crc:08x}, trailer 0x{sent:08x})"
            )
        pad_from = 4
    if any(tail[pad_from:]):
        raise MalformedFrameError("non-zero bytes in frame padding")


def _coerce_schema(schema: Any, many: bool) -> Any:
    if many:
        if schema is None:
            return None
        if not isinstance(schema, Mapping):
            raise UsageError("recv_many(schema=...) is a dict of schemas by name")
        return {str(k): Schema.coerce(v) for k, v in schema.items()}
    if isinstance(schema, Mapping):
        raise UsageError("a dict of schemas describes a message: use recv_many()")
    return Schema.coerce(schema)


def _read_message(
    reader: _Reader,
    impl: Any,
    flags: int,
    n_env: int,
    out: Any,
    schema: Any,
    limits: _Limits,
    copy: bool,
    many: bool | None,
    info: _Incoming,
) -> Any:
    """Read one whole message: envelope, origin part, frame(s).  Fills ``info`` as it
    goes.  Returns the array (``many`` False), the dict of a message (True), or either
    as a dict, a single array under its name (None)."""
    if n_env:
        info.envelope.append(reader.first(flags).bytes)
        for _ in range(n_env - 1):
            info.envelope.append(reader.frame("an envelope part").bytes)
        part = reader.frame("the origin part")
    else:
        part = reader.first(flags)
    info.origin, info.seq = _parse_origin(impl, memoryview(part))
    first = reader.frame("a frame")
    if many is None:
        head = memoryview(first)[:6]
        many = len(head) == 6 and head[5] == F.KIND_MESSAGE
        if not many:
            name, a = _read_array(reader, impl, first, 0, None, None, limits, copy, None)
            reader.end()
            return {name: a}
    if not many:
        # The whole-frame fast path: one compiled call validates, converts and checks.
        small = getattr(impl, "decode_small", None)
        if small is not None and schema is None and copy and not reader.more:
            r = small(first, 0, limits.max_frame_bytes, limits.max_ndim, False, out)
            if r is not None and r[1] == len(first):
                return r[0]
        _name, a = _read_array(reader, impl, first, 0, out, schema, limits, copy, None)
        reader.end()
        return a
    mv = memoryview(first)
    if len(mv) < F.MIN_HEADER:
        raise MalformedFrameError(f"a frame part of {len(mv)} bytes (a header has at least 64)")
    h = impl.header_length(mv[: F.MIN_HEADER])
    if len(mv) < h:
        raise MalformedFrameError(f"a frame part of {len(mv)} bytes; its header alone has {h}")
    kind, _c, _f, _s, _l, _n, count, fseq = impl.parse_header(mv[:h])
    if kind != F.KIND_MESSAGE:
        if kind == F.KIND_ARRAY:
            raise SchemaMismatchError("expected a message, received a single array (recv_array)")
        raise MalformedFrameError(f"frame kind {kind} where a message header belongs")
    if len(mv) != h:
        raise MalformedFrameError(f"a message header part of {len(mv)} bytes (expected {h})")
    if fseq != 0:
        raise MalformedFrameError(f"frame sequence number {fseq}, expected 0")
    if count > limits.max_message_arrays:
        raise FrameTooLargeError(
            f"message of {count} arrays exceeds max_message_arrays={limits.max_message_arrays}"
        )
    if out is not None and not isinstance(out, Mapping):
        raise BufferMismatchError("recv_many(out=...) is a dict of arrays by name")
    outs = out or {}
    state = _MessageState()
    arrays: dict[str, np.ndarray] = {}
    for i in range(1, count + 1):
        part = reader.frame(f"array {i} of {count}")
        # out= and the schema go by name, which only the header says
        name = _peek_name(impl, part)
        sch = None
        if schema is not None:
            if name not in schema:
                raise SchemaMismatchError(f"unexpected array {name!r} in the message")
            sch = schema[name]
        text, a = _read_array(reader, impl, part, i, outs.get(name), sch, limits, copy, state)
        arrays[str(text)] = a  # a message's arrays all have names (checked)
    reader.end()
    if schema is not None:
        missing = set(schema) - set(arrays)
        if missing:
            raise SchemaMismatchError(f"message lacks arrays {sorted(missing)}")
    return arrays


def _peek_name(impl: Any, part: Any) -> str | None:
    """The name in a frame header (validated: header length, CRC), or None."""
    mv = memoryview(part)
    if len(mv) < F.MIN_HEADER:
        return None
    h = impl.header_length(mv[: F.MIN_HEADER])
    if len(mv) < h:
        return None
    name = impl.parse_header(mv[:h])[5]
    try:
        return name.decode("utf-8") if name else None
    except UnicodeDecodeError:
        return None


def _recv(
    sock: zmq.Socket,
    impl: Any,
    flags: int,
    n_env: int,
    out: Any,
    schema: Any,
    limits: _Limits,
    copy: bool,
    many: bool | None,
    info: _Incoming,
) -> Any:
    """One message, or an error for that message only (its rest discarded)."""
    reader = _Reader(sock)
    try:
        return _read_message(reader, impl, flags, n_env, out, schema, limits, copy, many, info)
    except zmq.ZMQError:
        raise  # the socket failed (closed, context terminated): nothing to read on it
    except BaseException:
        # a bad message, a misfit out=, or an interruption between two parts: the rest
        # of this message is already here (zmq delivers messages whole), so discarding
        # it cannot block, and the next receive starts at a message boundary
        reader.drain()
        raise


# ---- sequence tracking ----


class _Origin:
    """Sequence bookkeeping for one origin: the highest number seen and a bitmap of
    which of the SEQ_WINDOW numbers below it arrived (as IPsec's replay window)."""

    __slots__ = ("duplicated", "lost", "mask", "received", "reordered", "top")

    def __init__(self, seq: int):
        self.top = seq
        self.mask = 0
        self.received = 1
        self.lost = seq  # the messages before the first one heard of
        self.reordered = 0
        self.duplicated = 0

    def track(self, seq: int) -> tuple[str, int] | None:
        """Record ``seq``; None if it was the next one, else (what, how many)."""
        top = self.top
        self.received += 1
        if seq == top + 1:
            self.mask = ((self.mask << 1) | 1) & _U64
            self.top = seq
            return None
        if seq > top:
            gap = seq - top - 1
            self.lost += gap
            self.mask = (((self.mask << 1) | 1) << gap) & _U64
            self.top = seq
            return ("lost", gap)
        behind = top - seq
        if behind == 0:
            self.duplicated += 1
            return ("duplicated", 1)
        if behind <= SEQ_WINDOW:
            bit = 1 << (behind - 1)
            if self.mask & bit:
                self.duplicated += 1
                return ("duplicated", 1)
            self.mask |= bit
        # a message counted lost arrived late (or, beyond the window, one of either)
        self.reordered += 1
        self.lost = max(0, self.lost - 1)
        return ("reordered", 1)


# ---- the stateless API ----


def _is_async(sock: Any) -> bool:
    return isinstance(sock, zmq.asyncio.Socket)


def _sync(sock: Any) -> zmq.Socket:
    """The blocking socket to do the work on: ``sock``, or an asyncio socket's shadow."""
    return sock._shadow_sock if _is_async(sock) else sock


async def _await_send(asock: Any, attempt: Callable[[int], Any], flags: int) -> Any:
    """Run ``attempt(DONTWAIT)`` until the socket takes the message, waiting for
    POLLOUT in between (at most SNDTIMEO in all; zmq.Again after it)."""
    timeout = asock.getsockopt(zmq.SNDTIMEO)
    deadline = None if timeout < 0 else time.monotonic() + timeout / 1000
    while True:
        try:
            result = attempt(flags | _DONTWAIT)
        except zmq.Again:
            if flags & _DONTWAIT:
                raise
        else:
            asock.get(zmq.EVENTS)  # get(), not getsockopt(): wakes the socket's other waiters
            return result
        left = None if deadline is None else max(0, deadline - time.monotonic())
        if left == 0:
            raise zmq.Again()
        await asock.poll(None if left is None else left * 1000 + 1, zmq.POLLOUT)


async def _await_recv(asock: Any, attempt: Callable[[int], Any], flags: int) -> Any:
    """Run ``attempt(DONTWAIT)`` until a message is there, waiting for POLLIN in
    between (at most RCVTIMEO in all; zmq.Again after it)."""
    timeout = asock.getsockopt(zmq.RCVTIMEO)
    deadline = None if timeout < 0 else time.monotonic() + timeout / 1000
    while True:
        try:
            result = attempt(flags | _DONTWAIT)
        except zmq.Again:
            if flags & _DONTWAIT:
                raise
        else:
            asock.get(zmq.EVENTS)
            return result
        left = None if deadline is None else max(0, deadline - time.monotonic())
        if left == 0:
            raise zmq.Again()
        await asock.poll(None if left is None else left * 1000 + 1, zmq.POLLIN)


_ANON_ORIGIN: dict[str, bytes] = {}


def _anonymous_origin(impl: Any) -> bytes:
    part = _ANON_ORIGIN.get(impl.__name__)
    if part is None:
        part = _ANON_ORIGIN[impl.__name__] = _pack_origin(impl, 0, 0)
    return part


def _send(
    sock: Any,
    impl: Any,
    pool: _StagingPool,
    build: Callable[[_Parts], None],
    origin: Callable[[], bytes],
    envelope: Envelope,
    flags: int,
    done: Callable[[], None] | None = None,
) -> Any:
    """Build a message and send it on ``sock`` (blocking or asyncio)."""
    env = _check_envelope(envelope)
    flags = _check_flags(flags)
    built = _Parts()
    try:
        build(built)
    except BaseException:
        _release(pool, built, None)
        raise

    def attempt(f: int) -> Any:
        return _send_parts(_sync(sock), env, origin(), built, f)

    def finish(tracker: Any) -> Any:
        _release(pool, built, tracker)
        if done is not None:
            done()
        return tracker if built.borrowed else None

    if _is_async(sock):

        async def run() -> Any:
            try:
                tracker = await _await_send(sock, attempt, flags)
            except BaseException:
                _release(pool, built, None)
                raise
            return finish(tracker)

        return run()
    try:
        tracker = attempt(flags)
    except BaseException:
        _release(pool, built, None)
        raise
    return finish(tracker)


def send_array(
    sock: zmq.Socket,
    a: Any,
    *,
    byteorder: str | None = None,
    checksum: bool | None = None,
    name: str | None = None,
    envelope: Envelope = (),
    flags: int = 0,
    copy: bool = True,
) -> Any:
    """Send one array as one zmq message on ``sock`` (any socket type that sends).

    The message: ``envelope`` parts, an origin part without a sequence (origin 0: a
    receiver checks no gaps for it; use :class:`Sender` for that), then the array's
    frame (docs/FORMAT.md section 11, "Over ZeroMQ").

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then this returns an
            awaitable).  Never closed or configured here.
        a: an ndarray (or what ``numpy.asarray`` takes) of a supported dtype, any
            shape (0-d and empty included), layout and byte order; Fortran order is
            kept, other non-contiguous views are sent in C order.
        byteorder: "network" (big-endian payload; the default, as for Channel) or
            "native" (the array's own memory order: a same-order receiver converts
            nothing).
        checksum: append a CRC32C of the payload (default False).
        name: an optional name (1 to 255 bytes of UTF-8).
        envelope: parts sent before the message: a ROUTER's peer identity (from
            :func:`recv_array` with an envelope), a PUB topic.
        flags: 0, or ``zmq.DONTWAIT`` to raise ``zmq.Again`` instead of blocking when
            the socket cannot take the message (high-water mark, no peer).
        copy: True (default): ``a`` may change as soon as this returns; payloads of
            64 KiB and more leave from a reused staging buffer without a further
            copy, converted or copied there; smaller ones are copied into the frame.
            False: a payload of 64 KiB or more that needs no conversion leaves from
            ``a``'s own memory, without a copy, and a MessageTracker is returned: do
            not change ``a`` before ``tracker.done`` (``tracker.wait()``).

    Returns:
        A ``zmq.MessageTracker`` when the message refers to ``a``'s memory (copy=False,
        no conversion, 64 KiB or more), else None.

    Raises:
        UnsupportedDtypeError: the dtype cannot travel.
        UsageError: bad name, byteorder, flags or envelope; more than 64 dimensions.
        zmq.Again: DONTWAIT or SNDTIMEO and the socket cannot take the message (nothing
            was sent).  Other zmq errors pass through.
    """
    impl = _get_impl(None)
    want = _want_big(byteorder if byteorder is not None else "network")
    crc = bool(checksum)

    def build(parts: _Parts) -> None:
        _encode_array(parts, impl, _POOL, a, name, want, crc, copy, 0)

    return _send(sock, impl, _POOL, build, lambda: _anonymous_origin(impl), envelope, flags)


def send_many(
    sock: zmq.Socket,
    mapping: Mapping[str, Any],
    *,
    byteorder: str | None = None,
    checksum: bool | None = None,
    envelope: Envelope = (),
    flags: int = 0,
    copy: bool = True,
) -> Any:
    """Send several named arrays as one atomic zmq message (a FORMAT.md message): a
    receiver gets all of them or none.  Arguments and result as :func:`send_array`;
    ``mapping`` is names (1 to 255 bytes of UTF-8) to arrays, validated before
    anything is sent."""
    impl = _get_impl(None)
    want = _want_big(byteorder if byteorder is not None else "network")
    crc = bool(checksum)

    def build(parts: _Parts) -> None:
        _encode_message(parts, impl, _POOL, mapping, want, crc, copy)

    return _send(sock, impl, _POOL, build, lambda: _anonymous_origin(impl), envelope, flags)


def _with_envelope(n_env: int, info: _Incoming, result: Any) -> Any:
    return (info.envelope, result) if n_env else result


def _recv_api(
    sock: Any,
    impl: Any,
    envelope: int | None,
    out: Any,
    schema: Any,
    limits: _Limits,
    copy: bool,
    many: bool,
    flags: int = 0,
) -> Any:
    n_env = _default_envelope(sock) if envelope is None else int(envelope)
    if n_env < 0:
        raise UsageError("envelope is a count of parts, >= 0")
    schema = _coerce_schema(schema, many)
    flags = int(flags)

    def attempt(f: int) -> Any:
        info = _Incoming()
        result = _recv(_sync(sock), impl, f, n_env, out, schema, limits, copy, many, info)
        return _with_envelope(n_env, info, result)

    if _is_async(sock):
        return _await_recv(sock, attempt, flags)
    return attempt(flags)


def recv_array(
    sock: zmq.Socket,
    out: np.ndarray | None = None,
    *,
    schema: Any = None,
    envelope: int | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    copy: bool = True,
    flags: int = 0,
) -> Any:
    """Receive one array sent with :func:`send_array` or :meth:`Sender.send`.

    Blocks as the socket does (``RCVTIMEO``: ``zmq.Again`` when it passes).  Every
    header is checked against the limits and ``schema`` before anything is allocated
    for it.  Sequence numbers are not checked here (use :class:`Receiver`).

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then this returns an
            awaitable).
        out: receive into this array: the frame's dtype (in any byte order: the
            values arrive in ``out``'s), its shape, writable and contiguous in the
            frame's order (C, or Fortran for a Fortran frame).  Large payloads land in
            it directly (libzmq's own copy), converted in the same pass when the byte
            orders differ.  The result is ``out``.  After a ProtocolError its content
            is unspecified.
        schema: a :class:`~wirearray.Schema` or ``(dtype, shape)`` the array must
            match (None entries are wildcards), checked on the header.
        envelope: how many parts precede the origin part (ROUTER identities, SUB
            topics); None: 1 on a ROUTER socket, else 0.  With an envelope the result
            is ``(envelope_parts, array)``: the parts as a list of bytes, ready for
            ``send_array(..., envelope=...)``.
        max_frame_bytes: largest payload accepted (FrameTooLargeError, from the
            header).  Also call :func:`set_limits` before connecting, so that libzmq
            refuses larger parts before buffering them.
        max_ndim: most dimensions accepted.
        copy: True (default): the array is ``out`` or a new array in this host's byte
            order.  False and no ``out``: when no conversion is needed (the payload is
            in this host's order, or one-byte items) the array is a **read-only view
            of zmq's buffer** (no copy; it keeps that buffer alive, and may be
            unaligned); otherwise a converted copy as with True.
        flags: 0, or ``zmq.DONTWAIT`` (``zmq.Again`` when no message is waiting).

    Returns:
        The array; ``(envelope_parts, array)`` with an envelope.

    Raises:
        ProtocolError: the message is malformed or breaks a limit or the schema
            (MalformedFrameError, FrameTooLargeError, ChecksumError,
            SchemaMismatchError -- also for a message sent with send_many).  The rest
            of that message is discarded: the next call reads the next message.
        BufferMismatchError: ``out`` does not fit the array (the message is discarded).
        zmq.Again: DONTWAIT or RCVTIMEO, and no message (nothing consumed).
    """
    impl = _get_impl(None)
    limits = _Limits(max_frame_bytes, max_ndim)
    return _recv_api(sock, impl, envelope, out, schema, limits, copy, False, flags)


def recv_many(
    sock: zmq.Socket,
    out: Mapping[str, np.ndarray] | None = None,
    *,
    schema: Mapping[str, Any] | None = None,
    envelope: int | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS,
    copy: bool = True,
    flags: int = 0,
) -> Any:
    """Receive one message sent with :func:`send_many`: a dict of name -> array.

    ``out`` and ``schema`` are dicts by name (names missing from ``out`` are
    allocated; with ``schema`` the message must have exactly its names);
    ``max_frame_bytes`` caps the payloads of the whole message; everything else as
    :func:`recv_array`.  A single array (send_array) raises SchemaMismatchError."""
    impl = _get_impl(None)
    limits = _Limits(max_frame_bytes, max_ndim, max_message_arrays)
    return _recv_api(sock, impl, envelope, out, schema, limits, copy, True, flags)


# ---- the stateful API ----


class _Stream:
    __slots__ = ("origin", "seq")

    def __init__(self) -> None:
        self.origin = 0
        while not self.origin:
            self.origin = int.from_bytes(os.urandom(8), "big")
        self.seq = 0


class Sender:
    """Sends arrays on ``sock`` with sequence numbers, so that receivers see loss.

    Each envelope the Sender sends with (none, a ROUTER identity, a PUB topic) is one
    origin: a random 64-bit id and a message count from 0, carried in every message's
    origin part.  A DEALER receiving a ROUTER's replies, or a SUB subscribed to some
    topics, therefore sees a contiguous sequence; a restarted Sender is a new origin.
    One thread at a time (as a zmq socket).

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then send methods return
            awaitables).  Never closed or configured here.
        byteorder: "network" (default) or "native", as for :func:`send_array`.
        checksum: CRC32C every payload (default False).
        implementation: "cython" or "python" to pick the core (tests, benchmarks).

    Attributes:
        stats: ``{"sent": messages}``.
    """

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        byteorder: str | None = None,
        checksum: bool | None = None,
        implementation: str | None = None,
    ):
        self.sock = sock
        self.byteorder = byteorder if byteorder is not None else "network"
        self._want = _want_big(self.byteorder)
        self.checksum = bool(checksum)
        self._impl = _get_impl(implementation)
        self._pool = _StagingPool()
        self._streams: OrderedDict[tuple, _Stream] = OrderedDict()
        self.stats = {"sent": 0}

    def origin(self, envelope: Envelope = ()) -> int:
        """The origin id of the messages sent with ``envelope`` (assigned on first use)."""
        return self._stream(tuple(_check_envelope(envelope))).origin

    def _stream(self, key: tuple) -> _Stream:
        streams = self._streams
        s = streams.get(key)
        if s is None:
            s = streams[key] = _Stream()
            if len(streams) > MAX_ORIGINS:
                streams.popitem(last=False)
        elif len(streams) > 1:
            streams.move_to_end(key)
        return s

    def _send(self, build: Callable[[_Parts], None], envelope: Envelope, flags: int) -> Any:
        key = tuple(_check_envelope(envelope))
        stream = self._stream(key)

        def origin() -> bytes:
            return _pack_origin(self._impl, stream.origin, stream.seq)

        def done() -> None:
            stream.seq += 1
            self.stats["sent"] += 1

        return _send(self.sock, self._impl, self._pool, build, origin, key, flags, done)

    def send(
        self,
        a: Any,
        *,
        name: str | None = None,
        envelope: Envelope = (),
        flags: int = 0,
        copy: bool = True,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> Any:
        """Send one array as one message (see :func:`send_array` for the arguments,
        result and errors).  The sequence number advances only when the socket took
        the message (not on zmq.Again)."""
        want = self._want if byteorder is None else _want_big(byteorder)
        crc = self.checksum if checksum is None else bool(checksum)
        impl, pool = self._impl, self._pool

        def build(parts: _Parts) -> None:
            _encode_array(parts, impl, pool, a, name, want, crc, copy, 0)

        return self._send(build, envelope, flags)

    def send_many(
        self,
        mapping: Mapping[str, Any],
        *,
        envelope: Envelope = (),
        flags: int = 0,
        copy: bool = True,
        byteorder: str | None = None,
        checksum: bool | None = None,
    ) -> Any:
        """Send named arrays as one atomic message (see :func:`send_many`)."""
        want = self._want if byteorder is None else _want_big(byteorder)
        crc = self.checksum if checksum is None else bool(checksum)
        impl, pool = self._impl, self._pool

        def build(parts: _Parts) -> None:
            _encode_message(parts, impl, pool, mapping, want, crc, copy)

        return self._send(build, envelope, flags)


_GAP_POLICIES = ("raise", "count", "off")


class Receiver:
    """Receives arrays from ``sock`` and checks every origin's sequence numbers.

    Loss, reordering and duplication are never silent: ``stats`` counts them and, with
    ``on_gap="raise"``, the receive that notices one raises
    :class:`~wirearray.SequenceError` *after* decoding the message, carrying it
    (``.array``: the array, or the dict of a message; ``.envelope``; ``.origin``), so
    nothing received is dropped.  The first message heard from an origin starts its
    sequence: if its number is not 0, the messages before it count as lost (a
    subscription that joined late, or messages a restarted publisher sent before the
    subscriber reconnected).  Loss at the very end of a stream shows only when a later
    message arrives.  Messages from :func:`send_array` (no sequence) are never checked.

    A malformed message raises its ProtocolError for that message only: the rest of
    it is discarded, ``stats["refused"]`` counts it, and the next receive reads the
    next message.

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then receive methods return
            awaitables).  Never closed here.  Create the Receiver *before* binding or
            connecting the socket: it sets ``ZMQ_MAXMSGSIZE`` (and the high-water
            marks, with ``hwm_bytes``), which libzmq applies to connections made
            afterwards only (:func:`set_limits`); on a socket already bound or
            connected (not inproc) with other values it warns (RuntimeWarning).
        on_gap: "raise", "count" (only ``stats``) or "off" (no checking); None: "off"
            on a PULL socket (PUSH deals messages round-robin, each worker sees a
            subset by design), "raise" on every other.
        max_frame_bytes: largest payload (and whole message) accepted, checked from the
            header and enforced by libzmq per part (:func:`max_part_bytes`).
        hwm_bytes: a byte budget for the socket's queues per peer (:func:`set_limits`);
            None leaves the high-water marks as they are.
        envelope: parts before the origin part; None: 1 on a ROUTER socket, else 0.
            With an envelope, receives return ``(envelope_parts, array)``.
        max_ndim, max_message_arrays: as for the codec's Decoder.
        implementation: "cython" or "python" to pick the core (tests, benchmarks).

    Attributes:
        stats: ``received`` (messages delivered), ``lost``, ``reordered``,
            ``duplicated`` (from the sequence numbers), ``refused`` (messages that
            raised a ProtocolError).
        last_origin, last_seq: origin id and sequence number of the last message
            received (origin 0 for an unsequenced one).

    Raises:
        UsageError: an unknown ``on_gap``, a negative limit or envelope.
    """

    def __init__(
        self,
        sock: zmq.Socket,
        *,
        on_gap: str | None = None,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        hwm_bytes: int | None = None,
        envelope: int | None = None,
        max_ndim: int = DEFAULT_MAX_NDIM,
        max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS,
        implementation: str | None = None,
    ):
        if on_gap is None:
            on_gap = "off" if sock.type == zmq.PULL else "raise"
        if on_gap not in _GAP_POLICIES:
            raise UsageError(f"on_gap must be one of {_GAP_POLICIES}, not {on_gap!r}")
        self._limits = _Limits(max_frame_bytes, max_ndim, max_message_arrays)
        self.envelope = _default_envelope(sock) if envelope is None else int(envelope)
        if self.envelope < 0:
            raise UsageError("envelope is a count of parts, >= 0")
        opts = _socket_limits(max_frame_bytes, hwm_bytes)
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
        if (
            isinstance(endpoint, bytes) and endpoint and not endpoint.startswith(b"inproc://")
        ):  # inproc: no decoding
            if any(sock.getsockopt(k) != v for k, v in opts.items()):
                warnings.warn(
                    "the socket is already bound or connected: libzmq applies the "
                    "Receiver's limits (ZMQ_MAXMSGSIZE, high-water marks) only to "
                    "connections made from now on; create the Receiver (or call "
                    "wirearray.zmq.set_limits) before bind/connect",
                    RuntimeWarning,
                    stacklevel=2,
                )
        for k, v in opts.items():
            sock.setsockopt(k, v)
        self.sock = sock
        self.on_gap = on_gap
        self._impl = _get_impl(implementation)
        self._origins: OrderedDict[int, _Origin] = OrderedDict()
        self.stats = {"received": 0, "lost": 0, "reordered": 0, "duplicated": 0, "refused": 0}
        self.last_origin: int | None = None
        self.last_seq: int | None = None

    def recv(self, out: np.ndarray | None = None, *, schema: Any = None, copy: bool = True):
        """Receive one array (see :func:`recv_array` for ``out``, ``schema``, ``copy``
        and the result); then check its sequence number (class docstring)."""
        return self._recv(out, _coerce_schema(schema, False), copy, False)

    def recv_many(
        self,
        out: Mapping[str, np.ndarray] | None = None,
        *,
        schema: Mapping[str, Any] | None = None,
        copy: bool = True,
    ):
        """Receive one message of named arrays (see :func:`recv_many`)."""
        return self._recv(out, _coerce_schema(schema, True), copy, True)

    def origin_stats(self) -> dict[int, dict[str, int]]:
        """Per origin id: ``received``, ``lost``, ``reordered``, ``duplicated`` and
        ``next_seq`` (the number the next message is expected to carry)."""
        return {
            origin: {
                "received": o.received,
                "lost": o.lost,
                "reordered": o.reordered,
                "duplicated": o.duplicated,
                "next_seq": o.top + 1,
            }
            for origin, o in self._origins.items()
        }

    def _recv(self, out: Any, schema: Any, copy: bool, many: bool | None) -> Any:
        def attempt(f: int) -> Any:
            info = _Incoming()
            try:
                result = _recv(
                    _sync(self.sock), self._impl, f, self.envelope, out, schema,
                    self._limits, copy, many, info,
                )  # fmt: skip
            except ProtocolError:
                self.stats["refused"] += 1
                self._track(info)  # it did arrive: no gap for it later
                raise
            except UsageError:
                self._track(info)
                raise
            self.stats["received"] += 1
            problem = self._track(info)
            result = _with_envelope(self.envelope, info, result)
            if problem is not None and self.on_gap == "raise":
                exc = SequenceError(
                    problem[0], seq=problem[1], expected=problem[2],
                    array=result[1] if self.envelope else result,
                )  # fmt: skip
                exc.origin = info.origin  # type: ignore[attr-defined]
                exc.envelope = info.envelope  # type: ignore[attr-defined]
                raise exc
            return result

        if _is_async(self.sock):
            return _await_recv(self.sock, attempt, 0)
        return attempt(0)

    def _track(self, info: _Incoming) -> tuple[str, int, int] | None:
        origin, seq = info.origin, info.seq
        if origin is None:
            return None
        self.last_origin, self.last_seq = origin, seq
        if not origin or self.on_gap == "off":
            return None
        origins = self._origins
        o = origins.get(origin)
        if o is None:
            o = origins[origin] = _Origin(seq)
            if len(origins) > MAX_ORIGINS:
                origins.popitem(last=False)
            if seq:
                self.stats["lost"] += seq
                return (
                    f"the first message from origin {origin:016x} is #{seq}: {seq} earlier "
                    "ones were not received (a late subscription, or a restarted sender's "
                    "messages before the connection)",
                    seq,
                    0,
                )
            return None
        if len(origins) > 1:
            origins.move_to_end(origin)
        expected = o.top + 1
        lost_before = o.lost
        what = o.track(seq)
        if what is None:
            return None
        kind, _ = what
        stats = self.stats
        if kind == "lost":
            stats["lost"] += o.lost - lost_before
            text = f"{seq - expected} message(s) from origin {origin:016x} lost before #{seq}"
        elif kind == "duplicated":
            stats["duplicated"] += 1
            text = f"message #{seq} from origin {origin:016x} duplicated"
        else:
            stats["reordered"] += 1
            stats["lost"] -= lost_before - o.lost
            text = f"message #{seq} from origin {origin:016x} arrived after #{expected - 1}"
        return (text, seq, expected)


# ---- serving and sending for the command line (``wirearray serve``/``send``) ----

#: Socket types the command line receives and sends with, by pattern name.  "pub"
#: sends on an XPUB socket, which shows subscriptions, so that send() can wait for its
#: subscribers instead of dropping the first arrays.
SERVE_PATTERNS = {"pull": zmq.PULL, "sub": zmq.SUB, "pair": zmq.PAIR}
SEND_PATTERNS = {"push": zmq.PUSH, "pub": zmq.XPUB, "pair": zmq.PAIR}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message :func:`serve` received.

    Attributes:
        arrays: the arrays by name (a single unnamed array under None).
        origin, seq: the message's origin id and sequence number (0, 0: unsequenced).
        seconds: how long its receive took (waiting included).
        stats: the Receiver's ``stats`` after it (a copy).
    """

    arrays: dict[str | None, np.ndarray]
    origin: int
    seq: int
    seconds: float
    stats: dict[str, int]


def _check_endpoint(endpoint: str) -> None:
    if not isinstance(endpoint, str) or not endpoint.startswith(("tcp://", "ipc://")):
        raise UsageError(f"a zmq endpoint is tcp://host:port or ipc:///path, not {endpoint!r}")


def _attach(sock: zmq.Socket, endpoint: str, bind: bool) -> None:
    try:
        if bind:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except zmq.ZMQError as exc:
        raise UsageError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from None


def serve(
    endpoint: str,
    pattern: str = "pull",
    *,
    bind: bool = True,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    hwm_bytes: int | None = None,
    timeout: float | None = None,
    count: int | None = None,
    on_gap: str = "count",
    ready: Callable[[str], None] | None = None,
    refused: Callable[[ProtocolError], None] | None = None,
    context: zmq.Context | None = None,
) -> Iterator[Delivery]:
    """Receive single arrays and messages on a zmq endpoint (``wirearray serve``).

    Args:
        endpoint: ``tcp://host:port`` or ``ipc:///path``; bound (port 0 or ``*``
            allowed), or connected with ``bind=False``.
        pattern: "pull" (from PUSH senders), "sub" (everything from PUB senders) or
            "pair".
        max_frame_bytes, hwm_bytes: the Receiver's limits.
        timeout: seconds to wait for each message (None: no limit); then zmq.Again.
        count: stop after this many messages (None: never).
        on_gap: the Receiver's policy; "count" by default, so that a gap shows in
            ``stats`` and serving goes on.
        ready: called with the endpoint actually bound or connected, before the first
            receive.
        refused: called with each malformed message's ProtocolError, serving going on;
            None: the error ends the iteration.
        context: the zmq context (default: the global instance).

    Yields:
        A :class:`Delivery` per message.  The socket is closed when the generator ends.
    """
    kind = SERVE_PATTERNS.get(pattern)
    if kind is None:
        raise UsageError(f"serve patterns: {', '.join(SERVE_PATTERNS)} (not {pattern!r})")
    _check_endpoint(endpoint)
    sock = (context or zmq.Context.instance()).socket(kind)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        if timeout is not None:
            sock.setsockopt(zmq.RCVTIMEO, max(0, int(timeout * 1000)))
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        rx = Receiver(sock, on_gap=on_gap, max_frame_bytes=max_frame_bytes, hwm_bytes=hwm_bytes)
        _attach(sock, endpoint, bind)
        if ready is not None:
            ready(sock.getsockopt(zmq.LAST_ENDPOINT).decode())
        n = 0
        while count is None or n < count:
            t0 = time.perf_counter()
            try:
                arrays = rx._recv(None, None, True, None)
            except ProtocolError as exc:
                if refused is None or isinstance(exc, SequenceError):
                    raise
                refused(exc)
                continue
            n += 1
            yield Delivery(
                arrays,
                rx.last_origin or 0,
                rx.last_seq or 0,
                time.perf_counter() - t0,
                dict(rx.stats),
            )
    finally:
        sock.close(0)


def send(
    endpoint: str,
    arrays: Iterator[Any] | Sequence[Any],
    pattern: str = "push",
    *,
    bind: bool = False,
    byteorder: str = "network",
    checksum: bool = False,
    timeout: float | None = None,
    subscribers: int = 1,
    progress: Callable[[int], None] | None = None,
    context: zmq.Context | None = None,
) -> int:
    """Send arrays to a zmq endpoint with a :class:`Sender` (``wirearray send``); a
    mapping among ``arrays`` goes as one message (send_many).  Returns how many were
    sent.

    Args:
        endpoint: ``tcp://host:port`` or ``ipc:///path``; connected, or bound with
            ``bind=True``.
        pattern: "push" (to PULL receivers), "pub" (to SUB receivers; first waits
            until ``subscribers`` subscriptions arrived, so that no array is dropped
            for want of a subscriber) or "pair".
        timeout: seconds each array may wait for a peer to take it (a PUSH or PAIR
            socket queues arrays only for connected peers: no peer in time raises
            zmq.Again instead of dropping them at the end), and that the socket
            lingers at the end for queued arrays to leave (None: no limit).  Taken
            means queued: ZeroMQ does not confirm delivery.
        progress: called with each array's (or message's) bytes once it is queued.
        context: a zmq context to use; by default one of its own, terminated before
            returning, which waits (at most ``timeout``) until the queued arrays have
            left.  With a context of the caller's, the caller must keep the process
            alive until then (terminate the context).

    Raises:
        zmq.Again: a peer did not take an array, or did not subscribe, in time.
    """
    kind = SEND_PATTERNS.get(pattern)
    if kind is None:
        raise UsageError(f"send patterns: {', '.join(SEND_PATTERNS)} (not {pattern!r})")
    _check_endpoint(endpoint)
    ctx = context if context is not None else zmq.Context()
    sock = ctx.socket(kind)
    ms = -1 if timeout is None else max(0, int(timeout * 1000))
    try:
        sock.setsockopt(zmq.SNDTIMEO, ms)
        sock.setsockopt(zmq.RCVTIMEO, ms)
        sock.setsockopt(zmq.LINGER, ms)
        if kind == zmq.XPUB:  # every subscription shows, not only a topic's first
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        else:  # queue only to connected peers: no peer is a timeout, not a silent drop
            sock.setsockopt(zmq.IMMEDIATE, 1)
        _attach(sock, endpoint, bind)
        if kind == zmq.XPUB:
            seen = 0
            while seen < subscribers:
                if sock.recv()[:1] == b"\x01":  # a subscription (\x00: one ending)
                    seen += 1
        tx = Sender(sock, byteorder=byteorder, checksum=checksum)
        n = 0
        for a in arrays:
            if isinstance(a, Mapping):
                tx.send_many(a)
                nbytes = sum(np.asarray(v).nbytes for v in a.values())
            else:
                tx.send(a)
                nbytes = np.asarray(a).nbytes
            n += 1
            if progress is not None:
                progress(nbytes)
        return n
    finally:
        # The arrays leave from memory that must outlive libzmq's sending: close, and
        # with a context of our own wait (at most ``timeout``) until they have left.
        sock.close()
        if context is None:
            ctx.term()
