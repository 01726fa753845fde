"""Staging buffers of wirearray.zmq, and the buffers libzmq still sends from.

A payload that must be converted (network order on a little-endian host, a
non-contiguous view) is converted once into a staging buffer that libzmq then sends
from without a copy.  ``_StagingPool`` reuses such buffers as soon as the send's
zmq.MessageTracker says libzmq is done with them, so a stream of large arrays costs no
allocation and no page faults per message; ``_InFlight`` keeps every buffer handed to
libzmq without a copy alive at interpreter exit, while libzmq may still send from it.
The rules: the ``wirearray.zmq`` header ("Staging buffers are reused", "Exiting with
messages in flight is safe").
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from typing import Any

import numpy as np

#: Idle staging memory a pool keeps for reuse (at least one buffer, whatever its size).
KEEP_STAGING_BYTES = 64 << 20


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
        with self._lock:
            pending = [obj for obj, tracker in self._entries if not tracker.done]
            self._entries.clear()
        if not pending:
            return
        try:  # imported only when needed: a Python may be built without ctypes
            import ctypes
        except ImportError:  # best effort: a reference the interpreter tears down last
            _KEPT.extend(pending)
            return
        for obj in pending:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


_KEPT: list[Any] = []
_IN_FLIGHT = _InFlight()
atexit.register(_IN_FLIGHT.keep_at_exit)
