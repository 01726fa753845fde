"""pytest plumbing for the benchmarks: the --bench-quick and --bench-full options,
which wirearray ran, and a summary of medians and ratios to the baselines after
pytest-benchmark's tables (for the streaming groups: GB/s, messages/s, the ratio to the
raw ceiling and to wirearray, then the transport targets)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

import wirearray
from wirearray._bench.stream import evaluate_targets, format_targets, peer_versions

# Method names of the baselines, as bench_byteorder.py names them: the memcpy ceiling
# and numpy's byteswap (its in-place form in the in-place groups).
COPY_BASELINE = "np.copyto (memcpy ceiling)"
#: ... and the ceiling of an allocating conversion (same allocation, same page faults)
ALLOC_BASELINE = "numpy a.copy() (allocating ceiling)"
SWAP_BASELINES = ("numpy a.byteswap()", "numpy a.byteswap(inplace=True)")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        default=False,
        help="drop the DRAM-sized cases (8M-element kernels, 256 MiB streams)",
    )
    parser.addoption(
        "--bench-full",
        action="store_true",
        default=False,
        help="stream every method at 256 MiB, not only the ceilings, wirearray and the "
        "byte-order and pickle 5 peers",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dram: a DRAM-sized case (8M-element kernels, 256 MiB streams); --bench-quick drops it",
    )
    config.addinivalue_line(
        "markers", "full: a case run only with --bench-full (the slower peers at 256 MiB)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    quick, full = config.getoption("--bench-quick"), config.getoption("--bench-full")

    def dropped(item: pytest.Item) -> bool:
        return bool(
            (quick and item.get_closest_marker("dram"))
            or (not full and item.get_closest_marker("full"))
        )

    gone = [item for item in items if dropped(item)]
    if gone:
        items[:] = [item for item in items if not dropped(item)]
        config.hook.pytest_deselected(items=gone)


def _info_line() -> str:
    return " ".join(f"{k}={v}" for k, v in wirearray.info().items())


def pytest_report_header(config: pytest.Config) -> str:
    quick = " (quick: DRAM sizes dropped)" if config.getoption("--bench-quick") else ""
    return f"wirearray: {_info_line()}{quick}; {peer_versions()}"


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Saved runs (--benchmark-save/--benchmark-json) say which wirearray code ran."""
    machine_info["wirearray"] = wirearray.info()
    machine_info["stream_peers"] = peer_versions()  # pyzmq, pyarrow (or "missing")


# ---- summary ----


def _fmt_time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:8.2f} {unit:2}"
    return f"{seconds / 1e-9:8.1f} ns"


def _ratio(baseline: float | None, median: float) -> str:
    return f"{baseline / median:8.2f}x" if baseline is not None else f"{'-':>9}"


STREAM_KINDS = ("stream", "tls stream")


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
        tr.write_line("")
        if benches[0].extra_info.get("kind") in STREAM_KINDS:
            _stream_group(tr, group, benches, width)
        else:
            _kernel_group(tr, group, benches, width)
    _zmq_targets(tr, [b for bs in groups.values() for b in bs])
    for kind, tls in (("stream", False), ("tls stream", True)):
        rates = {
            (b.extra_info["key"], b.extra_info["size"]): b.extra_info["messages"] / b.stats.median
            for bs in groups.values()
            for b in bs
            if b.extra_info.get("kind") == kind
        }
        lines = format_targets(evaluate_targets(rates, tls=tls))
        if lines:
            tr.write_line("")
            tr.write_line(f"targets ({kind}, docs/PERFORMANCE.md), ratios of medians:")
            for line in lines:
                tr.write_line(line)


def _zmq_targets(tr: Any, benches: list[Any]) -> None:
    """The ZeroMQ targets (bench_zmq.py), from the medians of this run."""
    zmq_benches = [b for b in benches if b.extra_info.get("kind") == "zmq"]
    if not zmq_benches:
        return
    from wirearray._bench import zmq as zb

    results = [
        zb.Result(
            b.extra_info["zmq_group"],
            b.extra_info["key"],
            b.extra_info["method"],
            b.extra_info["size"],
            b.extra_info["messages"],
            1,
            [b.stats.median],
        )
        for b in zmq_benches
    ]
    lines = zb.format_targets(zb.evaluate_targets(results))
    if lines:
        tr.write_line("")
        tr.write_line("targets (zmq, docs/PERFORMANCE.md), ratios of medians:")
        for line in lines:
            tr.write_line(line)


def _kernel_group(tr: Any, group: str, benches: list[Any], width: int) -> None:
    medians = {b.extra_info.get("method", b.name): b.stats.median for b in benches}
    copy_base = medians.get(COPY_BASELINE)
    alloc_base = medians.get(ALLOC_BASELINE)
    swap_base = next((medians[m] for m in SWAP_BASELINES if m in medians), None)
    # a group may name its own baseline (extra_info["baseline"] = True), e.g. ntoh()
    # for the codec: its ratio goes in the /byteswap column, headed /baseline
    own = [b.stats.median for b in benches if b.extra_info.get("baseline")]
    third = "/byteswap"
    if own:
        swap_base, third = own[0], "/baseline"
    tr.write_line(
        f"{group:<{width}}  {'median':>11} {'GB/s':>7} {'/copyto':>9} {third:>9}"
        f" {'/a.copy()':>9}  simd"
    )
    for b in sorted(benches, key=lambda b: b.stats.median):
        name = b.extra_info.get("method", b.name)
        median = b.stats.median
        gbps = b.extra_info.get("nbytes", 0) / median / 1e9
        tr.write_line(
            f"{name:<{width}}  {_fmt_time(median)} {gbps:7.2f} "
            f"{_ratio(copy_base, median)} {_ratio(swap_base, median)}"
            f" {_ratio(alloc_base, median)}  {b.extra_info.get('simd', '')}"
        )


def _stream_group(tr: Any, group: str, benches: list[Any], width: int) -> None:
    """Median per round, GB/s, messages/s; /ceiling = raw median / this median; wa x =
    this median / the median of the wirearray method doing the same job (> 1: wirearray
    faster), the "against" column names it."""
    by_key = {b.extra_info["key"]: b for b in benches}
    ceiling = next((b.stats.median for b in benches if b.extra_info.get("ceiling")), None)
    tr.write_line(
        f"{group:<{width}}  {'median':>11} {'GB/s':>7} {'msg/s':>10} {'/ceiling':>9} "
        f"{'wa x':>8}  against"
    )
    for b in sorted(benches, key=lambda b: b.stats.median):
        info, median = b.extra_info, b.stats.median
        other = by_key.get(info.get("counterpart") or "")
        wa = f"{median / other.stats.median:7.2f}x" if other else f"{'-':>8}"
        tr.write_line(
            f"{info['method']:<{width}}  {_fmt_time(median)} {info['nbytes'] / median / 1e9:7.2f} "
            f"{info['messages'] / median:10.0f} {_ratio(ceiling, median)} {wa}  "
            f"{other.extra_info['method'] if other else ''}"
        )
