"""wirearray's exceptions: one hierarchy, imported by both implementations.

Every error wirearray raises on purpose derives from :class:`WireError`, split in two:

* :class:`UsageError` -- the caller misused the API (a dtype wirearray does not carry,
  an ``out=`` buffer of the wrong size).  Fix the calling code.
* Errors about what a peer sent (malformed frames, hostile lengths, truncated streams)
  belong to the codec and derive from a protocol-error branch of this same hierarchy.

Each class also subclasses the builtin a user would already catch (``TypeError``,
``ValueError``), so ``except ValueError`` keeps working.  OS errors from sockets are
never wrapped.  The 16/32/64-bit scalar helpers deliberately raise the builtins that
:func:`socket.htonl` raises (``OverflowError``, ``TypeError``), since they mirror it.
"""

from __future__ import annotations

__all__ = [
    "BufferMismatchError",
    "UnsupportedDtypeError",
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
