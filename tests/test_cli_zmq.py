"""The command line over ZeroMQ: ``serve --zmq``/``send --zmq`` between processes, gaps
and refused messages reported by serve, usage errors, and ``bench zmq``."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys

import numpy as np
import pytest

from zmqutil import Endpoints, bounded, require_zmq

require_zmq()

import zmq  # noqa: E402

from wirearray import zmq as wz  # noqa: E402

WAIT = 120


def wirearray(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wirearray", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env,
    )


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wirearray", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    m = re.search(r"listening on (\S+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no endpoint in {line!r}: {proc.stderr.read()}")
    return proc, m.group(1)


@pytest.fixture
def endpoints():
    e = Endpoints()
    yield e
    e.close()


def test_push_to_pull(tmp_path):
    out_dir = tmp_path / "received"
    server, endpoint = start_server(
        "--zmq", "pull", "tcp://127.0.0.1:*", "--timeout", "3", "--out", str(out_dir)
    )
    sent = wirearray(
        "send", "--zmq", "push", endpoint, "--random", "float32", "100,3", "--count", "3",
        "--checksum", "--timeout", "30",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "sent 3 arrays" in sent.stdout
    out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert out.count("float32 (100, 3)") == 3
    assert "3 messages" in out and "0 lost" in out
    saved = sorted(out_dir.glob("*.npy"))
    assert len(saved) == 3 and np.load(saved[0]).shape == (100, 3)


def test_pub_to_sub_files(tmp_path, endpoints):
    a = np.arange(200_000, dtype=np.int32).reshape(400, 500)  # a split frame
    np.save(tmp_path / "a.npy", a)
    server, endpoint = start_server("--zmq", "sub", endpoints.new("ipc"), "--timeout", "3")
    sent = wirearray("send", "--zmq", "pub", endpoint, str(tmp_path / "a.npy"), "--timeout", "30")
    assert sent.returncode == 0, sent.stderr
    out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert "int32 (400, 500)" in out and "1 message," in out


def test_serve_reports_gaps_and_refusals():
    server, endpoint = start_server("--zmq", "pull", "tcp://127.0.0.1:*", "--timeout", "3")
    ctx = zmq.Context()
    try:
        push = bounded(ctx.socket(zmq.PUSH))
        push.connect(endpoint)
        tx = wz.Sender(push)
        tx.send(np.zeros(3))
        tx._stream(()).seq += 2  # as if two messages had been lost on the way
        tx.send(np.ones(3))
        push.send_multipart([b"not a wirearray message"])
        tx.send(np.ones(3))
        out, err = server.communicate(timeout=WAIT)
    finally:
        ctx.destroy(linger=2000)
    assert server.returncode == 0, err
    assert "2 message(s) lost before #3" in err
    assert "refused a message: MalformedFrameError" in err
    assert "3 messages" in out and "2 lost" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("send", "tcp://127.0.0.1:5555", "--random", "f8", "3"), "add --zmq PATTERN"),
        (("serve", "tcp://127.0.0.1:5555"), "add --zmq PATTERN"),
        (("serve", "--zmq", "pull", "127.0.0.1:5555"), "a zmq endpoint is"),
        (("send", "--zmq", "pub", "tcp://127.0.0.1:1", "--random", "f8", "3", "--tls"), "CURVE"),
        (("serve", "--zmq", "pull", "ipc:///x", "--format", "npy"), "CURVE"),
        (("send", "--zmq", "dealer", "tcp://127.0.0.1:1"), "invalid choice"),
    ],
)
def test_usage_errors(args, message):
    r = wirearray(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # one line (after argparse's usage)
    assert last.startswith(("wirearray: error:", "wirearray send: error:")), last


def test_no_peer_is_a_timeout_not_a_silent_drop():
    r = wirearray(
        "send", "--zmq", "push", "tcp://127.0.0.1:9", "--random", "f8", "3", "--timeout", "0.5"
    )
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "wirearray: error: timed out (tcp://127.0.0.1:9): no peer took the arrays within 0.5 s"
    )


def test_bench_zmq(tmp_path):
    out = tmp_path / "zmq.json"
    r = wirearray(
        "bench", "zmq", "--sizes", "1K", "--subscribers", "1", "--rounds", "1",
        "--json", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "PAIR, 8 KiB" in r.stdout and "PUB/SUB, 1 subscriber(s)" in r.stdout
    assert "Targets" in r.stdout
    assert f"on {platform.system()} {platform.machine()}, " in r.stdout.splitlines()[0]
    doc = json.loads(out.read_text())
    methods = {(x["group"], x["method"]) for x in doc["results"]}
    assert ("pair", "wa-native") in methods and ("pubsub-1", "wa-network") in methods
    assert all(x["gbps"] > 0 and len(x["runs_s"]) == 1 for x in doc["results"])
    assert doc["info"]["implementation"] in ("cython", "python")


def test_bench_zmq_without_pyzmq(tmp_path):
    fake = tmp_path / "hide"
    fake.mkdir()
    (fake / "zmq.py").write_text("raise ImportError('no module named zmq (test)')\n")
    path = os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))
    r = wirearray("bench", "zmq", "--sizes", "1K", env={**os.environ, "PYTHONPATH": path})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "wirearray bench zmq: skipped: pyzmq is not installed (pip install 'wirearray[zmq]')"
    )


def test_npz_file_is_one_message_saved_as_npz(tmp_path):
    arrays = {"a": np.arange(5, dtype="i4"), "b": np.ones((2, 2), ">f8")}
    np.savez(tmp_path / "m.npz", **arrays)
    out_dir = tmp_path / "received"
    server, endpoint = start_server(
        "--zmq", "pull", "tcp://127.0.0.1:*", "--timeout", "3", "--out", str(out_dir)
    )
    sent = wirearray("send", "--zmq", "push", endpoint, str(tmp_path / "m.npz"), "--timeout", "30")
    assert sent.returncode == 0, sent.stderr
    out, err = server.communicate(timeout=WAIT)
    assert server.returncode == 0, err
    assert "1 message," in out
    (saved,) = out_dir.iterdir()
    assert saved.name == "000001.npz"
    with np.load(saved, allow_pickle=False) as got:
        assert sorted(got.files) == ["a", "b"]
        for k, a in arrays.items():
            assert np.array_equal(got[k], a) and got[k].dtype.kind == a.dtype.kind, k
