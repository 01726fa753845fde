"""Arrays in datagrams: UDP (IPv4/IPv6) and UNIX datagram sockets.

Each array travels as one self-contained frame (docs/FORMAT.md, an ARRAY frame) in one
datagram; its sequence number counts the sender's datagrams, so loss, reordering and
duplication are detected and never silent.  Sequence state is kept **per sender**
(its address): two senders, or one that restarts, never look like each other's
reordering.  A sender whose datagram carries sequence number 0 while a later number
was expected has restarted (a process bound to a fixed port, started again): its
count starts over and ``stats["restarts"]`` counts it -- the one case a duplicated
first datagram cannot be told apart from, and is counted as.  The table of senders is
bounded (``max_senders``, least recently heard dropped first), so senders that go
quiet cost nothing forever.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from . import _format as F
from . import codec as _codec
from ._address import format_address, parse_address
from ._common import array_to_send
from ._sockets import writable_now
from .codec import Encoder

if TYPE_CHECKING:
    from ._types import Address, ByteOrder, SchemaLike, SockAddr
from .exceptions import AddressError, DatagramTooLargeError, SequenceError, UsageError

__all__ = ["MAX_UDP_PAYLOAD", "DatagramChannel"]

#: The largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes).
MAX_UDP_PAYLOAD: Final = 65507
#: Default bound on the senders whose sequence numbers a channel tracks.
DEFAULT_MAX_SENDERS: Final = 1024
#: Sequence numbers remembered per sender, to tell a duplicate from a late datagram.
_RECENT = 256


class _Sender:
    """Sequence state of one sender."""

    __slots__ = ("expected", "recent")

    def __init__(self) -> None:
        self.expected = 0
        self.recent: OrderedDict[int, None] = OrderedDict()


class DatagramChannel:
    """Arrays that fit one datagram, over UDP (or UNIX datagram sockets).

    Frames carry sequence numbers per sender, so loss, reordering and duplication are
    detected and never silent: ``stats`` counts them, and with ``on_gap="raise"`` (the
    default) the ``recv`` that notices one raises :class:`~wirearray.SequenceError` --
    carrying the array that revealed it, so nothing received is dropped.
    ``on_gap="count"`` only counts.

    Args:
        local: address to bind (``("127.0.0.1", 0)`` picks a port; None: any).
        remote: default peer for send(); recv() then accepts only that peer.
        max_datagram: largest datagram sent or accepted (default 65507, the IPv4
            UDP maximum); a larger frame raises DatagramTooLargeError before sending.
        max_senders: senders tracked at once (default 1024; the least recently heard
            is forgotten first, and counts afresh if it comes back).
        byteorder, checksum, timeout, max_ndim, keep_wire_order: as for Channel.
    """

    def __init__(
        self,
        local: Address | None = None,
        remote: Address | None = None,
        *,
        byteorder: ByteOrder = "network",
        checksum: bool = False,
        timeout: float | None = None,
        max_datagram: int = MAX_UDP_PAYLOAD,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        keep_wire_order: bool = False,
        on_gap: str = "raise",
        max_senders: int = DEFAULT_MAX_SENDERS,
    ):
        if local is None and remote is None:
            raise UsageError("a DatagramChannel needs a local or a remote address")
        if on_gap not in ("raise", "count"):
            raise UsageError("on_gap must be 'raise' or 'count'")
        if max_senders < 1:
            raise UsageError("max_senders must be >= 1")
        ref = parse_address(local if local is not None else remote)
        family, _, proto, _, sockaddr = ref.resolve(socket.SOCK_DGRAM, passive=local is not None)[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        self._unix_path = None
        try:
            if local is not None:
                if ref.is_unix and not sockaddr.startswith("\0"):
                    if os.path.exists(sockaddr):
                        raise AddressError(f"{sockaddr} exists")
                    self._unix_path = sockaddr
                self.sock.bind(sockaddr)
            self._remote = None
            if remote is not None:
                rep = parse_address(remote)
                rinfo = [i for i in rep.resolve(socket.SOCK_DGRAM) if i[0] == family]
                if not rinfo:
                    raise AddressError(f"{remote!r} has no address of the local socket's family")
                self._remote = rinfo[0][4]
                self.sock.connect(self._remote)
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(timeout)
        self._enc = Encoder(byteorder=byteorder, checksum=checksum)
        self._checksum = checksum
        self._max_ndim = max_ndim
        self._keep_wire_order = keep_wire_order
        self.max_datagram = max_datagram
        self.max_senders = max_senders
        self.on_gap = on_gap
        self._buf = bytearray(max_datagram + 1)
        self._senders: OrderedDict[SockAddr, _Sender] = OrderedDict()
        self.stats = {
            "sent": 0,
            "received": 0,
            "lost": 0,
            "reordered": 0,
            "duplicated": 0,
            "restarts": 0,
        }
        self._closed = False

    @property
    def address(self) -> Address:
        """The bound local address (``(host, port)``, or ``"unix:/path"``)."""
        return format_address(self.sock.family, self.sock.getsockname())

    @property
    def senders(self) -> int:
        """Senders whose sequence numbers are tracked now (at most ``max_senders``)."""
        return len(self._senders)

    def send(self, array: npt.ArrayLike, *, to: Address | None = None) -> None:
        """Send one array in one datagram (to ``to``, else the channel's remote).

        Raises:
            DatagramTooLargeError: the frame exceeds max_datagram; nothing was sent
                and no sequence number was used.
            UnsupportedDtypeError, UsageError: before anything is sent.
            TimeoutError: the socket could not take the datagram in time
                (``timeout=0``: now; nothing was sent, and when the datagram was
                already numbered the peer counts it lost).
        """
        a = array_to_send(array)
        size = F.header_size(a.ndim, 0) + a.nbytes + F.frame_tail(a.nbytes, self._checksum)
        if size > self.max_datagram:
            raise DatagramTooLargeError(
                f"a {a.dtype}{list(a.shape)} array needs a {size}-byte datagram; "
                f"this channel sends at most {self.max_datagram} (use a stream channel)"
            )
        if to is None and self._remote is None:
            raise UsageError("send() needs to= on a channel without a remote address")
        dest = parse_address(to).resolve(socket.SOCK_DGRAM)[0][4] if to is not None else None
        if self.sock.gettimeout() == 0 and not writable_now(self.sock):
            raise TimeoutError("the socket cannot take a datagram now (timeout=0); nothing sent")
        frame = self._enc.encode(a)
        try:
            if dest is not None:
                self.sock.sendto(frame, dest)
            else:
                self.sock.send(frame)
        except BlockingIOError:  # a poll: numbered but not sent, a loss the peer counts
            raise TimeoutError("the socket could not take the datagram (timeout=0)") from None
        self.stats["sent"] += 1

    def recv(
        self, out: np.ndarray | None = None, *, schema: SchemaLike | None = None
    ) -> np.ndarray:
        """Receive one array (see Channel.recv; ``out`` may have any layout, filled
        from the datagram's buffer element by element when its memory is not in the
        frame's order); raises SequenceError on a gap in the sender's sequence when
        ``on_gap="raise"``, after decoding the datagram."""
        return self.recv_from(out, schema=schema)[0]

    def recv_from(
        self, out: np.ndarray | None = None, *, schema: SchemaLike | None = None
    ) -> tuple[np.ndarray, SockAddr]:
        """Like recv(), returning ``(array, sender_address)``.

        Raises:
            DatagramTooLargeError: a datagram over max_datagram arrived (dropped).
            ProtocolError: the datagram is not one valid ARRAY frame (dropped; the
                channel stays usable).
            SequenceError: a gap in that sender's sequence (``on_gap="raise"``).
            TimeoutError, OSError.
        """
        try:
            n, sender = self.sock.recvfrom_into(self._buf)
        except BlockingIOError:  # timeout=0, a poll: no datagram waiting
            raise TimeoutError("no datagram has arrived (timeout=0)") from None
        if n > self.max_datagram:
            raise DatagramTooLargeError(f"a datagram over {self.max_datagram} bytes arrived")
        ev, seq = _codec.decode_frame(
            memoryview(self._buf)[:n],
            out=out,
            schema=schema,
            max_frame_bytes=self.max_datagram,
            max_ndim=self._max_ndim,
            keep_wire_order=self._keep_wire_order,
        )
        self.stats["received"] += 1
        self._track(sender, seq, ev.array)
        return ev.array, sender

    def _track(self, sender: SockAddr, seq: int, array: np.ndarray) -> None:
        senders = self._senders
        state = senders.get(sender)
        if state is None:
            state = senders[sender] = _Sender()
            if len(senders) > self.max_senders:
                senders.popitem(last=False)  # the least recently heard
        else:
            senders.move_to_end(sender)
        stats = self.stats
        expected = state.expected
        ahead = (seq - expected) & 0xFFFFFFFF
        problem = None
        if ahead == 0:
            state.expected = (seq + 1) & 0xFFFFFFFF
        elif seq == 0:  # the sender started over (a duplicate of #0 looks the same)
            stats["restarts"] += 1
            state.recent.clear()
            state.expected = 1
        elif ahead < 0x80000000:  # later than expected: the ones between are missing
            stats["lost"] += ahead
            state.expected = (seq + 1) & 0xFFFFFFFF
            problem = f"{ahead} datagram(s) lost before #{seq}"
        elif seq in state.recent:
            stats["duplicated"] += 1
            problem = f"datagram #{seq} duplicated"
        else:  # an earlier one, counted lost, arrived late
            stats["reordered"] += 1
            stats["lost"] = max(0, stats["lost"] - 1)
            problem = f"datagram #{seq} arrived after #{(expected - 1) & 0xFFFFFFFF}"
        state.recent[seq] = None
        if len(state.recent) > _RECENT:
            state.recent.popitem(last=False)
        if problem and self.on_gap == "raise":
            raise SequenceError(problem, seq=seq, expected=expected, array=array)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        if self._unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)

    def __enter__(self) -> DatagramChannel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
