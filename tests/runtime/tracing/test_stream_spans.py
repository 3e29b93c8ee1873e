"""Spans of calls that stream: an LLM call the pipeline iterates, and the server's OpenAI pass-through.

The LLM stage's endpoint is the vLLM double (``tests/runtime/fake_vllm.py``), which records the
``traceparent`` each request carried: the callee must see the span's own id, under the caller's trace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from grove_pipelines import llm, pipeline
from grove_pipelines.sdk import Pipeline
from runtime import tracing
from runtime.server import build_app
from runtime.tracing import parse_traceparent
from tests.runtime.conftest import MakeFake
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT = f"00-{TRACE}-00f067aa0ba902b7-01"
talker = llm("talker", model="tiny", served_model_name="tiny")


@pipeline(name="reads-stream")
async def reads_stream(text: str) -> str:
    return "".join([piece async for piece in talker.stream_complete(text, max_tokens=3)])


@pipeline(name="reads-one")
async def reads_one(text: str) -> str:
    async for piece in talker.stream_complete(text, max_tokens=3):
        return piece  # leaves the stream early
    return ""


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    tracing.configure("stream-test", {"GROVE_TRACE_STORE_TRACES": "200"})
    tracing.store().clear()
    yield


def _spans() -> dict[str, tracing.SpanRecord]:
    spans = tracing.trace(TRACE) or []
    assert len({s.name for s in spans}) == len(spans), [s.name for s in spans]
    return {s.name: s for s in spans}


async def _run(fake: FakeVLLM, pipe: Pipeline, path: str, body: dict[str, object]) -> None:
    """One request with the client's traceparent to a server whose LLM stage is ``fake``."""
    app = build_app([make_executor(pipe, talker, llm_urls={"talker": fake.url})])
    async with serving(app) as (_, http):
        response = await http.post(path, json=body, headers={"traceparent": CLIENT})
    assert response.status_code == 200, response.text


async def test_a_streamed_llm_call_is_a_span_under_the_run_and_the_router_continues_it(
    fakes: MakeFake,
) -> None:
    fake = await fakes("aggregated")
    await _run(fake, reads_stream, "/v1/pipelines/reads-stream", {"text": "hi"})
    spans = _spans()
    run, call = spans["pipeline reads-stream"], spans["llm talker"]
    assert call.parent_id == run.span_id and run.parent_id == "00f067aa0ba902b7"
    assert call.attributes["grove.llm.stream"] is True and call.status == "ok"
    assert (
        call.start_ns >= run.start_ns and call.end_ns <= run.end_ns
    )  # ended with the stream, inside the run
    assert float(call.attributes["grove.ttft_ms"]) > 0
    [seen] = fake.completions()
    sent = parse_traceparent(seen.headers.get("traceparent"))
    assert sent is not None and (sent.trace_id, sent.span_id) == (TRACE, call.span_id)


async def test_leaving_a_stream_early_ends_its_span_without_failing_it(fakes: MakeFake) -> None:
    await _run(await fakes("aggregated"), reads_one, "/v1/pipelines/reads-one", {"text": "hi"})
    call = _spans()["llm talker"]
    assert call.status == "ok" and call.attributes["grove.stream.closed_early"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_the_openai_pass_through_is_a_span_the_router_continues(fakes: MakeFake, stream: bool) -> None:
    fake = await fakes("aggregated")
    await _run(
        fake,
        reads_stream,
        "/v1/completions",
        {"model": "tiny", "prompt": "hi", "max_tokens": 3, "stream": stream},
    )
    proxied = _spans()["llm.proxy talker"]
    assert proxied.parent_id == "00f067aa0ba902b7" and proxied.kind == "server" and proxied.status == "ok"
    assert proxied.attributes["http.response.status_code"] == 200
    [seen] = fake.completions()
    sent = parse_traceparent(seen.headers.get("traceparent"))
    assert sent is not None and (sent.trace_id, sent.span_id) == (TRACE, proxied.span_id)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: str) -> bytes:
    """One keep-alive POST of the ``reads-stream`` pipeline on an open connection; its status line."""
    body = json.dumps({"text": "hi"}).encode()
    writer.write(
        b"POST /v1/pipelines/reads-stream HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        + headers.encode()
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_two_requests_on_one_connection_share_neither_trace_nor_session(fakes: MakeFake) -> None:
    """The listener answers a connection's requests in one task: the second must not run under the first's trace."""
    fake = await fakes("aggregated")
    app = build_app([make_executor(reads_stream, talker, llm_urls={"talker": fake.url})])
    async with serving(app) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            first = await _exchange(
                reader, writer, f"traceparent: {CLIENT}\r\nx-session-id: first-session\r\n"
            )
            second = await _exchange(reader, writer, "")
        finally:
            writer.close()
    assert first == second == b"HTTP/1.1 200 OK"
    calls = fake.completions()
    assert len(calls) == 2
    traces = [parse_traceparent(seen.headers.get("traceparent")) for seen in calls]
    assert traces[0] is not None and traces[0].trace_id == TRACE
    assert traces[1] is not None and traces[1].trace_id != TRACE  # a trace of its own, not the first's
    assert calls[0].headers.get("x-session-id") == "first-session"
    assert calls[1].headers.get("x-session-id") not in (None, "first-session")  # its own request id
