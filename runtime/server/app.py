"""The pipeline server's app: one method per endpoint, served by ``runtime.http``'s listener.

Example::

    executor = Executor.from_loaded(load_pipeline("pipelines/agentic_rag.py"))
    app = PipelineApp([executor])                   # entry mode: /v1/pipelines/agentic-rag ...
    app = PipelineApp([executor], stages=["check"], pipelines=False)   # stage-server mode

Every error is ``{"error": {"message", "type", "code", "stage"?, "request_id"}}`` with its status; a
failing request never takes the server down, and what a stage or upstream said stays in the log
(``runtime.server.failures``). In front of every endpoint sits the gate (``runtime.server.gate``):
credentials and draining. Bodies are bounded by the listener before an endpoint runs (413), and a
client that disconnects cancels its endpoint, which cancels every stage and LLM call under it. A
caller's W3C ``traceparent`` makes the run (or the stage call) a child of the caller's span.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from grove_pipelines.graph import ENTRY
from grove_pipelines.spec.endpoints import LIVENESS_PATH, SERVER_READINESS_PATH
from grove_pipelines.validation_summary import validation_summary
from runtime.console.page import PAGE_HEADERS, PAGE_PATHS, STATE_PATH, WATERFALL_PATH, Console
from runtime.http import HttpError, ListenerLimits, Request, Response, Routes, StreamingResponse
from runtime.private_fields import strip_private
from runtime.router.session_headers import session_of
from runtime.server.body import parse_json
from runtime.server.call_protocol import (
    CALLER_HEADER,
    DEADLINE_HEADER,
    REQUEST_ID_HEADER,
    StageCall,
    request_id_from,
)
from runtime.server.deadline import Deadline
from runtime.server.errors import (
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PipelineRunError,
)
from runtime.server.executor import Executor
from runtime.server.failures import describe_failure
from runtime.server.gate import Gate
from runtime.server.llm_calls import RUN_SESSION
from runtime.server.metrics import CONTENT_TYPE, Metrics
from runtime.server.openai_relay import relay_events
from runtime.server.openapi import PipelineAPI, openapi_document
from runtime.server.pipeline_schema import input_model, request_schema, result_schema
from runtime.server.settings import ServerSettings
from runtime.server.sse import event_stream
from runtime.server.value_codec import encode, encode_json
from runtime.tracing import TRACEPARENT, Attribute, parse_traceparent, start_span, traced_stream
from runtime.tracing.context import current, reset_current, set_current

__all__ = ["PipelineApp", "build_app"]

log = logging.getLogger("grove_pipelines.server")

Answer = Response | StreamingResponse

_REQUEST_ID = REQUEST_ID_HEADER.lower()
_REQUEST_ID_BYTES = _REQUEST_ID.encode()
_DEADLINE = DEADLINE_HEADER.lower()
_CALLER = CALLER_HEADER.lower()
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"
_NO_CACHE = (b"cache-control", b"no-cache")
_KEEP_ALIVE_S = 75.0  # longer than the usual load balancer's idle timeout (60 s): it closes first
_ENCODE = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode
"""Made once: ``json.dumps`` with options other than its defaults builds an encoder per call."""


def _json(
    content: Any,
    status: int = 200,
    request_id: str | None = None,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> Response:
    """JSON with non-ASCII escaped: a lone surrogate a client sent (valid JSON, not UTF-8) cannot break it."""
    body = _ENCODE(content).encode("ascii")
    headers = extra if request_id is None else (*extra, (_REQUEST_ID_BYTES, request_id.encode("ascii")))
    return Response(status, body, _JSON, headers)


def _error(exc: BaseException, request_id: str, where: str) -> Response:
    """The JSON error for ``exc``, with the headers it asks for (``Retry-After``, ``WWW-Authenticate``)."""
    status, body = describe_failure(exc, request_id, where=where)
    return _json(body, status, request_id, exc.headers() if isinstance(exc, PipelineRunError) else ())


def _refused(error: PipelineRunError, request_id: str) -> Response:
    """The gate's answer: 503 with ``Retry-After`` while draining, 401 with ``WWW-Authenticate``."""
    return _json(error.body(request_id), error.status, request_id, error.headers())


class _Served:
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
            name=executor.name,
            description=executor.pipeline.spec.description,
            input_schema=in_schema,
            output_schema=out_schema,
            definitions={**in_defs, **out_defs},
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


class _Tracked:
    """One pipeline request in the metrics and the page's recent requests: from :meth:`start` until :meth:`finish`."""

    def __init__(self, metrics: Metrics, name: str, console: Console, request_id: str) -> None:
        self.metrics = metrics
        self.name = name
        self.console = console
        self.request_id = request_id
        self.started = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()
        self.metrics.running(self.name).value += 1
        self.console.recorder.begin(self.request_id, self.name)

    def finish(self, outcome: str) -> None:
        self.console.recorder.finish(self.request_id, outcome)
        self.metrics.running(self.name).value -= 1
        self.metrics.requests.labels(self.name, outcome).inc()
        self.metrics.request_seconds.labels(self.name).observe(time.perf_counter() - self.started)


class PipelineApp:
    """Pipeline endpoints (unless ``pipelines=False``) and ``/v1/stages/{name}`` for ``stages``.

    A :data:`runtime.http.Handler`: the listener calls it with each request. :meth:`start` makes the
    in-process class stages (a model load, say) before any request is accepted, then calls
    ``on_ready``. ``settings`` (default: the first executor's) give the limits and credentials.
    """

    def __init__(
        self,
        executors: Sequence[Executor],
        *,
        stages: Sequence[str] = (),
        pipelines: bool = True,
        metrics: Metrics | None = None,
        on_ready: Callable[[], None] | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        self.executors = list(executors)
        self.settings = settings or (executors[0].settings if executors else ServerSettings())
        self.gate = Gate(api_keys=self.settings.api_keys, stage_keys=self.settings.stage_keys)
        self.metrics = metrics or (executors[0].metrics if executors else Metrics())
        for executor in executors:
            executor.metrics = self.metrics  # one /metrics for every pipeline of this server
        self.on_ready = on_ready
        self.served = {ex.name: _Served(ex) for ex in executors} if pipelines else {}
        self.console = Console(
            [(ex.name, ex.graph) for ex in executors if ex.name in self.served], self.metrics
        )
        if self.served:
            self.metrics.on_stage_call = self.console.observe_stage_call
        self.stage_owner: dict[str, Executor] = {}
        for name in stages:
            owner = next((ex for ex in executors if name in ex.transports), None)
            if owner is None:
                known = ", ".join(sorted(n for ex in executors for n in ex.transports)) or "none"
                raise NotFoundError(
                    f"no Python stage {name!r} in the pipeline (its Python stages: {known})", stage=name
                )
            self.stage_owner[name] = owner
        self.models = {
            spec.model_name: (ex, spec)
            for ex in (executors if pipelines else ())
            for spec in ex.graph.llm_stages()
        }
        title = ", ".join(self.served) or ", ".join(self.stage_owner) or "grove-pipelines"
        self.document = openapi_document(
            [p.api for p in self.served.values()],
            list(self.stage_owner),
            title=f"grove-pipelines: {title}",
            bearer=self.settings.api_keys.enabled,
        )
        self.limits = ListenerLimits(
            max_body_bytes=self.settings.max_body_bytes,
            keepalive_timeout=_KEEP_ALIVE_S,
            drain_timeout=self.settings.drain_s,
        )
        self.routes = self._routes()
        self._closed = False

    def _routes(self) -> Routes:
        routes = Routes()
        routes.add("GET", LIVENESS_PATH, self.health)
        routes.add("GET", SERVER_READINESS_PATH, self.ready)
        routes.add("GET", "/metrics", self.metrics_text)
        routes.add("GET", "/openapi.json", self.openapi)
        if self.served:
            routes.add("GET", "/v1/pipelines", self.list_pipelines)
            routes.add("POST", "/v1/pipelines/{name}", self.run_pipeline)
            routes.add("GET", "/v1/models", self.list_models)
            routes.add("POST", "/v1/chat/completions", self.openai)
            routes.add("POST", "/v1/completions", self.openai)
            for path in PAGE_PATHS:
                routes.add("GET", path, self.page)
            routes.add("GET", STATE_PATH, self.console_state)
            routes.add("GET", WATERFALL_PATH, self.console_waterfall)
        if self.stage_owner:
            routes.add("POST", "/v1/stages/{name}", self.call_stage)
        return routes

    # -- lifetime --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Make the class stages this server runs (a pod is not ready until this is done), then ``on_ready``."""
        only = list(self.stage_owner) if self.stage_owner else None  # a stage pod makes only its own stages
        for executor in self.executors:
            for name in await executor.warm_up(only):
                log.warning("stage %r failed to initialise; its calls will report the error", name)
        if self.on_ready is not None:
            self.on_ready()

    async def aclose(self) -> None:
        """Release the executors' connections and stages (once)."""
        if self._closed:
            return
        self._closed = True
        for executor in self.executors:
            await executor.aclose()

    # -- every request ---------------------------------------------------------------------------
    async def __call__(self, request: Request) -> Answer:
        """The gate, then the endpoint; every failure becomes a JSON error (the detail goes to the log)."""
        request_id = request.headers[_REQUEST_ID] = request_id_from(request.headers.get(_REQUEST_ID))
        refused = self.gate.refusal(request.path, request.headers)
        if refused is not None:
            return _refused(refused, request_id)
        # Every request sets its own trace and session from its own headers (None when absent): a
        # connection's requests share one task and so one context, and nothing of an earlier request
        # may remain. Not reset on return: a streamed answer still runs under them. A variable that
        # holds the value already is not set again (most requests carry neither, as the last one did).
        traceparent = request.headers.get(TRACEPARENT)
        trace = None if traceparent is None else parse_traceparent(traceparent)
        if trace is not None or current() is not None:
            set_current(trace)
        session = session_of(request.headers)
        if session is not None or RUN_SESSION.get() is not None:
            RUN_SESSION.set(session)
        try:
            return await self.routes.find(request)(request)
        except HttpError as exc:  # no such route or method: the same JSON shape as every other error
            message = f"no route for {request.method[:16]} {request.path[:200]}"
            body = {
                "error": {"message": message, "type": exc.type, "code": exc.status, "request_id": request_id}
            }
            return _json(body, exc.status, request_id)
        except Exception as exc:  # noqa: BLE001  (every failure becomes a JSON error; the log has it all)
            return _error(exc, request_id, request.path[:200])

    def refusal(self, status: int, message: str, type_: str, headers: dict[str, str]) -> Response:
        """What the listener answers a request it refuses itself (413 over ``GP_MAX_BODY_BYTES``, 431, 408...)."""
        request_id = request_id_from(headers.get(_REQUEST_ID))
        if status == 413:
            return _json(PayloadTooLargeError(self.settings.max_body_bytes).body(request_id), 413, request_id)
        body = {"error": {"message": message, "type": type_, "code": status, "request_id": request_id}}
        return _json(body, status, request_id)

    # -- endpoints -------------------------------------------------------------------------------
    async def health(self, request: Request) -> Answer:
        return _json({"status": "ok", "pipelines": list(self.served), "stages": list(self.stage_owner)})

    async def ready(self, request: Request) -> Answer:
        if self.gate.draining:
            return _json({"status": "draining"}, 503)
        return _json({"status": "ready"})

    async def metrics_text(self, request: Request) -> Answer:
        return Response(200, self.metrics.render(), CONTENT_TYPE.encode())

    async def openapi(self, request: Request) -> Answer:
        return _json(self.document)

    async def list_pipelines(self, request: Request) -> Answer:
        return _json({"object": "list", "data": [p.listing() for p in self.served.values()]})

    async def list_models(self, request: Request) -> Answer:
        data = [
            {
                "id": model,
                "object": "model",
                "owned_by": "grove-pipelines",
                "pipeline": ex.name,
                "stage": spec.name,
            }
            for model, (ex, spec) in self.models.items()
        ]
        return _json({"object": "list", "data": data})

    async def run_pipeline(self, request: Request) -> Answer:
        name = request.params["name"]
        served = self.served.get(name)
        if served is None:
            shown = repr(name[:200])
            raise NotFoundError(
                f"no pipeline {shown} on this server (it serves: {', '.join(self.served) or 'none'})"
            )
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise InvalidRequestError(f"the body must be a JSON object of {name!r}'s parameters")
        try:
            validated = served.request_model.model_validate(data)
        except ValidationError as exc:
            problems = validation_summary(exc, whole="body")
            raise InvalidRequestError(f"invalid input for pipeline {name!r}: {problems}") from exc
        inputs = {field: getattr(validated, field) for field in served.fields}
        request_id = request.headers[_REQUEST_ID]
        deadline = Deadline.from_header(request.headers.get(_DEADLINE), limit_s=self.settings.timeout_s)
        executor = served.executor
        tracked = _Tracked(self.metrics, name, self.console, request_id)
        if getattr(validated, "stream", False):
            events = event_stream(
                lambda sink: executor.run(inputs, request_id=request_id, on_token=sink, deadline=deadline),
                request_id=request_id,
                where=f"pipeline {name!r}",
                on_start=tracked.start,
                on_finish=tracked.finish,
            )
            return StreamingResponse(events, 200, _SSE, (_NO_CACHE, (_REQUEST_ID_BYTES, request_id.encode())))
        tracked.start()
        outcome = "cancelled"  # unless it ends otherwise: the client went away and the run was cancelled
        try:
            result = await executor.run(inputs, request_id=request_id, deadline=deadline)
            outcome = "200"
        except PipelineRunError as exc:
            outcome = str(exc.status)
            return _error(exc, request_id, f"pipeline {name!r}")
        except Exception:
            outcome = "500"
            raise
        finally:
            tracked.finish(outcome)
        return _json(encode(result), request_id=request_id)

    async def page(self, request: Request) -> Answer:
        """The page's static files (its code; the data comes from the two endpoints below, behind the key)."""
        body, content_type = self.console.files[request.path]
        return Response(200, body, content_type, PAGE_HEADERS)

    async def console_state(self, request: Request) -> Answer:
        return _json(self.console.state())

    async def console_waterfall(self, request: Request) -> Answer:
        request_id = request.params["request_id"]
        waterfall = self.console.waterfall(request_id)
        if waterfall is None:
            raise NotFoundError(f"no recent request {request_id[:128]!r} (the page keeps the last ones only)")
        return _json(waterfall.model_dump())

    async def call_stage(self, request: Request) -> Answer:
        name = request.params["name"]
        owner = self.stage_owner.get(name)
        if owner is None:
            served = ", ".join(self.stage_owner) or "none"
            raise NotFoundError(
                f"this server does not serve stage {name[:200]!r} (it serves: {served})", stage=name[:200]
            )
        data = parse_json(request.body)
        try:
            args, kwargs = StageCall.arguments(data)
        except ValidationError as exc:
            problems = validation_summary(exc, whole="body")
            raise InvalidRequestError(f"invalid call of stage {name!r}: {problems}", stage=name) from exc
        caller = request.headers.get(_CALLER, ENTRY)
        request_id = request.headers[_REQUEST_ID]
        deadline = Deadline.from_header(request.headers.get(_DEADLINE), limit_s=self.settings.timeout_s)
        result = await owner.serve_stage(
            name, args, kwargs, caller=caller, request_id=request_id, deadline=deadline
        )
        # the caller's client reads it (UTF-8 JSON); built in one pass, as the call's body was
        return Response(
            200, encode_json({"result": result}), _JSON, ((_REQUEST_ID_BYTES, request_id.encode()),)
        )

    async def openai(self, request: Request) -> Answer:
        data = parse_json(request.body)
        if not isinstance(data, dict):
            raise InvalidRequestError("the body must be a JSON object (an OpenAI request)", status=400)
        model = data.get("model")
        if not isinstance(model, str) or model not in self.models:
            listed = ", ".join(self.models) or "none"
            shown = repr(model)[:80] if isinstance(model, str) else "missing"
            raise NotFoundError(f"no LLM stage serves model {shown} (models: {listed})")
        executor, spec = self.models[model]
        stage = spec.name
        # Re-serialized, never the client's bytes; the KV connector's fields belong to the router.
        raw = json.dumps(strip_private(executor.llm.body(stage, data))).encode()
        request_id = request.headers[_REQUEST_ID]
        # one LLM call's bound, as for the body's own calls
        limit_s = spec.timeout_s or self.settings.llm_timeout_s
        deadline = Deadline.from_header(request.headers.get(_DEADLINE), limit_s=limit_s)
        headers = {REQUEST_ID_HEADER: request_id, DEADLINE_HEADER: deadline.header()}
        url = executor.llm.url(stage, request.path)
        streamed = bool(data.get("stream"))
        attributes: dict[str, Attribute] = {
            "grove.llm": stage,
            "grove.llm.path": request.path,
            "grove.request_id": request_id,
        }
        span = start_span(f"llm.proxy {stage}", attributes, kind="server")  # ends with the relayed answer
        token = set_current(span)  # the router continues this span's trace
        try:
            status, content_type, chunks = await executor.client.proxy(
                url, raw, headers, stage=stage, timeout_s=deadline.remaining(), whole=not streamed
            )
        except BaseException as exc:
            span.fail(exc.type if isinstance(exc, PipelineRunError) else type(exc).__name__)
            span.end()
            raise
        finally:
            reset_current(token)
        span.set("http.response.status_code", status)
        relayed, answer_headers = traced_stream(span, chunks), ((_REQUEST_ID_BYTES, request_id.encode()),)
        if not streamed:  # read whole first (``whole``): one cut short is a clean error, not a short body
            whole = b"".join([chunk async for chunk in relayed])  # one piece
            return Response(status, whole, content_type.encode("latin-1"), answer_headers)
        if content_type.startswith("text/event-stream"):
            relayed = relay_events(relayed, request_id)
        return StreamingResponse(relayed, status, content_type.encode("latin-1"), answer_headers)


def build_app(executors: Sequence[Executor], **options: Any) -> PipelineApp:
    """The app for ``executors`` (see :class:`PipelineApp` for ``stages``, ``pipelines``, ``on_ready``...)."""
    return PipelineApp(executors, **options)
