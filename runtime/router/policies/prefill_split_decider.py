"""Conditional disaggregation: decide, after the decode worker is chosen, whether prefill runs remotely.

Remote prefill pays a second hop and a KV transfer; it only pays off when the decode worker would
have much to compute. So, like llm-d's ``prefix-based-pd-decider`` and Dynamo's conditional
disaggregation, the request is prefilled on the decode worker itself when the part of its prompt
that worker probably has *not* cached is short, or when every prefill worker is saturated. In
``always`` mode the only local prefill is the failure fallback.

The decision reads the workers' real state where the router has it: the decode worker's uncached
prompt tokens from its own KV events (``precise``: the decode policy's precise cache, see
``cache/precise_cache.py``; else the decider's estimate of what it routed there), and each prefill worker's
queue as this router's requests in flight plus the requests its engine reports waiting
(``vllm:num_requests_waiting``, scraped with the cache counters). Every decision carries a ``kind``
(``always``, ``no-prefill-worker``, ``prefill-saturated``, ``short-uncached``, ``long-uncached``) that
the router counts in ``grove_router_decisions{mode, reason}``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.config import DisaggregationConfig
from runtime.router.policies.cache.prefix_index import PrefixIndex
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import Worker

__all__ = ["DisaggDecider", "DisaggDecision"]


@dataclass(frozen=True)
class DisaggDecision:
    """``remote``: run the prefill leg on a prefill worker; ``reason``: why; ``kind``: a metrics label."""

    remote: bool
    reason: str
    kind: str


class DisaggDecider:
    """Decides remote vs local prefill from an estimate of the decode worker's cache and the prefill load."""

    def __init__(
        self,
        config: DisaggregationConfig,
        precise: Callable[[Worker, RequestView], int | None] | None = None,
    ) -> None:
        self.config = config
        self.index = PrefixIndex()
        self.precise = precise
        self._waiting: dict[str, float] = {}

    def on_worker_stats(self, worker: Worker, stats: WorkerCacheStats) -> None:
        """A prefill worker's engine reported its queue."""
        if worker.role == "prefill" and stats.waiting is not None:
            self._waiting[worker.url] = stats.waiting

    def retain(self, urls: Sequence[str]) -> None:
        """Forget workers that left."""
        for url in [u for u in self._waiting if u not in set(urls)]:
            del self._waiting[url]

    def prefill_queue(self, worker: Worker) -> int:
        """Requests ahead of a new prefill on ``worker``: ours in flight plus what its engine has waiting."""
        return worker.in_flight + int(self._waiting.get(worker.url, 0))

    def uncached_tokens(self, decode: Worker, req: RequestView) -> int:
        """Prompt tokens the decode worker would compute itself: by its KV events, else estimated."""
        return self._uncached(decode, req)[0]

    def _uncached(self, decode: Worker, req: RequestView) -> tuple[int, str]:
        if self.precise is not None:
            known = self.precise(decode, req)
            if known is not None:
                return known, " (by its KV events)"
        text_len = len(req.prompt_text)
        blocks = req.blocks(self.config.block_chars)
        cached_chars = self.index.overlap(decode.url, blocks) * self.config.block_chars
        return math.ceil(max(0, text_len - cached_chars) / self.config.chars_per_token), ""

    def decide(self, decode: Worker, req: RequestView, prefill_available: list[Worker]) -> DisaggDecision:
        """Remote or local prefill for ``req`` on ``decode``, given the prefill workers that could take it."""
        if not prefill_available:
            return DisaggDecision(False, "local-prefill: no healthy prefill worker", "no-prefill-worker")
        if self.config.mode == "always":
            return DisaggDecision(True, "", "always")
        limit = self.config.max_prefill_in_flight
        if limit is not None and all(self.prefill_queue(w) >= limit for w in prefill_available):
            return DisaggDecision(
                False,
                f"local-prefill: prefill pool saturated (>= {limit} queued each)",
                "prefill-saturated",
            )
        uncached, source = self._uncached(decode, req)
        threshold = self.config.min_uncached_tokens
        if uncached < threshold:
            return DisaggDecision(
                False, f"local-prefill: {uncached} uncached tokens < {threshold}{source}", "short-uncached"
            )
        return DisaggDecision(
            True, f"remote-prefill: {uncached} uncached tokens >= {threshold}{source}", "long-uncached"
        )

    def note(self, fact: RoutedFact, req: RequestView) -> None:
        """Note the prompt's blocks into the decode worker's fact (conditional mode reads them)."""
        if self.config.mode == "conditional":
            fact.note_blocks(req, self.config.block_chars)

    def learn(self, fact: RoutedFact) -> None:
        """The decode worker ends up holding the prompt's KV either way (computed or transferred)."""
        if self.config.mode == "conditional":
            self.index.insert(fact.url, fact.blocks.get(self.config.block_chars, ()), fact.at)

    def on_routed(self, decode: Worker, req: RequestView) -> RoutedFact:
        """:meth:`note` and :meth:`learn` a request routed to ``decode``."""
        fact = RoutedFact(decode.url, time.monotonic())
        self.note(fact, req)
        self.learn(fact)
        return fact
