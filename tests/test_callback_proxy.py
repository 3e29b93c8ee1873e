"""The router bench's Python floor, the callback proxy: it checks bodies, forwards them cleaned, relays answers."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.bench import callback_proxy
from tests.bench_proxy_harness import proxy_in_front_of

pytestmark = pytest.mark.timeout(30)


def _post(body: bytes) -> bytes:
    return b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head, await reader.readexactly(length)


async def test_bodies_are_checked_and_forwarded_cleaned_over_one_kept_alive_connection() -> None:
    bodies: list[list[dict[str, object]]] = []  # per upstream connection, the JSON bodies it received

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        bodies.append([])
        while True:
            try:
                _, body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                return
            bodies[-1].append(json.loads(body))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\nok")

    async with proxy_in_front_of(callback_proxy.serve, upstream) as (reader, writer):
        sent = {"model": "m", "prompt": "p", "kv_transfer_params": {"remote_host": "evil"}}
        for _ in range(2):
            writer.write(_post(json.dumps(sent).encode()))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert (
                head.startswith(b"HTTP/1.1 200") and await asyncio.wait_for(reader.readexactly(2), 5) == b"ok"
            )
        writer.write(_post(b'{"model": 3}'))  # not a request the router would forward
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 400")
    # the router-owned field is gone, the rest as sent; both on one connection; the bad one never left
    assert bodies == [[{"model": "m", "prompt": "p"}] * 2]


async def test_a_stream_is_relayed_chunk_by_chunk_and_a_client_that_leaves_closes_the_worker_connection() -> (
    None
):
    second_chunk = asyncio.Event()
    worker_saw_close = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"3\r\none\r\n")
        await second_chunk.wait()  # the first chunk must reach the client before the answer goes on
        writer.write(b"3\r\ntwo\r\n")
        if await reader.read() == b"":
            worker_saw_close.set()

    async with proxy_in_front_of(callback_proxy.serve, upstream) as (reader, writer):
        writer.write(_post(b'{"model": "m", "prompt": "p", "stream": true}'))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"transfer-encoding: chunked" in head and b"text/event-stream" in head
        assert await asyncio.wait_for(reader.readuntil(b"one\r\n"), 5) == b"3\r\none\r\n"
        second_chunk.set()
        assert await asyncio.wait_for(reader.readuntil(b"two\r\n"), 5) == b"3\r\ntwo\r\n"
        writer.close()  # the client leaves mid-stream
        await asyncio.wait_for(worker_saw_close.wait(), 5)
