"""The router's HTTP face: a plain ASGI application (no framework on the data path) for uvicorn.

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (streamed or not),
``GET /v1/models`` (merged from the workers), ``GET /health``, ``GET /metrics``. A request's
``x-session-id`` header is its session key for the policies. Every error is an
OpenAI-style JSON body ``{"error": {"message", "type", "code"}}``. A client that disconnects cancels
the request, which closes the upstream connections, which makes vLLM abort both legs.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from runtime.errors import UpstreamError
from runtime.router.admission import Rejected
from runtime.router.core import ROUTE_HEADER, Router
from runtime.router.flow import NoWorker, PassThrough, finish, proxy
from runtime.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.router.policies import RequestView
from runtime.router.session_headers import session_from

__all__ = ["RouterApp"]

log = logging.getLogger("grove.router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"
_FORWARDED = ("authorization", "traceparent", "tracestate")
SESSION_HEADER = b"x-session-id"
"""Request header naming the conversation a request belongs to (session affinity); not forwarded."""


class _ClientGone(Exception):
    """The client disconnected while its request body was still arriving."""


class HTTPError(Exception):
    """An answer the router gives itself; rendered as an OpenAI-style error body."""

    def __init__(
        self, status: int, message: str, kind: str, headers: list[tuple[bytes, bytes]] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or []


def error_body(status: int, message: str, kind: str) -> bytes:
    """``{"error": {"message", "type", "code"}}`` as vLLM and OpenAI shape it."""
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}}).encode()


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    ctype: bytes = _JSON,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RouterApp:
    """ASGI callable; one instance per :class:`Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._keys = [k.encode() for k in router.config.api_keys]
        self._max_body = router.config.limits.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path == "/health" and method == "GET":
                return await self._health(send)
            if path == "/metrics" and method == "GET":
                return await _respond(send, 200, self.router.metrics.render(), METRICS_CONTENT_TYPE.encode())
            self._authorize(scope)
            if path in ("/v1/completions", "/v1/chat/completions"):
                if method != "POST":
                    raise HTTPError(405, f"use POST for {path}", "invalid_request_error")
                endpoint = "completions" if path == "/v1/completions" else "chat"
                return await self._completion(scope, receive, send, endpoint)
            if path == "/v1/models" and method == "GET":
                data = {"object": "list", "data": self.router.model_cards()}
                return await _respond(send, 200, json.dumps(data).encode())
            raise HTTPError(404, f"no route for {method} {path}", "not_found_error")
        except HTTPError as exc:
            await _respond(
                send, exc.status, error_body(exc.status, exc.message, exc.kind), headers=exc.headers
            )

    def _authorize(self, scope: Scope) -> None:
        if not self._keys:
            return
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
                if any(hmac.compare_digest(token, key) for key in self._keys):
                    return
        raise HTTPError(
            401, "missing or invalid API key (Authorization: Bearer <key>)", "authentication_error"
        )

    async def _health(self, send: Send) -> None:
        router = self.router
        serving = router.serving_workers()
        status = "draining" if router.draining else ("ok" if serving else "no healthy workers")
        body = {"status": status, "workers": [w.describe() for w in router.all_workers()]}
        await _respond(send, 200 if status == "ok" else 503, json.dumps(body).encode())

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self._max_body:
                raise HTTPError(413, f"request body over {self._max_body} bytes", "invalid_request_error")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise HTTPError(413, f"request body over {self._max_body} bytes", "invalid_request_error")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _parse(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            raise HTTPError(400, "the request body is not valid JSON", "invalid_request_error") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object", "invalid_request_error")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HTTPError(400, "missing required field 'model'", "invalid_request_error")
        if endpoint == "completions" and body.get("prompt") in (None, "", []):
            raise HTTPError(400, "missing required field 'prompt'", "invalid_request_error")
        if endpoint == "chat" and (not isinstance(body.get("messages"), list) or not body["messages"]):
            raise HTTPError(
                400, "missing required field 'messages' (a non-empty list)", "invalid_request_error"
            )
        known = self.router.known_models()
        if known is not None and model not in known:
            served = ", ".join(sorted(known)) or "none"
            raise HTTPError(404, f"model {model!r} not found; served: {served}", "not_found_error")
        return body

    async def _completion(self, scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
        router = self.router
        started = time.perf_counter()
        status = 500
        try:
            raw = await self._read_body(scope, receive)
            body = self._parse(raw, endpoint)
            headers = {"Content-Type": "application/json"}
            request_id = ""
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    request_id = value.decode("latin-1")
                elif name.decode("latin-1") in _FORWARDED and not (name == b"authorization" and self._keys):
                    headers[name.decode("latin-1")] = value.decode("latin-1")
            headers["X-Request-Id"] = request_id or uuid.uuid4().hex
            session = session_from(scope["headers"])  # x-session-id or an agent's own session header
            if session is not None:
                headers[SESSION_HEADER.decode()] = session
            try:
                async with router.admission.slot():
                    status = await self._proxy_watched(receive, send, endpoint, body, raw, headers, started)
            except Rejected as exc:
                retry = [(b"retry-after", str(router.config.limits.retry_after).encode())]
                kind = "rate_limit_error" if exc.status == 429 else "service_unavailable"
                raise HTTPError(exc.status, exc.message, kind, retry) from None
        except HTTPError as exc:
            status = exc.status
            raise
        except _ClientGone:
            status = 499
        finally:
            router.metrics.of(router.metrics.requests, endpoint, str(status)).inc()
            router.metrics.of(router.metrics.latency, endpoint).observe(time.perf_counter() - started)

    async def _proxy_watched(
        self,
        receive: Receive,
        send: Send,
        endpoint: str,
        body: dict[str, Any],
        raw: bytes,
        headers: dict[str, str],
        started: float,
    ) -> int:
        """Run the proxy; a client disconnect meanwhile cancels it (and with it both upstream legs)."""
        task = asyncio.current_task()
        assert task is not None
        state = {"done": False, "gone": False}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["done"]:
                state["gone"] = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            return await self._proxy(send, endpoint, body, raw, headers, started, state)
        except asyncio.CancelledError:
            if state["gone"] and task.uncancel() == 0:
                return 499  # nginx's "client closed request", for the metrics only
            raise
        finally:
            state["done"] = True
            watcher.cancel()

    async def _proxy(
        self,
        send: Send,
        endpoint: str,
        body: dict[str, Any],
        raw: bytes,
        headers: dict[str, str],
        started: float,
        state: dict[str, bool],
    ) -> int:
        router = self.router
        session = headers.pop(SESSION_HEADER.decode(), None) or None
        req = RequestView(endpoint, body, session)  # type: ignore[arg-type]
        rid = headers["X-Request-Id"].encode("latin-1")
        try:
            proxied = await proxy(router, req, raw, headers)
        except NoWorker as exc:
            raise HTTPError(
                503,
                str(exc),
                "service_unavailable",
                [(b"retry-after", str(router.config.limits.retry_after).encode())],
            ) from None
        except PassThrough as exc:
            await _respond(send, exc.status, exc.body, exc.content_type.encode(), [(b"x-request-id", rid)])
            return exc.status
        except UpstreamError as exc:
            raise HTTPError(502, f"upstream failed: {exc}", "upstream_error") from None
        reply, ok = proxied.reply, False
        start = {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [
                (b"content-type", reply.content_type.encode("latin-1")),
                (b"x-request-id", rid),
                (ROUTE_HEADER.encode(), proxied.route.header().encode("latin-1")),
            ],
        }
        try:
            if body.get("stream"):
                await send(start)
                first = True
                async for chunk in reply.chunks():
                    if first:
                        router.metrics.of(router.metrics.ttft, endpoint).observe(
                            time.perf_counter() - started
                        )
                        first = False
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                state["done"] = True
                await send({"type": "http.response.body", "body": b""})
            else:
                try:
                    data = await reply.read()
                except UpstreamError as exc:  # nothing sent yet: a clean error answer
                    raise HTTPError(502, f"upstream failed: {exc}", "upstream_error") from None
                router.metrics.of(router.metrics.ttft, endpoint).observe(time.perf_counter() - started)
                state["done"] = True
                await send(start)
                await send({"type": "http.response.body", "body": data})
            ok = True
        except UpstreamError as exc:  # the worker broke off mid-stream: nothing left to retry
            log.warning("answer from %s broke off: %s", proxied.worker.url, exc)
            state["done"] = True
            await send({"type": "http.response.body", "body": b""})
            return 502
        finally:
            if not ok:
                reply.close()
            finish(router, proxied, ok)
        return reply.status
