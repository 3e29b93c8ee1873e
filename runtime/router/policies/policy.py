"""A routing policy: filters narrow the candidates, weighted scorers rate them, a picker chooses.

A :class:`Policy` runs its parts (:mod:`~runtime.router.policies.parts`) in that order: it stops when
a filter leaves nobody, clamps every score to [0, 1] and weights it, and collects each part's
explanation of the chosen worker into the decision's ``reason`` (the response header). When a policy
has several scorers, the explanation of one without whose share another worker would have won ends in
``(decided)``: the header says which signal made the choice. A request nobody will see explained
(:attr:`RequestView.explain` false) gets the same choice and an empty reason.

What a policy learns from a routed request goes through a :class:`RoutedFact`
(``routed_fact.py``): :meth:`Policy.on_routed` has the parts note it and learn from it, and returns
it for the other router processes, whose policies :meth:`Policy.learn` from it the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.policies.parts import Filter, Part, Picker, Scorer
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import Worker

__all__ = ["Choice", "Policy"]


@dataclass
class Choice:
    """A policy's decision for one pool: the worker, and why (the ``x-grove-route`` header's words)."""

    worker: Worker
    reason: str


def _overridden(parts: Sequence[Any], name: str) -> list[Any]:
    """The parts' ``name`` hooks, leaving out those that are :class:`Part`'s no-op."""
    hooks = []
    for part in parts:
        hook = getattr(part, name, None)
        if hook is not None and getattr(hook, "__func__", None) is not getattr(Part, name):
            hooks.append(hook)
    return hooks


def _decisive(chosen: Worker, totals: dict[Worker, float], part: dict[Worker, float]) -> bool:
    """True when, without this scorer's share, another candidate would have scored strictly higher."""
    without = {w: t - part.get(w, 0.0) for w, t in totals.items()}
    return any(t > without[chosen] + 1e-9 for w, t in without.items() if w is not chosen)


class Policy:
    """filters → weighted scorers → picker, under one registry name."""

    def __init__(
        self,
        name: str,
        *,
        picker: Picker,
        filters: Sequence[Filter] = (),
        scorers: Sequence[tuple[Scorer, float]] = (),
    ) -> None:
        self.name = name
        self.filters = list(filters)
        self.scorers = list(scorers)
        self.picker = picker
        self._parts: list[Any] = [*self.filters, *(s for s, _ in self.scorers), self.picker]
        # looked up once, and the base class's no-ops left out: they run on every routed request
        self._notes = _overridden(self._parts, "note")
        self._learns = _overridden(self._parts, "learn")
        self._peer_picked = _overridden([self.picker], "peer_picked")

    def choose(self, workers: list[Worker], req: RequestView) -> Choice | None:
        """Run the policy over ``workers`` (already healthy and serving the model); None if nobody is left."""
        candidates = workers
        for flt in self.filters:
            candidates = flt.filter(candidates, req)
            if not candidates:
                return None
        totals = dict.fromkeys(candidates, 0.0)
        explain = req.explain
        parts: dict[int, dict[Worker, float]] = {}
        for i, (scorer, weight) in enumerate(self.scorers):
            part = parts[i] = {}
            for worker, value in scorer.score(candidates, req).items():
                if worker in totals:  # clamped to [0, 1] (NaN counts 0), then weighted
                    share = weight * (1.0 if value > 1.0 else max(0.0, value))
                    totals[worker] += share
                    if explain:
                        part[worker] = share
        worker, pick_reason = self.picker.pick(candidates, totals, req)
        if not explain:
            return Choice(worker, "")
        reasons = []
        for i, (scorer, _) in enumerate(self.scorers):
            text = scorer.explain(worker, req)
            if text and len(self.scorers) > 1 and _decisive(worker, totals, parts[i]):
                text += " (decided)"
            reasons.append(text)
        reason = ", ".join(r for r in [*reasons, pick_reason] if r)
        return Choice(worker, reason)

    def on_routed(self, worker: Worker, req: RequestView) -> RoutedFact:
        """Tell every part where the request went (each notes, then learns); returns the fact, for peers."""
        fact = RoutedFact(worker.url, time.monotonic())
        for note in self._notes:
            note(fact, worker, req)
        for learn in self._learns:
            learn(fact)
        return fact

    def learn(self, fact: RoutedFact) -> None:
        """A peer router process routed a request of this pool: learn from it as from our own, and pass a turn."""
        for learn in self._learns:
            learn(fact)
        for passed in self._peer_picked:
            passed()

    def on_membership(self, urls: Sequence[str]) -> None:
        """Tell every part the pool's current members."""
        for part in self._parts:
            hook = getattr(part, "on_membership", None)
            if hook is not None:
                hook(urls)

    def on_worker_stats(self, url: str, stats: WorkerCacheStats) -> None:
        """Tell every part what a worker reported about its own cache."""
        for part in self._parts:
            hook = getattr(part, "on_worker_stats", None)
            if hook is not None:
                hook(url, stats)

    async def start(self, urls: Sequence[str]) -> None:
        """The router is starting with these pool members: parts with background work begin it."""
        for part in self._parts:
            hook = getattr(part, "start", None)
            if hook is not None:
                await hook(urls)

    async def close(self) -> None:
        """The router is stopping: parts end their background work."""
        for part in self._parts:
            hook = getattr(part, "close", None)
            if hook is not None:
                await hook()

    def uncached_tokens(self, worker: Worker, req: RequestView) -> int | None:
        """Prompt tokens ``worker`` would compute, from the first part that knows precisely; else None."""
        for part in self._parts:
            hook = getattr(part, "uncached_tokens", None)
            if hook is not None:
                value = hook(worker, req)
                if value is not None:
                    return int(value)
        return None
