"""The streaming benchmark without pytest: ``wirearray bench stream`` (and plain
``wirearray bench``), plus the targets that the pytest suite (bench/bench_stream.py)
checks too.  The methods and the receiving process are in :mod:`.peers`; the
command line's arguments are parsed and validated in wirearray.cli.

For every array size, every method first runs once untimed (the receiver checks
dtype, shape and values; the run also sizes the next ones), then ``repeats`` timed
runs follow, interleaved across methods so that a burst of noise on this shared
machine hits all of them alike.  A run streams ``count`` float64 arrays (as many as
fill about ``run_s`` seconds, at least 2) and is timed from the first byte sent to
the receiver's acknowledgement; each cell is the median run.

Reported per (method, size): GB/s (array bytes / time per message), messages/s, the
ratio to the ceiling (raw ``sendall``/``recv_into`` into a reused array) and the
"wirearray x" ratio: the speed of the wirearray method doing the same job (its
``counterpart``) over this method's, > 1 when wirearray is faster.  The receiver's
minor page faults per message are recorded too: they are what separates fresh
receive buffers from reused ones (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

import wirearray

from .peers import CEILING, METHODS, StreamServer, make_array, unavailable
from .results import KIB, MIB, Result, index_results, machine, ratio_to_ceiling, size_label

ITEM = 8  # float64

#: Array sizes in float64 items: 16 items (128 B) to 32M items (256 MiB).
FULL_ITEMS = (16, 512, 8 * KIB, 128 * KIB, 2 * MIB, 8 * MIB, 32 * MIB)
#: The quick default: 128 B, 64 KiB, 1 MiB, 16 MiB, 64 MiB.
QUICK_ITEMS = (16, 8 * KIB, 128 * KIB, 2 * MIB, 8 * MIB)

QUICK = {"run_s": 0.06, "repeats": 3}
FULL = {"run_s": 0.2, "repeats": 5}
MIN_COUNT = 2
MAX_COUNT = 20_000
PROBE_BYTES = 16 * MIB  # the untimed first run moves about this much (2..200 messages)


# ---- targets (docs/PERFORMANCE.md), shared with the pytest summary ----


@dataclass(frozen=True)
class Target:
    text: str
    method: str  # key of the method held to the target
    reference: str  # key of the method it is compared with
    ratio: float  # method speed / reference speed must be >= this
    min_bytes: int = 0
    max_bytes: int | None = None
    tls: bool = False


TARGETS = (
    Target("native byte order >= 1.0x raw at 1 MiB and above", "wa-native", CEILING, 1.0, MIB),
    Target(
        "network byte order >= 0.9x raw at 16 MiB and above", "wa-network", CEILING, 0.9, 16 * MIB
    ),
    Target(
        "float64[16] messages >= 1.3x the rate of mp.connection send_bytes/recv_bytes_into",
        "wa-native",
        "mp-bytes",
        1.3,
        16 * ITEM,
        16 * ITEM,
    ),
    Target(
        "float64[16] messages >= 1.0x the rate of a raw 16-byte-header sendall/recv_into loop",
        "wa-native",
        "raw-framed",
        1.0,
        16 * ITEM,
        16 * ITEM,
    ),
    Target(
        "float64[16] with send(flush=False) (frames leave together) >= 5x mp.connection",
        "wa-native-held",
        "mp-bytes",
        5.0,
        16 * ITEM,
        16 * ITEM,
    ),
    Target("TLS, native order >= 0.9x raw TLS", "wa-native", CEILING, 0.9, tls=True),
    Target("TLS, network order >= 0.9x raw TLS", "wa-network", CEILING, 0.9, tls=True),
)


def evaluate_targets(
    rates: Mapping[tuple[str, int], float], *, tls: bool = False
) -> list[dict[str, Any]]:
    """Each target of TARGETS (plain or TLS) that ``rates`` covers: its ratio at every
    size measured and whether all of them reach it.  ``rates`` maps (method key,
    array bytes) to messages per second (any speed measure, as long as it is the same
    for both methods at one size)."""
    out = []
    for t in TARGETS:
        if t.tls != tls:
            continue
        sizes = sorted(
            n
            for (key, n) in rates
            if key == t.method
            and n >= t.min_bytes
            and (t.max_bytes is None or n <= t.max_bytes)
            and (t.reference, n) in rates
        )
        if not sizes:
            continue
        ratios = {n: rates[(t.method, n)] / rates[(t.reference, n)] for n in sizes}
        out.append(
            {
                "target": t.text,
                "method": t.method,
                "reference": t.reference,
                "required": t.ratio,
                "ratios": ratios,
                "met": all(r >= t.ratio for r in ratios.values()),
            }
        )
    return out


def format_targets(evaluated: Iterable[dict[str, Any]]) -> list[str]:
    lines = []
    for t in evaluated:
        cells = ", ".join(f"{size_label(n)} {r:.2f}x" for n, r in t["ratios"].items())
        lines.append(f"{'met' if t['met'] else 'NOT MET':>7}  {t['target']}: {cells}")
    return lines


# ---- measuring ----


class Progress:
    """Where the run is, on stderr: one self-overwriting line on a terminal, else a
    line per array size."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total, self.done = total, 0
        self.start = time.perf_counter()

    def size(self, nbytes: int, index: int, count: int) -> None:
        if not self.tty:
            elapsed = time.perf_counter() - self.start
            print(
                f"wirearray bench: {size_label(nbytes)} ({index + 1} of {count}), "
                f"{elapsed:.0f} s so far",
                file=self.stream,
                flush=True,
            )

    def step(self, nbytes: int, key: str) -> None:
        self.done += 1
        if self.tty:
            line = f"[{self.done:4d}/{self.total}] {size_label(nbytes):>8} {METHODS[key].name}"
            self.stream.write("\r" + line[:79].ljust(79))
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


def measure(
    keys: Sequence[str],
    items: Sequence[int],
    *,
    run_s: float,
    repeats: int,
    progress: Progress | None = None,
    server: StreamServer | None = None,
    max_count: int = MAX_COUNT,
) -> list[Result]:
    """Time every method of ``keys`` at every size of ``items`` (float64 items).

    ``server`` is the receiving process to use (``wirearray demo`` keeps one for all
    its tables); without it one is started and stopped here.  ``max_count`` caps the
    messages per run, the bound that matters for small arrays.
    """
    results: list[Result] = []
    with nullcontext(server) if server is not None else StreamServer() as receiver:
        for index, n in enumerate(items):
            a = make_array("float64", (n,))
            if progress:
                progress.size(a.nbytes, index, len(items))
            probe = max(MIN_COUNT, min(200, PROBE_BYTES // a.nbytes))
            row: dict[str, Result] = {}
            here = [k for k in keys if METHODS[k].runs_at(a.nbytes)]
            for key in here:  # the checked, untimed run; it also sizes the timed ones
                t = receiver.run(key, a, probe)
                count = int(run_s / max(t / probe, 1e-9))
                row[key] = Result(key, a.nbytes, max(MIN_COUNT, min(max_count, count)))
                if progress:
                    progress.step(a.nbytes, key)
            for _ in range(repeats):
                for key in here:
                    r = row[key]
                    r.record(receiver.run(key, a, r.count), receiver.last_stats)
                    if progress:
                        progress.step(a.nbytes, key)
            results += row.values()
            del a
    return results


# ---- reporting ----


def counterpart_ratio(r: Result, by: Mapping[tuple[str, int], Result]) -> float | None:
    """How many times faster the wirearray method doing the same job ran (> 1: wirearray
    faster); None for wirearray's own rows or when the counterpart was not measured."""
    other = METHODS[r.method].counterpart
    theirs = by.get((other, r.nbytes)) if other else None
    return r.seconds_per_message / theirs.seconds_per_message if theirs else None


def _label(key: str) -> str:
    m = METHODS[key]
    return m.name + (" [ceiling]" if key == CEILING else "")


def _matrix(
    title: str,
    keys: Sequence[str],
    sizes: Sequence[int],
    cell: Any,
    extra: Any = None,
) -> list[str]:
    width = max(len(_label(k)) for k in keys)
    head = f"{'':<{width}}" + "".join(f"{size_label(n):>10}" for n in sizes)
    if extra:
        head += f"  {extra[0]}"
    lines = ["", title, head]
    for key in keys:
        line = f"{_label(key):<{width}}" + "".join(f"{cell(key, n):>10}" for n in sizes)
        if extra:
            line += f"  {extra[1](key)}"
        lines.append(line.rstrip())
    return lines


def report(results: Sequence[Result], skipped: Mapping[str, str]) -> list[str]:
    """The tables, as lines of text."""
    by = index_results(results)
    keys = list(dict.fromkeys(r.method for r in results))
    sizes = sorted({r.nbytes for r in results})

    def fmt(x: float | None, spec: str, suffix: str = "") -> str:
        return "-" if x is None else f"{x:{spec}}{suffix}"

    def get(key: str, n: int) -> Result | None:
        return by.get((key, n))

    lines = [
        f"wirearray {wirearray.__version__}: {wirearray.IMPLEMENTATION} core, "
        f"SIMD {wirearray.get_simd()}, numpy {np.__version__}, "
        f"Python {platform.python_version()}; {peer_versions()}",
        f"machine: {machine()}",
        "float64 arrays streamed over TCP loopback to a receiving process; each cell is "
        "the median of the timed runs.",
    ]
    for key, why in skipped.items():
        lines.append(f"skipped {METHODS[key].name}: {why}")
    lines += _matrix(
        "Throughput, GB/s (array bytes / time per message):",
        keys,
        sizes,
        lambda k, n: fmt(get(k, n) and get(k, n).gbps, ".3f" if n < MIB else ".2f"),
    )
    small = [n for n in sizes if n <= 4 * KIB]
    if small:
        lines += _matrix(
            "Messages per second, thousands:",
            keys,
            small,
            lambda k, n: fmt(get(k, n) and get(k, n).rate / 1e3, ".1f"),
        )
    lines += _matrix(
        f"Ratio to the ceiling ({METHODS[CEILING].name} into one reused array), > 1 = faster:",
        keys,
        sizes,
        lambda k, n: fmt(get(k, n) and ratio_to_ceiling(get(k, n), by), ".2f", "x"),
    )
    peers = [k for k in keys if METHODS[k].counterpart]
    if peers:
        lines += _matrix(
            "wirearray x: the wirearray method doing the same job, times as fast as this "
            "one (> 1 = wirearray faster):",
            peers,
            sizes,
            lambda k, n: fmt(get(k, n) and counterpart_ratio(get(k, n), by), ".2f", "x"),
            ("against", lambda k: METHODS[METHODS[k].counterpart].name),
        )
    big = [n for n in sizes if n >= MIB]
    if big:
        lines += _matrix(
            "Receiver minor page faults per message (new memory the kernel maps and zeroes):",
            keys,
            big,
            lambda k, n: fmt(get(k, n) and statistics.median(get(k, n).receiver_minflt), ".0f"),
        )
    evaluated = evaluate_targets({(r.method, r.nbytes): r.rate for r in results})
    if evaluated:
        lines += ["", "Targets (docs/PERFORMANCE.md):", *format_targets(evaluated)]
    lines += [
        "",
        "Fresh: a new receive array per message; reused: one array for the whole stream.",
        "Bytes only, dtype and shape agreed in advance (the others carry them):",
        *(f"  {m.name}" for m in METHODS.values() if not m.carries and m.key in keys),
    ]
    return lines


def peer_versions() -> str:
    parts = []
    for module, label in (("zmq", "pyzmq"), ("pyarrow", "pyarrow")):
        try:
            mod = __import__(module)
            parts.append(f"{label} {mod.__version__}")
        except ImportError:
            parts.append(f"{label} missing")
    return ", ".join(parts)


def to_json(
    results: Sequence[Result], skipped: Mapping[str, str], settings: Mapping[str, Any]
) -> dict[str, Any]:
    by = index_results(results)
    measured = {r.method for r in results}
    return {
        "benchmark": "wirearray bench stream",
        "info": wirearray.info(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": machine(),
        "peers": peer_versions(),
        "dtype": "float64",
        "settings": dict(settings),
        "ceiling": CEILING,
        "methods": {
            key: {
                "name": m.name,
                "family": m.family,
                "counterpart": m.counterpart,
                "carries_dtype_and_shape": m.carries,
                "fresh_arrays": m.fresh,
                "measured": key in measured,
                "skipped": skipped.get(key),
            }
            for key, m in METHODS.items()
            if key in measured or key in skipped
        },
        "sizes": sorted({r.nbytes for r in results}),
        "results": [
            {
                "method": r.method,
                "name": METHODS[r.method].name,
                "nbytes": r.nbytes,
                "items": r.nbytes // ITEM,
                "count": r.count,
                "runs_s": r.runs,
                "median_s": r.median_s,
                "seconds_per_message": r.seconds_per_message,
                "gbps": r.gbps,
                "messages_per_s": r.rate,
                "ratio_to_ceiling": ratio_to_ceiling(r, by),
                "counterpart_ratio": counterpart_ratio(r, by),
                "receiver_minflt_per_message": statistics.median(r.receiver_minflt),
                "sender_minflt_per_message": statistics.median(r.sender_minflt),
                "receiver_cpu_s_per_message": statistics.median(r.receiver_cpu),
            }
            for r in results
        ],
        "targets": [
            {**t, "ratios": {str(n): v for n, v in t["ratios"].items()}}
            for t in evaluate_targets({(r.method, r.nbytes): r.rate for r in results})
        ],
    }


# ---- the command ----


def run_stream_bench(
    keys: Sequence[str] | None = None,
    items: Sequence[int] | None = None,
    *,
    full: bool = False,
    json_path: str | None = None,
    plot_path: str | None = None,
) -> int:
    """``wirearray bench stream`` with validated arguments (see wirearray.cli): the
    methods ``keys`` (all when None) at ``items`` float64 items (QUICK_ITEMS, or
    FULL_ITEMS with ``full``, when None)."""
    keys = list(METHODS) if keys is None else keys
    items = (FULL_ITEMS if full else QUICK_ITEMS) if items is None else items
    skipped = {k: why for k in keys if (why := unavailable(k))}
    keys = [k for k in keys if k not in skipped]
    settings = dict(FULL if full else QUICK)
    runs = sum(METHODS[k].runs_at(n * ITEM) for n in items for k in keys)
    progress = Progress(runs * (1 + settings["repeats"]))
    try:
        results = measure(keys, items, progress=progress, **settings)
    finally:
        progress.close()
    for line in report(results, skipped):
        print(line)
    if json_path:
        doc = to_json(results, skipped, settings | {"full": full})
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"\nwrote {len(results)} results to {json_path}")
    if plot_path:
        from .plot import plot_stream

        plot_stream(results, plot_path)
        print(f"wrote the plot to {plot_path}")
    return 0
