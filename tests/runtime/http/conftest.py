"""Helpers of the HTTP layer tests: a listener on an ephemeral loopback port and a raw socket client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runtime.http import Handler, HttpServer, ListenerLimits


@asynccontextmanager
async def serving(handler: Handler, **limits: Any) -> AsyncIterator[HttpServer]:
    """``handler`` served on 127.0.0.1:<free port> with ``limits``; stopped (drained 1 s) at the end."""
    server = HttpServer(handler, ListenerLimits(**limits))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(timeout=1.0)


async def exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw ``data`` on a new connection; everything received until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def status_of(raw: bytes) -> int:
    """The status code of a raw HTTP/1.1 answer."""
    return int(raw.split(b" ", 2)[1])


def body_of(raw: bytes) -> bytes:
    """The body of a raw answer sent with Content-Length."""
    return raw.split(b"\r\n\r\n", 1)[1]
