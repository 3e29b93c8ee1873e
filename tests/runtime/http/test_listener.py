"""The listener under hostile clients: every bound answers with the JSON error shape or cuts the client."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from runtime.http import HttpError, HttpServer, Request, Response, StreamBroken, StreamingResponse
from tests.runtime.http.conftest import body_of, exchange, serving, status_of

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]


async def echo(request: Request) -> Response:
    doc = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "body": request.body.decode(),
    }
    doc["x"] = request.header("x-test")
    return Response(200, json.dumps(doc).encode())


def assert_error(raw: bytes, status: int) -> None:
    assert status_of(raw) == status
    assert b"connection: close" in raw.lower()
    error = json.loads(body_of(raw))["error"]
    assert error["code"] == status and isinstance(error["message"], str) and isinstance(error["type"], str)


async def test_requests_on_one_keepalive_connection_and_pipelined() -> None:
    async with serving(echo) as server, aiohttp.ClientSession() as session:
        for i in range(3):
            async with session.post(f"{server.url}/p/{i}?q={i}", data=b"hi", headers={"X-Test": "v"}) as resp:
                assert resp.status == 200
                assert await resp.json() == {
                    "method": "POST",
                    "path": f"/p/{i}",
                    "query": f"q={i}",
                    "body": "hi",
                    "x": "v",
                }
        assert len(server.connections) == 1  # keep-alive: one connection served all three
        two = b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        raw = await exchange(server.port, two)
        answers = raw.split(b"HTTP/1.1 200 OK")[1:]
        assert [json.loads(a.split(b"\r\n\r\n", 1)[1])["path"] for a in answers] == ["/a", "/b"]


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/v1/x", "/v1/x", ""),  # the usual origin form, taken without a URL parse
        ("/v1/x?a=1&b=2", "/v1/x", "a=1&b=2"),
        ("/v1/x#part", "/v1/x", ""),  # a fragment is no part of the path
        ("http://host:1/v1/x?a=1", "/v1/x", "a=1"),  # absolute form (RFC 9112 3.2.2)
        ("/caf%C3%A9", "/caf%C3%A9", ""),  # percent-escapes are the handler's to decode
    ],
)
async def test_a_request_target_becomes_its_path_and_query(target: str, path: str, query: str) -> None:
    async with serving(echo) as server:
        raw = await exchange(
            server.port, f"GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode()
        )
    doc = json.loads(body_of(raw))
    assert (doc["path"], doc["query"]) == (path, query)


async def test_oversized_headers_get_431() -> None:
    async with serving(echo, max_header_bytes=1024) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n")
        assert_error(raw, 431)


async def test_body_over_the_limit_is_refused_from_content_length_and_while_read() -> None:
    async with serving(echo, max_body_bytes=100) as server:
        raw = await exchange(server.port, b"POST / HTTP/1.1\r\ncontent-length: 1000000\r\n\r\n")
        assert_error(raw, 413)
        chunked = (
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n" + b"40\r\n" + b"a" * 64 + b"\r\n" * 1
        )
        raw = await exchange(server.port, chunked + b"40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n")
        assert_error(raw, 413)


async def test_slowloris_and_idle_connections_are_closed_and_a_slow_body_gets_408() -> None:
    async with serving(echo, header_timeout=0.3, body_timeout=0.3) as server:
        assert await exchange(server.port, b"GET / HTTP/1.1\r\nx-slow: ") == b""  # head never ends: cut
        assert await exchange(server.port, b"") == b""  # never sends a byte: cut
        raw = await exchange(server.port, b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\nabc")
        assert_error(raw, 408)
        assert json.loads(body_of(raw))["error"]["type"] == "invalid_request_error"


async def test_a_header_trickling_in_is_cut_off_long_before_it_is_whole() -> None:
    async with serving(echo, max_header_bytes=64 * 1024) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nx-big: ")
        sent = [0]

        async def trickle() -> None:  # 8 MiB of one header, 64 KiB at a time
            while sent[0] < 8 * 2**20:
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), 10)
                sent[0] += 65536
                await asyncio.sleep(0.01)

        with pytest.raises(ConnectionError):  # the listener hangs up long before it is whole
            await trickle()
        assert sent[0] < 8 * 2**20
        writer.close()


async def test_malformed_request_and_broken_chunked_body_get_400() -> None:
    async with serving(echo) as server:
        assert_error(await exchange(server.port, b"NOT HTTP AT ALL\r\n\r\n"), 400)
        broken = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
        assert_error(await exchange(server.port, broken), 400)


async def test_handler_failures_use_the_error_shape_and_leak_nothing() -> None:
    async def failing(request: Request) -> Response:
        if request.path == "/refused":
            raise HttpError(422, "bad field", "invalid_request_error")
        raise RuntimeError("secret-token http://10.0.0.7:8000 internal")

    async with serving(failing) as server, aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/refused") as resp:
            assert resp.status == 422
            assert await resp.json() == {
                "error": {"message": "bad field", "type": "invalid_request_error", "param": None, "code": 422}
            }
        async with session.get(f"{server.url}/boom") as resp:
            assert resp.status == 500
            text = await resp.text()
            assert json.loads(text)["error"]["code"] == 500
            assert "secret" not in text and "10.0.0.7" not in text and "Traceback" not in text


async def test_stream_is_flushed_chunk_by_chunk() -> None:
    step = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        await step.wait()  # the first chunk must reach the client before the second exists
        yield b"data: 2\n\n"

    async def handler(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    async with (
        serving(handler) as server,
        aiohttp.ClientSession() as session,
        session.get(server.url) as resp,
    ):
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert await resp.content.readuntil(b"\n\n") == b"data: 1\n\n"
        step.set()
        assert await resp.content.read() == b"data: 2\n\n"


async def test_client_that_stops_reading_is_cut_and_the_stream_closed() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 65536
        finally:
            closed.set()

    reasons: list[str] = []

    async def handler(request: Request) -> StreamingResponse:
        return StreamingResponse(endless(), on_abort=reasons.append)

    async with serving(handler, write_stall_timeout=0.3) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # ...and never read the answer
        await asyncio.wait_for(closed.wait(), 10)
        writer.close()
        assert reasons == ["stopped-reading"]
        assert not server.connections or all(c.closed for c in server.connections)


async def test_a_stream_that_breaks_midway_ends_short_not_as_a_success() -> None:
    async def breaking() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("upstream died")

    async def handler(request: Request) -> StreamingResponse:
        return StreamingResponse(breaking())

    async with serving(handler) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200") and b"data: 1" in raw
        assert not raw.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a broken stream


async def test_a_stream_that_reports_its_own_break_ends_short_and_is_no_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    report = b'data: {"error": "the worker broke off"}\n\n'

    async def reporting() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield report  # the stream's own account of the failure...
        raise StreamBroken  # ...after which it must not look complete

    async def handler(request: Request) -> StreamingResponse:
        return StreamingResponse(reporting())

    async with serving(handler) as server:
        with caplog.at_level(logging.ERROR, logger="grove.http"):
            raw = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200")
        assert raw.endswith(b"%x\r\n%b\r\n" % (len(report), report))  # no terminating chunk
        assert not [r for r in caplog.records if r.name == "grove.http"]  # expected, not a crash


async def test_client_disconnect_cancels_the_handler() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hang(request: Request) -> Response:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    async with serving(hang) as server:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        await asyncio.wait_for(started.wait(), 5)
        writer.close()
        await asyncio.wait_for(cancelled.wait(), 5)


async def test_connections_over_the_cap_get_503() -> None:
    async with serving(echo, max_connections=1) as server:
        _, first = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            await asyncio.sleep(0.05)
            assert_error(await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"), 503)
        finally:
            first.close()


async def test_idle_keepalive_connection_expires() -> None:
    async with serving(echo, keepalive_timeout=0.3) as server:
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # keep-alive: server closes
        assert status_of(raw) == 200


async def _until_draining(server: HttpServer) -> None:
    """Wait (bounded) until the stop task has begun: it closes the listener in its first step."""
    for _ in range(1000):
        if server.draining:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the server never began to drain")


async def test_drain_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    release, entered = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> Response:
        entered.set()
        await release.wait()
        return Response(200, b'{"done": true}')

    server_cm = serving(slow)
    server = await server_cm.__aenter__()
    try:
        async with aiohttp.ClientSession() as session:
            pending = asyncio.create_task(session.get(server.url))
            await asyncio.wait_for(entered.wait(), 10)  # the request is in flight
            stopping = asyncio.create_task(server.stop(timeout=5))
            await _until_draining(server)
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(server.url, timeout=aiohttp.ClientTimeout(total=2))
            release.set()
            async with await pending as resp:
                assert resp.status == 200 and await resp.json() == {"done": True}
                assert resp.headers["Connection"].lower() == "close"
            await stopping
            assert not server.connections
    finally:
        await server_cm.__aexit__(None, None, None)


async def test_drain_that_keeps_listening_lets_the_handler_refuse_new_requests() -> None:
    release = asyncio.Event()
    holder: list[HttpServer] = []

    entered = asyncio.Event()

    async def gated(request: Request) -> Response:
        if holder[0].draining:
            raise HttpError(503, "the server is shutting down", "server_busy")
        entered.set()
        await release.wait()
        return Response(200, b'{"done": true}')

    async with serving(gated) as server, aiohttp.ClientSession() as session:
        holder.append(server)
        pending = asyncio.create_task(session.get(server.url))
        await asyncio.wait_for(entered.wait(), 10)  # the request is in flight
        stopping = asyncio.create_task(server.stop(timeout=5, keep_listening=True))
        await _until_draining(server)
        raw = await exchange(server.port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # a new connection
        assert_error(raw, 503)
        release.set()
        async with await pending as resp:
            assert resp.status == 200 and await resp.json() == {"done": True}
        await stopping
        assert not server.connections


async def test_a_slow_head_behind_an_answered_request_is_bounded_too() -> None:
    async with serving(echo, header_timeout=0.3) as server:
        raw = await exchange(server.port, b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nx-slow: ")
        assert raw.startswith(b"HTTP/1.1 200") and raw.count(b"HTTP/1.1") == 1  # /a answered, then cut
