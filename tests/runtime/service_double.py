"""A Kubernetes Service as kube-proxy makes one, for tests: each new TCP connection goes to the next
backend in turn (IPVS's round robin), and its bytes are relayed both ways until either side closes.

What it lets a test show: a caller that opens a new connection reaches another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

__all__ = ["RoundRobinService"]


class RoundRobinService:
    """Listens on a free loopback port; :attr:`chosen` is the backend index of each connection, in order."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = [_host_port(url) for url in backends]
        self.chosen: list[int] = []
        self._server: asyncio.Server | None = None
        self._relays: list[set[asyncio.Future[None]]] = []
        self.url = ""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for pipes in self._relays:
            for pipe in pipes:
                pipe.cancel()
        await asyncio.sleep(0)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        index = len(self.chosen) % len(self.backends)
        self.chosen.append(index)
        try:
            backend_r, backend_w = await asyncio.open_connection(*self.backends[index])
        except OSError:
            client_w.close()  # as a Service whose endpoint is gone: the connection is reset
            return
        pipes = {
            asyncio.ensure_future(_pipe(client_r, backend_w)),
            asyncio.ensure_future(_pipe(backend_r, client_w)),
        }
        relay = asyncio.ensure_future(asyncio.wait(pipes, timeout=60, return_when=asyncio.FIRST_COMPLETED))
        self._relays.append(pipes)
        try:
            await relay  # until either side closes (or 60 s: no test holds a connection that long)
        finally:
            self._relays.remove(pipes)
            for pipe in pipes:
                pipe.cancel()
            for writer in (client_w, backend_w):
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)
