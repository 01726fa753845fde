"""The codec's sizes and default limits, each with the reason (or the measurement)
behind it.  ``wirearray.codec`` re-exports them; the encoder and decoder read them
from here when they run."""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGE_ARRAYS",
    "DEFAULT_MAX_NDIM",
    "DIRECT_MIN_BYTES",
    "INITIAL_READAHEAD_BYTES",
    "ONE_COPY_BYTES",
    "READAHEAD_BYTES",
    "SMALL_FRAME_BYTES",
    "SWAP_CHUNK_BYTES",
]

#: Default limit on one frame's payload (and on a whole message): 1 GiB.
DEFAULT_MAX_FRAME_BYTES = 1 << 30


def _numpy_max_ndim() -> int:
    """The most dimensions this host's numpy gives an array (numpy 1.x: 32, numpy 2:
    64), found by making empty one-element arrays: numpy exposes no public constant
    for it, and a probe cannot disagree with the numpy that will hold the arrays.
    Bounded by the format's 64 (docs/FORMAT.md section 2)."""
    lo, hi = 1, 64
    while lo < hi:  # bisection: six probes of a few microseconds each
        mid = (lo + hi + 1) // 2
        try:
            np.empty((1,) * mid, dtype=np.uint8)
        except ValueError:
            hi = mid - 1
        else:
            lo = mid
    return lo


#: Default limit on dimensions: as many as this host's numpy supports (numpy 2: 64,
#: the format's maximum; numpy 1.x: 32), read once at import.  A frame with more
#: could not become an array here anyway; the default refuses only those.
DEFAULT_MAX_NDIM = _numpy_max_ndim()
#: Default limit on the arrays of one message.
DEFAULT_MAX_MESSAGE_ARRAYS = 1024
#: Largest size of the decoder's read-ahead buffer for headers and small payloads.
READAHEAD_BYTES = 256 << 10
#: Its first size: the read-ahead starts small and doubles each time a read fills it
#: (or a frame in progress needs more), up to READAHEAD_BYTES.  A connection pays for
#: the bytes its peer actually sends -- an idle or one-byte connection holds 16 KiB,
#: not 256 KiB (docs/SECURITY.md) -- while a stream of small frames reaches the full
#: size after a few reads.
INITIAL_READAHEAD_BYTES = 16 << 10
#: A payload with at least this much left is received straight into its array.
DIRECT_MIN_BYTES = 64 << 10
#: When the payload must be swapped after it lands, land it in chunks of at most this,
#: so that each chunk is swapped while it is still in cache.
SWAP_CHUNK_BYTES = 1 << 20
#: Largest size of the encoder's staging buffer (converted payload chunks, one system
#: call each).  Large, because on Linux loopback TCP the kernel's cost per byte falls
#: with the size of each send call: network-order 16 MiB arrays sent in 256 KiB calls
#: ran at 0.67-0.72x a raw sendall, in 4 MiB calls at 0.96-1.0x (sender alone, medians;
#: ``python bench/loopback_calls.py calls``, docs/PERFORMANCE.md).  Allocated when
#: first needed and only as large as the arrays sent need.
DEFAULT_CHUNK_BYTES = 4 << 20
#: Payloads up to this size that need converting are converted whole into one new
#: array instead (cheaper than the chunked machinery).
ONE_COPY_BYTES = 256 << 10
#: Arrays up to this many payload bytes are framed whole into one buffer by the
#: compiled core (Encoder.encode_small): for a small frame one copy (which is the
#: byte swap itself in network order) is cheaper than gathering header, payload and
#: trailer in Python; the frame still leaves in one system call.  At 64 KiB arrays
#: this raised wirearray from 0.77-0.78x to 0.86-0.94x of raw sendall/recv_into in
#: side-by-side runs against a 16 KiB limit (multiprocessing.connection's;
#: ``python -m wirearray bench stream --sizes 2K,8K,32K`` with either value); above
#: it the payload is sent from the array itself.
SMALL_FRAME_BYTES = 64 << 10
