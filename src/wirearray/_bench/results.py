"""What the stream benchmark's tables and plots share: one method's measurements at one
size (Result), size labels, and the results indexed by (method, size) with their
ratios to the raw ceiling (stream.py writes the
tables, plot.py draws the figures; both read results through these)."""

from __future__ import annotations

import os
import platform
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


def machine() -> str:
    """The machine a figure was measured on, for the first line of every table: its
    OS and architecture, the CPUs this process may use, and the CPU model where the
    OS says it cheaply (Linux: /proc/cpuinfo), e.g. ``Linux x86_64, 2 CPUs (AMD EPYC
    7B13)``.  Figures mean little without it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 0
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    text = f"{platform.system()} {platform.machine()}, {cpus} CPU{'s' if cpus != 1 else ''}"
    return f"{text} ({model})" if model else text


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
