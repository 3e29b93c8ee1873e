"""Each stage's calls, outcomes and latency, read back from the server's own Prometheus registry.

Cumulative numbers, summed over callers: the page turns two readings into a live rate, error ratio and
mean latency, so the server keeps no second copy of what its metrics already count.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from grove_pipelines.spec.server_metrics import STAGE_CALL_SECONDS, STAGE_CALLS, STAGE_FAILED_OUTCOMES
from runtime.server.metrics import Metrics

__all__ = ["StageStats", "stage_stats"]

_CALLS = STAGE_CALLS + "_total"
_SUM = STAGE_CALL_SECONDS + "_sum"
_COUNT = STAGE_CALL_SECONDS + "_count"


class StageStats(BaseModel):
    """One stage's counters since the server started: calls by outcome, failed calls, and latency sum/count."""

    outcomes: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    seconds_sum: float = 0.0
    seconds_count: int = 0


def stage_stats(metrics: Metrics) -> dict[str, StageStats]:
    """Every stage seen in ``metrics`` so far, by name."""
    found: dict[str, StageStats] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            stage = sample.labels.get("stage")
            if stage is None or sample.name not in (_CALLS, _SUM, _COUNT):
                continue
            stats = found.setdefault(stage, StageStats())
            if sample.name == _CALLS:
                outcome = sample.labels.get("outcome", "")
                stats.outcomes[outcome] = stats.outcomes.get(outcome, 0) + int(sample.value)
                if outcome in STAGE_FAILED_OUTCOMES:
                    stats.failed += int(sample.value)
            elif sample.name == _SUM:
                stats.seconds_sum += sample.value
            else:
                stats.seconds_count += int(sample.value)
    return found
