"""The read-ahead: the buffer a decoder's ``recv_into`` reads headers and small frames
into, and how large it is -- 16 KiB at first, doubled each time a read fills it, up to
READAHEAD_BYTES: sized by what reads bring, never by what a peer's header claims
(docs/FORMAT.md section 7).  A large payload skips it: the decoder hands out a window
of the destination array instead (``Decoder.get_buffer``) -- unless that array's
memory is not in the frame's order, when the read-ahead is the staging buffer its
payload passes through (``_scatter.py``).
"""

from __future__ import annotations

from . import _format as F
from ._sizes import INITIAL_READAHEAD_BYTES, READAHEAD_BYTES

__all__ = ["ReadAhead"]

_NO_VIEW = memoryview(b"")
_LARGEST = max(READAHEAD_BYTES, F.MAX_HEADER)


class ReadAhead:
    """One decoder's read-ahead buffer (allocated by the first :meth:`get`).

    ``len()`` is its size in bytes.  Views it gave out stay valid until a later
    :meth:`get` replaces it, which happens only when none is referenced any more (the
    decoder consumed what was read).
    """

    __slots__ = ("_buffer", "_view")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._view = _NO_VIEW

    def __len__(self) -> int:
        return len(self._view)

    def get(self, grow: bool, rest: int, header_only: bool) -> memoryview:
        """The buffer for the next read.

        Args:
            grow: the last read filled it: double it.
            rest: bytes of the frame in progress still to come (0 at a frame
                boundary): room for them, up to the largest size.
            header_only: just a frame's first 64 header bytes (the last frame was
                large, so most likely this one is too: its payload is better received
                into its array than here and copied over).
        """
        size = len(self._view)
        want = max(size * 2 if grow else INITIAL_READAHEAD_BYTES, rest)
        want = min(max(want, INITIAL_READAHEAD_BYTES), _LARGEST)
        if want > size:  # nothing refers to the old buffer here
            self._view = _NO_VIEW
            self._buffer = bytearray(want)
            self._view = memoryview(self._buffer)
        return self._view[: F.MIN_HEADER] if header_only else self._view

    def filled(self, nbytes: int) -> memoryview:
        """The first ``nbytes`` of the buffer, which a read just filled."""
        return self._view[:nbytes]
