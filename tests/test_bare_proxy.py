"""The router bench's floor, the bare relay: bytes go through unchanged, one upstream connection per client."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from runtime.engines.supervisor import free_port
from tests.bench import bare_proxy

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

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    port = free_port()
    relay = asyncio.create_task(bare_proxy.serve(up_port, port))
    try:
        for _ in range(100):  # bounded: the relay listens within a second
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            await asyncio.sleep(0.01)
        got = b""
        for _ in range(2):
            writer.write(REQUEST)
            got += await asyncio.wait_for(reader.readexactly(len(ANSWER)), 5)
        assert got == ANSWER * 2
        await asyncio.wait_for(answered.wait(), 5)
        assert seen == [REQUEST * 2]  # verbatim, and both on the same upstream connection
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the worker closed
        writer.close()
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        server.close()
