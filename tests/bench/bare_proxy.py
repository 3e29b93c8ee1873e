"""The floor under any proxy on this machine: a layer-4 relay that pipes bytes and does nothing else.

Each client connection gets its own upstream connection, and bytes go through verbatim both ways:
no HTTP parsing, no routing, no validation, no metrics. HTTP/1.1 keep-alive still works because
the two connections are paired for their whole life. What a proxy adds beyond this relay, in the
same run, is its own work; what this relay adds over talking to the worker directly is the cost of
a second hop (two more socket writes, reads and wake-ups), which no proxy can avoid.

Run it as ``python -m tests.bench.bare_proxy --upstream UPSTREAM_PORT --port PORT`` (both on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

try:
    import uvloop  # the router's own loop: the floor is measured on the same machinery
except ImportError:  # pragma: no cover - uvloop is a runtime dependency
    uvloop = None

__all__ = ["run_cli", "serve"]

HOST = "127.0.0.1"


class _Pipe(asyncio.Protocol):
    """One side of a paired connection: what it receives is written to its peer's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []  # what came before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
        else:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:  # the peer's bytes wait until this side drains
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Client(_Pipe):
    """The client's side: opens its upstream connection when it connects."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self._upstream_port = upstream_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Pipe, HOST, self._upstream_port)
        except OSError:
            if self.transport is not None:
                self.transport.close()
            return
        upstream.peer, self.peer = self, upstream
        assert upstream.transport is not None
        for data in self.pending:
            upstream.transport.write(data)
        self.pending.clear()


async def serve(upstream_port: int, port: int) -> None:
    """Relay ``HOST:port`` to ``HOST:upstream_port`` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Client(upstream_port), HOST, port)
    print("ready", flush=True)
    await server.serve_forever()


def run_cli(serve: Callable[[int, int], Coroutine[Any, Any, None]], description: str) -> None:
    """``--upstream UPSTREAM_PORT --port PORT`` from the command line; ``serve`` them on uvloop."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--upstream", type=int, required=True, help="the worker's port")
    parser.add_argument("--port", type=int, required=True, help="the port to listen on")
    args = parser.parse_args()
    (uvloop.run if uvloop is not None else asyncio.run)(serve(args.upstream, args.port))


def main() -> None:
    run_cli(serve, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
