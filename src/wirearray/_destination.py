"""Where an array frame's payload lands, and how (docs/FORMAT.md sections 4 and 6):
the destination array -- the caller's ``out=`` once it fits, or a new array -- with
the payload's bytes copied or received straight into its memory, swapped in place
to the destination's byte order while still in cache, and checksummed on the way.
An ``out=`` whose memory is not in the frame's order (a strided slice, a transpose,
C order for a Fortran frame) is not received into: the payload arrives in the
decoder's read-ahead and ``_scatter.Scatter`` writes each piece into its place,
converting as it goes (:attr:`Destination.direct` says which).

A :class:`Destination` is made only after the header passed every check and limit,
so nothing is allocated for a frame the decoder refuses.  It knows offsets into the
payload, nothing of regions, read-ahead buffers or framings: the decoder says which
bytes arrived where.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Literal

import numpy as np

from . import _format as F
from ._common import mem_is_big
from ._limits import fit_out
from ._scatter import Scatter
from .exceptions import ChecksumError, FrameTooLargeError, MalformedFrameError

__all__ = ["Destination"]

_BIG = F.FLAG_BIG_ENDIAN
_HOST_BIG = sys.byteorder == "big"


def _swap_unit(dt: np.dtype) -> int:
    """The bytes a swap reverses: the item size (each part's for complex), 0 for one byte."""
    if dt.itemsize == 1:
        return 0
    return dt.itemsize // 2 if dt.kind == "c" else dt.itemsize


#: (code, flags & BIG_ENDIAN) -> the payload's dtype as it travels, and its swap unit
_WIRE = {
    (code, big): (F.WIRE_DTYPES[code, bool(big)], _swap_unit(F.DTYPES[code]))
    for code in F.DTYPES
    for big in (0, _BIG)
}
_UNIT_DTYPES = {n: np.dtype(f"u{n}") for n in (2, 4, 8)}
_NO_UNITS: np.ndarray = np.empty(0, np.uint8)  # no swap (typed, never None)


class Destination:
    """The array one frame's payload lands in.

    Args:
        code, flags, shape: the frame's dtype code, flags and shape, from its
            (checked) header.
        out: the caller's array, or None to allocate one.
        keep_wire_order: allocate in the wire's byte order instead of this host's.
        impl: the implementation module whose ``byteswap`` and ``crc32c`` run.
        count: the header's count field: a datetime64/timedelta64 frame's multiplier.

    Raises:
        BufferMismatchError: ``out`` does not fit (see ``_limits.fit_out``).
        FrameTooLargeError: the array cannot be allocated.

    Attributes:
        array: the destination (for an ``out`` of an ndarray subclass, a plain view
            of its memory: ``_limits.fit_out``).
        given: the caller's ``out``, or None: what :meth:`result` delivers.
        direct: its memory holds the elements in the payload's order, so payload
            bytes may be received straight into it (:meth:`window`); False for an
            ``out`` of another layout, whose payload lands through :meth:`copy`.
        bytes: its memory as a flat uint8 array (payload order; empty unless
            ``direct``).
        unit: the swap unit in bytes (the item size, half of it for complex), 0 when
            the payload needs no swap.
        crc: the CRC32C of the payload so far, None when the frame carries none.
    """

    __slots__ = (
        "_final",
        "_impl",
        "_inplace",
        "_scatter",
        "array",
        "bytes",
        "crc",
        "direct",
        "given",
        "swapped",
        "unit",
        "units",
    )

    _scatter: Scatter | None  # set for a destination that is not ``direct``

    def __init__(
        self,
        code: int,
        flags: int,
        shape: tuple[int, ...],
        out: object,
        keep_wire_order: bool,
        impl: ModuleType,
        count: int | np.dtype = 0,
    ) -> None:
        big = flags & _BIG
        self.given = out if isinstance(out, np.ndarray) else None
        self._final: np.ndarray | None = None
        self._inplace: np.ndarray | None = None
        if code in F.TIME_CODES:  # the dtype carries the multiplier: not in the table
            wire_dt, unit = F.wire_dtype(code, count, bool(big)), 8
        elif code in F.RECORD_CODES:  # S, V: bytes; U: 4-byte code units; records
            wire_dt = F.wire_dtype(code, count, bool(big))
            unit = 4 if code == F.CODE_UNICODE else 0
        else:
            wire_dt, unit = _WIRE[code, big]
        order: Literal["C", "F"] = "F" if flags & F.FLAG_FORTRAN else "C"
        if code == F.CODE_RECORD:
            # Fields of several sizes: the payload lands as it travels, in an array of
            # the wire's dtype, and is converted field by field (the swap plan) into
            # the destination once it is complete and checked (check_trailer).
            final = None
            if out is not None:
                final = fit_out(out, wire_dt, shape)
            elif not keep_wire_order and bool(big) == _HOST_BIG:
                wire_dt = wire_dt.newbyteorder("=")  # the same bytes, the native label
            elif not keep_wire_order:
                final = _allocate(shape, wire_dt.newbyteorder("="), order)
            inplace = None
            if final is not None and final.dtype == wire_dt and _in_order(final, order):
                out, final = final, None  # already the wire's: received into directly
            elif (
                final is not None
                and _in_order(final, order)
                and final.dtype == final.dtype.newbyteorder("=")
            ):
                # every field in this host's order, in the payload's layout: the payload
                # lands in the destination's own memory, labelled with the wire's dtype
                # (same fields, offsets and item size), and is swapped there in place
                # once checked -- no second array, no second pass over new memory
                inplace, out, final = final, final.view(wire_dt), None
            self._inplace = inplace
            self._final = final
            out = out if final is None else None
            keep_wire_order = True
        if out is not None:
            array = fit_out(out, wire_dt, shape)
        else:
            target = wire_dt if keep_wire_order else wire_dt.newbyteorder("=")
            array = _allocate(shape, target, order)
        if unit and mem_is_big(array.dtype) == bool(big):
            unit = 0  # the destination's byte order is the wire's
        self._impl = impl
        self.array = array
        self.direct = out is None or (
            array.flags.f_contiguous if order == "F" else array.flags.c_contiguous
        )
        if self.direct:
            self._scatter = None
            self.bytes = array.ravel(order=order).view(np.uint8)
        else:  # any other layout: each piece written into its place (_scatter.py)
            self._scatter = Scatter(array, order == "F", bool(big), impl)
            self.bytes = _NO_UNITS
            unit = 0  # converted by the scatter, never swapped in place
        self.unit = unit
        self.units = self.bytes.view(_UNIT_DTYPES[unit]) if unit else _NO_UNITS
        self.swapped = 0  # bytes swapped in place so far (whole units)
        self.crc: int | None = 0 if flags & F.FLAG_CHECKSUM else None

    def result(self) -> np.ndarray:
        """The array to deliver once the frame is complete: the caller's ``out``
        itself when one was given (any subclass, filled through :attr:`array`, a view
        of its memory), else the array allocated."""
        return self.array if self.given is None else self.given

    def window(self, start: int, n: int) -> memoryview:
        """The memory of payload bytes ``start:start+n``, to receive into directly
        (report them with :meth:`landed`); only when :attr:`direct`."""
        return self.bytes[start : start + n].data

    def copy(self, chunk: memoryview, start: int) -> None:
        """Land the payload bytes ``chunk``, which arrived at offset ``start`` (right
        after the bytes landed before): copy them, swapping on the way when the copy
        starts on a unit boundary (one pass), else copy then swap in place; into a
        destination of another layout, scatter them, converting on the way."""
        if self.crc is not None:
            self.crc = self._impl.crc32c(chunk, self.crc)
        if self._scatter is not None:
            self._scatter.land(chunk)
            return
        n, unit = len(chunk), self.unit
        if unit and start == self.swapped:
            whole = n - n % unit
            if whole:
                src = np.frombuffer(chunk, dtype=self.units.dtype, count=whole // unit)
                i = start // unit
                self._impl.byteswap(src, out=self.units[i : i + whole // unit])
                self.swapped = start + whole
            if whole < n:
                self.bytes[start + whole : start + n] = chunk[whole:]
            return
        self.bytes[start : start + n] = chunk
        self._swap(start + n)

    def landed(self, start: int, end: int) -> None:
        """Payload bytes ``start:end`` were received into :meth:`window`'s memory."""
        if self.crc is not None:
            self.crc = self._impl.crc32c(self.bytes[start:end], self.crc)
        self._swap(end)

    def _swap(self, end: int) -> None:
        """Swap in place every whole unit that landed before ``end`` since the last swap."""
        unit = self.unit
        if not unit:
            return
        end -= end % unit
        if end > self.swapped:
            view = self.units[self.swapped // unit : end // unit]
            self._impl.byteswap(view, inplace=True)
            self.swapped = end

    def check_trailer(self, tail: bytearray) -> None:
        """Check what follows the payload: the CRC32C trailer (when the frame has one)
        and the zero padding.

        Raises:
            ChecksumError: the payload does not match its CRC32C.
            MalformedFrameError: non-zero padding.
        """
        pad_from = 0
        self._convert()
        if self.crc is not None:
            sent = int.from_bytes(tail[:4], "big")
            if sent != self.crc:
                raise ChecksumError(
                    f"payload checksum mismatch (CRC32C 0x{self.crc:08x}, trailer 0x{sent:08x})"
                )
            pad_from = 4
        if any(tail[pad_from:]):
            raise MalformedFrameError("non-zero bytes in frame padding")

    def _convert(self) -> None:
        """A record payload, complete: converted into its destination."""
        inplace = self._inplace
        if inplace is not None:
            self._inplace = None
            self._impl.byteswap(self.array, inplace=True)  # each field: the wire's -> ours
            self.array = inplace
            return
        final = self._final
        if final is None:
            return
        self._final = None
        self.array = convert_records(self._impl, self.array, final)


def convert_records(impl: ModuleType, src: np.ndarray, dest: np.ndarray) -> np.ndarray:
    """A record payload ``src``, landed in the wire's byte order (every field in one),
    converted into ``dest`` (same shape and item size, any layout): when ``dest``'s
    fields are all in this host's order, by the swap plan (``byteswap``, or a raw copy
    when the orders agree), whose padding is zero; otherwise by numpy's cast, field by
    field (``dest``'s padding is left as it was, as numpy's own casts leave it)."""
    raw = np.dtype((np.void, src.dtype.itemsize))
    if dest.dtype == dest.dtype.newbyteorder("="):
        if bool(src.dtype == src.dtype.newbyteorder(">")) != _HOST_BIG:
            impl.byteswap(src, out=dest)  # each field reversed: the wire's order -> ours
        else:
            np.copyto(dest.view(raw), src.view(raw))
    else:
        np.copyto(dest, src, casting="equiv")
    return dest


def _in_order(a: np.ndarray, order: str) -> bool:
    return bool(a.flags.f_contiguous if order == "F" else a.flags.c_contiguous)


def _allocate(shape: tuple[int, ...], dt: np.dtype, order: Literal["C", "F"]) -> np.ndarray:
    try:
        return np.empty(shape, dtype=dt, order=order)
    except (ValueError, MemoryError) as exc:
        raise FrameTooLargeError(f"cannot allocate array of shape {shape}: {exc}") from exc


class Discard(Destination):
    """Where the payload of a refused frame goes: nowhere.  A frame refused for a limit
    whose length is known (and within ``max_frame_bytes``) is read past so that the
    stream stays usable (docs/FORMAT.md section 7); its bytes pass through the
    decoder's read-ahead, never a buffer sized by the frame, and its checksum and
    padding are still checked, so a damaged frame breaks the stream as any other.

    Args:
        flags: the refused frame's flags (whether it carries a CRC32C).
        impl: the implementation module whose ``crc32c`` runs.
    """

    __slots__ = ()

    def __init__(self, flags: int, impl: ModuleType) -> None:
        self._impl = impl
        self._final = None
        self._inplace = None
        self.given = None
        self.array = None  # type: ignore[assignment]
        self.bytes = _NO_UNITS
        self.unit = 0
        self.units = _NO_UNITS
        self.swapped = 0
        self.crc = 0 if flags & F.FLAG_CHECKSUM else None

    def copy(self, chunk: memoryview, start: int) -> None:
        """Checksum the payload bytes ``chunk`` and drop them."""
        if self.crc is not None:
            self.crc = self._impl.crc32c(chunk, self.crc)
