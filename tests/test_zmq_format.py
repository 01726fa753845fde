"""docs/FORMAT.md section 11, "Over ZeroMQ": the worked example's parts, byte for byte, as they
come off a socket, and decoded back, with both implementations of the core."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from zmqutil import bounded, require_zmq

require_zmq()

import zmq  # noqa: E402

from wirearray import _zmq_message  # noqa: E402
from wirearray import zmq as wz  # noqa: E402
from wirearray._implementation import get as get_impl  # noqa: E402
from wirearray.codec import Encoder  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"


def section() -> str:
    text = DOC.read_text(encoding="utf-8").split("\n## 11. Over ZeroMQ", 1)[1]
    return text.split("\n## ", 1)[0]


def documented_parts() -> list[bytes]:
    """The hex dumps of the worked example, one per part, in order."""
    parts = []
    for block in re.findall(r"```\n(part \d+:.*?)```", section(), flags=re.S):
        data = bytearray()
        for line in block.splitlines()[1:]:
            m = re.match(r"([0-9a-f]{4})  ((?:[0-9a-f]{2} ?){1,16})", line)
            assert m, line
            assert int(m.group(1), 16) == len(data), line
            data += bytes.fromhex(m.group(2))
        parts.append(bytes(data))
    return parts


@pytest.fixture
def link():
    ctx = zmq.Context()
    pub = bounded(ctx.socket(zmq.XPUB))
    sub = bounded(ctx.socket(zmq.SUB))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    pub.bind("inproc://format-example")
    sub.connect("inproc://format-example")
    assert pub.recv() == b"\x01"
    yield pub, sub
    ctx.destroy(linger=0)


def test_the_worked_example(link, impl_name):
    pub, sub = link
    parts = documented_parts()
    assert len(parts) == 3
    assert parts[0] == b"ticks"
    assert parts[2] == Encoder(implementation=impl_name).encode(np.array([1.0, -2.5]))
    impl = get_impl(impl_name)
    assert parts[1] == _zmq_message._pack_origin(impl, 0x0123456789ABCDEF, 5)
    assert _zmq_message._parse_origin(impl, memoryview(parts[1])) == (0x0123456789ABCDEF, 5)

    # off a socket: a Sender whose sequence for the topic is at its sixth message
    tx = wz.Sender(pub, implementation=impl_name)
    stream = tx._stream((b"ticks",))
    stream.origin, stream.seq = 0x0123456789ABCDEF, 5
    tx.send(np.array([1.0, -2.5]), envelope=[b"ticks"])
    assert sub.recv_multipart() == parts

    # and back, through a Receiver that first hears of the origin at #6: the six
    # messages before it count as lost
    tx.send(np.array([1.0, -2.5]), envelope=[b"ticks"])
    rx = wz.Receiver(sub, envelope=1, on_gap="count", implementation=impl_name)
    env, a = rx.recv()
    assert env == [b"ticks"] and a.tolist() == [1.0, -2.5] and a.dtype == np.float64
    assert (rx.last_origin, rx.last_seq) == (0x0123456789ABCDEF, 6)
    assert rx.stats["lost"] == 6


def test_the_unsequenced_origin_part(link, impl_name):
    pub, sub = link
    text = section()
    m = re.search(
        r"origin part\s+`((?:[0-9a-f]{2} ?){8})`, then 20 zero bytes, then the "
        r"CRC32C `((?:[0-9a-f]{2} ?){4})`",
        text,
    )
    assert m, "the unsequenced origin part is described"
    want = bytes.fromhex(m.group(1)) + bytes(20) + bytes.fromhex(m.group(2))
    assert want == _zmq_message._pack_origin(get_impl(impl_name), 0, 0)
    wz.send_array(pub, np.array([1.0, -2.5]))
    assert sub.recv_multipart()[0] == want


def test_the_split_example(link):
    pub, sub = link
    a = np.arange(10_000, dtype=np.float64)
    wz.send_array(pub, a, checksum=True)
    parts = sub.recv_multipart()
    assert [len(p) for p in parts] == [32, 64, 80_000, 64]
    assert parts[3][4:] == bytes(60)
    assert b"".join(parts[1:]) == Encoder(checksum=True).encode(a)
