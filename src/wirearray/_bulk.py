"""A large payload received in one compiled call (the blocking and asyncio loops).

A payload of megabytes arrives in many ``recv`` calls.  Driven from Python each of
them costs a ``recv_into``, a decoder call, a swap and a CRC32C call; the compiled
core's ``_recv_payload`` (pyx/bulk.pxi, pyx/wa_recv.h) instead loops ``recv(2)``
into the destination with the GIL released until the payload is complete, swapping
each chunk in place and checksumming it as it lands.  The decoder stays the one
state machine: it names the window (``Decoder.payload_target``) and is told what
landed (``Decoder.payload_landed``); everything else -- headers, small payloads,
tails, an ``out=`` of another layout -- keeps the ``get_buffer``/``advance`` loop.

Used only where it means the same as that loop: the compiled implementation, a plain
stream socket (not TLS: its bytes are not the wire's), and a platform with
``recv(2)``/``poll(2)`` (not Windows).  What the loop would raise, this raises:
``TimeoutError`` when the deadline passes, ``BlockingIOError`` when a socket with
timeout 0 has nothing more now, ``OSError`` as the socket reports it, and whatever a
signal handler raises (Ctrl-C), each after the bytes that landed are reported, so a
poll keeps its partial frame.  A peer that closes is reported as end of input, as
``recv_into`` returning 0 is.
"""

from __future__ import annotations

import errno
import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._decoder import Decoder

__all__ = ["recv_payload"]


def _payload_fd(sock: Any) -> int:
    """The descriptor to receive on in C, or -1 to keep the Python loop (TLS or
    another socket-like object, not a stream socket, Windows)."""
    if sys.platform == "win32" or type(sock) is not socket.socket:
        return -1  # an ssl.SSLSocket is a subclass: refused here
    try:
        if sock.type != socket.SOCK_STREAM:
            return -1
        return int(sock.fileno())
    except OSError:
        return -1


def recv_payload(sock: Any, dec: Decoder, timeout: float | None) -> bool:
    """Receive the payload the decoder waits for into its destination, in one
    compiled call, if the next read is a large payload's and ``sock`` and the
    decoder's implementation allow it (else False: use ``get_buffer``/``advance``).

    ``timeout``: None waits as long as it takes, 0 takes what is readable now (an
    asyncio loop waits for readability itself), else seconds from now.  Returns True
    when the decoder was told of what landed (or of the end of input).

    Raises:
        TimeoutError: the deadline passed (what landed is reported first).
        BlockingIOError: ``timeout`` 0 and nothing was readable.
        OSError: as ``recv``; and what a signal handler raises.
    """
    impl = dec._impl
    if not hasattr(impl, "_recv_payload"):
        return False  # the fallback: numpy has no socket loop
    target = dec.payload_target()
    if target is None:
        return False
    fd = _payload_fd(sock)
    if fd < 0:
        return False
    window, pos, unit, crc = target
    end, crc, status, exc = impl._recv_payload(fd, window, pos, unit, crc, timeout)
    if status == impl._RX_UNSUPPORTED:
        return False
    if end > pos:
        dec.payload_landed(end - pos, crc)
    if status == impl._RX_EOF:  # the end of input, reported as a read of 0 bytes
        target = dec.payload_target()
        if target is not None:
            dec.payload_landed(0, target[3])
        else:
            dec.get_buffer()
            dec.advance(0)
        return True
    if exc is not None:
        raise exc
    if status == impl._RX_TIMEOUT:
        raise TimeoutError("timed out")
    if status == impl._RX_AGAIN and end == pos:
        raise BlockingIOError(errno.EAGAIN, "nothing to read now")
    return True
