"""The agentic trace generator: deterministic, shared prefixes per agent, growing history, bounded prompts."""

from __future__ import annotations

from tests.bench.agentic_trace import RequestResult, generate_trace, summarize


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    assert generate_trace(seed=3) == generate_trace(seed=3)
    assert generate_trace(seed=3) != generate_trace(seed=4)


def test_sessions_of_one_agent_share_the_system_prefix_and_history_grows() -> None:
    trace = generate_trace(sessions=10, turns=3, agents=2, seed=1)
    by_agent: dict[str, set[str]] = {}
    for session in trace.sessions:
        by_agent.setdefault(session.agent, set()).add(session.turns[0].messages[0]["content"])
        lengths = [len(t.messages) for t in session.turns]
        assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
        # each turn's prompt extends the previous one (what a prefix cache can reuse)
        for before, after in zip(session.turns, session.turns[1:]):
            assert after.messages[: len(before.messages)] == before.messages
    assert all(len(prefixes) == 1 for prefixes in by_agent.values())
    assert len({next(iter(p)) for p in by_agent.values()}) == len(by_agent)


def test_prompts_stay_within_the_bound_and_arrivals_increase() -> None:
    trace = generate_trace(sessions=6, turns=12, turn_words=60, reply_words=60, max_prompt_chars=3000)
    assert max(r.prompt_chars() for r in trace.requests()) <= 3000
    arrivals = [s.arrival_s for s in trace.sessions]
    assert arrivals == sorted(arrivals) and arrivals[0] > 0


def test_summary_counts_errors_and_percentiles() -> None:
    results = [
        RequestResult(session_id="s", turn=i, status=200, ttft_s=i / 10, e2e_s=i / 5, completion_tokens=4)
        for i in range(1, 11)
    ] + [RequestResult(session_id="s", turn=99, status=503, e2e_s=0.1, error="busy")]
    summary = summarize(results, wall_s=2.0)
    assert summary.requests == 11 and summary.errors == 1
    assert 500 <= summary.ttft_p50_ms <= 600
    assert summary.req_per_s == 5.0 and summary.tokens_per_s == 20.0


def test_a_salted_trace_keeps_its_shape_but_shares_no_prefix_with_the_original() -> None:
    trace = generate_trace(sessions=4, turns=3, seed=2)
    salted = trace.salted("run-1")
    assert [len(s.turns) for s in salted.sessions] == [len(s.turns) for s in trace.sessions]
    for before, after in zip(trace.requests(), salted.requests(), strict=True):
        assert after.messages[0]["content"] == f"[run-1] {before.messages[0]['content']}"
        assert after.messages[1:] == before.messages[1:]
        assert after.session_id == f"run-1-{before.session_id}"
