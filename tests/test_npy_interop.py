"""format="npy": wirearray and a peer process that imports only numpy, both directions,
with numpy's own .npy writer and reader on a socket file -- and wirearray's limits on
what a .npy header may claim."""

from __future__ import annotations

import json
import socket
import threading

import numpy as np
import pytest

import wirearray
from netutil import WAIT, finish, run_peer
from wirearray import FrameTooLargeError, MalformedFrameError

# The recipe documented in wirearray.npy: an unbuffered socket file.
NUMPY_ONLY_SENDER = """
import socket, json
from numpy.lib import format as npformat
host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
f = sock.makefile("wb", buffering=0)
for spec in json.loads(sys.argv[2]):
    a = np.arange(spec["n"], dtype=spec["dtype"]).reshape(spec["shape"])
    if spec.get("fortran"):
        a = np.asfortranarray(a)
    npformat.write_array(f, a)
f.close()
sock.close()
assert "wirearray" not in sys.modules
"""

NUMPY_ONLY_RECEIVER = """
import socket
from numpy.lib import format as npformat
host, port = sys.argv[1].rsplit(":", 1)
sock = socket.create_connection((host, int(port)))
f = sock.makefile("rb", buffering=0)
for _ in range(int(sys.argv[2])):
    a = npformat.read_array(f)
    print(a.dtype.str, a.shape, a.flags.f_contiguous, float(np.real(a).sum()),
          flush=True)
assert "wirearray" not in sys.modules
"""

SPECS = [
    {"dtype": "<f8", "n": 12, "shape": [3, 4]},
    {"dtype": ">i4", "n": 6, "shape": [6]},
    {"dtype": "<c16", "n": 6, "shape": [2, 3], "fortran": True},
    {"dtype": "|u1", "n": 0, "shape": [0, 5]},
    {"dtype": "<f4", "n": 1 << 20, "shape": [1024, 1024]},
]


def _expected(spec):
    a = np.arange(spec["n"], dtype=spec["dtype"]).reshape(spec["shape"])
    return np.asfortranarray(a) if spec.get("fortran") else a


def test_numpy_peer_sends_wirearray_receives():
    with wirearray.listen("127.0.0.1:0", format="npy", timeout=WAIT) as listener:
        host, port = listener.address
        proc = run_peer(NUMPY_ONLY_SENDER, f"{host}:{port}", json.dumps(SPECS))
        with listener.accept() as ch:
            got = list(ch)  # the stream ends when the numpy peer closes
        finish(proc)
    assert len(got) == len(SPECS)
    for a, spec in zip(got, SPECS, strict=True):
        want = _expected(spec)
        assert a.shape == want.shape and np.array_equal(a, want)
        assert a.dtype == want.dtype.newbyteorder("=")  # delivered in native order
        if spec.get("fortran"):
            assert a.flags.f_contiguous and not a.flags.c_contiguous


def test_wirearray_sends_numpy_peer_receives():
    arrays = [_expected(s) for s in SPECS]
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    proc = run_peer(NUMPY_ONLY_RECEIVER, f"127.0.0.1:{port}", str(len(arrays)))
    srv.settimeout(WAIT)
    conn, _ = srv.accept()
    srv.close()
    with wirearray.Channel(conn, format="npy", timeout=WAIT) as ch:
        for a in arrays:
            ch.send(a)
    lines = finish(proc).splitlines()
    for line, a in zip(lines, arrays, strict=True):
        assert line.startswith(a.dtype.str)
        assert f"{float(np.real(a).sum())}" in line


def _serve_bytes(data: bytes):
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def run():
        conn, _ = srv.accept()
        conn.sendall(data)
        conn.close()
        srv.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return port, t


def _npy_record(header: str, payload: bytes = b"") -> bytes:
    raw = header.encode("latin1")
    pad = -(10 + len(raw) + 1) % 64
    return (
        b"\x93NUMPY\x01\x00"
        + (len(raw) + pad + 1).to_bytes(2, "little")
        + raw
        + b" " * pad
        + b"\n"
        + payload
    )


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }",
            FrameTooLargeError,
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
            FrameTooLargeError,
        ),
        ("{'descr': 'O', 'fortran_order': False, 'shape': (3,), }", MalformedFrameError),
        # a record list holding an object field, or code instead of a format
        (
            "{'descr': [('a', '<f8'), ('o', '|O')], 'fortran_order': False, 'shape': (3,), }",
            MalformedFrameError,
        ),
        ("{'descr': [('a', open)], 'fortran_order': False, 'shape': (3,), }", MalformedFrameError),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", MalformedFrameError),
        ("__import__('os').system('true')", MalformedFrameError),
        ("{'descr': '<f8', 'fortran_order': 0, 'shape': (3,), }", MalformedFrameError),
        ("{'descr': '<f8', 'shape': (3,), }", MalformedFrameError),
        ("(" * 5000 + ")" * 5000, MalformedFrameError),
    ],
)
def test_hostile_npy_headers_rejected_before_allocation(header, error):
    port, t = _serve_bytes(_npy_record(header))
    with wirearray.connect(("127.0.0.1", port), format="npy", timeout=WAIT) as ch:
        with pytest.raises(error):
            ch.recv()
    t.join(WAIT)


def test_npy_header_length_limit():
    data = b"\x93NUMPY\x02\x00" + (1 << 30).to_bytes(4, "little")
    port, t = _serve_bytes(data)
    with wirearray.connect(("127.0.0.1", port), format="npy", timeout=WAIT) as ch:
        with pytest.raises(MalformedFrameError, match="header of"):
            ch.recv()
    t.join(WAIT)


def test_npy_channel_refuses_messages():
    a, b = socket.socketpair()
    with wirearray.Channel(a, format="npy") as ch, pytest.raises(wirearray.UsageError):
        ch.send_many({"x": np.zeros(2)})
    b.close()


@pytest.mark.parametrize(("sender", "receiver"), [("wire", "npy"), ("npy", "wire")])
def test_a_format_mismatch_says_what_to_set_on_both_ends(sender, receiver):
    """One end streams wire frames and the other .npy records (or the reverse): the
    receiver's error names the format the peer speaks, for the API and the command line."""
    a, b = socket.socketpair()
    with wirearray.Channel(a, format=sender, timeout=WAIT) as tx:
        tx.send(np.arange(4.0))
        with wirearray.Channel(b, format=receiver, timeout=WAIT) as rx:
            with pytest.raises(MalformedFrameError) as exc:
                rx.recv()
            rx.abort()
        tx.abort()
    assert f"format='{sender}' on both ends" in str(exc.value)
    assert f"--format {sender}" in str(exc.value)
