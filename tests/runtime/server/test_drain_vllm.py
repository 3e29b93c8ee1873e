"""SIGTERM of a served pipeline with requests in flight on real vLLM: they finish, new ones get 503.

The server is ``grove-pipelines serve`` in a subprocess, as a pod runs it; its LLM stage calls the
session's real vLLM decode worker (which also serves requests on its own, without a prefill leg).
The pipelines' first stage holds each request at a gate (a directory the test owns) until the test has
seen the drain begin, so the requests are in flight at SIGTERM however fast vLLM generates, and their
LLM calls stream every token during the drain.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.engines.vllm import PDPair
from tests.runtime.server.served import start_serve

pytestmark = pytest.mark.vllm

TOKENS = 500
PIPELINE = f"""
import asyncio, os, pathlib

from grove_pipelines import llm, pipeline, stage

tiny = llm("tiny", model="tiny")


@stage
async def prompt_for(topic: str) -> str:
    gate = pathlib.Path(os.environ["DRAIN_TEST_GATE"])
    (gate / ("entered-" + topic)).touch()
    for _ in range(1200):  # bounded: 60 s
        if (gate / "release").exists():
            break
        await asyncio.sleep(0.05)
    return "Tell me about " + topic


@pipeline(name="long-answer")
async def long_answer(topic: str) -> int:
    response = await tiny.request("/v1/completions", {{"prompt": await prompt_for(topic), "max_tokens": {TOKENS},
                                                     "ignore_eos": True, "temperature": 0}})
    return int(response["usage"]["completion_tokens"])
"""


async def _stream(http: httpx.AsyncClient, topic: str) -> list[str]:
    events: list[str] = []
    async with http.stream(
        "POST", "/v1/pipelines/long-answer", json={"topic": topic, "stream": True}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            elif line.startswith("data: ") and events and events[-1] != "token":
                events.append(line[6:])
    return events


async def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(
    vllm_pd_pair: PDPair, write_pipeline: Any, tmp_path: Path
) -> None:
    path: Path = write_pipeline(PIPELINE, "long_answer.py")
    gate = tmp_path / "gate"
    gate.mkdir()
    served = await asyncio.to_thread(
        start_serve, path,
        env={"GP_LLM_URL_TINY": vllm_pd_pair.decode.url, "GP_DRAIN_S": "120", "DRAIN_TEST_GATE": str(gate)},
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=served.endpoint, timeout=180) as http:
            topics = [f"grove {i}" for i in range(3)]
            running = [asyncio.ensure_future(_stream(http, topic)) for topic in topics]
            for _ in range(1200):  # bounded: all three are in flight, held at the gate
                if all((gate / f"entered-{topic}").exists() for topic in topics):
                    break
                await asyncio.sleep(0.05)
            assert all((gate / f"entered-{topic}").exists() for topic in topics), sorted(gate.iterdir())
            served.proc.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient(base_url=served.endpoint, timeout=30) as fresh:
                readiness: list[int] = []

                async def probe() -> None:
                    readiness.append((await fresh.get("/ready")).status_code)

                async def draining() -> bool:
                    await probe()
                    return readiness[-1] == 503

                for _ in range(200):  # bounded: the signal is handled within a tick of the server's loop
                    if await draining():
                        break
                    await asyncio.sleep(0.05)
                assert readiness[-1] == 503, readiness
                refused = await fresh.post("/v1/pipelines/long-answer", json={"topic": "late"})
                assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable"
                assert refused.headers["retry-after"] == "1"
                assert not any(task.done() for task in running)  # the three are still in flight
                (gate / "release").touch()  # their LLM calls now stream during the drain
            finished = await asyncio.wait_for(asyncio.gather(*running), 170)
        for events in finished:
            assert events[-2:] == ["result", json.dumps(TOKENS)], events[-4:]  # every token, then the result
        assert await asyncio.to_thread(served.proc.wait, 60) == 0
    finally:
        served.kill()
