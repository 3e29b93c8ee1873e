"""A bench proxy (``tests/bench``'s ``serve(upstream_port, port)``) in front of a test's own upstream, for its tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

from runtime.engines.supervisor import free_port
from tests.polling import connect_when_listening

__all__ = ["Upstream", "proxy_in_front_of"]

Upstream = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""A connection handler of ``asyncio.start_server``: the worker the proxy forwards to."""


@contextlib.asynccontextmanager
async def proxy_in_front_of(
    serve: Callable[[int, int], Coroutine[Any, Any, None]], upstream: Upstream
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``serve`` running in front of ``upstream``, and a client connection to it; both stopped after."""
    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = free_port()
    proxy = asyncio.create_task(serve(server.sockets[0].getsockname()[1], port))
    try:
        reader, writer = await connect_when_listening(port)
        yield reader, writer
        writer.close()
    finally:
        proxy.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await proxy
        server.close()
