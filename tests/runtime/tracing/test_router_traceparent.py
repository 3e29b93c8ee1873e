"""What the router hands vLLM: each leg's own ``traceparent``, under the client's trace, never the client's bytes."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from runtime import tracing
from runtime.tracing import parse_traceparent
from tests.runtime.conftest import MakeFake, MakeRouter

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

COMPLETION = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 3, "temperature": 0}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    tracing.configure("router-test", {"GROVE_TRACE_STORE_TRACES": "200"})
    tracing.store().clear()
    yield


async def test_each_leg_carries_its_own_span_under_the_clients_trace(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"traceparent": CLIENT}
    ) as r:
        assert r.status == 200
        await r.read()
    [p_seen], [d_seen] = prefill.completions(), decode.completions()
    sent = {
        leg: parse_traceparent(seen.headers.get("traceparent"))
        for leg, seen in (("prefill", p_seen), ("decode", d_seen))
    }
    spans = {s.name: s for s in tracing.trace(TRACE) or []}
    assert set(spans) == {"router completions", "router.leg prefill", "router.leg decode"}
    assert spans["router completions"].parent_id == "00f067aa0ba902b7"
    for leg, ctx in sent.items():
        span = spans[f"router.leg {leg}"]
        assert ctx is not None and (ctx.trace_id, ctx.span_id, ctx.sampled) == (TRACE, span.span_id, True)
        assert span.parent_id == spans["router completions"].span_id
        assert span.attributes["grove.worker"] == (prefill if leg == "prefill" else decode).url


async def test_a_malformed_traceparent_starts_a_new_trace_and_is_not_forwarded(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes("aggregated")
    router = await make_router(worker=[worker.url])
    hostile = f"00-{TRACE}-00f067aa0ba902b7-01x"
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"traceparent": hostile}
    ) as r:
        assert r.status == 200
        await r.read()
    [seen] = worker.completions()
    ctx = parse_traceparent(seen.headers["traceparent"])
    assert ctx is not None and ctx.trace_id != TRACE
    [summary] = tracing.recent()
    assert summary.trace_id == ctx.trace_id and summary.name == "router completions" and summary.spans == 2


async def test_a_failed_leg_is_an_error_span_and_its_retry_another(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes("aggregated")
    router = await make_router(worker=[worker.url], retry={"backoff_base": 0})
    worker.cues.fail = [
        (503, None)
    ]  # the first attempt fails; with no other worker, the retry comes back here
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"traceparent": CLIENT}
    ) as r:
        assert r.status == 200
        await r.read()
    legs = [s for s in tracing.trace(TRACE) or [] if s.name == "router.leg worker"]
    assert [s.status for s in legs] == ["error", "ok"]
    assert legs[0].status_message == "UpstreamError: HTTP 503"
    router_span = next(s for s in tracing.trace(TRACE) or [] if s.name == "router completions")
    assert router_span.attributes["grove.route.retries"] == 1 and router_span.status == "ok"


async def test_when_nothing_records_the_clients_traceparent_reaches_both_legs_unchanged(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    tracing.configure("router-test", {})  # the default: no exporter, no store
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    for headers in ({"traceparent": CLIENT}, {}):
        async with http.post(f"{router.url}/v1/completions", json=COMPLETION, headers=headers) as r:
            assert r.status == 200
            await r.read()
    (p_traced, p_plain), (d_traced, d_plain) = prefill.completions(), decode.completions()
    assert (
        p_traced.headers.get("traceparent") == d_traced.headers.get("traceparent") == CLIENT
    )  # vLLM's parent: the client
    assert "traceparent" not in p_plain.headers and "traceparent" not in d_plain.headers
    assert tracing.recent() == []
