"""htons/htonl/ntohs/ntohl against the socket module; the 64-bit pair against struct."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

VALUES16 = [0, 1, 0x12, 0x1234, 0x8000, 0xFF00, 0xFFFF, True, False]
VALUES32 = [*VALUES16, 0x12345678, 0x80000000, 0xFFFFFFFF]
VALUES64 = [*VALUES32, 0x0102030405060708, 2**63, 2**64 - 1]
BAD = [
    -1,
    -(2**70),
    2**16,
    2**32,
    2**64,
    2**200,
    1.5,
    "1",
    None,
    b"\x01",
    np.int64(5),
    np.uint16(7),
]


def _outcome(fn, x):
    try:
        return ("ok", fn(x))
    except Exception as exc:
        return ("error", type(exc))


@pytest.mark.parametrize("name", ["htons", "ntohs", "htonl", "ntohl"])
def test_same_as_socket(impl, name):
    ours, theirs = getattr(impl, name), getattr(socket, name)
    for x in VALUES32 + BAD:
        assert _outcome(ours, x) == _outcome(theirs, x), x


@pytest.mark.parametrize(
    ("name", "too_large"),
    [("htons", 2**16), ("ntohs", 2**16), ("htonl", 2**32), ("ntohl", 2**32)],
)
def test_errors_and_arguments_as_socket(impl, name, too_large):
    """Out-of-range values raise socket's message (naming the function), and the
    argument is positional-only, as socket's is."""
    ours, theirs = getattr(impl, name), getattr(socket, name)
    for x in (-1, too_large):
        with pytest.raises(OverflowError) as exc:
            ours(x)
        with pytest.raises(OverflowError) as ref:
            theirs(x)
        assert str(exc.value) == str(ref.value), x
    with pytest.raises(TypeError):
        ours(x=1)


@pytest.mark.parametrize("name", ["htonll", "ntohll"])
def test_64_bit_pair(impl, name):
    fn = getattr(impl, name)
    for x in VALUES64:
        expected = struct.unpack("=Q", struct.pack("!Q", x))[0]
        assert fn(x) == expected and type(fn(x)) is int
        assert fn(fn(x)) == x
    for x in (-1, 2**64, 2**100):
        with pytest.raises(OverflowError):
            fn(x)
    for x in (1.0, "1", None, np.int64(3)):  # htonl's rule: int (or subclass) only
        with pytest.raises(TypeError):
            fn(x)


def test_32_bit_values_agree_with_struct(impl):
    for x in VALUES32:
        assert impl.htonl(x) == struct.unpack("=I", struct.pack("!I", x))[0]
        assert impl.htons(x & 0xFFFF) == struct.unpack("=H", struct.pack("!H", x & 0xFFFF))[0]
