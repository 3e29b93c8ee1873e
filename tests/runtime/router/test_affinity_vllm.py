"""Prefix- and session-aware routing on real vLLM: the workers' own prefix-cache hit counters rise more.

The two instances of the shared NIXL pair (``vllm_pd_pair``) serve here as two plain aggregated
workers: a request without ``kv_transfer_params`` is computed locally by either, with vLLM's prefix
cache on (the default). The same short agentic trace is replayed through a router with
``round_robin`` and then with ``prefix``; each replay is salted (a different tag at the start of every
prompt) so that neither reuses the KV cache the other left. The check is behavioural: the prompt
tokens the workers report as found in their prefix cache (``vllm:prefix_cache_hits``), not timings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from runtime.engines.vllm import PDPair
from runtime.router.cache_stats import WorkerCacheStats, parse_vllm_metrics
from runtime.router.config import load_config
from runtime.router.server import RouterServer
from tests.bench.agentic_trace import Trace, generate_trace, replay

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]

# 6 conversations of 4 turns over 2 agent types; the longest prompt is ~1.2k tokens (vLLM's CPU
# prefix cache works in 128-token blocks, so histories must span several blocks).
TRACE = generate_trace(
    sessions=6,
    turns=4,
    agents=2,
    rate_per_s=3.0,
    system_words=120,
    turn_words=40,
    reply_words=40,
    max_tokens=4,
    seed=6,
)


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        yield session


async def cache_stats(http: aiohttp.ClientSession, pair: PDPair) -> list[WorkerCacheStats]:
    out = []
    for proc in (pair.prefill, pair.decode):
        async with http.get(f"{proc.url}/metrics") as r:
            stats = parse_vllm_metrics(await r.text())
        assert stats is not None, f"{proc.name} exports no prefix-cache counters"
        out.append(stats)
    return out


async def hits_of(
    http: aiohttp.ClientSession, pair: PDPair, policy: str, trace: Trace
) -> tuple[float, float]:
    """Replay ``trace`` through a router with ``policy``; the prefix-cache (hit, query) tokens it caused."""
    config = load_config(
        overrides={
            "port": 0,
            "drain_timeout": 5,
            "worker": [pair.prefill.url, pair.decode.url],
            "policy": policy,
            "debug": True,  # the replay reads the x-grove-route header
        }
    )
    server = RouterServer(config)
    await server.start()
    try:
        before = await cache_stats(http, pair)
        results = await replay(trace, server.url, "tiny")
        after = await cache_stats(http, pair)
    finally:
        await server.stop()
    assert [r.error for r in results if r.error] == []
    assert all(r.routing and f"policy={policy}" in r.routing for r in results)
    if policy == "prefix":  # later turns name their session in the decision header
        assert any("session-affinity" in (r.routing or "") for r in results if r.turn > 0)
    hits = sum(a.prefix_hits - b.prefix_hits for a, b in zip(after, before, strict=True))
    queries = sum(a.prefix_queries - b.prefix_queries for a, b in zip(after, before, strict=True))
    return hits, queries


async def test_prefix_routing_makes_the_workers_hit_their_prefix_cache_more_than_round_robin(
    vllm_pd_pair: PDPair, http: aiohttp.ClientSession
) -> None:
    stats = await cache_stats(http, vllm_pd_pair)
    assert all(s.capacity_tokens and s.capacity_tokens > 0 for s in stats)  # cache_config_info is read
    rr_hits, rr_queries = await hits_of(http, vllm_pd_pair, "round_robin", TRACE.salted("rr"))
    px_hits, px_queries = await hits_of(http, vllm_pd_pair, "prefix", TRACE.salted("px"))
    assert rr_queries > 0 and px_queries > 0
    # the same trace queries about as many tokens either way; prefix routing finds more of them cached
    assert px_hits > rr_hits, (px_hits, rr_hits)
    assert px_hits / px_queries > rr_hits / rr_queries
