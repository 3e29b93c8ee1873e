"""The three kinds of policy part: a :class:`Filter` narrows the candidates, a :class:`Scorer` rates
them, a :class:`Picker` chooses one (as llm-d's scheduler plugins do); :class:`Part` gives each a name
and no-op hooks for what the router tells them (where a request went, who is in the pool, what a
worker reported of its cache). Parts may keep state (a round-robin counter, a prefix index); a part
that learns from routed requests does it in two steps, :meth:`Part.note` where the request was
routed and :meth:`Part.learn` in every router process (``routed_fact.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import Worker

__all__ = ["Filter", "Part", "Picker", "Scorer"]


class Part:
    """Common base of policy parts: a name and no-op hooks (override what you need)."""

    name = "part"

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        """The request was sent to ``worker``: note into ``fact`` what :meth:`learn` will learn from it.

        Runs once, in the process that routed the request; request-local bookkeeping goes here too.
        """

    def learn(self, fact: RoutedFact) -> None:
        """Learn from a routed request (this process's or a peer process's), e.g. into a prefix index."""

    def peer_picked(self) -> None:
        """A peer router process picked a worker of this pool (pickers that take turns pass one)."""

    def on_routed(self, worker: Worker, req: RequestView, now: float | None = None) -> None:
        """The request was sent to ``worker`` at ``now``: :meth:`note` it, then :meth:`learn` it."""
        fact = RoutedFact(worker.url, time.monotonic() if now is None else now)
        self.note(fact, worker, req)
        self.learn(fact)

    def on_membership(self, urls: Sequence[str]) -> None:
        """The pool now has exactly these workers (drop state of departed ones)."""

    def on_worker_stats(self, url: str, stats: WorkerCacheStats) -> None:
        """A worker's own cache counters were scraped (for parts that correct an estimate with them)."""


@runtime_checkable
class Filter(Protocol):
    """Drops candidates that must not get the request. Must not reorder."""

    name: str

    def filter(self, workers: list[Worker], req: RequestView) -> list[Worker]: ...


@runtime_checkable
class Scorer(Protocol):
    """Rates each candidate in [0, 1] (higher is better) and explains the rating of one worker."""

    name: str

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]: ...

    def explain(self, worker: Worker, req: RequestView) -> str: ...


@runtime_checkable
class Picker(Protocol):
    """Chooses one candidate from the weighted scores; returns it with a short reason (may be empty)."""

    name: str

    def pick(
        self, workers: list[Worker], scores: dict[Worker, float], req: RequestView
    ) -> tuple[Worker, str]: ...
