"""Tracing's environment: one contract shared by the compiler (what pods get) and the runtime (what it reads).

The standard OpenTelemetry variables configure every process of a pipeline (pipeline server, stage
servers, routers, vLLM workers). Exporting is off unless an OTLP endpoint is set; without one each
server keeps its last traces in memory (``GROVE_TRACE_STORE_TRACES`` of them) for its page.

vLLM reads none of these for its own spans: it exports only when started with
``--otlp-traces-endpoint URL`` and then takes the protocol from ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``
alone (``grpc`` when unset, vLLM 0.32's ``vllm/tracing/otel.py``). :func:`otlp_traces_target`
resolves the endpoint and protocol once, as the specification does for our own exporter, and
:func:`vllm_tracing_env` gives vLLM the same, so its spans reach the same collector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "OTEL_PASSTHROUGH",
    "OTLP_ENDPOINT_ENV",
    "OTLP_TRACES_ENDPOINT_ENV",
    "OTLP_TRACES_PROTOCOL_ENV",
    "SERVICE_NAME_ENV",
    "TRACE_STORE_ENV",
    "OTLPTarget",
    "check_otel_env",
    "otlp_traces_target",
    "vllm_tracing_env",
]

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTLP_TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTLP_TRACES_PROTOCOL_ENV = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
SERVICE_NAME_ENV = "OTEL_SERVICE_NAME"
TRACE_STORE_ENV = "GROVE_TRACE_STORE_TRACES"

OTEL_PASSTHROUGH: tuple[str, ...] = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    OTLP_ENDPOINT_ENV,
    OTLP_TRACES_ENDPOINT_ENV,
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    OTLP_TRACES_PROTOCOL_ENV,
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_RESOURCE_ATTRIBUTES",
    TRACE_STORE_ENV,
)
"""Variables a process reads for tracing, which the compiled pods get from ``@pipeline(otel={...})``
(``OTEL_SERVICE_NAME`` is not among them: each process names itself)."""

Protocol = Literal["http/protobuf", "grpc"]


class OTLPTarget(BaseModel):
    """Where a process sends its spans: the full traces endpoint and the OTLP protocol."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    protocol: Protocol = "http/protobuf"


def otlp_traces_target(environ: Mapping[str, str]) -> OTLPTarget | None:
    """The traces endpoint the variables name, resolved as the specification says; None: exporting is off.

    Off without an endpoint, with ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The
    protocol is ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, else
    ``http/protobuf``; a general endpoint gets ``/v1/traces`` appended over HTTP.
    """
    traces, base = (
        environ.get(OTLP_TRACES_ENDPOINT_ENV, "").strip(),
        environ.get(OTLP_ENDPOINT_ENV, "").strip(),
    )
    if not (traces or base):
        return None
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    named = environ.get(OTLP_TRACES_PROTOCOL_ENV) or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    protocol: Protocol = "grpc" if named.strip() == "grpc" else "http/protobuf"
    if traces:
        return OTLPTarget(endpoint=traces, protocol=protocol)
    return OTLPTarget(
        endpoint=base if protocol == "grpc" else base.rstrip("/") + "/v1/traces", protocol=protocol
    )


def vllm_tracing_env(target: OTLPTarget, role: str) -> dict[str, str]:
    """What a vLLM worker started with ``--otlp-traces-endpoint target.endpoint`` needs besides: the
    protocol (vLLM assumes ``grpc``) and a service name that says which worker it is."""
    return {
        OTLP_TRACES_PROTOCOL_ENV: target.protocol,
        SERVICE_NAME_ENV: "vllm" if role in ("serve", "aggregated") else f"vllm-{role}",
    }


def check_otel_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` if every name is one of :data:`OTEL_PASSTHROUGH`; else ``ValueError`` naming the first that is not."""
    for key in env:
        if key not in OTEL_PASSTHROUGH:
            raise ValueError(
                f"{key!r} is not a tracing variable this project passes on (one of {', '.join(OTEL_PASSTHROUGH)})"
            )
    return dict(env)
