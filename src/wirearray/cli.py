"""The command line: ``wirearray`` (console script) or ``python -m wirearray``.

Commands:

* ``serve [ADDRESS]`` -- receive arrays, print a line per message (or a summary);
  ``--out DIR`` saves them as .npy files.  Binds to 127.0.0.1:5555 unless an address
  is given.
* ``send ADDRESS [FILE.npy ...]`` or ``send ADDRESS --random DTYPE SHAPE --count N``
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
error, a timeout); 2 bad usage (arguments, addresses, files).  Errors are one line on
stderr: ``wirearray: error: ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import wirearray

from .codec import SMALL_FRAME_BYTES, Message
from .exceptions import AddressError, UsageError, WireError
from .transport import connect

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
MB = 1e6


class CliUsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


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
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliUsageError(f"--out {args.out}: {exc.strerror}") from None
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
    state = {"served": 0, "index": 0, "ids": 0}

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
                for name, a in arrays.items():
                    state["index"] += 1
                    index = state["index"]
                    if out_dir is not None:
                        stem = f"{index:06d}" + (f"-{_safe(name)}" if name else "")
                        await asyncio.to_thread(np.save, out_dir / f"{stem}.npy", a)
                    if not args.summary:
                        label = f" {name!r}" if name else ""
                        out.line(
                            f"[{cid}] #{index}{label} {a.dtype} {a.shape} "
                            f"{_fmt_bytes(a.nbytes)} {a.nbytes / dt / MB:.1f} MB/s"
                        )
        except (WireError, OSError) as exc:
            out.line(
                f"wirearray: [{cid}] connection from {peer} failed: {type(exc).__name__}: {exc}",
                err=True,
            )
            raise  # the server tells the client why and closes this connection only
        else:
            elapsed = max(time.perf_counter() - start, 1e-9)
            out.line(
                f"wirearray: [{cid}] {peer}: {messages} messages, {_fmt_bytes(total_bytes)} in "
                f"{elapsed:.2f} s ({total_bytes / elapsed / MB:.1f} MB/s)"
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
    return EXIT_OK


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]


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


def _load_arrays(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, array or factory) pairs, validated before connecting."""
    if args.random:
        if args.files:
            raise CliUsageError("give FILE.npy arguments or --random, not both")
        dtype_s, shape_s = args.random
        try:
            dtype = np.dtype(dtype_s)
        except TypeError:
            raise CliUsageError(f"unknown dtype {dtype_s!r}") from None
        try:
            shape = tuple(int(x) for x in shape_s.replace("x", ",").split(",") if x.strip())
        except ValueError:
            raise CliUsageError(f"bad shape {shape_s!r} (write e.g. 1000,3 or 1000x3)") from None
        rng = np.random.default_rng(0)
        if dtype.kind == "f":
            a = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "c":
            a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
        elif dtype.kind in "iub":
            a = rng.integers(0, 100, size=shape).astype(dtype)
        else:
            raise CliUsageError(f"dtype {dtype} is not one wirearray sends")
        return [(f"random {dtype}{list(shape)} #{i + 1}", a) for i in range(args.count)]
    if not args.files:
        raise CliUsageError("nothing to send: give FILE.npy arguments or --random DTYPE SHAPE")
    arrays = []
    for name in args.files:
        try:
            a = np.load(name, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CliUsageError(f"cannot read {name}: {exc}") from None
        arrays.append((name, a))
    return arrays


class _Progress:
    """A one-line progress bar on stderr, drawn only on a terminal (or when forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            frac = min(self.done / self.total, 1.0)
            rate = self.done / max(now - self.start, 1e-9) / MB
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%} {_fmt_bytes(self.done)} {rate:8.1f} MB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def cmd_send(args: argparse.Namespace) -> int:
    if _zmq_requested(args):
        return _zmq_send(args)
    arrays = _load_arrays(args)
    total = sum(a.nbytes for _, a in arrays)
    show = args.progress or (sys.stderr.isatty() and total >= 64 << 20)
    progress = _Progress(total, show)
    start = time.perf_counter()
    opts = _channel_options(args)
    opts.update(_security_options(args, server=False))
    # close() (leaving the block) returns only once the receiver confirmed every
    # array (docs/FORMAT.md section 10); otherwise it raises and the exit code is 1
    with connect(args.address, **opts) as channel:
        for _label, a in arrays:
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
        f"wirearray: sent {len(arrays)} arrays, {_fmt_bytes(total)} in {elapsed:.2f} s "
        f"({total / elapsed / MB:.1f} MB/s), all received by the peer"
    )
    return EXIT_OK


# ---- ZeroMQ endpoints (--zmq PATTERN): the work is wirearray.zmq's serve()/send() ----


def _zmq_requested(args: argparse.Namespace) -> bool:
    """True with --zmq; a tcp:// or ipc:// address without it is a usage error."""
    address = str(getattr(args, "address", ""))
    if not args.zmq:
        if address.startswith(("tcp://", "ipc://")):
            raise CliUsageError(f"{address} is a ZeroMQ endpoint: add --zmq PATTERN")
        return False
    tls = ("tls_cert", "tls_key", "tls", "tls_ca", "tls_client_ca", "server_hostname")
    if args.format != "wire" or args.authkey_file or any(getattr(args, k, None) for k in tls):
        raise CliUsageError(
            "--zmq takes no --format, --authkey-file or TLS options "
            "(ZeroMQ has CURVE for that: docs/SECURITY.md)"
        )
    return True


def _zmq_module() -> Any:
    try:
        from . import zmq as wz
    except ImportError as exc:
        raise CliUsageError(str(exc)) from None
    return wz


def _zmq_serve(args: argparse.Namespace) -> int:
    wz = _zmq_module()
    import zmq

    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    def ready(endpoint: str) -> None:
        print(f"wirearray: listening on {endpoint} (zmq {args.zmq})", flush=True)

    def refused(exc: Exception) -> None:
        print(f"wirearray: refused a message: {type(exc).__name__}: {exc}", file=sys.stderr)

    index = messages = total = lost = 0
    start = time.perf_counter()
    deliveries = wz.serve(
        args.address, args.zmq, max_frame_bytes=args.max_frame_bytes or wz.DEFAULT_MAX_FRAME_BYTES,
        timeout=args.timeout, ready=ready, refused=refused,
    )  # fmt: skip
    try:
        for d in deliveries:
            messages += 1
            if d.stats["lost"] > lost:
                print(
                    f"wirearray: {d.stats['lost'] - lost} message(s) lost before "
                    f"#{d.seq} of origin {d.origin:016x}",
                    file=sys.stderr,
                    flush=True,
                )
                lost = d.stats["lost"]
            for name, a in d.arrays.items():
                index += 1
                total += a.nbytes
                if out_dir is not None:
                    stem = f"{index:06d}" + (f"-{_safe(name)}" if name else "")
                    np.save(out_dir / f"{stem}.npy", a)
                if not args.summary:
                    label = f" {name!r}" if name else ""
                    rate = a.nbytes / max(d.seconds, 1e-9) / MB
                    print(
                        f"#{index}{label} {a.dtype} {a.shape} {_fmt_bytes(a.nbytes)} "
                        f"{rate:.1f} MB/s",
                        flush=True,
                    )
    except zmq.Again:
        pass  # --timeout seconds without a message: done
    except zmq.ZMQError as exc:
        raise OSError(exc.errno, str(exc)) from None
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"wirearray: {messages} messages, {_fmt_bytes(total)} in {elapsed:.2f} s "
        f"({total / elapsed / MB:.1f} MB/s), {lost} lost",
        flush=True,
    )
    return EXIT_OK


def _zmq_send(args: argparse.Namespace) -> int:
    wz = _zmq_module()
    import zmq

    arrays = _load_arrays(args)
    total = sum(a.nbytes for _, a in arrays)
    progress = _Progress(total, args.progress or (sys.stderr.isatty() and total >= 64 << 20))
    start = time.perf_counter()
    try:
        n = wz.send(
            args.address, [np.asarray(a) for _, a in arrays], args.zmq,
            byteorder=args.byteorder, checksum=args.checksum, timeout=args.timeout,
            progress=progress.update,
        )  # fmt: skip
    except zmq.Again:
        raise TimeoutError(f"no peer took the arrays within {args.timeout} s") from None
    except zmq.ZMQError as exc:
        raise OSError(exc.errno, str(exc)) from None
    progress.close()
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"wirearray: sent {n} arrays, {_fmt_bytes(total)} in {elapsed:.2f} s "
        f"({total / elapsed / MB:.1f} MB/s)"
    )
    return EXIT_OK


# ---- demo and bench: the harness in wirearray._bench, imported only to run them ----


def cmd_demo(args: argparse.Namespace) -> int:
    if args.kernels:
        from ._bench.kernels import run_kernel_demo

        return run_kernel_demo(quick=args.quick)
    from ._bench.demo import run_demo

    return run_demo(quick=args.quick)


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _sizes_type(limit: int) -> Any:
    """argparse type for --sizes: item counts, comma-separated, K/M/G = 2**10/20/30."""

    def parse(text: str) -> list[int]:
        sizes = set()
        for token in filter(None, (t.strip() for t in text.split(","))):
            m = re.fullmatch(r"(\d+)\s*([kKmMgG]?)", token)
            n = int(m[1]) * _SIZE_UNITS[m[2].lower()] if m else 0
            if not 1 <= n <= limit:
                raise argparse.ArgumentTypeError(
                    f"{token!r}: sizes are item counts from 1 to {limit} "
                    "(e.g. 16,64K,2M; K, M, G = 2**10, 2**20, 2**30)"
                )
            sizes.add(n)
        if not sizes:
            raise argparse.ArgumentTypeError("no sizes given")
        return sorted(sizes)

    return parse


def _methods_type(text: str) -> list[str]:
    """argparse type for --methods: keys, or words matching keys or names."""
    from ._bench.peers import CEILING, METHODS

    chosen: set[str] = {CEILING}  # every ratio needs the ceiling
    for token in filter(None, (t.strip().lower() for t in text.split(","))):
        if token in METHODS:
            chosen.add(token)
            continue
        hits = {k for k, m in METHODS.items() if token in k or token in m.name.lower()}
        if not hits:
            raise argparse.ArgumentTypeError(
                f"{token!r} matches no method; the methods: {', '.join(METHODS)}"
            )
        chosen |= hits
    return [k for k in METHODS if k in chosen]


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse --plot without matplotlib and output files in missing directories before
    anything is measured."""
    for option in ("json", "plot"):
        path = getattr(args, option, None)
        if path and not Path(path).resolve().parent.is_dir():
            raise CliUsageError(f"--{option} {path}: no such directory")
    if getattr(args, "plot", None):
        from ._bench.plot import missing

        why = missing()
        if why:
            raise CliUsageError(why)


def cmd_bench_stream(args: argparse.Namespace) -> int:
    _check_outputs(args)
    from ._bench.stream import run_stream_bench

    return run_stream_bench(
        args.methods, args.sizes, full=args.full, json_path=args.json, plot_path=args.plot
    )


def cmd_bench_kernels(args: argparse.Namespace) -> int:
    _check_outputs(args)
    from ._bench.kernels import run_kernel_bench

    return run_kernel_bench(
        dtypes=args.dtypes,
        sizes=args.sizes,
        quick=args.quick,
        json_path=args.json,
        plot_path=args.plot,
    )


def cmd_bench_zmq(args: argparse.Namespace) -> int:
    _check_outputs(args)
    from ._bench.zmq import run_zmq_bench

    return run_zmq_bench(
        [n * 8 for n in args.sizes] if args.sizes else None,
        args.subscribers,
        quick=args.quick,
        rounds=args.rounds,
        json_path=args.json,
    )


def _counts_type(text: str) -> list[int]:
    """argparse type for --subscribers: positive counts, comma-separated."""
    try:
        counts = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1 or counts[-1] > 16:
        raise argparse.ArgumentTypeError(f"{text!r}: counts from 1 to 16, e.g. 1,2,4")
    return counts


def _dtypes_type(text: str) -> list[str]:
    from ._bench.kernels import KERNEL_DTYPES

    names = [t.strip() for t in text.split(",") if t.strip()]
    for name in names:
        try:
            ok = np.dtype(name).kind in "iufc"
        except TypeError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(
                f"{name!r} is not a numeric dtype (e.g. {','.join(KERNEL_DTYPES)})"
            )
    if not names:
        raise argparse.ArgumentTypeError("no dtypes given")
    return names


# ---- parser ----


def _add_channel_args(p: argparse.ArgumentParser, *, sender: bool) -> None:
    p.add_argument("--timeout", type=float, default=None, help="seconds per send/receive")
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
        p.add_argument("--byteorder", choices=("network", "native"), default="network")
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
        p.add_argument("--max-connections", type=int, default=None, metavar="N")
        p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS")
        p.add_argument(
            "--max-frame-bytes",
            type=int,
            default=None,
            help="largest array accepted (default 1 GiB)",
        )


def _stream_bench_options(default: Any = None) -> argparse.ArgumentParser:
    """The options of `bench stream`, as a parent parser: plain `bench` takes them too.
    ``default`` is every option's default (argparse.SUPPRESS: none of its own)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=default)
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
    parser = argparse.ArgumentParser(
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
    serve.add_argument("--out", metavar="DIR", help="save every array as DIR/NNNNNN.npy")
    serve.add_argument("--summary", action="store_true", help="only a line per connection")
    serve.add_argument(
        "--connections",
        type=int,
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
        help="send .npy files or random arrays",
        description="Send arrays from .npy files, or random ones.",
    )
    send.add_argument("address", help="host:port, [v6]:port or unix:/path")
    send.add_argument("files", nargs="*", metavar="FILE.npy")
    send.add_argument(
        "--random",
        nargs=2,
        metavar=("DTYPE", "SHAPE"),
        help="send random arrays, e.g. --random float64 1000,3",
    )
    send.add_argument("--count", type=int, default=1, help="how many random arrays")
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
    zmq_bench.add_argument("--rounds", type=int, default=5, help="timed rounds per method")
    zmq_bench.add_argument("--quick", action="store_true", help="skip the 16 MiB arrays")
    zmq_bench.add_argument("--json", metavar="FILE", help="write every result to FILE as JSON")
    zmq_bench.set_defaults(func=cmd_bench_zmq)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliUsageError, AddressError, UsageError) as exc:
        print(f"wirearray: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("wirearray: interrupted", file=sys.stderr)
        return 130
    except (WireError, OSError) as exc:
        print(f"wirearray: error: {_describe(exc, args)}", file=sys.stderr)
        return EXIT_FAILURE


def _describe(exc: BaseException, args: argparse.Namespace) -> str:
    where = getattr(args, "address", None)
    if isinstance(exc, WireError):  # ours: the message says what happened (the peer's reason)
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {where}: connection refused"
    if isinstance(exc, TimeoutError):
        return f"timed out ({where})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({where})"
    return f"{type(exc).__name__}: {exc}"
