"""The max-score picker: the best weighted score wins; ties rotate so equal workers share the load."""

from __future__ import annotations

from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["MaxScorePicker"]


class MaxScorePicker(Part):
    """Highest total score; among workers within ``1e-9`` of it, the next one in turn."""

    name = "max-score-picker"

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, workers: list[Worker], scores: dict[Worker, float], req: RequestView
    ) -> tuple[Worker, str]:
        best = max(scores[w] for w in workers)
        top = [w for w in workers if scores[w] >= best - 1e-9]
        choice = top[self._next % len(top)]
        self._next += 1
        return choice, ""

    def peer_picked(self) -> None:
        """Another router process took a turn (so, by turns, the processes pick as one router would)."""
        self._next += 1
