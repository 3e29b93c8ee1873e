"""Pipeline-aware routing on real vLLM: run sessions, fan-out siblings, and the counted disaggregation reasons.

The shared NIXL pair (``vllm_pd_pair``) serves first as two plain aggregated workers (a request
without ``kv_transfer_params`` is computed by either), then as the prefill/decode pair. Which worker
served a call is read from the workers themselves (``vllm:request_success`` counters), and which
session a call carried from the router's own decision log (``grove.router``, one ``route`` line per
call); a pipeline runs through the real pipeline server (``runtime.server``) in front of an
in-process router.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio

from grove_pipelines import llm, pipeline
from runtime.engines.vllm import PDPair
from runtime.router.config import load_config
from runtime.router.server import RouterServer
from runtime.server import build_app
from runtime.server.serving import AppServer
from tests.bench.mooncake_trace import block_text
from tests.runtime.server.helpers import make_executor

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="session")]

agent = llm("agent", model="tiny", served_model_name="tiny")
CONTEXT = block_text(41, 1500)  # ~500 tokens every call of one run shares


@pipeline(name="fan-out-agent")
async def fan_out_agent(topic: str) -> list[str]:
    """A plan, then four sibling calls over the same context, then a summary."""
    plan = await agent.complete(f"{CONTEXT}\nPlan for {topic}:", max_tokens=2, temperature=0)
    parts = await asyncio.gather(
        *(agent.complete(f"{CONTEXT}\nPart {i} of {topic}:", max_tokens=2, temperature=0) for i in range(4))
    )
    summary = await agent.complete(f"{CONTEXT}\nSummary of {topic}:", max_tokens=2, temperature=0)
    return [plan, *parts, summary]


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


_SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\}\s+(\S+)", re.MULTILINE)


async def served(http: aiohttp.ClientSession, urls: list[str]) -> list[float]:
    """Requests each worker has finished, from its own ``/metrics``."""
    out = []
    for url in urls:
        async with http.get(f"{url}/metrics") as r:
            out.append(sum(float(v) for v in _SUCCESS.findall(await r.text())))
    return out


async def router(pair: PDPair, **overrides: Any) -> RouterServer:
    config = load_config(overrides={"port": 0, "drain_timeout": 5, "debug": True, **overrides})
    server = RouterServer(config)
    await server.start()
    return server


def aggregated(pair: PDPair, policy: str = "prefix") -> dict[str, Any]:
    return {"worker": [pair.prefill.url, pair.decode.url], "policy": policy}


def routes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "grove.router" and r.getMessage().startswith("route ")
    ]


def sessions_of(lines: list[str]) -> set[str]:
    return {
        m.group(1)
        for line in lines
        for m in [re.search(r"session(?:-affinity)? (\S+?)(?: new|,|;| \(|$)", line)]
        if m
    }


async def run_pipeline(router_url: str, headers: dict[str, str]) -> None:
    executor = make_executor(fan_out_agent, agent, llm_urls={"agent": router_url})
    async with (
        AppServer(build_app([executor])) as server,
        httpx.AsyncClient(base_url=server.url, timeout=120) as client,
    ):
        response = await client.post("/v1/pipelines/fan-out-agent", json={"topic": "grove"}, headers=headers)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 6


async def test_one_runs_llm_calls_share_its_session_and_land_on_one_worker(
    vllm_pd_pair: PDPair, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="grove.router")
    urls = [vllm_pd_pair.prefill.url, vllm_pd_pair.decode.url]
    server = await router(vllm_pd_pair, **aggregated(vllm_pd_pair))
    try:
        before = await served(http, urls)
        await run_pipeline(server.url, {"x-request-id": "run-one"})
        after = await served(http, urls)
        lines = routes(caplog)
        assert len(lines) == 6 and sessions_of(lines) == {"run-one"}, lines
        deltas = sorted(a - b for a, b in zip(after, before, strict=True))
        assert deltas == [0, 6], deltas  # the plan, the four siblings and the summary: one worker

        # the client names its own session (a coding agent's header): every call carries that one
        caplog.clear()
        await run_pipeline(server.url, {"x-claude-code-session-id": "agent-7"})
        lines = routes(caplog)
        assert len(lines) == 6 and sessions_of(lines) == {"agent-7"}, lines
    finally:
        await server.stop()


async def test_sessionless_siblings_land_together_and_round_robin_would_spread_them(
    vllm_pd_pair: PDPair, http: aiohttp.ClientSession
) -> None:
    urls = [vllm_pd_pair.prefill.url, vllm_pd_pair.decode.url]

    async def fan_out(policy: str, tag: str) -> list[float]:
        server = await router(vllm_pd_pair, **aggregated(vllm_pd_pair, policy))
        try:
            before = await served(http, urls)

            async def call(i: int) -> None:
                body = {"model": "tiny", "prompt": f"{tag} {CONTEXT} question {i}", "max_tokens": 2}
                async with http.post(f"{server.url}/v1/completions", json=body) as r:
                    assert r.status == 200, await r.text()

            await asyncio.gather(*(call(i) for i in range(4)))
            after = await served(http, urls)
        finally:
            await server.stop()
        return sorted(a - b for a, b in zip(after, before, strict=True))

    assert await fan_out("prefix", "siblings-a") == [0, 4]
    assert await fan_out("round_robin", "siblings-b") == [2, 2]


_DECISION = re.compile(
    r'^grove_router_decisions_total\{mode="([^"]+)",reason="([^"]+)"\}\s+(\S+)', re.MULTILINE
)


async def decisions(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as r:
        return {reason: float(v) for _, reason, v in _DECISION.findall(await r.text())}


async def test_the_decision_metric_counts_each_reason_of_conditional_disaggregation(
    vllm_pd_pair: PDPair, http: aiohttp.ClientSession
) -> None:
    pd = {"prefill": [vllm_pd_pair.prefill.url], "decode": [vllm_pd_pair.decode.url]}
    conditional = {"mode": "conditional", "min_uncached_tokens": 64, "max_prefill_in_flight": 1}
    server = await router(vllm_pd_pair, **pd, policy="prefix", disaggregation=conditional)
    headers: list[str] = []

    async def complete(prompt: str) -> None:
        body = {"model": "tiny", "prompt": prompt, "max_tokens": 2}
        async with http.post(f"{server.url}/v1/completions", json=body) as r:
            assert r.status == 200, await r.text()
            headers.append(r.headers["x-grove-route"])

    try:
        await complete(f"decide-1 {CONTEXT}")  # new to the decode worker: prefill remotely
        await complete(f"decide-1 {CONTEXT}")  # now cached there: prefill locally
        # four new prompts at once against a prefill pool that takes one at a time
        await asyncio.gather(*(complete(f"decide-{i} {CONTEXT}") for i in range(2, 6)))
        prefill = server.router.pools["prefill"].workers[0]
        prefill.healthy = False  # what three failed health checks do
        try:
            await complete(f"decide-9 {CONTEXT}")
        finally:
            prefill.healthy = True
        counted = await decisions(http, server.url)
    finally:
        await server.stop()
    kinds = [re.search(r"(remote-prefill|local-prefill)", h).group(1) for h in headers]  # type: ignore[union-attr]
    assert kinds[:2] == ["remote-prefill", "local-prefill"], headers[:2]
    assert counted.get("long-uncached", 0) >= 2  # the first, and the first of the four
    assert counted.get("short-uncached") == 1
    assert counted.get("prefill-saturated", 0) >= 1  # the others found the one prefill slot taken
    assert counted.get("no-prefill-worker") == 1
    assert sum(counted.values()) == len(headers) == 7  # every decision counted once

    always = await router(vllm_pd_pair, **pd, policy="round_robin")
    try:
        async with http.post(
            f"{always.url}/v1/completions", json={"model": "tiny", "prompt": "always", "max_tokens": 2}
        ) as r:
            assert r.status == 200
        assert (await decisions(http, always.url)).get("always") == 1
    finally:
        await always.stop()
