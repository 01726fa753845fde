"""wirearray: move numeric arrays between hosts over sockets as fast as the machine allows.

The byte-order core exists twice with the same names: the compiled module
``wirearray._cwire`` (Cython + C kernels with run-time SIMD dispatch) and the
pure-Python ``wirearray.fallback`` (numpy).  Which one runs is decided here, once:

* ``WIREARRAY_PUREPYTHON=1`` forces the fallback;
* ``WIREARRAY_REQUIRE_EXTENSION=1`` makes a missing or broken extension an
  ImportError instead of a silent fallback (CI and wheel tests set it);
* otherwise the extension is used when it imports, the fallback when not.

``wirearray.IMPLEMENTATION`` says which one runs ("cython" or "python") and
``wirearray.EXTENSION_ERROR`` why the extension did not load, so bug reports and
benchmark results can say which code ran.  ``WIREARRAY_SIMD=scalar|ssse3|avx2|neon``
forces a kernel path of the compiled core.
"""

from __future__ import annotations

from .exceptions import (
    AddressError,
    AuthenticationError,
    BufferMismatchError,
    ChecksumError,
    DatagramTooLargeError,
    DeliveryError,
    DeliveryTimeoutError,
    EndOfStreamError,
    ErrorCode,
    FrameTooLargeError,
    MalformedDescriptorError,
    MalformedFrameError,
    PeerError,
    ProtocolError,
    SchemaMismatchError,
    SequenceError,
    StreamBrokenError,
    TruncatedStreamError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
    UsageError,
    WireError,
)

__version__ = "0.1.0"


from ._implementation import EXTENSION_ERROR, IMPLEMENTATION
from ._implementation import impl as _impl

hton = _impl.hton
ntoh = _impl.ntoh
byteswap = _impl.byteswap
htons = _impl.htons
htonl = _impl.htonl
htonll = _impl.htonll
ntohs = _impl.ntohs
ntohl = _impl.ntohl
ntohll = _impl.ntohll
simd_paths = _impl.simd_paths
get_simd = _impl.get_simd
set_simd = _impl.set_simd

from . import codec  # noqa: E402  (after the implementation is chosen)
from .codec import Schema  # noqa: E402
from .listener import Listener, listen  # noqa: E402
from .transport import Channel, connect  # noqa: E402
from .udp import DatagramChannel  # noqa: E402


def __getattr__(name: str) -> object:
    # The asyncio layer loads on first use: ``import wirearray`` does not import asyncio.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The fallback's docstrings are the reference text for both implementations.
if IMPLEMENTATION == "cython":
    from . import fallback as _fb

    for _name in ("hton", "ntoh", "byteswap"):
        try:
            getattr(_impl, _name).__doc__ = getattr(_fb, _name).__doc__
        except (AttributeError, TypeError):  # builtin functions' docs are read-only
            pass
    del _fb


def info() -> dict[str, object]:
    """Which implementation and kernel path run here, for bug reports and benchmarks."""
    import sys

    import numpy

    return {
        "wirearray": __version__,
        "implementation": IMPLEMENTATION,
        "extension_error": EXTENSION_ERROR,
        "simd": get_simd(),
        "simd_paths": list(simd_paths()),
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
        "byteorder": sys.byteorder,
    }


__all__ = [
    "EXTENSION_ERROR",
    "IMPLEMENTATION",
    "AddressError",
    "AuthenticationError",
    "BufferMismatchError",
    "Channel",
    "ChecksumError",
    "DatagramChannel",
    "DatagramTooLargeError",
    "DeliveryError",
    "DeliveryTimeoutError",
    "EndOfStreamError",
    "ErrorCode",
    "FrameTooLargeError",
    "Listener",
    "MalformedDescriptorError",
    "MalformedFrameError",
    "PeerError",
    "ProtocolError",
    "Schema",
    "SchemaMismatchError",
    "SequenceError",
    "StreamBrokenError",
    "TruncatedStreamError",
    "UnsupportedDtypeError",
    "UnsupportedVersionError",
    "UsageError",
    "WireError",
    "__version__",
    "aio",
    "byteswap",
    "codec",
    "connect",
    "get_simd",
    "hton",
    "htonl",
    "htonll",
    "htons",
    "info",
    "listen",
    "ntoh",
    "ntohl",
    "ntohll",
    "ntohs",
    "set_simd",
    "simd_paths",
]
