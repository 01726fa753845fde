"""asyncio server under load: 500 concurrent clients, all byte-exact, and every file
descriptor back afterwards; a failing handler closes its connection only."""

from __future__ import annotations

import asyncio
import gc

import numpy as np
import pytest

import wirearray
from netutil import open_fds
from wirearray import aio

CLIENTS = 500
FRAMES = 4


async def _echo(channel: aio.AsyncChannel) -> None:
    async for item in channel:
        await channel.send(item)


async def _client(address, k: int) -> None:
    rng = np.random.default_rng(k)
    async with await aio.connect(address, timeout=60) as ch:
        for i in range(FRAMES):
            a = rng.standard_normal((k % 7 + 1, 100 + i)).astype("f4" if k % 2 else "f8")
            await ch.send(a, byteorder="native" if i % 2 else "network")
            got = await ch.recv()
            assert got.dtype == a.dtype and np.array_equal(got, a)


def test_500_concurrent_clients():
    async def main():
        before = open_fds()
        async with await aio.serve(_echo, ("127.0.0.1", 0), backlog=1024) as server:
            await asyncio.wait_for(
                asyncio.gather(*(_client(server.address, k) for k in range(CLIENTS))), 120
            )
        gc.collect()
        await asyncio.sleep(0.05)
        return before, open_fds()

    before, after = asyncio.run(main())
    if before >= 0:
        assert after <= before + 2, (before, after)


def test_failing_handler_closes_only_its_connection():
    async def handler(channel):
        a = await channel.recv()
        if a.size == 0:
            raise RuntimeError("this handler fails on purpose")
        await channel.send(a * 2)

    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
        async with await aio.serve(handler, ("127.0.0.1", 0), max_connections=4) as server:
            bad = await aio.connect(server.address, timeout=30)
            await bad.send(np.zeros(0))
            # the client hears why (an ERROR frame), not a clean end of stream
            with pytest.raises(wirearray.PeerError) as info:
                await bad.recv()
            assert info.value.code == wirearray.ErrorCode.APPLICATION
            assert "RuntimeError" in info.value.reason and "on purpose" not in info.value.reason
            await bad.close()  # the report was raised already: close is quiet
            async with await aio.connect(server.address, timeout=30) as good:
                await good.send(np.arange(3.0))
                assert (await good.recv()).tolist() == [0.0, 2.0, 4.0]
        assert any(isinstance(e, RuntimeError) for e in errors)

    asyncio.run(main())
