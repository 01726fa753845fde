"""What the decoder returns: the events of a stream (docs/FORMAT.md sections 4-10).

Frozen, slotted dataclasses, in the manner of h11's events: an event is a value, made
once by the decoder and never changed.  :data:`NEED_DATA` is the one member of an enum,
so that type checkers narrow ``ev is NEED_DATA`` (``Literal[NeedData.NEED_DATA]``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from . import _format as F
from .exceptions import ErrorCode, UsageError

__all__ = [
    "NEED_DATA",
    "Ack",
    "Array",
    "EndOfStream",
    "ErrorReport",
    "Message",
    "NeedData",
    "Schema",
    "control_event",
]


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`: an enum of one member, so that
    ``Literal[NeedData.NEED_DATA]`` names it and ``ev is NEED_DATA`` narrows a
    ``Event | NeedData`` to the event types."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`Decoder.next_event` when it needs more bytes.
NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class Array:
    """One array frame.

    Attributes:
        array: the array, in this host's byte order unless the decoder was asked to
            keep the wire's (``keep_wire_order=True``) or it was received into an
            ``out=`` array (then it *is* ``out``, or a view of it with ``out``'s byte
            order label).  Its shape, dtype and memory order (C or Fortran) are the
            frame's; a zero-length array has no payload bytes.  It belongs to the
            caller: never a view of the decoder's buffers.
        name: the frame's name (up to 255 bytes of UTF-8), or None.
    """

    array: np.ndarray
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A multi-array message, delivered only once every array of it has arrived.

    Attributes:
        arrays: the arrays by name, in the order they were sent (each as in
            :class:`Array`).  An empty message is an empty dict.
    """

    arrays: dict[str, np.ndarray]


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The peer ended the stream cleanly (an END frame; for ``.npy`` records, the
    input ended at a record boundary).

    Attributes:
        seq: that frame's sequence number, the count its ACK confirms
            (docs/FORMAT.md section 10); 0 where no END frame was read.
    """

    seq: int = 0


@dataclass(frozen=True, slots=True)
class Ack:
    """An ACK frame (docs/FORMAT.md section 10): the peer consumed this side's stream
    up to the END (or ACK) frame whose sequence number is ``count``, and its own
    stream ends here.

    Attributes:
        count: frames of this side's stream the peer's application received.
        seq: the ACK frame's own sequence number (the length of the peer's stream).
    """

    count: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """An ERROR frame (docs/FORMAT.md section 10): the peer refused the stream or ended
    the channel; nothing more follows from it.

    Attributes:
        code: an :class:`~wirearray.ErrorCode`, or a plain int for a code this
            version does not know.
        reason: a short text (up to 255 bytes of UTF-8; undecodable bytes replaced).
    """

    code: int
    reason: str


def control_event(kind: int, count: int, name: bytes, seq: int) -> EndOfStream | Ack | ErrorReport:
    """The event of a control frame, from its (checked) header's kind, count, name and
    sequence number: END, ACK or ERROR (docs/FORMAT.md sections 2 and 10)."""
    if kind == F.KIND_END:
        return EndOfStream(seq)
    if kind == F.KIND_ACK:
        return Ack(count, seq)
    try:
        code: int = ErrorCode(count)
    except ValueError:  # a code this version does not know: reported as a number
        code = count
    return ErrorReport(code, name.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class Schema:
    """What a receiver expects: a dtype and a shape, each possibly a wildcard.

    Checked on a frame's header, before its payload is read or anything is allocated
    for it; a frame that does not fit raises :class:`~wirearray.SchemaMismatchError`.

    Args:
        dtype: a supported numpy dtype (anything ``numpy.dtype`` accepts; its byte
            order is ignored), or None for any.
        shape: a tuple whose entries are lengths or None (any length), or None for any
            shape; its length fixes ndim (``()`` is a 0-d array).

    Raises:
        UnsupportedDtypeError: ``dtype`` cannot travel.
        UsageError: a shape entry that is neither a length >= 0 nor None.
    """

    dtype: np.dtype | None = None
    shape: tuple[int | None, ...] | None = None

    def __init__(
        self, dtype: npt.DTypeLike | None = None, shape: tuple[int | None, ...] | None = None
    ) -> None:
        if dtype is not None:
            dt = np.dtype(dtype)
            F.check_wire_dtype(dt)
            dtype = dt.newbyteorder("=")
        if shape is not None:
            shape = tuple(shape)
            for n in shape:
                if n is not None and (not isinstance(n, int) or n < 0):
                    raise UsageError(f"schema shape entries are lengths >= 0 or None, not {n!r}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "shape", shape)

    @classmethod
    def coerce(cls, value: object) -> Schema | None:
        """A Schema from a Schema, a ``(dtype, shape)`` tuple, or None (returned as is).

        Raises:
            UsageError: anything else.
        """
        if value is None or isinstance(value, Schema):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise UsageError(f"a schema is a Schema or a (dtype, shape) tuple, not {value!r}")

    def mismatch(self, code: int, shape: tuple[int, ...], count: int | np.dtype = 0) -> str | None:
        """Why a frame of wire dtype ``code`` (docs/FORMAT.md section 3) and ``shape``
        does not fit, or None if it does.  ``count`` is the frame's count field as
        ``parse_header`` gives it: the multiplier of a datetime64/timedelta64 code, the
        length of an S/U/V code, the dtype of a record (section 2), 0 for the others."""
        got = F.native_dtype(code, count)
        if self.dtype is not None and self.dtype != got:
            return f"dtype {got} (expected {self.dtype})"
        if self.shape is not None:
            if len(self.shape) != len(shape) or any(
                want is not None and want != n for want, n in zip(self.shape, shape, strict=True)
            ):
                return f"shape {shape} (expected {self.shape})"
        return None
