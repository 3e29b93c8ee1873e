"""OpenTelemetry tracing of pipeline requests: spans per stage call, LLM call and router leg.

One trace per pipeline request, carried across processes by the W3C ``traceparent`` header (the
HTTP client in ``runtime.http`` adds it to every call made under a span, so stage servers, routers
and vLLM workers continue the same trace). Each process calls :func:`configure` once at start;
spans then go, when an OTLP endpoint is set in the standard ``OTEL_*`` variables, to the collector,
and, when ``GROVE_TRACE_STORE_TRACES`` asks for it, to a bounded in-memory store (read with
:func:`recent` and :func:`trace`). With neither, no span is made: ``traceparent`` passes through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from runtime.tracing.context import TRACEPARENT, SpanContext, current, parse_traceparent
from runtime.tracing.settings import TracingSettings
from runtime.tracing.spans import (
    _SETTINGS,
    _SINKS,
    Attribute,
    NonRecordingSpan,
    Span,
    current_traceparent,
    settings,
    start_span,
)
from runtime.tracing.store import SpanRecord, TraceStore, TraceSummary, _replace, recent, store, trace
from runtime.tracing.streams import traced_stream

__all__ = [
    "TRACEPARENT",
    "Attribute",
    "NonRecordingSpan",
    "Span",
    "SpanContext",
    "SpanRecord",
    "TraceStore",
    "TraceSummary",
    "TracingSettings",
    "configure",
    "current",
    "current_traceparent",
    "flush",
    "parse_traceparent",
    "recent",
    "settings",
    "start_span",
    "store",
    "trace",
    "traced_stream",
]

_FLUSH: list[Callable[[], None]] = []


def configure(service: str, environ: Mapping[str, str] | None = None) -> TracingSettings:
    """Set this process's tracing up from the ``OTEL_*`` variables; ``service`` names it unless ``OTEL_SERVICE_NAME`` does."""
    config = TracingSettings.from_env(service, environ)
    _SETTINGS[0] = config
    if config.store_traces != store().max_traces:
        _replace(TraceStore(config.store_traces))  # 0: keeps nothing
    _SINKS.clear()
    _FLUSH.clear()
    if config.enabled and config.export:
        from runtime.tracing.export import otlp_sink

        sink, flusher = otlp_sink(config.service, environ)
        _SINKS.append(sink)
        _FLUSH.append(flusher)
    return config


def flush() -> None:
    """Send the spans queued for export now (at shutdown, and in tests)."""
    for flusher in _FLUSH:
        flusher()
