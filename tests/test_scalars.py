"""htons/htonl/ntohs/ntohl against the socket module; the 64-bit pair against struct.

The reference is the running interpreter's socket module itself, never a table of
versions: CPython 3.14 changed socket's rules (gh-132987: any object with __index__
accepted by htonl/ntohl, ValueError for negative values), and a future change must show
up here as a failing test on the interpreter that brings it.
"""

from __future__ import annotations

import operator
import socket
import struct
import sys

import numpy as np
import pytest

VALUES16 = [0, 1, 0x12, 0x1234, 0x8000, 0xFF00, 0xFFFF, True, False]
VALUES32 = [*VALUES16, 0x12345678, 0x80000000, 0xFFFFFFFF]
VALUES64 = [*VALUES32, 0x0102030405060708, 2**63, 2**64 - 1]


class Index:
    """An integer-like object that is not an int."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class BadIndex:
    def __index__(self) -> int:
        raise ZeroDivisionError("__index__ failed")


class IntSub(int):
    """An int subclass whose __index__ lies: its value as an int is what counts."""

    def __index__(self) -> int:
        return 99


def _kinds(v: int) -> list[object]:
    """The same integer value as each kind of argument socket's functions meet."""
    kinds: list[object] = [v, IntSub(v), Index(v)]
    if 0 <= v < 2**64:
        kinds += [np.uint64(v)]
    if -(2**63) <= v < 2**63:
        kinds += [np.int64(v)]
    if v in (0, 1):
        kinds += [bool(v)]
    return kinds


# negative, in range at 16/32/64 bits, too large at each width, and non-integers
VALUES = [
    -(2**70),
    -(2**40),
    -1,
    0,
    1,
    0x1234,
    0xFFFF,
    2**16,
    0x12345678,
    2**32 - 1,
    2**32,
    0x0102030405060708,
    2**64 - 1,
    2**64,
    2**200,
]
TABLE = [x for v in VALUES for x in _kinds(v)] + [
    1.5,
    2.0,
    "1",
    None,
    b"\x01",
    BadIndex(),
    Index(-1),
    object(),
    [1],
    1j,
]


def _outcome(fn, x):
    try:
        return ("ok", fn(x))
    except Exception as exc:
        return ("error", type(exc))


def _outcome_with_message(fn, x):
    try:
        return ("ok", fn(x))
    except Exception as exc:
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize("name", ["htons", "ntohs", "htonl", "ntohl"])
def test_table_same_as_socket(impl, name):
    """Every kind of argument: socket's result, or socket's exception and message."""
    ours, theirs = getattr(impl, name), getattr(socket, name)
    for x in TABLE:
        assert _outcome_with_message(ours, x) == _outcome_with_message(theirs, x), repr(x)


def _value(x) -> int | None:
    try:
        return operator.index(x)
    except Exception:
        return None


@pytest.mark.parametrize("name", ["htonll", "ntohll"])
def test_64_bit_pair_follows_socket_htonl(impl, name):
    """htonll/ntohll accept what socket.htonl accepts and raise what it raises, with the
    range widened to 64 bits: an argument socket refuses for its type or sign, ours
    refuses with the same exception (and, for a negative value, socket's message); a
    value from 2**32 to 2**64-1 that socket finds too large, ours swaps."""
    fn = getattr(impl, name)
    for x in TABLE:
        ref = _outcome_with_message(socket.htonl, x)
        got = _outcome_with_message(fn, x)
        v = _value(x)
        too_large_for_32 = v is not None and v >= 2**32
        if ref[0] == "ok" or (too_large_for_32 and ref[1] is OverflowError and v < 2**64):
            assert got == ("ok", struct.unpack("=Q", struct.pack("!Q", v))[0]), repr(x)
        elif too_large_for_32 and ref[1] is OverflowError:
            assert got[:2] == ("error", OverflowError), repr(x)
        elif v is not None and v < 0 and ref[1] is not TypeError:
            assert got == ref, repr(x)  # socket's exception and message for negatives
        else:
            assert got[:2] == ref[:2], repr(x)


def test_rule_table_read_from_socket():
    """What wirearray read from socket at import is CPython's documented rule for this
    version (3.14: gh-132987), so the probe itself cannot silently go wrong."""
    from wirearray import _common

    if sys.implementation.name != "cpython":
        pytest.skip("the rule per version is CPython's")
    new = sys.version_info >= (3, 14)
    assert _common.HTONL_TAKES_INDEX is new
    assert _common.NEGATIVE_ERROR is (ValueError if new else OverflowError)
    assert _common.TOO_LARGE_ERROR is OverflowError


@pytest.mark.parametrize("takes_index", [False, True])
def test_64_bit_rules_of_either_socket(impl, monkeypatch, takes_index):
    """The 64-bit pair under both rule sets, whichever interpreter runs the test: the
    3.10-3.13 one (ints only, OverflowError for negatives) and the 3.14 one (__index__
    accepted, ValueError).  The running interpreter's own set is checked against socket
    above; this covers the other branch of unsigned64."""
    from wirearray import _common

    negative = ValueError if takes_index else OverflowError
    monkeypatch.setattr(_common, "HTONL_TAKES_INDEX", takes_index)
    monkeypatch.setattr(_common, "NEGATIVE_ERROR", negative)
    fn = impl.htonll
    assert fn(IntSub(1)) == fn(1)
    if takes_index:
        assert fn(Index(2**40)) == fn(2**40)
        assert fn(np.uint64(2**63)) == fn(2**63)
        with pytest.raises(ZeroDivisionError):
            fn(BadIndex())
    else:
        for x in (Index(1), np.uint64(1), BadIndex()):
            with pytest.raises(TypeError):
                fn(x)
    for x in (-1, IntSub(-1)) + ((Index(-1),) if takes_index else ()):
        with pytest.raises(negative):
            fn(x)
    for x in (1.0, "1", None):
        with pytest.raises(TypeError):
            fn(x)


@pytest.mark.parametrize(
    ("name", "too_large"),
    [("htons", 2**16), ("ntohs", 2**16), ("htonl", 2**32), ("ntohl", 2**32)],
)
def test_errors_and_arguments_as_socket(impl, name, too_large):
    """Out-of-range values raise socket's exception and message (a negative one
    OverflowError, or ValueError from CPython 3.14 on), and the argument is
    positional-only, as socket's is."""
    ours, theirs = getattr(impl, name), getattr(socket, name)
    for x in (-1, too_large):
        with pytest.raises((OverflowError, ValueError)) as ref:
            theirs(x)
        with pytest.raises(type(ref.value)) as exc:
            ours(x)
        assert type(exc.value) is type(ref.value) and str(exc.value) == str(ref.value), x
    with pytest.raises(TypeError):
        ours(x=1)


@pytest.mark.parametrize("name", ["htonll", "ntohll"])
def test_64_bit_pair(impl, name):
    fn = getattr(impl, name)
    for x in VALUES64:
        expected = struct.unpack("=Q", struct.pack("!Q", x))[0]
        assert fn(x) == expected and type(fn(x)) is int
        assert fn(fn(x)) == x
    for x in (2**64, 2**100):
        with pytest.raises(OverflowError):
            fn(x)
    with pytest.raises((OverflowError, ValueError)) as ref:
        socket.htonl(-1)
    with pytest.raises(type(ref.value)):  # negative: socket.htonl's exception
        fn(-1)
    for x in (1.0, "1", None):  # never an integer, under any version's rules
        with pytest.raises(TypeError):
            fn(x)


def test_32_bit_values_agree_with_struct(impl):
    for x in VALUES32:
        assert impl.htonl(x) == struct.unpack("=I", struct.pack("!I", x))[0]
        assert impl.htons(x & 0xFFFF) == struct.unpack("=H", struct.pack("!H", x & 0xFFFF))[0]
