"""Every command line subcommand given bad input, in real processes: no traceback, one
line on stderr naming the actual cause, and the exit code the README documents (1 a
runtime failure, 2 bad usage)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from netutil import run_cli, start_serve

WAIT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_one_line(r: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    assert message in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Input files of every kind send must refuse, made with numpy itself."""
    d = tmp_path_factory.mktemp("cli-inputs")
    paths = {}

    def path(name: str) -> str:
        paths[name] = str(d / name)
        return paths[name]

    Path(path("text.npy")).write_text("not an array\n")
    np.save(path("object.npy"), np.array([1, "a"], dtype=object), allow_pickle=True)
    np.savez(path("object.npz"), ok=np.arange(3), bad=np.array([{}], dtype=object))
    # strings and records travel; extended precision and titled fields do not
    np.save(path("longdouble.npy"), np.zeros(2, "g"))
    np.savez(path("longdouble.npz"), s=np.zeros(1, "g"))
    titled = np.dtype({"names": ["a"], "formats": ["<i4"], "titles": ["A"]})
    np.save(path("titled.npy"), np.zeros(2, titled))
    np.save(path("generic-datetime.npy"), np.zeros(2, "M8"))
    for label, member in (("long-name", "x" * 256), ("empty-name", "")):
        with zipfile.ZipFile(path(f"{label}.npz"), "w") as zf, zf.open(f"{member}.npy", "w") as f:
            np.lib.format.write_array(f, np.zeros(2))
    with zipfile.ZipFile(path("1025-arrays.npz"), "w") as zf:
        for i in range(1025):
            with zf.open(f"a{i}.npy", "w") as f:
                np.lib.format.write_array(f, np.zeros(1))
    with zipfile.ZipFile(path("not-npy-member.npz"), "w") as zf:
        zf.writestr("notes.txt", "numpy.load gives this member as bytes")
    with zipfile.ZipFile(path("empty.npz"), "w"):
        pass
    Path(path("damaged.npy")).write_bytes(b"\x93NUMPY\x01\x00\xff\x00{'descr'")
    Path(path("damaged.npz")).write_bytes(b"PK\x03\x04 and then nothing a zip needs")
    np.save(path("good.npy"), np.arange(4.0))
    np.savez(path("good.npz"), a=np.arange(3), b=np.eye(2))
    (d / "a-directory").mkdir()
    paths["directory"] = str(d / "a-directory")
    path("plain-file")
    Path(paths["plain-file"]).write_text("")
    return paths


def _cases() -> list[tuple[str, list[str], int, str]]:
    refused = f"127.0.0.1:{_free_port()}"
    return [
        # top level
        ("no command", [], 2, "required"),
        ("unknown command", ["frobnicate"], 2, "invalid choice"),
        # send: files
        ("text file", ["send", "127.0.0.1:9", "{text.npy}"], 2, "not a .npy/.npz file"),
        ("object .npy", ["send", "127.0.0.1:9", "{object.npy}"], 2, "objects need pickle"),
        ("object .npz", ["send", "127.0.0.1:9", "{object.npz}"], 2, "object arrays cannot be sent"),
        ("float128 .npy", ["send", "127.0.0.1:9", "{longdouble.npy}"], 2, "supported are bool"),
        ("float128 .npz", ["send", "127.0.0.1:9", "{longdouble.npz}"], 2, "cannot be sent"),
        ("titled record .npy", ["send", "127.0.0.1:9", "{titled.npy}"], 2, "has a title"),
        (
            "generic datetime .npy",
            ["send", "127.0.0.1:9", "{generic-datetime.npy}"],
            2,
            "without a unit: give one",
        ),
        (
            "member not .npy",
            ["send", "127.0.0.1:9", "{not-npy-member.npz}"],
            2,
            "'notes.txt' is not a .npy member",
        ),
        ("256-byte name", ["send", "127.0.0.1:9", "{long-name.npz}"], 2, "1 to 255 bytes"),
        ("empty name", ["send", "127.0.0.1:9", "{empty-name.npz}"], 2, "1 to 255 bytes"),
        ("1025 arrays", ["send", "127.0.0.1:9", "{1025-arrays.npz}"], 2, "1024 arrays"),
        ("empty .npz", ["send", "127.0.0.1:9", "{empty.npz}"], 2, "holds no arrays"),
        ("damaged .npy", ["send", "127.0.0.1:9", "{damaged.npy}"], 2, "damaged .npy header"),
        ("damaged .npz", ["send", "127.0.0.1:9", "{damaged.npz}"], 2, "not a readable .npz"),
        ("missing file", ["send", "127.0.0.1:9", "/nonexistent/a.npy"], 2, "No such file"),
        ("directory", ["send", "127.0.0.1:9", "{directory}"], 2, "cannot read"),
        ("npz as npy", ["send", "127.0.0.1:9", "{good.npz}", "--format", "npy"], 2, "--format npy"),
        (
            "files and random",
            ["send", "127.0.0.1:9", "{good.npy}", "--random", "f8", "4"],
            2,
            "not both",
        ),
        ("nothing", ["send", "127.0.0.1:9"], 2, "nothing to send"),
        # send: --random, checked before allocating and before connecting (port 9: nobody)
        (
            "huge shape",
            ["send", "127.0.0.1:9", "--random", "f8", "100000000000,100000"],
            2,
            "over the",
        ),
        ("huge 1-d", ["send", "127.0.0.1:9", "--random", "u1", str(1 << 62)], 2, "over the"),
        ("negative shape", ["send", "127.0.0.1:9", "--random", "f8", "3,-4"], 2, "negative"),
        (
            "65 dimensions",
            ["send", "127.0.0.1:9", "--random", "f8", ",".join(["1"] * 65)],
            2,
            "dimensions",
        ),
        ("bad shape", ["send", "127.0.0.1:9", "--random", "f8", "3;4"], 2, "bad shape"),
        ("unknown dtype", ["send", "127.0.0.1:9", "--random", "float99", "4"], 2, "unknown dtype"),
        (
            "string dtype",
            ["send", "127.0.0.1:9", "--random", "U5", "4"],
            2,
            "send strings and records from a .npy file",
        ),
        (
            "object dtype",
            ["send", "127.0.0.1:9", "--random", "O", "4"],
            2,
            "not one wirearray sends",
        ),
        ("count 0", ["send", "127.0.0.1:9", "--random", "f8", "4", "--count", "0"], 2, "--count"),
        # send: options and addresses
        (
            "negative timeout",
            ["send", "127.0.0.1:9", "--random", "f8", "4", "--timeout", "-1"],
            2,
            "--timeout",
        ),
        (
            "zero timeout",
            ["send", "127.0.0.1:9", "--random", "f8", "4", "--timeout", "0"],
            2,
            "--timeout",
        ),
        (
            "nan timeout",
            ["send", "127.0.0.1:9", "--random", "f8", "4", "--timeout", "nan"],
            2,
            "--timeout",
        ),
        (
            "tcp:// url",
            ["send", "tcp://127.0.0.1:9", "--random", "f8", "4"],
            2,
            "write 127.0.0.1:9",
        ),
        (
            "unix:// url",
            ["send", "unix:///tmp/x.sock", "--random", "f8", "4"],
            2,
            "'unix:/tmp/x.sock'",
        ),
        ("http:// url", ["send", "http://127.0.0.1:9", "--random", "f8", "4"], 2, "is a URL"),
        ("no port", ["send", "no-port-here", "--random", "f8", "4"], 2, "lacks ':port'"),
        ("bad port", ["send", "127.0.0.1:99999", "--random", "f8", "4"], 2, "out of range"),
        ("unbracketed v6", ["send", "::1:5555", "--random", "f8", "4"], 2, "brackets"),
        (
            "tls files",
            ["send", "127.0.0.1:9", "--random", "f8", "4", "--tls-ca", "/nonexistent.pem"],
            2,
            "TLS files",
        ),
        (
            "authkey file",
            ["send", "127.0.0.1:9", "--random", "f8", "4", "--authkey-file", "/nonexistent"],
            2,
            "authkey file",
        ),
        (
            "zmq and tls",
            ["send", "--zmq", "push", "tcp://127.0.0.1:9", "--tls", "--random", "f8", "4"],
            2,
            "--zmq takes no",
        ),
        ("refused", ["send", refused, "--random", "f8", "4"], 1, "is `wirearray serve` listening"),
        # serve
        ("serve tcp:// url", ["serve", "tcp://127.0.0.1:0"], 2, "ZeroMQ endpoint"),
        ("serve unix:", ["serve", "unix:"], 2, "needs a path"),
        ("serve --out file", ["serve", "127.0.0.1:0", "--out", "{plain-file}"], 2, "--out"),
        (
            "serve --out uncreatable",
            ["serve", "127.0.0.1:0", "--out", "{plain-file}/sub"],
            2,
            "--out",
        ),
        ("serve timeout", ["serve", "--timeout", "-1"], 2, "--timeout"),
        ("serve idle", ["serve", "--idle-timeout", "0"], 2, "--idle-timeout"),
        ("serve connections", ["serve", "--connections", "0"], 2, "--connections"),
        ("serve max connections", ["serve", "--max-connections", "-2"], 2, "--max-connections"),
        ("serve max frame", ["serve", "--max-frame-bytes", "lots"], 2, "--max-frame-bytes"),
        ("serve tls", ["serve", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem"], 2, "go together"),
        ("serve zmq pattern", ["serve", "--zmq", "push", "tcp://127.0.0.1:0"], 2, "invalid choice"),
        # demo, bench
        ("demo option", ["demo", "--bogus"], 2, "unrecognized arguments"),
        ("bench sizes", ["bench", "--sizes", "0"], 2, "--sizes"),
        ("bench json dir", ["bench", "--json", "/nonexistent/dir/r.json"], 2, "no such directory"),
        ("bench plot dir", ["bench", "--plot", "/nonexistent/dir/r.png"], 2, "no such directory"),
        ("bench methods", ["bench", "stream", "--methods", "nosuch"], 2, "matches no method"),
        ("bench kernels dtypes", ["bench", "kernels", "--dtypes", "U5"], 2, "not a numeric dtype"),
        ("bench zmq rounds", ["bench", "zmq", "--rounds", "0"], 2, "--rounds"),
        ("bench zmq subscribers", ["bench", "zmq", "--subscribers", "99"], 2, "--subscribers"),
    ]


CASES = _cases()


@pytest.mark.parametrize(
    ("args", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_with_its_exit_code(files, args, code, message):
    for key, path in files.items():
        args = [a.replace("{" + key + "}", path) for a in args]
    r = run_cli(*args, timeout=WAIT)
    assert_one_line(r, code, message)


def test_port_in_use_is_a_runtime_failure():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli("serve", f"127.0.0.1:{port}", timeout=WAIT)
    assert_one_line(r, 1, "in use")


def test_refused_by_the_server_is_a_runtime_failure_with_its_reason():
    server, address = start_serve("127.0.0.1:0", "--connections", "1", "--max-frame-bytes", "100")
    try:
        r = run_cli("send", address, "--random", "f8", "1000", timeout=WAIT)
        assert_one_line(r, 1, "PeerError")
        server.communicate(timeout=WAIT)
    finally:
        server.kill()


def test_server_gone_mid_stream_says_the_arrays_were_not_confirmed():
    """A server that drops the connection (a reset) is a runtime failure whose line says
    what happened to the arrays, not only the OS's "Connection reset by peer"."""
    import struct
    import threading

    with socket.create_server(("127.0.0.1", 0)) as srv:

        def reset_first_client() -> None:
            conn, _ = srv.accept()
            conn.recv(1)  # the client's first bytes: it is sending
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: a reset, as a server killed mid-stream

        t = threading.Thread(target=reset_first_client, daemon=True)
        t.start()
        port = srv.getsockname()[1]
        r = run_cli("send", f"127.0.0.1:{port}", "--random", "f8", "100000", "--count", "50")
        t.join(WAIT)
    assert_one_line(r, 1, "was lost")
    assert "did not confirm the arrays" in r.stderr


def test_output_directory_gone_is_an_output_error(tmp_path):
    """serve --out whose directory disappears: the server says it cannot write there
    (not that a connection failed) and exits 1; the client learns its array was not
    kept."""
    out_dir = tmp_path / "received"
    server, address = start_serve("127.0.0.1:0", "--out", str(out_dir))
    try:
        shutil.rmtree(out_dir)
        r = run_cli("send", address, "--random", "f8", "4", timeout=WAIT)
        assert_one_line(r, 1, "PeerError")
        _out, err = server.communicate(timeout=WAIT)
    finally:
        server.kill()
    assert server.returncode == 1, err
    assert "Traceback" not in err
    assert f"--out: cannot write {out_dir}" in err.strip().splitlines()[-1], err


def test_pure_python_install_has_no_import_error_to_report(tmp_path):
    """The package without its compiled module (what WIREARRAY_NO_EXTENSION=1 installs):
    the CLI runs on the fallback, and the reason it gives names the missing extension,
    not a circular import."""
    import wirearray

    copy = tmp_path / "wirearray"
    shutil.copytree(
        Path(wirearray.__file__).parent,
        copy,
        ignore=shutil.ignore_patterns("_cwire.*.so", "_cwire*.pyd", "_cwire.c", "__pycache__"),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIREARRAY_")}
    code = "import json, wirearray; print(json.dumps(wirearray.info()))"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=WAIT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert str(tmp_path) in subprocess.run(
        [sys.executable, "-c", "import wirearray; print(wirearray.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT,
    ).stdout  # fmt: skip
    assert '"implementation": "python"' in r.stdout
    assert "circular" not in r.stdout and "not installed" in r.stdout, r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "wirearray", "send", "tcp://127.0.0.1:9", "--random", "f8", "4"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT,
    )  # fmt: skip
    assert_one_line(r, 2, "ZeroMQ endpoint")
