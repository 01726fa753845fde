"""The command line in real processes: serve/send between two of them, the demo, exit
codes (0 ok, 1 runtime failure, 2 usage) and one-line errors."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess

import numpy as np
import pytest

from netutil import run_cli, start_serve

WAIT = 120


def wirearray(*args: str, **kw) -> subprocess.CompletedProcess:
    return run_cli(*args, timeout=WAIT, **kw)


start_server = start_serve


def test_serve_and_send_random_arrays(tmp_path):
    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--out", str(out_dir))
    sent = wirearray("send", address, "--random", "float32", "100,3", "--count", "3")
    assert sent.returncode == 0, sent.stderr
    assert "sent 3 arrays" in sent.stdout
    out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert out.count("float32 (100, 3)") == 3
    saved = sorted(out_dir.glob("*.npy"))
    assert len(saved) == 3
    assert np.load(saved[0]).shape == (100, 3)


@pytest.mark.parametrize("dtype", ["datetime64[ns]", "M8[10ms]", "timedelta64[us]", ">m8[D]"])
def test_send_random_times(tmp_path, dtype):
    """--random takes every unit and multiplier the wire carries; NaT included."""
    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--out", str(out_dir))
    sent = wirearray("send", address, "--random", dtype, "50,2")
    assert sent.returncode == 0, sent.stderr
    _out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    (saved,) = out_dir.glob("*.npy")
    got = np.load(saved)
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (50, 2)
    assert np.isnat(got.flat[0]) and not np.isnat(got.flat[1:]).any()
    assert len(np.unique(got)) > 90


def test_send_keeps_order_when_small_arrays_are_held(tmp_path):
    """send holds small arrays (send(flush=False)) and sends large ones at once: what
    the server saves is every array, in order."""
    arrays = [np.arange(5.0), np.arange(1 << 17, dtype="i8"), np.arange(3, dtype="u2")]
    arrays += [np.full((4, 4), 7.0)]
    files = []
    for i, a in enumerate(arrays):
        files.append(str(tmp_path / f"in{i}.npy"))
        np.save(files[-1], a)
    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--out", str(out_dir))
    sent = wirearray("send", address, *files)
    assert sent.returncode == 0, sent.stderr
    _out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    saved = sorted(out_dir.glob("*.npy"))
    assert len(saved) == len(arrays)
    for path, a in zip(saved, arrays, strict=True):
        got = np.load(path)
        assert got.dtype == a.dtype and np.array_equal(got, a), path.name


def test_send_npy_files_over_unix_socket(tmp_path):
    files = []
    for i, a in enumerate([np.arange(10, dtype="i2"), np.eye(3), np.zeros((0, 4), "c8")]):
        path = tmp_path / f"a{i}.npy"
        np.save(path, a)
        files.append(str(path))
    sock = f"unix:{tmp_path}/cli.sock"
    server, address = start_server(sock, "--connections", "1", "--summary", "--format", "npy")
    assert address == sock
    sent = wirearray("send", sock, *files, "--format", "npy")
    assert sent.returncode == 0, sent.stderr
    out, err = server.communicate(timeout=WAIT)
    assert "3 messages" in out, out + err
    # a few hundred bytes: a rate in kB/s with its unit, never a bare "0.0 MB/s"
    assert "0.0 MB/s" not in out + sent.stdout and "/s)" in sent.stdout, (out, sent.stdout)


# the machine as every benchmark header names it: OS and architecture, then its CPUs
_MACHINE = f"{platform.system()} {platform.machine()}, "


def test_demo_quick_runs_and_reports_ratios():
    # development mode: a socket or file the demo leaves open shows as a ResourceWarning
    env = {**os.environ, "WIREARRAY_DEMO_SECONDS": "0.2", "PYTHONDEVMODE": "1"}
    r = wirearray("demo", "--quick", env=env)
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr, r.stderr
    assert "native/raw" in r.stdout
    assert _MACHINE in r.stdout.splitlines()[0]  # figures name the machine they come from
    rows = [line for line in r.stdout.splitlines() if re.match(r"\s+\d+\.\d (KiB|MiB)", line)]
    assert len(rows) == 4
    for row in rows:
        assert row.rstrip().endswith("x")
    small = re.search(
        r"float64\[16\] messages .*: raw sendall (\d+), wirearray (\d+) \([\d.]+x\), "
        r"wirearray send\(flush=False\) (\d+) \([\d.]+x\)",
        r.stdout,
    )
    assert small and all(int(x) > 0 for x in small.groups()), r.stdout


def test_demo_kernels_quick_runs_and_reports_ratios():
    r = wirearray("demo", "--kernels", "--quick")
    assert r.returncode == 0, r.stderr
    assert "implementation:" in r.stdout and "hton" in r.stdout
    assert f"machine: {_MACHINE}" in r.stdout
    rows = [line for line in r.stdout.splitlines() if re.match(r"\s+\d+ (KiB|MiB)", line)]
    assert len(rows) == 4  # 1 KiB to 16 MiB: --quick drops 256 MiB
    for row in rows:
        assert row.rstrip().endswith("x")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["send", f"127.0.0.1:{_free_port()}", "--random", "f8", "4"], 1, "connection refused"),
        (["send", "no-port-here", "--random", "f8", "4"], 2, "lacks ':port'"),
        (["send", "127.0.0.1:9", "/nonexistent/file.npy"], 2, "cannot read"),
        (["send", "127.0.0.1:9"], 2, "nothing to send"),
        (["send", "127.0.0.1:9", "--random", "U5", "4"], 2, "not one wirearray sends"),
        (["serve", "unix:"], 2, "needs a path"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line_with_exit_codes(args, code, message):
    r = wirearray(*args)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert message in r.stderr
    if code == 1 or "error:" in r.stderr.splitlines()[-1]:
        assert "Traceback" not in r.stderr


def test_npz_files_go_as_named_messages_and_are_saved_as_npz(tmp_path):
    """send A.npz: one message of A's named arrays (send_many); serve --out writes it
    back as a .npz numpy reads, single arrays staying .npy, in the order sent."""
    first = {"x": np.arange(6, dtype="i2").reshape(2, 3), "y": np.eye(3, dtype="f4")}
    second = {"allow_pickle": np.arange(3.0), "file": np.zeros((0, 2), "c8")}  # savez's keywords
    np.savez(tmp_path / "first.npz", **first)
    import zipfile

    # names numpy.savez cannot take (its own keywords), in a compressed archive
    with zipfile.ZipFile(tmp_path / "second.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        for k, a in second.items():
            with zf.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, a)
    single = np.arange(10, dtype="u8")
    np.save(tmp_path / "single.npy", single)
    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--out", str(out_dir))
    sent = wirearray(
        "send", address, str(tmp_path / "first.npz"), str(tmp_path / "single.npy"),
        str(tmp_path / "second.npz"),
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "sent 5 arrays" in sent.stdout
    out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert "'x' int16 (2, 3)" in out and "'file' complex64 (0, 2)" in out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["000001.npz", "000003.npy", "000004.npz"], names
    for path, expected in ((out_dir / "000001.npz", first), (out_dir / "000004.npz", second)):
        with np.load(path, allow_pickle=False) as got:
            assert sorted(got.files) == sorted(expected)
            for k, a in expected.items():
                assert got[k].dtype == a.dtype and np.array_equal(got[k], a), k
    got = np.load(out_dir / "000003.npy")
    assert got.dtype == single.dtype and np.array_equal(got, single)


def test_serve_out_keeps_peer_names_as_numpy_savez_does(tmp_path):
    """Names from the peer become .npz member names verbatim (NAME.npy, as numpy.savez
    writes them), so numpy.load gives back every name sent: path-like, non-ASCII
    or ending in .npy."""
    import wirearray as wa

    sent = {n: np.full(2, i) for i, n in enumerate(["../up", "/abs", "b.npy", "a", "é☃"])}
    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--out", str(out_dir))
    host, port = address.rsplit(":", 1)
    with wa.connect((host, int(port)), timeout=WAIT) as channel:
        channel.send_many(sent)
    _out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    with np.load(out_dir / "000001.npz", allow_pickle=False) as got:
        assert sorted(got.files) == sorted(sent)
        for k, a in sent.items():
            assert np.array_equal(got[k], a), k


@pytest.mark.parametrize(
    "names, why",
    [(["a\0b", "a\0c"], "NUL"), (["a", "a.npy"], "'a.npy'")],
    ids=["nul", "stem-and-stem.npy"],
)
def test_serve_out_refuses_names_numpy_load_cannot_give_back(tmp_path, names, why):
    """A zip member name ends at NUL (zipfile cuts it there: "a\\0b" and "a\\0c" would
    both be saved as member "a"), and numpy.load looks a key up as a member name first
    ("a.npy" would give the array of "a"): either would lose an array silently, so
    serve --out writes no such file, refuses that peer (its send fails, one line on
    serve's stderr) and goes on serving the next client."""
    import wirearray as wa

    out_dir = tmp_path / "received"
    server, address = start_server("127.0.0.1:0", "--connections", "2", "--out", str(out_dir))
    host, port = address.rsplit(":", 1)
    with pytest.raises(wa.WireError):
        with wa.connect((host, int(port)), timeout=WAIT) as channel:
            channel.send_many({n: np.full(2, i) for i, n in enumerate(names)})
    with wa.connect((host, int(port)), timeout=WAIT) as channel:  # an honest client
        channel.send_many({"x": np.arange(3), "y": np.ones(2)})
    _out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert why in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    (saved,) = out_dir.glob("*.npz")
    with np.load(saved) as got:
        assert sorted(got.files) == ["x", "y"] and np.array_equal(got["x"], np.arange(3))


def test_files_may_follow_options(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3.0))
    np.save(tmp_path / "b.npy", np.arange(2))
    server, address = start_server("127.0.0.1:0", "--connections", "1", "--format", "npy")
    sent = wirearray(
        "send", address, "--format", "npy", "a.npy", "--checksum", "b.npy", cwd=tmp_path
    )
    assert sent.returncode == 0, sent.stderr
    assert "sent 2 arrays" in sent.stdout
    out, err = server.communicate(timeout=WAIT)
    assert "float64 (3,)" in out and "int64 (2,)" in out, out + err


def test_every_option_of_every_command_says_what_it_does():
    """``wirearray COMMAND --help`` is the reference a user reads first: an option
    listed without a word (its default, its unit) leaves them guessing."""
    import argparse

    from wirearray.cli import build_parser

    def walk(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif action.option_strings and action.help is None:
                yield f"{name} {action.option_strings[-1]}"

    assert list(walk(build_parser(), "wirearray")) == []


@pytest.mark.parametrize(
    ("nbytes", "seconds", "shown"),
    [
        (2_500_000, 1.0, "2.5 MB/s"),
        (100_000, 1.0, "0.1 MB/s"),
        (178, 0.03, "5.9 kB/s"),
        (100, 1.0, "0.1 kB/s"),
        (112, 3.51, "31.9 B/s"),  # two small messages over a wait of seconds
        (0, 1.0, "0.0 MB/s"),  # nothing moved: nothing to scale
        (10, 0.0, "10000.0 MB/s"),  # no measurable time: bounded, not a ZeroDivisionError
    ],
)
def test_rates_keep_a_unit_that_shows_the_figure(nbytes, seconds, shown):
    from wirearray._cli_common import fmt_rate

    assert fmt_rate(nbytes, seconds) == shown


def test_bare_command_names_the_commands():
    r = wirearray()
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "wirearray: error: a command is required: serve, send, demo or bench (see wirearray --help)"
    )
