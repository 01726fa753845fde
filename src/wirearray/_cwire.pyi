"""Types of ``wirearray._cwire``, the compiled core (pyx/_cwire.pyx and its includes).

The public functions are ``wirearray.fallback``'s, with the same parameters, plus the
compiled-only accelerators of the codec's whole-frame path (``encode_small``,
``decode_small``, ``hold_small``, ``send_small`` with ``HAVE_SEND_SMALL``, and the
receive path's ``SmallRx`` with ``HAVE_RECV_SMALL``, which the pure-Python
implementation does not have) and the private
knobs that tests and benchmarks use.  tests/test_api_parity.py holds this file, the
compiled module and the fallback to the same names and parameters.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from typing_extensions import Buffer

__all__ = [
    "bool_canonical",
    "bool_normalize",
    "byteswap",
    "crc32c",
    "decode_small",
    "encode_small",
    "get_simd",
    "header_length",
    "hold_small",
    "hton",
    "htonl",
    "htonll",
    "htons",
    "ntoh",
    "ntohl",
    "ntohll",
    "ntohs",
    "pack_header",
    "parse_header",
    "send_small",
    "set_simd",
    "simd_paths",
]

#: What ``out=`` accepts: an ndarray of the result's shape and item size, or a
#: writable C-contiguous buffer of exactly the result's size.
_Out = NDArray[Any] | Buffer | None

# ---- arrays (convert.pxi) ----

def hton(a: ArrayLike, out: _Out = None) -> NDArray[Any]: ...
def ntoh(
    a: ArrayLike | Buffer,
    out: _Out = None,
    *,
    dtype: DTypeLike | None = None,
    shape: int | tuple[int, ...] | None = None,
) -> NDArray[Any]: ...
def byteswap(a: ArrayLike, inplace: bool = False, out: _Out = None) -> NDArray[Any]: ...

# ---- scalars (convert.pxi) ----

def htons(x: int, /) -> int: ...
def ntohs(x: int, /) -> int: ...
def htonl(x: int, /) -> int: ...
def ntohl(x: int, /) -> int: ...
def htonll(x: int) -> int: ...
def ntohll(x: int) -> int: ...

# ---- SIMD path (simd.pxi) ----

def simd_paths() -> tuple[str, ...]: ...
def get_simd() -> str: ...
def set_simd(name: str) -> str: ...
def _get_stream_bytes() -> int: ...
def _set_stream_bytes(nbytes: int) -> None: ...
def _default_stream_bytes() -> int: ...

# ---- CRC32C (crc.pxi) ----

def crc32c(data: Buffer, crc: int = 0) -> int: ...
def bool_canonical(data: Buffer) -> bool: ...
def bool_normalize(data: Buffer, out: Any) -> Any: ...
def _crc32c_portable(data: Buffer, crc: int = 0) -> int: ...

_RX_DONE: int
_RX_EOF: int
_RX_AGAIN: int
_RX_TIMEOUT: int
_RX_ERROR: int
_RX_UNSUPPORTED: int

def _recv_payload(
    fd: int, window: Buffer, pos: int, unit: int, crc: int | None, timeout: float | None
) -> tuple[int, int | None, int, BaseException | None]: ...

# ---- headers (format.pxi) ----

def header_length(head: Buffer) -> int: ...
def parse_header(
    buf: Buffer,
) -> tuple[int, int, int, tuple[int, ...], int, bytes, int | np.dtype, int]: ...
def pack_header(
    kind: int,
    code: int,
    flags: int,
    shape: tuple[int, ...],
    payload_len: int,
    name: bytes = b"",
    count: int | np.dtype = 0,
    seq: int = 0,
) -> bytes: ...

# ---- whole small frames (fastpath.pxi) ----

def encode_small(
    a: object, want_big: int, checksum: bool, seq: int, limit: int
) -> bytes | None: ...

HAVE_SEND_SMALL: bool

def hold_small(
    held: bytearray, a: object, want_big: int, checksum: bool, seq: int, limit: int
) -> int: ...
def send_small(
    fd: int, a: object, want_big: int, checksum: bool, seq: int, limit: int
) -> int | tuple[bytes, int] | None: ...

HAVE_RECV_SMALL: bool

class SmallRx:
    pending: Any
    head: memoryview | None
    off: int
    end: int
    seq: int
    max_frame_bytes: int
    max_ndim: int
    keep_wire_order: bool
    ready: bool
    may_read: bool
    grow: bool
    starved: bool
    readahead: Any
    received: int
    def __init__(self, pending: Any, seq: int) -> None: ...
    def take(self, fd: int, out: NDArray[Any] | None = None) -> NDArray[Any] | None: ...

def decode_small(
    buf: Buffer,
    seq: int,
    max_frame_bytes: int,
    max_ndim: int,
    keep_wire_order: bool,
    out: NDArray[Any] | None = None,
) -> tuple[NDArray[Any], int] | None: ...
