"""A payload landed in an array of any layout: the path for an ``out=`` that is not
contiguous in the frame's memory order (a strided slice, a transpose, a negative
stride, C order for a Fortran frame or the reverse).

A payload holds the elements in the frame's order (C, or Fortran for a Fortran
frame: docs/FORMAT.md section 4).  When the destination's memory holds them in the
same order, the decoder receives straight into it (``_destination.Destination``);
otherwise the bytes arrive in a staging buffer -- the decoder's read-ahead, at most
READAHEAD_BYTES, or the part a ZeroMQ message already holds -- and :class:`Scatter`
writes each piece into its place in the destination, converting the byte order in
the same pass.  Nothing of the payload's size is ever allocated.

How a piece is written: the elements ``k0 .. k1`` (frame order) of an array of shape
``(s0, ..., sn-1)`` walked in C order form at most ``2n - 1`` boxes -- a partial row
at each end, whole blocks between -- and each box is one call of the implementation's
strided kernel (``byteswap(src, out=box)``, the one behind ``hton(out=)``) or, with
no swap, ``numpy.copyto``.  A Fortran frame is walked as the transpose of the
destination, whose C order is the array's Fortran order.  A piece may end inside an
element: its bytes wait in a carry of one item (at most 16 bytes) until the rest
arrives.

Why the read-ahead is the staging buffer, not a buffer of its own: every decoder has
it already, bounded (READAHEAD_BYTES) and sized by what arrives, and a read into it
may also bring the next frame's header, which a buffer for payload bytes alone would
have to hand back.  Why the walk is in Python over the implementation's kernels rather
than one compiled call: a piece is up to READAHEAD_BYTES, against which a few calls per
piece are small, and the compiled core and the fallback then share one walk, so they
cannot disagree on where an element goes.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ._common import mem_is_big

__all__ = ["Scatter", "overlaps"]


def overlaps(a: np.ndarray) -> bool:
    """Whether two elements of ``a`` may share memory (a zero stride, or strides that
    interleave): such an array cannot be a destination, as each element must receive
    its own value.  Decided conservatively from the strides: the axes sorted by
    stride must nest, each step at least as long as everything inside it."""
    if a.size <= 1 or a.flags.c_contiguous or a.flags.f_contiguous:
        return False
    extent = a.itemsize
    for stride, n in sorted((abs(s), n) for s, n in zip(a.strides, a.shape, strict=True) if n > 1):
        if stride < extent:
            return True
        extent += stride * (n - 1)
    return False


class Scatter:
    """Writes a payload, arriving in pieces of any size and in order, into ``array``.

    Args:
        array: the destination, of the frame's shape and item size, not contiguous
            in the payload's order -- so it has at least one dimension and two
            elements (numpy flags smaller arrays contiguous in both orders).
        fortran: the payload is in Fortran order.
        wire_big: the payload's items are big-endian.
        impl: the implementation whose ``byteswap`` runs (compiled or fallback).
    """

    __slots__ = (
        "_carried",
        "_carry",
        "_dtype",
        "_impl",
        "_inner",
        "_itemsize",
        "_next",
        "_shape",
        "_swap",
        "_walked",
    )

    def __init__(self, array: np.ndarray, fortran: bool, wire_big: bool, impl: ModuleType) -> None:
        walked = array.T if fortran else array  # its C order is the payload's order
        self._walked = walked
        self._shape = walked.shape
        inner = [1] * walked.ndim  # elements under one step of each axis
        for d in range(walked.ndim - 2, -1, -1):
            inner[d] = inner[d + 1] * walked.shape[d + 1]
        self._inner = inner
        self._dtype = array.dtype
        self._itemsize = array.dtype.itemsize
        self._swap = self._itemsize > 1 and mem_is_big(array.dtype) != wire_big
        self._impl = impl
        self._carry = bytearray(self._itemsize)
        self._carried = 0  # bytes of a partial element in the carry
        self._next = 0  # the next element to write, in payload order

    def land(self, piece: memoryview) -> None:
        """Write the payload bytes ``piece``, which follow the ones landed before."""
        n, size, pos = len(piece), self._itemsize, 0
        if self._carried:  # complete the element a previous piece began
            pos = min(size - self._carried, n)
            self._carry[self._carried : self._carried + pos] = piece[:pos]
            self._carried += pos
            if self._carried < size:
                return
            self._put(memoryview(self._carry), 1)
            self._carried = 0
        whole = (n - pos) // size
        if whole:
            self._put(piece[pos : pos + whole * size], whole)
            pos += whole * size
        if pos < n:  # the start of an element the next piece completes
            self._carry[: n - pos] = piece[pos:]
            self._carried = n - pos

    def _put(self, src: memoryview, count: int) -> None:
        """Write ``count`` whole elements from ``src`` at the next position."""
        values = np.frombuffer(src, dtype=self._dtype, count=count)
        start = self._next
        self._next = start + count
        walked = self._walked
        offset = 0
        for index, n in self._boxes((), 0, start, start + count):
            box = walked[index]
            self._write(values[offset : offset + n].reshape(box.shape), box)
            offset += n

    def _write(self, src: np.ndarray, box: np.ndarray) -> None:
        if self._swap:
            self._impl.byteswap(src, out=box)
        else:
            np.copyto(box, src, casting="no")

    def _boxes(
        self, prefix: tuple[int, ...], d: int, start: int, stop: int
    ) -> list[tuple[tuple[int | slice, ...], int]]:
        """The boxes covering elements ``start .. stop`` (C order, counted within the
        sub-array ``prefix`` indexes, whose first axis is ``d``): ``(index, count)``
        pairs, at most two per axis and one more."""
        inner = self._inner[d]
        lo, r0 = divmod(start, inner)
        hi, r1 = divmod(stop, inner)
        if lo == hi:  # within one step of axis d (never on the last axis: inner 1)
            return self._boxes((*prefix, lo), d + 1, r0, r1)
        boxes: list[tuple[tuple[int | slice, ...], int]] = []
        if r0:  # the tail of step lo
            boxes += self._boxes((*prefix, lo), d + 1, r0, inner)
            lo += 1
        if hi > lo:  # whole steps
            boxes.append(((*prefix, slice(lo, hi)), (hi - lo) * inner))
        if r1:  # the head of step hi
            boxes += self._boxes((*prefix, hi), d + 1, 0, r1)
        return boxes
