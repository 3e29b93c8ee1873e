"""The router bench's floor, the bare relay: bytes go through unchanged, one upstream connection per client."""

from __future__ import annotations

import asyncio

import pytest

from tests.bench import bare_proxy
from tests.bench_proxy_harness import proxy_in_front_of

pytestmark = pytest.mark.timeout(30)

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
REQUEST = b'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\n{"a":1}'


async def test_the_relay_pipes_bytes_unchanged_over_one_paired_connection() -> None:
    seen: list[bytes] = []  # per upstream connection, everything it received
    answered = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(b"")
        for _ in range(2):  # two requests, one after the other, on one kept-alive connection
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(7)
            seen[-1] += head + body
            writer.write(ANSWER)
            await writer.drain()
        answered.set()
        writer.close()  # the worker hangs up: the relay closes the client's side too

    async with proxy_in_front_of(bare_proxy.serve, upstream) as (reader, writer):
        got = b""
        for _ in range(2):
            writer.write(REQUEST)
            got += await asyncio.wait_for(reader.readexactly(len(ANSWER)), 5)
        assert got == ANSWER * 2
        await asyncio.wait_for(answered.wait(), 5)
        assert seen == [REQUEST * 2]  # verbatim, and both on the same upstream connection
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the worker closed
