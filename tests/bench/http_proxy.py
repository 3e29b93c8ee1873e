"""The thinnest proxy on ``runtime.http``: what the layer alone costs, with no routing on top.

``python -m tests.bench.http_proxy PORT UPSTREAM_URL [asyncio|uvloop]`` forwards every request's
method, path and body to ``UPSTREAM_URL`` over the keep-alive pool and streams SSE answers back
chunk by chunk; ``/health`` is answered locally. Used by ``http_layer_bench`` only.
"""

from __future__ import annotations

import asyncio
import sys

from runtime.http import HttpServer, Request, Response, StreamingResponse, UpstreamPool

__all__ = ["main"]

_JSON = {"content-type": "application/json"}


async def serve(port: int, upstream: str) -> None:
    """Proxy ``127.0.0.1:port`` to ``upstream`` until killed."""
    pool = UpstreamPool(connect=5, read=60)

    async def handle(request: Request) -> Response | StreamingResponse:
        if request.path == "/health":
            return Response(200, b"{}")
        reply = await pool.request(request.method, upstream + request.path, request.body, _JSON)
        ctype = reply.content_type
        if ctype.startswith("text/event-stream"):
            return StreamingResponse(reply.chunks(), reply.status, ctype.encode())
        return Response(reply.status, await reply.read(), ctype.encode())

    server = HttpServer(handle)
    await server.start(port=port)
    await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    """Parse ``PORT UPSTREAM [loop]`` and serve on the chosen event loop."""
    port, upstream = int(argv[0]), argv[1].rstrip("/")
    loop = argv[2] if len(argv) > 2 else "uvloop"
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(port, upstream))


if __name__ == "__main__":
    main(sys.argv[1:])
