"""The layer on uvloop (the event loop the sidecars run on): listener, pool, stream and abort."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvloop

from runtime.http import HttpServer, Request, Response, StreamingResponse, UpstreamPool

pytestmark = pytest.mark.timeout(30)


async def _round_trip() -> tuple[bytes, bytes, bool]:
    closed = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            yield b"data: 2\n\n"
            await asyncio.Event().wait()
        finally:
            closed.set()

    async def handler(request: Request) -> Response | StreamingResponse:
        if request.path == "/stream":
            return StreamingResponse(events())
        return Response(200, request.body[::-1])

    server = HttpServer(handler)
    await server.start()
    pool = UpstreamPool(read=5)
    try:
        whole = await (await pool.post(f"{server.url}/x", b"abc", {})).read()
        reply = await pool.post(f"{server.url}/stream", b"{}", {})
        got = b""
        async for chunk in reply.chunks():
            got += chunk
            if got.count(b"\n\n") == 2:
                break  # closing the reply early closes the socket, which ends the server's stream
        await asyncio.wait_for(closed.wait(), 5)
        return whole, got, closed.is_set()
    finally:
        await pool.close()
        await server.stop(timeout=1)


def test_round_trip_stream_and_abort_on_uvloop() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        whole, streamed, aborted = runner.run(_round_trip())
    assert whole == b"cba"
    assert streamed == b"data: 1\n\ndata: 2\n\n"
    assert aborted
