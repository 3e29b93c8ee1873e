"""Bounded affinity: a session or fan-out hint may cost at most ``slack`` blocks more than the cheapest worker.

The ``prefix`` policy's session and fan-out scorers outweigh its cost scorer (they must, to keep a
conversation on one worker before any cache feedback exists), so on their own they keep a hot
session on a worker however busy it is, up to saturation (``saturation.py``), which counts requests,
not work. This filter bounds them in the cost's own unit: a worker's cost is the prompt blocks it
would prefill (its cache counted, precisely when it publishes KV events) plus the blocks already
active on it, so a worker whose cost exceeds the cheapest one's by more than ``slack`` is slower
for this request even after its cache is counted, and leaves the candidates. Affinity then chooses
among the rest (llm-d's "sticky until saturated", with saturation measured in work). ``slack`` 0
follows the cost alone; the cheapest worker always stays.

The load in the cost counts work, not whole prompts: each request in flight weighs the prompt tokens
its worker lacked when it was routed there, plus its output (``request_work.py``). So fan-out
siblings over one context count the shared part once: with a slack of 5 blocks, four siblings over a
756-character context stay on one worker and the fifth leaves (with whole prompts as load, the third
already left). Still off by default (``affinity_slack``): on the Mooncake-format trace at twice the
bench's rate, slack 2 gave a higher TTFT p50 than no bound (95 against 85 ms, medians of 3 runs on
a shared machine) and captured less of the reusable prefix (0.91 against 0.95 of the oracle's): with
the workers' own cache state, the cost already moves a session off a busy worker, and the bound
mostly gives up cache hits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["CostBoundFilter"]

Cost = Callable[[Worker, RequestView, float], float]
"""A worker's cost for a request at a time (``PrefixScorer.cost``), in blocks."""


class CostBoundFilter(Part):
    """Keeps the workers within ``slack`` blocks of the cheapest worker's cost."""

    name = "cost-bound-filter"

    def __init__(self, cost: Cost, slack: float) -> None:
        self.cost = cost
        self.slack = slack

    def filter(self, workers: list[Worker], req: RequestView) -> list[Worker]:
        if len(workers) < 2:
            return workers
        now = time.monotonic()
        costs = [self.cost(w, req, now) for w in workers]
        bound = min(costs) + self.slack
        return [w for w, c in zip(workers, costs, strict=True) if c <= bound + 1e-9]
