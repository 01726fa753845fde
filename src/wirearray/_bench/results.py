"""What the stream benchmark's tables and plots share: one method's measurements at one
size (Result), size labels, and the results indexed by (method, size) with their
ratios to the raw ceiling (stream.py writes the
tables, plot.py draws the figures; both read results through these)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .peers import CEILING

KIB, MIB = 1 << 10, 1 << 20


@dataclass
class Result:
    method: str
    nbytes: int  # of one array
    count: int  # messages per run
    runs: list[float] = field(default_factory=list)  # seconds per run
    receiver_minflt: list[float] = field(default_factory=list)  # per message, per run
    sender_minflt: list[float] = field(default_factory=list)
    receiver_cpu: list[float] = field(default_factory=list)  # seconds per message

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs)

    @property
    def seconds_per_message(self) -> float:
        return self.median_s / self.count

    @property
    def gbps(self) -> float:
        return self.nbytes / self.seconds_per_message / 1e9

    @property
    def rate(self) -> float:
        return 1.0 / self.seconds_per_message

    def record(self, seconds: float, stats: Mapping[str, Any]) -> None:
        self.runs.append(seconds)
        self.receiver_minflt.append(stats.get("minflt", 0) / self.count)
        self.sender_minflt.append(stats.get("sender_minflt", 0) / self.count)
        self.receiver_cpu.append(stats.get("cpu_s", 0.0) / self.count)


def size_label(nbytes: int) -> str:
    """128 B, 64 KiB, 781.2 KiB, 256 MiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", KIB)):
        if nbytes >= scale:
            if nbytes % scale == 0:
                return f"{nbytes // scale} {unit}"
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def index_results(results: Iterable[Result]) -> dict[tuple[str, int], Result]:
    return {(r.method, r.nbytes): r for r in results}


def ratio_to_ceiling(r: Result, by: Mapping[tuple[str, int], Result]) -> float | None:
    ceiling = by.get((CEILING, r.nbytes))
    return ceiling.seconds_per_message / r.seconds_per_message if ceiling else None
