"""Tracing's settings from the standard OpenTelemetry variables (names in ``grove_pipelines.spec.tracing``).

Off by default: no variable set means no span is recorded at all, and a caller's ``traceparent``
is passed on as it came (as OpenTelemetry's API does without an SDK), which costs a request next to
nothing. An OTLP endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT`` or its ``_TRACES_`` form) turns exporting
on, unless ``OTEL_TRACES_EXPORTER=none``; ``GROVE_TRACE_STORE_TRACES=N`` keeps the last N traces in
memory (read in-process). ``OTEL_SDK_DISABLED=true`` records nothing either way. Samplers: ``always_on``, ``always_off``, ``traceidratio`` and their
``parentbased_`` forms (the default is ``parentbased_always_on``, as in the specification).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict

from grove_pipelines.spec.tracing import SERVICE_NAME_ENV, TRACE_STORE_ENV, otlp_traces_target
from runtime.tracing.store import DEFAULT_TRACES

__all__ = ["TracingSettings"]

Sampler = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]
_SAMPLERS: tuple[str, ...] = Sampler.__args__  # type: ignore[attr-defined]


class TracingSettings(BaseModel):
    """What one process does with its spans."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    service: str = "grove-pipelines"
    export: bool = False
    sampler: Sampler = "parentbased_always_on"
    ratio: float = 1.0
    store_traces: int = 0
    """Traces kept in memory (0: none)."""

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> TracingSettings:
        """Settings of a process named ``service`` (unless ``OTEL_SERVICE_NAME`` names it); bad values fall back."""
        env = os.environ if environ is None else environ
        sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
        try:
            ratio = min(1.0, max(0.0, float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))))
        except ValueError:
            ratio = 1.0
        try:
            kept = int(env.get(TRACE_STORE_ENV, "0"))
        except ValueError:
            kept = DEFAULT_TRACES  # set, but not a number: the user wanted a store
        return cls(
            enabled=env.get("OTEL_SDK_DISABLED", "").strip().lower() != "true",
            service=env.get(SERVICE_NAME_ENV) or service,
            export=otlp_traces_target(env) is not None,
            sampler=sampler if sampler in _SAMPLERS else "parentbased_always_on",  # type: ignore[arg-type]
            ratio=ratio,
            store_traces=max(0, min(kept, 100_000)),
        )

    @cached_property
    def records(self) -> bool:
        """Whether spans go anywhere (an exporter or the store); if not, none is made (see ``start_span``).

        Worked out once (the settings are frozen): every request asks, some several times.
        """
        return self.enabled and (self.export or self.store_traces > 0)

    def sample(self, trace_id: str, parent_sampled: bool | None) -> bool:
        """Whether a new span is recorded; ``parent_sampled`` is None for a root span."""
        if not self.enabled:
            return False
        name = self.sampler
        if name.startswith("parentbased_"):
            if parent_sampled is not None:
                return parent_sampled
            name = name[len("parentbased_") :]  # type: ignore[assignment]
        if name == "always_off":
            return False
        if name == "traceidratio":
            return int(trace_id[16:], 16) < self.ratio * (1 << 64)  # the low 64 bits, as the SDK does
        return True
