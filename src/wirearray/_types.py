"""Type aliases of the public API, for annotations (``wirearray.codec`` re-exports
them).  Nothing here exists at run time beyond the aliases themselves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from ._events import Ack, Array, EndOfStream, ErrorReport, Message, NeedData, Schema

__all__ = [
    "Address",
    "AuthKey",
    "Buffer",
    "Buffers",
    "ByteOrder",
    "Event",
    "Format",
    "Header",
    "Implementation",
    "MessageOut",
    "NextEvent",
    "SchemaLike",
    "SchemaSpec",
    "SockAddr",
]

#: Where to connect or listen: ``("host", port)`` (a name or an IPv4/IPv6 literal;
#: ``""`` or port 0 as the socket module reads them), ``"host:port"``,
#: ``"[::1]:port"``, or ``"unix:/path"`` (``"unix:@name"``: Linux's abstract
#: namespace).  ``Listener.address`` reports one of these forms too.
Address: TypeAlias = tuple[str, int] | str
#: A socket address as the socket module gives it (a peer's, for UDP senders): ``(host,
#: port)`` for IPv4, ``(host, port, flowinfo, scope_id)`` for IPv6, a path for UNIX.
SockAddr: TypeAlias = tuple[str, int] | tuple[str, int, int, int] | str | bytes
#: A shared secret for the authkey handshake: bytes, or str (UTF-8), 16 bytes or more.
AuthKey: TypeAlias = bytes | bytearray | str
#: A payload byte order: ``"network"`` (big-endian) or ``"native"`` (the array's own
#: memory order, converted by nobody on a same-order receiver).
ByteOrder: TypeAlias = Literal["network", "native"]
#: A channel's framing: ``"wire"`` (docs/FORMAT.md) or ``"npy"`` (.npy records).
Format: TypeAlias = Literal["wire", "npy"]
#: Which core to run: the compiled one or the pure-Python fallback.
Implementation: TypeAlias = Literal["cython", "python"]
#: One buffer of a frame: the header or trailer (bytes), a payload (a byte view of the
#: array itself, or of the encoder's staging buffer), or held frames (bytearray).
Buffer: TypeAlias = bytes | bytearray | memoryview | np.ndarray
#: The buffers of one ``sendmsg``/``writelines`` call, in order.
Buffers: TypeAlias = list[Buffer]
#: A decoded header: ``(kind, code, flags, shape, payload_len, name, count, seq)``,
#: docs/FORMAT.md section 2; a record frame's ``count`` is its dtype, built from the
#: header's field descriptor (section 3).
Header: TypeAlias = tuple[int, int, int, tuple[int, ...], int, bytes, int | np.dtype, int]
#: What a decoder delivers.
Event: TypeAlias = Array | Message | EndOfStream | Ack | ErrorReport
#: What ``Decoder.next_event`` returns.
NextEvent: TypeAlias = Event | NeedData
#: A schema: a :class:`Schema`, or a ``(dtype, shape)`` tuple with None as a wildcard.
SchemaLike: TypeAlias = Schema | tuple[npt.DTypeLike | None, tuple[int | None, ...] | None]
#: What a receive expects: one schema for an array, a dict of them by name for a
#: message, or None for anything.
SchemaSpec: TypeAlias = SchemaLike | Mapping[str, SchemaLike] | None
#: Destinations of a message's arrays, by name (names not in it are allocated).
MessageOut: TypeAlias = Mapping[str, np.ndarray]
