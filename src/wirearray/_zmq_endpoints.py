"""wirearray.zmq on an endpoint: ``serve()`` and ``send()``, each with a socket of its own.

What ``wirearray serve --zmq`` and ``wirearray send --zmq`` run: a Receiver or a Sender
on a socket these functions create, bind or connect, and close, for callers that have
an endpoint (``tcp://host:port``, ``ipc:///path``) rather than a socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq

from ._zmq_stateful import Receiver, Sender
from .codec import DEFAULT_MAX_FRAME_BYTES
from .exceptions import ProtocolError, SequenceError, UsageError

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
