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
``ast.literal_eval``.  wirearray caps the header at 64 KiB, parses it with
``ast.literal_eval`` only after that cap (no code can run: literals only), accepts
only the three keys with the supported numeric dtypes, and checks shape, ``max_ndim``
and ``max_frame_bytes`` before anything is allocated -- the same limits as the wire
format.
"""

from __future__ import annotations

import ast
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
#: The largest .npy header accepted (numpy itself warns above 10 KiB).
MAX_NPY_HEADER = 64 << 10


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
        self._hdr = bytearray(12 + MAX_NPY_HEADER)
        self._hview = memoryview(self._hdr)
        self._reset_frame()
        self._prefix = 10

    def _first_need(self) -> int:
        return 10

    def _reset_frame(self) -> None:
        super()._reset_frame()
        self._stage = 0

    def _tail_length(self, length: int, checksum: bool) -> int:
        return 0

    def _read_header(self) -> bool:
        hv = self._hview
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
        return False

    def _parse(self, raw: bytes) -> tuple:
        try:
            text = raw.decode("utf-8" if self._hdr[6] == 3 else "latin1")
            d = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeError):
            raise MalformedFrameError("the .npy header is not a Python literal") from None
        if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
            raise MalformedFrameError(
                "the .npy header must hold exactly 'descr', 'fortran_order' and 'shape'"
            )
        descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
        if not isinstance(descr, str) or not isinstance(fortran, bool):
            raise MalformedFrameError("bad .npy header: descr must be str, fortran_order bool")
        if not isinstance(shape, tuple) or not all(
            type(n) is int and 0 <= n < 1 << 63 for n in shape
        ):
            raise MalformedFrameError(f"bad .npy shape {shape!r}")
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
