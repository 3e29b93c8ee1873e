"""The pipeline server's LLM calls against a worker that fails at random points: a whole answer or a clean error.

The LLM stage's endpoint is ``tests/runtime/chaos_vllm.py`` (each completion served by a seeded
random behaviour: proper, closed or reset at accept or after the request, cut short, or stalled
for longer than the test may last, so only the stage's ``timeout_s`` ends it). The stage has retries, and the pipelines call it awaited and
streamed. The reference is what each run asked for (its number is in the prompt): a 200 must be
exactly that run's answer; anything else a JSON error with a 5xx status and an error type; no run
may outlast a bound set from the stage's own timeout and retries.
"""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from grove_pipelines import llm, pipeline
from runtime.server.app import PipelineApp
from tests.runtime.chaos_vllm import ChaosVLLM
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

chaotic = llm("chaotic", model="tiny", served_model_name="tiny", retries=2, timeout_s=0.3)
BOUND = 5.0
"""Any run ends within this: three attempts of 0.3 s at most each, and the rest is instant."""


@pipeline(name="awaits-chaos")
async def awaits_chaos(n: int) -> str:
    return await chaotic.complete(f"request {n}", max_tokens=2)


@pipeline(name="streams-chaos")
async def streams_chaos(n: int) -> str:
    return "".join([piece async for piece in chaotic.stream_complete(f"request {n}", max_tokens=2)])


async def _run(http: httpx.AsyncClient, n: int, streamed: bool) -> int:
    """One run, checked against what run ``n`` must get; its status."""
    answer = await http.post(f"/v1/pipelines/{'streams' if streamed else 'awaits'}-chaos", json={"n": n})
    if answer.status_code == 200:
        assert answer.json() == f"answer {n}", (n, answer.text)
    else:
        assert answer.status_code >= 500 and answer.json()["error"]["type"], (n, answer.text)
    return answer.status_code


async def test_llm_calls_to_a_worker_failing_at_random_points_end_in_their_answer_or_a_clean_error() -> None:
    worker = ChaosVLLM(11, stall_s=60)  # a stall only the stage's timeout ends
    await worker.start()
    app = PipelineApp(
        [make_executor(p, chaotic, llm_urls={"chaotic": worker.url}) for p in (awaits_chaos, streams_chaos)]
    )
    rng = random.Random(11)
    statuses: list[int] = []
    try:
        async with serving(app) as (_, http):
            for batch in range(60):
                numbers = range(len(statuses), len(statuses) + (1 if batch % 3 else 4))
                runs = (_run(http, n, rng.random() < 0.5) for n in numbers)
                statuses += await asyncio.wait_for(asyncio.gather(*runs), BOUND)
    finally:
        await worker.stop()
    assert 200 in statuses and len({b for _, b in worker.served}) > 5  # answers, and the chaos happened


async def _pass_through(http: httpx.AsyncClient, n: int, streamed: bool) -> None:
    """One OpenAI request through the server's pass-through, checked against what request ``n`` must get."""
    body = {"model": "tiny", "prompt": f"request {n}", "max_tokens": 2, "stream": streamed}
    try:
        async with http.stream("POST", "/v1/completions", json=body) as answer:
            raw = b"".join([piece async for piece in answer.aiter_bytes()])
    except httpx.RemoteProtocolError:  # a stream the worker broke is ended short, after its error event
        assert streamed and answer.status_code == 200, n
        return
    if answer.status_code != 200:
        assert answer.status_code >= 500 and httpx.Response(200, content=raw).json()["error"]["type"], (
            n,
            raw,
        )
    elif not streamed:
        assert httpx.Response(200, content=raw).json()["choices"][0]["text"] == f"answer {n}", (n, raw)
    else:
        events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
        if events[-1] == "[DONE]":
            assert "".join(
                httpx.Response(200, content=e).json()["choices"][0]["text"] for e in events[:-1]
            ) == (f"answer {n}"), (n, events)
        else:  # broke: the client is told, never handed a short answer as a whole one
            assert httpx.Response(200, content=events[-1]).json()["error"]["type"], (n, events)


async def test_the_openai_pass_through_to_a_worker_failing_at_random_points_ends_every_request() -> None:
    worker = ChaosVLLM(12, stall_s=60)
    await worker.start()
    app = PipelineApp([make_executor(awaits_chaos, chaotic, llm_urls={"chaotic": worker.url})])
    rng = random.Random(12)
    try:
        async with serving(app) as (_, http):
            for batch in range(60):
                numbers = range(batch * 4, batch * 4 + (1 if batch % 3 else 4))
                requests = (_pass_through(http, n, rng.random() < 0.5) for n in numbers)
                await asyncio.wait_for(asyncio.gather(*requests), BOUND)
    finally:
        await worker.stop()
    assert len({b for _, b in worker.served}) > 5  # the chaos happened
