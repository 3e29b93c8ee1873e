"""The server's door, in front of every endpoint: who may come in, and whether it is still taking work.

* ``/health`` (alive), ``/ready`` (503 while draining) and ``/metrics`` are open to the kubelet and
  Prometheus; everything else needs credentials once the server has them: a bearer key from
  ``GP_API_KEYS`` for the entry's endpoints, the pipeline's stage token for
  ``/v1/stages/*`` (so a stage server trusts ``X-GP-Caller`` only from the pipeline's own pods).
* After SIGTERM (:meth:`Gate.start_draining`) new requests get 503 with ``Retry-After`` while the ones
  in flight finish; :meth:`Gate.wait_idle` tells the server when it may stop.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.auth import ApiKeys
from runtime.server.errors import DrainingError, PipelineRunError, UnauthorizedError
from runtime.server.wire import REQUEST_ID_HEADER, request_id_from, stage_path

__all__ = ["OPEN_PATHS", "Gate", "GateMiddleware"]

OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})
_STAGES = stage_path("")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


class Gate:
    """Credentials, the draining flag and the count of requests in flight of one server."""

    def __init__(self, *, api_keys: ApiKeys | None = None, stage_keys: ApiKeys | None = None) -> None:
        self.api_keys = api_keys or ApiKeys()
        self.stage_keys = stage_keys or ApiKeys()
        self.draining = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def start_draining(self) -> None:
        """Refuse new work from now on (503); requests in flight carry on."""
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight (True) or ``timeout`` seconds passed (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def refusal(self, scope: Scope) -> PipelineRunError | None:
        """Why this request may not come in, or None."""
        path = scope["path"]
        if self.draining:
            return DrainingError("the server is shutting down; retry (another replica takes the request)")
        keys = self.stage_keys if path.startswith(_STAGES) else self.api_keys
        if keys.enabled and not keys.check_headers(scope["headers"]):
            what = "stage token" if keys is self.stage_keys else "API key (Authorization: Bearer <key>)"
            return UnauthorizedError(f"missing or invalid {what}")
        return None

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()


class GateMiddleware:
    """ASGI middleware applying a :class:`Gate` to every HTTP request."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        refused = self.gate.refusal(scope)
        if refused is not None:
            await _refuse(send, refused, scope)
            return
        self.gate.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave()


async def _refuse(send: Send, error: PipelineRunError, scope: Scope) -> None:
    request_id = request_id_from(next((v.decode("latin-1") for k, v in scope["headers"] if k == _REQUEST_ID), None))
    headers = [(b"content-type", b"application/json")]
    if isinstance(error, DrainingError):
        headers += [(b"retry-after", b"1"), (b"connection", b"close")]
    elif isinstance(error, UnauthorizedError):
        headers.append((b"www-authenticate", b"Bearer"))
    headers.append((_REQUEST_ID, request_id.encode()))
    body = json.dumps(error.body(request_id)).encode()
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
