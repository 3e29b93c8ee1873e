"""Fixtures for the Grove tests: small graphs built from data, and a valid compiled manifest."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.compiler import compile_graph
from grove_pipelines.spec import PD, Autoscaling, LLMSpec, PipelineSpec, PythonStageSpec, Role


def rag_graph(**pipeline: Any) -> PipelineGraph:
    """Entry → retrieve (Python) → embed (LLM, aggregated); entry → chat (disaggregated, decode on 2 nodes)."""
    spec = PipelineSpec(name="rag", module="pipelines/rag.py", **pipeline)
    stages = [
        PythonStageSpec(name="retrieve", env={"TOP_K": "4"}),
        LLMSpec(
            name="chat",
            model="Qwen/Qwen3-0.6B",
            gpus=1,
            disaggregated=PD(prefill=Role(replicas=2), decode=Role(replicas=2, nodes=2, min_available=1)),
        ),
        LLMSpec(
            name="embed",
            model="BAAI/bge-small",
            gpus=0,
            autoscaling=Autoscaling(max_replicas=3, target_cpu_utilization=70),
        ),
    ]
    return PipelineGraph(spec, stages, [(ENTRY, "retrieve"), (ENTRY, "chat"), ("retrieve", "embed")])


_RAG = compile_graph(rag_graph()).documents()


@pytest.fixture
def rag_docs() -> list[dict[str, Any]]:
    """The compiled documents of ``rag_graph()`` (a fresh copy per test)."""
    return copy.deepcopy(_RAG)


@pytest.fixture
def pcs(rag_docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The compiled PodCliqueSet of ``rag_graph()``."""
    return rag_docs[0]


def clique(pcs: dict[str, Any], name: str) -> dict[str, Any]:
    """The clique template called ``name``."""
    return next(c for c in pcs["spec"]["template"]["cliques"] if c["name"] == name)


def clique_index(pcs: dict[str, Any], name: str) -> int:
    """The index of clique ``name`` in ``spec.template.cliques``."""
    return [c["name"] for c in pcs["spec"]["template"]["cliques"]].index(name)
