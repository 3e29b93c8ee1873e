"""Workers and pools: the live state the policies read (health, ejection, load, served models).

A pool's membership changes while the router runs (discovery); :meth:`WorkerPool.set_urls` keeps the
state of workers that stay, so a re-resolve does not reset their load or ejection.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

__all__ = ["PoolRole", "Worker", "WorkerPool"]

PoolRole = Literal["prefill", "decode", "worker"]


@dataclass(eq=False)
class Worker:
    """One vLLM server as the router sees it. Identity is the object; ``url`` is unique within a pool."""

    url: str
    role: PoolRole
    healthy: bool = True
    in_flight: int = 0
    tokens_in_flight: int = 0  # work in flight: prompt tokens to compute (until the first token) + output
    consecutive_failures: int = 0
    failed_checks: int = 0  # consecutive failed active health checks
    ejections: int = 0
    ejected_until: float = 0.0
    models: frozenset[str] | None = None
    model_cards: list[dict[str, Any]] = field(default_factory=list)
    served: int = 0
    _lost: asyncio.Future[None] | None = field(default=None, repr=False)
    #: Bumped whenever any worker's model list changes, so the router's view of it can be cached.
    catalog_version: ClassVar[int] = 0

    def set_models(self, cards: list[dict[str, Any]]) -> None:
        """The worker's ``/v1/models`` entries (each with a string ``id``)."""
        self.model_cards = cards
        self.models = frozenset(m["id"] for m in cards)
        Worker.catalog_version += 1

    def lost(self) -> asyncio.Future[None]:
        """Resolves when the worker is next seen gone (:meth:`mark_lost`): KV it holds is gone with it."""
        if self._lost is None or self._lost.done():
            self._lost = asyncio.get_running_loop().create_future()
        return self._lost

    def mark_lost(self) -> None:
        """The worker's process looks gone (a connection refused or cut, a failed health check)."""
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._lost = None

    def available(self, now: float | None = None) -> bool:
        """Healthy and not ejected right now."""
        return self.healthy and (now if now is not None else time.monotonic()) >= self.ejected_until

    def serves(self, model: str) -> bool:
        """True when the worker lists ``model``, or when its model list is not known yet."""
        return self.models is None or model in self.models

    def record_success(self) -> None:
        """A request leg succeeded: the failure streak and the back-off reset."""
        self.consecutive_failures = 0
        self.ejections = 0

    def record_failure(self, *, eject_after: int, base: float, cap: float) -> bool:
        """A leg failed; eject the worker once the streak reaches ``eject_after``. Returns True on ejection.

        The n-th ejection in a row lasts ``base * 2**(n-1)`` seconds (at most ``cap``), ±20 % jitter so
        that several routers do not re-admit a worker in the same instant.
        """
        self.consecutive_failures += 1
        if self.consecutive_failures < eject_after:
            return False
        self.ejections += 1
        self.consecutive_failures = 0
        span = min(cap, base * 2 ** (self.ejections - 1)) * random.uniform(0.8, 1.2)
        self.ejected_until = time.monotonic() + span
        return True

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly snapshot for ``/health`` and logs."""
        now = time.monotonic()
        return {
            "url": self.url,
            "role": self.role,
            "healthy": self.healthy,
            "ejected_for_s": round(max(0.0, self.ejected_until - now), 3),
            "in_flight": self.in_flight,
            "models": sorted(self.models) if self.models is not None else None,
        }


class WorkerPool:
    """The workers of one role. Iteration order is stable (by URL) so round robin is fair."""

    def __init__(self, role: PoolRole, urls: Iterable[str] = ()) -> None:
        self.role = role
        self._workers: dict[str, Worker] = {}
        self.version = 0
        self.set_urls(urls)

    def set_urls(self, urls: Iterable[str]) -> bool:
        """Make the membership exactly ``urls``; keep existing workers' state. Returns True if it changed."""
        wanted = sorted({u.rstrip("/") for u in urls})
        if wanted == sorted(self._workers):
            return False
        self._workers = {u: self._workers.get(u) or Worker(u, self.role) for u in wanted}
        self.version += 1
        return True

    @property
    def workers(self) -> list[Worker]:
        """All members, sorted by URL."""
        return list(self._workers.values())

    def get(self, url: str) -> Worker | None:
        """The member with this URL, if any."""
        return self._workers.get(url.rstrip("/"))

    def available(self, model: str | None = None, *, panic: bool = False) -> list[Worker]:
        """Members that are healthy, not ejected and (if ``model`` is given) may serve it.

        With ``panic``, when every healthy member is ejected they are all returned anyway (Envoy's
        panic routing): for a pool with no fallback, a worker that failed once beats no worker.
        """
        now = time.monotonic()
        healthy = [w for w in self._workers.values() if w.healthy and (model is None or w.serves(model))]
        live = [w for w in healthy if now >= w.ejected_until]
        return live or healthy if panic else live

    def __len__(self) -> int:
        return len(self._workers)

    def __bool__(self) -> bool:
        return True  # an empty pool is still a configured pool
