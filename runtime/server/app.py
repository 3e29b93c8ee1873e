"""The pipeline server's HTTP app (Starlette): pipelines, stage calls, OpenAI pass-through, health, metrics.

Example::

    executor = Executor.from_loaded(load_pipeline("pipelines/agentic_rag.py"))
    app = build_app([executor])                   # entry mode: /v1/pipelines/agentic-rag ...
    app = build_app([executor], stages=["check"], pipelines=False)   # stage-server mode

Every error is ``{"error": {"message", "type", "code", "stage"?, "request_id"}}`` with its status; a
failing request never takes the server down, and what a stage or upstream said stays in the log
(``runtime.server.failures``). In front of it all sits the gate (``runtime.server.gate``): credentials,
draining, requests in flight; bodies are read up to ``max_body_bytes`` and no further (413).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from grove_pipelines.graph import ENTRY
from grove_pipelines.spec.endpoints import LIVENESS_PATH, SERVER_READINESS_PATH
from runtime.private_fields import strip_private
from runtime.router.session_headers import session_from
from runtime.server.body import read_json
from runtime.server.deadline import Deadline
from runtime.server.errors import InvalidRequestError, NotFoundError, PipelineRunError
from runtime.server.executor import Executor
from runtime.server.failures import describe_failure
from runtime.server.gate import Gate, GateMiddleware
from runtime.server.llm_calls import RUN_SESSION
from runtime.server.metrics import CONTENT_TYPE, Metrics
from runtime.server.openapi import PipelineAPI, openapi_document
from runtime.server.schema import format_errors, input_model, request_schema, result_schema
from runtime.server.settings import ServerSettings
from runtime.server.sse import ClientGone, EventStream, run_until_disconnect
from runtime.server.wire import (
    CALLER_HEADER,
    DEADLINE_HEADER,
    REQUEST_ID_HEADER,
    StageCall,
    encode,
    request_id_from,
)

__all__ = ["build_app"]

log = logging.getLogger("grove_pipelines.server")
Endpoint = Callable[[Request], Awaitable[Response]]


class _JSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate a client sent (valid JSON, not UTF-8) cannot break it."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _error(exc: BaseException, request_id: str, where: str) -> JSONResponse:
    status, body = describe_failure(exc, request_id, where=where)
    return _JSON(body, status_code=status, headers={REQUEST_ID_HEADER: request_id})


async def _no_route(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405, in the same JSON shape as every other error."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(status, "internal_error")
    message = f"no route for {request.method} {request.url.path[:200]}"
    body = {"error": {"message": message, "type": kind, "code": status, "request_id": _request_id(request)}}
    return _JSON(body, status_code=status, headers={REQUEST_ID_HEADER: _request_id(request)})


def _request_id(request: Request) -> str:
    """The request's id: the caller's when it is a plain token, else a new one (kept on ``request.state``)."""
    if not hasattr(request.state, "request_id"):
        request.state.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    return str(request.state.request_id)


def _guard(endpoint: Endpoint) -> Endpoint:
    """Turn every failure of ``endpoint`` into a JSON error (details to the log, not the client)."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:  # noqa: BLE001  (every failure becomes a JSON error; the log has it all)
            return _error(exc, _request_id(request), request.url.path)

    return wrapped


class _Pipeline:
    """One pipeline as the server sees it: its executor, request model and schemas."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        func = executor.pipeline.func
        self.request_model: type[BaseModel] = input_model(executor.name, func)
        self.fields = [f for f in self.request_model.model_fields if f != "stream"]
        self.output_plain = result_schema(func, components=False)[0]
        in_schema, in_defs = request_schema(self.request_model)
        out_schema, out_defs = result_schema(func)
        self.api = PipelineAPI(
            name=executor.name, description=executor.pipeline.spec.description,
            input_schema=in_schema, output_schema=out_schema, definitions={**in_defs, **out_defs},
        )

    def listing(self) -> dict[str, Any]:
        return {
            "name": self.executor.name,
            "description": self.executor.pipeline.spec.description,
            "path": f"/v1/pipelines/{self.executor.name}",
            "stages": [s.name for s in self.executor.graph.stages()],
            "input_schema": self.request_model.model_json_schema(),
            "output_schema": self.output_plain,
        }


def build_app(
    executors: Sequence[Executor],
    *,
    stages: Sequence[str] = (),
    pipelines: bool = True,
    metrics: Metrics | None = None,
    on_ready: Callable[[], None] | None = None,
    settings: ServerSettings | None = None,
) -> Starlette:
    """The ASGI app: pipeline endpoints (unless ``pipelines=False``) and ``/v1/stages/{name}`` for ``stages``.

    At startup, in-process class stages are instantiated (a model load, say) before any request is
    accepted; ``on_ready`` is called after that. ``settings`` (default: the first executor's) give
    the limits and credentials; the app's :class:`Gate` is ``app.state.gate`` (the server drains it).
    """
    settings = settings or (executors[0].settings if executors else ServerSettings())
    gate = Gate(api_keys=settings.api_keys, stage_keys=settings.stage_keys)
    limit = settings.max_body_bytes
    metrics = metrics or (executors[0].metrics if executors else Metrics())
    for executor in executors:
        executor.metrics = metrics  # one /metrics for every pipeline of this server
    served = {ex.name: _Pipeline(ex) for ex in executors} if pipelines else {}
    stage_owner: dict[str, Executor] = {}
    for name in stages:
        owner = next((ex for ex in executors if name in ex.transports), None)
        if owner is None:
            known = ", ".join(sorted(n for ex in executors for n in ex.transports)) or "none"
            raise NotFoundError(f"no Python stage {name!r} in the pipeline (its Python stages: {known})", stage=name)
        stage_owner[name] = owner
    models = {
        spec.model_name: (ex, spec.name) for ex in (executors if pipelines else ()) for spec in ex.graph.llm_stages()
    }
    title = ", ".join(served) or ", ".join(stage_owner) or "grove-pipelines"
    document = openapi_document(
        [p.api for p in served.values()], list(stage_owner), title=f"grove-pipelines: {title}",
        bearer=settings.api_keys.enabled,
    )

    async def health(request: Request) -> Response:
        return _JSON({"status": "ok", "pipelines": list(served), "stages": list(stage_owner)})

    async def ready(request: Request) -> Response:
        if gate.draining:
            return _JSON({"status": "draining"}, status_code=503)
        return _JSON({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return _JSON(document)

    async def list_pipelines(request: Request) -> Response:
        return _JSON({"object": "list", "data": [p.listing() for p in served.values()]})

    async def run_pipeline(request: Request) -> Response:
        name = request.path_params["name"]
        served_pipeline = served.get(name)
        if served_pipeline is None:
            raise NotFoundError(f"no pipeline {name!r} on this server (it serves: {', '.join(served) or 'none'})")
        data = await read_json(request, limit)
        if not isinstance(data, dict):
            raise InvalidRequestError(f"the body must be a JSON object of {name!r}'s parameters")
        try:
            validated = served_pipeline.request_model.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid input for pipeline {name!r}: {format_errors(exc)}") from exc
        inputs = {field: getattr(validated, field) for field in served_pipeline.fields}
        request_id = _request_id(request)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER), limit_s=settings.timeout_s)
        RUN_SESSION.set(session_from(request.headers))  # the client's session for all the run's LLM calls
        executor = served_pipeline.executor
        started = time.perf_counter()
        metrics.in_flight.labels(name).inc()

        def finish(outcome: str) -> None:
            metrics.in_flight.labels(name).dec()
            metrics.requests.labels(name, outcome).inc()
            metrics.request_seconds.labels(name).observe(time.perf_counter() - started)

        if getattr(validated, "stream", False):
            return EventStream(  # type: ignore[return-value]
                lambda sink: executor.run(inputs, request_id=request_id, on_token=sink, deadline=deadline),
                request_id=request_id, where=f"pipeline {name!r}", on_finish=finish,
            )
        outcome = "500"
        try:
            result = await run_until_disconnect(
                request.receive, executor.run(inputs, request_id=request_id, deadline=deadline)
            )
            outcome = "200"
        except ClientGone:
            outcome = "cancelled"
            return Response(status_code=499)
        except PipelineRunError as exc:
            outcome = str(exc.status)
            return _error(exc, request_id, f"pipeline {name!r}")
        finally:
            finish(outcome)
        return _JSON(encode(result), headers={REQUEST_ID_HEADER: request_id})

    async def call_stage(request: Request) -> Response:
        name = request.path_params["name"]
        owner = stage_owner.get(name)
        if owner is None:
            raise NotFoundError(f"this server does not serve stage {name!r} (it serves: {', '.join(stage_owner) or 'none'})", stage=name)
        data = await read_json(request, limit)
        try:
            call = StageCall.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid call of stage {name!r}: {format_errors(exc)}", stage=name) from exc
        caller = request.headers.get(CALLER_HEADER, ENTRY)
        request_id = _request_id(request)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER), limit_s=settings.timeout_s)
        RUN_SESSION.set(session_from(request.headers))
        try:
            result = await run_until_disconnect(
                request.receive,
                owner.serve_stage(name, call.args, call.kwargs, caller=caller, request_id=request_id, deadline=deadline),
            )
        except ClientGone:
            return Response(status_code=499)
        return _JSON({"result": encode(result)}, headers={REQUEST_ID_HEADER: request_id})

    async def list_models(request: Request) -> Response:
        data = [
            {"id": model, "object": "model", "owned_by": "grove-pipelines", "pipeline": ex.name, "stage": stage}
            for model, (ex, stage) in models.items()
        ]
        return _JSON({"object": "list", "data": data})

    async def openai(request: Request) -> Response:
        data = await read_json(request, limit)
        if not isinstance(data, dict):
            raise InvalidRequestError("the body must be a JSON object (an OpenAI request)", status=400)
        model = data.get("model")
        if not isinstance(model, str) or model not in models:
            listed = ", ".join(models) or "none"
            shown = repr(model)[:80] if isinstance(model, str) else "missing"
            raise NotFoundError(f"no LLM stage serves model {shown} (models: {listed})")
        executor, stage = models[model]
        # Re-serialized, never the client's bytes; the KV connector's fields belong to the router.
        raw = json.dumps(strip_private(executor.llm.body(stage, data))).encode()
        request_id = _request_id(request)
        deadline = Deadline.from_header(request.headers.get(DEADLINE_HEADER), limit_s=settings.llm_timeout_s)
        headers = {REQUEST_ID_HEADER: request_id, DEADLINE_HEADER: deadline.header()}
        url = executor.llm.url(stage, request.url.path)
        status, content_type, chunks = await executor.upstream.proxy(
            url, raw, headers, stage=stage, timeout_s=deadline.remaining()
        )
        return StreamingResponse(
            chunks, status_code=status, media_type=content_type, headers={REQUEST_ID_HEADER: request_id}
        )

    routes = [
        Route(LIVENESS_PATH, _guard(health), methods=["GET"]),
        Route(SERVER_READINESS_PATH, _guard(ready), methods=["GET"]),
        Route("/metrics", _guard(metrics_endpoint), methods=["GET"]),
        Route("/openapi.json", _guard(openapi), methods=["GET"]),
    ]
    if served:
        routes += [
            Route("/v1/pipelines", _guard(list_pipelines), methods=["GET"]),
            Route("/v1/pipelines/{name}", _guard(run_pipeline), methods=["POST"]),
            Route("/v1/models", _guard(list_models), methods=["GET"]),
            Route("/v1/chat/completions", _guard(openai), methods=["POST"]),
            Route("/v1/completions", _guard(openai), methods=["POST"]),
        ]
    if stage_owner:
        routes.append(Route("/v1/stages/{name}", _guard(call_stage), methods=["POST"]))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        only = list(stage_owner) if stage_owner else None  # a stage pod makes only its own stages
        for executor in executors:  # before accepting requests: a pod is not ready until this is done
            for name in await executor.warm_up(only):
                log.warning("stage %r failed to initialise; its calls will report the error", name)
        if on_ready is not None:
            on_ready()
        yield
        for executor in executors:
            await executor.aclose()

    app = Starlette(
        routes=routes, lifespan=lifespan, middleware=[Middleware(GateMiddleware, gate=gate)],
        exception_handlers={HTTPException: _no_route},
    )
    app.state.gate = gate
    app.state.settings = settings
    return app
