"""Pipeline references: every user mistake becomes one LoadError line naming the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grove_pipelines.errors import LoadError
from grove_pipelines.loader import load_graph, load_pipeline, split_ref

WritePipeline = Callable[..., Path]

TWO = """
from grove_pipelines import pipeline, stage

@stage
async def step(x: int) -> int:
    return x

@pipeline(name="first")
async def first(x: int) -> int:
    return await step(x)

@pipeline(name="second-one")
async def second(x: int) -> int:
    return await step(x)
"""


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("a/b.py:rag", ("a/b.py", "rag")),
        ("a/b.py", ("a/b.py", None)),
        ("pkg.mod:p", ("pkg.mod", "p")),
        ("pkg.mod", ("pkg.mod", None)),
    ],
)
def test_split_ref(ref: str, expected: tuple[str, str | None]) -> None:
    assert split_ref(ref) == expected


def test_file_ref_records_a_relative_source(write_pipeline: WritePipeline) -> None:
    write_pipeline(TWO)
    loaded = load_pipeline("user_pipeline.py:second-one")
    assert loaded.pipeline.name == "second-one"
    assert loaded.source == "user_pipeline.py"
    assert loaded.pipeline.spec.module == "user_pipeline.py"
    assert load_pipeline("user_pipeline.py:first").pipeline.name == "first"  # by variable name too


def test_module_ref_loads_the_examples(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    graph = load_graph("pipelines/agentic_rag.py")
    assert graph.name == "agentic-rag"
    assert {s.name for s in graph.stages()} == {"keywords", "retriever", "chat", "check"}


@pytest.mark.parametrize(
    ("source", "ref", "message"),
    [
        (None, "missing.py", "no such file: missing.py"),
        ("def broken(:\n", "user_pipeline.py", "user_pipeline.py:1: syntax error"),
        (
            "raise RuntimeError('boom')\n",
            "user_pipeline.py",
            "failed at user_pipeline.py:1: RuntimeError: boom",
        ),
        ("x = 1\n", "user_pipeline.py", "defines no @pipeline"),
        (
            TWO,
            "user_pipeline.py",
            "several pipelines (first, second-one); choose one with user_pipeline.py:NAME",
        ),
        (TWO, "user_pipeline.py:third", "has no pipeline 'third'; it defines: first, second-one"),
        (
            "from grove_pipelines import stage\n@stage(replicas=-1)\nasync def s(): ...\n",
            "user_pipeline.py",
            "stage 's': replicas: Input should be greater than or equal to 1",
        ),
        ("import no_such_module_here\n", "user_pipeline.py", "No module named 'no_such_module_here'"),
    ],
)
def test_user_mistakes_are_one_clear_line(
    write_pipeline: WritePipeline, source: str | None, ref: str, message: str
) -> None:
    if source is not None:
        write_pipeline(source)
    with pytest.raises(LoadError) as info:
        load_pipeline(ref)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_module_is_a_load_error() -> None:
    with pytest.raises(LoadError, match="cannot import no.such.module"):
        load_pipeline("no.such.module:p")
