"""Plots for ``wirearray bench stream --plot`` and ``bench kernels --plot``: throughput
against array size, one line per method.  matplotlib is optional (the ``bench``
extra); :func:`missing` says why plotting cannot work, so the command line can refuse
``--plot`` before it spends a minute measuring.

Figures are drawn with matplotlib's object API and the Agg canvas: no pyplot state,
no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import wirearray

INSTALL_HINT = "pip install matplotlib, or install wirearray[bench]"


def missing() -> str | None:
    """None if matplotlib imports, else a one-line reason."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as exc:
        return f"--plot needs matplotlib ({INSTALL_HINT}): {exc}"
    return None


def _figure(rows: int, cols: int, width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _size_axis(ax: Any, sizes: Sequence[int], label: str, names: Sequence[str] = ()) -> None:
    """A log2 x axis with a tick per measured size, labelled in bytes (or ``names``)."""
    from .results import size_label

    ax.set_xscale("log", base=2)
    ax.set_xticks(list(sizes))
    ax.set_xticklabels(names or [size_label(n) for n in sizes], rotation=30, ha="right")
    ax.minorticks_off()
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def _subtitle() -> str:
    from .results import machine

    info = wirearray.info()
    return (
        f"wirearray {info['wirearray']} ({info['implementation']}, SIMD {info['simd']}), "
        f"numpy {info['numpy']}, Python {info['python']}; {machine()}"
    )


# ---- streaming ----

_WIREARRAY_COLORS = {
    "wa-native": "tab:blue",
    "wa-native-fresh": "tab:blue",
    "wa-native-held": "navy",
    "wa-network": "tab:red",
    "wa-network-fresh": "tab:red",
}

_PEER_COLORS = ("tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
_PEER_COLORS += ("tab:cyan", "tab:gray", "gold")


def _stream_style(key: str, index: int) -> dict[str, Any]:
    from .peers import METHODS

    m = METHODS[key]
    if m.family == "ceiling":
        return {"color": "black", "linestyle": "--" if m.fresh else "-", "linewidth": 2.2}
    if m.family == "wirearray":
        return {
            "color": _WIREARRAY_COLORS.get(key, "tab:blue"),
            "linestyle": "--" if m.fresh else ("-." if m.max_bytes else "-"),
            "linewidth": 2.2,
            "marker": "o",
            "markersize": 4,
        }
    return {
        "color": _PEER_COLORS[index % len(_PEER_COLORS)],
        "linestyle": ":" if m.fresh else "-",
        "linewidth": 1.2,
        "marker": "s^vD<>ph*"[index % 9],
        "markersize": 4,
    }


def plot_stream(results: Sequence[Any], path: str) -> None:
    """GB/s against array size (top) and the ratio to the ceiling (bottom)."""
    from .peers import METHODS
    from .results import index_results, ratio_to_ceiling

    by = index_results(results)
    keys = list(dict.fromkeys(r.method for r in results))
    sizes = sorted({r.nbytes for r in results})
    fig, axes = _figure(2, 1, 11, 10)
    top, bottom = axes[0][0], axes[1][0]
    peer_index = 0
    for key in keys:
        style = _stream_style(key, peer_index)
        if METHODS[key].family == "peer":
            peer_index += 1
        rs = [by[(key, n)] for n in sizes if (key, n) in by]
        xs = [r.nbytes for r in rs]
        top.plot(xs, [r.gbps for r in rs], label=METHODS[key].name, **style)
        ratios = [ratio_to_ceiling(r, by) for r in rs]
        pts = [(x, y) for x, y in zip(xs, ratios, strict=True) if y is not None]
        if pts:
            bottom.plot([p[0] for p in pts], [p[1] for p in pts], **style)
    top.set_yscale("log")
    top.set_ylabel("GB/s (array bytes / time per message)")
    top.set_title(f"float64 arrays over TCP loopback, process to process\n{_subtitle()}")
    _size_axis(top, sizes, "array size")
    bottom.axhline(1.0, color="black", linewidth=0.8)
    bottom.set_ylabel(f"ratio to {METHODS['raw'].name}\n(into one reused array)")
    _size_axis(bottom, sizes, "array size")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.savefig(path, dpi=110)


# ---- byte-order kernels ----

_KERNEL_STYLES = {
    "hton": {"color": "tab:blue", "linewidth": 2.2, "marker": "o"},
    "ntoh": {"color": "tab:red", "linewidth": 2.2, "marker": "o", "linestyle": "--"},
    "byteswap": {"color": "tab:green", "marker": "s"},
    "astype": {"color": "tab:orange", "marker": "^"},
    "copyto": {"color": "black", "linewidth": 2.0, "linestyle": ":"},
    "hton new": {"color": "tab:purple", "marker": "o"},
    "copy": {"color": "grey", "linewidth": 2.0, "linestyle": "-."},
}


def plot_kernels(results: Sequence[Any], ops: dict[str, str], path: str) -> None:
    """GB/s against array size, one panel per dtype, one line per operation."""
    dtypes = list(dict.fromkeys(r.dtype for r in results))
    cols = 2 if len(dtypes) > 1 else 1
    rows = (len(dtypes) + cols - 1) // cols
    fig, axes = _figure(rows, cols, 6 * cols + 3, 4.2 * rows)
    for i, dtype in enumerate(dtypes):
        ax = axes[i // cols][i % cols]
        mine = [r for r in results if r.dtype == dtype]
        counts = sorted({r.n for r in mine})
        for op in ops:
            rs = sorted((r for r in mine if r.op == op), key=lambda r: r.n)
            style = {"markersize": 4, **_KERNEL_STYLES.get(op, {})}
            ax.plot([r.n for r in rs], [r.gbps for r in rs], label=ops[op], **style)
        ax.set_yscale("log")
        ax.set_ylabel("GB/s (array bytes / time)")
        ax.set_title(dtype)
        _size_axis(ax, counts, "items (n)", [f"{n:,}".replace(",", " ") for n in counts])
    for j in range(len(dtypes), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    axes[0][0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"byte-order kernels, median per call\n{_subtitle()}")
    fig.savefig(path, dpi=110)
