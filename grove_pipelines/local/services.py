"""ClusterIP Services: an address in the run that forwards each connection to a Ready endpoint.

As kube-proxy does: the Service's ``selector`` picks the pods, only Ready ones are endpoints, a
named ``targetPort`` is the pod's container port of that name, connections are spread round-robin,
and with no Ready endpoint a connection is refused (closed at once). The same forwarder serves
``127.0.0.1:<port>`` for the entry Service (what ``kubectl port-forward`` gives a user).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grove_pipelines.local.probes import resolve_port

__all__ = ["Endpoint", "ServiceForwarder"]


@dataclass(frozen=True)
class Endpoint:
    """A Ready pod behind a Service: its IP and its container ports."""

    ip: str
    ports: Sequence[Mapping[str, Any]]


@dataclass
class ServiceForwarder:
    """Listens on (address, port) for each Service port; ``endpoints()`` answers the Ready pods now."""

    service: Mapping[str, Any]
    endpoints: Callable[[], list[Endpoint]]
    servers: list[asyncio.Server] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def name(self) -> str:
        return str(self.service["metadata"]["name"])

    async def listen(
        self, address: str, *, port: int | None = None, sock: socket.socket | None = None
    ) -> list[int]:
        """Serve every Service port on ``address``; returns the ports bound.

        ``port`` overrides the first one, or ``sock`` (a listening socket bound elsewhere) serves it.
        """
        bound = []
        for number, entry in enumerate(self.service["spec"].get("ports") or ()):
            listen_port = port if port is not None and number == 0 else int(entry["port"])
            handler = functools.partial(self._forward, target=entry.get("targetPort", entry["port"]))
            if sock is not None and number == 0:
                server = await asyncio.start_server(handler, sock=sock)
            else:
                server = await asyncio.start_server(handler, address, listen_port, reuse_address=True)
            self.servers.append(server)
            bound.append(server.sockets[0].getsockname()[1])
        return bound

    async def _forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, target: int | str
    ) -> None:
        ready = self.endpoints()
        if not ready:
            writer.close()
            return
        endpoint = ready[next(self._turn) % len(ready)]
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                endpoint.ip, resolve_port(target, endpoint.ports)
            )
        except (OSError, ValueError):
            writer.close()
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self.servers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
