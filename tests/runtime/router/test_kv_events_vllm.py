"""Precise cache state on real vLLM: a worker's own KV events fill the router's index and evictions empty it.

Uses ``vllm_kv_worker`` (``tests/vllm_fixtures.py``): one aggregated tiny-model worker with KV events
on ZMQ, 32-token blocks and a cache of 24 blocks, so a few other prompts evict a first one. The
router runs in-process with the ``prefix`` policy in precise mode (the model's tokenizer and the
worker's events address). References are independent of the index: the prompt's token count from
the tokenizer (full 32-token blocks of it), and the worker's cache size.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from runtime.router.config import load_config
from runtime.router.policies import RequestView
from runtime.router.policies.cache.precise_cache import PreciseCache
from runtime.router.policies.scorers.prefix import PrefixScorer
from runtime.router.server import RouterServer
from tests.bench.mooncake_trace import block_text
from tests.runtime.router.tool_templates import WEATHER
from tests.vllm_fixtures import KVEventsWorker

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def precise_policy(worker: KVEventsWorker, model: Path) -> dict[str, Any]:
    """The ``prefix`` policy fed by the worker's events (pending keys short-lived, to see events alone)."""
    params = {"tokenizer": str(model), "kv_events": {worker.proc.url: worker.events}, "kv_pending_ttl": 0.2}
    return {"name": "prefix", "params": params}


def precise_router(source: KVEventsWorker, model: Path, /, **settings: Any) -> RouterServer:
    """The router in-process, precise state fed by ``source``'s events; ``settings`` name its pools and the rest."""
    overrides = {
        "port": 0,
        "debug": True,  # the tests read the x-grove-route header
        "drain_timeout": 5,
        "policy": precise_policy(source, model),
        **settings,
    }
    return RouterServer(load_config(overrides=overrides))


def _precise(server: RouterServer) -> PreciseCache:
    """The precise cache state of the router's ``prefix`` policy."""
    for scorer, _ in server.router.policies["worker"].scorers:
        if isinstance(scorer, PrefixScorer) and scorer.precise is not None:
            return scorer.precise
    raise AssertionError("the prefix policy has no precise state")


async def _until(check: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Poll ``check`` every 50 ms for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def _complete(http: aiohttp.ClientSession, url: str, prompt: str) -> str:
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 2, "temperature": 0}
    async with http.post(f"{url}/v1/completions", json=body) as r:
        assert r.status == 200, await r.text()
        return r.headers.get("x-grove-route", "")


async def test_a_requests_blocks_appear_in_the_index_and_an_eviction_removes_them(
    vllm_kv_worker: KVEventsWorker, tiny_model: Path, http: aiohttp.ClientSession
) -> None:
    from transformers import AutoTokenizer

    worker = vllm_kv_worker.proc.url
    server = precise_router(vllm_kv_worker, tiny_model, worker=[worker])
    await server.start()
    try:
        precise = _precise(server)
        index = precise.index
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
        prompt = block_text(1, 520)
        tokens = len(tokenizer(prompt)["input_ids"])
        full_blocks = (tokens - 1) // vllm_kv_worker.block_size  # vLLM never caches the last token alone
        assert full_blocks >= 3, tokens

        first = await _complete(http, server.url, prompt)
        # before the worker's first event its block size is unknown: the estimate decides
        assert "cache-miss 0/" in first, first
        # the events travel after the answer (the engine's publisher thread): wait for the first
        assert await _until(lambda: index.block_size(worker) is not None)
        keys = precise.keys(worker, _view(prompt))
        assert keys is not None and keys[2] == vllm_kv_worker.block_size  # learned from the events
        prompt_keys = keys[0][:full_blocks]
        # the worker's BlockStored events name exactly the prompt's full blocks
        assert await _until(lambda: all(index.holds(worker, k) for k in prompt_keys)), index.size(worker)
        again = await _complete(http, server.url, prompt)
        assert f"kv-hit {full_blocks}/{full_blocks} blocks" in again, again

        # other prompts fill the 24-block cache; vLLM evicts the first prompt's blocks and says so
        for i in range(2, 8):
            await _complete(http, server.url, block_text(i, 520))
        assert await _until(lambda: not any(index.holds(worker, k) for k in prompt_keys))
        assert index.size(worker) <= vllm_kv_worker.blocks
        await asyncio.sleep(0.3)  # past kv_pending_ttl: only the worker's events count
        after = await _complete(http, server.url, prompt)
        assert "kv-miss 0/" in after, after
    finally:
        await server.stop()


def _view(prompt: str) -> RequestView:
    """The request as the router sees it."""
    return RequestView("completions", {"model": "tiny", "prompt": prompt})


async def test_conditional_disaggregation_decides_from_the_decode_workers_own_events(
    vllm_kv_worker: KVEventsWorker, tiny_model: Path, http: aiohttp.ClientSession
) -> None:
    """The decider counts the decode worker's uncached tokens from its events, not from a guess.

    The KV-events worker stands in both pools (only decisions are inspected; the one request sent
    through the router is prefilled locally, so no KV transfer is involved).
    """
    from transformers import AutoTokenizer

    worker, size = vllm_kv_worker.proc.url, vllm_kv_worker.block_size
    server = precise_router(
        vllm_kv_worker,
        tiny_model,
        prefill=[worker],
        decode=[worker],
        disaggregation={"mode": "conditional", "min_uncached_tokens": 64},
    )
    await server.start()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
        cached_prompt, new_prompt = block_text(21, 520), block_text(22, 520)
        scorer = next(s for s, _ in server.router.policies["decode"].scorers if isinstance(s, PrefixScorer))
        assert scorer.precise is not None
        index = scorer.precise.index
        # ZMQ subscribers join late: warm up with other prompts until the router hears the worker
        for attempt in range(10):
            await _complete(http, worker, block_text(40 + attempt, 200))
            if await _until(lambda: index.block_size(worker) is not None, 3.0):
                break
        assert index.block_size(worker) == size
        await _complete(http, worker, cached_prompt)  # straight to the worker: the router never saw it
        keys = scorer.precise.keys(worker, _view(cached_prompt))
        assert keys is not None
        tokens = len(tokenizer(cached_prompt)["input_ids"])
        full = (tokens - 1) // size
        assert await _until(lambda: all(scorer.precise.index.holds(worker, k) for k in keys[0][:full]))  # type: ignore[union-attr]

        local = server.router.plan(_view(cached_prompt))
        assert local is not None and local.mode == "local-prefill", local
        assert f"{tokens - full * size} uncached tokens < 64 (by its KV events)" in local.reason
        remote = server.router.plan(_view(new_prompt))
        assert remote is not None and remote.mode == "disaggregated", remote
        new_tokens = len(tokenizer(new_prompt)["input_ids"])
        assert f"{new_tokens} uncached tokens >= 64 (by its KV events)" in remote.reason

        route = await _complete(http, server.url, cached_prompt)
        assert "mode=local-prefill" in route and "(by its KV events)" in route, route
    finally:
        await server.stop()


async def test_an_agents_tool_chat_is_indexed_under_the_routers_own_tokens_of_it(
    vllm_kv_worker: KVEventsWorker, tiny_model: Path, http: aiohttp.ClientSession
) -> None:
    """A chat with tools, a tool call and tool results: the worker's events name the router's own keys of it.

    The router tokenizes the chat itself (normalized as vLLM normalizes it, ``cache/vllm_chat.py``); the
    worker reports the blocks of the tokens it rendered, so the keys match only if the tokens do. The
    worker has no tool parser, so the chat asks for ``tool_choice: none`` (the prompt is the same).
    """
    worker, size = vllm_kv_worker.proc.url, vllm_kv_worker.block_size
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    body = {
        "model": "tiny",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": block_text(31, 200)}]},
            {"role": "user", "content": block_text(32, 160)},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": block_text(33, 240)}],
            },
            {"role": "user", "content": "and tomorrow?"},
        ],
        "tools": [WEATHER],
        "tool_choice": "none",
        "max_tokens": 2,
        "temperature": 0,
    }
    server = precise_router(vllm_kv_worker, tiny_model, worker=[worker])
    await server.start()
    try:
        precise = _precise(server)
        index = precise.index
        async with http.post(f"{server.url}/v1/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
        assert await _until(lambda: index.block_size(worker) is not None)
        keys = precise.keys(worker, RequestView("chat", body))
        assert keys is not None, "the tool chat was routed by estimate"
        full_blocks = (keys[1] - 1) // size
        assert full_blocks >= 3, keys[1]
        prompt_keys = keys[0][:full_blocks]
        assert await _until(lambda: all(index.holds(worker, k) for k in prompt_keys)), index.size(worker)
        async with http.post(f"{server.url}/v1/chat/completions", json=body) as r:
            assert r.status == 200, await r.text()
            route = r.headers.get("x-grove-route", "")
        assert f"kv-hit {full_blocks}/{full_blocks} blocks" in route, route
    finally:
        await server.stop()


async def test_a_salted_prompts_blocks_are_not_claimed_for_the_same_tokens_unsalted(
    vllm_kv_worker: KVEventsWorker, tiny_model: Path, http: aiohttp.ClientSession
) -> None:
    """vLLM hashes a ``cache_salt`` into the prompt's blocks, so an unsalted prompt cannot reuse them.

    A salted completion is sent first, then an unsalted other prompt; the events arrive in order, so
    once the second prompt's blocks are in the index the first one's events were applied too.
    """
    worker = vllm_kv_worker.proc.url
    salted_prompt, marker = block_text(41, 520), block_text(42, 520)
    server = precise_router(vllm_kv_worker, tiny_model, worker=[worker])
    await server.start()
    try:
        precise = _precise(server)
        body = {"model": "tiny", "prompt": salted_prompt, "max_tokens": 2, "cache_salt": "s" * 32}
        async with http.post(f"{server.url}/v1/completions", json=body) as r:
            assert r.status == 200, await r.text()
        await _complete(http, server.url, marker)
        assert await _until(lambda: index_holds(precise, worker, marker))
        salted = precise.keys(worker, _view(salted_prompt))
        assert salted is not None
        assert not any(precise.index.holds(worker, k) for k in salted[0])
    finally:
        await server.stop()


def index_holds(precise: PreciseCache, worker: str, prompt: str) -> bool:
    """Whether the worker's index holds every full block of ``prompt`` (the router's own keys of it)."""
    found = precise.keys(worker, _view(prompt))
    if found is None:
        return False
    keys, tokens, size = found
    return all(precise.index.holds(worker, k) for k in keys[: (tokens - 1) // size])
