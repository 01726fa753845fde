"""wirearray over ZeroMQ: typed arrays on any pyzmq socket, loss that is never silent.

ZeroMQ (pyzmq) gives fan-out (PUB/SUB), worker pools (PUSH/PULL), many producers into
one collector, request/reply (ROUTER/DEALER), reconnection, backpressure, CURVE and
asyncio.  This module puts wirearray frames (docs/FORMAT.md) on those sockets without
wrapping or owning them: the caller creates, configures, binds and closes the socket.
``import wirearray`` never imports this module; ``import wirearray.zmq`` imports pyzmq
(the ``wirearray[zmq]`` extra).

Wire mapping (docs/FORMAT.md section 11, "Over ZeroMQ"): one zmq message is::

    envelope parts   ROUTER identities, SUB topics: as many as the caller says
    origin part      32 bytes: magic "\\x89WAZ", version, flags, origin id, message
                     sequence number, CRC32C (a header of its own, checked first)
    frame parts      whose concatenation is exactly a FORMAT.md frame (or, for
                     send_many, a MESSAGE frame and its array frames), each frame
                     either whole in one part (payloads under 64 KiB) or as header,
                     payload (one part; from 2 GiB, parts of 1 GiB), tail (CRC32C
                     trailer and padding, when not empty)

Design choices, and why:

* **The origin part, not a frame field.**  A FORMAT.md frame has no sender field and
  a new field would be a new format version; a separate fixed part keeps every frame
  a plain version-1 frame (``decode_frame`` reads the joined parts) and lets a
  receiver tell streams apart.  An origin is one Sender *and one envelope*: a
  ROUTER that replies to four clients, or a PUB that sends under four topics, keeps
  four sequences, so every receiver sees a contiguous one (a DEALER sees only its own
  replies, a SUB only its topics).  Origin ids are random 64-bit numbers chosen when
  the sequence starts: a restarted publisher is a new origin, and the sequence number
  of the first message a receiver gets from it says how many it missed.
* **Each message is a stream of its own**, frame sequence numbers from 0 (no END
  frame): zmq messages are atomic, so the frame sequence only checks the structure
  inside one message, and loss between messages is the origin part's business.
* **Small frames whole, large ones split.**  Under 64 KiB of payload a frame goes in
  one part: pyzmq copies such parts anyway (``zmq.COPY_THRESHOLD``), and one part
  decodes in one call into the compiled core.  Larger payloads go in a part of their
  own, sent without a copy (from the array, or from a staging buffer holding the
  converted bytes; ZERO_COPY_BYTES says why not copied), and are received straight
  into the destination (``recv_into``) or converted from zmq's buffer into it in one
  pass.  libzmq fails
  on parts of 2 GiB and more, hence the 1 GiB pieces.
* **Staging buffers are reused once pyzmq lets go of them.**  A payload that must
  be converted (network order on a little-endian host, a non-contiguous view) is
  converted once into a staging buffer that libzmq then sends from; a pool keeps
  those buffers and reuses one as soon as libzmq is done with it, so a stream of
  large arrays costs no allocation and no page faults per message.  "Done" is known
  without a MessageTracker: each message is sent from a numpy view of its own, which
  pyzmq holds until libzmq releases the message, so a weak reference to the view
  says it -- a tracker would add a ``threading.Event`` and work in pyzmq's
  garbage-collector thread per message (``_zmq_staging``).  Every message zmq still
  queues holds its own buffer (a burst of sends that zmq queues needs as many); the
  pool keeps idle what the last burst had in flight at once (at least 64 MiB, or the
  one largest buffer), so the next burst of that size converts into memory already
  mapped, and gives back half of the excess after each burst that needed less.  A
  send never blocks to wait for a buffer.
* **The caller's array may change as soon as a send returns** (as with
  ``Channel.send``), unless ``copy=False``: then a payload that needs no conversion
  is sent from the array's own memory and the send returns the MessageTracker to
  wait on before changing the array (on CPython one that watches the message's view
  of the array as above: ``done`` at the same moment, ``wait`` polling).
* **Limits before allocation.**  libzmq holds a whole message before the first part
  is readable, so ``max_frame_bytes`` also sets ``ZMQ_MAXMSGSIZE`` (the largest part
  libzmq accepts; a peer sending a larger one is disconnected and the message is
  gone -- the receiver learns it from the next sequence number).  What libzmq cannot
  bound is the *number* of parts of a message; for untrusted peers use CURVE
  (docs/SECURITY.md).  wirearray's own allocations happen only after a header passed
  every check.
* **Exiting with messages in flight is safe.**  pyzmq drops its references to buffers
  sent without a copy when the interpreter exits, while libzmq may still be sending
  from them; the ones still in flight then are kept alive until the process is gone.
  (Messages still queued are lost at exit unless the context is terminated first:
  ``ctx.term()`` waits up to ``ZMQ_LINGER``.)
* **A malformed message costs that message only.**  zmq keeps message boundaries, so
  after a ProtocolError the rest of the bad message is discarded and the next one is
  read normally; a Receiver counts refusals in ``stats``.
* **Gap checking fits the pattern.**  A Receiver on a PULL socket does not check gaps
  by default (PUSH deals messages out round-robin: each worker sees a subset); on
  every other socket a gap raises SequenceError, with the array that revealed it.
  Stateless ``send_array`` carries no sequence (origin 0) and is never checked.

asyncio: every function and method here also takes a ``zmq.asyncio`` socket and then
returns an awaitable (pyzmq's own convention).  Parts after the first are read without
waiting: zmq delivers all parts of a message at once.

The code, by job: ``_zmq_message`` (the wire mapping: constants, the origin part, a
message's parts built from arrays), ``_zmq_read`` (received parts parsed, checked and
landed as arrays), ``_zmq_io`` (whole messages on blocking and asyncio sockets),
``_zmq_staging`` (staging buffers, buffers in flight), ``_zmq_stateful`` (Sender,
Receiver: sequences per origin), ``_zmq_endpoints`` (serve, send); this module holds
the stateless functions and is the only public one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    import zmq
    import zmq.asyncio
except ImportError as _exc:  # pragma: no cover - exercised by tests/test_zmq.py in a subprocess
    raise ImportError(
        f"wirearray.zmq needs pyzmq >= 26.4 ({_exc}): pip install 'wirearray[zmq]'"
    ) from _exc
if not hasattr(zmq.Socket, "recv_into"):  # pragma: no cover
    raise ImportError(
        f"wirearray.zmq needs pyzmq >= 26.4 (Socket.recv_into), found pyzmq {zmq.__version__}: "
        "pip install 'wirearray[zmq]'"
    )

import numpy as np

from ._implementation import get as _get_impl
from ._zmq_endpoints import SEND_PATTERNS as SEND_PATTERNS
from ._zmq_endpoints import SERVE_PATTERNS as SERVE_PATTERNS
from ._zmq_endpoints import Delivery, send, serve
from ._zmq_io import _await_recv, _build, _is_async, _recv, _send, _sync, _with_envelope
from ._zmq_message import (
    ORIGIN_BYTES,
    ORIGIN_MAGIC,
    Envelope,
    _check_envelope,
    _default_envelope,
    _encode_array,
    _encode_message,
    _pack_origin,
    _want_big,
    max_part_bytes,
    set_limits,
)
from ._zmq_message import ORIGIN_SEQUENCED as ORIGIN_SEQUENCED
from ._zmq_message import ORIGIN_VERSION as ORIGIN_VERSION
from ._zmq_message import PIECE_BYTES as PIECE_BYTES
from ._zmq_message import SPLIT_BYTES as SPLIT_BYTES
from ._zmq_message import WHOLE_FRAME_BYTES as WHOLE_FRAME_BYTES
from ._zmq_message import ZERO_COPY_BYTES as ZERO_COPY_BYTES
from ._zmq_read import _coerce_schema, _Incoming, _Limits, _limits
from ._zmq_staging import _POOL
from ._zmq_staging import KEEP_STAGING_BYTES as KEEP_STAGING_BYTES
from ._zmq_stateful import MAX_ORIGINS as MAX_ORIGINS
from ._zmq_stateful import SEQ_WINDOW as SEQ_WINDOW
from ._zmq_stateful import Receiver, Sender
from .codec import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_ARRAYS, DEFAULT_MAX_NDIM
from .exceptions import UsageError

__all__ = [
    "ORIGIN_BYTES",
    "ORIGIN_MAGIC",
    "Delivery",
    "Receiver",
    "Sender",
    "max_part_bytes",
    "recv_array",
    "recv_many",
    "send",
    "send_array",
    "send_many",
    "serve",
    "set_limits",
]

#: The origin part of messages without a sequence (origin 0): the same bytes always.
_ANON_ORIGIN = _pack_origin(_get_impl(None), 0, 0)


def _anonymous_origin() -> bytes:
    return _ANON_ORIGIN


def send_array(
    sock: zmq.Socket,
    a: Any,
    *,
    byteorder: str | None = None,
    checksum: bool | None = None,
    name: str | None = None,
    envelope: Envelope = (),
    flags: int = 0,
    copy: bool = True,
) -> Any:
    """Send one array as one zmq message on ``sock`` (any socket type that sends).

    The message: ``envelope`` parts, an origin part without a sequence (origin 0: a
    receiver checks no gaps for it; use :class:`Sender` for that), then the array's
    frame (docs/FORMAT.md section 11, "Over ZeroMQ").

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then this returns an
            awaitable).  Never closed or configured here.
        a: an ndarray (or what ``numpy.asarray`` takes) of a supported dtype, any
            shape (0-d and empty included), layout and byte order; Fortran order is
            kept, other non-contiguous views are sent in C order.
        byteorder: "network" (big-endian payload; the default, as for Channel) or
            "native" (the array's own memory order: a same-order receiver converts
            nothing).
        checksum: append a CRC32C of the payload (default False).
        name: an optional name (1 to 255 bytes of UTF-8).
        envelope: parts sent before the message: a ROUTER's peer identity (from
            :func:`recv_array` with an envelope), a PUB topic.
        flags: 0, or ``zmq.DONTWAIT`` to raise ``zmq.Again`` instead of blocking when
            the socket cannot take the message (high-water mark, no peer).
        copy: True (default): ``a`` may change as soon as this returns; payloads of
            64 KiB and more leave from a reused staging buffer without a further
            copy, converted or copied there; smaller ones are copied into the frame.
            False: a payload of 64 KiB or more that needs no conversion leaves from
            ``a``'s own memory, without a copy, and a MessageTracker is returned: do
            not change ``a`` before ``tracker.done`` (``tracker.wait()``; it polls,
            sleeping at most 1 ms in between, where pyzmq's own waits on an Event).

    Returns:
        A ``zmq.MessageTracker`` when the message refers to ``a``'s memory (copy=False,
        no conversion, 64 KiB or more), else None.

    Raises:
        UnsupportedDtypeError: the dtype cannot travel.
        UsageError: bad name, byteorder, flags or envelope; more than 64 dimensions.
        zmq.Again: DONTWAIT or SNDTIMEO and the socket cannot take the message (nothing
            was sent).  Other zmq errors pass through.
    """
    impl = _get_impl(None)
    want = _want_big(byteorder if byteorder is not None else "network")
    env = _check_envelope(envelope)
    built = _build(_POOL, _encode_array, impl, _POOL, a, name, want, bool(checksum), copy, 0)
    return _send(sock, _POOL, built, _anonymous_origin, env, flags)


def send_many(
    sock: zmq.Socket,
    mapping: Mapping[str, Any],
    *,
    byteorder: str | None = None,
    checksum: bool | None = None,
    envelope: Envelope = (),
    flags: int = 0,
    copy: bool = True,
) -> Any:
    """Send several named arrays as one atomic zmq message (a FORMAT.md message): a
    receiver gets all of them or none.  Arguments and result as :func:`send_array`;
    ``mapping`` is names (1 to 255 bytes of UTF-8) to arrays, validated before
    anything is sent."""
    impl = _get_impl(None)
    want = _want_big(byteorder if byteorder is not None else "network")
    env = _check_envelope(envelope)
    built = _build(_POOL, _encode_message, impl, _POOL, mapping, want, bool(checksum), copy)
    return _send(sock, _POOL, built, _anonymous_origin, env, flags)


def _recv_api(
    sock: Any,
    impl: Any,
    envelope: int | None,
    out: Any,
    schema: Any,
    limits: _Limits,
    copy: bool,
    many: bool,
    flags: int = 0,
) -> Any:
    n_env = _default_envelope(sock) if envelope is None else int(envelope)
    if n_env < 0:
        raise UsageError("envelope is a count of parts, >= 0")
    if schema is not None:
        schema = _coerce_schema(schema, many)
    flags = int(flags)
    if not _is_async(sock):
        info = _Incoming()
        result = _recv(sock, impl, flags, n_env, out, schema, limits, copy, many, info)
        return _with_envelope(n_env, info, result)
    shadow = _sync(sock)

    def attempt(f: int) -> Any:
        info = _Incoming()
        result = _recv(shadow, impl, f, n_env, out, schema, limits, copy, many, info)
        return _with_envelope(n_env, info, result)

    return _await_recv(sock, attempt, flags)


def recv_array(
    sock: zmq.Socket,
    out: np.ndarray | None = None,
    *,
    schema: Any = None,
    envelope: int | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    copy: bool = True,
    flags: int = 0,
) -> Any:
    """Receive one array sent with :func:`send_array` or :meth:`Sender.send`.

    Blocks as the socket does (``RCVTIMEO``: ``zmq.Again`` when it passes).  Every
    header is checked against the limits and ``schema`` before anything is allocated
    for it.  Sequence numbers are not checked here (use :class:`Receiver`).

    Args:
        sock: a pyzmq socket, blocking or ``zmq.asyncio`` (then this returns an
            awaitable).
        out: receive into this array: the frame's dtype (in any byte order: the
            values arrive in ``out``'s), its shape, writable, any layout.  Contiguous
            in the frame's order (C, or Fortran for a Fortran frame), large payloads
            land in it directly (libzmq's own copy), converted in the same pass when
            the byte orders differ; any other layout (a strided slice, a transpose,
            negative strides, the other order) is filled from the message part zmq
            received, each element written into its place and converted in the same
            pass, with no copy of the payload.  The result is ``out``; an ndarray
            subclass receives the values only, as ``numpy.copyto`` writes them
            (``Decoder.expect``).  After a
            ProtocolError its content is unspecified.
        schema: a :class:`~wirearray.Schema` or ``(dtype, shape)`` the array must
            match (None entries are wildcards), checked on the header.
        envelope: how many parts precede the origin part (ROUTER identities, SUB
            topics); None: 1 on a ROUTER socket, else 0.  With an envelope the result
            is ``(envelope_parts, array)``: the parts as a list of bytes, ready for
            ``send_array(..., envelope=...)``.
        max_frame_bytes: largest payload accepted (FrameTooLargeError, from the
            header).  Also call :func:`set_limits` before connecting, so that libzmq
            refuses larger parts before buffering them.
        max_ndim: most dimensions accepted (default: what this host's numpy
            supports, 64 with numpy 2).
        copy: True (default): the array is ``out`` or a new array in this host's byte
            order.  False and no ``out``: when no conversion is needed (the payload is
            in this host's order, or one-byte items) the array is a **read-only view
            of zmq's buffer** (no copy; it keeps that buffer alive, and may be
            unaligned); otherwise a converted copy as with True.
        flags: 0, or ``zmq.DONTWAIT`` (``zmq.Again`` when no message is waiting).

    Returns:
        The array; ``(envelope_parts, array)`` with an envelope.

    Raises:
        ProtocolError: the message is malformed or breaks a limit or the schema
            (MalformedFrameError, FrameTooLargeError, ChecksumError,
            SchemaMismatchError -- also for a message sent with send_many).  The rest
            of that message is discarded: the next call reads the next message.
        BufferMismatchError: ``out`` does not fit the array: another dtype or shape,
            read-only, elements sharing memory (the message is discarded).
        zmq.Again: DONTWAIT or RCVTIMEO, and no message (nothing consumed).
    """
    impl = _get_impl(None)
    limits = _limits(max_frame_bytes, max_ndim, DEFAULT_MAX_MESSAGE_ARRAYS)
    return _recv_api(sock, impl, envelope, out, schema, limits, copy, False, flags)


def recv_many(
    sock: zmq.Socket,
    out: Mapping[str, np.ndarray] | None = None,
    *,
    schema: Mapping[str, Any] | None = None,
    envelope: int | None = None,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    max_message_arrays: int = DEFAULT_MAX_MESSAGE_ARRAYS,
    copy: bool = True,
    flags: int = 0,
) -> Any:
    """Receive one message sent with :func:`send_many`: a dict of name -> array.

    ``out`` and ``schema`` are dicts by name (names missing from ``out`` are
    allocated; with ``schema`` the message must have exactly its names);
    ``max_frame_bytes`` caps the payloads of the whole message; everything else as
    :func:`recv_array`.  A single array (send_array) raises SchemaMismatchError."""
    impl = _get_impl(None)
    limits = _limits(max_frame_bytes, max_ndim, max_message_arrays)
    return _recv_api(sock, impl, envelope, out, schema, limits, copy, True, flags)
