"""A worker's load is the work in flight on it: the prompt tokens it lacked when each request was routed there, plus output.

The pure tests route through a real :class:`Router` (its ``plan`` and ``commit``) and take each leg's
share of the counts with the real :class:`~runtime.router.legs.Load`, as ``legs.proxy`` does; the
expected token counts are worked out by hand from the prompts' lengths. The last tests send requests
through a running router to the fake vLLM worker (``tests/runtime/fake_vllm.py``, which speaks
vLLM's OpenAI protocol) and check that every way a leg ends gives its counts back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from runtime.router.config import load_config
from runtime.router.legs import Load
from runtime.router.policies import RequestView, work_tokens
from runtime.router.router import Router
from runtime.router.workers import Worker
from tests.runtime.conftest import MakeFake, MakeRouter, eventually

pytestmark = pytest.mark.timeout(30)

# 756 characters: 11 full blocks of 64 characters (16 tokens each at 4 characters per token)
CONTEXT = "The document every sibling call reads before its own question. " * 12
URLS = ["http://127.0.0.1:9301", "http://127.0.0.1:9302"]


def router_with(**params: Any) -> Router:
    """A router over two workers with the ``prefix`` policy (64-character blocks, no hit-counter correction)."""
    policy = {"name": "prefix", "params": {"block_chars": 64, "feedback": False, **params}}
    return Router(load_config(overrides={"worker": URLS, "policy": policy}))


def completion(prompt: str) -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": prompt, "max_tokens": 8})


def send(router: Router, req: RequestView, to: Worker | None = None) -> tuple[Worker, Load]:
    """Route ``req`` (to ``to`` if given, as if the policy had chosen it) and keep it in flight."""
    route = router.plan(req)
    assert route is not None
    if to is not None:
        route.worker = to
    router.commit(route, req)
    return route.worker, Load(router, route.worker, work_tokens(req, route.worker))


def test_a_cold_request_goes_to_the_worker_with_less_uncached_work_in_flight() -> None:
    placed: dict[str, Worker] = {}
    for counts in ("uncached", "prompt"):
        router = router_with(load_counts=counts, session_weight=0, fanout_weight=0)
        a, b = router.pools["worker"].workers
        send(router, completion(CONTEXT), to=a)[1].release()  # a finished request: CONTEXT is cached on a
        # in flight on a: three questions about CONTEXT, each 759 characters: 190 estimated tokens,
        # of which a holds the 11 blocks (176 tokens): 14 to compute + 8 to generate = 22 each
        loads = [send(router, completion(CONTEXT + f" q{i}"), to=a)[1] for i in range(3)]
        # in flight on b: one cold prompt of 300 characters: 76 tokens to compute + 8 = 84
        loads.append(send(router, completion("cold " * 60), to=b)[1])
        expected = (3 * 22, 84) if counts == "uncached" else (3 * (190 + 8), 84)
        assert (a.tokens_in_flight, b.tokens_in_flight) == expected
        # a new cold prompt (5 blocks to prefill anywhere): the cost differs only by the work in flight
        placed[counts], fresh = send(router, completion("fresh " * 60))
        assert placed[counts] is (a if counts == "uncached" else b)
        loads.append(fresh)
        for load in loads:
            load.release()
        assert a.tokens_in_flight == b.tokens_in_flight == 0 and a.in_flight == b.in_flight == 0


def _fan_out(counts: str, siblings: int, slack: float) -> list[int]:
    """Where ``siblings`` calls over CONTEXT, started together and all still in flight, are placed."""
    router = router_with(load_counts=counts, affinity_slack=slack)
    pool = router.pools["worker"].workers
    return [pool.index(send(router, completion(CONTEXT + f" question {q}"))[0]) for q in range(siblings)]


def test_fan_out_siblings_over_one_context_stay_together_under_the_cost_bound() -> None:
    # Each sibling: 767 characters, 192 estimated tokens, 11 full blocks of 16 tokens. By hand, with
    # uncached tokens as load: the first brings 192 + 8 = 200 tokens (12.5 blocks) to its worker, each
    # later one only its 16 uncached tokens + 8 (1.5 blocks). The first worker's cost for sibling k
    # (k >= 1) is 0 blocks to prefill + 12.5 + 1.5 (k - 1), the other's 11 + 0; with slack 5 the bound
    # is 16: siblings 1, 2, 3 (12.5, 14, 15.5) stay, sibling 4 (17) leaves.
    assert _fan_out("uncached", 5, slack=5) == [0, 0, 0, 0, 1]
    # Whole prompts as load: each sibling brings 12.5 blocks; sibling 2 already costs 25 > 16 and moves,
    # and sibling 3 follows it (12.5 on the new worker against 25)
    assert _fan_out("prompt", 5, slack=5)[:4] == [0, 0, 1, 1]


# Through a running router to the fake worker: 10 full blocks, then 100 more characters.
PROMPT = "y" * 640
NEXT = PROMPT + "z" * 100  # 740 characters: 186 estimated tokens, 160 of them (10 blocks) cached


async def _router(fakes: MakeFake, make_router: MakeRouter, **config: Any) -> tuple[Any, Any, Worker]:
    fake = await fakes("aggregated", tokens=20)
    policy = {"name": "prefix", "params": {"block_chars": 64, "feedback": False}}
    server = await make_router(worker=[fake.url], policy=policy, **config)
    return fake, server, server.router.pools["worker"].workers[0]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_leg_in_flight_counts_its_uncached_tokens_and_success_gives_them_back(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    fake, server, worker = await _router(fakes, make_router)
    async with http.post(f"{server.url}/v1/completions", json={"model": "tiny", "prompt": PROMPT}) as r:
        assert r.status == 200
    assert (worker.in_flight, worker.tokens_in_flight) == (0, 0)
    fake.set_delay(0.5)
    body = {"model": "tiny", "prompt": NEXT, "max_tokens": 5}
    request = asyncio.ensure_future(http.post(f"{server.url}/v1/completions", json=body))
    # by hand: 186 - 160 = 26 uncached tokens + 5 to generate
    await eventually(lambda: worker.in_flight == 1)
    assert worker.tokens_in_flight == 31
    async with await request as r:
        assert r.status == 200
    await eventually(lambda: worker.in_flight == 0)
    assert worker.tokens_in_flight == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_a_stream_counts_its_prompt_until_the_first_token_and_then_only_its_output(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    fake, server, worker = await _router(fakes, make_router)
    fake.set_delay(0.3)  # before the answer starts, and between its chunks
    body = {"model": "tiny", "prompt": NEXT, "max_tokens": 5, "stream": True}
    request = asyncio.ensure_future(http.post(f"{server.url}/v1/completions", json=body))
    await eventually(lambda: worker.in_flight == 1)
    # before the first token: 186 estimated prompt tokens (nothing cached yet) + 5 to generate
    assert worker.tokens_in_flight == int(740 / 4) + 1 + 5
    async with await request as r:
        assert r.status == 200
        await r.content.readline()  # the first chunk; four more follow, 0.3 s apart
        assert worker.in_flight == 1 and worker.tokens_in_flight == 5  # the prompt's share went with it
        await r.read()
    await eventually(lambda: worker.in_flight == 0)
    assert worker.tokens_in_flight == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_an_upstream_error_gives_the_counts_back(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    fake, server, worker = await _router(fakes, make_router, retry={"max_retries": 1})
    fake.fail_next(2, status=500)  # the first attempt and its retry
    async with http.post(f"{server.url}/v1/completions", json={"model": "tiny", "prompt": NEXT}) as r:
        assert r.status == 502
    assert len(fake.completions()) == 2
    assert (worker.in_flight, worker.tokens_in_flight) == (0, 0)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_cancelled_stream_gives_the_counts_back(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    fake, server, worker = await _router(fakes, make_router)
    fake.set_delay(0.05)
    body = {"model": "tiny", "prompt": NEXT, "max_tokens": 20, "stream": True}
    async with http.post(f"{server.url}/v1/completions", json=body) as r:
        await r.content.readline()  # the first chunk is in; the client goes away
        # past its first token, only the 20 output tokens are still work (the 186 prompt tokens are done)
        assert worker.in_flight == 1 and worker.tokens_in_flight == 20
    await eventually(lambda: fake.completions()[0].cancelled)
    await eventually(lambda: worker.in_flight == 0)
    assert worker.tokens_in_flight == 0
