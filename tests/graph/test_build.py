"""Edges are found from the code a body refers to, plus depends_on; unreached stages warn."""

from __future__ import annotations

import types

import pytest

from grove_pipelines import llm, pipeline, stage
from grove_pipelines.errors import CycleError, GraphError
from grove_pipelines.graph import ENTRY
from grove_pipelines.graph.build import build_graph


@stage
async def leaf(x: int) -> int:
    return x


@stage
async def middle(x: int) -> int:
    return await leaf(x) + 1


model = llm("chat", model="m")


@stage(depends_on=["chat"])
async def dynamic(x: int) -> int:
    return x


def test_edges_come_from_bodies_nested_code_and_depends_on() -> None:
    @pipeline(name="p")
    async def body(x: int) -> list[int]:
        values = [await middle(v) for v in range(x)]  # inside a comprehension
        helper = lambda: dynamic
        return values + [await helper()(x)]

    graph = build_graph(body, [leaf, middle, model, dynamic])
    assert set(graph.edges()) == {
        (ENTRY, "middle"),
        ("middle", "leaf"),
        (ENTRY, "dynamic"),
        ("dynamic", "chat"),
    }
    assert graph.warnings == []


def test_module_attributes_and_closures_are_followed() -> None:
    tools = types.ModuleType("tools")
    tools.leaf = leaf  # type: ignore[attr-defined]
    captured = model

    @pipeline(name="p")
    async def body() -> str:
        await tools.leaf(1)
        return await captured.chat("hi")

    body.func.__globals__["tools"] = tools
    try:
        graph = build_graph(body)
    finally:
        del body.func.__globals__["tools"]
    assert set(graph.callees(ENTRY)) == {"leaf", "chat"}


def test_stages_never_called_are_warnings() -> None:
    @pipeline(name="p")
    async def body() -> int:
        return await leaf(1)

    graph = build_graph(body, [leaf, middle])
    assert [s.name for s in graph.stages()] == ["leaf"]
    assert len(graph.warnings) == 1
    warning = graph.warnings[0]
    assert warning.startswith("stage 'middle' is defined but the pipeline 'p' never calls it (defined at ")
    assert f"tests/graph/test_build.py:{middle.target.__code__.co_firstlineno}" in warning
    assert 'calls=["middle"] on @pipeline, or depends_on=["middle"] on the calling stage' in warning


def test_calls_in_a_cycle_are_rejected_naming_it() -> None:
    @stage(name="ping")
    async def ping() -> None:
        await pong()

    @stage(name="pong")
    async def pong() -> None:
        await ping()

    @pipeline(name="p")
    async def body() -> None:
        await ping()

    with pytest.raises(CycleError, match="ping -> pong -> ping|pong -> ping -> pong"):
        build_graph(body)


def test_two_stages_with_one_name_are_rejected() -> None:
    @stage(name="leaf")
    async def other() -> None: ...

    @pipeline(name="p")
    async def body() -> None:
        await leaf(1)
        await other()

    with pytest.raises(GraphError, match="two different stages are named 'leaf'"):
        build_graph(body)


def test_unknown_depends_on_name_is_rejected() -> None:
    @stage(depends_on=["ghost"])
    async def needy() -> None: ...

    @pipeline(name="p")
    async def body() -> None:
        await needy()

    with pytest.raises(GraphError, match="depends_on names 'ghost'"):
        build_graph(body, [needy])


def test_a_pipeline_that_calls_nothing_is_rejected() -> None:
    @pipeline(name="empty")
    async def body() -> int:
        return 1

    with pytest.raises(GraphError, match="calls no stage"):
        build_graph(body)
