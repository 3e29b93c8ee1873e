"""The router's HTTP face: one handler on the runtime's listener (:mod:`runtime.http`), no framework.

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (streamed or not),
``GET /v1/models`` (merged from the workers), ``GET /health`` (liveness: the process answers),
``GET /ready`` (readiness: some worker passed its active checks, not draining), ``GET /metrics``,
``GET /openapi.json``. A request's ``x-session-id`` header is its session key for the policies.
Every error is an OpenAI-style JSON body ``{"error": {"message", "type", "code"}}`` that names no
worker and quotes no upstream text (``debug`` adds the detail, and the ``x-grove-route`` header,
which also authenticated clients get). The listener bounds the client (header and body size and
time, connections, a stream's write stall). A client that disconnects, or stops reading a stream,
cancels the request, which closes the upstream connections, which makes vLLM abort both legs. A
stream that breaks mid-way ends with an ``error`` event and without the terminating chunk, so no
client mistakes it for a complete answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from grove_pipelines.spec.endpoints import LIVENESS_PATH, ROUTER_READINESS_PATH
from runtime.auth import ApiKeys
from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.http import Request, Response, StreamBroken, StreamingResponse, error_body
from runtime.http.sse_tail import SseTail
from runtime.router.admission import Rejected
from runtime.router.legs import (
    HANDOFF_MS,
    NoWorker,
    PassThrough,
    Proxied,
    finish,
    note_cached_tokens,
    proxy,
)
from runtime.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.router.openapi import openapi_document
from runtime.router.policies import RequestView
from runtime.router.request import InvalidRequest, parse_request
from runtime.router.request_ids import new_nonce, new_request_id
from runtime.router.router import ROUTE_HEADER, Router
from runtime.router.session_headers import SESSION_HEADER, session_of
from runtime.tracing import TRACEPARENT, Span, parse_traceparent, start_span
from runtime.tracing.context import reset_current, set_current

__all__ = ["RouterApp"]

log = logging.getLogger("grove.router")

Header = tuple[bytes, bytes]

_JSON = b"application/json"
_FORWARDED = ("authorization", "tracestate")  # traceparent: the router's own span is the legs' parent
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ENDPOINTS = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}
_SPAN_NAMES = {endpoint: f"router {endpoint}" for endpoint in _ENDPOINTS.values()}
_PLAIN = (LIVENESS_PATH, ROUTER_READINESS_PATH, "/metrics", "/openapi.json")


class HTTPError(Exception):
    """An answer the router gives itself; rendered as an OpenAI-style error body."""

    def __init__(self, status: int, message: str, kind: str, headers: Sequence[Header] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers

    def response(self) -> Response:
        """The error as an answer."""
        return Response(self.status, error_body(self.message, self.kind, self.status), _JSON, self.headers)


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode())


class RouterApp:
    """The listener's handler; one instance per :class:`Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        cfg = router.config
        self.keys = ApiKeys.load(cfg.api_keys, env=cfg.api_key_env, file=cfg.api_key_file)
        self.debug = cfg.debug

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        path, method = request.path, request.method
        try:
            if method == "GET" and path in _PLAIN:
                return self._plain(path, request)
            self._authorize(request)
            endpoint = _ENDPOINTS.get(path)
            if endpoint is not None:
                if method != "POST":
                    raise HTTPError(405, f"use POST for {path}", "invalid_request_error")
                return await self._completion(request, endpoint)
            if path == "/v1/models" and method == "GET":
                return _json(200, {"object": "list", "data": self.router.model_cards()})
            raise HTTPError(404, "no such route", "not_found_error")
        except HTTPError as exc:
            return exc.response()

    def _plain(self, path: str, request: Request) -> Response:
        """The endpoints every probe and scraper may call without a key."""
        router = self.router
        if path == "/metrics":
            return Response(200, router.metrics.render(), METRICS_CONTENT_TYPE.encode())
        if path == "/openapi.json":
            models = sorted(router.known_models() or ())
            lengths = [n for n in map(router.context_length, models) if n is not None]
            return _json(200, openapi_document(models, min(lengths) if lengths else None))
        if path == LIVENESS_PATH:
            body: dict[str, Any] = {"status": "draining" if router.draining else "alive"}
            if self.debug and self._authorized(request):
                body["workers"] = [w.describe() for w in router.all_workers()]
            return _json(200, body)
        ready = bool(router.ready_workers()) and not router.draining
        status = "ready" if ready else ("draining" if router.draining else "no healthy workers")
        return _json(200 if ready else 503, {"status": status})

    def _authorized(self, request: Request) -> bool:
        if not self.keys.enabled:
            return True
        key = request.headers.get("authorization")
        return key is not None and self.keys.check(key.encode("latin-1"))

    def _authorize(self, request: Request) -> None:
        if not self._authorized(request):
            raise HTTPError(
                401,
                "missing or invalid API key (Authorization: Bearer <key>)",
                "authentication_error",
                [(b"www-authenticate", b"Bearer")],
            )

    def _parse(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        catalog = self.router.catalog()  # once: models and context lengths of the same moment
        try:
            body = parse_request(raw, endpoint, context_length=catalog.lengths.get)  # type: ignore[arg-type]
        except InvalidRequest as exc:
            raise HTTPError(400, exc.message, "invalid_request_error") from None
        known = catalog.models
        if known is not None and body["model"] not in known:
            served = ", ".join(sorted(known)) or "none"
            raise HTTPError(404, f"model {body['model']!r} not found; served: {served}", "not_found_error")
        return body

    def _headers(self, request: Request) -> tuple[dict[str, str], str]:
        """Headers for the legs, and the request id the client sees (its own if well-formed)."""
        headers = {"Content-Type": "application/json"}
        given = request.headers
        for name in _FORWARDED:
            value = given.get(name)
            if value is not None and not (name == "authorization" and self.keys.enabled):
                headers[name] = value
        client_id = given.get("x-request-id")
        request_id = client_id if client_id and _CLIENT_ID.fullmatch(client_id) else ""
        session = session_of(given)  # x-session-id or an agent's own session header
        if session is not None:
            headers[SESSION_HEADER] = session
        request_id = request_id or new_request_id()
        # vLLM uses X-Request-Id as its own request id: a nonce keeps two clients' ids apart.
        headers["X-Request-Id"] = f"{request_id}.{new_nonce()}"
        return headers, request_id

    async def _completion(self, request: Request, endpoint: str) -> Response | StreamingResponse:
        """Admit, proxy and answer one completion; a stream takes its admission and counts along."""
        router = self.router
        exchange = _Exchange(self, endpoint)
        span = exchange.span = start_span(
            _SPAN_NAMES[endpoint], parent=parse_traceparent(request.headers.get(TRACEPARENT)), kind="server"
        )
        token = set_current(span)  # the legs' spans (and their traceparent to vLLM) are under it
        try:
            body = self._parse(request.body, endpoint)
            headers, request_id = self._headers(request)
            try:
                if not router.admission.admit_now():
                    await router.admission.acquire()
            except Rejected as exc:
                retry = [(b"retry-after", str(router.config.limits.retry_after).encode())]
                kind = "rate_limit_error" if exc.status == 429 else "service_unavailable"
                raise HTTPError(exc.status, exc.message, kind, retry) from None
            exchange.admitted = True
            return await exchange.run(body, headers, request_id)
        except HTTPError as exc:
            exchange.end(exc.status)
            return exc.response()
        except asyncio.CancelledError:  # the client went away: the listener cancelled us
            router.metrics.of(router.metrics.client_aborts, "disconnect").inc()
            exchange.end(499)  # nginx's "client closed request", for the metrics only
            raise
        except BaseException:
            exchange.end(500)
            raise
        finally:
            reset_current(token)

    def upstream_error(self, exc: UpstreamError) -> HTTPError:
        """The client's view of a worker's failure (details only with ``debug``)."""
        timed_out = isinstance(exc, UpstreamTimeout)
        status, kind = (504, "timeout_error") if timed_out else (502, "upstream_error")
        message = "the model worker did not answer in time" if timed_out else "the model worker failed"
        if self.debug:
            message += f": {exc}"
        return HTTPError(status, message, kind)


class _Exchange:
    """One client request from admission to its last byte: everything it holds is given back once.

    It holds an admission slot and, once a worker answers, that worker's in-flight count (the
    :class:`~runtime.router.legs.Load` in :class:`~runtime.router.legs.Proxied`) and the upstream
    reply. A whole answer ends in :meth:`run`; a stream is this object itself, and ends when the
    listener closes it (:meth:`aclose`, called even when the stream never started), so no path
    leaks a slot or a count, and :meth:`end` counts the request once.
    """

    __slots__ = (
        "_broken",
        "_chunks",
        "_counted",
        "_first",
        "_tail",
        "admitted",
        "app",
        "endpoint",
        "ok",
        "proxied",
        "router",
        "series",
        "span",
        "started",
        "status",
    )

    def __init__(self, app: RouterApp, endpoint: str) -> None:
        self.app, self.router, self.endpoint = app, app.router, endpoint
        self.series = app.router.metrics.endpoint(endpoint)
        self.started = time.perf_counter()
        self.admitted = False
        self.proxied: Proxied | None = None
        self.ok = False  # the worker's answer reached the client whole
        self.status = 499  # what the metrics count if the client leaves first
        self._counted = False
        self._broken = False
        self._chunks: AsyncGenerator[bytes, None] | None = None
        self._tail: SseTail | None = None  # made when the answer turns out to be a stream
        self._first = True
        self.span: Span | None = None  # the request's span, ended by :meth:`end`

    async def run(
        self, body: dict[str, Any], headers: dict[str, str], request_id: str
    ) -> Response | StreamingResponse:
        """Proxy the request; the whole answer, or this object as the stream of it."""
        router, app = self.router, self.app
        session = headers.pop(SESSION_HEADER, None) or None
        shows_route = app.debug or app.keys.enabled  # authenticated (or debugging) clients may see the route
        # why the policy chose is written only for those who will read it: the route header, a recorded span
        explain = shows_route or (self.span is not None and self.span.recording)
        req = RequestView(self.endpoint, body, session, explain=explain)  # type: ignore[arg-type]
        rid = request_id.encode("latin-1")
        try:
            proxied = await proxy(router, req, headers)
        except NoWorker as exc:
            retry = [(b"retry-after", str(router.config.limits.retry_after).encode())]
            raise HTTPError(503, str(exc), "service_unavailable", retry) from None
        except PassThrough as exc:
            self.end(exc.status)
            return Response(exc.status, exc.body, exc.content_type.encode(), [(b"x-request-id", rid)])
        except UpstreamError as exc:
            raise app.upstream_error(exc) from None
        self.proxied = proxied
        if self.span is not None and self.span.recording:
            route = proxied.route
            for key, value in (
                ("mode", route.mode),
                ("policy", route.policy),
                ("reason", route.reason[:512]),
                ("kind", route.kind),
                ("worker", route.worker.url),
                ("retries", len(route.notes)),
            ):
                self.span.set(f"grove.route.{key}", value)
            self.span.set("grove.route.prefill", route.prefill.url if route.prefill is not None else None)
        headers_out: list[Header] = [(b"x-request-id", rid)]
        if shows_route:
            headers_out.append(
                (ROUTE_HEADER.encode(), proxied.route.header(app.router.process).encode("latin-1"))
            )
        reply = proxied.reply
        ctype = reply.content_type.encode("latin-1")
        if body.get("stream"):
            self._chunks, self._tail = reply.chunks(), SseTail()
            return StreamingResponse(self, reply.status, ctype, headers_out, self._aborted)
        try:
            data = await reply.read()
        except UpstreamError as exc:  # nothing sent yet: a clean error answer
            log.warning("answer from %s failed: %s", proxied.worker.url, exc)
            raise app.upstream_error(exc) from None
        self._first_token()
        note_cached_tokens(proxied.span, data)
        self.ok = reply.status < 500
        self.end(reply.status)
        return Response(reply.status, data, ctype, headers_out)

    # -- the stream: an async iterator the listener drives and closes -----------------------------
    def __aiter__(self) -> _Exchange:
        return self

    async def __anext__(self) -> bytes:
        if self._broken:
            raise StreamBroken  # after the error event: end the answer short
        assert self._chunks is not None and self._tail is not None and self.proxied is not None
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self.ok, self.status = True, self.proxied.reply.status
            raise
        except UpstreamError as exc:  # the worker broke off mid-stream: say so, and do not end cleanly
            if self._tail.done:  # ...unless the answer was whole: only the framing's end is missing
                self.ok, self.status = True, self.proxied.reply.status
                raise StopAsyncIteration from None
            log.warning("stream from %s broke off: %s", self.proxied.worker.url, exc)
            error = self.app.upstream_error(exc)
            self.status, self._broken = error.status, True
            return self._tail.error_event(error_body(error.message, error.kind, error.status))
        if self._first:
            self._first = False
            self._first_token()
        if chunk:
            note_cached_tokens(self.proxied.span, chunk)  # vLLM writes each event, its usage too, whole
            self._tail.feed(chunk)
        return chunk

    def _first_token(self) -> None:
        """The answer's first bytes are in: time to first token, to the metrics and to the spans."""
        ttft = time.perf_counter() - self.started
        self.series.ttft.observe(ttft)
        proxied = self.proxied
        if proxied is not None:
            proxied.load.prefilled()  # the worker's prompt work is done
        if not (self.span is not None and self.span.recording) and not (
            proxied is not None and proxied.span.recording
        ):
            return  # nothing records: no attributes to make
        ms = round(ttft * 1000, 3)
        if self.span is not None:
            self.span.set("grove.ttft_ms", ms)
        if proxied is not None:
            proxied.span.set("grove.ttft_ms", ms)
            if (
                proxied.prefilled_at is not None
            ):  # the KV transfer, plus the decode worker's queue and first step
                proxied.span.set(HANDOFF_MS, round((time.monotonic() - proxied.prefilled_at) * 1000, 3))

    async def aclose(self) -> None:
        """The listener is done with the stream (it ended, broke, or the client left): give all back."""
        if self._chunks is not None:
            await self._chunks.aclose()
        self.end(self.status)

    def _aborted(self, reason: str) -> None:
        if reason == "stopped-reading":
            log.warning("a client stopped reading its stream; cancelled")
        self.router.metrics.of(
            self.router.metrics.client_aborts,
            "stopped-reading" if reason == "stopped-reading" else "disconnect",
        ).inc()
        self.status = 499

    def end(self, status: int) -> None:
        """The one place where the request gives back what it holds and is counted (once)."""
        proxied, self.proxied = self.proxied, None
        if proxied is not None:
            if not self.ok:
                proxied.reply.close()  # closes the socket: vLLM aborts what it was still doing
            finish(proxied, self.ok)
        if self.admitted:
            self.admitted = False
            self.router.admission.release()
        if not self._counted:
            self._counted = True
            series = self.series
            series.answered(status).inc()
            series.latency.observe(time.perf_counter() - self.started)
            span, self.span = self.span, None
            if span is not None:
                span.set("http.response.status_code", status)
                if status >= 500 or status == 499:
                    span.fail("client closed the request" if status == 499 else f"HTTP {status}")
                span.end()
