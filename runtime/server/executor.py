"""The executor: runs a pipeline body per request as plain async Python, with the graph enforced.

Each request gets a ``RequestInvoker`` (bound through ``grove_pipelines.sdk.invoke``), so every
``await stage(...)`` and ``await llm.chat(...)`` in the body, and in stages it calls, comes here. The
node that is running (the pipeline body is ``ENTRY``, a stage's code is its name) is known, so a
call that is not an edge of the graph fails naming both ends: the request's own node is its
invoker's (``node``), and a stage call sets a context variable for its callee's code. Around each call: the
loop guard (``max_iterations`` calls per stage per request), the stage's ``timeout_s`` per attempt
(the server's default when it sets none), cut to what is left of the request's deadline, its
``retries``, and metrics. Cancelling the request's task cancels every in-flight call under it.

The request's deadline is its invoker's too (``runtime.server.deadline.current_deadline`` reads it), so
the HTTP calls under a request (stage servers, routers) send it on as ``X-Request-Deadline``
whatever transport carries them. One context variable set per request (the invoker), not three.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.loader import LoadedPipeline
from grove_pipelines.sdk import LLM, Pipeline, Stage
from grove_pipelines.sdk.invoke import current_invoker, reset_invoker, set_invoker
from grove_pipelines.spec.stage_urls import LLM_URL_PREFIX, STAGE_URL_PREFIX
from runtime.router.request_ids import new_request_id
from runtime.server.call_protocol import urls_from_env
from runtime.server.deadline import Deadline
from runtime.server.errors import (
    InvalidRequestError,
    LoopLimitError,
    NotFoundError,
    PipelineRunError,
    StageFailedError,
    StageTimeoutError,
    StageUpstreamError,
    UndeclaredCallError,
)
from runtime.server.llm_calls import LLMCalls, TokenSink
from runtime.server.metrics import Metrics
from runtime.server.settings import ServerSettings
from runtime.server.stage_client import StageClient
from runtime.server.time_limit import TimeLimit
from runtime.server.transports import HTTPStageTransport, InProcessTransport, StageTransport
from runtime.server.value_codec import ArgBinder
from runtime.tracing import Attribute, NonRecordingSpan, Span, start_span, traced_stream
from runtime.tracing import settings as tracing_settings

__all__ = ["Executor", "RequestInvoker", "TokenSink", "current_caller"]

_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("grove_pipelines_caller", default=None)
"""The stage whose code a stage call is running (set for the callee); None: the request's own node."""
_UNRECORDED = NonRecordingSpan(None)
"""The span of a call while this process records nothing: never entered (what it fails or sets is dropped)."""
_RETRYABLE = (StageFailedError, StageTimeoutError, StageUpstreamError)


def current_caller() -> str:
    """The node whose code is running: ``ENTRY`` for the pipeline body, else a stage name."""
    node: str = getattr(current_invoker(), "node", ENTRY)
    return _CALLER.get() or node


def _own_node() -> contextvars.Token[str | None] | None:
    """A request's code runs as its invoker's node: a stage call's callee, if one encloses it, is cleared
    (rarely: a token to reset it by; usually none, and no context variable is set)."""
    return None if _CALLER.get() is None else _CALLER.set(None)


class Executor:
    """Everything a server needs to run one pipeline: graph, stage objects, transports, LLM endpoints.

    ``stage_urls`` send a Python stage to its stage server (else it runs here), ``transports`` give
    any other way (Ray handles); ``llm_urls`` are the LLM stages' routers and ``llm_models`` rename a
    stage's model when its workers serve it under another name. One ``StageClient`` (one pool) is shared
    by every HTTP call of every request.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        graph: PipelineGraph,
        stages: Mapping[str, Stage | LLM],
        *,
        stage_urls: Mapping[str, str] | None = None,
        llm_urls: Mapping[str, str] | None = None,
        llm_models: Mapping[str, str] | None = None,
        transports: Mapping[str, StageTransport] | None = None,
        client: StageClient | None = None,
        metrics: Metrics | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.graph = graph
        self.edges = frozenset(graph.edges())
        """The graph's ``(caller, callee)`` pairs: every call is checked against them (a set probe, not networkx's)."""
        self.stages = dict(stages)
        self.settings = settings or ServerSettings()
        self.client = client or StageClient()
        self.metrics = metrics or Metrics()
        self.max_iterations = pipeline.spec.max_iterations
        self.llm_urls = {k: v.rstrip("/") for k, v in (llm_urls or {}).items()}
        self.stage_urls = dict(stage_urls or {})
        given = dict(transports or {})
        local = InProcessTransport()
        self.transports: dict[str, StageTransport] = {}
        for spec in graph.python_stages():
            url = self.stage_urls.get(spec.name)
            self.transports[spec.name] = given.get(spec.name) or (
                HTTPStageTransport(url, self.client, token=self.settings.stage_token) if url else local
            )
        self.llm = LLMCalls(self.client, self.llm_urls, llm_models)
        self._served: dict[str, tuple[Stage, ArgBinder]] = {}  # a served stage and its arguments' binder
        self.call_terms: dict[Stage, tuple[str, float, int, StageTransport]] = {}
        """A called stage's name, timeout (its own, else the settings'), retries and transport: read once
        (spec and settings are frozen pydantic models, whose every attribute read goes through a hook)."""

    @classmethod
    def from_loaded(
        cls, loaded: LoadedPipeline, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> Executor:
        """An executor for a loaded pipeline; endpoints default to ``GP_*_URL_*``, limits and credentials to ``GP_*``.

        The graph (``graph=`` if the caller built it already, else the loaded pipeline's) holds the
        stage objects its one scan found: the server does not scan user code again.
        """
        given: PipelineGraph | None = options.pop("graph", None)
        graph = given or loaded.graph()
        names = [s.name for s in graph.stages()]
        if "settings" not in options:
            options["settings"] = ServerSettings.from_env(environ)
        options.setdefault("stage_urls", urls_from_env(STAGE_URL_PREFIX, names, environ))
        options.setdefault("llm_urls", urls_from_env(LLM_URL_PREFIX, names, environ))
        return cls(loaded.pipeline, graph, graph.objects, **options)

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.pipeline.name

    def invoker(
        self,
        *,
        request_id: str | None = None,
        on_token: TokenSink | None = None,
        deadline: Deadline | None = None,
        node: str = ENTRY,
    ) -> RequestInvoker:
        """A fresh invoker for one request (its own loop-guard counts and token stream), whose code runs
        as ``node`` (the pipeline body, or the stage a stage server runs) within ``deadline`` (default:
        the server's ``timeout_s`` from now)."""
        return RequestInvoker(
            self,
            request_id=request_id or new_request_id(),
            on_token=on_token,
            deadline=deadline or Deadline.within(self.settings.timeout_s),
            node=node,
        )

    async def run(
        self,
        inputs: Mapping[str, Any],
        *,
        request_id: str | None = None,
        on_token: TokenSink | None = None,
        deadline: Deadline | None = None,
    ) -> Any:
        """Run the pipeline body once with ``inputs`` as keyword arguments, within ``deadline``.

        Without a deadline the request gets the server's ``timeout_s`` from now.
        """
        deadline = deadline or Deadline.within(self.settings.timeout_s)
        invoker = self.invoker(request_id=request_id, on_token=on_token, deadline=deadline)
        name = self.pipeline.name
        attributes: dict[str, Attribute] | None = None
        if tracing_settings().records:
            attributes = {"grove.pipeline": name, "grove.request_id": invoker.request_id}
        span = start_span(f"pipeline {name}", attributes, kind="server")
        with span:
            token, bound = _own_node(), set_invoker(invoker)
            scope = TimeLimit(deadline.bound(None))
            try:
                with scope:
                    return await self.pipeline.func(**inputs)
            except PipelineRunError as exc:
                span.fail(exc.type)
                raise
            except Exception as exc:
                if scope.expired():
                    raise StageTimeoutError(f"pipeline {name!r} did not finish within its deadline") from exc
                raise PipelineRunError(f"pipeline {name!r} failed: {type(exc).__name__}: {exc}") from exc
            finally:
                if token is not None:
                    _CALLER.reset(token)
                reset_invoker(bound)

    def python_stage(self, name: str) -> Stage:
        """The Python stage ``name`` of this pipeline."""
        obj = self.stages.get(name)
        if not isinstance(obj, Stage):
            raise NotFoundError(f"pipeline {self.name!r} has no Python stage {name!r}", stage=name)
        return obj

    async def serve_stage(
        self,
        name: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        caller: str,
        request_id: str | None = None,
        deadline: Deadline | None = None,
    ) -> Any:
        """What a stage server does with one call: check the edge, validate the arguments, run the code here.

        ``deadline`` is the caller's (from ``X-Request-Deadline``); nested calls are bounded by it.
        """
        known = self._served.get(name)
        if known is None:
            stage = self.python_stage(name)
            known = self._served[name] = (stage, ArgBinder(stage.callable(), skip_self=stage.is_class))
        stage, binder = known
        if (caller, name) not in self.edges:
            raise UndeclaredCallError(caller, name, declare=self.graph.how_to_declare(caller, name))
        try:
            call_args, call_kwargs = binder.bind(args, kwargs)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"stage {name!r}: bad arguments: {exc}", stage=name) from exc
        invoker = self.invoker(request_id=request_id, deadline=deadline, node=name)
        served = self._run_served(stage, call_args, call_kwargs, invoker)
        if not tracing_settings().records:  # as for a stage call: no span that nothing keeps
            return await served
        attributes: dict[str, Attribute] = {
            "grove.stage": name,
            "grove.caller": caller,
            "grove.request_id": invoker.request_id,
        }
        with start_span(f"stage.serve {name}", attributes, kind="server"):
            return await served

    @staticmethod
    async def _run_served(
        stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any], invoker: RequestInvoker
    ) -> Any:
        """A served call's code, run here as its stage's node under ``invoker``, within its deadline."""
        name = invoker.node
        token, bound = _own_node(), set_invoker(invoker)
        scope = TimeLimit(invoker.deadline.bound(None))
        try:
            with scope:
                return await stage.run_local(*args, **kwargs)
        except PipelineRunError:
            raise
        except Exception as exc:
            if scope.expired():
                raise StageTimeoutError(
                    f"stage {name!r} did not finish within the request's deadline", stage=name
                ) from exc
            raise StageFailedError(f"stage {name!r} failed: {type(exc).__name__}: {exc}", stage=name) from exc
        finally:
            if token is not None:
                _CALLER.reset(token)
            reset_invoker(bound)

    def cold_class_stages(self, only: Iterable[str] | None = None) -> list[Stage]:
        """In-process class stages (of ``only``, if given) whose per-process instance is not made yet."""
        wanted = None if only is None else set(only)
        found: list[Stage] = []
        for name, transport in self.transports.items():
            stage = self.stages.get(name)
            if (wanted is not None and name not in wanted) or not isinstance(stage, Stage):
                continue
            if isinstance(transport, InProcessTransport) and not stage.instantiated:
                found.append(stage)
        return found

    async def warm_up(self, only: Iterable[str] | None = None) -> list[str]:
        """Make the in-process class stages' instances now (often a model load), not in the first request.

        Returns the stages that failed to initialise; their first call reports the error instead.
        """
        failed = []
        for stage in self.cold_class_stages(only):
            try:
                await asyncio.to_thread(stage.instantiate)
            except Exception:  # noqa: BLE001  (reported by the first call, with the stage's name)
                failed.append(stage.name)
        return failed

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self.client.aclose()


class RequestInvoker:
    """The ``Invoker`` of one request: edge checks, loop guard, timeouts, retries, then a transport.

    ``node`` is the graph node the request's own code runs as; ``deadline`` bounds every call under it.
    """

    __slots__ = ("_calls", "_streamed", "deadline", "executor", "node", "on_token", "request_id")

    def __init__(
        self,
        executor: Executor,
        *,
        request_id: str,
        on_token: TokenSink | None,
        deadline: Deadline,
        node: str = ENTRY,
    ) -> None:
        self.executor = executor
        self.request_id = request_id
        self.on_token = on_token
        self.deadline = deadline
        self.node = node
        # a plain dict: a Counter costs more to make (about 3 us) than the rest of the bookkeeping
        self._calls: dict[str, int] = {}
        self._streamed = 0

    def _sink(self, caller: str) -> TokenSink | None:
        """Token events of an LLM call the body makes itself, numbered per call (a retried answer restarts)."""
        on_token = self.on_token
        if on_token is None or caller != ENTRY:
            return None
        self._streamed += 1
        call = self._streamed
        return lambda event: on_token({**event, "call": call})

    def _admit(self, callee: str) -> str:
        caller = _CALLER.get() or self.node
        graph = self.executor.graph
        if (caller, callee) not in self.executor.edges:
            raise UndeclaredCallError(caller, callee, declare=graph.how_to_declare(caller, callee))
        calls = self._calls[callee] = self._calls.get(callee, 0) + 1
        if calls > self.executor.max_iterations:
            raise LoopLimitError(callee, self.executor.max_iterations)
        return caller

    async def call_stage(self, stage: Stage, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        terms = self.executor.call_terms.get(stage)
        if terms is None:
            terms = self._terms(stage)
        name, timeout_s, retries, transport = terms
        caller = self._admit(name)
        rid = self.request_id
        # the inputs' sizes are measured only for a span that goes somewhere
        recorded = tracing_settings().records
        span = (
            start_span(f"stage {name}", _call_attributes("stage", name, caller, args, kwargs))
            if recorded
            else _UNRECORDED
        )
        guarded = self._guarded(
            name,
            timeout_s,
            retries,
            caller,
            lambda: transport.call(stage, args, kwargs, caller=caller, request_id=rid),
            span,
            None if isinstance(transport, HTTPStageTransport) else name,  # its code runs on its server
        )
        if not recorded:  # a span nothing keeps would only carry the caller's context on: none is entered
            return await guarded
        with span:
            return await guarded

    def _terms(self, stage: Stage) -> tuple[str, float, int, StageTransport]:
        """What :attr:`Executor.call_terms` keeps of ``stage`` (kept once it is known to be this pipeline's)."""
        spec = stage.spec
        name = spec.name
        transport = self.executor.transports.get(name)
        if transport is None:
            self._admit(name)  # a stage of no edge fails as one
            raise NotFoundError(f"stage {name!r} is not part of pipeline {self.executor.name!r}")
        terms = (name, spec.timeout_s or self.executor.settings.stage_timeout_s, spec.retries, transport)
        self.executor.call_terms[stage] = terms
        return terms

    async def call_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> dict[str, Any]:
        caller = self._admit(llm.name)
        sink = self._sink(caller)
        timeout_s = llm.spec.timeout_s or self.executor.settings.llm_timeout_s
        attributes = _call_attributes("llm", llm.name, caller, (), {})
        attributes["grove.llm.path"] = path
        with start_span(f"llm {llm.name}", attributes) as span:
            result: dict[str, Any] = await self._guarded(
                llm.name,
                timeout_s,
                llm.spec.retries,
                caller,
                lambda: self.executor.llm.call(llm.name, path, body, self.request_id, sink),
                span,
                None,
            )
            _usage_attributes(span, result)
            return result

    def stream_llm(self, llm: LLM, path: str, body: dict[str, Any]) -> Any:
        caller = self._admit(llm.name)
        sink = self._sink(caller)
        timeout_s = llm.spec.timeout_s or self.executor.settings.llm_timeout_s
        attributes = _call_attributes("llm", llm.name, caller, (), {})
        attributes["grove.llm.path"], attributes["grove.llm.stream"] = path, True
        span = start_span(f"llm {llm.name}", attributes)  # ends with the stream (usage: from its last chunk)
        chunks = self._guarded_stream(
            llm.name,
            timeout_s,
            llm.spec.retries,
            caller,
            lambda: self.executor.llm.stream(llm.name, path, body, self.request_id, sink),
            span,
        )
        return traced_stream(span, chunks, lambda chunk: _usage_attributes(span, chunk))

    async def _guarded_stream(
        self,
        name: str,
        timeout_s: float,
        retries: int,
        caller: str,
        attempt: Callable[[], AsyncIterator[dict[str, Any]]],
        span: Span,
    ) -> AsyncIterator[dict[str, Any]]:
        """``_guarded`` for a call the body iterates: each attempt's whole stream within ``timeout_s`` (and the
        request's deadline), counted when it ends. A failure before the first chunk is retried as an awaited
        call's is; one after it is not (the body has acted on part of the answer). A body that stops reading
        early ended a call that did not fail."""
        metrics = self.executor.metrics
        started = time.perf_counter()
        deadline = self.deadline
        loop = asyncio.get_running_loop()
        outcome = "ok"
        try:
            for number in range(retries + 1):
                bound = deadline.bound(timeout_s)
                end = loop.time() + bound  # one deadline for the whole stream
                scope = TimeLimit.until(end)
                chunks, delivered = attempt(), False
                try:
                    while True:
                        try:
                            with scope:  # the body's own time between chunks counts too
                                chunk = await anext(chunks)
                        except StopAsyncIteration:
                            return
                        delivered = True
                        yield chunk
                        scope = TimeLimit.until(end)
                except Exception as exc:
                    error = _as_stage_error(
                        exc, name, timeout_s if bound >= timeout_s else None, scope.expired()
                    )
                    if not delivered and self._retries(error, name, caller, number, retries, deadline, span):
                        continue
                    outcome = "timeout" if isinstance(error, StageTimeoutError) else "error"
                    if error is exc:
                        raise
                    raise error from exc
                finally:
                    aclose = getattr(chunks, "aclose", None)
                    if aclose is not None:
                        await aclose()
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            metrics.stage_call(caller, name, outcome, time.perf_counter() - started)

    async def _guarded(
        self,
        name: str,
        timeout_s: float,
        retries: int,
        caller: str,
        attempt: Callable[[], Awaitable[Any]],
        span: Span,
        node: str | None,
    ) -> Any:
        """``attempt`` (retried as the stage's policy says) within its timeout, counted; ``node``: the callee
        whose code the attempt runs in this process (None: it runs elsewhere, an HTTP call)."""
        metrics = self.executor.metrics
        started = time.perf_counter()
        deadline = self.deadline
        for number in range(retries + 1):
            token = None if node is None else _CALLER.set(node)
            bound = deadline.bound(timeout_s)
            scope = TimeLimit(bound)
            try:
                with scope:
                    result = await attempt()
            except asyncio.CancelledError:
                metrics.stage_call(caller, name, "cancelled", time.perf_counter() - started)
                raise
            except Exception as exc:
                error = _as_stage_error(exc, name, timeout_s if bound >= timeout_s else None, scope.expired())
                if self._retries(error, name, caller, number, retries, deadline, span):
                    continue
                outcome = "timeout" if isinstance(error, StageTimeoutError) else "error"
                metrics.stage_call(caller, name, outcome, time.perf_counter() - started)
                span.fail(error.type)
                if error is exc:
                    raise
                raise error from exc
            finally:
                if token is not None:
                    _CALLER.reset(token)
            metrics.stage_call(caller, name, "ok", time.perf_counter() - started)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _retries(
        self,
        error: PipelineRunError,
        name: str,
        caller: str,
        number: int,
        retries: int,
        deadline: Deadline,
        span: Span,
    ) -> bool:
        """Whether attempt ``number``'s ``error`` is tried again (the callee's own failure, retries and time left)."""
        if not (
            isinstance(error, _RETRYABLE)
            and error.stage == name
            and number < retries
            and deadline.remaining() > 0
        ):
            return False
        self.executor.metrics.stage_call(caller, name, "retry")
        span.set("grove.retries", number + 1)
        span.set("grove.last_retry_error", error.type)
        return True


def _usage_attributes(span: Span, answer: Any) -> None:
    """An OpenAI answer's (or final stream chunk's) token counts on ``span``."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens"):
            if isinstance(usage.get(key), int):
                span.set(f"gen_ai.usage.{key}", usage[key])


def _call_attributes(
    what: str, name: str, caller: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Attribute]:
    """A call span's attributes: callee, caller and the inputs' sizes (``len`` where there is one)."""
    attributes: dict[str, Attribute] = {f"grove.{what}": name, "grove.caller": caller}
    sizes = [
        len(v) if isinstance(v, (str, bytes, list, tuple, dict)) else -1 for v in (*args, *kwargs.values())
    ]
    if sizes:
        attributes["grove.inputs"] = len(sizes)
        attributes["grove.input_sizes"] = ",".join(map(str, sizes))[:256]
    return attributes


def _as_stage_error(exc: Exception, name: str, timeout_s: float | None, expired: bool) -> PipelineRunError:
    """``timeout_s`` is the stage's own timeout when that was the limit, None when the request's deadline was."""
    if expired:
        limit = "the request's deadline" if timeout_s is None else f"its timeout of {timeout_s:g} s"
        return StageTimeoutError(f"stage {name!r} did not finish within {limit}", stage=name)
    if isinstance(exc, PipelineRunError):
        return exc
    return StageFailedError(f"stage {name!r} failed: {type(exc).__name__}: {exc}", stage=name)
