"""Building a `PipelineGraph` from decorated code: edges are the stages each body can reach.

Starting at the pipeline body, the reference scan (``grove_pipelines.graph.scan``) finds every stage
its code reaches, through helpers, registries, methods, partials and lambdas; each Python stage's
code is scanned the same way, as its own caller. ``depends_on=`` (stages) and ``calls=`` (the
pipeline) add the edges a scan cannot see. Every edge keeps its origin, and the graph keeps the stage
objects, so the runtime never scans again.

Decisions on unusual input: a registry that holds plain callables next to stages is fine (the
callables are followed as helpers, and run inside the caller); the same stage object in several
registries is one stage; two different stage objects with one name are an error naming both.
Stages defined at the module's top level but never reached become warnings (errors with
``compile --strict``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from grove_pipelines.errors import GraphError
from grove_pipelines.graph.model import ENTRY, PipelineGraph
from grove_pipelines.graph.origin import DECLARED, Origin, definition_origin
from grove_pipelines.graph.scan import scan
from grove_pipelines.sdk import LLM, Pipeline, Stage
from grove_pipelines.spec import StageSpec

__all__ = ["build_graph"]

AnyStage = Stage | LLM
_Caller = Stage | LLM | Pipeline


def _defined_at(obj: AnyStage) -> str:
    origin = definition_origin(obj.target) if isinstance(obj, Stage) else None
    return f" (defined at {origin.file}:{origin.line})" if origin is not None and origin.file else ""


class _Builder:
    def __init__(self, pipeline: Pipeline, module_stages: Iterable[AnyStage]) -> None:
        self.pipeline = pipeline
        self.known: dict[str, AnyStage] = {}
        self.first_seen: dict[str, Origin | None] = {}
        for obj in module_stages:
            self.register(obj, None)
        self.reached: dict[str, AnyStage] = {}
        self.origins: dict[tuple[str, str], list[Origin]] = {}
        self.queue: deque[tuple[str, _Caller]] = deque([(ENTRY, pipeline)])
        self.pending: list[tuple[str, str]] = []

    def register(self, obj: AnyStage, origin: Origin | None) -> None:
        other = self.known.setdefault(obj.name, obj)
        self.first_seen.setdefault(obj.name, origin)
        if other is obj:
            return
        before = self.first_seen[obj.name]
        seen = f", reached from {before}" if before is not None else ""
        now = f", reached from {origin}" if origin is not None else ""
        raise GraphError(
            f"two different stages are named {obj.name!r}: one{_defined_at(other)}{seen}; "
            f"another{_defined_at(obj)}{now}; stage names must be unique"
        )

    def edge(self, caller: str, callee: AnyStage, origin: Origin) -> None:
        self.register(callee, origin)
        found = self.origins.setdefault((caller, callee.name), [])
        if origin not in found:
            found.append(origin)
        if callee.name not in self.reached:
            self.reached[callee.name] = callee
            self.queue.append((callee.name, callee))

    def expand(self, caller: str, obj: _Caller) -> None:
        if isinstance(obj, (Stage, Pipeline)):
            for hit in scan(obj):
                self.edge(caller, hit.stage, hit.origin)
        for dep in obj.calls if isinstance(obj, Pipeline) else obj.depends_on:
            if isinstance(dep, str):
                self.pending.append((caller, dep))
            elif isinstance(dep, (Stage, LLM)):
                self.edge(caller, dep, DECLARED)

    def run(self) -> None:
        while True:
            while self.queue:
                self.expand(*self.queue.popleft())
            unresolved = []
            for caller, name in self.pending:
                target = self.known.get(name)
                if target is None:
                    unresolved.append((caller, name))
                else:
                    self.edge(caller, target, DECLARED)
            self.pending = unresolved
            if not self.queue:
                break
        if self.pending:
            caller, name = self.pending[0]
            who = (
                f"pipeline {self.pipeline.name!r}: calls"
                if caller == ENTRY
                else f"stage {caller!r}: depends_on"
            )
            raise GraphError(
                f"{who} names {name!r}, which is not a stage of this module or reached by its code"
            )

    def warnings(self) -> list[str]:
        name = self.pipeline.name
        return [
            f"stage {stage!r} is defined but the pipeline {name!r} never calls it{_defined_at(obj)}; "
            "if the code reaches it in a way the scan cannot see (getattr, a name read from a file), "
            f'declare it: calls=["{stage}"] on @pipeline, or depends_on=["{stage}"] on the calling stage'
            for stage, obj in self.known.items()
            if stage not in self.reached
        ]


def build_graph(pipeline: Pipeline, module_stages: Iterable[AnyStage] = ()) -> PipelineGraph:
    """The checked call graph of ``pipeline``; ``module_stages`` resolve declared names and feed warnings."""
    builder = _Builder(pipeline, module_stages)
    builder.run()
    if not builder.reached:
        where = definition_origin(pipeline.func)
        at = f" (body {where.function} at {where.file}:{where.line})" if where is not None else ""
        raise GraphError(
            f"pipeline {pipeline.name!r}{at} calls no stage; call at least one stage from its body, "
            "or declare what it calls with @pipeline(calls=[...])"
        )
    specs: list[StageSpec] = [obj.spec for obj in builder.reached.values()]
    return PipelineGraph(
        pipeline.spec,
        specs,
        list(builder.origins),
        warnings=builder.warnings(),
        origins=builder.origins,
        objects=builder.reached,
    )
