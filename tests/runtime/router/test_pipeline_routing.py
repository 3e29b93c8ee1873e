"""Pipeline-aware routing, policy level: session headers, fan-out siblings, sticky until saturated (in requests or in work), the decider."""

from __future__ import annotations

import pytest

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.config import DisaggregationConfig
from runtime.router.policies import RequestView, make_policy, work_tokens
from runtime.router.policies.filters.cost_bound import CostBoundFilter
from runtime.router.policies.prefill_split_decider import DisaggDecider
from runtime.router.policies.scorers.fanout import FanoutScorer
from runtime.router.session_headers import session_from
from runtime.router.workers import Worker
from runtime.server.llm_calls import RUN_SESSION, llm_headers

pytestmark = pytest.mark.timeout(30)

CONTEXT = "The document every sibling call reads before its own question. " * 12


def workers(n: int, role: str = "worker") -> list[Worker]:
    return [Worker(f"http://127.0.0.1:{9300 + i}", role) for i in range(n)]  # type: ignore[arg-type]


def completion(prompt: str, session: str | None = None) -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": prompt, "max_tokens": 8}, session)


def test_session_headers_in_order_of_precedence_and_hostile_values_ignored() -> None:
    assert session_from({"Session-Id": "c", "X-Claude-Code-Session-Id": "b"}) == "b"
    assert session_from({"session-id": "c", "x-session-id": "a", "x-claude-code-session-id": "b"}) == "a"
    raw = [(b"session-id", b"c"), (b"x-claude-code-session-id", b"b")]
    assert session_from(raw) == "b"
    assert session_from([(b"x-session-id", b"x" * 257), (b"session-id", b"ok")]) == "ok"
    assert session_from({"x-session-id": "bad\x00value"}) is None
    assert session_from({"x-session-id": "  "}) is None
    assert session_from({"authorization": "Bearer k"}) is None


def test_a_session_key_is_printable_ascii_from_space_to_tilde() -> None:
    for code in range(0x300):  # every ASCII code, then some of Latin-1 and beyond
        char = chr(code)
        expected = f"a{char}b" if 0x20 <= code <= 0x7E else None
        assert session_from({"x-session-id": f"a{char}b"}) == expected, hex(code)
    assert session_from({"x-session-id": "\u2028"}) is None and session_from({"x-session-id": "é"}) is None


def test_every_llm_call_of_a_run_carries_its_session_the_client_one_first() -> None:
    assert llm_headers("run-1")["x-session-id"] == "run-1"
    token = RUN_SESSION.set("agent-7")
    try:
        assert llm_headers("run-1") == {"X-Request-Id": "run-1", "x-session-id": "agent-7"}
    finally:
        RUN_SESSION.reset(token)


def _place(policy_params: dict[str, object], siblings: int) -> tuple[list[Worker], list[str]]:
    """Route ``siblings`` calls started together (no session); each stays in flight, as in a fan-out."""
    policy = make_policy("prefix", {"block_chars": 64, **policy_params})
    pool = workers(2)
    chosen, reasons = [], []
    for i in range(siblings):
        view = completion(CONTEXT + f"Question {i}?")
        choice = policy.choose(pool, view)
        assert choice is not None
        policy.on_routed(choice.worker, view)
        choice.worker.in_flight += 1
        choice.worker.tokens_in_flight += work_tokens(view, choice.worker)  # as legs.Load counts it
        chosen.append(choice.worker)
        reasons.append(choice.reason)
    return chosen, reasons


def test_fan_out_siblings_go_where_the_first_went_and_without_it_they_spread() -> None:
    together, reasons = _place({}, 4)
    assert len(set(together)) == 1
    assert all("fan-out sibling" in r for r in reasons[1:])
    # the same calls without the fan-out signal: the first one's tokens in flight push the rest away
    spread, _ = _place({"fanout_weight": 0}, 4)
    assert len(set(spread)) == 2


def test_load_still_says_otherwise_for_siblings() -> None:
    chosen, reasons = _place({"balance_abs": 1, "balance_rel": 1.0}, 4)
    assert len(set(chosen)) == 2  # the guard moved siblings once the first worker was 2 ahead
    assert any("fan-out sibling moved from" in r for r in reasons)


def test_siblings_are_calls_started_together_not_any_calls_sharing_a_prefix() -> None:
    scorer = FanoutScorer(block_chars=64, window=1.0)
    pool = workers(2)
    scorer.on_routed(pool[0], completion(CONTEXT + "a"), now=100.0)
    assert scorer.match(completion(CONTEXT + "b"), now=100.5) == (pool[0].url, len(CONTEXT) // 64)
    assert scorer.match(completion(CONTEXT + "b"), now=101.5) is None  # past the window
    assert scorer.match(completion("something else entirely " * 10), now=100.5) is None
    assert scorer.match(completion(CONTEXT + "b", session="s"), now=100.5) is None  # sessions decide


def test_session_is_sticky_until_its_worker_is_saturated() -> None:
    policy = make_policy("prefix", {"block_chars": 64, "saturate_in_flight": 3})
    pool = workers(2)
    homes = []
    for turn in range(5):
        view = completion(CONTEXT + " turn" * turn, session="hot")
        choice = policy.choose(pool, view)
        assert choice is not None
        policy.on_routed(choice.worker, view)
        choice.worker.in_flight += 1
        homes.append((choice.worker, choice.reason))
    first = homes[0][0]
    assert [w for w, _ in homes[:3]] == [first] * 3
    # 3 in flight on the session's worker: saturated, so the 4th turn goes elsewhere and stays there
    assert homes[3][0] is not first and f"moved from {first.url}" in homes[3][1]
    assert homes[4][0] is homes[3][0]


def _hot_session_turn(params: dict[str, object], home_tokens_in_flight: int) -> tuple[Worker, Worker, str]:
    """A session's first turn routed; its home given ``home_tokens_in_flight``; where the next turn goes."""
    policy = make_policy(
        "prefix", {"block_chars": 64, "saturate_waiting": None, "balance_abs": 100, **params}
    )
    pool = workers(2)
    view = completion(CONTEXT, session="hot")
    first = policy.choose(pool, view)
    assert first is not None
    policy.on_routed(first.worker, view)
    first.worker.in_flight, first.worker.tokens_in_flight = 2, home_tokens_in_flight
    choice = policy.choose(pool, completion(CONTEXT + " next turn", session="hot"))  # the same 11 blocks
    assert choice is not None
    return first.worker, choice.worker, choice.reason


def test_session_affinity_is_bounded_by_the_cost_in_work_not_requests() -> None:
    # CONTEXT is 756 characters: 11 full blocks of 64, 16 tokens each (block_chars / chars_per_token). By
    # hand: home costs 0 blocks to prefill + its active blocks, the other worker 11 to prefill + 0 active.
    # 160 tokens in flight on home: 10 <= 11, home is the cheaper one; bounded or not, the turn stays
    for params in ({"affinity_slack": 2}, {}):
        home, chosen, _ = _hot_session_turn(params, 160)
        assert chosen is home
    # 496 tokens in flight on home: 31 > 11 + 2 slack, so the bounded policy moves the session
    home, chosen, reason = _hot_session_turn({"affinity_slack": 2}, 496)
    assert chosen is not home and f"moved from {home.url}" in reason
    # unbounded, 2 requests in flight is neither saturated nor far busier by count: it stays
    home, chosen, _ = _hot_session_turn({}, 496)
    assert chosen is home
    # a slack as large as the difference keeps it (31 <= 11 + 20), one block less does not
    home, chosen, _ = _hot_session_turn({"affinity_slack": 20}, 496)
    assert chosen is home
    home, chosen, _ = _hot_session_turn({"affinity_slack": 19}, 496)
    assert chosen is not home


def test_cost_bound_keeps_the_workers_within_slack_of_the_cheapest() -> None:
    pool = workers(4)
    costs = {pool[0].url: 7.0, pool[1].url: 3.0, pool[2].url: 5.0, pool[3].url: 5.5}
    bound = CostBoundFilter(lambda w, req, now: costs[w.url], slack=2.0)
    view = completion("x")
    assert bound.filter(pool, view) == [pool[1], pool[2]]  # 3 and 5 are within 3 + 2; 5.5 and 7 are not
    assert CostBoundFilter(bound.cost, slack=0).filter(pool, view) == [pool[1]]
    assert bound.filter(pool[:1], view) == pool[:1]


def test_engine_reported_queue_saturates_a_worker_too() -> None:
    policy = make_policy("prefix", {"block_chars": 64, "saturate_waiting": 2})
    pool = workers(2)
    first = policy.choose(pool, completion(CONTEXT, session="s"))
    assert first is not None
    policy.on_routed(first.worker, completion(CONTEXT, session="s"))
    policy.on_worker_stats(first.worker.url, WorkerCacheStats(prefix_queries=1, prefix_hits=0, waiting=2))
    again = policy.choose(pool, completion(CONTEXT + "more", session="s"))
    assert again is not None and again.worker is not first.worker


def test_decider_prefers_the_workers_own_state_and_reads_the_prefill_queue() -> None:
    config = DisaggregationConfig(mode="conditional", min_uncached_tokens=100, max_prefill_in_flight=3)
    known: dict[str, int | None] = {}
    decider = DisaggDecider(config, precise=lambda worker, req: known.get(worker.url))
    decode, prefill = workers(1, "decode")[0], workers(2, "prefill")
    view = completion(CONTEXT)
    # no precise state: the estimate (nothing routed there yet: all of the prompt is uncached)
    assert decider.decide(decode, view, prefill).kind == "long-uncached"
    known[decode.url] = 40  # the decode worker's events: only 40 tokens missing
    verdict = decider.decide(decode, view, prefill)
    assert (verdict.kind, verdict.remote) == ("short-uncached", False) and "40 uncached" in verdict.reason
    known[decode.url] = 500
    assert decider.decide(decode, view, prefill).kind == "long-uncached"
    # each prefill worker: 1 of ours in flight + 2 waiting in its engine = 3 = the limit
    for w in prefill:
        w.in_flight = 1
        decider.on_worker_stats(w, WorkerCacheStats(prefix_queries=0, prefix_hits=0, waiting=2))
    assert decider.decide(decode, view, prefill).kind == "prefill-saturated"
    decider.on_worker_stats(prefill[1], WorkerCacheStats(prefix_queries=0, prefix_hits=0, waiting=1))
    assert decider.decide(decode, view, prefill).kind == "long-uncached"
    assert decider.decide(decode, view, []).kind == "no-prefill-worker"
