"""Building executors and servers for tests from pipelines defined inside the tests themselves."""

from __future__ import annotations

from typing import Any

from grove_pipelines.graph.build import build_graph
from grove_pipelines.sdk import LLM, Pipeline, Stage
from runtime.server import Executor


def make_executor(pipeline: Pipeline, *stages: Stage | LLM, **options: Any) -> Executor:
    """An executor for ``pipeline`` (the stages it reaches are found from its code, as the loader does)."""
    graph = build_graph(pipeline, stages)
    return Executor(pipeline, graph, graph.objects, **options)
