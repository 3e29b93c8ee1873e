"""The two-leg request flow through a real router, against fake vLLM workers that fail on cue."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from runtime.router.legs import prefill_body
from tests.runtime.conftest import MakeFake, MakeRouter, eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")

COMPLETION = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 5, "temperature": 0}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text ``text`` (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_disaggregated_completion_runs_each_leg_with_its_own_id_derived_from_the_clients(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"X-Request-Id": "req-42"}
    ) as r:
        assert r.status == 200
        answer = await r.json()
        route = r.headers["x-grove-route"]
        assert r.headers["x-request-id"] == "req-42"
    assert answer["choices"][0]["text"] == "decode0 decode1 decode2 decode3 decode4"
    assert route.startswith(
        f"mode=disaggregated; prefill={prefill.url}; decode={decode.url}; policy=round_robin"
    )
    [p_seen], [d_seen] = prefill.completions(), decode.completions()
    assert p_seen.body == prefill_body(COMPLETION)
    assert d_seen.body["kv_transfer_params"]["remote_engine_id"] == prefill.engine_id
    assert {k: v for k, v in d_seen.body.items() if k != "kv_transfer_params"} == COMPLETION
    p_id, d_id = p_seen.headers["x-request-id"], d_seen.headers["x-request-id"]
    assert re.fullmatch(r"req-42\.[0-9a-f]{8}-p0", p_id) and d_id == p_id[:-2] + "d0"
    assert decode.external_kv_requests == 1


async def test_streaming_chat_passes_chunks_through_and_keeps_stream_options_on_decode(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode", tokens=6)
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with http.post(f"{router.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in (await r.text()).split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    words = [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert "".join(words) == "decode0 decode1 decode2 decode3 decode4 decode5 "
    [p_seen], [d_seen] = prefill.completions(), decode.completions()
    assert p_seen.body["stream"] is False and "stream_options" not in p_seen.body
    assert d_seen.body["stream"] is True and d_seen.body["stream_options"] == {"include_usage": True}


async def test_aggregated_mode_forwards_the_body_unchanged(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes("aggregated")
    router = await make_router(worker=[worker.url])
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        assert (
            r.headers["x-grove-route"] == f"mode=aggregated; worker={worker.url}; policy=round_robin; "
            "reason=round-robin 1/1"
        )
    assert worker.completions()[0].body == COMPLETION


async def test_failed_prefill_is_retried_on_another_prefill_worker(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    p1, p2, decode = (
        await fakes("prefill", name="p1"),
        await fakes("prefill", name="p2"),
        await fakes("decode"),
    )
    router = await make_router(prefill=[p1.url, p2.url], decode=[decode.url])
    first = min((p1, p2), key=lambda f: f.url)  # round robin starts with the lowest URL
    second = p2 if first is p1 else p1
    first.fail_next(1, status=503)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        route = r.headers["x-grove-route"]
    assert (
        f"prefill={second.url}" in route
        and f"note=retry after prefill {first.url} failed (HTTP 503)" in route
    )
    assert decode.completions()[0].body["kv_transfer_params"]["remote_engine_id"] == second.engine_id
    metrics = await (await http.get(f"{router.url}/metrics")).text()
    assert metric(metrics, "grove_router_retries_total", leg="prefill") == 1


async def test_when_every_prefill_worker_fails_the_decode_worker_prefills_itself(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    prefill.drop_next(1)  # the connection dies without an answer
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        route = r.headers["x-grove-route"]
    assert route.startswith(f"mode=local-prefill; decode={decode.url}")
    assert f"note=fallback local-prefill after prefill {prefill.url} failed" in route
    assert "kv_transfer_params" not in decode.completions()[0].body
    # The prefill worker is ejected: the next request does not even try it.
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        assert "reason=local-prefill: no healthy prefill worker" in r.headers["x-grove-route"]
    assert len(prefill.completions()) == 1
    metrics = await (await http.get(f"{router.url}/metrics")).text()
    assert metric(metrics, "grove_router_ejections_total", role="prefill", worker=prefill.url) == 1
    assert metric(metrics, "grove_router_decisions_total", mode="local-prefill", reason="prefill-failed") == 1


async def test_an_ejected_worker_is_readmitted_after_its_back_off(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url], health={"eject_base": 0.2})
    prefill.fail_next(1, status=500)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert "mode=local-prefill" in r.headers["x-grove-route"]
    worker = router.router.pools["prefill"].workers[0]
    await eventually(worker.available)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert "mode=disaggregated" in r.headers["x-grove-route"]


async def test_decode_failure_before_the_first_byte_is_retried_on_another_decode_worker(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill = await fakes("prefill")
    d1, d2 = await fakes("decode", name="d1"), await fakes("decode", name="d2")
    router = await make_router(prefill=[prefill.url], decode=[d1.url, d2.url])
    first = min((d1, d2), key=lambda f: f.url)
    first.fail_next(1, status=502)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        answer = await r.json()
        route = r.headers["x-grove-route"]
    other = d2 if first is d1 else d1
    assert answer["choices"][0]["text"].startswith(other.name)
    assert f"note=retry after decode {first.url} failed (HTTP 502" in route
    assert len(prefill.completions()) == 2  # the retry re-runs the prefill leg for the new decode worker


async def test_when_every_worker_fails_the_client_gets_a_502_error_body(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes("aggregated")
    router = await make_router(worker=[worker.url], retry={"max_retries": 3})
    worker.fail_next(5, status=500)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 502
        error = (await r.json())["error"]
    assert error["type"] == "upstream_error" and error["code"] == 502 and "500" in error["message"]


async def test_a_workers_client_error_is_passed_through_unchanged(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    prefill.fail_next(1, status=400)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "cued failure"
    assert decode.completions() == []


async def test_client_disconnect_cancels_the_decode_leg(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode", tokens=50)
    decode.set_delay(0.05)
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    async with http.post(
        f"{router.url}/v1/completions", json={**COMPLETION, "max_tokens": 50, "stream": True}
    ) as r:
        await r.content.readline()  # the first chunk arrived; now the client goes away
    await eventually(lambda: decode.completions()[0].cancelled)
    worker = router.router.pools["decode"].workers[0]
    await eventually(lambda: worker.in_flight == 0)


async def test_client_disconnect_during_prefill_cancels_the_prefill_leg(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    prefill.set_delay(30)
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    with pytest.raises(asyncio.TimeoutError):
        await http.post(
            f"{router.url}/v1/completions", json=COMPLETION, timeout=aiohttp.ClientTimeout(total=0.5)
        )
    await eventually(lambda: bool(prefill.completions()) and prefill.completions()[0].cancelled)
    assert decode.completions() == []


async def test_conditional_disaggregation_prefills_short_prompts_locally_and_long_ones_remotely(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(
        prefill=[prefill.url],
        decode=[decode.url],
        disaggregation={"mode": "conditional", "min_uncached_tokens": 100},
    )
    async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "prompt": "x" * 40}) as r:
        assert r.headers["x-grove-route"] == (
            f"mode=local-prefill; decode={decode.url}; policy=round_robin; "
            "reason=local-prefill: 10 uncached tokens < 100; "
            "decode: round-robin 1/1"
        )
    async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "prompt": "y" * 800}) as r:
        assert "mode=disaggregated" in r.headers["x-grove-route"]
        assert "remote-prefill: 200 uncached tokens >= 100" in r.headers["x-grove-route"]
    assert len(prefill.completions()) == 1


async def test_a_prefill_leg_counts_against_its_worker_before_the_next_request_is_planned(
    fakes: MakeFake, make_router: MakeRouter
) -> None:
    """Two requests parsed in one turn of the loop: the second must see the first's prefill in flight."""
    prefill, decode = await fakes("prefill"), await fakes("decode")
    prefill.set_delay(0.5)  # the first prefill is still running when the second is planned
    router = await make_router(
        prefill=[prefill.url],
        decode=[decode.url],
        disaggregation={"mode": "conditional", "min_uncached_tokens": 1, "max_prefill_in_flight": 1},
    )
    host, port = router.url.removeprefix("http://").rsplit(":", 1)
    clients = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    await asyncio.sleep(0.05)  # both accepted: their requests are read in the same turn
    for i, (_, writer) in enumerate(clients):
        data = json.dumps({**COMPLETION, "prompt": f"{i} " + "z" * 400}).encode()
        writer.write(
            b"POST /v1/completions HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)
        )
    routes = []
    for reader, writer in clients:
        head = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n\r\n", 1)[0].decode()
        writer.close()
        assert head.startswith("HTTP/1.1 200"), head
        routes.append(re.search(r"(?im)^x-grove-route: mode=([a-z-]+)", head).group(1))  # type: ignore[union-attr]
    assert sorted(routes) == ["disaggregated", "local-prefill"]
    assert len(prefill.completions()) == 1


async def test_with_an_aggregated_pool_too_short_prompts_go_to_it(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode, agg = await fakes("prefill"), await fakes("decode"), await fakes("aggregated")
    router = await make_router(
        prefill=[prefill.url],
        decode=[decode.url],
        worker=[agg.url],
        disaggregation={"mode": "conditional", "min_uncached_tokens": 100},
    )
    async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "prompt": "short"}) as r:
        route = r.headers["x-grove-route"]
    assert route.startswith(f"mode=aggregated; worker={agg.url}") and "uncached tokens < 100" in route
    assert decode.completions() == [] and len(agg.completions()) == 1


async def test_the_only_decode_worker_gets_another_try_after_a_failure(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url], health={"eject_base": 30})
    decode.drop_next(1)  # e.g. a pooled connection the worker had just closed
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
        assert f"note=retry after decode {decode.url} failed" in r.headers["x-grove-route"]
    # It was ejected, but it is the only decode worker: requests still reach it (panic routing).
    assert not router.router.pools["decode"].workers[0].available()
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200
    assert len(decode.completions()) == 3
