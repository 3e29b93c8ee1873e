"""``round_robin``: each available worker in turn, ignoring load and scores.

Type name: ``round_robin``. Parameters: none. Config example::

    policy: {name: round_robin}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from runtime.router.policies.parts import Part
from runtime.router.policies.policy import Policy
from runtime.router.policies.request_view import RequestView
from runtime.router.workers import Worker

__all__ = ["RoundRobinParams", "RoundRobinPicker", "build"]


class RoundRobinParams(BaseModel):
    """No parameters."""

    model_config = ConfigDict(extra="forbid")


class RoundRobinPicker(Part):
    """Picks candidates in URL order, one after the other."""

    name = "round-robin-picker"

    def __init__(self) -> None:
        self._next = 0

    def pick(
        self, workers: list[Worker], scores: dict[Worker, float], req: RequestView
    ) -> tuple[Worker, str]:
        index = self._next % len(workers)
        self._next += 1
        return workers[index], f"round-robin {index + 1}/{len(workers)}" if req.explain else ""

    def peer_picked(self) -> None:
        """Another router process took a turn (so, by turns, the processes pick as one router would)."""
        self._next += 1


def build(params: RoundRobinParams) -> Policy:
    """The ``round_robin`` policy."""
    return Policy("round_robin", picker=RoundRobinPicker())
