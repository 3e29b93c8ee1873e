"""One pipeline request on real vLLM yields one trace: every stage call and both legs of the LLM call.

The pipeline server, a stage server and the router run in this process on loopback ports, in front
of the session's real NIXL prefill/decode pair; every hop between them is a real HTTP call that
carries W3C ``traceparent`` (``runtime.http``), so the parent links checked here are the ones that
cross processes in a deployment. Spans are exported over OTLP/HTTP (protobuf) to the collector double
``tests.otlp_collector``, as a deployment exports them to a real collector; the session's vLLM pair
exports its own (``--otlp-traces-endpoint``, one ``llm_request`` span per request) to the same one.
"""

from __future__ import annotations

import uuid
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
from tests.otlp_collector import CollectedSpan, Collector
from tests.polling import eventually
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
def collector(vllm_span_collector: Collector) -> Iterator[Collector]:
    """The session's collector (vLLM's spans go there too); this process exports to it during the test."""
    tracing.configure("grove-test", {"OTEL_EXPORTER_OTLP_ENDPOINT": vllm_span_collector.endpoint})
    try:
        yield vllm_span_collector
    finally:
        tracing.configure("grove-test", {})


def one(spans: list[CollectedSpan], name: str, service: str | None = None) -> CollectedSpan:
    found = [s for s in spans if s.name == name and service in (None, s.service)]
    assert len(found) == 1, (name, [(s.name, s.service) for s in spans])
    return found[0]


def of_trace(collector: Collector, trace_id: str) -> list[CollectedSpan]:
    return [s for s in collector.spans() if s.trace_id == trace_id]


def router_for(pair: PDPair) -> RouterServer:
    config = load_config(
        overrides={
            "port": 0,
            "drain_timeout": 5,
            "prefill": [pair.prefill.url],
            "decode": [pair.decode.url],
        }
    )
    return RouterServer(config)


async def test_one_request_is_one_trace_over_stages_router_and_both_legs(
    vllm_pd_pair: PDPair, collector: Collector
) -> None:
    router = router_for(vllm_pd_pair)
    await router.start()
    try:
        stage_app = build_app([make_executor(traced, writer, shout)], stages=["shout"], pipelines=False)
        async with AppServer(stage_app) as stage_server:
            entry = make_executor(
                traced, writer, shout, llm_urls={"writer": router.url}, stage_urls={"shout": stage_server.url}
            )
            async with AppServer(build_app([entry])) as server, httpx.AsyncClient(timeout=120) as client:
                response = await client.post(
                    f"{server.url}/v1/pipelines/traced",
                    json={"topic": "grove"},
                    headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
                )
    finally:
        await router.stop()
    assert response.status_code == 200, response.text
    tracing.flush()
    await eventually(  # vLLM's batches leave every 0.2 s (the fixture's OTEL_BSP_SCHEDULE_DELAY)
        lambda: len([s for s in of_trace(collector, TRACE_ID) if s.name == "llm_request"]) >= 2,
        timeout=60,
        what="vLLM's own spans of both legs",
    )
    everything = of_trace(collector, TRACE_ID)
    vllm_prefill = one(everything, "llm_request", "vllm-prefill")
    vllm_decode = one(everything, "llm_request", "vllm-decode")
    spans = [s for s in everything if s.service == "grove-test"]
    assert len(everything) == len(spans) + 2, [(s.name, s.service) for s in everything]
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
    assert vllm_prefill.parent_id == prefill.span_id and vllm_decode.parent_id == decode.span_id  # vLLM's own
    assert prefill.attributes["grove.leg.request_id"] in vllm_prefill.attributes["gen_ai.request.id"]
    assert decode.attributes["grove.leg.request_id"] in vllm_decode.attributes["gen_ai.request.id"]
    assert vllm_decode.attributes["gen_ai.usage.completion_tokens"] == 4

    assert prefill.attributes["grove.worker"] == vllm_pd_pair.prefill.url
    assert decode.attributes["grove.worker"] == vllm_pd_pair.decode.url
    assert decode.attributes["grove.kv_source"] == vllm_pd_pair.prefill.url
    assert routed.attributes["grove.route.mode"] == "disaggregated"
    assert routed.attributes["grove.route.policy"] and "grove.route.reason" in routed.attributes
    assert (
        prefill.attributes["http.response.status_code"]
        == decode.attributes["http.response.status_code"]
        == 200
    )
    assert float(decode.attributes["grove.ttft_ms"]) > 0 and float(routed.attributes["grove.ttft_ms"]) > 0
    assert 0 < float(decode.attributes["grove.handoff_ms"]) < float(routed.attributes["grove.ttft_ms"])
    assert "grove.handoff_ms" not in prefill.attributes
    assert stage_call.attributes["grove.input_sizes"] == str(len(response.json()))  # the draft's length
    assert llm_call.attributes["gen_ai.usage.completion_tokens"] == 4
    assert all(s.status != 2 for s in spans)  # no span failed
    assert {s.service for s in spans} == {"grove-test"}


async def test_router_legs_carry_the_prompt_tokens_vllm_found_cached(vllm_pd_pair: PDPair) -> None:
    """The same long prompt twice: the second prefill finds it in vLLM's prefix cache, and the decode
    leg's figure is the one the client's answer reports (``--enable-prompt-tokens-details``)."""
    tracing.configure("grove-test", {"GROVE_TRACE_STORE_TRACES": "20"})  # read in-process below
    prompt = f"{uuid.uuid4().hex} " + "the router sends the prompt to the prefill worker first. " * 40
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 2, "temperature": 0}
    router = router_for(vllm_pd_pair)
    await router.start()
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            answers = []
            for n in range(2):
                response = await client.post(
                    f"{router.url}/v1/completions",
                    json=body,
                    headers={"traceparent": f"00-{TRACE_ID[:-1]}{n}-{CLIENT_SPAN}-01"},
                )
                assert response.status_code == 200, response.text
                answers.append(response.json())
    finally:
        await router.stop()
    traces = [tracing.trace(f"{TRACE_ID[:-1]}{n}") or [] for n in range(2)]
    tracing.configure("grove-test", {})
    legs = []
    for answer, trace in zip(answers, traces, strict=True):
        spans = {s.name: s for s in trace}
        legs.append((spans["router.leg prefill"].attributes, spans["router.leg decode"].attributes))
        assert legs[-1][1]["grove.cached_tokens"] == answer["usage"]["prompt_tokens_details"]["cached_tokens"]
    first_prefill, second_prefill = legs[0][0]["grove.cached_tokens"], legs[1][0]["grove.cached_tokens"]
    assert first_prefill == 0  # a prompt no one sent before
    assert 0 < int(second_prefill) <= answers[1]["usage"]["prompt_tokens"]
