"""Prefix and session affinity: stickiness, the load guard, eviction of the estimate, the explanation.

The policy-level tests drive the policies directly (the load is set on the workers by hand, as the
router's flow would); the last ones go through a real router on loopback in front of fake vLLM
workers that serve the prefix-cache counters of vLLM's ``/metrics``.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from runtime.router.cache_stats import WorkerCacheStats, parse_vllm_metrics
from runtime.router.policies import Policy, RequestView, make_policy
from runtime.router.policies.cache.cache_feedback import CacheFeedback
from runtime.router.policies.cache.prefix_index import PrefixIndex
from runtime.router.policies.scorers.prefix import PrefixParams, PrefixScorer
from runtime.router.policies.scorers.session import SessionAffinityScorer
from runtime.router.workers import Worker
from tests.runtime.conftest import MakeFake, MakeRouter

SYSTEM = "You are a careful agent with tools for search and code. " * 8


def workers(n: int) -> list[Worker]:
    return [Worker(f"http://127.0.0.1:{9100 + i}", "worker") for i in range(n)]


def chat(*turns: str, session: str | None = None, **body: object) -> RequestView:
    messages = [{"role": "system", "content": SYSTEM}]
    messages += [{"role": "user", "content": t} for t in turns]
    return RequestView("chat", {"model": "tiny", "messages": messages, **body}, session)


def route(policy: Policy, pool: list[Worker], view: RequestView) -> tuple[Worker, str]:
    """Choose, then commit as the router does (the policy learns where the request went)."""
    choice = policy.choose(pool, view)
    assert choice is not None
    policy.on_routed(choice.worker, view)
    return choice.worker, choice.reason


def test_repeated_prefixes_stay_on_one_worker_until_the_load_guard_trips() -> None:
    policy = make_policy("prefix", {"block_chars": 64, "balance_abs": 3, "session_weight": 0})
    pool = workers(2)
    first, reason = route(policy, pool, chat("turn 0"))
    assert reason.startswith("cache-miss 0/")
    first.in_flight = 1
    picks = []
    for i in range(1, 8):
        worker, reason = route(policy, pool, chat(f"turn {i}"))
        picks.append((worker, reason))
        worker.in_flight += 1  # still running: the load builds up where the prefix lives
    stayed = [w for w, _ in picks[:3]]
    assert stayed == [first] * 3 and all(r.startswith("cache-hit ") for _, r in picks[:3])
    # first has 4 in flight against 0: past balance_abs=3, the guard sends the next one away
    other, reason = picks[3]
    assert other is not first and reason.startswith("cache-miss 0/")


def test_session_affinity_holds_across_turns_and_between_sessions() -> None:
    policy = make_policy("prefix", {"block_chars": 64})
    pool = workers(2)
    homes: dict[str, Worker] = {}
    history: dict[str, list[str]] = {"a": [], "b": [], "c": [], "d": []}
    for turn in range(4):
        for worker in pool:  # the previous turns have finished
            worker.in_flight = worker.tokens_in_flight = 0
        for session, said in history.items():
            said.append(f"{session} says {turn}")
            view = chat(*said, session=session)
            worker, reason = route(policy, pool, view)
            worker.in_flight += 1  # the sessions' turns run at the same time, as the flow counts them
            worker.tokens_in_flight += view.est_prompt_tokens() + view.max_tokens
            if turn == 0:
                homes[session] = worker
                assert f"session {session} new" in reason
            else:
                assert worker is homes[session]
                assert f"session-affinity {session}" in reason
    assert set(homes.values()) == set(pool)  # new sessions were spread, not piled up


def test_session_affinity_beats_a_better_prefix_elsewhere_and_the_header_says_it_decided() -> None:
    policy = make_policy("prefix", {"block_chars": 64})
    pool = workers(2)
    question = "a long shared question " * 10
    policy.on_routed(pool[1], chat(question))  # the whole prompt is cached on pool[1]
    policy.on_routed(pool[0], chat("earlier", session="s7"))  # the session lives on pool[0]
    worker, reason = route(policy, pool, chat(question, session="s7"))
    assert worker is pool[0]
    assert "session-affinity s7 (decided)" in reason and "cache-hit" in reason


def test_the_openai_user_field_is_a_session_key_too() -> None:
    policy = make_policy("prefix", {"block_chars": 64})
    pool = workers(2)
    first, _ = route(policy, pool, chat("hello", user="alice"))
    again, reason = route(policy, pool, chat("something else", user="alice"))
    assert again is first and "session-affinity alice" in reason


def test_a_hot_session_is_moved_by_the_load_guard_and_then_stays_on_its_new_worker() -> None:
    policy = make_policy("prefix", {"block_chars": 64, "balance_abs": 4})
    pool = workers(2)
    home, _ = route(policy, pool, chat("go", session="hot"))
    home.in_flight = 9  # the session's earlier requests are all still running there
    moved, reason = route(policy, pool, chat("go", "more", session="hot"))
    assert moved is not home and f"session hot moved from {home.url}" in reason
    home.in_flight = 0
    again, reason = route(policy, pool, chat("go", "more", "again", session="hot"))
    assert again is moved and "session-affinity hot" in reason


def test_sessions_age_out_after_their_ttl_and_when_their_worker_leaves() -> None:
    scorer = SessionAffinityScorer(ttl=10.0)
    pool = workers(2)
    scorer.on_routed(pool[0], chat("x", session="s"), now=100.0)
    scorer.on_routed(pool[1], chat("x", session="t"), now=100.0)
    assert scorer.worker_of("s", now=105.0) == pool[0].url
    assert scorer.worker_of("s", now=111.0) is None
    scorer.on_membership([pool[0].url])
    assert scorer.worker_of("t", now=101.0) is None


def test_the_index_is_capped_at_the_workers_own_cache_size_oldest_out_first() -> None:
    index = PrefixIndex(capacity=100, ttl=1000.0)
    index.insert("w", list(range(10)), now=1.0)
    index.set_capacity("w", 4)
    assert index.size("w") == 4 and index.overlap("w", [6, 7, 8, 9], now=2.0) == 4
    assert index.overlap("w", [0], now=2.0) == 0
    index.set_capacity("w", 10_000)  # never above the configured capacity
    assert index.capacity_of("w") == 100
    assert index.drop_oldest("w", 0.5) == 2 and index.overlap("w", [8, 9], now=2.0) == 2


def test_feedback_clears_after_a_restart_and_trims_when_hits_fall_short() -> None:
    fb = CacheFeedback(min_ratio=0.5, min_chars=100)
    assert fb.observe("w", WorkerCacheStats(1000, 800)).reason == "first scrape"
    fb.expect("w", prompt_chars=1000, cached_chars=900)  # the index predicted 90 % cached
    fix = fb.observe("w", WorkerCacheStats(2000, 1700))  # the worker found 90 % cached
    assert not fix.clear and fix.drop == 0
    fb.expect("w", prompt_chars=1000, cached_chars=800)  # predicted 80 %
    fix = fb.observe("w", WorkerCacheStats(3000, 1900))  # found 20 %: evicted behind our back
    assert fix.drop == pytest.approx(0.75)
    fix = fb.observe("w", WorkerCacheStats(10, 0))  # counters went back: a restarted worker
    assert fix.clear and "restarted" in fix.reason


def test_worker_stats_age_the_prefix_estimate_out() -> None:
    scorer = PrefixScorer(PrefixParams(block_chars=64, feedback_min_ratio=0.5))
    pool = workers(1)
    view = chat("a question " * 200)  # 3 x 2.5k characters: enough traffic to judge
    scorer.on_worker_stats(pool[0].url, WorkerCacheStats(0, 0, capacity_tokens=65536))
    for _ in range(3):
        scorer.on_routed(pool[0], view)
    assert scorer.explain(pool[0], view).startswith("cache-hit ")
    scorer.on_worker_stats(pool[0].url, WorkerCacheStats(3000, 0))  # 2 of 3 were predicted hits; none were
    assert scorer.index.size(pool[0].url) == 0
    assert scorer.explain(pool[0], view).startswith("cache-miss ")


def test_parse_vllm_metrics_sums_engines_and_reads_the_cache_size() -> None:
    text = (
        "# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.\n"
        'vllm:prefix_cache_queries_total{engine="0",model_name="tiny"} 1306.0\n'
        'vllm:prefix_cache_queries_created{engine="0",model_name="tiny"} 1.79e+09\n'
        'vllm:prefix_cache_queries_total{engine="1",model_name="tiny"} 10.0\n'
        'vllm:prefix_cache_hits_total{engine="0",model_name="tiny"} 640.0\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25\n'
        'vllm:cache_config_info{block_size="128",engine="0",num_gpu_blocks="512"} 1.0\n'
    )
    assert parse_vllm_metrics(text) == WorkerCacheStats(1316.0, 640.0, 0.25, 65536)
    assert parse_vllm_metrics("grove_router_requests_total 3\n") is None


async def post_chat(http: aiohttp.ClientSession, url: str, view: RequestView, session: str | None) -> str:
    headers = {"x-session-id": session} if session else {}
    async with http.post(f"{url}/v1/chat/completions", json=view.body, headers=headers) as r:
        assert r.status == 200, await r.text()
        return r.headers["x-grove-route"]


@pytest.mark.asyncio(loop_scope="session")
async def test_the_router_keeps_a_session_on_its_worker_and_says_why(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    pool = [await fakes(), await fakes()]
    router = await make_router(worker=[f.url for f in pool], policy={"name": "prefix"})
    headers = [
        await post_chat(http, router.url, chat(*[f"turn {i}" for i in range(t + 1)]), "conv-1")
        for t in range(4)
    ]
    assert "reason=session conv-1 new" in headers[0]
    worker = headers[0].split("worker=")[1].split(";")[0]
    for header in headers[1:]:
        assert f"worker={worker};" in header and "session-affinity conv-1" in header
    served = next(f for f in pool if f.url == worker)
    assert len(served.completions()) == 4
    assert all("x-session-id" not in s.headers for s in served.completions())  # not forwarded


@pytest.mark.asyncio(loop_scope="session")
async def test_the_router_forgets_what_a_restarted_worker_held(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    fake = await fakes()
    fake.prefix_queries, fake.prefix_hits = 5000.0, 4000.0
    router = await make_router(
        worker=[fake.url], policy={"name": "prefix"}, health={"cache_stats_interval": 0.05}
    )
    view = chat("what does the tool return?")
    await post_chat(http, router.url, view, None)
    assert "cache-hit " in await post_chat(http, router.url, view, None)
    fake.prefix_queries, fake.prefix_hits = 0.0, 0.0  # the worker restarted: its cache is empty
    scorer = next(s for s, _ in router.router.policies["worker"].scorers if isinstance(s, PrefixScorer))
    for _ in range(200):
        if scorer.index.size(fake.url) == 0:
            break
        await asyncio.sleep(0.05)
    assert "cache-miss " in await post_chat(http, router.url, view, None)
