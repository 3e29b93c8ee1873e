"""Building a `PipelineGraph` from decorated code: edges are the stages each body refers to.

Starting at the pipeline body, every stage its code names is an edge; each Python stage's code is
scanned the same way, and ``depends_on=`` adds edges the scan cannot see. Stages defined in the module
but never reached are left out of the graph and reported as warnings.
"""

from __future__ import annotations

from collections.abc import Iterable

from grove_pipelines.errors import GraphError
from grove_pipelines.graph.model import ENTRY, PipelineGraph
from grove_pipelines.sdk import LLM, Pipeline, Stage
from grove_pipelines.sdk.refs import referenced_objects
from grove_pipelines.spec import StageSpec

__all__ = ["build_graph"]

AnyStage = Stage | LLM


def _called_by(target: Stage | Pipeline) -> list[AnyStage]:
    body = target.target if isinstance(target, Stage) else target.func
    return [obj for obj in referenced_objects(body) if isinstance(obj, (Stage, LLM)) and obj is not target]


def _resolve(name: str, caller: str, by_name: dict[str, AnyStage]) -> AnyStage:
    try:
        return by_name[name]
    except KeyError:
        raise GraphError(f"stage {caller!r}: depends_on names {name!r}, which is not a stage of this module") from None


def build_graph(pipeline: Pipeline, module_stages: Iterable[AnyStage] = ()) -> PipelineGraph:
    """The checked call graph of ``pipeline``; ``module_stages`` resolve ``depends_on`` names and feed warnings."""
    known: dict[str, AnyStage] = {}

    def register(obj: AnyStage) -> None:
        other = known.setdefault(obj.name, obj)
        if other is not obj:
            raise GraphError(f"two different stages are named {obj.name!r}; stage names must be unique")

    for obj in module_stages:
        register(obj)

    reached: dict[str, AnyStage] = {}
    edges: list[tuple[str, str]] = []
    queue: list[tuple[str, AnyStage]] = [(ENTRY, obj) for obj in _called_by(pipeline)]
    while queue:
        caller, callee = queue.pop(0)
        register(callee)
        edges.append((caller, callee.name))
        if callee.name in reached:
            continue
        reached[callee.name] = callee
        found: list[AnyStage] = _called_by(callee) if isinstance(callee, Stage) else []
        for dep in callee.depends_on:
            resolved = _resolve(dep, callee.name, known) if isinstance(dep, str) else dep
            if isinstance(resolved, (Stage, LLM)):
                found.append(resolved)
        queue.extend((callee.name, obj) for obj in found)

    if not reached:
        raise GraphError(f"pipeline {pipeline.name!r} calls no stage; call at least one stage from its body")
    warnings = [
        f"stage {name!r} is defined but the pipeline {pipeline.name!r} never calls it"
        for name in known
        if name not in reached
    ]
    specs: list[StageSpec] = [obj.spec for obj in reached.values()]
    return PipelineGraph(pipeline.spec, specs, dict.fromkeys(edges), warnings=warnings)
