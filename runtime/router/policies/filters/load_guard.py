"""A filter that keeps affinity from piling requests onto one worker while others idle.

When the pool is imbalanced (busiest minus idlest above ``abs_threshold`` *and* busiest above
``rel_threshold`` times the idlest, vllm-router's rule), only workers within ``abs_threshold`` of the
idlest stay candidates. A balanced pool passes unchanged. The idlest worker always passes, so the
filter never empties the pool.
"""

from __future__ import annotations

from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["LoadGuardFilter"]


class LoadGuardFilter(Part):
    """Drops workers far busier than the idlest one, counted in requests in flight."""

    name = "load-guard-filter"

    def __init__(self, abs_threshold: int = 8, rel_threshold: float = 1.5) -> None:
        self.abs_threshold = abs_threshold
        self.rel_threshold = rel_threshold

    def filter(self, workers: list[Worker], req: RequestView) -> list[Worker]:
        loads = [w.in_flight for w in workers]
        low, high = min(loads), max(loads)
        if high - low <= self.abs_threshold or high <= low * self.rel_threshold:
            return workers
        return [w for w in workers if w.in_flight <= low + self.abs_threshold]
