"""The router's HTTP face: a plain ASGI application (no framework on the data path) for uvicorn.

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (streamed or not),
``GET /v1/models`` (merged from the workers), ``GET /health`` (liveness: the process answers),
``GET /ready`` (readiness: some worker passed its active checks, not draining), ``GET /metrics``,
``GET /openapi.json``. A request's ``x-session-id`` header is its session key for the policies.
Every error is an OpenAI-style JSON body ``{"error": {"message", "type", "code"}}`` that names no
worker and quotes no upstream text (``debug`` adds the detail, and the ``x-grove-route`` header,
which also authenticated clients get). A client that disconnects, or stops reading for
``limits.client_write_timeout``, cancels the request, which closes the upstream connections, which
makes vLLM abort both legs. A stream that breaks mid-way ends with an ``error`` event and without
the terminating chunk, so no client mistakes it for a complete answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from grove_pipelines.spec.endpoints import LIVENESS_PATH, ROUTER_READINESS_PATH
from runtime.auth import ApiKeys
from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.router.admission import Rejected
from runtime.router.core import ROUTE_HEADER, Router
from runtime.router.flow import NoWorker, PassThrough, Proxied, finish, proxy
from runtime.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.router.openapi import openapi_document
from runtime.router.policies import RequestView
from runtime.router.request import InvalidRequest, parse_request
from runtime.router.session_headers import SESSION_HEADER, session_from

__all__ = ["RouterApp"]

log = logging.getLogger("grove.router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = b"application/json"
_FORWARDED = ("authorization", "traceparent", "tracestate")
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


class _ClientStalled(Exception):
    """The client stopped reading the answer for longer than ``limits.client_write_timeout``."""


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


@dataclass
class _Answer:
    """What relaying one worker's answer to the client needs."""

    send: Send
    start: Message
    proxied: Proxied
    endpoint: str
    started: float
    state: dict[str, bool]


class RouterApp:
    """ASGI callable; one instance per :class:`Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        cfg = router.config
        self.keys = ApiKeys.load(cfg.api_keys, env=cfg.api_key_env, file=cfg.api_key_file)
        self._limits = cfg.limits
        self._max_body = cfg.limits.max_body_bytes
        self._debug = cfg.debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if method == "GET" and path in (LIVENESS_PATH, ROUTER_READINESS_PATH, "/metrics", "/openapi.json"):
                return await self._plain(path, scope, send)
            self._authorize(scope)
            if path in ("/v1/completions", "/v1/chat/completions"):
                if method != "POST":
                    raise HTTPError(405, f"use POST for {path}", "invalid_request_error")
                endpoint = "completions" if path == "/v1/completions" else "chat"
                return await self._completion(scope, receive, send, endpoint)
            if path == "/v1/models" and method == "GET":
                data = {"object": "list", "data": self.router.model_cards()}
                return await _respond(send, 200, json.dumps(data).encode())
            raise HTTPError(404, "no such route", "not_found_error")
        except HTTPError as exc:
            await _respond(
                send, exc.status, error_body(exc.status, exc.message, exc.kind), headers=exc.headers
            )

    async def _plain(self, path: str, scope: Scope, send: Send) -> None:
        """The endpoints every probe and scraper may call without a key."""
        router = self.router
        if path == "/metrics":
            return await _respond(send, 200, router.metrics.render(), METRICS_CONTENT_TYPE.encode())
        if path == "/openapi.json":
            models = sorted(router.known_models() or ())
            lengths = [n for n in map(router.context_length, models) if n is not None]
            document = openapi_document(models, min(lengths) if lengths else None)
            return await _respond(send, 200, json.dumps(document).encode())
        if path == LIVENESS_PATH:
            body: dict[str, Any] = {"status": "draining" if router.draining else "alive"}
            if self._debug and self._authorized(scope):
                body["workers"] = [w.describe() for w in router.all_workers()]
            return await _respond(send, 200, json.dumps(body).encode())
        ready = bool(router.ready_workers()) and not router.draining
        status = "ready" if ready else ("draining" if router.draining else "no healthy workers")
        await _respond(send, 200 if ready else 503, json.dumps({"status": status}).encode())

    def _authorized(self, scope: Scope) -> bool:
        return not self.keys.enabled or self.keys.check_headers(scope["headers"])

    def _authorize(self, scope: Scope) -> None:
        if not self._authorized(scope):
            raise HTTPError(
                401,
                "missing or invalid API key (Authorization: Bearer <key>)",
                "authentication_error",
                [(b"www-authenticate", b"Bearer")],
            )

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self._max_body):
                raise HTTPError(413, f"request body over {self._max_body} bytes", "invalid_request_error")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._limits.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self._max_body:
                        raise HTTPError(
                            413, f"request body over {self._max_body} bytes", "invalid_request_error"
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise HTTPError(
                408,
                f"the request body did not arrive within {self._limits.body_timeout:g} s",
                "invalid_request_error",
                [(b"connection", b"close")],
            ) from None

    def _parse(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        try:
            body = parse_request(raw, endpoint, context_length=self.router.context_length)  # type: ignore[arg-type]
        except InvalidRequest as exc:
            raise HTTPError(400, exc.message, "invalid_request_error") from None
        known = self.router.known_models()
        if known is not None and body["model"] not in known:
            served = ", ".join(sorted(known)) or "none"
            raise HTTPError(404, f"model {body['model']!r} not found; served: {served}", "not_found_error")
        return body

    def _headers(self, scope: Scope) -> tuple[dict[str, str], str]:
        """Headers for the legs, and the request id the client sees (its own if well-formed)."""
        headers = {"Content-Type": "application/json"}
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1") if _CLIENT_ID.fullmatch(value) else ""
            elif name.decode("latin-1") in _FORWARDED and not (
                name == b"authorization" and self.keys.enabled
            ):
                headers[name.decode("latin-1")] = value.decode("latin-1")
        session = session_from(scope["headers"])  # x-session-id or an agent's own session header
        if session is not None:
            headers[SESSION_HEADER] = session
        request_id = request_id or uuid.uuid4().hex
        # vLLM uses X-Request-Id as its own request id: a nonce keeps two clients' ids apart.
        headers["X-Request-Id"] = f"{request_id}.{uuid.uuid4().hex[:8]}"
        return headers, request_id

    async def _completion(self, scope: Scope, receive: Receive, send: Send, endpoint: str) -> None:
        router = self.router
        started = time.perf_counter()
        status = 500
        try:
            raw = await self._read_body(scope, receive)
            body = self._parse(raw, endpoint)
            headers, request_id = self._headers(scope)
            try:
                async with router.admission.slot():
                    status = await self._proxy_watched(
                        receive, send, endpoint, body, headers, request_id, started
                    )
            except Rejected as exc:
                retry = [(b"retry-after", str(router.config.limits.retry_after).encode())]
                kind = "rate_limit_error" if exc.status == 429 else "service_unavailable"
                raise HTTPError(exc.status, exc.message, kind, retry) from None
        except HTTPError as exc:
            status = exc.status
            raise
        except _ClientGone:
            status = 499
            router.metrics.of(router.metrics.client_aborts, "disconnect").inc()
        finally:
            router.metrics.of(router.metrics.requests, endpoint, str(status)).inc()
            router.metrics.of(router.metrics.latency, endpoint).observe(time.perf_counter() - started)

    async def _proxy_watched(
        self,
        receive: Receive,
        send: Send,
        endpoint: str,
        body: dict[str, Any],
        headers: dict[str, str],
        request_id: str,
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
            return await self._proxy(send, endpoint, body, headers, request_id, started, state)
        except asyncio.CancelledError:
            if state["gone"] and task.uncancel() == 0:
                self.router.metrics.of(self.router.metrics.client_aborts, "disconnect").inc()
                return 499  # nginx's "client closed request", for the metrics only
            raise
        finally:
            state["done"] = True
            watcher.cancel()

    def _upstream_error(self, exc: UpstreamError) -> HTTPError:
        timed_out = isinstance(exc, UpstreamTimeout)
        status, kind = (504, "timeout_error") if timed_out else (502, "upstream_error")
        message = "the model worker did not answer in time" if timed_out else "the model worker failed"
        if self._debug:
            message += f": {exc}"
        return HTTPError(status, message, kind)

    async def _send(self, send: Send, message: Message) -> None:
        """Send to the client; one that stops reading for ``client_write_timeout`` ends the request."""
        try:
            async with asyncio.timeout(self._limits.client_write_timeout):
                await send(message)
        except TimeoutError:
            raise _ClientStalled from None

    async def _proxy(
        self,
        send: Send,
        endpoint: str,
        body: dict[str, Any],
        headers: dict[str, str],
        request_id: str,
        started: float,
        state: dict[str, bool],
    ) -> int:
        router = self.router
        session = headers.pop(SESSION_HEADER, None) or None
        req = RequestView(endpoint, body, session)  # type: ignore[arg-type]
        rid = request_id.encode("latin-1")
        try:
            proxied = await proxy(router, req, headers)
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
            raise self._upstream_error(exc) from None
        start_headers = [
            (b"content-type", proxied.reply.content_type.encode("latin-1")),
            (b"x-request-id", rid),
        ]
        if self._debug or self.keys.enabled:  # authenticated (or debugging) clients may see the route
            start_headers.append((ROUTE_HEADER.encode(), proxied.route.header().encode("latin-1")))
        start = {"type": "http.response.start", "status": proxied.reply.status, "headers": start_headers}
        ok = False
        try:
            answer = _Answer(send, start, proxied, endpoint, started, state)
            status = await (self._stream(answer) if body.get("stream") else self._whole(answer))
            ok = status < 500
            return status
        except _ClientStalled:
            router.metrics.of(router.metrics.client_aborts, "stopped-reading").inc()
            log.warning("request %s: the client stopped reading; cancelled", request_id)
            return 499
        finally:
            if not ok:
                proxied.reply.close()
            finish(proxied, ok)

    async def _whole(self, a: _Answer) -> int:
        router, send, start, proxied, state = self.router, a.send, a.start, a.proxied, a.state
        try:
            data = await proxied.reply.read()
        except UpstreamError as exc:  # nothing sent yet: a clean error answer
            log.warning("answer from %s failed: %s", proxied.worker.url, exc)
            raise self._upstream_error(exc) from None
        router.metrics.of(router.metrics.ttft, a.endpoint).observe(time.perf_counter() - a.started)
        state["done"] = True
        await self._send(send, start)
        await self._send(send, {"type": "http.response.body", "body": data})
        return proxied.reply.status

    async def _stream(self, a: _Answer) -> int:
        router, send, start, proxied, state = self.router, a.send, a.start, a.proxied, a.state
        await self._send(send, start)
        first, tail = True, b"\n\n"
        try:
            async for chunk in proxied.reply.chunks():
                if first:
                    router.metrics.of(router.metrics.ttft, a.endpoint).observe(
                        time.perf_counter() - a.started
                    )
                    first = False
                if chunk:
                    tail = (tail + chunk)[-2:]
                    await self._send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError as exc:  # the worker broke off mid-stream: say so, and do not end cleanly
            log.warning("stream from %s broke off: %s", proxied.worker.url, exc)
            error = self._upstream_error(exc)
            event = b"data: " + error_body(error.status, error.message, error.kind) + b"\n\n"
            state["done"] = True
            await self._send(
                send,
                {"type": "http.response.body", "body": b"\n\n"[: 2 - _ends(tail)] + event, "more_body": True},
            )
            return error.status  # returning without the final chunk makes uvicorn close the connection
        state["done"] = True
        await self._send(send, {"type": "http.response.body", "body": b""})
        return proxied.reply.status


def _ends(tail: bytes) -> int:
    """How many of the two newlines that end an SSE event ``tail`` already has."""
    return 2 if tail.endswith(b"\n\n") else (1 if tail.endswith(b"\n") else 0)
