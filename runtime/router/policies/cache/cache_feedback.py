"""Correct the router's prefix index with what a worker reports about its own prefix cache.

Between two scrapes of a worker's ``/metrics`` (see ``runtime/router/cache_stats.py``) the router
knows, for the prompts it sent there, the share of characters its index predicted to be cached;
the worker's counters give the share of prompt tokens it really found cached. Both are ratios, so
the characters-per-token guess cancels out. :class:`CacheFeedback` turns the two into a
:class:`Correction` of the index:

* counters lower than at the previous scrape: the worker restarted and its cache is empty, so its
  entries are cleared;
* observed hit share below ``min_ratio`` x the predicted one (with at least ``min_chars`` of prompt
  routed in the interval): the worker evicted what the index still lists, so the oldest share
  ``1 - observed / predicted`` of its entries is dropped (vLLM evicts least recently used blocks
  first, as the index does);
* otherwise nothing changes.

The worker's cache size (``num_gpu_blocks x block_size`` tokens) also caps the index's capacity
for that worker, so the index's own LRU ages entries out when the real cache would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runtime.router.cache_stats import WorkerCacheStats

__all__ = ["CacheFeedback", "Correction"]


@dataclass(frozen=True)
class Correction:
    """What to do with one worker's index entries: ``clear`` them all or drop the oldest ``drop`` share."""

    clear: bool = False
    drop: float = 0.0
    reason: str = ""


class CacheFeedback:
    """Predicted vs observed prefix-cache hit shares per worker, interval by interval."""

    def __init__(self, min_ratio: float = 0.5, min_chars: int = 4096) -> None:
        self.min_ratio = min_ratio
        self.min_chars = min_chars
        self._last: dict[str, WorkerCacheStats] = {}
        self._routed: dict[str, list[float]] = {}  # url -> [prompt chars, predicted cached chars]

    def expect(self, url: str, prompt_chars: int, cached_chars: int) -> None:
        """A prompt of ``prompt_chars`` went to ``url``; the index said ``cached_chars`` of it were cached."""
        acc = self._routed.setdefault(url, [0.0, 0.0])
        acc[0] += prompt_chars
        acc[1] += cached_chars

    def observe(self, url: str, stats: WorkerCacheStats) -> Correction:
        """A new scrape of ``url``: the correction its index needs (compared with the previous scrape)."""
        prev, self._last[url] = self._last.get(url), stats
        prompt_chars, cached_chars = self._routed.pop(url, [0.0, 0.0])
        if prev is None:
            return Correction(reason="first scrape")
        if stats.prefix_queries < prev.prefix_queries or stats.prefix_hits < prev.prefix_hits:
            return Correction(clear=True, reason="counters went back: the worker restarted")
        queries = stats.prefix_queries - prev.prefix_queries
        if queries <= 0 or prompt_chars < self.min_chars or cached_chars <= 0:
            return Correction(reason="too little traffic to judge")
        observed = (stats.prefix_hits - prev.prefix_hits) / queries
        predicted = cached_chars / prompt_chars
        if observed >= self.min_ratio * predicted:
            return Correction(reason=f"hit share {observed:.2f} vs predicted {predicted:.2f}")
        return Correction(
            drop=1.0 - observed / predicted,
            reason=f"hit share {observed:.2f} < {self.min_ratio} x predicted {predicted:.2f}",
        )

    def retain(self, urls: Sequence[str]) -> None:
        """Drop the state of workers that left the pool."""
        keep = set(urls)
        for table in (self._last, self._routed):
            for url in [u for u in table if u not in keep]:
                del table[url]
