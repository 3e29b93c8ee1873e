"""Routing policies: each part alone, the composed policies, the registry and the decision explanations."""

from __future__ import annotations

import inspect
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.errors import RouterConfigError
from runtime.router.policies import POLICIES, RequestView, make_policy
from runtime.router.policies.cache.prefix_index import PrefixIndex
from runtime.router.policies.filters.load_guard import LoadGuardFilter
from runtime.router.policies.parts import Filter, Picker, Scorer
from runtime.router.policies.policy import Policy
from runtime.router.policies.scorers.prefix import PrefixParams, PrefixScorer
from runtime.router.workers import Worker, WorkerPool


def workers(n: int) -> list[Worker]:
    return [Worker(f"http://127.0.0.1:{9000 + i}", "decode") for i in range(n)]


def req(prompt: str = "hello", **body: object) -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": prompt, **body})


def test_round_robin_cycles_through_every_worker_in_order() -> None:
    policy = make_policy("round_robin")
    pool = workers(3)
    picks = [policy.choose(pool, req()) for _ in range(6)]
    assert [c.worker.url for c in picks if c] == [w.url for w in pool] * 2
    assert picks[1] is not None and picks[1].reason == "round-robin 2/3"


def test_least_loaded_picks_the_idlest_and_says_how_idle() -> None:
    pool = workers(3)
    pool[0].in_flight, pool[1].in_flight, pool[2].in_flight = 5, 1, 3
    choice = make_policy("least_loaded").choose(pool, req())
    assert choice is not None and choice.worker is pool[1]
    assert choice.reason == "least-loaded 1 requests in flight"


def test_least_loaded_by_tokens_counts_tokens_not_requests() -> None:
    pool = workers(2)
    pool[0].in_flight, pool[0].tokens_in_flight = 1, 5000
    pool[1].in_flight, pool[1].tokens_in_flight = 3, 100
    choice = make_policy("least_loaded", {"by": "tokens"}).choose(pool, req())
    assert choice is not None and choice.worker is pool[1]


def test_least_loaded_shares_ties_between_idle_workers() -> None:
    policy = make_policy("least_loaded")
    pool = workers(2)
    urls = {c.worker.url for c in (policy.choose(pool, req()) for _ in range(4)) if c}
    assert urls == {w.url for w in pool}


def test_prefix_policy_sends_a_repeated_prompt_back_to_the_worker_that_has_it() -> None:
    policy = make_policy("prefix", {"block_chars": 16})
    pool = workers(3)
    prompt = "the shared system prompt of a long agent trajectory " * 4
    first = policy.choose(pool, req(prompt))
    assert first is not None and first.reason.startswith("cache-miss 0/")
    policy.on_routed(first.worker, req(prompt))
    again = policy.choose(pool, req(prompt + " and a new question"))
    assert again is not None and again.worker is first.worker
    total = len(req(prompt + " and a new question").blocks(16))
    hit = len(req(prompt).blocks(16))
    assert again.reason.startswith(f"cache-hit {hit}/{total} blocks")  # (+ the fan-out note: 0 s apart)


def test_prefix_policy_leaves_a_hot_worker_when_it_is_far_busier() -> None:
    policy = make_policy("prefix", {"block_chars": 16, "balance_abs": 2, "balance_rel": 1.5})
    pool = workers(2)
    prompt = "x" * 200
    policy.on_routed(pool[0], req(prompt))
    pool[0].in_flight = 10  # far busier than the idle worker: the load guard drops it
    choice = policy.choose(pool, req(prompt))
    assert choice is not None and choice.worker is pool[1]


def test_prefix_cost_is_dynamos_overlap_weight_times_blocks_plus_active_blocks() -> None:
    scorer = PrefixScorer(PrefixParams(block_chars=16, overlap_weight=2.0, chars_per_token=4.0))
    w = workers(1)[0]
    view = req("a" * 64)  # 4 blocks
    scorer.index.insert(w.url, view.blocks(16)[:1], now=1000.0)
    w.tokens_in_flight = 8  # 2 active blocks of 4 tokens
    assert scorer.cost(w, view, now=1000.0) == pytest.approx(2.0 * 3 + 2)


def test_prefix_index_forgets_after_ttl_and_beyond_capacity() -> None:
    index = PrefixIndex(capacity=3, ttl=10.0)
    index.insert("w", [1, 2, 3], now=100.0)
    assert index.overlap("w", [1, 2, 3], now=105.0) == 3
    assert index.overlap("w", [1, 2, 3], now=111.0) == 0  # expired
    index.insert("w", [4], now=120.0)  # evicts block 1, the oldest
    assert index.overlap("w", [1], now=120.0) == 0
    index.retain([])
    assert index.overlap("w", [4], now=120.0) == 0


def test_load_guard_passes_a_balanced_pool_and_never_empties_it() -> None:
    guard = LoadGuardFilter(abs_threshold=4, rel_threshold=1.5)
    pool = workers(3)
    for w, load in zip(pool, (3, 5, 6), strict=True):
        w.in_flight = load
    assert guard.filter(pool, req()) == pool
    pool[2].in_flight = 50
    assert guard.filter(pool, req()) == pool[:2]


@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8))
def test_load_guard_always_keeps_the_idlest_worker(loads: list[int]) -> None:
    pool = workers(len(loads))
    for w, load in zip(pool, loads, strict=True):
        w.in_flight = load
    kept = LoadGuardFilter(abs_threshold=2, rel_threshold=1.5).filter(pool, req())
    assert min(w.in_flight for w in kept) == min(loads)


@given(st.text(max_size=600), st.integers(min_value=16, max_value=64))
def test_block_hashes_of_a_prompt_are_a_prefix_of_those_of_its_extension(prompt: str, size: int) -> None:
    assert req(prompt + "more text").blocks(size)[: len(req(prompt).blocks(size))] == req(prompt).blocks(size)


def test_chat_messages_are_rendered_for_hashing_including_content_parts() -> None:
    view = RequestView(
        "chat",
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
        },
    )
    assert view.prompt_text == "<|system|>\nbe brief\n<|user|>\nhi\n"


def test_token_id_prompts_count_tokens_exactly() -> None:
    assert req([1, 2, 3, 4]).est_prompt_tokens() == 4  # type: ignore[arg-type]
    assert req("abcd" * 10, max_tokens=7).max_tokens == 7


def test_unknown_policy_is_a_startup_error_that_lists_the_known_ones() -> None:
    with pytest.raises(
        RouterConfigError, match=r"unknown routing policy 'fastest'; known: least_loaded, prefix"
    ):
        make_policy("fastest")


def test_bad_policy_parameters_name_the_policy_and_the_field() -> None:
    with pytest.raises(RouterConfigError, match=r"policy prefix: invalid parameters: block_chars"):
        make_policy("prefix", {"block_chars": 1})
    with pytest.raises(RouterConfigError, match=r"policy least_loaded: invalid parameters: colour"):
        make_policy("least-loaded", {"colour": "red"})


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_registered_policy_is_made_of_protocol_parts_and_documents_itself(name: str) -> None:
    policy = make_policy(name)
    assert isinstance(policy, Policy) and policy.name == name
    assert all(isinstance(f, Filter) for f in policy.filters)
    assert all(isinstance(s, Scorer) for s, _ in policy.scorers)
    assert isinstance(policy.picker, Picker)
    doc = inspect.getmodule(POLICIES[name].build).__doc__ or ""  # type: ignore[union-attr]
    assert f"Type name: ``{name}``" in doc and "Config example" in doc


def test_pool_membership_change_keeps_the_state_of_workers_that_stay() -> None:
    pool = WorkerPool("decode", ["http://a:1", "http://b:1"])
    kept = pool.get("http://a:1")
    assert kept is not None
    kept.in_flight = 3
    assert pool.set_urls(["http://a:1/", "http://c:1"]) is True
    assert [w.url for w in pool.workers] == ["http://a:1", "http://c:1"]
    assert pool.get("http://a:1") is kept and kept.in_flight == 3
    assert pool.set_urls(["http://c:1", "http://a:1"]) is False


def test_ejection_backs_off_exponentially_and_a_success_resets_it() -> None:
    w = workers(1)[0]
    assert w.record_failure(eject_after=2, base=1.0, cap=30.0) is False
    assert w.record_failure(eject_after=2, base=1.0, cap=30.0) is True
    assert not w.available()
    assert w.ejected_until - time.monotonic() <= 1.2  # the first ejection lasts 1 s ± 20 %
    w.ejected_until = 0.0
    w.record_failure(eject_after=1, base=1.0, cap=30.0)
    assert w.ejections == 2 and w.ejected_until - time.monotonic() > 1.5  # the second lasts 2 s ± 20 %
    w.record_success()
    assert w.ejections == 0 and w.consecutive_failures == 0


@given(
    name=st.sampled_from(sorted(POLICIES)),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["", "system prompt " * 30, "other context " * 40]),
            st.text(alphabet="abc ", max_size=300),
            st.sampled_from([None, "s1", "s2"]),
            st.integers(0, 12),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_a_request_nobody_will_see_explained_gets_the_same_choice_and_no_reason(
    name: str, requests: list[tuple[str, str, str | None, int]]
) -> None:
    """Skipping the explanation (no route header, no recorded span) must not change where requests go."""
    explained, silent = make_policy(name), make_policy(name)
    pools = workers(3), workers(3)
    for prefix, text, session, load in requests:
        chosen = []
        for policy, pool, explain in ((explained, pools[0], True), (silent, pools[1], False)):
            pool[load % 3].in_flight = load
            view = RequestView(
                "completions", {"model": "tiny", "prompt": prefix + text}, session, explain=explain
            )
            choice = policy.choose(pool, view)
            assert choice is not None
            policy.on_routed(choice.worker, view)
            chosen.append((pool.index(choice.worker), choice.reason))
        (where, reason), (where_silent, no_reason) = chosen
        assert where_silent == where
        assert reason != "" and no_reason == ""
