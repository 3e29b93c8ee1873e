"""The router's estimate of each worker's prefix cache: the prompt blocks it routed there, least recently used first out.

The router cannot see the engines' caches block by block, so it remembers what it sent where (Dynamo's
ApproxKvIndexer and llm-d's prefix-cache-scorer do the same). Entries unused for ``ttl`` seconds are
ignored and the least recently used go beyond a worker's capacity; the prefix scorer and the
prefill/decode decider read it, and ``cache_feedback`` corrects it with the workers' own counters.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PrefixIndex"]


class PrefixIndex:
    """Per worker URL, an LRU of block hashes with the time each was last routed there."""

    def __init__(self, capacity: int = 65536, ttl: float = 120.0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._lru: dict[str, OrderedDict[int, float]] = {}
        self._capacity: dict[str, int] = {}

    def capacity_of(self, url: str) -> int:
        """Entries kept for ``url``: the default, or the worker's own cache size if smaller."""
        return self._capacity.get(url, self.capacity)

    def set_capacity(self, url: str, blocks: int) -> None:
        """Cap ``url``'s entries at ``blocks`` (never above the default); evict the oldest beyond it."""
        self._capacity[url] = max(1, min(self.capacity, blocks))
        lru = self._lru.get(url)
        while lru and len(lru) > self._capacity[url]:
            lru.popitem(last=False)

    def size(self, url: str) -> int:
        """How many entries ``url`` has."""
        return len(self._lru.get(url) or ())

    def drop_oldest(self, url: str, share: float) -> int:
        """Forget the least recently used ``share`` (0..1) of ``url``'s entries; returns how many went."""
        lru = self._lru.get(url)
        if not lru:
            return 0
        count = min(len(lru), round(len(lru) * max(0.0, min(1.0, share))))
        for _ in range(count):
            lru.popitem(last=False)
        return count

    def overlap(self, url: str, blocks: Sequence[int], now: float | None = None) -> int:
        """How many leading ``blocks`` the worker probably still holds."""
        lru = self._lru.get(url)
        if not lru:
            return 0
        oldest = (now if now is not None else time.monotonic()) - self.ttl
        count = 0
        for block in blocks:
            seen = lru.get(block)
            if seen is None or seen < oldest:
                break
            count += 1
        return count

    def insert(self, url: str, blocks: Sequence[int], now: float | None = None) -> None:
        """Record that the worker now holds ``blocks`` (most recent use); evict the oldest beyond capacity."""
        if not blocks:
            return
        lru = self._lru.setdefault(url, OrderedDict())
        stamp = now if now is not None else time.monotonic()
        for block in blocks:
            lru[block] = stamp
            lru.move_to_end(block)
        limit = self.capacity_of(url)
        while len(lru) > limit:
            lru.popitem(last=False)

    def retain(self, urls: Sequence[str]) -> None:
        """Forget workers that left the pool."""
        keep = set(urls)
        for url in [u for u in self._lru if u not in keep]:
            del self._lru[url]
        for url in [u for u in self._capacity if u not in keep]:
            del self._capacity[url]
