"""Fixtures for the deploy path: a fresh API server double per test and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grove_pipelines.cli.main import main
from tests.kube.apiserver import ApiServerDouble

PIPELINE = """
from grove_pipelines import llm, pipeline, stage

assistant = llm("assistant", model="Qwen/Qwen3-0.6B", gpus=1, max_model_len=4096)


@stage(replicas={replicas}, min_available={min_available})
async def build_prompt(topic: str) -> str:
    return f"Write two sentences about {{topic}}."


@pipeline(name="chat")
async def chat(topic: str) -> dict[str, str]:
    prompt = await build_prompt(topic)
    return {{"answer": await assistant.chat(prompt, max_tokens=8)}}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def apiserver() -> Iterator[ApiServerDouble]:
    """A running double with Grove's CRDs installed, namespaces ``default`` and ``demo``, Grove playing."""
    with ApiServerDouble() as api:
        yield api


@pytest.fixture
def kubeconfig(apiserver: ApiServerDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$KUBECONFIG`` set to a file whose context points at the double (namespace ``demo``)."""
    path = apiserver.write_kubeconfig(tmp_path / "kubeconfig", namespace="demo")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``grove-pipelines ARGS`` in-process; exit code, stdout, stderr."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def pipeline_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Write the test pipeline (stage replicas as given) and return its ref, relative to the cwd."""
    monkeypatch.chdir(tmp_path)

    def write(replicas: int = 1, min_available: int = 1, name: str = "chat_pipeline.py") -> str:
        (tmp_path / name).write_text(PIPELINE.format(replicas=replicas, min_available=min_available))
        return name

    return write
