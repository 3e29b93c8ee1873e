"""Tracing without vLLM: traceparent parsing, sampling, the bounded store, and OTLP export to a collector double."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime import tracing
from runtime.router.legs import CACHED_TOKENS, note_cached_tokens
from runtime.tracing import NonRecordingSpan, TracingSettings, parse_traceparent, start_span
from runtime.tracing.context import format_traceparent
from tests.otlp_collector import otlp_collector

pytestmark = pytest.mark.timeout(60)

KEEP = {"GROVE_TRACE_STORE_TRACES": "200"}
TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    tracing.configure("test", KEEP)
    tracing.store().clear()
    yield
    tracing.configure("test", {})


def test_a_well_formed_traceparent_is_the_parent_and_round_trips() -> None:
    ctx = parse_traceparent(TP)
    assert ctx is not None and ctx.trace_id == "0af7651916cd43dd8448eb211c80319c" and ctx.sampled
    assert format_traceparent(ctx) == TP
    span = start_span("child", parent=ctx)
    assert (span.trace_id, span.parent_id) == (ctx.trace_id, "b7ad6b7169203331")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        TP.upper(),
        TP + " ",
        "01" + TP[2:],
        "00-" + "0" * 32 + TP[35:],
        TP[:36] + "0" * 16 + "-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        "x" * 55,
        "00-zz" + TP[5:],
    ],
)
def test_anything_else_is_ignored_not_an_error(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_nested_spans_share_the_trace_and_the_store_keeps_them_typed() -> None:
    with start_span("root", {"a": 1}) as root:
        assert tracing.current_traceparent() == format_traceparent(root)
        with start_span("inner") as inner:
            inner.fail("boom")
    assert tracing.current() is None
    [summary] = tracing.recent()
    assert (summary.trace_id, summary.name, summary.spans, summary.error) == (root.trace_id, "root", 2, True)
    spans = tracing.trace(root.trace_id)
    assert spans is not None and [s.name for s in spans] == ["root", "inner"]
    assert (
        spans[1].parent_id == root.span_id and spans[1].status == "error" and spans[0].attributes == {"a": 1}
    )
    assert tracing.trace("f" * 32) is None


def test_the_store_keeps_only_the_newest_traces() -> None:
    tracing.configure("test", {"GROVE_TRACE_STORE_TRACES": "3"})
    ids = []
    for i in range(5):
        with start_span(f"t{i}") as span:
            ids.append(span.trace_id)
    assert [s.trace_id for s in tracing.recent()] == ids[:1:-1]  # newest first, the two oldest gone
    assert tracing.trace(ids[0]) is None


def test_samplers_follow_the_specification() -> None:
    parent_off = parse_traceparent(TP[:-2] + "00")
    assert not start_span("x", parent=parent_off).sampled  # parent-based by default
    off = TracingSettings.from_env("s", {"OTEL_TRACES_SAMPLER": "always_off"})
    assert not off.sample("f" * 32, None) and not off.sample("f" * 32, True)
    ratio = TracingSettings.from_env(
        "s", {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}
    )
    assert ratio.sample("f" * 16 + "0" * 16, None) and not ratio.sample("0" * 16 + "f" * 16, None)
    assert not TracingSettings.from_env("s", {"OTEL_SDK_DISABLED": "true"}).sample("a" * 32, True)
    assert (
        TracingSettings.from_env("s", {"OTEL_TRACES_SAMPLER": "nonsense"}).sampler == "parentbased_always_on"
    )


def test_an_unsampled_span_is_neither_kept_nor_exported_but_still_propagates() -> None:
    tracing.configure("test", {"OTEL_TRACES_SAMPLER": "always_off", **KEEP})
    with start_span("quiet") as span:
        assert tracing.current_traceparent() == f"00-{span.trace_id}-{span.span_id}-00"
    assert tracing.recent() == []


def test_by_default_no_span_is_made_and_the_callers_traceparent_passes_through() -> None:
    tracing.configure("test", {})
    assert not tracing.settings().records
    with start_span("root", {"a": 1}) as root:
        assert isinstance(root, NonRecordingSpan) and not root.recording
        assert tracing.current() is None and tracing.current_traceparent() is None  # no trace to continue
    with start_span("child", parent=parse_traceparent(TP)) as child:
        child.set("b", 2)
        child.fail("boom")
        assert tracing.current_traceparent() == TP and isinstance(child, NonRecordingSpan)
    assert tracing.recent() == [] and tracing.store().max_traces == 0
    tracing.configure(
        "test", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}
    )
    assert isinstance(start_span("off"), NonRecordingSpan)


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set() -> None:
    with otlp_collector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_SERVICE_NAME": "svc"}
        assert tracing.configure("default-name", env).export
        with (
            start_span("outer", {"n": 2, "ok": True}, parent=parse_traceparent(TP)) as outer,
            start_span("leg", kind="client") as leg,
        ):
            leg.fail("HTTP 503")
        tracing.flush()
        got = {s.name: s for s in collector.spans()}
    assert set(got) == {"outer", "leg"}
    assert (
        got["outer"].trace_id == "0af7651916cd43dd8448eb211c80319c"
        and got["outer"].parent_id == "b7ad6b7169203331"
    )
    assert got["leg"].parent_id == outer.span_id and got["leg"].status == 2  # STATUS_CODE_ERROR
    assert got["outer"].attributes == {"n": 2, "ok": True} and got["outer"].service == "svc"
    assert leg.trace_id == outer.trace_id


def test_export_is_off_by_default_and_with_exporter_none() -> None:
    assert not TracingSettings.from_env("s", {}).export
    assert not TracingSettings.from_env(
        "s", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    ).export


@pytest.mark.parametrize(("answer", "expected"), [
    (b'{"usage":{"prompt_tokens":40,"prompt_tokens_details":{"cached_tokens":32}}}', 32),
    (b'data: {"choices":[],"usage":{"prompt_tokens_details": {"cached_tokens" : 0}}}\n\n', 0),
    (b'{"choices":[{"text":"say \\"cached_tokens\\": 7"}],"usage":{"prompt_tokens":3}}', None),  # the model's words
    (b'{"usage":{"prompt_tokens":3,"prompt_tokens_details":null}}', None),
])  # fmt: skip
def test_the_router_reads_cached_tokens_only_from_the_answers_usage(
    answer: bytes, expected: int | None
) -> None:
    span = start_span("leg")
    note_cached_tokens(span, answer)
    assert span.attributes.get(CACHED_TOKENS) == expected
