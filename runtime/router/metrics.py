"""Prometheus metrics of the router, in a registry of their own (several routers may share a process).

Counters and histograms are :mod:`~runtime.router.tallies` (plain numbers, read when scraped); the
gauges are ``prometheus_client``'s, the in-flight ones read from the workers when scraped.

Names start with ``grove_router_``. Buckets cover a CPU test run (milliseconds) up to long GPU
generations (minutes).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from runtime.router.metrics_peers import MetricsPeers
from runtime.router.tallies import Tally, TallyHistogram
from runtime.router.workers import Worker

__all__ = ["CONTENT_TYPE", "EndpointSeries", "RouterMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class EndpointSeries:
    """One endpoint's per-request series, looked up once: a labelled lookup per request costs more than the update."""

    __slots__ = ("_metrics", "_requests", "endpoint", "latency", "ttft")

    def __init__(self, metrics: RouterMetrics, endpoint: str) -> None:
        self._metrics, self.endpoint = metrics, endpoint
        self.latency = metrics.of(metrics.latency, endpoint)
        self.ttft = metrics.of(metrics.ttft, endpoint)
        self._requests: dict[int, Any] = {}

    def answered(self, status: int) -> Any:
        """The ``grove_router_requests`` child of this endpoint and ``status``."""
        child = self._requests.get(status)
        if child is None:
            child = self._requests[status] = self._metrics.of(
                self._metrics.requests, self.endpoint, str(status)
            )
        return child


class RouterMetrics:
    """All series the router exports; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Tally(
            "grove_router_requests",
            "Requests answered, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = TallyHistogram(
            "grove_router_request_duration_seconds",
            "End-to-end latency of proxied requests.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.ttft = TallyHistogram(
            "grove_router_time_to_first_token_seconds",
            "From request arrival to the first byte of the answer's body sent to the client.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.leg_latency = TallyHistogram(
            "grove_router_leg_duration_seconds",
            "Duration of one upstream leg (prefill: whole leg; decode/worker: until the answer headers).",
            ["leg"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "grove_router_worker_in_flight",
            "Requests this router has in flight per worker.",
            ["role", "worker"],
            registry=r,
        )
        self.retries = Tally(
            "grove_router_retries", "Legs retried on another worker, by leg.", ["leg"], registry=r
        )
        self.ejections = Tally(
            "grove_router_ejections",
            "Workers ejected after failing requests.",
            ["role", "worker"],
            registry=r,
        )
        self.decisions = Tally(
            "grove_router_decisions",
            "Routing decisions, by mode and kind of reason.",
            ["mode", "reason"],
            registry=r,
        )
        self.healthy = Gauge(
            "grove_router_worker_healthy",
            "1 if the worker passed its last health check.",
            ["role", "worker"],
            registry=r,
        )
        self.kv_abandoned = Tally(
            "grove_router_prefilled_kv_abandoned",
            "Prefilled KV no decode leg took. released: the decode worker refused the request and "
            "vLLM freed the prefill worker's blocks; expiring: held until the prefill worker's "
            "kv_lease ends; reused: a retried decode leg pulled it after all.",
            ["outcome"],
            registry=r,
        )
        self.policy_errors = Tally(
            "grove_router_policy_errors",
            "Policy failures that fell back to round robin, by pool.",
            ["role"],
            registry=r,
        )
        self.client_aborts = Tally(
            "grove_router_client_aborts",
            "Requests ended by the client: disconnect, or stopped reading (write timeout).",
            ["reason"],
            registry=r,
        )
        self.peer_facts = Tally(
            "grove_router_peer_facts",
            "Routed facts between router processes (--processes > 1): sent (per peer), received, and "
            "those lost: dropped (a peer's buffer was full, or no peer yet), truncated (a very long "
            "prompt's hashes cut), unknown_worker, foreign or malformed batches.",
            ["outcome"],
            registry=r,
        )
        self.queue_depth = Gauge("grove_router_queue_depth", "Requests waiting for a slot.", registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._endpoints: dict[str, EndpointSeries] = {}
        #: With several router processes: where their samples meet, so any one's page counts them all.
        self.peers: MetricsPeers | None = None

    def of(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the client's own lookup costs tens of microseconds."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def endpoint(self, endpoint: str) -> EndpointSeries:
        """The per-request series of ``endpoint`` (``completions`` or ``chat``)."""
        series = self._endpoints.get(endpoint)
        if series is None:
            series = self._endpoints[endpoint] = EndpointSeries(self, endpoint)
        return series

    def watch_load(self, worker: Worker) -> None:
        """Export the worker's in-flight count, read when scraped (not set on every request)."""
        self.of(self.in_flight, worker.role, worker.url).set_function(lambda: worker.in_flight)

    def forget_worker(self, role: str, url: str) -> None:
        """Drop the per-worker series of a worker that left its pool."""
        for metric in (self.in_flight, self.healthy, self.ejections):
            self._children.pop((id(metric), (role, url)), None)
            try:
                metric.remove(role, url)
            except KeyError:
                pass

    def render(self) -> bytes:
        """The text exposition format (every process's samples when :attr:`peers` is set)."""
        if self.peers is not None:
            return generate_latest(self.peers.merged(self.registry))
        return generate_latest(self.registry)
