"""Conditional disaggregation: remote prefill only when the decode worker would have much to compute."""

from __future__ import annotations

from runtime.router.config import DisaggregationConfig
from runtime.router.policies import RequestView
from runtime.router.policies.prefill_split_decider import DisaggDecider
from runtime.router.workers import Worker

DECODE = Worker("http://127.0.0.1:9100", "decode")
PREFILL = [Worker("http://127.0.0.1:9000", "prefill"), Worker("http://127.0.0.1:9001", "prefill")]


def req(prompt: str) -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": prompt})


def conditional(**kw: object) -> DisaggDecider:
    return DisaggDecider(DisaggregationConfig(mode="conditional", block_chars=16, chars_per_token=4.0, **kw))


def test_always_mode_prefills_remotely_whatever_the_prompt() -> None:
    verdict = DisaggDecider(DisaggregationConfig()).decide(DECODE, req("hi"), PREFILL)
    assert verdict.remote and verdict.kind == "always"


def test_short_prompt_is_prefilled_on_the_decode_worker_and_the_reason_says_why() -> None:
    verdict = conditional(min_uncached_tokens=256).decide(DECODE, req("x" * 384), PREFILL)
    assert not verdict.remote
    assert verdict.reason == "local-prefill: 96 uncached tokens < 256"


def test_long_uncached_prompt_goes_to_a_prefill_worker() -> None:
    verdict = conditional(min_uncached_tokens=256).decide(DECODE, req("x" * 2048), PREFILL)
    assert verdict.remote and verdict.reason == "remote-prefill: 512 uncached tokens >= 256"


def test_long_prompt_whose_prefix_the_decode_worker_holds_stays_local() -> None:
    decider = conditional(min_uncached_tokens=64)
    history = "a long shared agent history. " * 70  # ~2000 chars
    decider.on_routed(DECODE, req(history))
    follow_up = history + "and one new question?"
    verdict = decider.decide(DECODE, req(follow_up), PREFILL)
    assert not verdict.remote and verdict.kind == "short-uncached"
    other = Worker("http://127.0.0.1:9101", "decode")  # a decode worker that never saw it
    assert decider.decide(other, req(follow_up), PREFILL).remote


def test_saturated_prefill_pool_means_local_prefill() -> None:
    decider = conditional(min_uncached_tokens=1, max_prefill_in_flight=2)
    busy = [Worker(w.url, "prefill", in_flight=2) for w in PREFILL]
    verdict = decider.decide(DECODE, req("x" * 4000), busy)
    assert not verdict.remote and "saturated" in verdict.reason
    busy[0].in_flight = 1
    assert decider.decide(DECODE, req("x" * 4000), busy).remote


def test_no_prefill_worker_means_local_prefill_in_every_mode() -> None:
    for decider in (DisaggDecider(DisaggregationConfig()), conditional()):
        verdict = decider.decide(DECODE, req("x" * 4000), [])
        assert not verdict.remote and verdict.reason == "local-prefill: no healthy prefill worker"
