"""`grove-pipelines graph` and the CLI's error contract: one line on stderr, exit 1, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grove_pipelines.cli.main import main
from tests.cli.runner import run_cli

WritePipeline = Callable[..., Path]

CYCLE = """
from grove_pipelines import pipeline, stage

@stage
async def ping() -> None:
    await pong()

@stage
async def pong() -> None:
    await ping()

@pipeline(name="loop")
async def body() -> None:
    await ping()
"""


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [
        ("text", "agentic-rag (pipeline server)"),
        ("mermaid", "flowchart TD"),
        ("dot", 'digraph "agentic-rag"'),
    ],
)
def test_graph_formats(
    fmt: str,
    marker: str,
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(repo_root)
    code, out, err = run_cli(["graph", "pipelines/agentic_rag.py", "--format", fmt], capsys)
    assert code == 0, err
    assert marker in out
    assert "chat" in out and "retriever" in out


@pytest.mark.parametrize(
    ("source", "args", "message"),
    [
        (None, ["graph", "nowhere.py"], "error: no such file: nowhere.py"),
        (CYCLE, ["graph", "user_pipeline.py"], "error: the pipeline graph has a cycle: "),
        ("def f(:\n", ["graph", "user_pipeline.py"], "error: user_pipeline.py:1: syntax error"),
        (CYCLE, ["graph", "user_pipeline.py", "--format", "png"], "'png' is not one of text, mermaid, dot"),
    ],
)
def test_user_mistakes_print_one_line(
    source: str | None,
    args: list[str],
    message: str,
    write_pipeline: WritePipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if source is not None:
        write_pipeline(source)
    code, out, err = run_cli(args, capsys)
    assert code != 0
    assert message in err
    assert "Traceback" not in err and out == ""


def test_debug_flag_shows_the_traceback(write_pipeline: WritePipeline) -> None:
    write_pipeline(CYCLE)
    from grove_pipelines.errors import CycleError

    with pytest.raises(CycleError):
        main(["--debug", "graph", "user_pipeline.py"])


def test_unreached_stage_is_a_warning_on_stderr(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(
        "from grove_pipelines import pipeline, stage\n"
        "@stage\nasync def used() -> int:\n    return 1\n"
        "@stage\nasync def spare() -> int:\n    return 2\n"
        "@pipeline(name='p')\nasync def body() -> int:\n    return await used()\n"
    )
    code, out, err = run_cli(["graph", "user_pipeline.py"], capsys)
    assert code == 0
    assert "warning: stage 'spare' is defined but the pipeline 'p' never calls it" in err
    assert "used" in out and "spare" not in out


def test_explain_prints_the_origin_of_every_edge(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(repo_root)
    code, out, err = run_cli(["graph", "tests.graph.toolpkg.app:agent", "--explain"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    helpers = (repo_root / "tests/graph/toolpkg/helpers.py").read_text().splitlines()
    fetch = next(i for i, text in enumerate(helpers, 1) if "await tools.search(question)" in text)
    assert lines[0] == f"frontend -> rerank: _fetch at tests/graph/toolpkg/helpers.py:{fetch}"
    assert f"frontend -> search: _fetch at tests/graph/toolpkg/helpers.py:{fetch}" in lines
    assert len(lines) == 19 and all(": " in line and " at tests/graph/toolpkg/" in line for line in lines)


def test_explain_marks_declared_edges(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(
        "from grove_pipelines import pipeline, stage\n\n"
        "@stage\nasync def lookup(q: str) -> str:\n    return q\n\n"
        "@pipeline(name='p', calls=['lookup'])\nasync def body(q: str) -> str:\n"
        "    return await globals()['look' + 'up'](q)\n"
    )
    code, out, err = run_cli(["graph", "user_pipeline.py", "--explain"], capsys)
    assert (code, out, err) == (0, "frontend -> lookup: declared\n", "")
