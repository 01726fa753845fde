"""What the command line's modules share: exit codes and the usage error, sizes as
printed, the names arrays are saved under, and the arrays ``send`` reads with its
progress bar (over TCP and ``--zmq`` alike)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
MB = 1e6


class CliUsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]


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
