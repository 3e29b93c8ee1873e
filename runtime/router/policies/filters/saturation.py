"""Sticky until saturated: affinity may keep choosing a worker only while that worker has room.

Affinity (session, prefix, fan-out) concentrates hot prefixes on one worker; past some load, its
queue costs more than a cache miss elsewhere (llm-d's "sticky until saturated"). A worker is
saturated when this router has ``max_in_flight`` requests on it, or when its engine reported
``max_waiting`` requests waiting (``vllm:num_requests_waiting`` at the last scrape of its
``/metrics``). Saturated workers leave the candidates, unless every one is saturated (then all stay,
and the policy's load terms decide). ``None`` turns a criterion off.
"""

from __future__ import annotations

from collections.abc import Sequence

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["SaturationFilter"]


class SaturationFilter(Part):
    """Drops saturated workers while some worker is not."""

    name = "saturation-filter"

    def __init__(self, max_in_flight: int | None = None, max_waiting: float | None = 5) -> None:
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self._waiting: dict[str, float] = {}

    def saturated(self, worker: Worker) -> bool:
        """Whether ``worker`` has no room for one more request of affinity's choosing."""
        if self.max_in_flight is not None and worker.in_flight >= self.max_in_flight:
            return True
        return self.max_waiting is not None and self._waiting.get(worker.url, 0.0) >= self.max_waiting

    def filter(self, workers: list[Worker], req: RequestView) -> list[Worker]:
        room = [w for w in workers if not self.saturated(w)]
        return room or workers

    def on_worker_stats(self, url: str, stats: WorkerCacheStats) -> None:
        if stats.waiting is not None:
            self._waiting[url] = stats.waiting

    def on_membership(self, urls: Sequence[str]) -> None:
        keep = set(urls)
        for url in [u for u in self._waiting if u not in keep]:
            del self._waiting[url]
