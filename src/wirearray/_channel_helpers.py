"""What the channel core (``_connection.py``) and the loops over it share besides a
channel's state: the defaults of a channel, the codec pair of a ``format=``, the
buffers a frame leaves in, the result a receive returns for an event, and the ERROR
frame code that reports a failure (docs/FORMAT.md section 10).  Plain functions and
constants: nothing here holds state or touches a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import numpy as np

from ._common import byte_view
from ._framing import WIRE, Framing
from ._limits import fit_out
from ._types import Buffer, Buffers, ByteOrder
from .codec import Array, Decoder, Encoder, Message
from .exceptions import (
    ChecksumError,
    ErrorCode,
    FrameTooLargeError,
    ProtocolError,
    SchemaMismatchError,
    UsageError,
)

__all__ = [
    "CONTROL_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_HANDSHAKES",
    "DEFAULT_SEND_BUFFER",
    "array_of",
    "busy_frame",
    "check_send_buffer",
    "deliver_into",
    "error_code",
    "framing_named",
    "hold_frames",
    "item_of",
    "make_codec",
    "message_of",
    "views",
]

#: Default for Channel(send_buffer=): what send(flush=False) holds before sending.
DEFAULT_SEND_BUFFER: Final = 64 << 10
#: Default bound of close()'s wait for the peer's confirmation, in seconds (when the
#: channel has no timeout of its own).
DEFAULT_CLOSE_TIMEOUT: Final = 10.0

#: Longest wait to hand the peer a control frame (ACK, ERROR) on the way out, seconds.
CONTROL_TIMEOUT: Final = 2.0
#: Default bound on connections in their handshake at once (Listener, aio.serve).
DEFAULT_MAX_HANDSHAKES: Final = 128


# ---- a channel's codec ----


def framing_named(format: str) -> Framing:
    """The framing of a channel's ``format=`` ("wire" or "npy")."""
    if format == "wire":
        return WIRE
    if format == "npy":
        from .npy import NPY  # loaded on first use

        return NPY
    raise UsageError(f"format must be 'wire' or 'npy', not {format!r}")


def make_codec(
    format: str,
    byteorder: ByteOrder,
    checksum: bool,
    max_frame_bytes: int,
    max_ndim: int,
    max_message_arrays: int,
    keep_wire_order: bool,
) -> tuple[Encoder, Decoder]:
    """The encoder and decoder of a channel's framing ("wire" or "npy")."""
    framing = framing_named(format)
    dec = Decoder(
        max_frame_bytes=max_frame_bytes,
        max_ndim=max_ndim,
        max_message_arrays=max_message_arrays,
        keep_wire_order=keep_wire_order,
        framing=framing,
    )
    return Encoder(byteorder=byteorder, checksum=checksum, framing=framing), dec


def check_send_buffer(send_buffer: int) -> int:
    """``send_buffer`` when it is a valid Channel(send_buffer=) (>= 0)."""
    if send_buffer < 0:
        raise UsageError("send_buffer must be >= 0")
    return send_buffer


# ---- the buffers a frame leaves in ----


def views(parts: Iterable[Buffer]) -> list[memoryview]:
    """Flat byte views of a frame's buffers, empty ones dropped (for sendmsg)."""
    out = []
    for p in parts:
        mv = byte_view(p)
        if len(mv):
            out.append(mv)
    return out


def hold_frames(buf: bytearray, frames: Iterator[Buffers]) -> None:
    """Append every buffer of an Encoder.frame()/message() iterator to a send buffer
    (copied, so the array may change afterwards)."""
    for parts in frames:
        for v in views(parts):
            buf += v


# ---- what a receive returns ----


def array_of(ev: Array | Message) -> np.ndarray:
    """recv()'s result: the array of an Array event; a message is a schema mismatch."""
    if isinstance(ev, Array):
        return ev.array
    raise SchemaMismatchError(
        f"expected a single array, received a message of {len(ev.arrays)} arrays (use recv_many())"
    )


def message_of(ev: Array | Message) -> dict[str, np.ndarray]:
    """recv_many()'s result: the arrays of a Message event; an array is a mismatch."""
    if isinstance(ev, Message):
        return ev.arrays
    raise SchemaMismatchError("expected a message, received a single array (use recv())")


def item_of(ev: Array | Message) -> np.ndarray | dict[str, np.ndarray]:
    """What iterating over a channel yields: an array, or a dict for a message."""
    return ev.array if isinstance(ev, Array) else ev.arrays


def deliver_into(out: object, array: np.ndarray) -> np.ndarray:
    """An array decoded before the caller named ``out=`` (it arrived while a send
    failed), copied into ``out``, which must fit as it would have had to fit the frame
    (Decoder.expect: dtype in any byte order, shape, writable, any layout).

    Raises:
        BufferMismatchError: ``out`` does not fit.
    """
    dest = fit_out(out, array.dtype, array.shape)
    np.copyto(dest, array)
    return out  # type: ignore[return-value]  # fit_out proved it an ndarray


# ---- reporting a failure to the peer ----


def error_code(exc: BaseException) -> ErrorCode:
    """The ERROR frame code that reports ``exc`` to the peer."""
    if isinstance(exc, FrameTooLargeError):
        return ErrorCode.TOO_LARGE
    if isinstance(exc, ChecksumError):
        return ErrorCode.CHECKSUM
    if isinstance(exc, SchemaMismatchError):
        return ErrorCode.SCHEMA
    if isinstance(exc, ProtocolError):
        return ErrorCode.PROTOCOL
    if isinstance(exc, TimeoutError):
        return ErrorCode.TIMEOUT
    return ErrorCode.APPLICATION


def busy_frame(limit: int) -> bytes:
    """The ERROR frame a server at ``max_connections`` answers a new connection with."""
    return Encoder().error(ErrorCode.BUSY, f"server busy: {limit} connections open")
