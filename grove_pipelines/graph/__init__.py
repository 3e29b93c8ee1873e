"""The pipeline graph: stages as nodes, "A calls B" as edges, checked and ordered (networkx)."""

from __future__ import annotations

from grove_pipelines.graph.model import ENTRY, PipelineGraph
from grove_pipelines.graph.origin import Origin
from grove_pipelines.graph.render import explain, render

__all__ = ["ENTRY", "Origin", "PipelineGraph", "explain", "render"]
