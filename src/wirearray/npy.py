"""``format="npy"``: channels whose every message is a standard .npy record.

For peers that have only numpy.  The .npy format (numpy/lib/format.py, NEP 1) is: the
magic ``\\x93NUMPY``, a version (1.0: 2-byte little-endian header length; 2.0 and 3.0:
4-byte), a header that is a Python dict literal
``{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }`` padded with spaces and a
newline so that the data start 64-byte aligned, then the array's bytes in the
declared byte order and memory order.  Records are laid end to end; a stream ends
when the connection closes at a record boundary.

What a numpy-only peer does (tested with numpy 1.24 to 2.4; ``buffering=0`` matters:
numpy's reader asks a buffered socket file for its position and fails), here against
a wirearray program that answers each array with one (``wirearray serve`` answers
nothing: the README's numpy-only client half-closes and waits for serve's close)::

    import socket, numpy as np
    from numpy.lib import format as npformat
    sock = socket.create_connection(("127.0.0.1", 5555))
    f = sock.makefile("rwb", buffering=0)
    npformat.write_array(f, np.arange(10.0))      # send one array
    a = npformat.read_array(f)                    # receive one (np.load needs a seekable file)

Safety: numpy's reader allocates whatever a header claims and parses the header with
``ast.literal_eval``, whose cost grows faster than the header (a 64 KiB literal of
nested tuples took 0.3 s of CPU and 31 MiB to reject).  wirearray caps the header at
numpy's own default limit (``max_header_size``, 10,000 bytes), holds a buffer only as
large as the header announced, and reads it with a small parser of its own for exactly
the dict numpy writes -- three keys; a quoted ``descr``, or a record's list of
``(name, format[, shape])`` tuples; ``True``/``False``; a tuple of integers -- in one
linear pass that stops at the first token out of place, so a header costs a fraction
of a millisecond whatever it holds.  A record's list nests at most
``_format.MAX_DEPTH`` deep and holds at most ``_format.MAX_FIELDS`` fields (the wire
format's own descriptor limits), and becomes a dtype through numpy's own
``numpy.lib.format.descr_to_dtype`` (no ``eval``).  Only dtypes the wire format
carries are accepted (records whose fields are all in one byte order: a frame has one
byte-order flag), and shape, ``max_ndim`` and ``max_frame_bytes`` are checked before
anything is allocated -- the same limits as the wire format.

A wirearray receiver never answers an npy peer, except to report why it refused the
stream: that report is a wire-format ERROR frame (docs/FORMAT.md section 10), which
an npy channel recognises (``\x89WAR``) and raises as PeerError.

The codec reads and writes .npy records through :data:`NPY`, a framing
(``wirearray.codec.Framing``) given to its encoder and decoder:
``Decoder(framing=NPY)``, ``Encoder(framing=NPY)``; :func:`NpyDecoder` and
:func:`NpyEncoder` make them.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib import format as npformat

from . import _format as F
from ._decoder import Decoder
from ._encoder import Encoder
from ._sizes import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_NDIM
from .exceptions import MalformedFrameError, UnsupportedVersionError, UsageError

if TYPE_CHECKING:
    from ._types import Header, Implementation

__all__ = ["MAGIC", "MAX_NPY_HEADER", "NPY", "NpyDecoder", "NpyEncoder", "NpyFraming"]

MAGIC = b"\x93NUMPY"
#: The largest .npy header accepted: numpy's own default ``max_header_size``.
MAX_NPY_HEADER = 10_000

# One token of the header dict: a quoted string, a name, an integer, a punctuation mark,
# or white space.  Anything else fails the match.
_TOKEN = re.compile(r"""'([^'\\]*)'|"([^"\\]*)"|([A-Za-z_]+)|(\d+)L?|([{}():,\[\]])|(\s+)""")


class NpyFraming:
    """.npy records (numpy/lib/format.py, NEP 1) as a framing of the codec.

    No names, messages, checksums, sequence numbers or control frames; a record
    travels in its array's own byte order and memory order (C, or Fortran for an array
    that is only Fortran-contiguous); a clean end of stream is the input ending at a
    record boundary.  A wire-format ERROR frame where a record should start is the
    receiver's report (an :class:`~wirearray.codec.ErrorReport`).
    """

    name = "npy"
    first_need = 10  # magic, version and (version 1.0) the header length
    eof_at_boundary_is_end = True
    sequenced = False
    whole_frames = False
    messages = False
    control_frames = False
    options = False

    def read_header(self, head: memoryview, impl: ModuleType) -> int | Header:
        if head[:4] == F.MAGIC:  # a wire frame: the peer's report?
            return self._wire_report(head, impl)
        if head[:6] != MAGIC:
            raise MalformedFrameError(f"not a .npy record (magic {bytes(head[:6])!r})")
        major, minor = head[6], head[7]
        if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
            raise UnsupportedVersionError(f".npy format version {major}.{minor}")
        if major == 1:
            prefix, hlen = 10, head[8] | head[9] << 8
        elif len(head) < 12:  # versions 2 and 3: a 4-byte header length
            return 12
        else:
            prefix, hlen = 12, struct.unpack_from("<I", head, 8)[0]
        if hlen > MAX_NPY_HEADER:
            raise MalformedFrameError(f".npy header of {hlen} bytes (limit {MAX_NPY_HEADER})")
        if len(head) < prefix + hlen:
            return prefix + hlen
        text = bytes(head[prefix : prefix + hlen]).decode(
            "utf-8" if major == 3 else "latin1", "replace"
        )
        return _header(_parse_header_dict(text))

    def _wire_report(self, head: memoryview, impl: ModuleType) -> int | Header:
        """A wire-format frame where a record should start: an ERROR frame is the
        receiver's report (raised as PeerError by the channel); anything else is a
        format mismatch."""
        if len(head) < F.MIN_HEADER:
            return F.MIN_HEADER
        if len(head) == F.MIN_HEADER:
            h: int = impl.header_length(head)
            if h > F.MIN_HEADER:
                return h
        header: Header = impl.parse_header(head)
        if header[0] != F.KIND_ERROR:
            raise MalformedFrameError(self.foreign(F.MAGIC) or "a wire frame")
        return header

    def tail_length(self, length: int, checksum: bool) -> int:
        return 0

    def foreign(self, head: bytes) -> str | None:
        if head.startswith(F.MAGIC):
            return (
                "the peer sends wirearray frames, not .npy records: use format='wire' on "
                "both ends (--format wire with the command line)"
            )
        return None

    def array_header(
        self, a: np.ndarray, code: int, flags: int, name: bytes, seq: int, impl: ModuleType
    ) -> bytes:
        if name:
            raise UsageError(".npy records carry no names")
        fortran = bool(flags & F.FLAG_FORTRAN)
        shape = "(" + "".join(f"{n}, " for n in a.shape).rstrip(" ")
        shape = shape[:-1] + ")" if a.ndim > 1 else shape + ")" if a.ndim == 1 else "()"
        descr = npformat.dtype_to_descr(a.dtype)  # a record's: numpy's list of fields
        text = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
        raw = text.encode("latin1")
        for version, fmt in ((1, "<H"), (2, "<I")):
            prefix = 6 + 2 + struct.calcsize(fmt)
            pad = -(prefix + len(raw) + 1) % 64
            hlen = len(raw) + pad + 1
            if version == 2 or hlen < 1 << 16:
                break
        return MAGIC + bytes([version, 0]) + struct.pack(fmt, hlen) + raw + b" " * pad + b"\n"

    def __repr__(self) -> str:
        return "<wirearray framing 'npy'>"


#: The .npy framing: give it to ``Encoder(framing=...)`` and ``Decoder(framing=...)``.
NPY = NpyFraming()


def NpyDecoder(
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_ndim: int = DEFAULT_MAX_NDIM,
    keep_wire_order: bool = False,
    implementation: Implementation | None = None,
) -> Decoder:
    """A :class:`~wirearray.codec.Decoder` of .npy records (``framing=NPY``), with the
    same API; limits as there."""
    return Decoder(
        max_frame_bytes=max_frame_bytes,
        max_ndim=max_ndim,
        keep_wire_order=keep_wire_order,
        implementation=implementation,
        framing=NPY,
    )


def NpyEncoder(implementation: Implementation | None = None) -> Encoder:
    """An :class:`~wirearray.codec.Encoder` of .npy records (``framing=NPY``): each
    array in its own byte order, C order unless it is only Fortran-contiguous."""
    return Encoder(framing=NPY, implementation=implementation)


def _header(d: dict[str, Any]) -> Header:
    """The fields of a .npy header dict in the wire format's terms."""
    descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
    if len(shape) > F.MAX_NDIM:
        raise MalformedFrameError(f".npy record of {len(shape)} dimensions")
    try:
        dt = np.dtype(descr) if isinstance(descr, str) else npformat.descr_to_dtype(descr)
    except (TypeError, ValueError, KeyError, IndexError):
        raise MalformedFrameError(f"bad .npy descr {str(descr)[:200]!r}") from None
    try:
        code = F.check_wire_dtype(dt)
    except UsageError as exc:
        raise MalformedFrameError(f"wirearray does not accept .npy dtype {dt}: {exc}") from None
    length = dt.itemsize
    for n in shape:
        length *= n
    big = dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big")
    if code == F.CODE_RECORD:  # every field in one byte order: the frame's
        big = dt == dt.newbyteorder(">")
        if not big and dt != dt.newbyteorder("<"):
            raise MalformedFrameError(
                f".npy record dtype {dt} mixes byte orders (wirearray takes records whose "
                "fields are all in one)"
            )
        dt = dt.newbyteorder("=")
    flags = F.FLAG_BIG_ENDIAN if big else 0
    if fortran and len(shape) > 1:
        flags |= F.FLAG_FORTRAN
    return (F.KIND_ARRAY, code, flags, shape, length, b"", F.dtype_count(dt), 0)


def _tokens(text: str) -> Iterator[tuple[str, Any]]:
    """The tokens of a header text, one at a time (so a bad header stops early)."""
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise MalformedFrameError(f"the .npy header is not a dict literal (at {pos})")
        pos = m.end()
        s1, s2, name, num, punct, _space = m.groups()
        if s1 is not None or s2 is not None:
            yield ("str", s1 if s1 is not None else s2)
        elif name is not None:
            if name not in ("True", "False"):
                raise MalformedFrameError(f"the .npy header holds a name {name[:20]!r}")
            yield ("bool", name == "True")
        elif num is not None:
            if len(num) > 20:
                raise MalformedFrameError("a .npy shape entry of more than 20 digits")
            yield ("int", int(num))
        elif punct is not None:
            yield (punct, None)
    yield ("end", None)


def _record_descr(take: Any, current: Any) -> list[Any]:
    """A record's descr as numpy writes it, ``[('x', '<f4'), ('v', '<f4', (3,)),
    ('n', [...]), ('', '|V4')]``, read token by token (``take(kind)`` consumes one of
    that kind; ``current()`` is the next).  Nested lists at most F.MAX_DEPTH deep, at
    most F.MAX_FIELDS fields in all, titles refused; MalformedFrameError otherwise."""
    fields = 0

    def record(depth: int) -> list[Any]:
        nonlocal fields
        if depth > F.MAX_DEPTH:
            raise MalformedFrameError(f".npy record descr nested over {F.MAX_DEPTH} deep")
        take("[")
        out: list[Any] = []
        while current()[0] != "]":
            fields += 1
            if fields > F.MAX_FIELDS:
                raise MalformedFrameError(f".npy record descr of over {F.MAX_FIELDS} fields")
            take("(")
            name = take("str")
            take(",")
            fmt = take("str") if current()[0] == "str" else record(depth + 1)
            item: tuple[Any, ...] = (name, fmt)
            if current()[0] == ",":
                take(",")
                if current()[0] == "(":
                    take("(")
                    dims = []
                    while current()[0] != ")":
                        dims.append(take("int"))
                        if len(dims) > F.MAX_SUBARRAY_NDIM:
                            raise MalformedFrameError(".npy record descr: subarray too deep")
                        if current()[0] != ")":
                            take(",")
                    take(")")
                    item = (name, fmt, tuple(dims))
                elif current()[0] == "int":
                    item = (name, fmt, take("int"))
            take(")")
            out.append(item)
            if current()[0] != "]":
                take(",")
        take("]")
        return out

    if current()[0] != "[":
        take("str")  # raises: neither a dtype string nor a record list
    return record(1)


def _parse_header_dict(text: str) -> dict[str, Any]:
    """The dict of a .npy header, as numpy writes it: ``{'descr': '<f8',
    'fortran_order': False, 'shape': (3, 4), }`` -- keys in any order, either quote,
    optional trailing commas, white space anywhere.  One linear pass over at most
    MAX_NPY_HEADER characters, stopping at the first token out of place; raises
    MalformedFrameError for anything else."""
    bad = MalformedFrameError(
        "the .npy header must be a dict of exactly 'descr', 'fortran_order' and 'shape'"
    )
    stream = _tokens(text)
    tok = next(stream)

    def take(kind: str) -> Any:
        nonlocal tok
        if tok[0] != kind:
            raise bad
        value, tok = tok[1], next(stream)
        return value

    take("{")
    d: dict[str, Any] = {}
    while tok[0] != "}":
        key = take("str")
        take(":")
        if key in d or key not in ("descr", "fortran_order", "shape"):
            raise bad
        if key == "descr":
            d[key] = take("str") if tok[0] == "str" else _record_descr(take, lambda: tok)
        elif key == "fortran_order":
            d[key] = take("bool")
        else:
            take("(")
            shape = []
            while tok[0] != ")":
                n = take("int")
                if n >= 1 << 63:
                    raise MalformedFrameError(f"bad .npy shape entry {n}")
                shape.append(n)
                if len(shape) > F.MAX_NDIM:
                    raise MalformedFrameError(f".npy record of more than {F.MAX_NDIM} dimensions")
                if tok[0] != ")":
                    take(",")
            take(")")
            d[key] = tuple(shape)
        if tok[0] != "}":
            take(",")
    take("}")
    if tok[0] != "end" or len(d) != 3:
        raise bad
    return d
