"""What a decoder checks before it commits to a record, written as plain functions:
a header's limits and representability, a message's rules, a schema, an ``out=``
array, and what an early end of input means.  Every check here runs on numbers from
the header alone, before anything is allocated or written for the record
(docs/FORMAT.md sections 4-8, docs/SECURITY.md)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import _format as F
from ._events import Schema
from ._records import swap_plan
from ._scatter import overlaps
from .exceptions import (
    BufferMismatchError,
    FrameTooLargeError,
    MalformedDescriptorError,
    MalformedFrameError,
    SchemaMismatchError,
    TruncatedStreamError,
    UnsupportedDtypeError,
)

_INTP_MAX = int(np.iinfo(np.intp).max)


def check_array(
    code: int,
    shape: tuple[int, ...],
    length: int,
    name: bytes,
    max_ndim: int,
    max_frame_bytes: int,
    count: int | np.dtype = 0,
) -> str | None:
    """Check an array header against the limits and this host; return its name.
    ``count`` is the header's count field as parse_header gives it (a record's dtype).

    Raises:
        FrameTooLargeError: more than ``max_ndim`` dimensions or ``max_frame_bytes``.
        MalformedFrameError: a shape numpy cannot represent here, a name not UTF-8.
        MalformedDescriptorError: a record this host cannot convert (a subarray of
            records whose swap plan would be over ``_records.MAX_RUNS`` runs).
    """
    if len(shape) > max_ndim:
        raise FrameTooLargeError(f"{len(shape)} dimensions exceed max_ndim={max_ndim}")
    if length > max_frame_bytes:
        raise FrameTooLargeError(
            f"frame of {length} bytes exceeds max_frame_bytes={max_frame_bytes}"
        )
    nonzero = F.item_size(code, count)
    if isinstance(count, np.dtype):  # a record: its swap plan, made once, bounded
        try:
            swap_plan(count)
        except UnsupportedDtypeError as exc:
            raise MalformedDescriptorError(f"record descriptor: {exc}") from None
    for n in shape:
        if n:
            nonzero *= n
    if nonzero > _INTP_MAX:
        raise MalformedFrameError(f"shape {shape} cannot be represented on this host")
    try:
        return name.decode("utf-8") if name else None
    except UnicodeDecodeError:
        raise MalformedFrameError("array name is not valid UTF-8") from None


def check_member(
    text: str | None,
    length: int,
    arrived: Mapping[str, object],
    payloads: int,
    max_frame_bytes: int,
) -> None:
    """Check an array of a message: named, not repeated, and the message's payloads
    (``payloads`` bytes so far) within ``max_frame_bytes``."""
    if text is None:
        raise MalformedFrameError("an array inside a message has no name")
    if text in arrived:
        raise MalformedFrameError(f"array name {text!r} repeated in a message")
    if payloads + length > max_frame_bytes:
        raise FrameTooLargeError(f"message payloads exceed max_frame_bytes={max_frame_bytes}")


def check_schema(
    schema: Schema | dict[str, Schema | None] | None,
    in_message: bool,
    text: str | None,
    code: int,
    shape: tuple[int, ...],
    count: int | np.dtype = 0,
) -> None:
    """Check an array header against what the receiver expects: one schema, or (in a
    message) a dict of them by name.  ``count`` is the header's count field (a
    datetime64/timedelta64 multiplier, 0 for other dtypes).

    Raises:
        SchemaMismatchError: it does not fit.
    """
    if isinstance(schema, dict):
        if not in_message:
            raise SchemaMismatchError("expected a message, got a single array")
        one = schema.get(text) if text is not None else None
        if one is None and text not in schema:
            raise SchemaMismatchError(f"unexpected array {text!r} in the message")
    else:
        one = schema
    if one is not None:
        why = one.mismatch(code, shape, count)
        if why:
            raise SchemaMismatchError(f"array {text!r}: got {why}" if text else f"array: got {why}")


def fit_out(out: object, wire_dt: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` as the destination of a frame of ``wire_dt`` (any byte order) and
    ``shape``: ``out`` itself, or for an ndarray subclass a plain ndarray view of its
    memory.  Any memory layout fits: one contiguous in the frame's order is
    received into directly, any other is filled through the read-ahead
    (``_destination.py``).

    A subclass receives the values only, as ``numpy.copyto(out, a)`` writes them:
    the payload lands through the base-class view, so no subclass method
    (``numpy.matrix``'s ``ravel``/``reshape`` that stay 2-d, a ``MaskedArray``'s
    mask handling) takes part, and the receive paths deliver ``out`` itself, class,
    attributes and mask kept.

    Raises:
        BufferMismatchError: not an ndarray, another dtype or shape, read-only, or
            with elements that share memory (a zero stride, interleaved strides).
    """
    if not isinstance(out, np.ndarray):
        raise BufferMismatchError(f"out must be an ndarray, not {type(out).__name__}")
    if out.dtype.newbyteorder("=") != wire_dt.newbyteorder("="):
        raise BufferMismatchError(f"out has dtype {out.dtype}; the frame carries {wire_dt}")
    if out.shape != tuple(shape):
        raise BufferMismatchError(f"out has shape {out.shape}; the frame carries {shape}")
    if not out.flags.writeable:
        raise BufferMismatchError("out is read-only")
    if overlaps(out):
        raise BufferMismatchError(
            f"out has elements that share memory (strides {out.strides}): each element "
            "needs its own"
        )
    return out if type(out) is np.ndarray else out.view(np.ndarray)


def truncated(where: str, got: int, total: int | None, in_message: bool) -> TruncatedStreamError:
    """The error for an input that ended ``where`` ("inside a frame", ...) after ``got``
    of ``total`` record bytes (None: the header was not complete)."""
    if got == 0 and not in_message:
        return TruncatedStreamError(
            "the stream ended without an end-of-stream frame", received=0, expected=None
        )
    if total is None:
        return TruncatedStreamError(
            f"the stream ended {where}: {got} bytes of a frame header arrived", received=got
        )
    return TruncatedStreamError(
        f"the stream ended {where}: {got} of {total} frame bytes arrived",
        received=got,
        expected=total,
    )
