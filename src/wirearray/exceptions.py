"""wirearray's exceptions: one hierarchy, imported by both implementations.

Every error wirearray raises on purpose derives from :class:`WireError`, split in two:

* :class:`UsageError` -- the caller misused the API (a dtype wirearray does not carry,
  an ``out=`` buffer of the wrong size).  Fix the calling code.
* :class:`ProtocolError` -- the peer (or the bytes fed to a decoder) broke the wire
  format: malformed or corrupted frames, limits exceeded, checksum or schema
  mismatches, truncated streams.  Nothing the peer sends can raise anything else from
  a decoder; any other exception escaping it is a bug.
* :class:`DeliveryError` -- a channel could not confirm that the peer consumed the
  stream (docs/FORMAT.md section 10, the orderly close): the peer reported an error
  (:class:`PeerError`, with its code and reason), closed without confirming, or the
  wait timed out (:class:`DeliveryTimeoutError`).

Each class also subclasses the builtin a user would already catch (``TypeError``,
``ValueError``), so ``except ValueError`` keeps working.  OS errors from sockets are
never wrapped.  The 16/32/64-bit scalar helpers deliberately raise the builtins that
:func:`socket.htonl` raises (``OverflowError``, ``TypeError``), since they mirror it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

import enum

__all__ = [
    "AddressError",
    "AuthenticationError",
    "BufferMismatchError",
    "ChecksumError",
    "DatagramTooLargeError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "EndOfStreamError",
    "ErrorCode",
    "FrameTooLargeError",
    "MalformedDescriptorError",
    "MalformedFrameError",
    "PeerError",
    "ProtocolError",
    "SchemaMismatchError",
    "SequenceError",
    "StreamBrokenError",
    "TruncatedStreamError",
    "UnsupportedDtypeError",
    "UnsupportedVersionError",
    "UsageError",
    "WireError",
]


class WireError(Exception):
    """Base class of every error wirearray raises on purpose."""


class UsageError(WireError):
    """The caller used the API in a way it does not support."""


class UnsupportedDtypeError(UsageError, TypeError):
    """The array's dtype is not one wirearray converts or carries.

    Supported: bool, int8..int64, uint8..uint64, float16/32/64, complex64/128, and
    datetime64/timedelta64 with a unit (any unit and multiplier numpy has), records
    (structured dtypes of these, ``S``, ``U`` and ``V`` fields, nested and subarray
    fields) and plain ``S``/``U``/``V`` arrays, in any byte order.  Object and
    extended-precision dtypes (and fields), overlapping fields, unions, and
    datetime64/timedelta64 without a unit (numpy cannot hold a generic unit in
    another byte order) are refused.  The wire format also refuses records over its
    descriptor limits, with field titles, or whose fields are not listed in offset
    order (docs/FORMAT.md section 3).
    """


class BufferMismatchError(UsageError, ValueError):
    """A destination or source buffer does not fit the operation.

    Raised when ``out=`` has the wrong shape, item size or byte length, is read-only,
    has elements that share memory (a receive destination) or is not contiguous (a raw
    buffer given to ``hton``/``ntoh``/``byteswap``), or when a raw buffer cannot be read
    as the requested dtype/shape.  Nothing has been written when it is raised.
    """


class StreamBrokenError(UsageError, RuntimeError):
    """A decoder or channel was used again after an error left its stream unusable.

    After a protocol error the position in the byte stream is unknown; rather than
    misread what follows, every later call raises this (with the original error as
    ``__cause__``).  Arrays returned before the error are unaffected.
    """


class ProtocolError(WireError):
    """The peer sent bytes that are not a valid wirearray stream."""


class MalformedFrameError(ProtocolError, ValueError):
    """A frame header is corrupt or inconsistent (bad magic, header checksum, field
    values, shape/length mismatch, non-zero padding, invalid name)."""


class MalformedDescriptorError(MalformedFrameError):
    """A record frame's field descriptor breaks the format (docs/FORMAT.md section 3):
    truncated or with bytes left over, over a limit (descriptor bytes, fields, nesting
    depth, subarray dimensions or elements, item size), a field that overlaps the one
    before it or ends past the record's item size, an unknown field dtype code, or
    field names that are not valid UTF-8 or repeat.  Raised from the header, before
    anything is allocated for the frame."""


class UnsupportedVersionError(MalformedFrameError):
    """The frame uses a wire-format version this wirearray does not speak."""


class FrameTooLargeError(ProtocolError, ValueError):
    """A frame exceeds a configured limit (payload bytes, ndim, arrays or bytes in a
    message); raised from the header, before anything is allocated."""


class ChecksumError(ProtocolError, ValueError):
    """A payload does not match its CRC32C trailer."""


class SchemaMismatchError(ProtocolError, ValueError):
    """A frame's dtype or shape is not the one the receiver expected; raised from the
    header, before the payload is read."""


class TruncatedStreamError(ProtocolError, ConnectionError):
    """The stream ended in the middle of a frame (or without an end-of-stream frame).

    ``received`` and ``expected`` give the bytes of the unfinished frame that arrived
    and that were announced (``expected`` is None when the header itself was cut).
    """

    def __init__(self, message: str, received: int = 0, expected: int | None = None):
        super().__init__(message)
        self.received = received
        self.expected = expected


class AddressError(UsageError, ValueError):
    """An address that is not ``(host, port)``, ``"host:port"``, ``"[v6]:port"`` or
    ``"unix:/path"``, or a name that does not resolve."""


class DatagramTooLargeError(UsageError, ValueError):
    """An array whose frame does not fit one datagram of the channel."""


class EndOfStreamError(WireError, EOFError):
    """The peer closed the channel cleanly: ``recv()`` found the end of its stream, or
    ``send()`` was called after the peer closed (it reads nothing more).

    Iterating over a channel ends quietly instead.
    """


class SequenceError(ProtocolError):
    """Datagrams were lost, reordered or duplicated (a gap in sequence numbers).

    Raised by a datagram channel *after* the datagram that revealed the gap was
    decoded: ``array`` holds it, ``seq`` its sequence number, ``expected`` the number
    that was due, so nothing received is dropped.
    """

    def __init__(
        self, message: str, *, seq: int, expected: int, array: np.ndarray | None = None
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.expected = expected
        self.array = array


class AuthenticationError(WireError, ConnectionError):
    """The authkey handshake failed: a wrong, missing or replayed key on either side,
    or a peer that did not take part.  The connection is closed."""


class ErrorCode(enum.IntEnum):
    """The code of an ERROR frame (docs/FORMAT.md section 10): why a peer refused a
    stream or ended it.  Codes a peer sends that this version does not know arrive as
    plain ints."""

    #: no reason given
    UNSPECIFIED = 0
    #: the bytes broke the format: malformed frame, unknown version, sequence, or not a
    #: wirearray stream at all (a .npy stream against a wire receiver, and so on)
    PROTOCOL = 1
    #: a frame exceeded a receiver limit (max_frame_bytes, max_ndim, max_message_arrays)
    TOO_LARGE = 2
    #: a payload did not match its CRC32C trailer
    CHECKSUM = 3
    #: a frame was not the dtype, shape or kind the receiver expected (its schema)
    SCHEMA = 4
    #: a deadline of the receiver passed (idle time, a frame, the close handshake)
    TIMEOUT = 5
    #: the server is at its connection limit (max_connections)
    BUSY = 6
    #: the application failed or aborted the channel (a handler error, abort())
    APPLICATION = 7
    #: the server is shutting down
    SHUTDOWN = 8


class DeliveryError(WireError, ConnectionError):
    """The channel could not confirm that the peer consumed everything sent.

    Raised by ``close()`` when the peer confirmed only part of the stream (its
    application closed before receiving every frame, or it refused frames over its
    ``max_ndim`` and read past them: docs/FORMAT.md section 7), or closed or reset the connection
    without confirming (a peer that predates the close handshake of docs/FORMAT.md
    section 10 never confirms); the base of :class:`PeerError` and
    :class:`DeliveryTimeoutError`.  The connection is closed when it is raised.

    Attributes:
        consumed: how many frames of the stream the peer confirmed, when it said
            (None otherwise); ``sent``: how many the stream had.
    """

    consumed: int | None = None
    sent: int | None = None


class DeliveryTimeoutError(DeliveryError, TimeoutError):
    """``close()`` waited ``close_timeout`` seconds and the peer did not confirm the
    stream (it is not reading, or reads too slowly).  Also a :class:`TimeoutError`."""


class PeerError(DeliveryError):
    """The peer reported an error and ended the channel (an ERROR frame, docs/FORMAT.md
    section 10): it refused a frame (a limit, a checksum, a schema, a malformed
    stream), a deadline passed, it is busy, or its application failed or aborted.

    Attributes:
        code: an :class:`ErrorCode` (a plain int for codes this version does not know).
        reason: the peer's short explanation (at most 255 bytes of UTF-8).
    """

    def __init__(self, code: int, reason: str):
        try:
            code = ErrorCode(code)
        except ValueError:
            pass
        name = code.name if isinstance(code, ErrorCode) else f"code {code}"
        super().__init__(f"the peer ended the channel: {reason} ({name})")
        self.code = code
        self.reason = reason

    def __reduce__(
        self,
    ) -> tuple[
        type[PeerError], tuple[int, str]
    ]:  # pickles (multiprocessing) with its two arguments
        return (type(self), (int(self.code), self.reason))
