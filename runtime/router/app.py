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

import json
import logging
import re
from typing import Any

from grove_pipelines.spec.endpoints import LIVENESS_PATH, ROUTER_READINESS_PATH
from runtime.auth import ApiKeys
from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.http import Request, Responder, Response, StreamingResponse
from runtime.router.answer_error import HTTPError
from runtime.router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from runtime.router.openapi import openapi_document
from runtime.router.request import InvalidRequest, parse_request
from runtime.router.request_ids import new_nonce, new_request_id
from runtime.router.routed_request import RoutedRequest
from runtime.router.router import Router
from runtime.router.session_headers import SESSION_HEADER, session_of

__all__ = ["HTTPError", "RouterApp"]

log = logging.getLogger("grove.router")

_FORWARDED = ("authorization", "tracestate")  # traceparent: the router's own span is the legs' parent
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ENDPOINTS = {"/v1/completions": "completions", "/v1/chat/completions": "chat"}
_PLAIN = (LIVENESS_PATH, ROUTER_READINESS_PATH, "/metrics", "/openapi.json")


def _unauthorized() -> HTTPError:
    return HTTPError(
        401,
        "missing or invalid API key (Authorization: Bearer <key>)",
        "authentication_error",
        [(b"www-authenticate", b"Bearer")],
    )


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data).encode())


class RouterApp:
    """The listener's handler; one instance per :class:`Router`."""

    def __init__(self, router: Router) -> None:
        self.router = router
        cfg = router.config
        self.keys = ApiKeys.load(cfg.api_keys, env=cfg.api_key_env, file=cfg.api_key_file)
        self.debug = cfg.debug
        #: authenticated (or debugging) clients may see the route (``x-grove-route``)
        self.shows_route = self.debug or self.keys.enabled

    def direct(self, request: Request, responder: Responder) -> bool:
        """The listener's first offer of every request: completions are taken here and answered from
        callbacks (:class:`~runtime.router.routed_request.RoutedRequest`); the rest go to :meth:`__call__`."""
        endpoint = _ENDPOINTS.get(request.path)
        if endpoint is None or request.method != "POST":
            return False
        if not self._authorized(request):
            _unauthorized().answer(responder)
            return True
        RoutedRequest(self, endpoint, responder).start(request)
        return True

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        """Every endpoint but the completions' POST (see :meth:`direct`)."""
        path, method = request.path, request.method
        try:
            if method == "GET" and path in _PLAIN:
                return self._plain(path, request)
            self._authorize(request)
            if path in _ENDPOINTS:
                raise HTTPError(405, f"use POST for {path}", "invalid_request_error")
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
            raise _unauthorized()

    def parse(self, raw: bytes, endpoint: str) -> dict[str, Any]:
        """The validated, cleaned body of a completion request (400, or 404 for a model nobody serves)."""
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

    def leg_headers(self, request: Request) -> tuple[dict[str, str], str]:
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

    def upstream_error(self, exc: UpstreamError) -> HTTPError:
        """The client's view of a worker's failure (details only with ``debug``)."""
        timed_out = isinstance(exc, UpstreamTimeout)
        status, kind = (504, "timeout_error") if timed_out else (502, "upstream_error")
        message = "the model worker did not answer in time" if timed_out else "the model worker failed"
        if self.debug:
            message += f": {exc}"
        return HTTPError(status, message, kind)
