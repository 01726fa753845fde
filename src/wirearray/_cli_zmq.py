"""``serve --zmq PATTERN`` and ``send --zmq PATTERN``: the command line on ZeroMQ
endpoints.  The work is wirearray.zmq's serve()/send(), imported only when asked for
(the ``zmq`` extra)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from ._cli_common import (
    EXIT_OK,
    CliUsageError,
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


def _zmq_requested(args: argparse.Namespace) -> bool:
    """True with --zmq; a tcp:// or ipc:// address without it is a usage error."""
    address = str(getattr(args, "address", ""))
    if not args.zmq:
        if address.startswith(("tcp://", "ipc://")):
            plain = address.split("://", 1)[1]
            plain = f"unix:{plain}" if address.startswith("ipc://") else plain
            raise CliUsageError(
                f"{address} is a ZeroMQ endpoint: add --zmq PATTERN for ZeroMQ, or write "
                f"{plain} for a wirearray channel"
            )
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

    out_dir = prepare_out_dir(args.out)

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
            if out_dir is not None:  # a message of named arrays: one .npz
                try:
                    save_received(out_dir, index + 1, d.arrays, None not in d.arrays)
                except UnkeepableNamesError as exc:  # the sender's names: skip, go on
                    refused(exc)
                    continue
            for name, a in d.arrays.items():
                index += 1
                total += a.nbytes
                if not args.summary:
                    label = f" {name!r}" if name else ""
                    print(
                        f"#{index}{label} {a.dtype} {a.shape} {_fmt_bytes(a.nbytes)} "
                        f"{fmt_rate(a.nbytes, d.seconds)}",
                        flush=True,
                    )
    except zmq.Again:
        pass  # --timeout seconds without a message: done
    except zmq.ZMQError as exc:
        raise OSError(exc.errno, str(exc)) from None
    elapsed = max(time.perf_counter() - start, 1e-9)
    print(
        f"wirearray: {counted(messages, 'message')}, {_fmt_bytes(total)} in {elapsed:.2f} s "
        f"({fmt_rate(total, elapsed)}), {lost} lost",
        flush=True,
    )
    return EXIT_OK


def _zmq_send(args: argparse.Namespace) -> int:
    wz = _zmq_module()
    import zmq

    arrays = _load_arrays(args)
    total = sum(item_bytes(a) for _, a in arrays)
    progress = _Progress(total, args.progress or (sys.stderr.isatty() and total >= 64 << 20))
    start = time.perf_counter()
    try:
        n = wz.send(
            args.address, [a if isinstance(a, dict) else np.asarray(a) for _, a in arrays],
            args.zmq,
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
        f"({fmt_rate(total, elapsed)})"
    )
    return EXIT_OK
