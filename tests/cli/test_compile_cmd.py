"""`grove-pipelines compile`: multi-document YAML on stdout or in a file; bad input is one error line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from grove_pipelines import yamlio
from tests.cli.runner import run_cli

WritePipeline = Callable[..., Path]

PIPELINE = """
from grove_pipelines import llm, pipeline, stage

helper = llm("helper", model="Qwen/Qwen3-0.6B", gpus=1)

@stage
async def tool(x: str) -> str:
    return x

@pipeline(name="{name}")
async def body(q: str) -> str:
    return await helper.chat(await tool(q))
"""


def test_compile_to_stdout(write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    write_pipeline(PIPELINE.format(name="demo"))
    code, out, err = run_cli(["compile", "user_pipeline.py", "-n", "team", "--image", "me/runtime:2"], capsys)
    assert code == 0, err
    docs = yamlio.load_all(out)
    assert [d["kind"] for d in docs] == [
        "PodCliqueSet",
        "Service",
        "Service",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
    ]
    assert {d["metadata"]["namespace"] for d in docs} == {"team"}
    frontend = docs[0]["spec"]["template"]["cliques"][0]["spec"]["podSpec"]["containers"][0]
    assert frontend["image"] == "me/runtime:2"
    assert frontend["command"][:3] == ["grove-pipelines", "serve", "user_pipeline.py:demo"]


def test_compile_to_file(
    write_pipeline: WritePipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(PIPELINE.format(name="demo"))
    code, out, err = run_cli(["compile", "user_pipeline.py", "-o", "out.yaml"], capsys)
    assert code == 0 and out == "" and "wrote out.yaml" in err
    assert yamlio.load_all_file(tmp_path / "out.yaml")[0]["metadata"]["name"] == "demo"


def test_compile_errors_are_one_line(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(
        PIPELINE.format(name="demo").replace('"helper"', '"ool"')
    )  # clique 'ool' is a suffix of 'tool'
    code, out, err = run_cli(["compile", "user_pipeline.py"], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "'ool'" in err and "'tool'" in err and "Traceback" not in err


def test_compile_missing_file(write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["compile", "nope.py"], capsys)
    assert code == 1 and err.startswith("error: ") and "nope.py" in err


SPARE = """
from grove_pipelines import pipeline, stage

@stage
async def used(q: str) -> str:
    return q

@stage
async def spare(q: str) -> str:
    return q

@pipeline(name="p")
async def body(q: str) -> str:
    return await used(q)
"""


def test_unreached_stage_warns_and_strict_fails(
    write_pipeline: WritePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pipeline(SPARE)
    line = next(i for i, text in enumerate(SPARE.splitlines(), 1) if "async def spare" in text) - 1
    warning = (
        f"stage 'spare' is defined but the pipeline 'p' never calls it (defined at user_pipeline.py:{line}); "
        "if the code reaches it in a way the scan cannot see (getattr, a name read from a file), declare it: "
        'calls=["spare"] on @pipeline, or depends_on=["spare"] on the calling stage'
    )
    code, out, err = run_cli(["compile", "user_pipeline.py"], capsys)
    assert code == 0 and err == f"warning: {warning}\n"
    assert [c["name"] for c in yamlio.load_all(out)[0]["spec"]["template"]["cliques"]] == ["frontend", "used"]
    code, out, err = run_cli(["compile", "user_pipeline.py", "--strict"], capsys)
    assert (code, out, err) == (1, "", f"error: --strict: {warning}\n")
