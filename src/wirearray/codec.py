"""Sans-I/O frame codec: arrays to frames and a byte stream back to arrays.

The wire format is specified in docs/FORMAT.md.  This module never touches a socket,
a selector or an event loop (in the manner of h11): transports move bytes, the codec
says which bytes to move.

Encoding -- :class:`Encoder` turns an array into a short list of buffers per
``sendmsg``/``writelines`` call.  When the array's memory already is the wire's byte
order and layout, the payload buffer *is* the array (never copied).  Otherwise (network
order on a little-endian host, or a non-contiguous view) the payload comes out in
chunks converted into one reusable staging buffer of at most 4 MiB, so a sender never
holds a converted copy of a large array.  Checksums go in a trailer, so the checksum
of a converted payload is computed in the same single pass.

Whole small frames -- :meth:`Encoder.encode_small` and :meth:`Decoder.next_array` --
are one call into the compiled core each (header, conversion, checksum, validation,
allocation): a stream of small arrays is bounded by per-frame overhead, and the general
path costs several microseconds of Python per frame.  They are accelerators of the
general path, not a second codec: each gives exactly what the general path gives or
declines (None), having changed nothing, and the general path then decides and reports
(tests/test_fastpath.py holds them to that, for every bit flip and cut of a frame).

Decoding -- :class:`Decoder` is fed either way:

* ``buf = dec.get_buffer(); n = sock.recv_into(buf); dec.advance(n)`` -- for a large
  payload ``buf`` is a window of the destination array itself, so payload bytes are
  written once, by the kernel, where they belong; the byte swap (when the wire order
  differs from the wanted one) then runs in place on each chunk right after it
  arrives, while it is still in cache.  Small frames are read many at a time into a
  read-ahead buffer and copied out (one ``recv_into`` for dozens of small frames is
  much faster than one per header and payload).  A destination whose memory is not
  in the frame's order (a strided slice, a transpose, the other memory order) is
  filled through the read-ahead too, whatever the payload's size: each piece is
  written into place and converted in one pass (``_scatter.py``), so memory stays
  bounded by the read-ahead (READAHEAD_BYTES).  A loop that swaps and checksums
  as it receives (the compiled core's, which wirearray's channels use on plain
  sockets) asks :meth:`Decoder.payload_target` for the whole rest of a large payload
  instead and reports with :meth:`Decoder.payload_landed`.
* ``dec.receive_data(data)`` -- bytes from elsewhere; the decoder keeps a reference to
  ``data`` until it is consumed (do not modify it before ``next_event()`` returns
  ``NEED_DATA``) and converts straight from it into the destination.

``next_event()`` returns :class:`Array`, :class:`Message`, :class:`EndOfStream` or
``NEED_DATA``.  Every header is validated, and every configured limit checked, before
anything is allocated for its frame.  Errors: :class:`~wirearray.ProtocolError`
subclasses for anything the bytes do wrong (after which the decoder refuses further
use with :class:`~wirearray.StreamBrokenError` -- except for a lone frame refused for
``max_ndim`` whose length is known, which is read past: docs/FORMAT.md section 7),
:class:`~wirearray.UsageError`
subclasses for the caller's mistakes (an ``out=`` that does not fit is reported before
any payload byte is consumed, and the decoder stays usable).  Any other exception
escaping the decoder on any input is a bug.

Framings -- how records are cut is a :class:`Framing` object the encoder and decoder
are given (``framing=``): :data:`WIRE`, the default, or ``wirearray.npy.NPY`` for .npy
records.  It reads and checks headers and says what follows a payload; the payload
machinery above is the same for both.

Lifetimes: arrays in events belong to the caller and are never views of the
decoder's buffers; an array received into ``out=`` *is* (a view of) ``out``, and is
overwritten if ``out`` is passed again.  Buffers yielded by :meth:`Encoder.frame` are
valid until the iterator is advanced (the staging buffer is reused); buffers from
:meth:`Decoder.get_buffer` until the next ``advance``/``next_event`` call.
"""

from __future__ import annotations

import numpy as np

from ._common import byte_view
from ._decoder import Decoder
from ._encoder import Encoder
from ._events import NEED_DATA, Ack, Array, EndOfStream, ErrorReport, Message, NeedData, Schema
from ._framing import WIRE, Framing, WireFraming
from ._sizes import (
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_MESSAGE_ARRAYS,
    DEFAULT_MAX_NDIM,
    DIRECT_MIN_BYTES,
    INITIAL_READAHEAD_BYTES,
    ONE_COPY_BYTES,
    READAHEAD_BYTES,
    SMALL_FRAME_BYTES,
    SWAP_CHUNK_BYTES,
)
from ._types import (
    Address,
    Buffer,
    Buffers,
    ByteOrder,
    Event,
    Format,
    Header,
    Implementation,
    MessageOut,
    NextEvent,
    SchemaLike,
    SchemaSpec,
)
from .exceptions import MalformedFrameError, TruncatedStreamError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_FRAME_BYTES",
    "DEFAULT_MAX_MESSAGE_ARRAYS",
    "DEFAULT_MAX_NDIM",
    "DIRECT_MIN_BYTES",
    "INITIAL_READAHEAD_BYTES",
    "NEED_DATA",
    "ONE_COPY_BYTES",
    "READAHEAD_BYTES",
    "SMALL_FRAME_BYTES",
    "SWAP_CHUNK_BYTES",
    "WIRE",
    "Ack",
    "Address",
    "Array",
    "Buffer",
    "Buffers",
    "ByteOrder",
    "Decoder",
    "Encoder",
    "EndOfStream",
    "ErrorReport",
    "Event",
    "Format",
    "Framing",
    "Header",
    "Implementation",
    "Message",
    "MessageOut",
    "NeedData",
    "NextEvent",
    "Schema",
    "SchemaLike",
    "SchemaSpec",
    "WireFraming",
    "decode_frame",
]


def decode_frame(
    buf: bytes | bytearray | memoryview | np.ndarray,
    *,
    out: np.ndarray | None = None,
    schema: SchemaLike | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    keep_wire_order: bool = False,
    implementation: Implementation | None = None,
) -> tuple[Array, int]:
    """Decode one complete ARRAY frame held in ``buf`` (a datagram, a record in a file).

    Sequence numbers are not checked against a stream (the caller decides what a gap
    means); the frame's own is returned.  ``out``, ``schema`` and the limits as for
    :class:`Decoder`.

    Returns:
        ``(Array event, seq)``; the array is a new array (or ``out``), never a view of
        ``buf``.

    Raises:
        TruncatedStreamError: ``buf`` ends inside the frame.
        MalformedFrameError: not exactly one array frame (a message, an END frame or
            trailing bytes), or any header error; other ProtocolErrors as for Decoder.
        BufferMismatchError: ``out`` does not fit the frame.
    """
    mv = byte_view(buf)
    seq = int.from_bytes(mv[24:28], "big") if len(mv) >= 28 else 0
    dec = Decoder(
        max_frame_bytes=max_frame_bytes,
        max_ndim=max_ndim,
        keep_wire_order=keep_wire_order,
        implementation=implementation,
        first_seq=seq,  # a lone frame: accept its own sequence number
    )
    dec.expect(out=out, schema=schema)
    dec.receive_data(mv)
    dec.receive_data(b"")
    try:
        ev = dec.next_event()
    except TruncatedStreamError as exc:
        raise TruncatedStreamError(
            f"incomplete frame: {exc}", received=exc.received, expected=exc.expected
        ) from None
    if not isinstance(ev, Array):
        raise MalformedFrameError("expected one array frame")
    if dec._pending:
        raise MalformedFrameError(f"{sum(len(p) for p in dec._pending)} bytes after the frame")
    return ev, seq
