"""Bad pipelines the scan meets: one clear line naming the function and line, exit code 1, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.runner import run_cli

pytestmark = pytest.mark.timeout(60)

WritePipeline = Callable[..., Path]

CALLS_NOTHING = """
from grove_pipelines import pipeline, stage

@stage
async def unused() -> None: ...

@pipeline(name="idle")
async def body() -> int:
    return 1
"""

HELPER_CYCLE = """
from grove_pipelines import pipeline, stage

async def to_b() -> None:
    await b()

async def to_a() -> None:
    await a()

@stage
async def a() -> None:
    await to_b()

@stage
async def b() -> None:
    await to_a()

@pipeline(name="loop")
async def body() -> None:
    await a()
"""

MIXED_REGISTRY = """
import math
from grove_pipelines import pipeline, stage

@stage
async def search(q: str) -> str:
    return q

def local_tool(q: str) -> str:
    return q[::-1]

TOOLS = {"search": search, "local": local_tool, "sqrt": math.sqrt, "limit": 3}

@pipeline(name="mixed")
async def body(name: str, q: str) -> object:
    return await TOOLS[name](q)
"""

SAME_NAME = """
from grove_pipelines import pipeline, stage

async def web(q: str) -> str:
    return q

async def docs(q: str) -> str:
    return q

WEB_TOOLS = {"search": stage(name="search")(web)}
DOC_TOOLS = [stage(name="search")(docs)]

@pipeline(name="twins")
async def body(q: str) -> object:
    return [await WEB_TOOLS["search"](q), await DOC_TOOLS[0](q)]
"""


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


def test_a_body_that_calls_nothing(write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    write_pipeline(CALLS_NOTHING)
    code, out, err = run_cli(["graph", "user_pipeline.py"], capsys)
    line = _line_of(CALLS_NOTHING, "@pipeline")
    assert (code, out) == (1, "")
    assert err == (
        f"error: pipeline 'idle' (body body at user_pipeline.py:{line}) calls no stage; call at least one stage "
        "from its body, or declare what it calls with @pipeline(calls=[...])\n"
    )


def test_a_cycle_through_helpers_names_both_helpers_and_lines(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(HELPER_CYCLE)
    code, _, err = run_cli(["compile", "user_pipeline.py"], capsys)
    to_b, to_a = _line_of(HELPER_CYCLE, "await b()"), _line_of(HELPER_CYCLE, "await a()")
    assert (code, err) == (
        1,
        (
            f"error: the pipeline graph has a cycle: a -> b -> a (a -> b: to_b at user_pipeline.py:{to_b}; "
            f"b -> a: to_a at user_pipeline.py:{to_a})\n"
        ),
    )


def test_plain_callables_next_to_stages_are_ignored(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(MIXED_REGISTRY)
    code, out, err = run_cli(["graph", "user_pipeline.py"], capsys)
    assert code == 0, err
    assert out.splitlines() == ["mixed (pipeline server)", "  -> search (python x1)"]


def test_two_stages_with_one_name_in_two_registries(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(SAME_NAME)
    code, _, err = run_cli(["graph", "user_pipeline.py"], capsys)
    web, docs = _line_of(SAME_NAME, "async def web"), _line_of(SAME_NAME, "async def docs")
    body = _line_of(SAME_NAME, "return [await")
    assert code == 1 and err.count("\n") == 1
    assert err == (
        f"error: two different stages are named 'search': one (defined at user_pipeline.py:{web}), reached from "
        f"body at user_pipeline.py:{body}; another (defined at user_pipeline.py:{docs}), reached from body at "
        f"user_pipeline.py:{body}; stage names must be unique\n"
    )
