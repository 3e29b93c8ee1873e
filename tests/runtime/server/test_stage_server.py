"""Stage-server mode: the entry calls Python stages served elsewhere over the wire format (real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import BaseModel

from grove_pipelines import pipeline, stage
from runtime.http import bind_socket
from runtime.server import build_app
from runtime.server.call_protocol import CALLER_HEADER
from runtime.server.errors import StageTimeoutError, StageUpstreamError
from runtime.server.serving import AppServer
from tests.runtime.server.helpers import make_executor

EVENTS: dict[str, asyncio.Event] = {}
ATTEMPTS: list[str] = []


class Scored(BaseModel):
    text: str
    score: float


@stage
async def normalize(text: str) -> str:
    return " ".join(text.split()).lower()


@stage
async def score(text: str, weight: float = 1.0) -> Scored:
    """Calls ``normalize`` itself: on a stage server, nested calls are checked and run there."""
    clean = await normalize(text)
    return Scored(text=clean, score=len(clean) * weight)


@stage(retries=2)
async def flaky(text: str) -> str:
    ATTEMPTS.append(text)
    if len(ATTEMPTS) % 3:
        raise RuntimeError("not yet")
    return text


@stage(timeout_s=0.3)
async def sleepy(seconds: float) -> float:
    EVENTS["sleepy-started"].set()
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        EVENTS["sleepy-cancelled"].set()
        raise
    return seconds


@pipeline(name="remote")
async def remote(text: str, weight: float = 2.0) -> dict[str, object]:
    scored = await score(text, weight=weight)
    assert isinstance(scored, Scored), "the result arrives as the annotated type"
    return {"text": scored.text, "score": scored.score, "again": await flaky(scored.text)}


@pipeline(name="remote-slow")
async def remote_slow(seconds: float) -> float:
    return await sleepy(seconds)


STAGES = ["score", "flaky", "sleepy"]


@pytest_asyncio.fixture(loop_scope="function")
async def stage_server() -> AsyncIterator[AppServer]:
    executors = [make_executor(remote), make_executor(remote_slow)]
    async with AppServer(build_app(executors, stages=STAGES, pipelines=False)) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def entry(stage_server: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    urls = dict.fromkeys(STAGES, stage_server.url)
    executors = [make_executor(remote, stage_urls=urls), make_executor(remote_slow, stage_urls=urls)]
    async with (
        AppServer(build_app(executors)) as running,
        httpx.AsyncClient(base_url=running.url, timeout=30) as http,
    ):
        yield http


async def test_entry_calls_stages_on_their_server(entry: httpx.AsyncClient, stage_server: AppServer) -> None:
    ATTEMPTS.clear()
    response = await entry.post("/v1/pipelines/remote", json={"text": "  Hello   World "})
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "hello world", "score": 22.0, "again": "hello world"}
    assert len(ATTEMPTS) == 3  # two failures on the stage server, retried by the entry
    async with httpx.AsyncClient(base_url=stage_server.url) as http:
        metrics = (await http.get("/metrics")).text
    assert 'grove_stage_calls_total{caller="score",outcome="ok",stage="normalize"} 1.0' in metrics


async def test_stage_server_serves_only_its_stages(stage_server: AppServer) -> None:
    async with httpx.AsyncClient(base_url=stage_server.url) as http:
        assert (await http.post("/v1/pipelines/remote", json={"text": "x"})).status_code == 404
        missing = await http.post("/v1/stages/normalize", json={"args": ["x"]})
        assert missing.status_code == 404 and "does not serve stage 'normalize'" in missing.text
        ok = await http.post("/v1/stages/score", json={"args": ["A b"], "kwargs": {"weight": 0.5}})
        assert ok.json() == {"result": {"text": "a b", "score": 1.5}}
        stranger = await http.post("/v1/stages/score", json={"args": ["x"]}, headers={CALLER_HEADER: "flaky"})
        assert stranger.status_code == 500
        assert "stage 'flaky' called stage 'score'" in stranger.json()["error"]["message"]
        bad_args = await http.post("/v1/stages/score", json={"args": [1, 2, 3]})
        assert bad_args.status_code == 422 and "stage 'score': bad arguments" in bad_args.text
        bad_type = await http.post("/v1/stages/score", json={"args": ["x"], "kwargs": {"weight": "heavy"}})
        assert bad_type.status_code == 422
        malformed = await http.post(
            "/v1/stages/score", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400


async def test_remote_timeout_is_504_and_cancels_the_remote_call(entry: httpx.AsyncClient) -> None:
    EVENTS["sleepy-started"] = asyncio.Event()
    EVENTS["sleepy-cancelled"] = asyncio.Event()
    response = await entry.post("/v1/pipelines/remote-slow", json={"seconds": 30})
    assert response.status_code == 504
    assert response.json()["error"]["stage"] == "sleepy"
    await asyncio.wait_for(
        EVENTS["sleepy-cancelled"].wait(), 10
    )  # the entry hung up: the stage server stopped


async def test_unreachable_stage_server_is_a_502() -> None:
    with bind_socket(
        "127.0.0.1", 0
    ) as sock:  # a port that was free a moment ago; closed again, nobody listens on it
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    executor = make_executor(remote, stage_urls={"score": dead})
    with pytest.raises(StageUpstreamError) as info:
        await executor.run({"text": "x"})
    assert info.value.stage == "score" and dead in str(info.value)
    await executor.aclose()


async def test_remote_errors_keep_their_kind(stage_server: AppServer) -> None:
    executor = make_executor(remote, stage_urls={"flaky": stage_server.url, "score": stage_server.url})
    ATTEMPTS[:] = ["primed"]  # the next two attempts fail, the third (after 2 retries) succeeds
    assert (await executor.run({"text": "Ok"}))["again"] == "ok"
    slow_exec = make_executor(remote_slow, stage_urls={"sleepy": stage_server.url})
    EVENTS["sleepy-started"] = asyncio.Event()
    EVENTS["sleepy-cancelled"] = asyncio.Event()
    with pytest.raises(StageTimeoutError):
        await slow_exec.run({"seconds": 30})
    await executor.aclose()
    await slow_exec.aclose()
