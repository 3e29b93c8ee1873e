"""Active health checks: every few seconds, ``GET /health`` on each worker and, now and then, ``/v1/models``.

Passive ejection (a worker that fails requests is skipped for a growing back-off) lives on the
worker itself (:meth:`Worker.record_failure`); a worker is re-admitted when its back-off ends, and a
successful request resets the back-off. Active checks decide ``healthy``; they also learn which
models each worker serves, which the router needs for ``/v1/models`` and for 404 on unknown models.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from runtime.errors import UpstreamError
from runtime.http.upstream import UpstreamPool
from runtime.router.background import Background
from runtime.router.config import HealthConfig
from runtime.router.metrics import RouterMetrics
from runtime.router.workers import Worker, WorkerPool

__all__ = ["HealthChecker"]

log = logging.getLogger("grove.router.health")


class HealthChecker:
    """Runs the periodic checks of every pool in one background task."""

    def __init__(
        self,
        pools: Callable[[], list[WorkerPool]],
        upstream: UpstreamPool,
        config: HealthConfig,
        metrics: RouterMetrics,
    ) -> None:
        self._pools = pools
        self._upstream = upstream
        self._config = config
        self._metrics = metrics
        self._background = Background("router-health")
        self._round = 0

    async def check_all(self, *, refresh_models: bool = False) -> None:
        """Check every worker of every pool once, concurrently."""
        workers = [w for pool in self._pools() for w in pool.workers]
        await asyncio.gather(*(self.check(w, refresh_models=refresh_models) for w in workers))

    async def check(self, worker: Worker, *, refresh_models: bool = False) -> bool:
        """One check of one worker; updates ``healthy`` (and ``models`` when due). Returns this check's verdict."""
        timeout = self._config.timeout
        try:
            status, _ = await self._upstream.get_json(f"{worker.url}/health", timeout=timeout)
            ok = status == 200
        except UpstreamError:
            ok = False
        worker.failed_checks = 0 if ok else worker.failed_checks + 1
        healthy = ok or (worker.healthy and worker.failed_checks < self._config.unhealthy_after)
        if healthy != worker.healthy:
            log.warning("worker %s is now %s", worker.url, "healthy" if healthy else "unhealthy")
        if not healthy:
            worker.mark_lost()
        worker.healthy = healthy
        self._metrics.of(self._metrics.healthy, worker.role, worker.url).set(1 if healthy else 0)
        if ok and (worker.models is None or refresh_models):
            await self._fetch_models(worker)
        return ok

    async def _fetch_models(self, worker: Worker) -> None:
        try:
            status, body = await self._upstream.get_json(
                f"{worker.url}/v1/models", timeout=self._config.timeout
            )
        except UpstreamError:
            return
        if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
            cards = [m for m in body["data"] if isinstance(m, dict) and isinstance(m.get("id"), str)]
            worker.set_models(cards)

    def start(self) -> None:
        """Start the periodic checks in the background."""
        self._background.repeat(
            self._next_round,
            self._config.interval,
            log=log,
            failed="health check round failed",
            wait_first=True,
        )

    async def stop(self) -> None:
        """Stop the periodic checks."""
        await self._background.stop()

    async def _next_round(self) -> None:
        """One periodic round; every ``models_every``-th also asks the workers what they serve."""
        self._round += 1
        await self.check_all(refresh_models=self._round % self._config.models_every == 0)
