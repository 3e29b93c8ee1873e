"""PipelineGraph: checks (cycles, names, edges) and the startup order it derives."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grove_pipelines.errors import CycleError, GraphError
from grove_pipelines.graph import ENTRY, PipelineGraph, render
from grove_pipelines.spec import PD, LLMSpec, PipelineSpec, PythonStageSpec

PIPE = PipelineSpec(name="demo")


def py(name: str) -> PythonStageSpec:
    return PythonStageSpec(name=name)


def test_cycle_is_named_in_call_order() -> None:
    with pytest.raises(CycleError) as info:
        PipelineGraph(PIPE, [py("a"), py("b"), py("c")], [(ENTRY, "a"), ("a", "b"), ("b", "c"), ("c", "a")])
    assert set(info.value.cycle) == {"a", "b", "c"}
    assert "cycle:" in str(info.value) and str(info.value).count("->") == 3


def test_self_call_is_a_cycle() -> None:
    with pytest.raises(CycleError, match="a -> a"):
        PipelineGraph(PIPE, [py("a")], [(ENTRY, "a"), ("a", "a")])


@pytest.mark.parametrize(
    ("stages", "edges", "message"),
    [
        ([py("a"), py("a")], [(ENTRY, "a")], "two stages are named 'a'"),
        ([py(ENTRY)], [], "reserved for the pipeline server"),
        ([py("a")], [(ENTRY, "b")], "unknown stage 'b'"),
        ([py("a")], [("a", ENTRY)], "cannot call the pipeline itself"),
    ],
)
def test_invalid_graphs_are_rejected(
    stages: list[PythonStageSpec], edges: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(GraphError, match=message):
        PipelineGraph(PIPE, stages, edges)


def test_startup_edges_drop_edges_implied_by_longer_paths() -> None:
    graph = PipelineGraph(
        PIPE,
        [py("a"), py("b"), py("c")],
        [(ENTRY, "a"), (ENTRY, "c"), ("a", "b"), ("b", "c"), ("a", "c")],
    )
    assert sorted(graph.startup_edges()) == sorted([(ENTRY, "a"), ("a", "b"), ("b", "c")])
    order = graph.startup_order()
    assert order.index("c") < order.index("b") < order.index("a") < order.index(ENTRY)


@st.composite
def _dags(draw: st.DrawFn) -> tuple[int, list[tuple[str, str]]]:
    """A random DAG over ``s0..sN``: edges only from a lower to a higher index, some from the entry."""
    count = draw(st.integers(1, 25))
    pairs = st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)).filter(lambda p: p[0] < p[1])
    edges = [(f"s{a}", f"s{b}") for a, b in draw(st.lists(pairs, max_size=80, unique=True))]
    roots = draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True))
    return count, [(ENTRY, f"s{r}") for r in roots] + edges


@settings(max_examples=200, deadline=None)
@given(_dags())
def test_startup_edges_are_the_transitive_reduction(case: tuple[int, list[tuple[str, str]]]) -> None:
    count, edges = case
    graph = PipelineGraph(PIPE, [py(f"s{i}") for i in range(count)], edges)
    reference = nx.transitive_reduction(nx.DiGraph(edges))  # networkx's own algorithm, independent of ours
    assert graph.startup_edges() == [edge for edge in graph.edges() if reference.has_edge(*edge)]


def test_unreachable_stages_are_reported() -> None:
    graph = PipelineGraph(PIPE, [py("a"), py("lonely")], [(ENTRY, "a")])
    assert graph.unreachable() == ["lonely"]
    assert "(not called) lonely" in render(graph)


def test_renderings_name_every_stage_and_edge() -> None:
    graph = PipelineGraph(
        PIPE,
        [py("retrieve"), LLMSpec(name="chat", model="m", disaggregated=PD())],
        [(ENTRY, "retrieve"), ("retrieve", "chat")],
    )
    text = render(graph, "text")
    assert "demo (pipeline server)" in text and "-> chat (llm m: prefill x1, decode x1)" in text
    mermaid = render(graph, "mermaid")
    assert mermaid.startswith("flowchart TD") and mermaid.count("-->") == 2
    dot = render(graph, "dot")
    assert '"retrieve" -> "chat";' in dot and '"frontend" -> "retrieve";' in dot
