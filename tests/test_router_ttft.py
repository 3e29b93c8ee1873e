"""The TTFT benchmark's client: TTFT is the first token-carrying SSE event, however a proxy chunks it."""

from __future__ import annotations

import asyncio

import pytest

from tests.bench.router_ttft import interleaved_load

pytestmark = pytest.mark.timeout(30)

HOLD_S = 0.2
EVENT = b'data: {"id":"x","choices":[{"index":0,"text":"hi"}]}\n\n'


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))


async def _split_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request with a stream whose first chunks carry no token: an empty-text event, then
    half of the first token's event; the other half comes ``HOLD_S`` later."""
    try:
        while True:
            await _read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            writer.write(_chunk(b'data: {"id":"x","choices":[{"index":0,"text":""}]}\n\n'))
            writer.write(_chunk(EVENT[:20]))
            await writer.drain()
            await asyncio.sleep(HOLD_S)
            writer.write(_chunk(EVENT[20:]) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _refusing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request with a 503 JSON error."""
    body = b'{"error":{"message":"busy","type":"x","code":503}}'
    try:
        while True:
            await _read_request(reader)
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def test_ttft_waits_for_the_first_token_event_and_errors_are_counted() -> None:
    split = await asyncio.start_server(_split_stream, "127.0.0.1", 0)
    refusing = await asyncio.start_server(_refusing, "127.0.0.1", 0)
    ports = {"split": [split.sockets[0].getsockname()[1]], "refusing": [refusing.sockets[0].getsockname()[1]]}
    async with split, refusing:
        results = await interleaved_load(ports, concurrency=1, cycles=3, warmup=1)
    ok, bad = results["split"], results["refusing"]
    assert ok.errors == 0 and len(ok.ttft) == 3 and ok.cycles == [0, 1, 2]
    assert min(ok.ttft) >= HOLD_S  # not the first chunk, not the half event: the completed token event
    assert bad.errors == 4 and bad.ttft == [] and bad.why == {"status 503, not chunked": 4}
