"""pytest plumbing for the benchmarks: the --bench-quick option, which wirearray ran,
and a summary of medians and ratios to the baselines after pytest-benchmark's tables."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

import wirearray

# Method names of the baselines, as bench_byteorder.py names them: the memcpy ceiling
# and numpy's byteswap (its in-place form in the in-place groups).
COPY_BASELINE = "np.copyto (memcpy ceiling)"
SWAP_BASELINES = ("numpy a.byteswap()", "numpy a.byteswap(inplace=True)")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        default=False,
        help="drop the DRAM-sized (8M-element) cases",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "dram: a DRAM-sized case (8M elements); --bench-quick drops it"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--bench-quick"):
        return
    dropped = [item for item in items if item.get_closest_marker("dram")]
    if dropped:
        items[:] = [item for item in items if not item.get_closest_marker("dram")]
        config.hook.pytest_deselected(items=dropped)


def _info_line() -> str:
    return " ".join(f"{k}={v}" for k, v in wirearray.info().items())


def pytest_report_header(config: pytest.Config) -> str:
    quick = " (quick: DRAM sizes dropped)" if config.getoption("--bench-quick") else ""
    return f"wirearray: {_info_line()}{quick}"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved runs (--benchmark-save/--benchmark-json) say which wirearray code ran."""
    machine_info["wirearray"] = wirearray.info()


# ---- summary ----


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:8.2f} {unit:2}"
    return f"{seconds / 1e-9:8.1f} ns"


def _ratio(baseline: float | None, median: float) -> str:
    return f"{baseline / median:8.2f}x" if baseline is not None else f"{'-':>9}"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Per group: each method's median, GB/s and ratio to the baselines
    (baseline median / method median, so > 1 means faster than the baseline)."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's results
    if session is None or session.disabled:
        return
    groups: dict[str, list[Any]] = defaultdict(list)  # in the order the groups ran
    for bench in session.benchmarks:
        if bench and not bench.has_error:
            groups[bench.group].append(bench)
    if not groups:
        return

    tr = terminalreporter
    tr.write_sep("-", "wirearray summary: median, GB/s, ratio to the baselines (>1 = faster)")
    tr.write_line(f"wirearray.info(): {_info_line()}")
    width = max(len(b.extra_info.get("method", b.name)) for bs in groups.values() for b in bs)
    for group, benches in groups.items():
        medians = {b.extra_info.get("method", b.name): b.stats.median for b in benches}
        copy_base = medians.get(COPY_BASELINE)
        swap_base = next((medians[m] for m in SWAP_BASELINES if m in medians), None)
        # a group may name its own baseline (extra_info["baseline"] = True), e.g. ntoh()
        # for the codec: its ratio goes in the /byteswap column, headed /baseline
        own = [b.stats.median for b in benches if b.extra_info.get("baseline")]
        third = "/byteswap"
        if own:
            swap_base, third = own[0], "/baseline"
        tr.write_line("")
        tr.write_line(
            f"{group:<{width}}  {'median':>11} {'GB/s':>7} {'/copyto':>9} {third:>9}  simd"
        )
        for b in sorted(benches, key=lambda b: b.stats.median):
            name = b.extra_info.get("method", b.name)
            median = b.stats.median
            gbps = b.extra_info.get("nbytes", 0) / median / 1e9
            tr.write_line(
                f"{name:<{width}}  {_fmt_time(median)} {gbps:7.2f} "
                f"{_ratio(copy_base, median)} {_ratio(swap_base, median)}"
                f"  {b.extra_info.get('simd', '')}"
            )
