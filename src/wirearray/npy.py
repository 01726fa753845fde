"""``format="npy"``: channels whose every message is a standard .npy record.

For peers that have only numpy.  The .npy format (numpy/lib/format.py, NEP 1) is: the
magic ``\\x93NUMPY``, a version (1.0: 2-byte little-endian header length; 2.0 and 3.0:
4-byte), a header that is a Python dict literal
``{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }`` padded with spaces and a
newline so that the data start 64-byte aligned, then the array's bytes in the
declared byte order and memory order.  Records are laid end to end; a stream ends
when the connection closes at a record boundary.

What a numpy-only peer does (tested with numpy 1.24 to 2.4; ``buffering=0`` matters:
numpy's reader asks a buffered socket file for its position and fails)::

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
the dict numpy writes -- three keys; a quoted ``descr``; ``True``/``False``; a tuple of
integers -- in one linear pass with no recursion, so a header costs microseconds
whatever it holds.  Only the supported numeric dtypes are accepted, and shape,
``max_ndim`` and ``max_frame_bytes`` are checked before anything is allocated -- the
same limits as the wire format.

A wirearray receiver never answers an npy peer, except to report why it refused the
stream: that report is a wire-format ERROR frame (docs/FORMAT.md section 10), which
an npy channel recognises (``\x89WAR``) and raises as PeerError.
"""

from __future__ import annotations

import re
import struct
import sys
from typing import Any

import numpy as np

from . import _format as F
from ._common import check_dtype
from .codec import Decoder
from .exceptions import MalformedFrameError, UnsupportedDtypeError, UnsupportedVersionError

__all__ = ["MAX_NPY_HEADER", "NpyDecoder", "NpyEncoder"]

MAGIC = b"\x93NUMPY"
#: The largest .npy header accepted: numpy's own default ``max_header_size``.
MAX_NPY_HEADER = 10_000

# One token of the header dict: a quoted string, a name, an integer, a punctuation mark,
# or white space.  Anything else fails the match.
_TOKEN = re.compile(r"""'([^'\\]*)'|"([^"\\]*)"|([A-Za-z_]+)|(\d+)L?|([{}():,])|(\s+)""")


class NpyEncoder:
    """Frames arrays as .npy records (payload in the array's own byte order)."""

    def frame(self, array: Any) -> Any:
        a = np.asarray(array)
        if not F.dtype_code(a.dtype):
            check_dtype(a.dtype)
            raise UnsupportedDtypeError(f"wirearray cannot send dtype {a.dtype!r}")
        fortran = a.flags.f_contiguous and not a.flags.c_contiguous and a.ndim > 1
        if not (a.flags.c_contiguous or fortran):
            a = np.ascontiguousarray(a)
        shape = "(" + "".join(f"{n}, " for n in a.shape).rstrip(" ")
        shape = shape[:-1] + ")" if a.ndim > 1 else shape + ")" if a.ndim == 1 else "()"
        text = f"{{'descr': {a.dtype.str!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}"
        raw = text.encode("latin1")
        for version, fmt in ((1, "<H"), (2, "<I")):
            prefix = 6 + 2 + struct.calcsize(fmt)
            pad = -(prefix + len(raw) + 1) % 64
            hlen = len(raw) + pad + 1
            if version == 2 or hlen < 1 << 16:
                break
        header = MAGIC + bytes([version, 0]) + struct.pack(fmt, hlen) + raw + b" " * pad + b"\n"
        payload = a.reshape(-1, order="F" if fortran else "C").view(np.uint8)
        return iter([[header, payload] if payload.size else [header]])


class NpyDecoder(Decoder):
    """A Decoder for a stream of .npy records (same API as codec.Decoder).

    No names, messages, checksums or sequence numbers; a clean end of stream is the
    connection closing at a record boundary.
    """

    _EOF_AT_BOUNDARY_IS_END = True

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._reset_frame()
        self._prefix = 10

    def _room(self, n: int) -> None:
        """A header buffer of at least ``n`` bytes (grown only when a header says so)."""
        if len(self._hdr) < n:
            old = bytes(self._hdr[: self._fill])
            self._hview = None  # type: ignore[assignment]
            self._hdr = bytearray(n)
            self._hdr[: len(old)] = old
            self._hview = memoryview(self._hdr)

    def _foreign(self, head: bytes) -> str | None:
        if head.startswith(F.MAGIC):
            return "the peer sends wirearray frames, not .npy records: use format='wire'"
        return None

    def _first_need(self) -> int:
        return 10

    def _reset_frame(self) -> None:
        super()._reset_frame()
        self._stage = 0

    def _tail_length(self, length: int, checksum: bool) -> int:
        return 0

    def _read_header(self) -> bool:
        hv = self._hview
        if self._stage == 0 and bytes(hv[:4]) == F.MAGIC:  # a wire frame: the peer's report?
            self._stage = 3
            self._need = F.MIN_HEADER
            return False
        if self._stage == 3:
            return self._wire_report()
        if self._stage == 0:  # magic, version and (version 1) the header length
            if bytes(hv[:6]) != MAGIC:
                raise MalformedFrameError(f"not a .npy record (magic {bytes(hv[:6])!r})")
            major, minor = hv[6], hv[7]
            if (major, minor) not in ((1, 0), (2, 0), (3, 0)):
                raise UnsupportedVersionError(f".npy format version {major}.{minor}")
            if major == 1:
                return self._header_text_len(10, hv[8] | hv[9] << 8)
            self._stage = 1
            self._need = 12
            return False
        if self._stage == 1:  # versions 2 and 3: a 4-byte header length
            return self._header_text_len(12, struct.unpack_from("<I", hv, 8)[0])
        self._header_bytes = self._need
        self._header = self._parse(bytes(hv[self._prefix : self._need]))
        _, code, _, shape, length, name, _, _ = self._header
        self._check_array(code, shape, length, name)
        return True

    def _header_text_len(self, prefix: int, hlen: int) -> bool:
        if hlen > MAX_NPY_HEADER:
            raise MalformedFrameError(f".npy header of {hlen} bytes (limit {MAX_NPY_HEADER})")
        self._prefix = prefix
        self._stage = 2
        self._need = prefix + hlen
        self._room(self._need)
        return False

    def _wire_report(self) -> bool:
        """A wire-format frame where a record should start: an ERROR frame is the
        receiver's report (raised as PeerError by the channel); anything else is a
        format mismatch."""
        hv = self._hview
        if self._need == F.MIN_HEADER:
            h = self._impl.header_length(hv[: F.MIN_HEADER])
            if h > F.MIN_HEADER:
                self._need = h
                return False
        header = self._impl.parse_header(hv[: self._need])
        if header[0] != F.KIND_ERROR:
            raise MalformedFrameError(self._foreign(F.MAGIC) or "a wire frame")
        self._header_bytes = self._need
        self._header = header
        return True

    def _parse(self, raw: bytes) -> tuple:
        text = raw.decode("utf-8" if self._hdr[6] == 3 else "latin1", "replace")
        d = _parse_header_dict(text)
        descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
        if len(shape) > F.MAX_NDIM:
            raise MalformedFrameError(f".npy record of {len(shape)} dimensions")
        try:
            dt = np.dtype(descr)
        except (TypeError, ValueError):
            raise MalformedFrameError(f"bad .npy descr {descr!r}") from None
        code = F.dtype_code(dt)
        if not code:
            raise MalformedFrameError(f"wirearray does not accept .npy dtype {descr!r}")
        length = dt.itemsize
        for n in shape:
            length *= n
        big = dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big")
        flags = F.FLAG_BIG_ENDIAN if big else 0
        if fortran and len(shape) > 1:
            flags |= F.FLAG_FORTRAN
        return (F.KIND_ARRAY, code, flags, shape, length, b"", 0, 0)


def _tokens(text: str) -> Any:
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
            d[key] = take("str")
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
