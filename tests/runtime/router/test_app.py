"""The router's HTTP surface: bad input, limits, API keys, merged models, health, metrics, drain."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.runtime.conftest import MakeFake, MakeRouter, eventually
from tests.runtime.router.test_legs import COMPLETION, metric

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def error_of(resp: aiohttp.ClientResponse) -> dict[str, object]:
    body = await resp.json()
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    assert body["error"]["code"] == resp.status
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "data", "status", "message"),
    [
        ("/v1/completions", b"{not json", 400, "the request body is not valid JSON"),
        # not RFC 8259 JSON, though Python's json module would take each: refused, never half-understood
        (
            "/v1/completions",
            b'{"model": "tiny", "prompt": "hi", "temperature": NaN}',
            400,
            "the request body is not valid JSON",
        ),
        (
            "/v1/completions",
            b'{"model": "tiny", "prompt": "hi", "top_p": 1e999}',
            400,
            "the request body is not valid JSON",
        ),
        (
            "/v1/completions",
            b'{"model": "tiny", "prompt": "\\ud800"}',
            400,
            "the request body is not valid JSON",
        ),
        (
            "/v1/completions",
            b'\xef\xbb\xbf{"model": "tiny", "prompt": "hi"}',
            400,
            "the request body is not valid JSON",
        ),
        ("/v1/completions", b"[1, 2]", 400, "the request body must be a JSON object"),
        ("/v1/completions", b'{"prompt": "hi"}', 400, "missing required field 'model'"),
        ("/v1/completions", b'{"model": "tiny"}', 400, "missing required field 'prompt'"),
        (
            "/v1/chat/completions",
            b'{"model": "tiny", "messages": []}',
            400,
            "invalid field 'messages': List should have at least 1 item after validation, not 0",
        ),
        (
            "/v1/completions",
            b'{"model": "gpt-9", "prompt": "hi"}',
            404,
            "model 'gpt-9' not found; served: tiny",
        ),
    ],
)
async def test_bad_requests_get_an_openai_error_body_and_never_reach_a_worker(
    fakes: MakeFake,
    make_router: MakeRouter,
    http: aiohttp.ClientSession,
    path: str,
    data: bytes,
    status: int,
    message: str,
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url])
    async with http.post(router.url + path, data=data, headers={"Content-Type": "application/json"}) as r:
        assert r.status == status
        assert (await error_of(r))["message"] == message
    assert worker.completions() == []


async def test_body_over_the_limit_is_413_with_or_without_a_content_length(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], limits={"max_body_bytes": 2048})
    big = b'{"model": "tiny", "prompt": "' + b"x" * 4096 + b'"}'
    async with http.post(f"{router.url}/v1/completions", data=big) as r:
        assert r.status == 413 and (await error_of(r))["type"] == "invalid_request_error"

    async def chunked():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield b"x" * 512

    async with http.post(f"{router.url}/v1/completions", data=chunked()) as r:
        assert r.status == 413


async def test_api_key_is_required_on_the_openai_routes_but_not_on_health_and_metrics(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], api_keys=["s3cret"])
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 401 and (await error_of(r))["type"] == "authentication_error"
    async with http.get(f"{router.url}/v1/models", headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"Authorization": "Bearer s3cret"}
    ) as r:
        assert r.status == 200
    assert "authorization" not in worker.completions()[0].headers  # the router's key stays with the router
    for path in ("/health", "/metrics"):
        async with http.get(router.url + path) as r:
            assert r.status == 200


async def test_concurrency_limit_queues_then_answers_429_and_503_with_retry_after(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    worker.set_delay(1.0)
    router = await make_router(
        worker=[worker.url], limits={"max_concurrent": 1, "queue_size": 1, "queue_timeout": 0.2}
    )
    running = asyncio.create_task(http.post(f"{router.url}/v1/completions", json=COMPLETION))
    await eventually(lambda: router.router.admission.active >= 1)
    queued = asyncio.create_task(http.post(f"{router.url}/v1/completions", json=COMPLETION))
    await eventually(lambda: router.router.admission.waiting >= 1)
    assert await queue_depth(router, http) == 1  # the one queued request, on the router's own page
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1"
        assert (await error_of(r))["type"] == "rate_limit_error"
    over_time = await queued
    assert over_time.status == 503 and over_time.headers["Retry-After"] == "1"
    assert (await error_of(over_time))["type"] == "service_unavailable"
    assert (await running).status == 200
    assert await queue_depth(router, http) == 0


async def queue_depth(router: Any, http: aiohttp.ClientSession) -> float:
    """``grove_router_queue_depth`` as the router's ``/metrics`` page shows it."""
    async with http.get(f"{router.url}/metrics") as r:
        return metric(await r.text(), "grove_router_queue_depth")


async def test_models_are_merged_from_every_worker_and_route_requests_by_model(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    small, large = await fakes(model="small"), await fakes(model="large")
    router = await make_router(worker=[small.url, large.url])
    async with http.get(f"{router.url}/v1/models") as r:
        ids = sorted(m["id"] for m in (await r.json())["data"])
    assert ids == ["large", "small"]
    for _ in range(3):
        async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "model": "large"}) as r:
            assert r.status == 200
    assert len(large.completions()) == 3 and small.completions() == []


async def test_readiness_turns_503_when_no_worker_passes_its_checks_while_health_stays_alive(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url])
    async with http.get(f"{router.url}/ready") as r:
        assert r.status == 200 and (await r.json())["status"] == "ready"
    async with http.get(f"{router.url}/health") as r:  # debug on: the worker list is shown
        body = await r.json()
        assert r.status == 200 and body["status"] == "alive" and body["workers"][0]["url"] == worker.url
    worker.healthy = False
    for _ in range(router.router.config.health.unhealthy_after - 1):  # a late /health or two is forgiven
        await router.router.health.check_all()
        async with http.get(f"{router.url}/ready") as r:
            assert r.status == 200
    await router.router.health.check_all()
    async with http.get(f"{router.url}/ready") as r:
        assert r.status == 503 and (await r.json())["status"] == "no healthy workers"
    async with http.get(f"{router.url}/health") as r:
        assert r.status == 200  # liveness: the process is fine, Kubernetes must not restart it
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert "no healthy worker serves model 'tiny'" in str((await error_of(r))["message"])


async def test_metrics_count_requests_latency_decisions_and_legs(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    for _ in range(2):
        async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
            assert r.status == 200
    async with http.post(f"{router.url}/v1/completions", data=b"{") as r:
        assert r.status == 400
    text = await (await http.get(f"{router.url}/metrics")).text()
    assert metric(text, "grove_router_requests_total", endpoint="completions", status="200") == 2
    assert metric(text, "grove_router_requests_total", endpoint="completions", status="400") == 1
    assert metric(text, "grove_router_request_duration_seconds_count", endpoint="completions") == 3
    assert metric(text, "grove_router_time_to_first_token_seconds_count", endpoint="completions") == 2
    assert metric(text, "grove_router_leg_duration_seconds_count", leg="prefill") == 2
    assert metric(text, "grove_router_leg_duration_seconds_count", leg="decode") == 2
    assert metric(text, "grove_router_decisions_total", mode="disaggregated", reason="always") == 2
    assert metric(text, "grove_router_worker_in_flight", role="decode", worker=decode.url) == 0


async def test_drain_finishes_in_flight_requests_and_refuses_new_connections(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    worker.set_delay(0.5)
    router = await make_router(worker=[worker.url])
    in_flight = asyncio.create_task(http.post(f"{router.url}/v1/completions", json=COMPLETION))
    await eventually(lambda: bool(worker.completions()))
    router.drain()
    assert (await in_flight).status == 200
    await router.wait()
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectionError):
            await fresh.get(f"{router.url}/health")


async def test_unknown_route_and_wrong_method_are_errors(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    router = await make_router(worker=[(await fakes()).url])
    async with http.get(f"{router.url}/v1/completions") as r:
        assert r.status == 405
    async with http.get(f"{router.url}/v2/everything") as r:
        assert r.status == 404 and (await error_of(r))["type"] == "not_found_error"


async def test_without_debug_nothing_about_the_workers_reaches_unauthenticated_clients(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], debug=False)
    for path in ("/health", "/ready"):
        async with http.get(router.url + path) as r:
            assert r.status == 200 and worker.url not in await r.text() and "127.0.0.1" not in await r.text()
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200 and "x-grove-route" not in r.headers


async def test_an_empty_bearer_token_is_refused_and_keyed_clients_see_the_route(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], api_keys=["s3cret"], debug=False)
    for auth in ("Bearer ", "Bearer", "s3cret", "Bearer s3cret2"):
        async with http.post(
            f"{router.url}/v1/completions", json=COMPLETION, headers={"Authorization": auth}
        ) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"Authorization": "Bearer s3cret"}
    ) as r:
        assert r.status == 200 and r.headers["x-grove-route"].startswith("mode=aggregated")
    async with http.get(f"{router.url}/health", headers={"Authorization": "Bearer s3cret"}) as r:
        assert "workers" not in await r.json()  # worker detail needs debug as well


async def test_client_triggered_ejection_leaves_the_router_ready(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(
        worker=[worker.url], retry={"max_retries": 0, "backoff_base": 0}, health={"eject_base": 30}
    )
    worker.fail_next(1, status=500)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 502
    assert router.router.pools["worker"].workers[0].ejected_until > 0  # ejected
    for path in ("/health", "/ready"):
        async with http.get(router.url + path) as r:
            assert r.status == 200
