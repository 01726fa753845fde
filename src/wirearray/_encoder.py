"""The encoder: arrays to frames (see ``wirearray.codec`` for the design, and
docs/FORMAT.md for the bytes).

Per array, the framing (``_framing.py``) writes the header and says what follows the
payload; the payload itself -- sent from the array's own memory when it is already
the wire's byte order and layout, else converted through one reusable staging buffer
-- is the same for every framing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from . import _format as F
from ._common import HOST_IS_LITTLE, array_to_send, check_dtype, mem_is_big, message_array
from ._framing import WIRE, Framing
from ._implementation import get as _get_impl
from ._sizes import DEFAULT_CHUNK_BYTES, ONE_COPY_BYTES, SMALL_FRAME_BYTES
from .exceptions import UnsupportedDtypeError, UsageError

if TYPE_CHECKING:
    from types import ModuleType

    from ._types import Buffers, ByteOrder, Implementation

__all__ = ["Encoder"]

_CODES: dict[np.dtype, int] = {}  # dtype -> wire code (0: unsupported), memoised
#: The wire code of bool (docs/FORMAT.md section 3): its bytes travel as 0 or 1.
BOOL_CODE = 1
_ZEROS = bytes(F.ALIGN)
#: S and V: bytes, never swapped (their BIG_ENDIAN flag carries no meaning)
_BYTE_CODES = (F.CODE_BYTES, F.CODE_RAW)


def byteorder_is_big(byteorder: str) -> bool | None:
    """True for "network", None for "native" (the array's own order)."""
    if byteorder == "network":
        return True
    if byteorder == "native":
        return None  # the array's own memory order
    raise UsageError(f"byteorder must be 'network' or 'native', not {byteorder!r}")


_byteorder_is_big = byteorder_is_big


def array_code(a: np.ndarray) -> int:
    """The wire dtype code of an array about to be framed (docs/FORMAT.md section 3).

    Raises:
        UnsupportedDtypeError: the dtype cannot travel.
        UsageError: more dimensions than the format carries.
    """
    dt = a.dtype
    code = _CODES.get(dt)
    if code is None:
        code = F.dtype_code(dt)
        if code in F.RECORD_CODES:  # the format's word on records and lengths
            code = F.check_wire_dtype(dt)
        _CODES[dt] = code
    if not code:
        check_dtype(dt)
        raise UnsupportedDtypeError(f"wirearray cannot send dtype {dt!r}")
    if a.ndim > F.MAX_NDIM:
        raise UsageError(f"{a.ndim} dimensions; the wire format carries at most 64")
    return code


def name_bytes(name: str | None) -> bytes:
    """An array name as the header carries it: 1 to 255 bytes of UTF-8, or b"" for none.

    Any character may be in a name, NUL included; a lone surrogate has no UTF-8 form
    (docs/FORMAT.md section 2).

    Raises:
        UsageError: not a str, a str with a lone surrogate, or empty or too long once
            encoded.
    """
    if name is None:
        return b""
    if not isinstance(name, str):
        raise UsageError(f"array names are str, not {type(name).__name__}")
    try:
        b = name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"array name {name!r} has no UTF-8 form (a lone surrogate)") from None
    if not 0 < len(b) <= F.MAX_NAME:
        raise UsageError("array names are 1 to 255 bytes of UTF-8")
    return b


def record_to_wire(a: np.ndarray, wire_big: bool, impl: ModuleType) -> np.ndarray:
    """A record array's payload: every field in the wire's byte order, padding zero
    (docs/FORMAT.md section 3), from the implementation's swap plan (its ``hton``,
    then ``byteswap`` for a little-endian wire).  A new array, in ``a``'s layout."""
    w = impl.hton(a)
    if not wire_big:  # the same bytes reversed per field: little-endian, padding still 0
        w = impl.byteswap(w).view(w.dtype.newbyteorder("<"))
    return np.asarray(w)


def _flat_bytes(a: np.ndarray, fortran: bool) -> np.ndarray:
    """The memory of an array contiguous in its order (Fortran when ``fortran``) as
    flat bytes, in that order: a view, never a copy."""
    return a.reshape(-1, order="F" if fortran else "C").view(np.uint8)


def _c_pieces(a: np.ndarray, max_items: int) -> Iterator[np.ndarray]:
    """Views of ``a`` whose concatenation in C order is ``a`` in C order, each of at
    most ``max_items`` elements (unless a single element is already more)."""
    if a.size <= max_items or a.ndim == 0:
        yield a
        return
    row = a[0].size
    if row <= max_items:
        step = max(1, max_items // max(row, 1))
        for i in range(0, a.shape[0], step):
            yield a[i : i + step]
    else:
        for i in range(a.shape[0]):
            yield from _c_pieces(a[i], max_items)


class Encoder:
    """Turns arrays into frames (docs/FORMAT.md), one frame per call, sans-I/O.

    Args:
        byteorder: "network" (payload big-endian; the default) or "native" (the
            array's own memory order, converted by nobody on a same-order receiver).
        checksum: append a CRC32C trailer (docs/FORMAT.md section 7) to every array
            payload.
        chunk_bytes: largest size in bytes of the reusable staging buffer for
            converted payloads (each chunk leaves in one system call; at least 4096,
            rounded down to a multiple of 64; see DEFAULT_CHUNK_BYTES).
        implementation: "cython" or "python" to pick the core explicitly (tests,
            benchmarks); None for the package's choice (``wirearray.IMPLEMENTATION``).
        framing: how records are cut (``wirearray.npy.NPY`` for .npy records); the
            wire format by default.  A framing without options ignores ``byteorder``
            and ``checksum`` here and per call: its records travel in the array's own
            byte order, unchecked.

    Raises:
        UsageError: a bad ``byteorder`` or ``chunk_bytes``.
        ValueError: an unknown ``implementation``.

    One encoder numbers the frames of one stream: use it from one thread at a time.
    """

    def __init__(
        self,
        *,
        byteorder: ByteOrder = "network",
        checksum: bool = False,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        implementation: Implementation | None = None,
        framing: Framing = WIRE,
    ) -> None:
        _byteorder_is_big(byteorder)
        if chunk_bytes < 4096:
            raise UsageError("chunk_bytes must be at least 4096")
        self.framing = framing
        self.byteorder: ByteOrder = byteorder if framing.options else "native"
        self.checksum = bool(checksum) and framing.options
        self._impl = _get_impl(implementation)
        self._chunk_bytes = chunk_bytes - chunk_bytes % 64
        self._staging: np.ndarray | None = None
        self._seq = 0
        self._small = getattr(self._impl, "encode_small", None) if framing.whole_frames else None

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFFFFFF
        return seq

    def frame(
        self,
        array: npt.ArrayLike,
        *,
        name: str | None = None,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
    ) -> Iterator[Buffers]:
        """Encode one array frame as successive lists of buffers to send in order.

        Each yielded list is meant for one ``sendmsg``/``writelines`` call and stays
        valid only until the iterator is advanced (the staging buffer is reused).  The
        header is validated and built, and the frame numbered, before the first yield,
        so a bad argument raises before anything is sent.  A payload already in the
        wire's byte order and contiguous is yielded as a byte view of the array itself:
        do not modify the array before its buffers are sent.

        Args:
            array: anything ``numpy.asarray`` accepts, of a supported dtype (bool,
                int8..int64, uint8..uint64, float16/32/64, complex64/128,
                datetime64/timedelta64 with a unit, ``S``/``U``/``V``, and records of
                these within docs/FORMAT.md section 3's limits: every field travels in
                the frame's byte order, padding bytes as zeros), any shape
                (up to 64 dimensions; zero-length arrays travel as a header alone) and
                any layout (non-contiguous arrays are gathered in C order).
            name: the frame's name, 1 to 255 bytes of UTF-8 (docs/FORMAT.md section 4).
            byteorder, checksum: override the encoder's for this frame.

        Raises:
            UnsupportedDtypeError: the dtype cannot travel (objects, extended
                precision, a generic datetime64, a record with titles, fields out of
                offset order or over the descriptor limits).
            UsageError: bad name or byteorder, more dimensions than the format allows,
                or a mapping / list of arrays (several arrays go in one message:
                :meth:`message`).
        """
        a = array_to_send(array)
        code = array_code(a)
        name_b = self._name_bytes(name)
        if not self.framing.options:
            byteorder, checksum = None, None
        want_big = _byteorder_is_big(byteorder if byteorder is not None else self.byteorder)
        mem_big = mem_is_big(a.dtype)
        if code == F.CODE_RECORD:  # fields of any byte orders: "native" is the host's
            mem_big = not HOST_IS_LITTLE
        wire_big = mem_big if want_big is None else want_big
        swap = a.dtype.itemsize > 1 and wire_big != mem_big and code not in _BYTE_CODES
        record_big: bool | None = None  # a record converted chunk by chunk: the wire's order
        if code == F.CODE_RECORD:  # converted field by field, padding zeroed, always
            one_copy = min(self._chunk_bytes, ONE_COPY_BYTES)
            if a.nbytes > one_copy and (a.flags.c_contiguous or a.flags.f_contiguous):
                record_big, swap = wire_big, True  # through the staging buffer, in chunks
            else:
                a = record_to_wire(a, wire_big, self._impl)
                swap = False
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1
        checksum = self.checksum if checksum is None else bool(checksum)
        flags = (
            (F.FLAG_BIG_ENDIAN if wire_big else 0)
            | (F.FLAG_FORTRAN if fortran else 0)
            | (F.FLAG_CHECKSUM if checksum else 0)
        )
        header = self.framing.array_header(a, code, flags, name_b, self._seq, self._impl)
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._frame_parts(a, header, swap, fortran, checksum, code == BOOL_CODE, record_big)

    def _frame_parts(
        self,
        a: np.ndarray,
        header: bytes,
        swap: bool,
        fortran: bool,
        checksum: bool,
        boolean: bool = False,
        record_big: bool | None = None,
    ) -> Iterator[Buffers]:
        impl = self._impl
        pad = self.framing.tail_length(a.nbytes, checksum) - (F.TRAILER if checksum else 0)
        crc = 0
        one_copy = min(self._chunk_bytes, ONE_COPY_BYTES)
        # bool: bytes other than 0 and 1 travel as 1 (docs/FORMAT.md section 3).  Memory
        # read in place is scanned first and rewritten only when such a byte is there;
        # memory gathered through a copy is normalised in the copy, while in cache.
        normalize = boolean and (a.flags.c_contiguous or fortran)
        if normalize:
            normalize = not impl.bool_canonical(_flat_bytes(a, fortran))
        if a.nbytes <= one_copy and (swap or normalize or not (a.flags.c_contiguous or fortran)):
            # No larger than the staging buffer: one converted copy is cheaper than the
            # chunked machinery (and no larger than what staging would hold anyway).
            if normalize:
                out = np.empty(a.shape, a.dtype, order="F" if fortran else "C")
                impl.bool_normalize(_flat_bytes(a, fortran), _flat_bytes(out, fortran))
                a = out
            a = impl.byteswap(a) if swap else a
            if not (a.flags.c_contiguous or fortran):
                a = np.ascontiguousarray(a)
                if boolean:
                    flat = _flat_bytes(a, False)
                    impl.bool_normalize(flat, flat)
            swap = normalize = False
        contiguous = a.flags.c_contiguous or a.flags.f_contiguous
        if not swap and not normalize and contiguous:
            payload = a.reshape(-1, order="F" if fortran else "C").view(np.uint8)
            if checksum:
                crc = impl.crc32c(payload)
            parts: Buffers = [header]
            if payload.size:
                parts.append(payload)
            tail = self._tail(crc, checksum, pad)
            yield [*parts, tail] if tail else parts
            return
        # Converted (swapped and/or gathered) in chunks through the staging buffer.
        need = min(self._chunk_bytes, -(-a.nbytes // 4096) * 4096)
        if self._staging is None or self._staging.size < need:
            self._staging = None  # the old one goes first
            self._staging = np.empty(need, dtype=np.uint8)
        staging = self._staging
        item = a.dtype.itemsize
        max_items = max(1, staging.size // item)
        if item > staging.size:  # cannot happen for supported dtypes
            raise UsageError("chunk_bytes smaller than one item")
        pending: Buffers = [header]
        if contiguous:  # swap (or normalise) only: flat slices, no per-chunk views
            flat = a.reshape(-1, order="F" if fortran else "C")
            wire_dt = a.dtype if record_big is None else a.dtype.newbyteorder(">")
            typed = staging[: max_items * item].view(wire_dt)
            for k in range(0, flat.size, max_items):
                n = min(max_items, flat.size - k)
                if normalize:
                    impl.bool_normalize(flat[k : k + n].view(np.uint8), staging[:n])
                elif record_big is not None:  # field by field, padding zeroed (swap plan)
                    impl.hton(flat[k : k + n], out=typed[:n])
                    if not record_big:
                        impl.byteswap(typed[:n], inplace=True)
                else:
                    impl.byteswap(flat[k : k + n], out=typed[:n])
                chunk = staging[: n * item]
                if checksum:
                    crc = impl.crc32c(chunk, crc)
                pending.append(chunk)
                if k + n < flat.size:
                    yield pending
                    pending = []
            tail = self._tail(crc, checksum, pad)
            if tail:
                pending.append(tail)
            yield pending
            return
        source = a
        used = 0
        for piece in _c_pieces(source, max_items):
            nbytes = piece.size * item
            if used + nbytes > staging.size:
                chunk = staging[:used]
                if checksum:
                    crc = impl.crc32c(chunk, crc)
                pending.append(chunk)
                yield pending
                pending, used = [], 0
            dst = staging[used : used + nbytes].view(a.dtype).reshape(piece.shape)
            if swap:
                impl.byteswap(piece, out=dst)
            else:
                np.copyto(dst, piece)
                if boolean:  # the copy, in cache: bytes other than 0 and 1 become 1
                    chunk = staging[used : used + nbytes]
                    impl.bool_normalize(chunk, chunk)
            used += nbytes
        if used:
            chunk = staging[:used]
            if checksum:
                crc = impl.crc32c(chunk, crc)
            pending.append(chunk)
        tail = self._tail(crc, checksum, pad)
        if tail:
            pending.append(tail)
        yield pending

    @staticmethod
    def _tail(crc: int, checksum: bool, pad: int) -> bytes:
        if checksum:
            return crc.to_bytes(4, "big") + _ZEROS[:pad]
        return _ZEROS[:pad]

    _name_bytes = staticmethod(name_bytes)

    def message(
        self,
        arrays: Mapping[str, npt.ArrayLike],
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
    ) -> Iterator[Buffers]:
        """Encode a multi-array message (names -> arrays) as lists of buffers.

        The receiver delivers it as one :class:`Message`, or not at all
        (docs/FORMAT.md section 8).  Every array and name is validated before the first
        yield; the buffers are as in :meth:`frame`.  An empty mapping is a message of
        no arrays.

        Raises:
            UsageError: not a mapping, a bad name (1 to 255 bytes of UTF-8) or option,
                or a framing without messages (.npy).
            UnsupportedDtypeError: an array's dtype cannot travel.
        """
        self._require("messages", "carries single arrays; use send()")
        if not isinstance(arrays, Mapping):
            raise UsageError("a message is a mapping of names to arrays")
        if len(arrays) > 0xFFFFFFFF:
            raise UsageError("too many arrays for one message")
        if byteorder is not None:  # before the head takes a sequence number
            _byteorder_is_big(byteorder)
        items = [(k, message_array(v)) for k, v in arrays.items()]
        for k, v in items:
            self._name_bytes(k)
            array_code(v)
        head = self._impl.pack_header(
            F.KIND_MESSAGE, 0, 0, (), 0, b"", len(items), self._next_seq()
        )
        frames = [self.frame(v, name=k, byteorder=byteorder, checksum=checksum) for k, v in items]
        return self._message_parts(head, frames)

    @staticmethod
    def _message_parts(head: bytes, frames: list[Iterator[Buffers]]) -> Iterator[Buffers]:
        carry: Buffers = [head]
        for it in frames:
            for parts in it:
                if carry:
                    parts = carry + parts
                    carry = []
                yield parts
        if carry:
            yield carry

    def encode_small(self, array: npt.ArrayLike, limit: int = SMALL_FRAME_BYTES) -> bytes | None:
        """The whole frame of ``array`` (no name, the encoder's byte order and checksum)
        as one bytes object, or None when the compiled fast path does not apply (no
        compiled core, another framing, not a contiguous ndarray, a dtype it does not
        carry, more than ``limit`` payload bytes): use :meth:`frame` then.  Equal byte
        for byte to what :meth:`frame` yields; a frame is only numbered when one is
        returned."""
        small = self._small
        if small is None:
            return None
        big = self.byteorder == "network"
        frame: bytes | None = small(array, 1 if big else -1, self.checksum, self._seq, limit)
        if frame is not None:
            self._seq = (self._seq + 1) & 0xFFFFFFFF
        return frame

    def _require(self, capability: str, what: str) -> None:
        if not getattr(self.framing, capability):
            raise UsageError(f"format={self.framing.name!r} {what}")

    def end(self) -> bytes:
        """The end-of-stream frame (resets the frame sequence for a next stream).

        Raises:
            UsageError: a framing without control frames (.npy ends with the
                connection's half-close).
        """
        self._require("control_frames", "has no end-of-stream frame")
        head: bytes = self._impl.pack_header(F.KIND_END, 0, 0, (), 0, b"", 0, self._next_seq())
        self._seq = 0
        return head

    @property
    def seq(self) -> int:
        """The sequence number the next frame will carry (docs/FORMAT.md section 5)."""
        return self._seq

    def ack(self, count: int) -> bytes:
        """An ACK frame confirming the peer's stream up to its END (or ACK) frame of
        sequence number ``count``; it also ends this side's stream (the sequence
        restarts at 0).  docs/FORMAT.md section 10.

        Raises:
            UsageError: a framing without control frames (.npy).
        """
        self._require("control_frames", "has no ack frame")
        head: bytes = self._impl.pack_header(
            F.KIND_ACK, 0, 0, (), 0, b"", count & 0xFFFFFFFF, self._next_seq()
        )
        self._seq = 0
        return head

    def error(self, code: int, reason: str) -> bytes:
        """An ERROR frame: ``code`` (an :class:`~wirearray.ErrorCode`) and ``reason``,
        cut to 255 bytes of UTF-8 on a character boundary.  docs/FORMAT.md section 10.

        Raises:
            UsageError: a framing without control frames (.npy channels report with
                an encoder of the wire format's own).
        """
        self._require("control_frames", "has no error frame")
        raw = reason.encode("utf-8", "replace")
        if len(raw) > F.MAX_NAME:
            raw = raw[: F.MAX_NAME].decode("utf-8", "ignore").encode("utf-8")
        frame: bytes = self._impl.pack_header(
            F.KIND_ERROR, 0, 0, (), 0, raw, int(code) & 0xFFFFFFFF, self._next_seq()
        )
        return frame

    def encode(
        self,
        array: npt.ArrayLike,
        *,
        name: str | None = None,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
    ) -> bytes:
        """One frame as a single bytes object (copies; convenient for files and tests).
        Arguments and errors as :meth:`frame`."""
        frames = self.frame(array, name=name, byteorder=byteorder, checksum=checksum)
        return _join(frames)

    def encode_message(
        self,
        arrays: Mapping[str, npt.ArrayLike],
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
    ) -> bytes:
        """One message as a single bytes object.  Arguments and errors as
        :meth:`message`."""
        return _join(self.message(arrays, byteorder=byteorder, checksum=checksum))


def _join(frames: Iterator[Buffers]) -> bytes:
    return b"".join(bytes(p) for parts in frames for p in parts)
