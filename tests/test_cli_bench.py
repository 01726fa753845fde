"""`wirearray bench stream` / plain `wirearray bench` and `wirearray bench kernels`:
tables, JSON, --plot (a PNG with matplotlib, exit code 2 and one line without it),
skipped optional peers, bad arguments.  Tiny sizes keep each run to seconds."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from wirearray import cli

WAIT = 300
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def wirearray(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wirearray", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def hiding(tmp_path: Path, *modules: str) -> dict:
    """An environment in which importing ``modules`` fails, as if not installed."""
    fake = tmp_path / "hide"
    fake.mkdir(exist_ok=True)
    for name in modules:
        (fake / f"{name}.py").write_text(f"raise ImportError('no module named {name} (test)')\n")
    path = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def check_plot(r: subprocess.CompletedProcess, png: Path) -> None:
    if has_matplotlib():
        assert r.returncode == 0, r.stderr
        assert png.read_bytes()[:8] == PNG_MAGIC
    else:
        assert r.returncode == 2, r.stderr
        assert "needs matplotlib" in r.stderr
        assert not png.exists()


def test_stream_table_json_and_plot(tmp_path):
    out, png = tmp_path / "stream.json", tmp_path / "stream.png"
    r = wirearray(
        "bench", "stream", "--sizes", "16,1K", "--methods", "wa-native,mp-bytes",
        "--json", str(out), "--plot", str(png),
    )  # fmt: skip
    check_plot(r, png)
    if r.returncode:
        return  # no matplotlib: refused before measuring (checked above)
    for title in ("Throughput, GB/s", "Messages per second", "Ratio to the ceiling", "Targets"):
        assert title in r.stdout
    assert "raw sendall/recv_into [ceiling]" in r.stdout  # the ceiling always runs

    doc = json.loads(out.read_text())
    assert doc["info"]["implementation"] in ("cython", "python")
    assert doc["ceiling"] == "raw"
    assert set(doc["methods"]) == {"raw", "wa-native", "mp-bytes"}
    assert doc["sizes"] == [16 * 8, 1024 * 8]
    results = {(x["method"], x["nbytes"]): x for x in doc["results"]}
    assert len(results) == 6
    for (method, nbytes), x in results.items():
        assert x["items"] * 8 == nbytes
        assert x["count"] >= 2 and len(x["runs_s"]) == doc["settings"]["repeats"]
        assert x["gbps"] > 0 and x["messages_per_s"] > 0
        assert x["seconds_per_message"] == pytest.approx(x["median_s"] / x["count"])
        assert x["ratio_to_ceiling"] > 0
        if method == "raw":
            assert x["ratio_to_ceiling"] == 1.0
    assert results[("mp-bytes", 128)]["counterpart_ratio"] > 0  # against wa-native
    assert results[("wa-native", 128)]["counterpart_ratio"] is None
    (target,) = [t for t in doc["targets"] if t["reference"] == "mp-bytes"]
    assert set(target["ratios"]) == {"128"} and isinstance(target["met"], bool)


def test_every_method_moves_a_small_array(tmp_path):
    """Each peer does the whole job (its receiver checks dtype, shape and values);
    pyzmq and pyarrow may be missing, then they are skipped with the reason."""
    out = tmp_path / "all.json"
    r = wirearray("bench", "stream", "--sizes", "16", "--json", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    measured = {x["method"] for x in doc["results"]}
    for key, m in doc["methods"].items():
        assert (key in measured) == (m["skipped"] is None), (key, m)
    assert {"raw", "wa-native", "wa-network-fresh", "astype-byteswap", "pickle5", "npy"} <= measured


def test_plain_bench_takes_the_stream_options(tmp_path):
    """`wirearray bench --json FILE` (and --plot, --sizes, ...) as the README shows it:
    plain `bench` is `bench stream` with the same options."""
    out = tmp_path / "plain.json"
    r = wirearray("bench", "--sizes", "16", "--methods", "wa-native", "--json", str(out))
    assert r.returncode == 0, r.stderr
    assert "Throughput, GB/s" in r.stdout
    assert f"machine: {platform.system()} {platform.machine()}, " in r.stdout
    doc = json.loads(out.read_text())
    assert doc["sizes"] == [16 * 8]
    assert doc["machine"].startswith(f"{platform.system()} {platform.machine()}, ")
    assert {x["method"] for x in doc["results"]} == {"raw", "wa-native"}


def test_missing_optional_peer_is_skipped_with_its_reason(tmp_path):
    out = tmp_path / "skip.json"
    r = wirearray(
        "bench", "stream", "--sizes", "16", "--methods", "zmq", "--json", str(out),
        env=hiding(tmp_path, "zmq"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "skipped pyzmq send_array/recv_array" in r.stdout
    assert "pip install pyzmq" in r.stdout
    doc = json.loads(out.read_text())
    assert "pyzmq is not installed" in doc["methods"]["zmq"]["skipped"]
    assert {x["method"] for x in doc["results"]} == {"raw"}


def test_tls_runs_without_trustme_say_why(tmp_path):
    """bench/'s TLS streams skip with this reason; asked for anyway, a one-line error."""
    code = (
        "from wirearray._bench.peers import StreamServer, tls_unavailable\n"
        "print(tls_unavailable())\n"
        "try:\n"
        "    StreamServer(tls=True)\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=hiding(tmp_path, "trustme"),
    )
    assert r.returncode == 0, r.stderr
    reason, error = r.stdout.splitlines()
    assert reason.startswith("trustme is not installed (pip install trustme")
    assert error == f"TLS runs need a certificate: {reason}"


def test_plot_without_matplotlib_is_a_usage_error(tmp_path):
    out, png = tmp_path / "x.json", tmp_path / "x.png"
    for args in (["bench", "stream", "--sizes", "16"], ["bench", "kernels", "--sizes", "8"]):
        r = wirearray(
            *args, "--json", str(out), "--plot", str(png), env=hiding(tmp_path, "matplotlib")
        )
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("wirearray: error: --plot needs matplotlib")
        assert "pip install matplotlib" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert not out.exists() and not png.exists()  # refused before measuring


def test_kernels_sizes_dtypes_json_and_plot(tmp_path):
    out, png = tmp_path / "kernels.json", tmp_path / "kernels.png"
    r = wirearray(
        "bench", "kernels", "--sizes", "8,1K", "--dtypes", "float64,int16",
        "--json", str(out), "--plot", str(png),
    )  # fmt: skip
    check_plot(r, png)
    if r.returncode:
        return
    doc = json.loads(out.read_text())
    got = {(x["dtype"], x["n"], x["op"]) for x in doc["results"]}
    ops = set(doc["ops"])
    assert got == {(d, n, op) for d in ("float64", "int16") for n in (8, 1024) for op in ops}
    assert all(x["median_s"] > 0 and x["gbps"] > 0 for x in doc["results"])


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "stream", "--sizes", "0"],
        ["bench", "stream", "--sizes", "12x"],
        ["bench", "stream", "--sizes", "1G"],  # 8 GiB arrays: over the limit
        ["bench", "stream", "--methods", "carrier-pigeon"],
        ["bench", "stream", "--json", "/no/such/dir/out.json"],
        ["bench", "--sizes", "0"],
        ["bench", "--plot", "/no/such/dir/s.png"],
        ["bench", "kernels", "--dtypes", "U5"],
        ["bench", "kernels", "--plot", "/no/such/dir/k.png"],
    ],
)
def test_bad_arguments_exit_2(args):
    r = wirearray(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "error" in r.stderr


@pytest.mark.parametrize(
    "code",
    [
        "import wirearray",
        # the command line loads the harness only to run a bench or demo command
        "import wirearray.cli; wirearray.cli.build_parser().parse_args(['bench'])",
    ],
)
def test_import_wirearray_never_loads_the_benchmark_harness(code):
    check = "import sys; assert not any(m.startswith('wirearray._bench') for m in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", f"{code}; {check}"], capture_output=True, text=True, timeout=WAIT
    )
    assert r.returncode == 0, r.stderr


def test_plain_bench_is_the_quick_stream_bench():
    args = cli.build_parser().parse_args(["bench"])
    assert args.func is cli.cmd_bench_stream
    assert not args.full and args.sizes is None and args.methods is None
    stream = cli.build_parser().parse_args(["bench", "stream", "--full", "--sizes", "16,2M"])
    assert stream.func is cli.cmd_bench_stream and stream.full
    assert stream.sizes == [16, 2 << 20]
    plain = cli.build_parser().parse_args(["bench", "--full", "--sizes", "16,2M", "--json", "x"])
    assert plain.func is cli.cmd_bench_stream and plain.full
    assert plain.sizes == [16, 2 << 20] and plain.json == "x"
    # options before the word `stream` stay in force; after it, they win
    both = cli.build_parser().parse_args(["bench", "--sizes", "16", "--json", "x", "stream"])
    assert both.sizes == [16] and both.json == "x"
    both = cli.build_parser().parse_args(["bench", "--sizes", "16", "stream", "--sizes", "32"])
    assert both.sizes == [32]
    kernels = cli.build_parser().parse_args(["bench", "kernels", "--quick"])
    assert kernels.func is cli.cmd_bench_kernels


def test_methods_filter_matches_keys_and_words():
    parse = cli.build_parser().parse_args
    assert parse(["bench", "stream", "--methods", "wa-native"]).methods == ["raw", "wa-native"]
    arrow = parse(["bench", "stream", "--methods", "arrow"]).methods
    assert arrow == ["raw", "arrow-tensor", "arrow-stream"]
