"""Clients that hold the router's resources: huge headers, slowloris, too many connections, slow bodies,
and a streaming client that stops reading. Raw sockets send exactly the bytes an attacker would."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from tests.runtime.conftest import MakeFake, MakeRouter
from tests.runtime.router.test_legs import metric

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

FAST = {"header_timeout": 0.5, "body_timeout": 0.5, "client_write_timeout": 0.5}


async def _open(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def test_oversized_headers_are_refused_with_431_and_an_8_mb_one_is_cut_off(
    fakes: MakeFake, make_router: MakeRouter
) -> None:
    router = await make_router(worker=[(await fakes()).url])
    reader, writer = await _open(router.url)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 431")
    writer.close()
    reader, writer = await _open(router.url)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    with pytest.raises(ConnectionError):  # the router hangs up long before 8 MiB arrived
        for _ in range(128):
            writer.write(b"a" * 65536)
            await asyncio.wait_for(writer.drain(), 10)
            sent += 65536
            await asyncio.sleep(0.01)
    assert sent < 8 * 2**20
    writer.close()


async def test_a_slowloris_connection_is_closed_after_the_header_timeout(
    fakes: MakeFake, make_router: MakeRouter
) -> None:
    router = await make_router(worker=[(await fakes()).url], limits=FAST)
    reader, writer = await _open(router.url)
    writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the router closed it
    idle_reader, idle_writer = await _open(router.url)  # a connection that never sends a byte
    assert await asyncio.wait_for(idle_reader.read(), 10) == b""
    writer.close()
    idle_writer.close()


async def test_connections_beyond_the_cap_get_503(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    router = await make_router(worker=[(await fakes()).url], limits={"max_connections": 2})
    held = [await _open(router.url) for _ in range(2)]
    reader, writer = await _open(router.url)
    status = await asyncio.wait_for(reader.readline(), 10)
    assert status.startswith(b"HTTP/1.1 503")
    for _, w in [*held, (reader, writer)]:
        w.close()
    await asyncio.sleep(0.1)
    async with http.get(f"{router.url}/health") as r:  # freed slots serve again
        assert r.status == 200


async def test_a_body_that_trickles_in_gets_408(fakes: MakeFake, make_router: MakeRouter) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], limits=FAST)
    reader, writer = await _open(router.url)
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"model": '
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.read(4096), 10)
    assert head.startswith(b"HTTP/1.1 408") and b'"invalid_request_error"' in head
    assert worker.completions() == []
    writer.close()


async def test_a_streaming_client_that_stops_reading_is_cancelled_and_frees_its_slot(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes(tokens=400_000, name="w" * 40)  # ~60 MB of events: more than any socket buffers
    router = await make_router(worker=[worker.url], limits={**FAST, "max_concurrent": 4})
    host, port = router.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    body = b'{"model": "tiny", "prompt": "x", "stream": true}'
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )  # ... and never read
    try:
        for _ in range(200):  # bounded: the router gives up after client_write_timeout
            if worker.completions() and worker.completions()[0].cancelled:
                break
            await asyncio.sleep(0.1)
        assert worker.completions()[0].cancelled  # the upstream request was aborted
        assert router.router.admission.active == 0
        assert all(w.in_flight == 0 for w in router.router.all_workers())
        text = await (await http.get(f"{router.url}/metrics")).text()
        assert metric(text, "grove_router_client_aborts_total", reason="stopped-reading") == 1
    finally:
        sock.close()
