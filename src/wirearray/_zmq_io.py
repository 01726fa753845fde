"""Whole wirearray.zmq messages on a socket, blocking or ``zmq.asyncio``.

``_send`` builds a message and sends it (parts from staging buffers without a copy,
the buffers back to their pool once pyzmq drops them; a MessageTracker only for parts
sent from the caller's array), ``_recv`` reads one and discards
the rest of a message that failed, so that the next receive starts at a message
boundary.  On a ``zmq.asyncio`` socket the work runs on its blocking shadow socket
with DONTWAIT, and ``_await_send``/``_await_recv`` wait for POLLOUT/POLLIN in between
(pyzmq's own convention: the functions then return awaitables).  Parts after the first
are read without waiting: zmq delivers all parts of a message at once.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from ._zmq_message import BORROWED, COPIED, _Parts
from ._zmq_read import _Incoming, _Limits, _read_message, _Reader
from ._zmq_staging import _IN_FLIGHT, REFCOUNTED, _ReleaseTracker, _StagingPool
from .exceptions import UsageError

# plain ints: pyzmq's constants are enum.IntFlag members, whose | and & run Python code
_MORE = int(zmq.SNDMORE)
_DONTWAIT = int(zmq.DONTWAIT)


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


def _check_flags(flags: int) -> int:
    flags = int(flags)
    if flags & ~_DONTWAIT:
        raise UsageError("flags may only be zmq.DONTWAIT: a send is always a whole message")
    return flags


def _send_parts(sock: zmq.Socket, envelope: list, origin: bytes, built: _Parts, flags: int):
    """Send one whole message; returns the MessageTracker of the parts that refer to
    the caller's memory, or None.  Weak references to the views of the parts sent
    without a copy go to ``built.refs`` as they are sent.  Raises zmq.Again (DONTWAIT,
    or SNDTIMEO) with nothing sent."""
    send = sock.send
    more = flags | _MORE
    for p in envelope:
        send(p, more)
        more = _MORE
    send(origin, more)
    parts = built.parts
    last = len(parts) - 1
    trackers = []
    borrowed = []
    refs = built.refs
    for i, (buf, mode) in enumerate(parts):
        f = _MORE if i < last else 0
        if mode == COPIED:
            send(buf, f)
            continue
        if mode == BORROWED and not REFCOUNTED:
            trackers.append(send(buf, f, copy=False, track=True))
        else:  # released once pyzmq drops this view (_zmq_staging)
            send(buf, f, copy=False)
        ref = weakref.ref(buf)
        refs.append(ref)
        if mode == BORROWED:  # the caller waits on a tracker before changing the array
            borrowed.append(ref)
        _IN_FLIGHT.add(buf.base, (ref,))
    if borrowed and REFCOUNTED:
        trackers.append(_ReleaseTracker(tuple(borrowed)))
    if not trackers:
        return None
    return trackers[0] if len(trackers) == 1 else zmq.MessageTracker(*trackers)


def _release(pool: _StagingPool, built: _Parts) -> None:
    """Staging buffers back to the pool: free at once if libzmq copied them (or
    nothing was sent from them), else once pyzmq dropped the message's views."""
    refs = tuple(built.refs)
    for buf, zero_copy in built.staging:
        pool.give(buf, refs if zero_copy else None)


def _build(pool: _StagingPool, encode: Callable[..., None], *args: Any) -> _Parts:
    """The parts of a message, ``encode(parts, *args)``; on an error the staging
    buffers it took go back to ``pool``."""
    built = _Parts()
    try:
        encode(built, *args)
    except BaseException:
        _release(pool, built)
        raise
    return built


def _send(
    sock: Any,
    pool: _StagingPool,
    built: _Parts,
    origin: Callable[[], bytes],
    envelope: list,
    flags: int,
    done: Callable[[], None] | None = None,
) -> Any:
    """Send the message ``built`` (envelope checked) on ``sock``, blocking or asyncio;
    ``origin()`` makes its origin part when it is sent, ``done()`` runs once the
    socket took it.  Returns a MessageTracker or None (the public send's result)."""
    try:
        flags = _check_flags(flags)
        if _is_async(sock):
            return _send_async(sock, pool, built, origin, envelope, flags, done)
        tracker = _send_parts(sock, envelope, origin(), built, flags)
    except BaseException:
        _release(pool, built)
        raise
    _release(pool, built)
    if done is not None:
        done()
    return tracker


async def _send_async(
    sock: Any,
    pool: _StagingPool,
    built: _Parts,
    origin: Callable[[], bytes],
    envelope: list,
    flags: int,
    done: Callable[[], None] | None,
) -> Any:
    shadow = sock._shadow_sock

    def attempt(f: int) -> Any:
        return _send_parts(shadow, envelope, origin(), built, f)

    try:
        tracker = await _await_send(sock, attempt, flags)
    finally:
        _release(pool, built)
    if done is not None:
        done()
    return tracker


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


def _with_envelope(n_env: int, info: _Incoming, result: Any) -> Any:
    return (info.envelope, result) if n_env else result
