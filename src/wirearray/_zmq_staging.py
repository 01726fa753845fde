"""Staging buffers of wirearray.zmq, and the buffers libzmq still sends from.

A payload that must be converted (network order on a little-endian host, a
non-contiguous view) is converted once into a staging buffer that libzmq then sends
from without a copy.  ``_StagingPool`` reuses such buffers as soon as libzmq is done
with them, so a stream of large arrays costs no allocation and no page faults per
message; ``_InFlight`` keeps every buffer handed to libzmq without a copy alive at
interpreter exit, while libzmq may still send from it.  The rules: the
``wirearray.zmq`` header ("Staging buffers are reused", "Exiting with messages in
flight is safe").

How "libzmq is done" is known without a MessageTracker: every zero-copy part is sent
from a numpy view made for that one message (``buf[:n]``), and only pyzmq holds it
once the send returned.  pyzmq keeps the object it was given alive until libzmq
releases the message (its garbage collector holds a reference until libzmq's free
callback reports the message gone; a part it copied instead -- under
``copy_threshold`` -- it never holds), so the view dies exactly then, and a weak
reference to it says so.  A tracker does the same through a ``threading.Event`` set
by pyzmq's garbage-collector thread: a lock and a condition created per message, and
GIL time taken from whichever thread runs next.  The tracker a ``copy=False`` send
returns (the message refers to the caller's array) watches the same views
(``_ReleaseTracker``); pyzmq's own trackers serve only where an object outlives its
last reference until a garbage collection (not CPython).
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from collections import deque
from typing import Any

import numpy as np
import zmq

#: Idle staging memory a pool keeps for reuse at least (and one buffer, whatever its
#: size); more while the last burst of sends needed more (``_StagingPool``).
KEEP_STAGING_BYTES = 64 << 20

#: Weak references to the views of one message that libzmq sends from.
Refs = tuple[Any, ...]


def _released(refs: Refs) -> bool:
    """Whether pyzmq dropped every view of ``refs`` (libzmq is done with them)."""
    for r in refs:
        if r() is not None:
            return False
    return True


class _ReleaseTracker(zmq.MessageTracker):
    """A MessageTracker that is done once pyzmq dropped every view in ``refs`` (libzmq
    released the message parts sent from them): the same moment a tracker made by
    ``send(track=True)`` is set, without creating a ``threading.Event`` per message.
    ``wait`` polls, sleeping at most a millisecond in between."""

    def __init__(self, refs: Refs) -> None:
        super().__init__()
        self._refs = refs

    @property
    def done(self) -> bool:
        return _released(self._refs)

    def wait(self, timeout: float = -1) -> None:
        """Return once done; raise zmq.NotDone after ``timeout`` seconds (< 0: never)."""
        deadline = None if timeout is False or timeout < 0 else time.monotonic() + timeout
        delay = 1e-5
        while not self.done:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise zmq.NotDone()
                delay = min(delay, left)
            time.sleep(delay)
            delay = min(2 * delay, 1e-3)


#: Whether an object dies as soon as its last reference goes (CPython): elsewhere a
#: view pyzmq dropped lives until a garbage collection, so trackers come from pyzmq.
REFCOUNTED = sys.implementation.name == "cpython"


class _StagingPool:
    """Staging buffers for converted payloads, reused once libzmq is done with them.

    ``take(n)`` returns a buffer of at least n bytes that nothing else uses;
    ``give(buf, refs)`` hands it back with weak references to the views the message
    was sent from (None: libzmq copied it, free at once).  A buffer is reused only
    when all of them are gone.  Buffers in flight wait in send order (at most
    MAX_IN_FLIGHT are followed; zmq keeps the others alive and frees them itself).

    Idle buffers are kept up to the larger of KEEP_STAGING_BYTES and what the last
    burst had in flight at once: a burst of sends that zmq queues needs one buffer per
    queued message, and the next burst of the same size then reuses them all --
    writing into memory already mapped instead of page-faulting fresh allocations,
    which cost more than the conversion itself.  A burst ends when nothing is in
    flight any more; one that needed less halves what is kept beyond that (never
    below the bytes it needed), so memory a single large burst needed is given back
    over the next few bursts.  So a stream settles on the buffers its pipeline needs
    and reuses them without new allocations.  Thread-safe (the stateless functions
    share one pool).
    """

    MAX_IN_FLIGHT = 1024
    #: In-flight buffers looked at, besides the oldest, before allocating a new one.
    SCAN = 16

    def __init__(self) -> None:
        self._idle: list[np.ndarray] = []
        self._idle_bytes = 0
        self._busy: deque[tuple[np.ndarray, Refs]] = deque()
        self._busy_bytes = 0
        self._burst_peak = 0  # most bytes in flight at once in the current burst
        self._keep = 0  # idle bytes kept beyond KEEP_STAGING_BYTES
        self._lock = threading.Lock()
        self.allocations = 0  # buffers allocated so far (tests, benchmarks)

    def _free(self, buf: np.ndarray) -> None:
        self._busy_bytes -= buf.size
        self._idle.append(buf)
        self._idle_bytes += buf.size

    def _reap(self, scan: bool) -> None:
        """Buffers libzmq is done with back to the idle list: the oldest in flight, and
        with ``scan`` the SCAN after them (messages to several peers finish out of
        order; looked at only before allocating)."""
        busy = self._busy
        if not busy:
            return
        while busy and _released(busy[0][1]):  # released roughly in send order
            self._free(busy.popleft()[0])
        if scan:
            for i in range(min(self.SCAN, len(busy)) - 1, 0, -1):
                if _released(busy[i][1]):
                    buf = busy[i][0]
                    del busy[i]
                    self._free(buf)
        if not busy:  # the burst is over: keep what it needed, for the next one
            peak = self._burst_peak
            self._keep = peak if peak >= self._keep else max(peak, self._keep // 2)
            self._burst_peak = 0
            self._trim()

    def _trim(self) -> None:
        idle = self._idle
        keep = max(KEEP_STAGING_BYTES, self._keep, self._burst_peak)
        while len(idle) > 1 and self._idle_bytes > keep:
            self._idle_bytes -= idle.pop(0).size  # the least recently returned

    def _pick(self, nbytes: int) -> np.ndarray | None:
        """The most recently freed idle buffer that fits without waste (still in
        cache), else the smallest that fits, taken off the idle list."""
        idle = self._idle
        best = -1
        for i in range(len(idle) - 1, -1, -1):
            size = idle[i].size
            if nbytes <= size <= 2 * nbytes + (64 << 10):
                best = i
                break
            if size >= nbytes and (best < 0 or size < idle[best].size):
                best = i
        if best < 0:
            return None
        buf = idle.pop(best)
        self._idle_bytes -= buf.size
        return buf

    def take(self, nbytes: int) -> np.ndarray:
        with self._lock:
            self._reap(False)
            buf = self._pick(nbytes)
            if buf is None and self._busy:
                self._reap(True)
                buf = self._pick(nbytes)
            if buf is not None:
                return buf
            self.allocations += 1
        # rounded up, so that arrays of slightly different sizes share buffers
        size = -(-nbytes // (64 << 10)) * (64 << 10)
        return np.empty(size, dtype=np.uint8)

    def give(self, buf: np.ndarray, refs: Refs | None) -> None:
        with self._lock:
            self._busy_bytes += buf.size
            if refs is None or _released(refs):
                self._free(buf)
            else:
                busy = self._busy
                busy.append((buf, refs))
                if self._busy_bytes > self._burst_peak:
                    self._burst_peak = self._busy_bytes
                if len(busy) > self.MAX_IN_FLIGHT:
                    self._busy_bytes -= busy.popleft()[0].size  # zmq frees it
            self._trim()


_POOL = _StagingPool()


class _InFlight:
    """Every buffer handed to libzmq without a copy, until libzmq is done with it.

    While the process runs, pyzmq's garbage collector keeps such buffers alive until
    libzmq has sent them.  At exit it drops them (its atexit handler clears its
    references) while libzmq's I/O thread may still be sending -- reading freed memory,
    which aborts the process.  So the memory of every zero-copy part (``keep``: the
    staging buffer, or the caller's array the view was made from) is held here until
    its views are released, and at exit whatever is still held is kept alive for good
    (one reference leaked each): the memory stays valid until the process is gone,
    whatever order the interpreter tears down in.
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[Any, Refs]] = deque()
        self._lock = threading.Lock()
        self._compact_at = 64

    def add(self, keep: Any, refs: Refs) -> None:
        with self._lock:
            entries = self._entries
            while entries and _released(entries[0][1]):
                entries.popleft()
            entries.append((keep, refs))
            if len(entries) >= self._compact_at:  # an old message still queued
                live = [e for e in entries if not _released(e[1])]
                entries.clear()
                entries.extend(live)
                self._compact_at = max(64, 2 * len(live))

    def keep_at_exit(self) -> None:
        with self._lock:
            # all of them, released or not: whether pyzmq's own atexit handler already
            # dropped its references cannot be told apart from libzmq being done
            pending = [keep for keep, _refs in self._entries]
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
