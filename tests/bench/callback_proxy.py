"""The floor under a Python HTTP proxy: both sides parsed, the body validated, no coroutine per request.

Everything here runs in the event loop's protocol callbacks, as the bare relay does, but HTTP-aware:
the client's request is parsed (httptools), its body validated and cleaned by the router's own
``parse_request`` and re-encoded, sent with a request id on a pooled keep-alive connection to the
worker, and the answer relayed back (whole when it has a length, chunk by chunk when the worker
streams). What it leaves out is everything else our router does per request: policy, admission,
metrics, spans, retries, deadlines and limits. So the gap between this line and the bare relay is
what HTTP and validation cost in Python; the gap between our router and this line is what its
layering and bookkeeping cost, which a callback-driven design could win back without leaving Python.

Run it as ``python -m tests.bench.callback_proxy --upstream UPSTREAM_PORT --port PORT`` (both on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

import httptools

from runtime.http.json_wire import encode_json
from runtime.router.request import InvalidRequest, parse_request
from tests.bench.bare_proxy import run_cli

__all__ = ["serve"]

HOST = "127.0.0.1"
_HEAD = b"POST /v1/completions HTTP/1.1\r\nhost: worker\r\ncontent-type: application/json\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
_HEALTH = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class _Worker(asyncio.Protocol):
    """One keep-alive connection to the worker, lent to one client request at a time."""

    def __init__(self, idle: list[_Worker]) -> None:
        self.idle = idle
        self.transport: asyncio.Transport | None = None
        self.client: _Client | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.ctype = b"application/json"
        self.chunked = False
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.idle:
            self.idle.remove(self)
        if self.client is not None:
            self.client.close()

    def send(self, client: _Client, request: bytes) -> None:
        assert self.transport is not None
        self.client, self.ctype, self.chunked = client, b"application/json", False
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # a malformed answer: both connections end
            if self.transport is not None:
                self.transport.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-type":
            self.ctype = value
        elif lower == b"transfer-encoding":
            self.chunked = True

    def on_headers_complete(self) -> None:
        # a stream: its head goes at once, its chunks as they come
        if self.chunked and self.client is not None:
            self.client.write(
                b"HTTP/1.1 %d OK\r\ncontent-type: %b\r\ntransfer-encoding: chunked\r\n\r\n"
                % (self.parser.get_status_code(), self.ctype)
            )

    def on_body(self, body: bytes) -> None:
        if not self.chunked:
            self.body.append(body)
        elif self.client is not None:
            self.client.write(b"%x\r\n%b\r\n" % (len(body), body))

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            if self.chunked:
                client.write(b"0\r\n\r\n")
            else:
                body = b"".join(self.body)
                head = b"HTTP/1.1 %d OK\r\ncontent-type: %b\r\ncontent-length: %d\r\n\r\n"
                client.write(head % (self.parser.get_status_code(), self.ctype, len(body)) + body)
        self.body = []
        self.idle.append(self)


class _Client(asyncio.Protocol):
    """One client connection: each whole request is checked and forwarded from its last callback."""

    def __init__(self, upstream_port: int, idle: list[_Worker], ids: itertools.count[int]) -> None:
        self.upstream_port, self.idle, self.ids = upstream_port, idle, ids
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.worker: _Worker | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        worker, self.worker = self.worker, None
        if worker is not None and worker.client is self and worker.transport is not None:
            worker.client = None
            worker.transport.close()  # mid-answer: the worker aborts the request

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        raw, self.body = b"".join(self.body), []
        if self.url == b"/health":
            self.write(_HEALTH)
            return
        try:
            body = parse_request(raw, "completions")
        except InvalidRequest:
            self.write(_BAD)
            return
        data = encode_json(body)
        request = _HEAD + b"x-request-id: %d\r\ncontent-length: %d\r\n\r\n%b" % (
            next(self.ids),
            len(data),
            data,
        )
        if self.idle:
            self.worker = self.idle.pop()
            self.worker.send(self, request)
        else:
            asyncio.get_running_loop().create_task(self._connect(request))

    async def _connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, worker = await loop.create_connection(lambda: _Worker(self.idle), HOST, self.upstream_port)
        except OSError:
            self.close()
            return
        self.worker = worker
        worker.send(self, request)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def serve(upstream_port: int, port: int) -> None:
    """Proxy ``HOST:port`` to the worker at ``HOST:upstream_port`` until cancelled."""
    idle: list[_Worker] = []
    ids = itertools.count()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port, idle, ids), HOST, port)
    await server.serve_forever()


def main() -> None:
    run_cli(serve, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
