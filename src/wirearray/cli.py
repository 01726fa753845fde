"""The command line: ``wirearray`` (console script) or ``python -m wirearray``.

Commands:

* ``serve [ADDRESS]`` -- receive arrays, print a line per message (or a summary);
  ``--out DIR`` saves each array as a .npy file and each message of named arrays as a
  .npz file.  Binds to 127.0.0.1:5555 unless an address
  is given.
* ``send ADDRESS [FILE.npy|FILE.npz ...]`` (a .npz file goes as one message of named
  arrays, ``send_many``) or ``send ADDRESS --random DTYPE SHAPE --count N``
  -- stream arrays, with a progress bar on a terminal for long transfers.
* ``demo`` -- a server process and a client on loopback stream float64 arrays of
  several sizes in both byte-order modes and print MB/s next to a raw
  ``sendall``/``recv_into`` of the same bytes measured in the same run, then the rate of
  float64[16] messages sent one by one and with ``send(flush=False)``, on the receiving
  process and methods of ``bench stream`` (wirearray._bench.demo).  (``demo
  --kernels``: the byte-order kernels against numpy instead.)
* ``bench stream`` (plain ``bench`` too) -- streaming over TCP loopback to a receiving
  process: raw ``sendall``/``recv_into`` (the ceiling), wirearray in both byte orders
  into reused and fresh arrays, and the peers users pick instead (numpy's
  astype+byteswap, pickle 5, multiprocessing.connection, pyzmq, pyarrow, .npy); a table
  of GB/s and ratios, ``--json FILE``, ``--plot FILE.png`` (matplotlib), ``--full``
  for 128 B to 256 MiB (wirearray._bench.stream).
* ``bench kernels`` -- kernel timings over dtypes and sizes, ``--json`` for the medians,
  ``--plot`` for GB/s against size.
* ``bench zmq`` -- wirearray.zmq against pyzmq on the same sockets (wirearray._bench.zmq).
* ``serve --zmq PATTERN tcp://...`` / ``send --zmq PATTERN tcp://...`` -- the same over
  ZeroMQ sockets (wirearray.zmq.serve/send; the ``zmq`` extra).

Exit codes: 0 success; 1 a runtime failure (connection refused or lost, a protocol
error, a timeout, ``--out`` not writable while serving, not enough memory); 2 bad usage
(arguments, addresses, files, an ``--out`` directory that cannot be made).  Errors are one line on
stderr: ``wirearray: error: ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

import wirearray

from ._cli_bench import (
    _counts_type,
    _dtypes_type,
    _methods_type,
    _sizes_type,
    cmd_bench_kernels,
    cmd_bench_stream,
    cmd_bench_zmq,
    cmd_demo,
)
from ._cli_common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    CliUsageError,
    OutputError,
    UnkeepableNamesError,
    _fmt_bytes,
    _load_arrays,
    _Progress,
    counted,
    fmt_rate,
    item_bytes,
    prepare_out_dir,
    save_received,
)
from ._cli_zmq import _zmq_requested, _zmq_send, _zmq_serve
from .codec import SMALL_FRAME_BYTES, Message
from .exceptions import AddressError, UsageError, WireError
from .transport import connect


def _channel_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"timeout": args.timeout, "format": args.format}
    if args.format == "wire":
        opts["byteorder"] = getattr(args, "byteorder", "network")
        opts["checksum"] = getattr(args, "checksum", False)
    if getattr(args, "max_frame_bytes", None):
        opts["max_frame_bytes"] = args.max_frame_bytes
    return opts


def _read_secret(path: str | None) -> bytes | None:
    """The authkey: from --authkey-file, else $WIREARRAY_AUTHKEY, else none.  Never a
    command-line value, which `ps` would show to every user."""
    if path:
        try:
            with open(path, "rb") as f:
                key = f.read().strip()
        except OSError as exc:
            raise CliUsageError(f"cannot read the authkey file {path}: {exc.strerror}") from None
        if not key:
            raise CliUsageError(f"the authkey file {path} is empty")
        return key
    env = os.environ.get("WIREARRAY_AUTHKEY")
    return env.encode() if env else None


def _security_options(args: argparse.Namespace, *, server: bool) -> dict[str, Any]:
    import ssl

    opts: dict[str, Any] = {}
    key = _read_secret(args.authkey_file)
    if key is not None:
        opts["authkey"] = key
    try:
        if server:
            if bool(args.tls_cert) != bool(args.tls_key):
                raise CliUsageError("--tls-cert and --tls-key go together")
            if args.tls_cert:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(args.tls_cert, args.tls_key)
                if args.tls_client_ca:  # mutual TLS: clients must show a certificate
                    ctx.verify_mode = ssl.CERT_REQUIRED
                    ctx.load_verify_locations(args.tls_client_ca)
                opts["ssl"] = ctx
            elif args.tls_client_ca:
                raise CliUsageError("--tls-client-ca needs --tls-cert and --tls-key")
        elif args.tls or args.tls_ca or args.tls_cert:
            ctx = ssl.create_default_context(cafile=args.tls_ca)
            if args.tls_cert:
                ctx.load_cert_chain(args.tls_cert, args.tls_key)
            opts["ssl"] = ctx
            if args.server_hostname:
                opts["server_hostname"] = args.server_hostname
    except (OSError, ssl.SSLError) as exc:
        raise CliUsageError(f"cannot load the TLS files: {exc}") from None
    return opts


# ---- serve ----


def cmd_serve(args: argparse.Namespace) -> int:
    if _zmq_requested(args):
        return _zmq_serve(args)
    out_dir = prepare_out_dir(args.out)
    opts = _channel_options(args)
    opts.update(_security_options(args, server=True))
    if args.max_connections:
        opts["max_connections"] = args.max_connections
    if args.idle_timeout:
        opts["idle_timeout"] = args.idle_timeout
    return asyncio.run(_serve(args, out_dir, opts))


class _Output:
    """Lines on stdout/stderr; a closed stdout (``serve | head``) stops the server
    quietly instead of killing it with SIGPIPE or failing a client."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def line(self, text: str, *, err: bool = False) -> None:
        stream = sys.stderr if err else sys.stdout
        try:
            print(text, file=stream, flush=True)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # no second error when Python exits
            self.closed.set()


async def _serve(args: argparse.Namespace, out_dir: Path | None, opts: dict[str, Any]) -> int:
    """The server: every connection in its own task (wirearray.aio.serve), bounded by
    --max-connections; lines of several clients carry their connection number."""
    from . import aio

    out = _Output()
    done = asyncio.Event()
    state: dict[str, Any] = {"served": 0, "index": 0, "ids": 0, "output_error": None}

    async def handler(channel: aio.AsyncChannel) -> None:
        state["ids"] += 1
        cid = state["ids"]
        peer = _peer(channel.sock)
        total_bytes, messages, start = 0, 0, time.perf_counter()
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    ev = await channel.recv_event()
                except wirearray.EndOfStreamError:
                    break
                dt = max(time.perf_counter() - t0, 1e-9)
                arrays = ev.arrays if isinstance(ev, Message) else {ev.name: ev.array}
                total_bytes += sum(a.nbytes for a in arrays.values())
                messages += 1
                first = state["index"] + 1  # numbers taken before any await: other
                state["index"] += len(arrays)  # connections' files never collide
                if out_dir is not None:
                    await asyncio.to_thread(
                        save_received, out_dir, first, arrays, isinstance(ev, Message)
                    )
                for index, (name, a) in enumerate(arrays.items(), first):
                    if not args.summary:
                        label = f" {name!r}" if name else ""
                        out.line(
                            f"[{cid}] #{index}{label} {a.dtype} {a.shape} "
                            f"{_fmt_bytes(a.nbytes)} {fmt_rate(a.nbytes, dt)}"
                        )
        except UnkeepableNamesError as exc:  # the peer's names: refuse it, serve the others
            out.line(f"wirearray: [{cid}] {peer}: message not saved: {exc}", err=True)
            await channel.abort(f"the server cannot save the message: {exc}")
        except OutputError as exc:  # nothing more can be saved: stop serving
            if state["output_error"] is None:
                state["output_error"] = str(exc)
            done.set()
            # the client hears that its array was not kept (its exit code is 1)
            await channel.abort("the server cannot save the message in its --out directory")
        except (WireError, OSError) as exc:
            out.line(
                f"wirearray: [{cid}] connection from {peer} failed: {type(exc).__name__}: {exc}",
                err=True,
            )
            raise  # the server tells the client why and closes this connection only
        else:
            elapsed = max(time.perf_counter() - start, 1e-9)
            out.line(
                f"wirearray: [{cid}] {peer}: {counted(messages, 'message')}, "
                f"{_fmt_bytes(total_bytes)} in {elapsed:.2f} s "
                f"({fmt_rate(total_bytes, elapsed)})"
            )
        finally:
            state["served"] += 1
            if args.connections is not None and state["served"] >= args.connections:
                done.set()

    def refused(exc: BaseException) -> None:
        out.line(f"wirearray: refused a connection: {type(exc).__name__}: {exc}", err=True)

    server = await aio.serve(handler, args.address, on_refused=refused, **opts)
    try:
        out.line(f"wirearray: listening on {_show(server.address)} ({wirearray.IMPLEMENTATION})")
        waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(out.closed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
    finally:
        server.close()
        await server.wait_closed()
    if state["output_error"] is not None:
        out.line(f"wirearray: error: {state['output_error']}", err=True)
        return EXIT_FAILURE
    return EXIT_OK


def _peer(sock: socket.socket) -> str:
    try:
        return _show(sock.getpeername()) or "unix peer"
    except OSError:
        return "peer"


def _show(address: Any) -> str:
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address)


# ---- send ----


def cmd_send(args: argparse.Namespace) -> int:
    if _zmq_requested(args):
        return _zmq_send(args)
    arrays = _load_arrays(args)
    total = sum(item_bytes(a) for _, a in arrays)
    show = args.progress or (sys.stderr.isatty() and total >= 64 << 20)
    progress = _Progress(total, show)
    start = time.perf_counter()
    opts = _channel_options(args)
    opts.update(_security_options(args, server=False))
    # close() (leaving the block) returns only once the receiver confirmed every
    # array (docs/FORMAT.md section 10); otherwise it raises and the exit code is 1
    with connect(args.address, **opts) as channel:
        for _label, a in arrays:
            if isinstance(a, dict):  # a .npz file: one message, names included
                channel.send_many(a, progress=progress.update if progress.enabled else None)
                if not progress.enabled:
                    progress.update(item_bytes(a))
                continue
            a = np.asarray(a)
            if a.nbytes <= SMALL_FRAME_BYTES:  # small arrays leave together
                channel.send(a, flush=False)
                progress.update(a.nbytes)
            else:  # in slices of at most 4 MiB, so the bar moves during big arrays
                channel.send(a, progress=progress.update if progress.enabled else None)
                if not progress.enabled:
                    progress.update(a.nbytes)
    progress.close()
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"wirearray: sent {counted(_count_arrays(arrays), 'array')}, {_fmt_bytes(total)} in "
        f"{elapsed:.2f} s ({fmt_rate(total, elapsed)}), all received by the peer"
    )
    return EXIT_OK


def _count_arrays(items: Sequence[tuple[str, Any]]) -> int:
    return sum(len(a) if isinstance(a, dict) else 1 for _, a in items)


# ---- parser ----


def _seconds(text: str) -> float:
    """argparse type of --timeout / --idle-timeout: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


def _positive(text: str) -> int:
    """argparse type of counts and limits: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, 1 or more")
    return value


def _add_channel_args(p: argparse.ArgumentParser, *, sender: bool) -> None:
    p.add_argument(
        "--timeout", type=_seconds, default=None, metavar="SECONDS", help="seconds per send/receive"
    )
    p.add_argument(
        "--format",
        choices=("wire", "npy"),
        default="wire",
        help="wire (default) or npy (standard .npy records, for numpy-only peers)",
    )
    p.add_argument(
        "--authkey-file",
        metavar="FILE",
        help="shared secret for the authkey handshake (else $WIREARRAY_AUTHKEY)",
    )
    p.add_argument(
        "--tls-cert", metavar="PEM", help="certificate chain (server, or client for mutual TLS)"
    )
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    if sender:
        p.add_argument(
            "--byteorder",
            choices=("network", "native"),
            default="network",
            help="byte order on the wire: network (big-endian, the default) or native "
            "(as in memory: nothing converted between two little-endian hosts)",
        )
        p.add_argument("--checksum", action="store_true", help="CRC32C every payload")
        p.add_argument("--tls", action="store_true", help="TLS, trusting the system's CAs")
        p.add_argument("--tls-ca", metavar="PEM", help="TLS, trusting this CA bundle")
        p.add_argument("--server-hostname", help="name the server certificate must carry")
    else:
        p.add_argument(
            "--tls-client-ca",
            metavar="PEM",
            help="mutual TLS: accept only clients with certificates from this CA",
        )
        p.add_argument(
            "--max-connections",
            type=_positive,
            default=None,
            metavar="N",
            help="connections served at once; a client beyond them is told the server "
            "is busy (default: no limit)",
        )
        p.add_argument(
            "--idle-timeout",
            type=_seconds,
            default=None,
            metavar="SECONDS",
            help="end a connection when one receive takes longer (an idle or stalled "
            "peer; default: wait)",
        )
        p.add_argument(
            "--max-frame-bytes",
            type=_positive,
            default=None,
            metavar="BYTES",
            help="largest array accepted, in bytes (default 1 GiB)",
        )


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error (the usage
    itself is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _stream_bench_options(default: Any = None) -> _Parser:
    """The options of `bench stream`, as a parent parser: plain `bench` takes them too.
    ``default`` is every option's default (argparse.SUPPRESS: none of its own)."""
    p = _Parser(add_help=False, argument_default=default)
    p.add_argument(
        "--full", action="store_true", help="128 B to 256 MiB and longer runs (a few minutes)"
    )
    p.add_argument(
        "--sizes",
        type=_sizes_type(64 << 20),
        metavar="N,N,...",
        help="array sizes in float64 items, e.g. 16,64K,2M (K, M = 2**10, 2**20)",
    )
    p.add_argument(
        "--methods",
        type=_methods_type,
        metavar="M,M,...",
        help="only these methods (keys, or words in their names, e.g. wa-native,pickle); "
        "the raw ceiling always runs",
    )
    p.add_argument("--json", metavar="FILE", help="write every result to FILE as JSON")
    p.add_argument(
        "--plot", metavar="FILE.png", help="draw GB/s against size per method (matplotlib)"
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="wirearray", description="wirearray: numeric arrays over sockets at memory speed."
    )
    parser.add_argument("--version", action="version", version=f"wirearray {wirearray.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="receive arrays and print what arrives",
        description="Receive arrays; print a line per array and a summary per connection.",
    )
    serve.add_argument(
        "address",
        nargs="?",
        default="127.0.0.1:5555",
        help="host:port, [v6]:port or unix:/path (default 127.0.0.1:5555: loopback only)",
    )
    serve.add_argument(
        "--out",
        metavar="DIR",
        help="save every array as DIR/NNNNNN.npy, every message of named arrays as DIR/NNNNNN.npz",
    )
    serve.add_argument("--summary", action="store_true", help="only a line per connection")
    serve.add_argument(
        "--connections",
        type=_positive,
        default=None,
        metavar="N",
        help="exit after N connections (default: serve until interrupted)",
    )
    _add_channel_args(serve, sender=False)
    serve.add_argument(
        "--zmq",
        choices=("pull", "sub", "pair"),
        metavar="PATTERN",
        help="serve on a ZeroMQ endpoint (tcp://host:port, ipc:///path; bound) with a "
        "pull, sub or pair socket; gaps in the senders' sequences are reported, --timeout "
        "ends serving after that many idle seconds (needs wirearray[zmq])",
    )
    serve.set_defaults(func=cmd_serve)

    send = commands.add_parser(
        "send",
        help="send .npy/.npz files or random arrays",
        description="Send arrays from .npy files, messages of named arrays from .npz "
        "files, or random arrays.",
    )
    send.add_argument("address", help="host:port, [v6]:port or unix:/path")
    send.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help=".npy files (one array each) and .npz files (each one message of named arrays)",
    )
    send.add_argument(
        "--random",
        nargs=2,
        metavar=("DTYPE", "SHAPE"),
        help="send random arrays, e.g. --random float64 1000,3",
    )
    send.add_argument("--count", type=_positive, default=1, help="how many random arrays")
    send.add_argument("--progress", action="store_true", help="draw the progress bar always")
    _add_channel_args(send, sender=True)
    send.add_argument(
        "--zmq",
        choices=("push", "pub", "pair"),
        metavar="PATTERN",
        help="send to a ZeroMQ endpoint (tcp://host:port, ipc:///path; connected) with a "
        "push, pub (waits for a subscriber) or pair socket (needs wirearray[zmq])",
    )
    send.set_defaults(func=cmd_send)

    demo = commands.add_parser(
        "demo",
        help="stream arrays over loopback and print MB/s",
        description="A server process and a client stream float64 "
        "arrays of 4 KiB to 64 MiB over TCP loopback in both byte-order "
        "modes, next to raw sendall/recv_into of the same bytes.",
    )
    demo.add_argument("--quick", action="store_true", help="skip the largest size")
    demo.add_argument(
        "--kernels", action="store_true", help="time the byte-order kernels against numpy instead"
    )
    demo.set_defaults(func=cmd_demo)

    # plain `bench` is `bench stream`, options included: both get them from one parent
    bench = commands.add_parser(
        "bench",
        parents=[_stream_bench_options()],
        help="benchmarks without pytest (plain `bench`: the quick streaming benchmark)",
        description="Benchmarks without pytest.  Without WHAT: `bench stream`, quick, with "
        "the options of `bench stream`.",
    )
    bench.set_defaults(func=cmd_bench_stream)
    bench_commands = bench.add_subparsers(dest="bench_command", required=False, metavar="WHAT")
    stream = bench_commands.add_parser(
        "stream",
        # no defaults of its own: options given before the word `stream` stay in force
        parents=[_stream_bench_options(argparse.SUPPRESS)],
        help="stream arrays over loopback: wirearray against raw sockets and its peers",
        description="Stream float64 arrays over TCP loopback to a receiving process with "
        "raw sendall/recv_into (the ceiling), wirearray (native and network byte order, "
        "into reused and fresh arrays) and the peers: numpy astype+byteswap, pickle 5 "
        "out-of-band, multiprocessing.connection, pyzmq's send_array recipe, pyarrow IPC, "
        "numpy .npy on a socket file (pyzmq and pyarrow when installed).  Prints GB/s, "
        "messages/s, ratios to the ceiling and to wirearray, and page faults per message.  "
        "Quick by default (128 B to 64 MiB, well under a minute on a quiet machine).",
    )
    stream.set_defaults(func=cmd_bench_stream)
    kernels = bench_commands.add_parser(
        "kernels",
        help="hton/ntoh/byteswap/astype/copyto over dtypes and sizes",
        description="Time hton/ntoh/byteswap/astype/copyto over float64, int32, int16 and "
        "complex128 at 8, 1024, 100000 and 8388608 items.",
    )
    kernels.add_argument("--quick", action="store_true", help="skip the 8388608-item arrays")
    kernels.add_argument(
        "--sizes",
        type=_sizes_type(128 << 20),
        metavar="N,N,...",
        help="array sizes in items instead, e.g. 8,1024,1M (K, M = 2**10, 2**20)",
    )
    kernels.add_argument(
        "--dtypes", type=_dtypes_type, metavar="D,D,...", help="dtypes instead, e.g. float64,int16"
    )
    kernels.add_argument("--json", metavar="FILE", help="write the medians to FILE as JSON")
    kernels.add_argument(
        "--plot", metavar="FILE.png", help="draw GB/s against size per dtype (matplotlib)"
    )
    kernels.set_defaults(func=cmd_bench_kernels)
    zmq_bench = bench_commands.add_parser(
        "zmq",
        help="wirearray.zmq against pyzmq on the same sockets (needs pyzmq)",
        description="Stream float64 arrays over tcp://127.0.0.1 to receiving processes: "
        "wirearray.zmq (recv_array(out=), copy=False views, both byte orders) against "
        "pyzmq's own recv_into and recv(copy=False) and its send_array recipe on one PAIR, "
        "and per subscriber on PUB/SUB with 1, 2 and 4 subscribers.  Prints medians, "
        "GB/s, ratios to pyzmq and the targets (wirearray._bench.zmq).",
    )
    zmq_bench.add_argument(
        "--sizes",
        type=_sizes_type(64 << 20),
        metavar="N,N,...",
        help="array sizes in float64 items (default 8K,128K,2M: 64 KiB, 1 MiB, 16 MiB)",
    )
    zmq_bench.add_argument(
        "--subscribers", type=_counts_type, metavar="N,N,...", help="PUB/SUB runs (default 1,2,4)"
    )
    zmq_bench.add_argument("--rounds", type=_positive, default=5, help="timed rounds per method")
    zmq_bench.add_argument("--quick", action="store_true", help="skip the 16 MiB arrays")
    zmq_bench.add_argument("--json", metavar="FILE", help="write every result to FILE as JSON")
    zmq_bench.set_defaults(func=cmd_bench_zmq)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line parsed (a usage error exits with code 2 and one line)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a bare `wirearray`: name the commands (argparse would say "COMMAND")
        parser.error("a command is required: serve, send, demo or bench")
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse gives `files` (nargs="*") its words before the options only, so
        # `send ADDR --format npy a.npy` would leave a.npy over: files may come anywhere
        if getattr(args, "command", None) == "send" and not any(e.startswith("-") for e in extra):
            args.files = [*args.files, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = parse_args(argv)
    try:
        return int(args.func(args))
    except (CliUsageError, AddressError, UsageError) as exc:
        print(f"wirearray: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("wirearray: interrupted", file=sys.stderr)
        return 130
    except OutputError as exc:
        print(f"wirearray: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (WireError, OSError, MemoryError) as exc:
        print(f"wirearray: error: {_describe(exc, args)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line, with what would identify it
        print(
            f"wirearray: error: unexpected {type(exc).__name__}: {exc} "
            f"(wirearray {wirearray.__version__}, {wirearray.IMPLEMENTATION}; please report)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _describe(exc: BaseException, args: argparse.Namespace) -> str:
    where = getattr(args, "address", None)
    if isinstance(exc, (WireError, MemoryError)):  # the message says what happened
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot connect to {where}: connection refused (is `wirearray serve` "
            "listening at that address and port?)"
        )
    if isinstance(exc, TimeoutError):
        said = str(exc)  # what timed out, where the raiser said it ("no peer took ...")
        said = f": {said}" if said and said != "timed out" else ""
        return f"timed out ({where}){said}"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)) and args.command == "send":
        return (
            f"the connection to {where} was lost ({exc.strerror or exc}): the server "
            "stopped or dropped it, and did not confirm the arrays"
        )
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({where})"
    return f"{type(exc).__name__}: {exc}"
