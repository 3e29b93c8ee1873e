"""Hostile request bodies: connector-private fields, wrong shapes, deep nesting, absurd budgets.

Each test sends what the review sent and asserts the router refuses it with a 400 (never a 500) or
strips it before any worker sees it; the fake worker (tests/runtime/fake_vllm.py) records what it got.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from runtime.router.policies import RequestView
from runtime.router.policies.scorers.session import SessionAffinityScorer
from runtime.router.workers import Worker
from tests.runtime.conftest import MakeFake, MakeRouter
from tests.runtime.router.test_app import error_of
from tests.runtime.router.test_legs import COMPLETION, metric

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

EVIL_KV = {
    "do_remote_prefill": True,
    "remote_host": "203.0.113.7",
    "remote_port": 5600,
    "remote_block_ids": [[1]],
}


@pytest.mark.parametrize("mode", ["aggregated", "local-prefill", "fallback"])
async def test_client_kv_transfer_params_never_reach_a_worker(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, mode: str
) -> None:
    if mode == "aggregated":
        worker = await fakes()
        router, decode, prefill = await make_router(worker=[worker.url]), worker, None
    else:
        prefill, decode = await fakes("prefill"), await fakes("decode")
        extra: dict[str, Any] = {"retry": {"backoff_base": 0}}
        if mode == "local-prefill":
            extra["disaggregation"] = {"mode": "conditional", "min_uncached_tokens": 10_000}
        router = await make_router(prefill=[prefill.url], decode=[decode.url], **extra)
        if mode == "fallback":
            prefill.fail_next(5, status=500)
    body = {
        **COMPLETION,
        "kv_transfer_params": EVIL_KV,
        "ec_transfer_params": {"x": 1},
        "vllm_xargs": {"kv_transfer_params": "boom", "keep": 1},
    }
    async with http.post(f"{router.url}/v1/completions", json=body) as r:
        assert r.status == 200, await r.text()
        assert (
            f"mode={'aggregated' if mode == 'aggregated' else 'local-prefill'}" in r.headers["x-grove-route"]
        )
    [seen] = decode.completions()
    assert "kv_transfer_params" not in seen.body and "ec_transfer_params" not in seen.body
    assert seen.body["vllm_xargs"] == {"keep": 1}
    assert decode.external_kv_requests == 0
    for p in prefill.completions() if prefill else []:  # only the router's own prefill request
        assert p.body["kv_transfer_params"]["do_remote_decode"] is True


async def test_disaggregated_decode_leg_carries_only_the_prefill_workers_kv(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    async with http.post(
        f"{router.url}/v1/completions", json={**COMPLETION, "kv_transfer_params": EVIL_KV}
    ) as r:
        assert r.status == 200
    [p_seen], [d_seen] = prefill.completions(), decode.completions()
    assert p_seen.body["kv_transfer_params"]["remote_host"] is None
    assert d_seen.body["kv_transfer_params"]["remote_engine_id"] == prefill.engine_id
    assert d_seen.body["kv_transfer_params"]["remote_host"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]},
            "messages",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": {"a": 1}}]}, "messages"),
        ("/v1/chat/completions", {"messages": ["hi"]}, "messages"),
        ("/v1/completions", {"prompt": {"nested": True}}, "prompt"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": True}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 10**400}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 1e300}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": -1}, "max_tokens"),
        ("/v1/completions", {"prompt": "hi", "n": 10**6}, "n"),
        ("/v1/completions", {"prompt": "hi", "best_of": 0}, "best_of"),
        ("/v1/completions", {"prompt": "hi", "logprobs": 10**9}, "logprobs"),
        ("/v1/completions", {"prompt": "hi", "user": "u" * 10_000}, "user"),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 4096}, "max_tokens"),  # over max_model_len 2048
    ],
)
async def test_wrong_shaped_or_out_of_bound_fields_are_400_naming_the_field(
    fakes: MakeFake,
    make_router: MakeRouter,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url])
    async with http.post(router.url + path, json={"model": "tiny", **body}) as r:
        assert r.status == 400
        error = await error_of(r)
        assert error["type"] == "invalid_request_error" and f"'{field}" in str(error["message"])
        assert "Traceback" not in str(error) and len(str(error["message"])) < 300
    assert worker.completions() == []


@pytest.mark.parametrize(
    "raw", [b"[" * 100_000 + b"]" * 100_000, b'{"model": "tiny", "prompt": ' + b"[" * 40 + b"]" * 40 + b"}"]
)
async def test_deeply_nested_json_is_400_not_a_crash(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, raw: bytes
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url])
    async with http.post(f"{router.url}/v1/completions", data=raw) as r:
        assert r.status == 400 and (await error_of(r))["type"] == "invalid_request_error"
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200


async def test_an_absurd_max_tokens_no_longer_breaks_prefix_routing_for_everyone(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    a, b = await fakes(name="a"), await fakes(name="b")
    router = await make_router(worker=[a.url, b.url], policy="prefix")
    async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "max_tokens": 10**400}) as r:
        assert r.status == 400
    for i in range(4):
        async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "prompt": f"p{i}"}) as r:
            assert r.status == 200
    assert all(w.in_flight == 0 and w.tokens_in_flight == 0 for w in router.router.all_workers())


async def test_a_failing_policy_falls_back_to_round_robin_instead_of_500(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await fakes(name="a"), await fakes(name="b")
    router = await make_router(worker=[a.url, b.url], policy="prefix")

    def broken(*args: Any) -> Any:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(router.router.policies["worker"], "choose", broken)
    for _ in range(4):
        async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
            assert r.status == 200
    assert len(a.completions()) == len(b.completions()) == 2  # round robin took over
    text = await (await http.get(f"{router.url}/metrics")).text()
    assert metric(text, "grove_router_policy_errors_total", role="worker") == 4


async def test_a_failing_disaggregation_decider_falls_back_to_remote_prefill(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(
        prefill=[prefill.url], decode=[decode.url], disaggregation={"mode": "conditional"}
    )

    def broken(*args: Any) -> Any:
        raise ValueError("decider bug")

    monkeypatch.setattr(router.router.decider, "decide", broken)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200 and r.headers["x-grove-route"].startswith("mode=disaggregated")
    assert decode.external_kv_requests == 1
    text = await (await http.get(f"{router.url}/metrics")).text()
    assert metric(text, "grove_router_policy_errors_total", role="decider") == 1


async def test_session_keys_are_stored_as_fixed_size_digests_and_expired_ones_are_swept() -> None:
    scorer = SessionAffinityScorer(ttl=10.0, capacity=1000)
    worker = Worker("http://w", "worker")
    huge = "s" * (8 * 2**20)
    scorer.on_routed(worker, RequestView("completions", {"model": "m"}, huge), now=0.0)
    [key] = scorer._where
    assert len(key) == 16
    assert scorer.worker_of(huge, now=5.0) == "http://w"
    for i in range(50):
        scorer.on_routed(worker, RequestView("completions", {"model": "m"}, f"old-{i}"), now=1.0)
    scorer.on_routed(worker, RequestView("completions", {"model": "m"}, "new"), now=100.0)
    assert len(scorer) == 1 and scorer.worker_of("new", now=100.0) == "http://w"
