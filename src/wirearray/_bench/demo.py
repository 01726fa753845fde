"""``wirearray demo``: the main job, streaming arrays between processes, next to its
ceiling, in half a minute.

It runs on the streaming benchmark's machinery, so that the demo and ``wirearray bench``
cannot disagree about what they measure: the same receiving process
(:class:`.peers.StreamServer`), the same methods (:data:`.peers.METHODS`: ``raw``
``sendall``/``recv_into`` into one reused array, the ceiling; wirearray in native and
network byte order into one reused ``out=`` array; ``send(flush=False)`` for the small
messages) and the same runs (:func:`.stream.measure`: a first untimed run in which the
receiver checks dtype, shape and values, then ``REPEATS`` timed runs interleaved across
the methods, each cell the median).  Only the sizes, the run length and the table
differ: float64 arrays of 4 KiB to 64 MiB in MB/s with the ratios to raw, then the
rate of float64[16] messages.

``WIREARRAY_DEMO_SECONDS`` sets the time per (size, method), 1.0 by default (the tests
make it shorter).
"""

from __future__ import annotations

import os

import numpy as np

import wirearray

from .peers import CEILING, StreamServer
from .results import machine
from .stream import measure

KIB, MIB = 1 << 10, 1 << 20
MB = 1e6
ITEM = 8  # float64

#: Array sizes in bytes; --quick drops the last.
SIZES = (4 * KIB, 64 * KIB, 1 * MIB, 16 * MIB, 64 * MIB)
#: Seconds per (size, method), split over the timed runs.
CASE_SECONDS = float(os.environ.get("WIREARRAY_DEMO_SECONDS", "1.0"))
REPEATS = 3
#: Messages per run at most: float64[16] with send(flush=False) goes at millions/s.
MAX_COUNT = 200_000
SMALL_ITEMS = 16

#: The table's columns: label -> method key.
COLUMNS = {"raw": CEILING, "native": "wa-native", "network": "wa-network"}
#: The small-message line: label -> method key, the ceiling first.
SMALL = {
    "raw sendall": CEILING,
    "wirearray": "wa-native",
    "wirearray send(flush=False)": "wa-native-held",
}


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _rates(server: StreamServer, keys: list[str], items: int) -> dict[str, float]:
    """Messages per second of each method at ``items`` float64 items (medians)."""
    results = measure(
        keys,
        [items],
        run_s=CASE_SECONDS / REPEATS,
        repeats=REPEATS,
        server=server,
        max_count=MAX_COUNT,
    )
    return {r.method: r.rate for r in results}


def run_demo(*, quick: bool = False) -> int:
    """Print the demo's tables; returns the exit code (0)."""
    print(
        f"wirearray {wirearray.__version__}: {wirearray.IMPLEMENTATION} core, "
        f"SIMD {wirearray.get_simd()}, numpy {np.__version__}; on {machine()}"
    )
    print(
        "streaming float64 arrays over TCP loopback to a server process, which receives "
        "each into one reused array;"
    )
    print("raw = sendall/recv_into of the same bytes (no framing, no byte order): the ceiling.")
    print()
    with StreamServer() as server:
        print(
            f"{'array':>10} {'raw MB/s':>10} {'native MB/s':>12} {'network MB/s':>13} "
            f"{'native/raw':>11} {'network/raw':>12}"
        )
        for nbytes in SIZES[:-1] if quick else SIZES:
            rates = _rates(server, list(COLUMNS.values()), nbytes // ITEM)
            mbps = {label: rates[key] * nbytes / MB for label, key in COLUMNS.items()}
            print(
                f"{_size(nbytes):>10} {mbps['raw']:10.0f} {mbps['native']:12.0f} "
                f"{mbps['network']:13.0f} {mbps['native'] / mbps['raw']:10.2f}x "
                f"{mbps['network'] / mbps['raw']:11.2f}x",
                flush=True,
            )
        rates = _rates(server, list(SMALL.values()), SMALL_ITEMS)
    raw = rates[CEILING]
    cells = [
        f"{label} {rates[key] / 1e3:.0f}"
        + ("" if key == CEILING else f" ({rates[key] / raw:.2f}x)")
        for label, key in SMALL.items()
    ]
    print(
        f"\nfloat64[{SMALL_ITEMS}] messages ({SMALL_ITEMS * ITEM} B), one way, thousands per "
        f"second: {', '.join(cells)}"
    )
    print(
        f"\nmedians of {REPEATS} runs, interleaved, after one that checks the arrays "
        "received; native = payload sent as is, network = big-endian on the wire "
        "(swapped on both sides here); flush=False: small frames leave together, not one "
        "TCP send each."
    )
    return 0
