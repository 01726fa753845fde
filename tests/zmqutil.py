"""Test plumbing for wirearray.zmq: contexts, connected socket pairs over inproc, ipc
(in a short temporary directory) and tcp (127.0.0.1, port chosen by the OS), raw
messages, and peer processes (tests/zmq_peer.py).

Every socket made here has RCVTIMEO and SNDTIMEO of WAIT_MS, so no test can block
forever on a receive or a send, and LINGER 0, so closing never waits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any

import pytest

try:
    import zmq
except ImportError:  # the importing test module skips
    zmq = None  # type: ignore[assignment]

WAIT_MS = 10_000
TESTS = os.path.dirname(os.path.abspath(__file__))
TRANSPORTS = ("inproc", "ipc", "tcp")


def require_zmq() -> None:
    """Skip the calling test module (one line) unless pyzmq >= 26.4 is importable."""
    if zmq is None or not hasattr(zmq.Socket, "recv_into"):
        pytest.skip(
            "pyzmq >= 26.4 not installed (pip install 'wirearray[zmq]')",
            allow_module_level=True,
        )


def bounded(sock: Any, ms: int = WAIT_MS) -> Any:
    sock.setsockopt(zmq.RCVTIMEO, ms)
    sock.setsockopt(zmq.SNDTIMEO, ms)
    sock.setsockopt(zmq.LINGER, 0)
    return sock


class Endpoints:
    """Fresh endpoint names per transport; ipc sockets live in one temporary directory
    (short, below the 107-byte limit of UNIX socket paths), removed by close()."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="wz")
        self.n = 0

    def new(self, transport: str) -> str:
        self.n += 1
        if transport == "inproc":
            return f"inproc://wz-{os.getpid()}-{id(self)}-{self.n}"
        if transport == "ipc":
            return f"ipc://{self.dir}/{self.n}"
        if transport == "tcp":
            return "tcp://127.0.0.1:*"
        raise ValueError(transport)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def bind(sock: Any, endpoint: str) -> str:
    """Bind and return the endpoint actually bound (tcp port resolved)."""
    sock.bind(endpoint)
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


class Handshakes:
    """Counts the ZMTP handshakes ``sock`` completes, from now on (a socket monitor,
    attached before the peers connect so that none is missed)."""

    def __init__(self, sock: Any):
        self.sock = sock
        self.mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self.seen = 0

    def wait(self, count: int = 1, timeout: float = 10.0) -> None:
        from zmq.utils.monitor import recv_monitor_message

        deadline = time.monotonic() + timeout
        while self.seen < count:
            left = deadline - time.monotonic()
            assert left > 0, f"{self.seen} of {count} peers connected within {timeout} s"
            if self.mon.poll(int(left * 1000) + 1):
                if recv_monitor_message(self.mon)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.seen += 1

    def close(self) -> None:
        self.sock.disable_monitor()
        self.mon.close(0)


@contextmanager
def peer(*args: str, env: dict | None = None, timeout: float = 60.0):
    """tests/zmq_peer.py ARGS... as a process; yields it (stdout lines are JSON), and
    kills it on the way out if it is still running."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, os.path.join(TESTS, "zmq_peer.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=timeout)


def read_json(proc: subprocess.Popen, timeout: float = 30.0) -> dict:
    """The next JSON line from a peer, within ``timeout`` seconds."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"no output from the peer within {timeout} s; stderr:\n{err}")
    finally:
        sel.close()
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        err = proc.stderr.read()
        raise AssertionError(f"the peer exited {proc.returncode}; stderr:\n{err}")
    return json.loads(line)
