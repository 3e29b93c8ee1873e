"""The pipeline server's HTTP app (Starlette): pipelines, stage calls, OpenAI pass-through, health, metrics.

Example::

    executor = Executor.from_loaded(load_pipeline("pipelines/agentic_rag.py"))
    app = build_app([executor])                   # entry mode: /v1/pipelines/agentic-rag ...
    app = build_app([executor], stages=["check"], pipelines=False)   # stage-server mode

Every error is ``{"error": {"message", "type", "code", "stage"?}}`` with its status; a failing request
never takes the server down.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from grove_pipelines.graph import ENTRY
from runtime.router.session_headers import session_from
from runtime.server.errors import InvalidRequestError, NotFoundError, PipelineRunError
from runtime.server.executor import Executor
from runtime.server.llm_calls import RUN_SESSION
from runtime.server.metrics import CONTENT_TYPE, Metrics
from runtime.server.openapi import PipelineAPI, openapi_document
from runtime.server.schema import format_errors, input_model, request_schema, result_schema
from runtime.server.sse import ClientGone, EventStream, run_until_disconnect
from runtime.server.wire import CALLER_HEADER, REQUEST_ID_HEADER, StageCall, encode

__all__ = ["build_app"]

log = logging.getLogger("grove_pipelines.server")
Endpoint = Callable[[Request], Awaitable[Response]]


def _error(exc: PipelineRunError, request_id: str | None = None) -> JSONResponse:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _guard(endpoint: Endpoint) -> Endpoint:
    """Turn every failure of ``endpoint`` into a JSON error; unexpected ones are logged as 500s."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except PipelineRunError as exc:
            return _error(exc, request.headers.get(REQUEST_ID_HEADER))
        except Exception as exc:
            log.exception("internal error serving %s", request.url.path)
            body = {"error": {"message": f"internal error: {type(exc).__name__}: {exc}", "type": "internal_error", "code": 500}}
            return JSONResponse(body, status_code=500)

    return wrapped


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}", status=400) from exc


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
) -> Starlette:
    """The ASGI app: pipeline endpoints (unless ``pipelines=False``) and ``/v1/stages/{name}`` for ``stages``.

    At startup, in-process class stages are instantiated (a model load, say) before any request is
    accepted; ``on_ready`` is called after that.
    """
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
    document = openapi_document([p.api for p in served.values()], list(stage_owner), title=f"grove-pipelines: {title}")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "pipelines": list(served), "stages": list(stage_owner)})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def list_pipelines(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [p.listing() for p in served.values()]})

    async def run_pipeline(request: Request) -> Response:
        name = request.path_params["name"]
        served_pipeline = served.get(name)
        if served_pipeline is None:
            raise NotFoundError(f"no pipeline {name!r} on this server (it serves: {', '.join(served) or 'none'})")
        data = await _json_body(request)
        if not isinstance(data, dict):
            raise InvalidRequestError(f"the body must be a JSON object of {name!r}'s parameters")
        try:
            validated = served_pipeline.request_model.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid input for pipeline {name!r}: {format_errors(exc)}") from exc
        inputs = {field: getattr(validated, field) for field in served_pipeline.fields}
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
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
                lambda sink: executor.run(inputs, request_id=request_id, on_token=sink),
                headers={REQUEST_ID_HEADER: request_id}, on_finish=finish,
            )
        outcome = "500"
        try:
            result = await run_until_disconnect(request.receive, executor.run(inputs, request_id=request_id))
            outcome = "200"
        except ClientGone:
            outcome = "cancelled"
            return Response(status_code=499)
        except PipelineRunError as exc:
            outcome = str(exc.status)
            return _error(exc, request_id)
        finally:
            finish(outcome)
        return JSONResponse(encode(result), headers={REQUEST_ID_HEADER: request_id})

    async def call_stage(request: Request) -> Response:
        name = request.path_params["name"]
        owner = stage_owner.get(name)
        if owner is None:
            raise NotFoundError(f"this server does not serve stage {name!r} (it serves: {', '.join(stage_owner) or 'none'})", stage=name)
        data = await _json_body(request)
        try:
            call = StageCall.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid call of stage {name!r}: {format_errors(exc)}", stage=name) from exc
        caller = request.headers.get(CALLER_HEADER, ENTRY)
        request_id = request.headers.get(REQUEST_ID_HEADER)
        RUN_SESSION.set(session_from(request.headers))
        try:
            result = await run_until_disconnect(
                request.receive, owner.serve_stage(name, call.args, call.kwargs, caller=caller, request_id=request_id)
            )
        except ClientGone:
            return Response(status_code=499)
        return JSONResponse({"result": encode(result)})

    async def list_models(request: Request) -> Response:
        data = [
            {"id": model, "object": "model", "owned_by": "grove-pipelines", "pipeline": ex.name, "stage": stage}
            for model, (ex, stage) in models.items()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def openai(request: Request) -> Response:
        raw = await request.body()
        data = await _json_body(request)
        model = data.get("model") if isinstance(data, dict) else None
        if model not in models:
            listed = ", ".join(models) or "none"
            raise NotFoundError(f"no LLM stage serves model {model!r} (models: {listed})")
        executor, stage = models[model]
        if stage in executor.llm.models:  # the workers serve it under another name
            raw = json.dumps(executor.llm.body(stage, data)).encode()
        headers = {REQUEST_ID_HEADER: request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex}
        url = executor.llm.url(stage, request.url.path)
        status, content_type, chunks = await executor.upstream.proxy(url, raw, headers)
        return StreamingResponse(chunks, status_code=status, media_type=content_type)

    routes = [
        Route("/health", _guard(health), methods=["GET"]),
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

    return Starlette(routes=routes, lifespan=lifespan)
