"""Tracing's environment: one contract shared by the compiler (what pods get) and the runtime (what it reads).

The standard OpenTelemetry variables configure every process of a pipeline (pipeline server, stage
servers, routers, vLLM workers). Exporting is off unless an OTLP endpoint is set; without one each
server keeps its last traces in memory (``GROVE_TRACE_STORE_TRACES`` of them) for its page.
"""

from __future__ import annotations

__all__ = [
    "OTEL_PASSTHROUGH",
    "OTLP_ENDPOINT_ENV",
    "OTLP_TRACES_ENDPOINT_ENV",
    "SERVICE_NAME_ENV",
    "TRACE_STORE_ENV",
]

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
TRACE_STORE_ENV = "GROVE_TRACE_STORE_TRACES"

OTEL_PASSTHROUGH: tuple[str, ...] = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    OTLP_ENDPOINT_ENV,
    OTLP_TRACES_ENDPOINT_ENV,
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    TRACE_STORE_ENV,
)
"""Variables a process reads for tracing, which the compiled pods and ``run`` pass on as they are set
(``OTEL_SERVICE_NAME`` is not among them: each process names itself)."""
