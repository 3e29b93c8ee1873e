"""The app behind an ASGI host, for the one host that speaks nothing else: Ray Serve's ingress.

A pod serves :class:`~runtime.server.app.PipelineApp` on ``runtime.http``'s listener; Ray Serve
hands its ingress ASGI calls instead. :class:`AsgiApp` turns each call into the same
:class:`~runtime.http.Request` (the body bounded by ``GP_MAX_BODY_BYTES``, 413 past it) and sends
back what the app answers, so the endpoints have one implementation. A client that disconnects
cancels its endpoint, as on the listener; the ASGI lifespan starts and closes the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runtime.http import Request, Response, StreamingResponse
from runtime.server.app import PipelineApp

__all__ = ["AsgiApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Gone(Exception):
    """The client disconnected before its body was in."""


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI's header pairs as the listener gives them: lower-case names, repeats joined with ``, ``."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        old = headers.get(key)
        headers[key] = text if old is None else f"{old}, {text}"
    return headers


class AsgiApp:
    """An ASGI application serving ``app``."""

    def __init__(self, app: PipelineApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.app.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.app.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes | None:
        """The whole body, or None once it passes the limit (nothing past it is kept)."""
        limit = self.app.settings.max_body_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Gone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope["headers"])
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # mounted under a prefix (Ray Serve's route_prefix)
            path = path[len(root) :] or "/"
        try:
            body = await self._body(receive, headers)
        except _Gone:
            return
        if body is None:
            await self._send(
                self.app.refusal(413, "the request body is too large", "invalid_request_error", headers), send
            )
            return
        client = scope.get("client")
        request = Request(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            client=f"{client[0]}:{client[1]}" if client else "",
        )
        answering = asyncio.ensure_future(self._answer(request, send))
        watching = asyncio.ensure_future(self._disconnect(receive))
        try:
            await asyncio.wait((answering, watching), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (answering, watching):
                task.cancel()
            await asyncio.gather(answering, watching, return_exceptions=True)

    async def _answer(self, request: Request, send: Send) -> None:
        await self._send(await self.app(request), send)

    @staticmethod
    async def _disconnect(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    @staticmethod
    async def _send(reply: Response | StreamingResponse, send: Send) -> None:
        headers = [(b"content-type", reply.content_type), *reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if isinstance(reply, Response):
            await send({"type": "http.response.body", "body": reply.body})
            return
        chunks = reply.chunks
        try:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]
