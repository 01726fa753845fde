# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, binding=True
# cython: freethreading_compatible=True
"""Compiled core of wirearray: byte-order conversion at memory speed.

Same names, arguments, results and errors as ``wirearray.fallback`` (the pure-Python
implementation); ``wirearray/__init__.py`` picks one of the two.

Layout of the work:
  * validation and result allocation happen with the GIL held, through numpy's C ABI
    read without numpy headers (wa_npyabi.h explains why that is safe);
  * the loops (wa_bswap.h) run afterwards without touching Python objects, with the GIL
    released once an array is large enough for that to pay (GIL_RELEASE_BYTES);
  * the SIMD path (scalar / SSSE3 / AVX2 / NEON) is chosen once at import from CPUID,
    can be forced with WIREARRAY_SIMD or set_simd() for tests and benchmarks, and is a
    process-wide setting read by every call.

Free-threaded CPython (3.14t): the module declares it runs without the GIL
(freethreading_compatible above; Cython < 3.1 ignores the directive).  That holds
because nothing here is shared and mutable except the two process-wide knobs above
and the per-dtype plans of plans.pxi: the type tables, CPUID results, numpy's API
table and the CRC tables are written once at import; the kernels keep no state; the
plan caches only grow, with immutable entries that are never freed, published by a
dict set or one aligned pointer store (plans.pxi says why a racing reader is safe).
_path and _stream_bytes are written only by set_simd() / _set_stream_bytes() (test
and benchmark knobs) and read once per call,
then passed down as arguments, so a call that races with a switch runs wholly on the
old or the new setting, and every path gives the same bytes (plain aligned int loads
and stores: a data race to ThreadSanitizer, never a torn value on a supported CPU).
As with numpy, threads writing the same array at once is the caller's race.

Semantics (documented in the fallback's docstrings, which these functions share):
  hton: values kept, big-endian dtype out; ntoh: memory read as big-endian, native
  dtype out; byteswap: bytes reversed, dtype label kept.
"""

# One extension module from several files, each with one job (a name says which):
#
#   wa.pxd         the C declarations (pyx/wa_*.h), every wa_ / WA_ name
#   dtypes.pxi     per numpy type character and per wire dtype code: sizes, dtypes
#   simd.pxi       the SIMD path and streaming-store threshold (process-wide knobs)
#   convert.pxi    hton / ntoh / byteswap on arrays, htons ... ntohll on ints
#   plans.pxi      per-dtype plans kept between calls: time units, record kernels
#   crc.pxi        crc32c
#   boolean.pxi    bool payloads checked and normalised to bytes 0 and 1
#   format.pxi     header_length / parse_header / pack_header over wa_format.h
#   fastpath.pxi   encode_small / decode_small / send_small / hold_small: a whole
#                  small frame in one call (send_small: and one non-blocking
#                  send(2); hold_small: into send(flush=False)'s buffer); SmallRx:
#                  a decoder's next small array in one call, refilling its
#                  read-ahead with one non-blocking recv(2)
#   bulk.pxi       _recv_payload: a large payload received, swapped and checksummed
#
# and the C they call: wa_cpu.h (byte order, CPU features), wa_bswap.h (swap kernels),
# wa_records.h (record swap plans compiled: SIMD masks, portable micro-ops),
# wa_crc32c.h, wa_bool.h (bool bytes), wa_send.h (send(2) and recv(2) without waiting),
# wa_recv.h (the receive loop of a large payload), wa_format.h (the wire format:
# constants and the one header check), wa_npyabi.h (numpy's C ABI without numpy
# headers).
#
# Directives (the header above, for every file): boundscheck and wraparound are off
# because every index is in range by construction -- a numpy type character (an
# unsigned char) into a 256-entry table, a wire dtype code only after wa_format.h has
# checked it, a dimension below ndim -- and each .pxi says which of these it relies
# on.  cdivision: no division here has a negative operand or a zero divisor.
#
# binding=True (Cython 3's default, set on purpose): the functions are Cython function
# objects, whose signatures inspect.signature() reads from the functions themselves,
# positional-only and keyword-only parameters included (tests/test_api_parity.py
# compares them with the fallback's), and whose docstrings wirearray/__init__.py can
# replace with the fallback's reference text.  Plain builtins (binding=False with
# embedsignature.format=clinic) carry signatures too and time ~7 ns less per direct
# call, but ~10 ns more on the allocating small-array calls of bench/: no clear gain.

from cpython.buffer cimport (
    PyBUF_SIMPLE, PyBuffer_IsContiguous, PyBuffer_Release, PyObject_GetBuffer,
)
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_CheckExact
from cpython.object cimport PyObject
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.ref cimport Py_INCREF
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.memoryview cimport PyMemoryView_Check, PyMemoryView_GET_BUFFER
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EAGAIN, EINTR
from libc.string cimport memcmp, memcpy, memset, strerror

from wa cimport *  # the C headers: wa_... functions and types, WA_... constants

import os
import socket as _socket

import numpy as _np

from wirearray import _format, _records
from wirearray._records import is_record
from wirearray._common import (
    SUPPORTED_CHARS,
    TIME_CHARS,
    check_dtype,
    refuse_raw,
    check_out_source,
    from_raw,
    prepare_out,
    refuse_inplace,
    unsigned64,
)
from wirearray.exceptions import (
    BufferMismatchError,
    MalformedDescriptorError,
    MalformedFrameError,
    UnsupportedDtypeError,
    UnsupportedVersionError,
)

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

# numpy's C-API table and the CRC32C tables (and its CPU check), before any call.
wa_npy_import()
wa_crc32c_init()

# Below this many bytes the GIL stays held: releasing and re-taking it costs
# 50-100 ns, a 64 KiB swap in cache about 3 us, so the release costs < 3% here and
# lets other threads run during anything longer.
cdef enum:
    GIL_RELEASE_BYTES = 65536

cdef int _host_little = wa_host_is_little()

include "dtypes.pxi"
include "simd.pxi"
include "convert.pxi"
include "plans.pxi"
include "crc.pxi"
include "boolean.pxi"
include "format.pxi"
include "fastpath.pxi"
include "bulk.pxi"
