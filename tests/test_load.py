"""Load and soak: an asyncio server holding 1000 concurrent streaming clients, and honest
clients served exactly while as many others send garbage and forged headers.

``test_thousand_clients`` runs in the default suite (a few seconds).  The garbage soak
runs only when WIREARRAY_SOAK_SECONDS is set: .ci/run runs it as its own step for 60 s;
set more for a longer soak.  Every loop is bounded in count and time, and all
traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import resource
import time
import tracemalloc

import numpy as np
import pytest

import wirearray
from netutil import open_fds
from wirearray import aio
from wirearray.codec import Encoder


async def _echo(channel: aio.AsyncChannel) -> None:
    async for item in channel:
        if isinstance(item, dict):
            await channel.send_many(item)
        else:
            await channel.send(item)


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    if min(need, hard) < need:
        pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")


def test_thousand_clients():
    clients, frames = 1000, 5
    _raise_fd_limit(2 * clients + 200)

    async def client(address, k, start):
        rng = np.random.default_rng(k)
        await start.wait()  # everyone connected first: 1000 concurrent connections
        async with await aio.connect(address, timeout=120) as ch:
            for i in range(frames):
                a = rng.integers(0, 1 << 30, size=(k % 13 + 1, 64 + i), dtype="i8")
                await ch.send(a, byteorder="network" if (k + i) % 2 else "native")
                got = await ch.recv()
                assert got.tobytes() == a.tobytes()
        return 1

    async def main():
        before = open_fds()
        async with await aio.serve(_echo, ("127.0.0.1", 0), backlog=2048) as server:
            start = asyncio.Event()
            tasks = [
                asyncio.ensure_future(client(server.address, k, start)) for k in range(clients)
            ]
            await asyncio.sleep(0)
            start.set()
            done = await asyncio.wait_for(asyncio.gather(*tasks), 180)
        gc.collect()
        await asyncio.sleep(0.05)
        return sum(done), before, open_fds()

    ok, before, after = asyncio.run(main())
    assert ok == clients
    if before >= 0:
        assert after <= before + 2, (before, after)


def _garbage(rng: random.Random) -> bytes:
    """Random bytes, or a forged header: valid CRC, hostile lengths/shapes/kinds."""
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 4096))
    impl = wirearray._impl
    if kind == 1:  # claims a huge payload (valid header)
        shape = (rng.choice([2**40, 2**62, 2**64 - 1 >> 3]),)
        return impl.pack_header(1, 12, 1, shape, shape[0] * 8 & (2**64 - 1), b"", 0, 0)
    if kind == 2:  # a real frame, then bit flips
        frame = bytearray(Encoder(checksum=True).encode(np.arange(rng.randrange(1, 500))))
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(frame))
            frame[i] ^= 1 << rng.randrange(8)
        return bytes(frame)
    frame = Encoder().encode(np.zeros(rng.randrange(1, 100)))  # truncated real frame
    return frame[: rng.randrange(1, len(frame))]


@pytest.mark.skipif(
    "WIREARRAY_SOAK_SECONDS" not in os.environ,
    reason="a soak: set WIREARRAY_SOAK_SECONDS (.ci/run runs it for 60 s as its own step)",
)
def test_honest_clients_beside_garbage_soak():
    """50 honest clients and 50 hostile ones for WIREARRAY_SOAK_SECONDS: every honest
    transfer exact, the server alive, memory and descriptors back near the baseline."""
    seconds = float(os.environ["WIREARRAY_SOAK_SECONDS"])
    _raise_fd_limit(1000)

    async def honest(address, k, deadline, counts):
        rng = np.random.default_rng(k)
        while time.monotonic() < deadline:
            async with await aio.connect(address, timeout=30) as ch:
                for _ in range(20):
                    a = rng.standard_normal(int(rng.integers(1, 20000)))
                    await ch.send(a, checksum=bool(k % 2))
                    got = await ch.recv()
                    assert got.tobytes() == a.tobytes()
                    counts["honest"] += 1

    async def hostile(address, k, deadline, counts):
        rng = random.Random(k)
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            import socket

            s = socket.socket()
            s.setblocking(False)
            try:
                await loop.sock_connect(s, address)
                await loop.sock_sendall(s, _garbage(rng))
                await asyncio.wait_for(loop.sock_recv(s, 65536), 2)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                s.close()
            counts["hostile"] += 1

    async def main():
        counts = {"honest": 0, "hostile": 0}
        tracemalloc.start()
        async with await aio.serve(
            _echo, ("127.0.0.1", 0), idle_timeout=5, max_frame_bytes=1 << 20
        ) as server:
            # warm up, then take the baseline
            await honest(server.address, 999, time.monotonic() + 1, counts)
            gc.collect()
            base_mem, base_fds = tracemalloc.get_traced_memory()[0], open_fds()
            deadline = time.monotonic() + seconds
            jobs = [honest(server.address, k, deadline, counts) for k in range(50)]
            jobs += [hostile(server.address, k, deadline, counts) for k in range(50)]
            await asyncio.wait_for(asyncio.gather(*jobs), seconds + 120)
            for _ in range(50):  # let the server finish closing the last connections
                if server.connections == 0:
                    break
                await asyncio.sleep(0.1)
            gc.collect()
            mem, fds = tracemalloc.get_traced_memory()[0], open_fds()
        tracemalloc.stop()
        return counts, base_mem, mem, base_fds, fds

    counts, base_mem, mem, base_fds, fds = asyncio.run(main())
    print(
        f"soak {seconds:.0f} s: {counts}; traced memory {base_mem} -> {mem} bytes; "
        f"fds {base_fds} -> {fds}"
    )
    assert counts["honest"] > 0 and counts["hostile"] > 0
    assert mem - base_mem < 4 << 20
    if fds >= 0:
        assert fds <= base_fds + 5
