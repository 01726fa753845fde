"""Streaming methods for the benchmarks, and the process that receives them.

Each method moves ``count`` copies of one array from a sender (the benchmarking
process) to a receiver (a separate process started by :class:`StreamServer`) over TCP
loopback, and does the whole job: the receiver ends up with an array of the right
dtype, shape and values, checked on the first run of every (method, dtype, shape).
Both sides of every method live here, side by side, so what is compared is visible in
one place.  Used by ``wirearray bench stream`` (:mod:`.stream`), ``wirearray demo``
(:mod:`.demo`) and the pytest-benchmark suite (bench/bench_stream.py, through
bench/streampeers.py).

The methods, and what each receiver does with its buffers:

* the ceiling: ``sendall`` / ``recv_into`` of the array's bytes into one reused
  array (no framing, no byte order, dtype and shape agreed in advance);
* wirearray in native and network byte order, into one reused ``out=`` array or into
  a fresh array per message;
* a raw Python framing: a 16-byte length header and the payload with one ``sendall``,
  read with ``recv_into`` (header, then payload): the least a framed protocol costs
  in Python, the bar for the per-message rows;
* the peers a user would pick instead: the textbook ``astype('>f8')`` + ``sendall`` /
  ``recv_into`` + ``byteswap(inplace=True)``; pickle protocol 5 with out-of-band
  buffers; ``multiprocessing.connection`` (raw bytes, and pickled objects); pyzmq's
  documented ``send_array``/``recv_array`` recipe; pyarrow IPC (tensors, and a
  RecordBatch stream); numpy's ``.npy`` ``write_array``/``read_array`` on a socket
  file.  pyzmq and pyarrow are optional: :func:`unavailable` says why a method cannot
  run.

The control protocol, per TCP connection (one connection per run)::

    sender -> receiver   a JSON request line: method, dtype, shape, count, check,
                         and optionally tls, authkey, zmq (an endpoint to connect to)
                         [TLS handshake, authkey handshake]
    receiver -> sender   b"r": ready -- buffers allocated (and touched), zmq socket
                         connected; the sender's clock starts after this byte
    sender -> receiver   the method's own traffic (on the TCP socket or over zmq)
    receiver -> sender   b"k" (or b"x" when the check failed), then a JSON line of
                         the receiver's resource usage during the run (page faults)

Setting up (connection, buffers, zmq sockets) therefore stays out of the timed part:
what is timed is the stream, from the first byte sent to the receiver's ack.

Only the public API is used (``wirearray.Channel``, ``wirearray.auth``), with one
exception: the pickle 5 peer sends its parts with ``send_parts``, the helper behind
wirearray's own sends (one ``sendmsg``, resumed after partial sends), so that the two
are compared on the same system calls.  It is imported in :func:`send_pickle5` alone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib import format as npformat

import wirearray
import wirearray.auth

if TYPE_CHECKING:
    import ssl

try:  # page-fault counts (Unix only)
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

AUTHKEY = b"benchmark-authkey-0123456789abcdef"
CEILING = "raw"
_LITTLE = sys.byteorder == "little"


def make_array(dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """1, 2, 3, ... in ``dtype`` (the same on both sides, so the receiver can check):
    a dtype string, or a record's descr as :func:`dtype_spec` gives it (every field
    holds the element's number)."""
    n = int(np.prod(shape))
    return np.arange(1, n + 1, dtype=np.float64).astype(_dtype_of(dtype), copy=False).reshape(shape)


def dtype_spec(dt: np.dtype) -> Any:
    """A dtype as the request line carries it (JSON): its ``str``, or for a record
    numpy's .npy descr (a list of fields)."""
    from numpy.lib import format as npformat

    return npformat.dtype_to_descr(dt) if dt.names else dt.str


def _dtype_of(spec: Any) -> np.dtype:
    if isinstance(spec, str):
        return np.dtype(spec)
    from numpy.lib import format as npformat

    def tuples(x: Any) -> Any:  # JSON made the descr's tuples lists
        if isinstance(x, list) and x and isinstance(x[0], str):  # a field
            return tuple(tuples(v) if isinstance(v, list) else v for v in x)
        if isinstance(x, list) and x and all(isinstance(v, int) for v in x):  # a shape
            return tuple(x)
        return [tuples(v) for v in x] if isinstance(x, list) else x

    return npformat.descr_to_dtype(tuples(spec))


@dataclass
class Link:
    """What a method's two sides talk over: the connected TCP socket (TLS and authkey
    already done), and for zmq methods a connected zmq PAIR socket."""

    sock: socket.socket
    zmq: Any = None


Sender = Callable[[Link, np.ndarray, int], None]
#: ``recv(link, out, count) -> the last array received``; ``out`` is an array of the
#: expected dtype and shape, allocated and touched before the clock starts: receivers
#: that reuse a buffer receive into it, the others use it only for what their
#: protocol does not carry (the byte-only methods need dtype and shape in advance).
Receiver = Callable[[Link, np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class Method:
    """One way of streaming arrays: its two sides and what it is compared with.

    Attributes:
        key: short identifier (request lines, pytest ids, ``--methods``).
        name: the label in tables and plots.
        send, recv: the two sides.
        family: "ceiling", "wirearray" or "peer" (plot styles).
        counterpart: key of the wirearray method doing the same job (same buffer
            policy; network order against a byte-swapping peer): the "wirearray x"
            ratios are counterpart speed / this method's speed.
        carries: whether dtype and shape travel with the data (else agreed in advance).
        fresh: whether the receiver allocates a new array per message.
        requires: (module, pip name) of an optional dependency.
        transport: "tcp", or "zmq" (the data goes over a zmq socket; the TCP
            connection carries only the control protocol).
        max_bytes: the largest array it is run with (None: every size).
    """

    key: str
    name: str
    send: Sender
    recv: Receiver
    family: str
    counterpart: str | None
    carries: bool
    fresh: bool
    requires: tuple[str, str] | None = None
    transport: str = "tcp"
    max_bytes: int | None = None

    def runs_at(self, nbytes: int) -> bool:
        return self.max_bytes is None or nbytes <= self.max_bytes


# ---- helpers ----


def _recv_exact_into(sock: socket.socket, view: memoryview) -> None:
    got, n = 0, len(view)
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            raise ConnectionError("peer went away")
        got += k


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _read_exact(f: Any, n: int) -> bytes:
    data = f.read(n)  # a BufferedReader: loops until n bytes or the end
    if len(data) != n:
        raise ConnectionError("peer went away")
    return data


def _bytes_view(a: np.ndarray) -> memoryview:
    return memoryview(a.reshape(-1).view(np.uint8))


def _own_fd(sock: socket.socket) -> int:
    """A descriptor of its own for multiprocessing.connection, whose close() must not
    close the benchmark's socket."""
    return sock.dup().detach()


# ---- the ceiling: raw bytes ----


def send_raw(link: Link, a: np.ndarray, count: int) -> None:
    payload = _bytes_view(a)
    for _ in range(count):
        link.sock.sendall(payload)


def recv_raw(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    view = _bytes_view(out)
    for _ in range(count):
        _recv_exact_into(link.sock, view)
    return out


def recv_raw_fresh(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    a = out
    for _ in range(count):
        a = np.empty_like(out)
        _recv_exact_into(link.sock, _bytes_view(a))
    return a


# ---- a raw Python framing: a 16-byte length header, then the payload ----
#
# What an application writes when it frames bytes itself: every message says its
# length (and a sequence number, as wirearray's header does), the receiver reads the
# header, then the payload into its array.  One sendall per message.

_RAW_HEAD = struct.Struct("<QQ")  # payload bytes, sequence number


def send_raw_framed(link: Link, a: np.ndarray, count: int) -> None:
    payload = _bytes_view(a)
    n = len(payload)
    msg = bytearray(_RAW_HEAD.size + n)
    for i in range(count):
        _RAW_HEAD.pack_into(msg, 0, n, i)
        msg[_RAW_HEAD.size :] = payload
        link.sock.sendall(msg)


def recv_raw_framed(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    view = _bytes_view(out)
    head = bytearray(_RAW_HEAD.size)
    head_view = memoryview(head)
    for i in range(count):
        _recv_exact_into(link.sock, head_view)
        n, seq = _RAW_HEAD.unpack(head)
        if n != len(view) or seq != i:
            raise ConnectionError(f"bad header: {n} bytes, message {seq}")
        _recv_exact_into(link.sock, view)
    return out


# ---- wirearray ----


def _wa_sender(byteorder: str, flush: bool = True) -> Sender:
    def send(link: Link, a: np.ndarray, count: int) -> None:
        ch = wirearray.Channel(link.sock, byteorder=byteorder)
        for _ in range(count):
            ch.send(a, flush=flush)
        ch.flush()  # what is still held (flush=False) leaves before the clock stops

    send.__name__ = f"send_wirearray_{byteorder}" + ("" if flush else "_held")
    return send


def recv_wa_reused(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    ch = wirearray.Channel(link.sock)
    a = out
    for _ in range(count):
        a = ch.recv(out=out)
    return a


def recv_wa_fresh(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    ch = wirearray.Channel(link.sock)
    a = out
    for _ in range(count):
        a = ch.recv()
    return a


# ---- the textbook byte-order path: astype + sendall, recv_into + byteswap ----


def send_astype(link: Link, a: np.ndarray, count: int) -> None:
    wire = a.dtype.newbyteorder(">")
    for _ in range(count):
        link.sock.sendall(a.astype(wire))  # a new big-endian copy per message


def recv_byteswap(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    """Big-endian bytes into one reused buffer, swapped in place, viewed as native."""
    view = _bytes_view(out)
    for _ in range(count):
        _recv_exact_into(link.sock, view)
        if _LITTLE:  # on a big-endian host the bytes are native already
            out.byteswap(inplace=True)
    return out


# ---- pickle protocol 5, out-of-band buffers ----
#
# Framing (pickle leaves it to the user): a prefix (pickle length, number of buffers,
# each buffer's length), the pickle, then each buffer's bytes, all in one sendmsg.
# The receiver reads through a BufferedReader (few system calls for small messages)
# and readinto()s each buffer where it is to live, then pickle.loads(buffers=...),
# which makes the array a view of that buffer: dtype and shape come from the pickle.

_P5_HEAD = struct.Struct("!IH")
_P5_SIZE = struct.Struct("!Q")
_READ_BUFFER = 1 << 16


def send_pickle5(link: Link, a: np.ndarray, count: int) -> None:
    from wirearray.transport import send_parts  # the one private helper used here

    for _ in range(count):
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(a, protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        prefix = _P5_HEAD.pack(len(head), len(raws))
        prefix += b"".join(_P5_SIZE.pack(r.nbytes) for r in raws)
        send_parts(link.sock, [prefix, head, *raws])


def _pickle5_receiver(fresh: bool) -> Receiver:
    def recv(link: Link, out: np.ndarray, count: int) -> np.ndarray:
        f = link.sock.makefile("rb", buffering=_READ_BUFFER)
        reused = [_bytes_view(out)]  # grows if a message has more or other buffers
        last: Any = None
        for _ in range(count):
            size, nbuf = _P5_HEAD.unpack(_read_exact(f, _P5_HEAD.size))
            sizes = [_P5_SIZE.unpack(_read_exact(f, _P5_SIZE.size))[0] for _ in range(nbuf)]
            head = _read_exact(f, size)
            bufs = []
            for i, n in enumerate(sizes):
                if fresh:
                    buf = memoryview(np.empty(n, np.uint8))
                else:
                    while len(reused) <= i:
                        reused.append(memoryview(np.empty(0, np.uint8)))
                    if len(reused[i]) != n:
                        reused[i] = memoryview(np.empty(n, np.uint8))
                    buf = reused[i]
                if f.readinto(buf) != n:  # loops until full, like _read_exact
                    raise ConnectionError("peer went away")
                bufs.append(buf)
            last = pickle.loads(head, buffers=bufs)
        f.close()  # the file only; the socket stays open
        return last

    recv.__name__ = "recv_pickle5_fresh" if fresh else "recv_pickle5_reused"
    return recv


# ---- multiprocessing.connection ----


def send_mp_bytes(link: Link, a: np.ndarray, count: int) -> None:
    conn = Connection(_own_fd(link.sock))
    payload = _bytes_view(a)
    for _ in range(count):
        conn.send_bytes(payload)
    conn.close()


def recv_mp_bytes(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    """Bytes only: dtype and shape agreed in advance (the job wirearray's header does)."""
    conn = Connection(_own_fd(link.sock))
    for _ in range(count):
        conn.recv_bytes_into(out)
    conn.close()
    return out


def send_mp_pickle(link: Link, a: np.ndarray, count: int) -> None:
    conn = Connection(_own_fd(link.sock))
    for _ in range(count):
        conn.send(a)  # pickled in band: the payload is copied into the pickle
    conn.close()


def recv_mp_pickle(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    conn = Connection(_own_fd(link.sock))
    a = out
    for _ in range(count):
        a = conn.recv()
    conn.close()
    return a


# ---- pyzmq: the send_array/recv_array recipe of pyzmq's documentation ----
#
# (docs "Serializing messages with PyZMQ"), used with copy=False over a PAIR socket on
# tcp://127.0.0.1.  The receiver's array views the zmq message (a fresh buffer per
# message, allocated by libzmq).  str(dtype) drops the byte order: the recipe assumes
# both hosts share it.


def zmq_send_array(socket: Any, A: np.ndarray, flags: int = 0, copy: bool = True) -> Any:
    """send a numpy array with metadata"""
    import zmq

    md = {"dtype": str(A.dtype), "shape": A.shape}
    socket.send_json(md, flags | zmq.SNDMORE)
    return socket.send(A, flags, copy=copy)


def zmq_recv_array(socket: Any, flags: int = 0, copy: bool = True) -> np.ndarray:
    """recv a numpy array"""
    md = socket.recv_json(flags=flags)
    msg = socket.recv(flags=flags, copy=copy)
    buf = memoryview(msg)
    A = np.frombuffer(buf, dtype=md["dtype"])
    return A.reshape(md["shape"])


def send_zmq(link: Link, a: np.ndarray, count: int) -> None:
    for _ in range(count):
        zmq_send_array(link.zmq, a, copy=False)


def recv_zmq(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    a = out
    for _ in range(count):
        a = zmq_recv_array(link.zmq, copy=False)
    return a


def _zmq_pair() -> Any:
    import zmq

    sock = zmq.Context.instance().socket(zmq.PAIR)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 60_000)
    return sock


# ---- pyarrow IPC: tensors, and a RecordBatch stream ----
#
# Both sides wrap a buffered socket file in pyarrow.PythonFile (an unbuffered one
# returns short reads, which pyarrow's reader takes for a truncated message); the
# sender flushes after every message, as a streaming application must.


def send_arrow_tensor(link: Link, a: np.ndarray, count: int) -> None:
    import pyarrow as pa

    f = link.sock.makefile("wb")
    sink = pa.PythonFile(f, mode="w")
    for _ in range(count):
        pa.ipc.write_tensor(pa.Tensor.from_numpy(a), sink)
        sink.flush()
    f.close()


def recv_arrow_tensor(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    import pyarrow as pa

    f = link.sock.makefile("rb")
    source = pa.PythonFile(f, mode="r")
    a = out
    for _ in range(count):
        a = pa.ipc.read_tensor(source).to_numpy()  # a view of the bytes read
    f.close()
    return a


def send_arrow_stream(link: Link, a: np.ndarray, count: int) -> None:
    """One IPC stream per run: the schema (dtype, and the shape as metadata) once,
    then a one-column RecordBatch per array, zero-copy from numpy."""
    import pyarrow as pa

    f = link.sock.makefile("wb")
    sink = pa.PythonFile(f, mode="w")
    flat = a.reshape(-1)
    schema = pa.schema(
        [("x", pa.from_numpy_dtype(a.dtype))], metadata={"shape": json.dumps(a.shape)}
    )
    with pa.ipc.new_stream(sink, schema) as writer:
        for _ in range(count):
            writer.write_batch(pa.record_batch([pa.array(flat)], schema=schema))
            sink.flush()
    sink.flush()  # the end-of-stream marker
    f.close()


def recv_arrow_stream(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    import pyarrow as pa

    f = link.sock.makefile("rb")
    reader = pa.ipc.open_stream(pa.PythonFile(f, mode="r"))
    shape = tuple(json.loads(reader.schema.metadata[b"shape"]))
    a, n = out, 0
    for batch in reader:  # to the end-of-stream marker, so no byte is left unread
        a = batch.column(0).to_numpy(zero_copy_only=True).reshape(shape)
        n += 1
    f.close()
    if n != count:
        raise ConnectionError(f"arrow stream: {n} batches, expected {count}")
    return a


# ---- numpy .npy records on a socket file ----
#
# numpy.lib.format.write_array/read_array on sock.makefile(buffering=0), the recipe in
# the README (a buffered socket file makes numpy ask for its position, which fails).
# read_array reads a non-file in 256 KiB pieces into a fresh array.


def send_npy(link: Link, a: np.ndarray, count: int) -> None:
    f = link.sock.makefile("wb", buffering=0)
    for _ in range(count):
        npformat.write_array(f, a)
    f.close()


def recv_npy(link: Link, out: np.ndarray, count: int) -> np.ndarray:
    f = link.sock.makefile("rb", buffering=0)
    a = out
    for _ in range(count):
        a = npformat.read_array(f)
    f.close()
    return a


# ---- the table of methods ----

_ZMQ = ("zmq", "pyzmq")
_ARROW = ("pyarrow", "pyarrow")

# fmt: off
_ALL = [
    Method(
        "raw", "raw sendall/recv_into", send_raw, recv_raw,
        family="ceiling", counterpart="wa-native", carries=False, fresh=False,
    ),
    Method(
        "raw-fresh", "raw sendall/recv_into, fresh arrays", send_raw, recv_raw_fresh,
        family="ceiling", counterpart="wa-native-fresh", carries=False, fresh=True,
    ),
    Method(
        "raw-framed", "raw 16-byte header + payload, sendall/recv_into", send_raw_framed,
        recv_raw_framed,
        family="peer", counterpart="wa-native", carries=False, fresh=False,
    ),
    Method(
        "wa-native", "wirearray native, reused out", _wa_sender("native"), recv_wa_reused,
        family="wirearray", counterpart=None, carries=True, fresh=False,
    ),
    Method(
        "wa-native-fresh", "wirearray native, fresh arrays", _wa_sender("native"),
        recv_wa_fresh,
        family="wirearray", counterpart=None, carries=True, fresh=True,
    ),
    Method(
        "wa-native-held", "wirearray native, reused out, send(flush=False)",
        _wa_sender("native", flush=False), recv_wa_reused,
        family="wirearray", counterpart=None, carries=True, fresh=False, max_bytes=64 << 10,
    ),
    Method(
        "wa-network", "wirearray network, reused out", _wa_sender("network"), recv_wa_reused,
        family="wirearray", counterpart=None, carries=True, fresh=False,
    ),
    Method(
        "wa-network-fresh", "wirearray network, fresh arrays", _wa_sender("network"),
        recv_wa_fresh,
        family="wirearray", counterpart=None, carries=True, fresh=True,
    ),
    Method(
        "astype-byteswap", "numpy astype('>f8')+sendall / recv_into+byteswap", send_astype,
        recv_byteswap,
        family="peer", counterpart="wa-network", carries=False, fresh=False,
    ),
    Method(
        "pickle5", "pickle 5 out-of-band, reused buffer", send_pickle5,
        _pickle5_receiver(fresh=False),
        family="peer", counterpart="wa-native", carries=True, fresh=False,
    ),
    Method(
        "pickle5-fresh", "pickle 5 out-of-band, fresh buffers", send_pickle5,
        _pickle5_receiver(fresh=True),
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
    ),
    Method(
        "mp-bytes", "mp.connection send_bytes/recv_bytes_into", send_mp_bytes, recv_mp_bytes,
        family="peer", counterpart="wa-native", carries=False, fresh=False,
    ),
    Method(
        "mp-pickle", "mp.connection send/recv (pickled)", send_mp_pickle, recv_mp_pickle,
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
    ),
    Method(
        "zmq", "pyzmq send_array/recv_array, copy=False", send_zmq, recv_zmq,
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
        requires=_ZMQ, transport="zmq",
    ),
    Method(
        "arrow-tensor", "pyarrow ipc write_tensor/read_tensor", send_arrow_tensor,
        recv_arrow_tensor,
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
        requires=_ARROW,
    ),
    Method(
        "arrow-stream", "pyarrow ipc RecordBatch stream", send_arrow_stream, recv_arrow_stream,
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
        requires=_ARROW,
    ),
    Method(
        "npy", "numpy .npy write_array/read_array", send_npy, recv_npy,
        family="peer", counterpart="wa-native-fresh", carries=True, fresh=True,
    ),
]
# fmt: on

#: Every method by key, in table order.
METHODS: dict[str, Method] = {m.key: m for m in _ALL}


def _missing(module: str, pip_name: str) -> str | None:
    try:
        __import__(module)
    except ImportError:
        return f"{pip_name} is not installed (pip install {pip_name}, or 'wirearray[bench]')"
    return None


def unavailable(key: str) -> str | None:
    """Why method ``key`` cannot run here (a missing optional package), or None."""
    req = METHODS[key].requires
    return None if req is None else _missing(*req)


def tls_unavailable() -> str | None:
    """Why ``StreamServer(tls=True)`` cannot run here (trustme, which makes its
    certificate, is missing), or None."""
    return _missing("trustme", "trustme")


# ---- the receiving process ----


def _rusage() -> tuple[int, int, float]:
    if resource is None:
        return (0, 0, 0.0)
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_minflt, r.ru_majflt, r.ru_utime + r.ru_stime)


class _Buffers:
    """The receiver's template (what must arrive) and destination array, kept from
    one run to the next while the array kind stays the same."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.template = self.out = np.empty(0)

    def get(self, dtype: Any, shape: tuple[int, ...], check: bool) -> tuple:
        if self.key != (dtype, shape):
            self.key, self.template, self.out = None, np.empty(0), np.empty(0)  # free first
            self.template = make_array(dtype, shape)
            self.out = np.empty_like(self.template)
            self.key = (dtype, shape)
            check = True
        if check:
            # touched, so its pages exist before the clock starts; and zero, so a
            # receiver that writes nothing cannot pass the check
            self.out.fill(0)
        return self.template, self.out


def _serve(conn: Any, tls_pem: str | None) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    conn.send(srv.getsockname())
    server_ctx = None
    if tls_pem:
        import ssl  # where TLS is used: the benchmarks run on a Python without ssl

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(tls_pem)
    buffers = _Buffers()
    with srv:  # closed when the benchmark is over (python -X dev: no ResourceWarning)
        _serve_all(srv, server_ctx, buffers)


def _serve_all(srv: socket.socket, server_ctx: Any, buffers: _Buffers) -> None:
    while True:
        raw, _ = srv.accept()
        with raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            line = b""
            while not line.endswith(b"\n"):
                chunk = raw.recv(1)
                if not chunk:
                    return  # the benchmark is over
                line += chunk
            try:
                _serve_one(raw, json.loads(line), server_ctx, buffers)
            except Exception:  # one broken run: report it, close, serve the next
                traceback.print_exc()


def _serve_one(raw: socket.socket, req: dict, server_ctx: Any, buffers: _Buffers) -> None:
    sock = raw
    if req.get("tls"):  # the request line is plain; TLS starts after it
        sock = server_ctx.wrap_socket(raw, server_side=True)
    if req.get("authkey"):
        wirearray.auth.server_handshake(sock, AUTHKEY, 10)
    template, out = buffers.get(req["dtype"], tuple(req["shape"]), req["check"])
    link = Link(sock)
    try:
        if req.get("zmq"):
            link.zmq = _zmq_pair()
            link.zmq.connect(req["zmq"])
            link.zmq.send(b"hello")  # the sender waits for it: connected before the clock
        before = _rusage()
        sock.sendall(b"r")
        last = METHODS[req["method"]].recv(link, out, req["count"])
        after = _rusage()
        ok = not req["check"] or (
            last.dtype == template.dtype
            and last.shape == template.shape
            and np.array_equal(last, template)
        )
        del last
        stats = {
            "minflt": after[0] - before[0],
            "majflt": after[1] - before[1],
            "cpu_s": after[2] - before[2],
        }
        sock.sendall((b"k" if ok else b"x") + json.dumps(stats).encode() + b"\n")
    finally:
        if link.zmq is not None:
            link.zmq.close()


class Run:
    """One prepared run: connected, the receiver ready.  :meth:`go` streams and
    returns the seconds from the first byte sent to the receiver's ack."""

    def __init__(
        self,
        server: StreamServer,
        method: Method,
        a: np.ndarray,
        count: int,
        link: Link,
        check_key: tuple,
    ) -> None:
        self.server, self.method, self.a, self.count = server, method, a, count
        self.link, self._check_key = link, check_key

    def go(self) -> float:
        sock = self.link.sock
        try:
            before = _rusage()
            start = time.perf_counter()
            self.method.send(self.link, self.a, self.count)
            ack = sock.recv(1)
            elapsed = time.perf_counter() - start
            after = _rusage()
            f = sock.makefile("rb")
            line = f.readline()
            f.close()
        finally:
            sock.close()
            if self.link.zmq is not None:
                self.link.zmq.close()
        if ack != b"k":
            raise AssertionError(f"{self.method.name}: receiver got wrong arrays (ack {ack!r})")
        stats = json.loads(line) if line else {}
        stats["sender_minflt"] = after[0] - before[0]
        self.server.last_stats = stats
        self.server._checked.add(self._check_key)
        return elapsed


class StreamServer:
    """The receiving process.  With ``tls=True`` a certificate is made here (trustme,
    as in the tests; :func:`tls_unavailable` says whether it can be) and runs may ask
    for TLS; handshakes happen before the clock.

    ``run(key, a, count)`` is ``open(...).go()``; pytest-benchmark calls ``open`` as
    its untimed setup and times ``go``.  After each run ``last_stats`` holds the
    receiver's minor/major page faults and CPU seconds during the stream, and the
    sender's minor page faults.
    """

    def __init__(self, tls: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        pem = None
        self.client_ctx: ssl.SSLContext | None = None
        if tls:
            import tempfile

            why = tls_unavailable()
            if why:
                raise RuntimeError(f"TLS runs need a certificate: {why}")
            import trustme

            ca = trustme.CA()
            self._tmp = tempfile.TemporaryDirectory()
            pem = os.path.join(self._tmp.name, "server.pem")
            ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(pem)
            import ssl

            self.client_ctx = ssl.create_default_context()
            ca.configure_trust(self.client_ctx)
        self.proc = ctx.Process(target=_serve, args=(child, pem), daemon=True)
        self.proc.start()
        deadline = time.monotonic() + 60
        while not self._parent.poll(0.1):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                self.proc.terminate()
                raise RuntimeError(
                    f"the benchmark's receiving process did not start (exit code "
                    f"{self.proc.exitcode}; a script starting it needs the "
                    "`if __name__ == '__main__':` guard of multiprocessing's spawn)"
                )
        self.address = self._parent.recv()
        self._checked: set = set()
        self.last_stats: dict[str, Any] = {}

    def __enter__(self) -> StreamServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _connect(self, req: dict) -> socket.socket:
        sock = socket.create_connection(self.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(json.dumps(req).encode() + b"\n")
        if req.get("tls"):
            sock = self.client_ctx.wrap_socket(sock, server_hostname="localhost")
        return sock

    def open(self, key: str, a: np.ndarray, count: int, *, tls: bool = False) -> Run:
        """Connect, send the request and wait until the receiver is ready (untimed)."""
        method = METHODS[key]
        check_key = (key, json.dumps(dtype_spec(a.dtype)), a.shape, tls)
        req: dict[str, Any] = {
            "method": key,
            "dtype": dtype_spec(a.dtype),
            "shape": a.shape,
            "count": count,
            "check": check_key not in self._checked,
            "tls": tls,
        }
        zsock = sock = None
        try:
            if method.transport == "zmq":  # bound here; the receiver connects to it
                zsock = _zmq_pair()
                port = zsock.bind_to_random_port("tcp://127.0.0.1")
                req["zmq"] = f"tcp://127.0.0.1:{port}"
            sock = self._connect(req)
            if _recv_exact(sock, 1) != b"r":
                raise ConnectionError(f"{method.name}: the receiver did not get ready")
            if zsock is not None and zsock.recv() != b"hello":
                raise ConnectionError(f"{method.name}: no zmq hello")
        except BaseException:
            if sock is not None:
                sock.close()
            if zsock is not None:
                zsock.close()
            raise
        link = Link(sock, zsock)
        return Run(self, method, a, count, link, check_key)

    def run(self, key: str, a: np.ndarray, count: int, *, tls: bool = False) -> float:
        """Seconds from the first byte sent to the receiver's ack."""
        return self.open(key, a, count, tls=tls).go()

    def handshake(self, authkey: bool, tls: bool) -> float:
        """Seconds to connect and complete the TLS and/or authkey handshakes."""
        req = {
            "method": CEILING,
            "dtype": "<f8",
            "shape": [1],
            "count": 0,
            "check": False,
            "tls": tls,
            "authkey": authkey,
        }
        start = time.perf_counter()
        with self._connect(req) as sock:
            if authkey:
                wirearray.auth.client_handshake(sock, AUTHKEY, 10)
            elapsed = time.perf_counter() - start
            if _recv_exact(sock, 2) != b"rk":
                raise AssertionError("handshake benchmark: no ack")
            sock.makefile("rb").readline()  # the stats: nothing left unread
        return elapsed

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                with socket.create_connection(self.address, timeout=10) as sock:
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
