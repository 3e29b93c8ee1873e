"""Export finished spans over OTLP with OpenTelemetry's own SDK exporter (batched, off the request path).

Loaded only when an OTLP endpoint is configured. The SDK's ``OTLPSpanExporter`` reads the standard
variables itself (headers, timeouts, certificates); the endpoint and protocol (``http/protobuf`` by
default, or ``grpc``) are resolved by ``grove_pipelines.spec.tracing.otlp_traces_target``, the same
resolution the vLLM workers' ``--otlp-traces-endpoint`` gets.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace.status import Status, StatusCode

from grove_pipelines.spec.tracing import otlp_traces_target
from runtime.tracing.spans import Span

__all__ = ["otlp_sink"]

_KINDS = {
    "internal": trace_api.SpanKind.INTERNAL,
    "server": trace_api.SpanKind.SERVER,
    "client": trace_api.SpanKind.CLIENT,
}
_STATUS = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}


def _exporter(environ: Mapping[str, str]) -> SpanExporter:
    target = otlp_traces_target(environ)
    assert target is not None  # configure() exports only when an endpoint is set
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=target.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=target.endpoint)


def _context(trace_id: str, span_id: str) -> trace_api.SpanContext:
    return trace_api.SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=False, trace_flags=trace_api.TraceFlags(1)
    )


def otlp_sink(
    service: str, environ: Mapping[str, str] | None = None
) -> tuple[Callable[[Span], None], Callable[[], None]]:
    """``(sink, flush)``: the sink hands a finished span to a batch processor; ``flush`` sends what is queued."""
    env = os.environ if environ is None else environ
    resource = Resource.create({"service.name": service})  # merges OTEL_RESOURCE_ATTRIBUTES
    processor = BatchSpanProcessor(_exporter(env))

    def sink(span: Span) -> None:
        parent = None if span.parent_id is None else _context(span.trace_id, span.parent_id)
        processor.on_end(
            ReadableSpan(
                name=span.name,
                context=_context(span.trace_id, span.span_id),
                parent=parent,
                resource=resource,
                attributes=span.attributes,
                kind=_KINDS[span.kind],
                status=Status(_STATUS[span.status], span.status_message if span.status == "error" else None),
                start_time=span.start_ns,
                end_time=span.end_ns,
            )
        )

    def flush() -> None:
        processor.force_flush()

    return sink, flush
