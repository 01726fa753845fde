"""Test plumbing for the transports: one synchronous driver API over the blocking and
the asyncio layer, so each transport test is written once and bound to both (the
uvloop pattern), and peer processes that use real sockets.

``Net("blocking")`` calls wirearray.connect/listen directly; ``Net("asyncio")`` runs
wirearray.aio on an event loop in a background thread and waits for each coroutine,
so the same test body drives either.  Every wait is bounded (WAIT seconds).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import wirearray
from wirearray import aio

WAIT = 60.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class _Loop:
    """One event loop in a daemon thread, shared by the asyncio drivers."""

    _instance: _Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _Loop:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def run(self, coro: Any, timeout: float = WAIT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class AsyncChannelDriver:
    """An aio.AsyncChannel driven synchronously."""

    def __init__(self, loop: _Loop, channel: aio.AsyncChannel):
        self._loop, self.channel = loop, channel
        self.sock = channel.sock

    def send(self, *a: Any, **k: Any) -> None:
        return self._loop.run(self.channel.send(*a, **k))

    def send_many(self, *a: Any, **k: Any) -> None:
        return self._loop.run(self.channel.send_many(*a, **k))

    def recv(self, *a: Any, **k: Any) -> Any:
        return self._loop.run(self.channel.recv(*a, **k))

    def recv_many(self, *a: Any, **k: Any) -> Any:
        return self._loop.run(self.channel.recv_many(*a, **k))

    def flush(self) -> None:
        return self._loop.run(self.channel.flush())

    @property
    def pending_bytes(self) -> int:
        return self.channel.pending_bytes

    def all(self) -> list:
        async def collect() -> list:
            return [x async for x in self.channel]

        return self._loop.run(collect())

    def close(self) -> None:
        self._loop.run(self.channel.close())

    def __enter__(self) -> AsyncChannelDriver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.run(self.channel.__aexit__(*exc))


class SyncChannelDriver:
    """A blocking Channel with the driver's extra ``all()``."""

    def __init__(self, channel: wirearray.Channel):
        self.channel = channel
        self.sock = channel.sock
        self.send, self.send_many = channel.send, channel.send_many
        self.recv, self.recv_many = channel.recv, channel.recv_many
        self.flush = channel.flush

    @property
    def pending_bytes(self) -> int:
        return self.channel.pending_bytes

    def all(self) -> list:
        return list(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> SyncChannelDriver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.channel.__exit__(*exc)


class ListenerDriver:
    def __init__(self, net: Net, listener: Any):
        self.net, self.listener = net, listener
        self.address = listener.address

    def accept(self, timeout: float = WAIT) -> Any:
        if self.net.layer == "blocking":
            return SyncChannelDriver(self.listener.accept(timeout=timeout))
        loop = _Loop.get()
        return AsyncChannelDriver(loop, loop.run(self.listener.accept(timeout=timeout)))

    def close(self) -> None:
        self.listener.close()

    def __enter__(self) -> ListenerDriver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Net:
    """connect/listen for one layer ("blocking" or "asyncio")."""

    def __init__(self, layer: str):
        self.layer = layer

    def connect(self, address: Any, **options: Any) -> Any:
        options.setdefault("timeout", WAIT)
        if self.layer == "blocking":
            return SyncChannelDriver(wirearray.connect(address, **options))
        loop = _Loop.get()
        return AsyncChannelDriver(loop, loop.run(aio.connect(address, **options)))

    def listen(self, address: Any, **options: Any) -> ListenerDriver:
        options.setdefault("timeout", WAIT)
        if self.layer == "blocking":
            return ListenerDriver(self, wirearray.listen(address, **options))
        return ListenerDriver(self, _Loop.get().run(aio.listen(address, **options)))


# ---- peer processes ----

PEER_PRELUDE = f"""
import sys, os
sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
import numpy as np
"""


def run_peer(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -c code args...`` with stdout piped (the peer prints its address
    or results as lines)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-c", PEER_PRELUDE + textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def finish(proc: subprocess.Popen, timeout: float = WAIT) -> str:
    """Wait for a peer; fail with its stderr if it failed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"peer hung; stderr:\n{err}") from None
    if proc.returncode != 0:
        raise AssertionError(f"peer exited {proc.returncode}; stderr:\n{err}\nstdout:\n{out}")
    return out


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        return -1


# ---- the command line, as a user runs it ----


def run_cli(*args: str, timeout: float = WAIT, **kw: Any) -> subprocess.CompletedProcess:
    """``python -m wirearray ARGS`` to completion, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "wirearray", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def start_serve(*args: str) -> tuple[subprocess.Popen, str]:
    """``wirearray serve ARGS`` in the background; (process, the address it prints)."""
    import re

    proc = subprocess.Popen(
        [sys.executable, "-m", "wirearray", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    m = re.search(r"listening on (\S+)", line)
    if not m:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"serve did not start: {line!r} {err}")
    return proc, m.group(1)
