"""``@pipeline``: the entry point; its body is plain async Python that calls stages."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from grove_pipelines.errors import DefinitionError
from grove_pipelines.sdk.options import build_spec, default_name
from grove_pipelines.sdk.stage import _depends_on_names
from grove_pipelines.spec import PipelineSpec

__all__ = ["Pipeline", "pipeline"]

PipelineFunc = Callable[..., Coroutine[Any, Any, Any]]


class Pipeline:
    """A pipeline: its spec and body. ``await my_pipeline(question="...")`` runs the body here."""

    def __init__(self, func: PipelineFunc, spec: PipelineSpec, calls: Sequence[object] = ()) -> None:
        self.func = func
        self.spec = spec
        self.calls = tuple(calls)
        functools.update_wrapper(self, func, updated=())

    @property
    def name(self) -> str:
        """The pipeline's name: its endpoint ``/v1/pipelines/<name>`` and its PodCliqueSet's name."""
        return self.spec.name

    def signature(self) -> inspect.Signature:
        """The body's signature: the pipeline's input schema."""
        return inspect.signature(self.func)

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r}>"


def pipeline(
    func: PipelineFunc | None = None,
    /,
    *,
    name: str | None = None,
    calls: Sequence[object] = (),
    **options: Any,
) -> Pipeline | Callable[[PipelineFunc], Pipeline]:
    """Declare the pipeline: ``@pipeline(name="agentic-rag")`` on an ``async def``.

    Options: ``image`` (for Python stages and the server), ``vllm_image``, ``scheduler``
    (``"kai-scheduler"``...), ``queue``, ``priority_class``, ``termination_delay``, ``topology``,
    ``max_iterations`` (loop guard), ``entry`` (the server's replicas/resources/port/service_type/auth),
    ``labels``, ``public`` (``True``: a ``NodePort``/``LoadBalancer`` entry may run with ``auth=False``),
    ``calls`` (stages or stage names the body calls in ways the code scan cannot see, such as
    ``getattr(tools, name)``: the twin of a stage's ``depends_on=``), ``otel`` (the standard
    OpenTelemetry variables, e.g. ``{"OTEL_EXPORTER_OTLP_ENDPOINT": URL}``, for every compiled container).
    """
    if func is None:
        return functools.partial(pipeline, name=name, calls=calls, **options)  # type: ignore[return-value]
    pipeline_name = name or default_name(func.__name__)
    if not inspect.iscoroutinefunction(func):
        raise DefinitionError(f"pipeline {pipeline_name!r}: the body must be an `async def` function")
    options.setdefault("description", inspect.getdoc(func) or "")
    spec = build_spec(
        PipelineSpec,
        "pipeline",
        pipeline_name,
        {
            **options,
            "calls": _depends_on_names(pipeline_name, calls, field="calls", what="pipeline"),
            "module": func.__module__,
            "qualname": func.__qualname__,
        },
    )
    return Pipeline(func, spec, calls)
