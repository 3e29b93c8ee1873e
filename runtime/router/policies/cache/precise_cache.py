"""Precise prefix-cache state for a policy: workers' KV events, looked up with the prompt's own tokens.

The ``prefix`` policy estimates each worker's cache from what it routed there (``scorers/prefix.py``). When
the workers publish KV events (vLLM's ``--kv-events-config``, ZMQ) and the router has the model's
tokenizer, this part replaces the estimate for those workers: it subscribes to each one's events
(``runtime/router/kv_events.py``), keeps what each holds in a :class:`KvBlockIndex`, and answers
"how many of this prompt's tokens does worker X hold" exactly, evictions included. Workers without
an events endpoint, prompts the tokenizer cannot take, and workers whose block size is not known
yet (no event so far and no ``kv_block_size``) get None, and the caller uses its estimate.

Endpoints: ``kv_events`` maps a worker URL to its ZMQ address; ``kv_events_port`` derives
``tcp://<worker host>:<port>`` for every worker (one vLLM per pod, as Grove runs them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from runtime.router.kv_events import KvEventBatch, KvEventSubscriber
from runtime.router.policies.cache.kv_index import KvBlockIndex, chain_keys
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import Worker

__all__ = ["CacheView", "PreciseCache"]

log = logging.getLogger("grove.router.precise")


@dataclass(frozen=True)
class CacheView:
    """One worker's precise view of one prompt: its tokens, and the leading ones it holds or will hold."""

    prompt_tokens: int
    block_size: int
    blocks: int
    held: int
    pending: int

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens in blocks the worker holds or is about to hold."""
        return (self.held + self.pending) * self.block_size

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens the worker would have to compute."""
        return max(0, self.prompt_tokens - self.cached_tokens)


class PreciseCache(Part):
    """KV-event subscriptions and the block index of one pool."""

    name = "kv-events"

    def __init__(
        self,
        tokenizer: PromptTokenizer,
        *,
        endpoints: dict[str, str] | None = None,
        port: int | None = None,
        block_size: int | None = None,
        pending_ttl: float = 5.0,
    ) -> None:
        self.tokenizer = tokenizer
        self.endpoints = {url.rstrip("/"): ep for url, ep in (endpoints or {}).items()}
        self.port = port
        self.default_block_size = block_size
        self.index = KvBlockIndex(pending_ttl)
        self.subscriber = KvEventSubscriber(self)
        self._started = False

    def endpoint_of(self, url: str) -> str | None:
        """Where ``url`` publishes its events, if it does."""
        own = self.endpoints.get(url)
        if own is not None:
            return own
        if self.port is None:
            return None
        host = urlsplit(url).hostname
        if not host:
            return None
        return f"tcp://[{host}]:{self.port}" if ":" in host else f"tcp://{host}:{self.port}"

    async def start(self, urls: Sequence[str], join_timeout: float = 2.0) -> None:
        """Subscribe to the pool's workers and wait, bounded, until the subscriptions are through.

        Without the wait the first requests' events would be published before the worker's PUB
        socket knew the router (ZMQ drops those); a worker not up yet costs ``join_timeout`` once.
        """
        self._started = True
        self.on_membership(urls)
        if not await self.subscriber.joined(join_timeout):
            log.info(
                "KV events: not every worker's publisher answered in %.1f s; following them as they join",
                join_timeout,
            )

    async def close(self) -> None:
        """Drop every subscription."""
        self._started = False
        await self.subscriber.close()

    def on_membership(self, urls: Sequence[str]) -> None:
        self.index.retain(urls)
        if not self._started:
            return
        for url in set(self.subscriber.endpoints()) - set(urls):
            self.subscriber.unsubscribe(url)
        for url in urls:
            endpoint = self.endpoint_of(url)
            if endpoint is not None:
                self.subscriber.subscribe(url, endpoint)

    # KvEventSink
    def apply(self, url: str, batch: KvEventBatch) -> None:
        self.index.apply(url, batch)

    def lost(self, url: str, reason: str) -> None:
        log.warning("KV events of %s: %s; forgetting its blocks until new events", url, reason)
        self.index.clear(url)

    def keys(self, url: str, req: RequestView) -> tuple[list[int], int, int] | None:
        """The prompt's chain keys at ``url``'s block size, its token count and that block size."""
        if not self.subscriber.follows(url):
            return None
        size = self.index.block_size(url) or self.default_block_size
        if not size:
            return None
        tokens = self.tokenizer.tokens(req)
        if tokens is None:
            return None
        memo = f"chain-keys/{size}"
        keys = req.memo.get(memo)
        if keys is None:
            keys = req.memo[memo] = chain_keys(tokens, size)
        return keys, len(tokens), size

    def view(self, worker: Worker, req: RequestView) -> CacheView | None:
        """The worker's precise view of the prompt, or None when it has none (use the estimate)."""
        found = self.keys(worker.url, req)
        if found is None:
            return None
        keys, count, size = found
        # vLLM always recomputes the last prompt token, so a prompt's last full block is never all hit
        usable = keys[: max(0, (count - 1) // size)]
        held, pending = self.index.overlap(worker.url, usable)
        return CacheView(count, size, len(usable), held, pending)

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        found = self.keys(worker.url, req)
        if found is not None:
            fact.kv_keys = found[0]

    def learn(self, fact: RoutedFact) -> None:
        """The prompt's blocks are about to be cached on the worker: pending until its events say so."""
        if fact.kv_keys:
            self.index.add_pending(fact.url, fact.kv_keys, fact.at)
