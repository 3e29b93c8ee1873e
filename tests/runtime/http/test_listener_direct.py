"""The listener's direct answers (``HttpServer(direct=...)``): taken from the parser's last callback,
written later from any callback, in order with pipelined requests, and told when the client leaves
or stops reading."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from runtime.http import HttpServer, ListenerLimits, Request, Responder, Response
from tests.runtime.http.conftest import exchange

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]

JSON = b"application/json"


async def by_coroutine(request: Request) -> Response:
    return Response(200, json.dumps({"by": "handler", "path": request.path}).encode())


class Watcher:
    """An answer in progress that records what the listener told it."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.event = asyncio.Event()

    def client_gone(self) -> None:
        self.told.append("gone")
        self.event.set()

    def client_paused(self) -> None:
        self.told.append("paused")

    def client_resumed(self) -> None:
        self.told.append("resumed")

    def client_stalled(self) -> None:
        self.told.append("stalled")
        self.event.set()


class Direct:
    """Takes ``/d/...``: ``/d/now`` at once, ``/d/later`` 50 ms later, ``/d/stream`` as three chunks,
    ``/d/broken`` as a stream cut short, ``/d/never`` not at all, ``/d/flood`` until the client stops reading."""

    def __init__(self) -> None:
        self.watchers: list[Watcher] = []

    def __call__(self, request: Request, responder: Responder) -> bool:
        if not request.path.startswith("/d/"):
            return False
        watcher = Watcher()
        self.watchers.append(watcher)
        responder.follow(watcher)
        loop = asyncio.get_running_loop()
        body = json.dumps({"by": "direct", "path": request.path}).encode()
        if request.path == "/d/now":
            responder.answer(200, body, JSON, [(b"x-way", b"direct")])
        elif request.path == "/d/later":
            loop.call_later(0.05, responder.answer, 200, body, JSON, ())
        elif request.path in ("/d/stream", "/d/broken"):
            responder.open_stream(200, b"text/event-stream", ())
            for i in range(3):
                loop.call_later(0.01 * (i + 1), responder.stream, b"data: %d\n\n" % i)
            end = responder.close_stream if request.path == "/d/stream" else responder.break_stream
            loop.call_later(0.05, end)
        elif request.path == "/d/flood":
            responder.open_stream(200, b"text/event-stream", ())

            def more() -> None:
                if "paused" not in watcher.told and "gone" not in watcher.told:
                    responder.stream(b"x" * 65536)
                    loop.call_soon(more)

            more()
        return True


async def serving_direct(**limits: float) -> tuple[HttpServer, Direct]:
    direct = Direct()
    server = HttpServer(by_coroutine, ListenerLimits(**limits), direct=direct)
    await server.start()
    return server, direct


async def test_direct_answers_and_declined_requests_share_one_keepalive_connection() -> None:
    server, _ = await serving_direct()
    try:
        async with aiohttp.ClientSession() as session:
            for path, by in [
                ("/d/now", "direct"),
                ("/other", "handler"),
                ("/d/later", "direct"),
                ("/d/now", "direct"),
            ]:
                async with session.get(server.url + path) as resp:
                    assert resp.status == 200 and await resp.json() == {"by": by, "path": path}
            async with session.get(server.url + "/d/stream") as resp:
                assert resp.headers["transfer-encoding"] == "chunked"
                assert await resp.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert len(server.connections) <= 1
    finally:
        await server.stop(timeout=1.0)


async def test_pipelined_requests_are_answered_in_order_whoever_answers_them() -> None:
    server, _ = await serving_direct()
    try:
        paths = ["/d/later", "/other", "/d/now", "/d/stream", "/d/now"]
        raw = b"".join(b"GET %b HTTP/1.1\r\nhost: x\r\n\r\n" % p.encode() for p in paths[:-1])
        raw += b"GET /d/now HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        answer = await exchange(server.port, raw)
        seen = [
            json.loads(part.split(b"\r\n\r\n", 1)[1])["path"]
            for part in answer.split(b"HTTP/1.1 200 OK")[1:]
            if b'"path"' in part
        ]
        assert seen == ["/d/later", "/other", "/d/now", "/d/now"]  # the stream's chunks carry no path
        assert answer.count(b"HTTP/1.1 200 OK") == 5 and b"data: 2\n\n\r\n0\r\n\r\n" in answer
    finally:
        await server.stop(timeout=1.0)


async def test_a_broken_stream_ends_short_and_closes_the_connection() -> None:
    server, _ = await serving_direct()
    try:
        raw = await exchange(server.port, b"GET /d/broken HTTP/1.1\r\nhost: x\r\n\r\n")  # read until closed
        assert raw.endswith(b"2\n\n\r\n") and b"0\r\n\r\n" not in raw
    finally:
        await server.stop(timeout=1.0)


async def test_the_answer_is_told_when_its_client_leaves_or_stops_reading() -> None:
    server, direct = await serving_direct(write_stall_timeout=0.3)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /d/never HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        for _ in range(200):
            if direct.watchers:
                break
            await asyncio.sleep(0.01)
        writer.close()
        await asyncio.wait_for(direct.watchers[0].event.wait(), 5)
        assert direct.watchers[0].told == ["gone"]

        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.transport.pause_reading()  # never reads: the server's socket buffer fills
        writer.write(b"GET /d/flood HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        for _ in range(200):
            if len(direct.watchers) > 1:
                break
            await asyncio.sleep(0.01)
        await asyncio.wait_for(direct.watchers[1].event.wait(), 10)
        assert direct.watchers[1].told == ["paused", "stalled"]  # cut after the stall deadline
        await asyncio.sleep(0.05)
        assert not server.connections  # the listener cut it
        writer.close()
    finally:
        await server.stop(timeout=1.0)
