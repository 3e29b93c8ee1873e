"""A process target for the SO_REUSEPORT test: answers every request with its own pid."""

from __future__ import annotations

import asyncio
import os
import socket

from runtime.http import HttpServer, Request, Response


async def _serve(sock: socket.socket) -> None:
    async def pid(request: Request) -> Response:
        return Response(200, str(os.getpid()).encode(), b"text/plain")

    server = HttpServer(pid)
    await server.start(sock)
    await asyncio.Event().wait()


def serve_pid(sock: socket.socket) -> None:
    """Serve on ``sock`` until terminated."""
    asyncio.run(_serve(sock))
