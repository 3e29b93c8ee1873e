"""The routing benchmark's bookkeeping: the oracle's LRU reuse, medians with spread, who may win."""

from __future__ import annotations

import math

import pytest

from tests.bench.agentic_trace import RequestResult, Summary
from tests.bench.trace_routing import (
    RunResult,
    Target,
    oracle_hit_tokens,
    oracle_hits,
    paired_key,
    paired_ttft_ratio,
    ratio_line,
    request_key,
    reusable_ratio_line,
    reusable_ttft_p50_ms,
    summarize_target,
)

pytestmark = pytest.mark.timeout(30)


def test_oracle_hits_leading_cached_blocks_and_evicts_the_least_recently_used() -> None:
    a = list(range(10))  # 2 full blocks of 4 (+2 tokens)
    b = list(range(100, 110))
    # a, a again (8 of its 10 tokens cached), b, then a: with room for 2 blocks, b evicted a
    assert oracle_hit_tokens([a, a, b, a], block_size=4, capacity_blocks=2) == (8, 40)
    assert oracle_hit_tokens([a, a, b, a], block_size=4, capacity_blocks=4) == (16, 40)
    # the last token is always computed: a prompt of exactly 2 blocks hits at most 1 of them
    exact = list(range(8))
    assert oracle_hit_tokens([exact, exact], block_size=4, capacity_blocks=8) == (4, 16)


def test_oracle_marks_which_requests_find_a_cached_prefix() -> None:
    a, b = list(range(10)), list(range(100, 110))
    # per request: a new, a again (2 blocks of 4), b new, a again (b evicted one of a's two blocks)
    assert oracle_hits([a, a, b, a], block_size=4, capacity_blocks=2) == [0, 8, 0, 0]
    assert oracle_hits([a, a, b, a], block_size=4, capacity_blocks=4) == [0, 8, 0, 8]


def test_reusable_ttft_is_the_median_over_the_requests_the_oracle_can_serve_from_cache() -> None:
    def result(session: str, turn: int, ttft: float | None) -> RequestResult:
        return RequestResult(session_id=session, turn=turn, status=200, ttft_s=ttft, e2e_s=1.0)

    # a run's results carry its salt tag; the oracle's keys do not
    assert request_key("m0102-h15", 3) == ("h15", 3)
    results = [
        result("m0102-h1", 0, 0.100),  # first of its session: not reusable
        result("m0102-h1", 1, 0.010),
        result("m0102-h2", 2, 0.030),
        result("m0102-h2", 3, None),  # no token: not counted
        result("m0102-h3", 4, 0.020),
    ]
    reusable = {("h1", 1), ("h2", 2), ("h2", 3), ("h3", 4)}
    assert reusable_ttft_p50_ms(results, reusable) == pytest.approx(20.0)
    assert math.isnan(reusable_ttft_p50_ms(results, set()))


def _run(label: str, round_: int, p50: float, errors: int = 0, hits: float = 50.0) -> RunResult:
    summary = Summary(
        requests=10,
        errors=errors,
        ttft_p50_ms=p50,
        ttft_p90_ms=2 * p50,
        ttft_p99_ms=3 * p50,
        e2e_p50_ms=p50,
        req_per_s=1.0,
        tokens_per_s=1.0,
        wall_s=1.0,
    )
    return RunResult(
        label=label,
        round=round_,
        summary=summary,
        hit_tokens=hits,
        query_tokens=100.0,
        reusable_ttft_p50_ms=p50 / 2,
    )


def test_medians_spread_errors_and_the_ratio_line() -> None:
    ours = Target(label="router prefix", ours=True, argv=["x", "--port", "1"])
    rr = Target(label="router round_robin", ours=True, argv=["x", "--port", "2"])
    fast = Target(label="vllm-router fast", ours=False, argv=["x", "--port", "3"])
    slow = Target(label="vllm-router slow", ours=False, argv=["x", "--port", "4"])
    results = [
        *(_run(ours.label, r, p, hits=h) for r, (p, h) in enumerate([(10, 90), (30, 80), (20, 100)])),
        *(_run(rr.label, r, p) for r, p in enumerate([40, 40, 50])),
        *(_run(fast.label, r, 5, errors=1 if r == 0 else 0) for r in range(3)),  # fastest, but erred
        *(_run(slow.label, r, p) for r, p in enumerate([25, 25, 30])),
    ]
    summaries = [
        s
        for t in (ours, rr, fast, slow)
        if (s := summarize_target(t, results, oracle_cached=100)) is not None
    ]
    mine = summaries[0]
    assert (mine.ttft_p50_ms, mine.ttft_p50_min, mine.ttft_p50_max) == (20, 10, 30)
    assert mine.reuse_captured == pytest.approx(0.9) and mine.errors == 0
    assert summaries[2].errors == 1
    # the erring vllm-router target does not win: the best is the slow one (25 ms)
    assert ratio_line("trace_prefix", summaries, ours.label, rr.label) == (
        "trace_prefix_ttft_p50_vs_round_robin=0.50 trace_prefix_ttft_p50_vs_best_vllm_router=0.80 reuse_captured=0.90"
    )
    assert ratio_line("agentic_prefix", summaries, ours.label, rr.label).endswith(
        "agentic_reuse_captured=0.90"
    )
    assert ratio_line("trace_light_prefix", summaries, ours.label, rr.label).startswith(
        "trace_light_prefix_ttft_p50_vs_round_robin=0.50 "
    )
    # over the reusable requests (half of each p50 here): the same ratios
    assert reusable_ratio_line("trace_prefix", summaries, ours.label, rr.label) == (
        "trace_prefix_reusable_ttft_p50_vs_round_robin=0.50 trace_prefix_reusable_ttft_p50_vs_best_vllm_router=0.80"
    )


def test_the_paired_ratio_compares_each_request_with_itself_in_the_same_round() -> None:
    def run(label: str, round_: int, ttfts: dict[str, float], ok: bool = True) -> RunResult:
        base = _run(label, round_, 10)
        return base.model_copy(update={"ttft_by_request": ttfts, "summary": base.summary if ok else None})

    # keys drop the run's salt, so the same request matches across targets
    assert paired_key("m0102-h15", 3) == paired_key("m0103-h15", 3) == "h15#3"
    results = [
        run("ours", 0, {"a#0": 0.02, "a#1": 0.01, "b#0": 0.30}),
        run("theirs", 0, {"a#0": 0.01, "a#1": 0.04, "c#0": 0.05}),  # b#0 and c#0 have no pair
        run("ours", 1, {"a#0": 0.03}),
        run("theirs", 1, {"a#0": 0.03}),
        run("ours", 2, {"a#0": 1.0}),  # round 2 of theirs failed: no pairs from it
        run("theirs", 2, {"a#0": 0.01}, ok=False),
        run("theirs", 3, {"a#0": 0.5}),  # ours never ran round 3
    ]
    ratio, pairs = paired_ttft_ratio(results, "ours", "theirs")
    # pairs: 2, 1/4 (round 0) and 1 (round 1): geometric mean (2 * 0.25 * 1) ** (1/3)
    assert pairs == 3
    assert ratio == pytest.approx(0.5 ** (1 / 3))
    assert paired_ttft_ratio(results, "ours", "nobody") == (pytest.approx(float("nan"), nan_ok=True), 0)
