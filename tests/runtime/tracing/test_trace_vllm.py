"""One pipeline request on real vLLM yields one trace: every stage call and both legs of the LLM call.

The pipeline server, a stage server and the router run in this process on loopback ports, in front
of the session's real NIXL prefill/decode pair; every hop between them is a real HTTP call that
carries W3C ``traceparent`` (``runtime.http``), so the parent links checked here are the ones that
cross processes in a deployment. Spans are exported over OTLP/HTTP (protobuf) to the collector double
``tests.otlp_collector``, as a deployment exports them to a real collector.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from grove_pipelines import llm, pipeline, stage
from runtime import tracing
from runtime.engines.vllm import PDPair
from runtime.router.config import load_config
from runtime.router.server import RouterServer
from runtime.server import build_app
from runtime.server.serving import AppServer
from tests.otlp_collector import CollectedSpan, Collector, otlp_collector
from tests.runtime.server.helpers import make_executor

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(300), pytest.mark.asyncio(loop_scope="session")]

writer = llm("writer", model="tiny", served_model_name="tiny")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@stage
async def shout(text: str) -> str:
    """A Python stage on its own stage server (its answer is as long as its input)."""
    return text[::-1]


@pipeline(name="traced")
async def traced(topic: str) -> str:
    draft = await writer.complete(f"Write about {topic}:", max_tokens=4, temperature=0)
    return await shout(draft)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with otlp_collector() as found:
        tracing.configure("grove-test", {"OTEL_EXPORTER_OTLP_ENDPOINT": found.endpoint})
        try:
            yield found
        finally:
            tracing.configure("grove-test", {})


def one(spans: list[CollectedSpan], name: str) -> CollectedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


async def test_one_request_is_one_trace_over_stages_router_and_both_legs(
    vllm_pd_pair: PDPair, collector: Collector
) -> None:
    config = load_config(overrides={
        "port": 0, "drain_timeout": 5, "prefill": [vllm_pd_pair.prefill.url], "decode": [vllm_pd_pair.decode.url],
    })
    router = RouterServer(config)
    await router.start()
    try:
        stage_app = build_app([make_executor(traced, writer, shout)], stages=["shout"], pipelines=False)
        async with AppServer(stage_app) as stage_server:
            entry = make_executor(
                traced, writer, shout, llm_urls={"writer": router.url}, stage_urls={"shout": stage_server.url}
            )
            async with AppServer(build_app([entry])) as server, httpx.AsyncClient(timeout=120) as client:
                response = await client.post(
                    f"{server.url}/v1/pipelines/traced", json={"topic": "grove"},
                    headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
                )
    finally:
        await router.stop()
    assert response.status_code == 200, response.text
    tracing.flush()
    spans = collector.spans()

    assert {s.trace_id for s in spans} == {TRACE_ID}, spans  # one trace, the client's
    run = one(spans, "pipeline traced")
    llm_call = one(spans, "llm writer")
    routed = one(spans, "router completions")
    prefill = one(spans, "router.leg prefill")
    decode = one(spans, "router.leg decode")
    stage_call = one(spans, "stage shout")
    served = one(spans, "stage.serve shout")
    assert len(spans) == 7, [s.name for s in spans]

    assert run.parent_id == CLIENT_SPAN
    assert llm_call.parent_id == run.span_id and stage_call.parent_id == run.span_id
    assert served.parent_id == stage_call.span_id  # across the stage server's HTTP hop
    assert routed.parent_id == llm_call.span_id  # across the router's HTTP hop
    assert prefill.parent_id == routed.span_id and decode.parent_id == routed.span_id

    assert prefill.attributes["grove.worker"] == vllm_pd_pair.prefill.url
    assert decode.attributes["grove.worker"] == vllm_pd_pair.decode.url
    assert decode.attributes["grove.kv_source"] == vllm_pd_pair.prefill.url
    assert routed.attributes["grove.route.mode"] == "disaggregated"
    assert routed.attributes["grove.route.policy"] and "grove.route.reason" in routed.attributes
    assert prefill.attributes["http.response.status_code"] == decode.attributes["http.response.status_code"] == 200
    assert float(decode.attributes["grove.ttft_ms"]) > 0 and float(routed.attributes["grove.ttft_ms"]) > 0
    assert stage_call.attributes["grove.input_sizes"] == str(len(response.json()))  # the draft's length
    assert llm_call.attributes["gen_ai.usage.completion_tokens"] == 4
    assert all(s.status != 2 for s in spans)  # no span failed
    assert {s.service for s in spans} == {"grove-test"}
