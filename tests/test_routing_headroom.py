"""The routing-headroom model: engine steps and caches on hand-computed cases, vllm-router's ring on its
measured partition, and the oracle never worse than the routers it looks ahead with."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.bench.routing_headroom import CostModel, Router, SimRequest, Simulation, floor_ttfts, mean_ms
from tests.bench.routing_headroom_bench import logged_runs
from tests.bench.routing_headroom_policies import (
    ConsistentHash,
    Forced,
    Greedy,
    RealPrefix,
    Rollout,
    RoundRobin,
    mean_objective,
)
from tests.test_mooncake_trace import SHARED_TRACE

pytestmark = pytest.mark.timeout(60)

# 1 ms a step, 0.1 ms a prompt token, 0.5 ms a decoding request, 2 ms outside the engine; 4-token blocks
COST = CostModel(
    step_s=0.001,
    prefill_token_s=0.0001,
    decode_seq_s=0.0005,
    overhead_s=0.002,
    capacity_blocks=8,
    block_size=4,
)


def _req(key: str, tokens: list[int], at: float, out: int = 1, **kw: object) -> SimRequest:
    kw.setdefault("session", key)
    return SimRequest(
        key=key,
        arrival_s=at,
        tokens=tuple(tokens),
        output_tokens=out,
        messages=({"role": "user", "content": " ".join(map(str, tokens))},),
        **kw,  # type: ignore[arg-type]
    )


def _ttfts(
    requests: list[SimRequest], cost: CostModel, placement: dict[str, int], workers: int = 1
) -> dict[str, float]:
    sim = Simulation(requests, workers, cost)
    jobs = sim.run(Forced(placement))
    return {k: sim.ttft_s(j) for k, j in jobs.items()}


A = list(range(1, 10))  # 9 tokens: 2 full blocks, the last token never cached
B = [*range(1, 9), 20]  # A's 2 blocks, another last token
C = list(range(30, 39))


def test_queued_request_waits_for_the_step_and_hits_the_blocks_before_it() -> None:
    # A: idle worker, one step of 9 tokens: 1 + 0.9 = 1.9 ms, +2 ms outside = 3.9 ms.
    # B arrives at 0.5 ms, during A's step: the next step (1.9 ms) decodes A (0.5 ms) and prefills
    #   B's 1 uncached token (8 of its 9 are A's blocks): 1 + 0.1 + 0.5 = 1.6 ms, ends at 3.5 ms;
    #   TTFT 3.5 - 0.5 + 2 = 5.0 ms.
    # C at 4 ms: the worker is idle again: 3.9 ms like A.
    requests = [_req("a", A, 0.0, out=2), _req("b", B, 0.0005), _req("c", C, 0.004)]
    got = _ttfts(requests, COST, {"a": 0, "b": 0, "c": 0})
    assert got == pytest.approx({"a": 0.0039, "b": 0.0050, "c": 0.0039})


def test_two_workers_do_not_share_a_cache() -> None:
    # B on the other worker finds nothing cached and computes all 9 tokens: 1.9 + 2 ms
    requests = [_req("a", A, 0.0, out=2), _req("b", B, 0.0005)]
    got = _ttfts(requests, COST, {"a": 0, "b": 1}, workers=2)
    assert got == pytest.approx({"a": 0.0039, "b": 0.0039})


def test_lru_eviction_beyond_capacity_loses_the_prefix() -> None:
    # 2 blocks of room: C's blocks evict A's, so B at 10 ms computes all 9 tokens again
    small = COST.model_copy(update={"capacity_blocks": 2})
    requests = [_req("a", A, 0.0), _req("c", C, 0.005), _req("b", B, 0.010)]
    got = _ttfts(requests, small, {"a": 0, "b": 0, "c": 0})
    assert got["b"] == pytest.approx(0.0039)
    # with room for 4 blocks A's survive and B computes one token: 1 + 0.1 + 2 ms
    assert _ttfts(requests, COST.model_copy(update={"capacity_blocks": 4}), {"a": 0, "b": 0, "c": 0})[
        "b"
    ] == pytest.approx(0.0031)


def test_a_prompt_longer_than_the_budget_is_chunked_over_steps() -> None:
    # budget 5 tokens: 5 then 4 prompt tokens, (1 + 0.5) + (1 + 0.4) = 2.9 ms, + 2 ms
    chunked = COST.model_copy(update={"budget_tokens": 5})
    assert _ttfts([_req("a", A, 0.0)], chunked, {"a": 0})["a"] == pytest.approx(0.0049)


def test_a_closed_loop_turn_arrives_after_the_answer_and_its_think_time() -> None:
    # A: first token at 1.9 ms, its second token in a decode step of 1.5 ms: done at 3.4 ms. D arrives
    # 2 ms (outside) + 1 ms (think) later, at 6.4 ms, on an idle worker holding A's blocks: 1.1 + 2 ms.
    requests = [_req("a", A, 0.0, out=2), _req("d", B, 99.0, after="a", think_s=0.001)]
    sim = Simulation(requests, 1, COST)
    jobs = sim.run(Forced({}))
    assert jobs["d"].arrival_s == pytest.approx(0.0064)
    assert sim.ttft_s(jobs["d"]) == pytest.approx(0.0031)


@pytest.mark.skipif(not SHARED_TRACE.exists(), reason="the shared Mooncake trace is not here")
def test_ring_reproduces_vllm_router_partition_measured_on_the_bench() -> None:
    """vllm-router 0.1.17's consistent_hash over workers on ports 45955 and 47013 sent, in the three
    rounds of one bench session, 126/122, 183/65 and 97/151 requests to them (counted in the workers'
    own access logs); the sessions are the bench's salted Mooncake sessions of that target."""
    from tests.bench.mooncake_trace import load_mooncake, mooncake_to_trace
    from tests.bench.routing_bench import FULL
    from tests.bench.trace_routing import tag_of

    trace = mooncake_to_trace(load_mooncake(SHARED_TRACE), FULL.mooncake)
    ring = ConsistentHash(["http://127.0.0.1:45955", "http://127.0.0.1:47013"])
    counts = []
    for round_ in range(3):
        sessions = [s.session_id for s in trace.salted(tag_of("m", round_, 2)).sessions]
        first = sum(ring.worker_of(s) == 0 for s in sessions)
        counts.append((first, len(sessions) - first))
    assert counts == [(126, 122), (183, 65), (97, 151)]


def _random_trace(seed: int, n: int = 14) -> list[SimRequest]:
    """Requests over a few shared roots (sessions), arriving close enough to queue."""
    rng = random.Random(seed)
    roots = [[rng.randrange(1000) for _ in range(8)] for _ in range(3)]
    out, at = [], 0.0
    for i in range(n):
        root = rng.randrange(len(roots))
        tokens = roots[root] + [rng.randrange(1000) for _ in range(rng.randrange(1, 9))]
        at += rng.uniform(0.0, 0.003)
        out.append(_req(f"r{i}", tokens, at, out=rng.randrange(1, 4), session=f"s{root}"))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_rollout_oracle_is_never_worse_than_its_bases_and_floor_bounds_all(seed: int) -> None:
    requests = _random_trace(seed)
    cost = COST.model_copy(update={"capacity_blocks": 6})

    def run(router: Router) -> dict[str, float]:
        sim = Simulation(requests, 2, cost)
        jobs = sim.run(router)
        return {k: sim.ttft_s(j) for k, j in jobs.items()}

    bases: list[Router] = [ConsistentHash(["http://w0", "http://w1"]), Greedy(), RealPrefix({}), RoundRobin()]
    base_means = [mean_ms(run(b).values()) for b in bases]
    oracle = run(Rollout(bases, mean_objective, "oracle"))
    assert mean_ms(oracle.values()) <= min(base_means) + 1e-9
    floor = floor_ttfts(requests, cost)
    for ttfts in [oracle, *(run(b) for b in bases)]:
        assert all(floor[k] <= t + 1e-12 for k, t in ttfts.items())


def test_logged_runs_find_their_workers_placement_and_length(tmp_path: Path) -> None:
    """A run is matched to the last worker start before it; our header or vllm-router's ring gives
    where each request went; the router log's and the results' write times give the replay's length."""
    for i, port in enumerate((45955, 47013)):
        (tmp_path / f"vllm-bench-{i}.log").write_text(
            f"==> python -m vllm serve m --port 1{i} --num-gpu-blocks-override 96\n"
            "(EngineCore pid=1) INFO 11-30 10:00:00 [core.py:133] Initializing a V1 LLM engine (v0.32.0) x\n"
            f"==> python -m vllm serve m --port {port} --num-gpu-blocks-override 256\n"
            "(EngineCore pid=2) INFO 11-30 15:02:02 [core.py:133] Initializing a V1 LLM engine (v0.32.0) x\n"
        )
    results = [
        {
            "session_id": "m0002-h0",
            "turn": 0,
            "status": 200,
            "ttft_s": 0.1,
            "e2e_s": 0.2,
            "completion_tokens": 4,
        },
        {
            "session_id": "m0002-h7",
            "turn": 1,
            "status": 200,
            "ttft_s": 0.1,
            "e2e_s": 0.2,
            "completion_tokens": 4,
        },
    ]
    ours = [
        {**r, "routing": f"mode=aggregated; worker=http://127.0.0.1:{p}; policy=prefix; reason=x"}
        for r, p in zip(results, (47013, 45955), strict=True)
    ]
    when = datetime(2026, 11, 30, 15, 10, tzinfo=UTC).timestamp()
    for name, body in (("vllm-router-consistent_hash", results), ("router-prefix", ours)):
        (tmp_path / f"routing-m-{name}-0.log").write_text("started\n")
        (tmp_path / f"routing-m-{name}-0.results.json").write_text(json.dumps(body))
        os.utime(tmp_path / f"routing-m-{name}-0.log", (when - 64, when - 64))
        os.utime(tmp_path / f"routing-m-{name}-0.results.json", (when, when))
    runs = {r.label: r for r in logged_runs(tmp_path, "m")}
    ring = ConsistentHash(["http://127.0.0.1:45955", "http://127.0.0.1:47013"])
    assert runs["router-prefix"].workers is not None
    assert runs["router-prefix"].workers.urls == ("http://127.0.0.1:45955", "http://127.0.0.1:47013")
    assert runs["router-prefix"].workers.blocks == 256
    assert runs["router-prefix"].placement() == {"h0#0": 1, "h7#1": 0}
    assert runs["vllm-router-consistent_hash"].placement() == {
        "h0#0": ring.worker_of("m0002-h0"),
        "h7#1": ring.worker_of("m0002-h7"),
    }
    assert runs["router-prefix"].seconds == pytest.approx(64)
