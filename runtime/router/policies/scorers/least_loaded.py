"""``least_loaded``: the worker with the fewest requests (or tokens) in flight through this router.

Type name: ``least_loaded``. Parameters: ``by`` = ``requests`` (default) or ``tokens`` (prompt
estimate until its first token, plus ``max_tokens``, of every request in flight). Config example::

    decode_policy: {name: least_loaded, params: {by: tokens}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from runtime.router.policies.parts import Part
from runtime.router.policies.pickers.max_score import MaxScorePicker
from runtime.router.policies.policy import Policy
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["LeastLoadedParams", "LeastLoadedScorer", "build"]


class LeastLoadedParams(BaseModel):
    """What counts as load."""

    model_config = ConfigDict(extra="forbid")

    by: Literal["requests", "tokens"] = "requests"


class LeastLoadedScorer(Part):
    """Score ``1 - load / max load`` over the candidates (all 1 when nobody is busy)."""

    name = "least-loaded-scorer"

    def __init__(self, by: Literal["requests", "tokens"] = "requests") -> None:
        self.by = by

    def load(self, worker: Worker) -> int:
        """The worker's load in this scorer's unit."""
        return worker.in_flight if self.by == "requests" else worker.tokens_in_flight

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]:
        peak = max(self.load(w) for w in workers)
        return {w: 1.0 - self.load(w) / peak if peak else 1.0 for w in workers}

    def explain(self, worker: Worker, req: RequestView) -> str:
        unit = "requests" if self.by == "requests" else "tokens"
        return f"least-loaded {self.load(worker)} {unit} in flight"


def build(params: LeastLoadedParams) -> Policy:
    """The ``least_loaded`` policy."""
    return Policy("least_loaded", scorers=[(LeastLoadedScorer(params.by), 1.0)], picker=MaxScorePicker())
