"""The stateful API of wirearray.zmq: Sender and Receiver, sequence numbers per origin.

A Sender numbers its messages per envelope (one origin each: a random 64-bit id and a
count from 0, in the origin part); a Receiver tracks every origin's numbers in a
window (``_Origin``) and reports loss, reordering and duplication -- in ``stats``, and
with ``on_gap="raise"`` as a SequenceError carrying the message that revealed it.  The
rules: docs/FORMAT.md section 11 and the header of ``wirearray.zmq`` ("Gap checking
fits the pattern").
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from ._implementation import get as _get_impl
from ._zmq_io import _await_recv, _build, _is_async, _recv, _send, _sync, _with_envelope
from ._zmq_message import (
    Envelope,
    _check_envelope,
    _default_envelope,
    _encode_array,
    _encode_message,
    _pack_origin,
    _Parts,
    _socket_limits,
    _want_big,
)
from ._zmq_read import _coerce_schema, _Incoming, _Limits
from ._zmq_staging import _StagingPool
from .codec import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_ARRAYS, DEFAULT_MAX_NDIM
from .exceptions import ProtocolError, SequenceError, UsageError

#: Most sequences (origins) a Receiver tracks, and a Sender keeps (one per envelope);
#: beyond it the least recently used is forgotten (a Sender starts a new origin for
#: it, a Receiver treats its next message as a new origin's).
MAX_ORIGINS = 65536
#: Sequence numbers below the highest seen that a Receiver remembers individually, to
#: tell a late message (reordered) from a repeated one (duplicated).
SEQ_WINDOW = 64

_U64 = (1 << 64) - 1


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

    def _send(self, built: _Parts, key: tuple, flags: int) -> Any:
        stream = self._stream(key)
        impl = self._impl

        def origin() -> bytes:
            return _pack_origin(impl, stream.origin, stream.seq)

        def done() -> None:
            stream.seq += 1
            self.stats["sent"] += 1

        return _send(self.sock, self._pool, built, origin, list(key), flags, done)

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
        key = tuple(_check_envelope(envelope))
        pool = self._pool
        built = _build(pool, _encode_array, self._impl, pool, a, name, want, crc, copy, 0)
        return self._send(built, key, flags)

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
        key = tuple(_check_envelope(envelope))
        pool = self._pool
        built = _build(pool, _encode_message, self._impl, pool, mapping, want, crc, copy)
        return self._send(built, key, flags)


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
        return self._recv(
            out, None if schema is None else _coerce_schema(schema, False), copy, False
        )

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
        sock = self.sock
        if _is_async(sock):
            shadow = _sync(sock)
            return _await_recv(sock, lambda f: self._attempt(shadow, f, out, schema, copy, many), 0)
        return self._attempt(sock, 0, out, schema, copy, many)

    def _attempt(
        self, sock: zmq.Socket, f: int, out: Any, schema: Any, copy: bool, many: bool | None
    ) -> Any:
        """One receive on blocking ``sock`` (an asyncio socket's shadow: DONTWAIT in
        ``f``), its sequence number checked."""
        info = _Incoming()
        try:
            result = _recv(
                sock, self._impl, f, self.envelope, out, schema, self._limits, copy, many, info
            )
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
