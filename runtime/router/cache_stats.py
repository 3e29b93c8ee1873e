"""What each worker says about its own KV cache, scraped from its Prometheus ``/metrics``.

The router's prefix index is an estimate of what it sent where; vLLM knows what it really kept. vLLM
exports, per engine: ``vllm:prefix_cache_queries`` and ``vllm:prefix_cache_hits`` (prompt tokens
looked up in / found in the prefix cache, counters), ``vllm:kv_cache_usage_perc`` (fraction of KV
blocks held by running requests) and ``vllm:cache_config_info`` (labels ``num_gpu_blocks`` and
``block_size``: the cache's size). :class:`CacheStatsScraper` reads these every ``interval`` seconds
from every worker and hands a :class:`WorkerCacheStats` to a sink (the router gives it to the
pool's policy, which corrects its index: see ``policies/cache/cache_feedback.py``). A worker that does
not export them (not vLLM, or metrics off) is skipped silently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import UpstreamError
from runtime.http.upstream import UpstreamPool
from runtime.router.background import Background
from runtime.router.workers import Worker, WorkerPool

__all__ = ["CacheStatsScraper", "WorkerCacheStats", "parse_vllm_metrics"]

log = logging.getLogger("grove.router.cache")

_SAMPLE = re.compile(r"^(vllm:[a-z_]+)(\{[^}]*\})?\s+(\S+)", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class WorkerCacheStats:
    """One scrape of one worker (sums over its engines). Counters are cumulative since its start."""

    prefix_queries: float
    prefix_hits: float
    kv_usage: float | None = None
    capacity_tokens: int | None = None
    waiting: float | None = None  # requests queued in the engine (vllm:num_requests_waiting)


def parse_vllm_metrics(text: str) -> WorkerCacheStats | None:
    """The cache figures of a vLLM ``/metrics`` page; None when it has no prefix-cache counters."""
    queries = hits = 0.0
    usage: list[float] = []
    capacity = 0
    waiting: float | None = None
    found = False
    for name, labels, value in _SAMPLE.findall(text):
        if name in ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_queries"):
            queries += float(value)
            found = True
        elif name in ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"):
            hits += float(value)
        elif name == "vllm:num_requests_waiting":
            waiting = (waiting or 0.0) + float(value)
        elif name == "vllm:kv_cache_usage_perc":
            usage.append(float(value))
        elif name == "vllm:cache_config_info":
            fields = dict(_LABEL.findall(labels))
            blocks, size = fields.get("num_gpu_blocks", ""), fields.get("block_size", "")
            if blocks.isdigit() and size.isdigit():
                capacity += int(blocks) * int(size)
    if not found:
        return None
    return WorkerCacheStats(
        prefix_queries=queries,
        prefix_hits=hits,
        kv_usage=max(usage) if usage else None,
        capacity_tokens=capacity or None,
        waiting=waiting,
    )


Sink = Callable[[Worker, WorkerCacheStats], None]


class CacheStatsScraper:
    """Every ``interval`` seconds, ``GET /metrics`` on each healthy worker and pass its figures to ``sink``."""

    def __init__(
        self, pools: Callable[[], list[WorkerPool]], upstream: UpstreamPool, interval: float, sink: Sink
    ) -> None:
        self._pools = pools
        self._upstream = upstream
        self._interval = interval
        self._sink = sink
        self._background = Background("router-cache-stats")

    async def scrape(self, worker: Worker) -> WorkerCacheStats | None:
        """One scrape of one worker; the figures also go to the sink."""
        try:
            status, text = await self._upstream.get_text(f"{worker.url}/metrics", timeout=5.0)
        except UpstreamError:
            return None
        stats = parse_vllm_metrics(text) if status == 200 else None
        if stats is not None:
            self._sink(worker, stats)
        return stats

    async def scrape_all(self) -> None:
        """Scrape every healthy worker of every pool once, concurrently."""
        workers = [w for pool in self._pools() for w in pool.workers if w.healthy]
        await asyncio.gather(*(self.scrape(w) for w in workers))

    def start(self) -> None:
        """Scrape in the background until :meth:`stop`."""
        if self._interval > 0:
            self._background.repeat(
                self.scrape_all, self._interval, log=log, failed="cache stats round failed"
            )

    async def stop(self) -> None:
        """Stop scraping."""
        await self._background.stop()
