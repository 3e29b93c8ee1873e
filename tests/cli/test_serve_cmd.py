"""`grove-pipelines serve`: the pod contract, run as real processes (an entry and a stage server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PIPELINE = """
from grove_pipelines import pipeline, stage


@stage
async def count(words: list[str]) -> int:
    return len(words)


@stage
async def split(text: str) -> list[str]:
    return text.split()


@pipeline(name="words")
async def words(text: str) -> dict[str, int]:
    return {"words": await count(await split(text))}
"""


def _serve(path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable,
        "-m",
        "grove_pipelines.cli.main",
        "serve",
        str(path),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        [*argv, *extra], cwd=path.parent, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert " on http://127.0.0.1:" in line, line + proc.stderr.read()
    return proc, line.rsplit(" on ", 1)[1].strip()


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "words_pipeline.py"
    path.write_text(PIPELINE)
    return path


@pytest.fixture
def servers(module: Path) -> Iterator[tuple[subprocess.Popen[str], str, subprocess.Popen[str], str]]:
    stage_proc, stage_url = _serve(module, "--stage", "count")
    entry_proc, entry_url = _serve(module, env={"GP_STAGE_URL_COUNT": stage_url})
    try:
        yield stage_proc, stage_url, entry_proc, entry_url
    finally:
        for proc in (entry_proc, stage_proc):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_entry_calls_the_stage_pod_through_its_url_variable(servers: tuple) -> None:  # type: ignore[type-arg]
    stage_proc, stage_url, entry_proc, entry_url = servers
    response = httpx.post(f"{entry_url}/v1/pipelines/words", json={"text": "a b c"}, timeout=30)
    assert response.status_code == 200 and response.json() == {"words": 3}
    stage_metrics = httpx.get(f"{stage_url}/metrics").text
    assert "grove_pipeline_requests_total" in stage_metrics  # same metric families on every server
    assert (httpx.get(f"{stage_url}/health")).json()["stages"] == ["count"]
    assert httpx.post(f"{stage_url}/v1/stages/split", json={"args": ["x"]}).status_code == 404
    for proc in (entry_proc, stage_proc):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_entry_reports_an_unreachable_stage_pod_as_502(module: Path) -> None:
    proc, url = _serve(module, env={"GP_STAGE_URL_COUNT": "http://127.0.0.1:9"})
    try:
        response = httpx.post(f"{url}/v1/pipelines/words", json={"text": "a"}, timeout=30)
        assert response.status_code == 502 and response.json()["error"]["stage"] == "count"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["missing.py"], "error: no such file: missing.py"),
        (
            ["{module}", "--stage", "nope"],
            "error: no Python stage 'nope' in the pipeline (its Python stages: count, split)",
        ),
    ],
)
def test_bad_serve_arguments_are_one_line_errors(module: Path, args: list[str], fragment: str) -> None:
    argv = [
        sys.executable,
        "-m",
        "grove_pipelines.cli.main",
        "serve",
        *[a.format(module=module) for a in args],
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=module.parent, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and time.monotonic() - started < 60
    assert done.stderr.strip().splitlines() == [fragment]
