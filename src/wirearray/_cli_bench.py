"""``demo`` and ``bench``: their argument types and their dispatch to the harness in
wirearray._bench, which is imported only to run them (building the parser loads none
of it)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._cli_common import CliUsageError


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
