"""The worked hex examples of docs/FORMAT.md, checked byte for byte against the encoder
and decoded back, with both implementations, so the document cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from wirearray import ErrorCode
from wirearray.codec import (
    NEED_DATA,
    Ack,
    Array,
    Decoder,
    Encoder,
    EndOfStream,
    ErrorReport,
    Message,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "FORMAT.md"


def _examples() -> list[bytes]:
    """Every fenced hex dump in section 8, as bytes ('… zeros to XXXX' expands)."""
    text = DOC.read_text(encoding="utf-8").split("## 8. Worked examples", 1)[1]
    text = text.split("\n## ", 1)[0]  # up to the next section
    dumps = []
    for block in re.findall(r"```\n(.*?)```", text, flags=re.S):
        data = bytearray()
        for line in block.splitlines():
            m = re.match(r"([0-9a-f]{4})  ((?:[0-9a-f]{2} ?){1,16})", line)
            if m:
                assert int(m.group(1), 16) == len(data), line
                data += bytes.fromhex(m.group(2))
                continue
            m = re.match(r"([0-9a-f]{4})  … zeros to ([0-9a-f]{4})", line)
            if m:
                data += bytes(int(m.group(2), 16) + 1 - len(data))
        dumps.append(bytes(data))
    return dumps


def _decode_all(data: bytes, impl_name: str) -> list:
    dec = Decoder(implementation=impl_name)
    dec.receive_data(data)
    events = []
    while (ev := dec.next_event()) is not NEED_DATA:
        events.append(ev)
        if isinstance(ev, EndOfStream):
            break
    return events


def test_document_has_the_examples():
    assert len(_examples()) == 9


@pytest.mark.parametrize("impl_name", ["cython", "python"])
def test_examples_byte_for_byte(impl_name):
    if impl_name == "cython":
        from conftest import load_cwire

        load_cwire()
    ex = _examples()
    enc = Encoder(implementation=impl_name)
    assert enc.encode(np.array([1.0, -2.5])) == ex[0]
    enc2 = Encoder(byteorder="native", checksum=True, implementation=impl_name)
    enc2.encode(np.zeros(0))  # seq 0
    assert enc2.encode(np.array([[1, 2, 3], [4, 5, 6]], dtype="<i2"), name="t") == ex[1]
    enc3 = Encoder(implementation=impl_name)
    enc3.encode(np.zeros(1))  # seq 0
    assert enc3.end() == ex[2]
    enc4 = Encoder(implementation=impl_name)
    assert enc4.encode_message({"x": np.array([7], dtype=np.uint8)}) == ex[3]

    assert Encoder(implementation=impl_name).ack(3) == ex[4]
    err = Encoder(implementation=impl_name).error(2, "refused: frame over 65536 bytes")
    assert err == ex[5]
    stamps = np.array(["2026-11-30T22:00:00.00", "NaT"], dtype="M8[10ms]")
    assert Encoder(implementation=impl_name).encode(stamps) == ex[6]
    rec_dt = np.dtype([("id", "<u2"), ("x", "<f4")], align=True)
    records = np.empty(2, rec_dt)
    records.view(np.uint8)[...] = 0xEE  # the padding holds garbage: zero on the wire
    records[0], records[1] = (1, 1.5), (2, -2.0)
    assert Encoder(implementation=impl_name).encode(records) == ex[7]
    text = np.array(["ab", "\u00e9"], dtype="U2")
    assert Encoder(implementation=impl_name).encode(text) == ex[8]

    [first] = _decode_all(ex[0], impl_name)
    assert isinstance(first, Array) and first.array.tolist() == [1.0, -2.5]
    assert first.array.dtype == np.dtype("float64")
    [msg] = _decode_all(ex[3], impl_name)
    assert isinstance(msg, Message) and msg.arrays["x"].tolist() == [7]
    dec = Decoder(implementation=impl_name)
    dec.receive_data(ex[4] + ex[5])
    ack, report = dec.next_event(), dec.next_event()
    assert isinstance(ack, Ack) and (ack.count, ack.seq) == (3, 0)
    assert isinstance(report, ErrorReport) and report.code == ErrorCode.TOO_LARGE
    assert report.reason == "refused: frame over 65536 bytes"
    [times] = _decode_all(ex[6], impl_name)
    assert times.array.dtype == np.dtype("M8[10ms]")
    assert times.array.view(np.int64).tolist() == [179_607_600_000, -(2**63)]
    assert np.array_equal(times.array, stamps, equal_nan=True)
    [rec] = _decode_all(ex[7], impl_name)
    assert rec.array.dtype == rec_dt.newbyteorder("=") and rec.array.dtype.isalignedstruct
    assert rec.array.tolist() == [(1, 1.5), (2, -2.0)]
    assert rec.array.view(np.uint8)[[2, 3, 10, 11]].tolist() == [0, 0, 0, 0]
    [txt] = _decode_all(ex[8], impl_name)
    assert txt.array.dtype == np.dtype("U2") and txt.array.tolist() == ["ab", "\u00e9"]
