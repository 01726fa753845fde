"""wirearray's exceptions: one hierarchy, imported by both implementations.

Every error wirearray raises on purpose derives from :class:`WireError`, split in two:

* :class:`UsageError` -- the caller misused the API (a dtype wirearray does not carry,
  an ``out=`` buffer of the wrong size).  Fix the calling code.
* :class:`ProtocolError` -- the peer (or the bytes fed to a decoder) broke the wire
  format: malformed or corrupted frames, limits exceeded, checksum or schema
  mismatches, truncated streams.  Nothing the peer sends can raise anything else from
  a decoder; any other exception escaping it is a bug.

Each class also subclasses the builtin a user would already catch (``TypeError``,
``ValueError``), so ``except ValueError`` keeps working.  OS errors from sockets are
never wrapped.  The 16/32/64-bit scalar helpers deliberately raise the builtins that
:func:`socket.htonl` raises (``OverflowError``, ``TypeError``), since they mirror it.
"""

from __future__ import annotations

__all__ = [
    "AddressError",
    "AuthenticationError",
    "BufferMismatchError",
    "ChecksumError",
    "DatagramTooLargeError",
    "EndOfStreamError",
    "FrameTooLargeError",
    "MalformedFrameError",
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

    Supported: bool, int8..int64, uint8..uint64, float16/32/64, complex64/128, in any
    byte order.  Object, string, structured, datetime and extended-precision dtypes
    are refused.
    """


class BufferMismatchError(UsageError, ValueError):
    """A destination or source buffer does not fit the operation.

    Raised when ``out=`` has the wrong shape, item size or byte length, is read-only or
    not contiguous, or when a raw buffer cannot be read as the requested dtype/shape.
    Nothing has been written when it is raised.
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
    """``recv()`` found the end of the stream: the peer closed it cleanly.

    Iterating over a channel ends quietly instead.
    """


class SequenceError(ProtocolError):
    """Datagrams were lost, reordered or duplicated (a gap in sequence numbers).

    Raised by a datagram channel *after* the datagram that revealed the gap was
    decoded: ``array`` holds it, ``seq`` its sequence number, ``expected`` the number
    that was due, so nothing received is dropped.
    """

    def __init__(self, message: str, *, seq: int, expected: int, array=None):
        super().__init__(message)
        self.seq = seq
        self.expected = expected
        self.array = array


class AuthenticationError(WireError, ConnectionError):
    """The authkey handshake failed: a wrong, missing or replayed key on either side,
    or a peer that did not take part.  The connection is closed."""
