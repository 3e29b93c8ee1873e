"""Workers that misbehave on cue (the fake worker, tests/runtime/fake_vllm.py): silence, truncated
bodies, streams that break, decode legs that fail after a prefill. Each test asserts the client's
answer and that no count or slot leaks."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest

from runtime.router.server import RouterServer
from tests.runtime.conftest import MakeFake, MakeRouter, eventually
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.router.test_app import error_of
from tests.runtime.router.test_legs import COMPLETION, metric

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

NO_RETRY = {"max_retries": 0, "backoff_base": 0}


async def two_decoders(
    fakes: MakeFake, make_router: MakeRouter, **retry: int
) -> tuple[RouterServer, FakeVLLM, FakeVLLM, FakeVLLM]:
    """A router over one prefill and two decode fakes, retrying without back-off."""
    prefill, d1, d2 = (
        await fakes("prefill"),
        await fakes("decode", name="d1"),
        await fakes("decode", name="d2"),
    )
    router = await make_router(
        prefill=[prefill.url], decode=[d1.url, d2.url], retry={"backoff_base": 0, **retry}
    )
    return router, prefill, d1, d2


async def abandoned(http: aiohttp.ClientSession, router: RouterServer, outcome: str) -> float:
    text = await (await http.get(f"{router.url}/metrics")).text()
    return metric(text, "grove_router_prefilled_kv_abandoned_total", outcome=outcome)


def _idle(router: object) -> bool:
    r = router.router  # type: ignore[attr-defined]
    return r.admission.active == 0 and all(
        w.in_flight == 0 and w.tokens_in_flight == 0 for w in r.all_workers()
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_silent_worker_gives_504_within_the_read_timeout(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, stream: bool
) -> None:
    worker = await fakes()
    worker.set_delay(30)
    router = await make_router(worker=[worker.url], timeouts={"read": 0.3}, retry=NO_RETRY, debug=False)
    async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "stream": stream}) as r:
        assert r.status == 504
        error = await error_of(r)
        assert error["type"] == "timeout_error" and worker.url not in json.dumps(error)
    assert _idle(router)
    await eventually(lambda: worker.completions()[0].cancelled)  # the router hung up on it


async def test_a_4xx_whose_body_breaks_off_leaks_no_in_flight_count(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], retry=NO_RETRY)
    worker.break_body_next(400)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 502
    assert _idle(router)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200


async def test_a_stream_that_breaks_mid_way_ends_with_an_error_event_and_no_clean_end(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], retry=NO_RETRY, debug=False)
    worker.break_stream_next(after=3)  # of COMPLETION's 5 tokens
    events: list[str] = []
    with pytest.raises(aiohttp.ClientPayloadError):  # no terminating chunk: not a complete answer
        async with http.post(f"{router.url}/v1/completions", json={**COMPLETION, "stream": True}) as r:
            assert r.status == 200
            async for line in r.content:
                if line.strip():
                    events.append(line.decode().strip())
    assert len(events) == 4 and "data: [DONE]" not in events
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["type"] == "upstream_error" and error["code"] == 502 and worker.url not in events[-1]
    assert _idle(router)


async def test_a_decode_4xx_after_prefill_is_passed_on_and_counted_as_released_kv(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(prefill=[prefill.url], decode=[decode.url])
    decode.fail_next(1, status=400)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 400
    assert await abandoned(http, router, "released") == 1
    assert _idle(router)


async def test_a_retried_decode_leg_re_prefills_after_a_5xx_with_fresh_leg_ids(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    router, prefill, d1, d2 = await two_decoders(fakes, make_router, max_retries=2)
    d1.fail_next(1, status=500)
    d2.fail_next(1, status=500)  # both fail once: the third attempt succeeds
    async with http.post(
        f"{router.url}/v1/completions", json=COMPLETION, headers={"X-Request-Id": "abc"}
    ) as r:
        assert r.status == 200 and r.headers["x-request-id"] == "abc"
    ids = [s.headers["x-request-id"] for s in (*prefill.completions(), *d1.completions(), *d2.completions())]
    assert len(ids) == 6 and len(set(ids)) == 6  # p0..p2, d0..d2: vLLM never sees an id twice
    assert all(re.fullmatch(r"abc\.[0-9a-f]{8}-[pd][012]", i) for i in ids)
    assert len(prefill.completions()) == 3  # a failed decode worker may have pulled the KV: no reuse
    assert await abandoned(http, router, "expiring") == 2
    assert _idle(router)


async def test_a_decode_worker_that_cannot_be_reached_leaves_the_kv_for_the_retry_to_reuse(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    router, prefill, d1, d2 = await two_decoders(fakes, make_router)
    await d1.stop()  # passed its health check at start; now refuses connections
    answers = []
    for _ in range(2):  # round robin: one of the two requests lands on d1 first
        async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
            assert r.status == 200
            answers.append(r.headers["x-grove-route"])
    assert len(prefill.completions()) == 2  # one prefill per request: the retry reused the KV
    assert d2.external_kv_requests == 2
    assert sum("reused the KV prefilled on" in a for a in answers) == 1
    assert await abandoned(http, router, "reused") == 1
    assert _idle(router)


async def test_kv_kept_for_a_retry_counts_as_expiring_when_the_client_leaves_during_the_back_off(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    router = await make_router(
        prefill=[prefill.url], decode=[decode.url], retry={"backoff_base": 30, "backoff_max": 30}
    )
    await decode.stop()  # passed its health check at start; now refuses connections
    request = asyncio.create_task(http.post(f"{router.url}/v1/completions", json=COMPLETION))
    retries = router.router.metrics.of(router.router.metrics.retries, "decode")
    # the prefill is done, the decode leg was refused, and its retry waits 30 s holding the KV
    await eventually(lambda: len(prefill.completions()) == 1 and retries.value == 1)
    request.cancel()  # the client leaves: no decode leg will take the KV
    await asyncio.gather(request, return_exceptions=True)
    await eventually(lambda: _idle(router))
    assert await abandoned(http, router, "expiring") == 1


async def test_upstream_failures_name_no_worker_unless_debugging(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], retry=NO_RETRY, debug=False)
    worker.fail_next(1, status=500)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 502 and "x-grove-route" not in r.headers
        text = await r.text()
    assert worker.url not in text and "127.0.0.1" not in text and "cued failure" not in text
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 200 and "x-grove-route" not in r.headers


@pytest.mark.parametrize("stream", [False, True])
async def test_a_decode_leg_whose_kv_source_dies_is_closed_and_the_request_prefilled_again(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession, stream: bool
) -> None:
    prefill, decode = await fakes("prefill"), await fakes("decode")
    decode.stall_kv_pulls()  # the decode leg waits on KV that will never come
    router = await make_router(
        prefill=[prefill.url], decode=[decode.url], retry={"backoff_base": 0},
        health={"interval": 0.05, "unhealthy_after": 1},
    )  # fmt: skip
    body = {**COMPLETION, "stream": stream}
    request = asyncio.create_task(http.post(f"{router.url}/v1/completions", json=body))
    await eventually(lambda: len(decode.completions()) == 1)  # the decode leg is pulling the KV
    await prefill.stop()  # the prefill worker dies holding it
    async with await asyncio.wait_for(request, 10) as r:
        assert r.status == 200
        route = r.headers["x-grove-route"]
        text = await r.text()
    assert f"planned again: prefill {prefill.url} was lost holding the KV" in route
    assert "local-prefill" in route
    assert "decode0" in text  # the decode worker answered
    pulled, again = decode.completions()
    assert pulled.cancelled and pulled.body["kv_transfer_params"]["do_remote_prefill"]
    assert "kv_transfer_params" not in again.body and not again.cancelled  # prefilled on the decode worker
    assert await abandoned(http, router, "lost") == 1
    await eventually(lambda: _idle(router))


async def test_an_answer_over_the_upstream_bound_is_a_502_not_held(
    fakes: MakeFake, make_router: MakeRouter, http: aiohttp.ClientSession
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], retry=NO_RETRY, debug=False)
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        whole = await r.read()
    assert r.status == 200
    router.router.upstream.max_answer = len(whole) - 1  # the same answer, one byte over the bound
    async with http.post(f"{router.url}/v1/completions", json=COMPLETION) as r:
        assert r.status == 502
        error = await error_of(r)
    assert error["type"] == "upstream_error" and worker.url not in json.dumps(error)
    assert _idle(router)
