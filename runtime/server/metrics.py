"""Prometheus metrics of the pipeline server, in a registry of its own (one per app, so tests can make many).

Counters and histograms are the router's :mod:`~runtime.router.tallies` (plain numbers, turned into
the exposition when scraped): every stage call updates two of them, and ``prometheus_client``'s own
series take a lock and look their labels up on each update.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from grove_pipelines.spec.server_metrics import (
    PIPELINE_IN_FLIGHT,
    PIPELINE_REQUEST_SECONDS,
    PIPELINE_REQUESTS,
    STAGE_CALL_SECONDS,
    STAGE_CALLS,
)
from runtime.router.tallies import Tally, TallyHistogram

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Running:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def read(self) -> float:
        return float(self.value)


class Metrics:
    """Requests per pipeline and status, in-flight requests, and every stage call by caller, stage and outcome."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Tally(
            PIPELINE_REQUESTS, "Pipeline requests by outcome.", ("pipeline", "status"), registry=self.registry
        )
        self.request_seconds = TallyHistogram(
            PIPELINE_REQUEST_SECONDS,
            "Pipeline request latency.",
            ("pipeline",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            PIPELINE_IN_FLIGHT,
            "Pipeline requests being served.",
            ("pipeline",),
            registry=self.registry,
        )
        self.stage_calls = Tally(
            STAGE_CALLS,
            "Stage calls by caller, stage and outcome (ok, error, timeout, retry, cancelled).",
            ("caller", "stage", "outcome"),
            registry=self.registry,
        )
        self.stage_seconds = TallyHistogram(
            STAGE_CALL_SECONDS,
            "Stage call latency, retries included.",
            ("stage",),
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.on_stage_call: Callable[[str, str, str, float], None] | None = None
        """Told of every ended stage call (caller, stage, outcome, seconds): the page's waterfalls."""
        self._running: dict[str, _Running] = {}
        self._ended: dict[tuple[str, str, str], tuple[Callable[[], None], Callable[[float], None]]] = {}
        """An ended call's two series (their ``inc`` and ``observe``) by (caller, stage, outcome): looked up
        once, not on every call."""

    def running(self, pipeline: str) -> _Running:
        """``pipeline``'s in-flight count: a plain number a request moves, read when scraped (the gauge's own
        ``inc``/``dec`` look their labels up and take a lock on each request)."""
        count = self._running.get(pipeline)
        if count is None:
            count = self._running[pipeline] = _Running()
            self.in_flight.labels(pipeline).set_function(count.read)
        return count

    def stage_call(self, caller: str, stage: str, outcome: str, seconds: float | None = None) -> None:
        """Record one stage call (or one retry when ``seconds`` is None)."""
        if seconds is None:
            self.stage_calls.labels(caller, stage, outcome).inc()
            return
        key = (caller, stage, outcome)
        series = self._ended.get(key)
        if series is None:
            series = self._ended[key] = (
                self.stage_calls.labels(caller, stage, outcome).inc,
                self.stage_seconds.labels(stage).observe,
            )
        count, observe = series
        count()
        observe(seconds)
        if self.on_stage_call is not None:
            self.on_stage_call(caller, stage, outcome, seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
