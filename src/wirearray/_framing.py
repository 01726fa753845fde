"""Framings: how a stream's records begin and end, given to the encoder and decoder.

The codec knows one format, docs/FORMAT.md; a framing is what changes for another
(``.npy`` records, ``wirearray.npy``): how many bytes to read before a header can be
looked at, how the header is read and checked, what follows a payload, what an end of
input at a record boundary means, which optional machinery applies (the compiled
whole-frame path, messages, control frames, sequence numbers), and how to recognise
another protocol's bytes for a clearer error.  The payload itself -- memory order,
byte swaps, the recv_into protocol, limits and ``out=`` -- is the codec's, the same
for every framing.  In the manner of h11's reader and writer tables: the state
machine is one, the table it is given says how bytes are cut.

A framing object holds no state of a stream (the decoder does), so one object serves
every encoder and decoder; the two here are :data:`WIRE` and ``wirearray.npy.NPY``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from . import _format as F
from .exceptions import MalformedFrameError

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np

    from ._types import Header

__all__ = ["WIRE", "Framing", "WireFraming"]


class Framing(Protocol):
    """What the encoder and decoder ask of a framing.

    Attributes:
        name: the framing's name, as channels take it (``format=``).
        first_need: bytes to read before :meth:`read_header` can look at a header.
        eof_at_boundary_is_end: whether an end of input at a record boundary ends the
            stream cleanly (``.npy``) rather than truncating it (the wire format, whose
            streams end with an END frame).
        sequenced: whether headers carry sequence numbers the decoder checks.
        whole_frames: whether the compiled whole-frame paths (``Encoder.encode_small``,
            ``Decoder.next_array``) apply: they speak the wire format only.
        messages: whether multi-array messages can travel.
        control_frames: whether END, ACK and ERROR frames can travel (the close
            handshake of docs/FORMAT.md section 10; without them a stream ends with
            the connection's half-close).
        options: whether the encoder's ``byteorder`` and ``checksum`` apply; without
            them a record travels in its array's own byte order, unchecked.
    """

    name: str
    first_need: int
    eof_at_boundary_is_end: bool
    sequenced: bool
    whole_frames: bool
    messages: bool
    control_frames: bool
    options: bool

    def read_header(self, head: memoryview, impl: ModuleType) -> int | Header:
        """Read a header from its first bytes.

        Args:
            head: the first bytes of a record: ``first_need`` of them, or as many as
                the previous call asked for.
            impl: the core (compiled or fallback) whose header primitives to use.

        Returns:
            A larger number of bytes to read before calling again, or the header's
            fields ``(kind, code, flags, shape, payload_len, name, count, seq)`` in the
            wire format's terms, validated (the decoder then applies its limits).

        Raises:
            ProtocolError: the bytes are not a valid header.
        """
        ...

    def tail_length(self, length: int, checksum: bool) -> int:
        """Bytes after a payload of ``length`` bytes (trailer and padding)."""
        ...

    def foreign(self, head: bytes) -> str | None:
        """What the first bytes of a record say when they are another protocol's
        (a hint for the error), else None."""
        ...

    def array_header(
        self, a: np.ndarray, code: int, flags: int, name: bytes, seq: int, impl: ModuleType
    ) -> bytes:
        """The header of an array record: ``a`` (its shape and byte count), its wire
        dtype ``code`` and ``flags`` (docs/FORMAT.md section 4), ``name`` (UTF-8, may be
        empty) and sequence number, all validated by the encoder."""
        ...


#: First bytes of other protocols a wirearray receiver may meet by mistake, and what
#: they mean (checked only once the frame magic has failed, for a clearer error).
_FOREIGN = (
    (F.HANDSHAKE_MAGIC, "the peer starts an authkey handshake: connect with authkey=..."),
    (
        b"\x93NUM",
        "the peer sends .npy records, not wirearray frames: use format='npy' "
        "on both ends (--format npy with the command line)",
    ),
    (b"\x16\x03", "the peer speaks TLS: connect with ssl=... (or serve without TLS)"),
    (b"\x15\x03", "the peer answered with a TLS alert: it expects TLS (ssl=...)"),
)


class WireFraming:
    """The wirearray wire format, docs/FORMAT.md: 64-byte aligned frames with a
    checked header, an optional CRC32C trailer, messages and control frames."""

    name = "wire"
    first_need = F.MIN_HEADER
    eof_at_boundary_is_end = False
    sequenced = True
    whole_frames = True
    messages = True
    control_frames = True
    options = True

    def read_header(self, head: memoryview, impl: ModuleType) -> int | Header:
        if len(head) == F.MIN_HEADER:  # the fixed part: magic, version, lengths
            if head[:4] != F.MAGIC:
                why = self.foreign(bytes(head[:4]))
                if why:
                    raise MalformedFrameError(why)
            h: int = impl.header_length(head)
            if h > F.MIN_HEADER:
                return h
        header: Header = impl.parse_header(head)
        return header

    def tail_length(self, length: int, checksum: bool) -> int:
        return F.frame_tail(length, checksum)

    def foreign(self, head: bytes) -> str | None:
        for prefix, why in _FOREIGN:
            if len(head) >= len(prefix) and head.startswith(prefix):
                return why
        return None

    def array_header(
        self, a: np.ndarray, code: int, flags: int, name: bytes, seq: int, impl: ModuleType
    ) -> bytes:
        count = F.dtype_count(a.dtype)  # a datetime64/timedelta64's multiplier, else 0
        header: bytes = impl.pack_header(
            F.KIND_ARRAY, code, flags, a.shape, a.nbytes, name, count, seq
        )
        return header

    def __repr__(self) -> str:
        return "<wirearray framing 'wire'>"


#: The wire format's framing, the default of every encoder and decoder.
WIRE = WireFraming()
