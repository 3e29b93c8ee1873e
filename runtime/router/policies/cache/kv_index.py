"""What each worker really holds, kept from its own KV-cache events, keyed so the router can look prompts up.

vLLM names a block by a hash the router cannot recompute cheaply (a seeded SHA-256 over CBOR), but
every ``BlockStored`` event carries the blocks' tokens and the hash of the block before them. So the
index gives each block its own *chain key*, ``hash((parent's key, tokens of the block))`` (0 before
the first block), and remembers vLLM's hash → key, so a later ``BlockRemoved`` finds it. A prompt's
keys are computed the same way from its tokens (:func:`chain_keys`), so "the worker holds the first
k blocks of this prompt" is k lookups. Blocks whose parent the index never saw (events lost, or the
router started late) cannot be placed in a chain and are skipped, and so are blocks vLLM keyed by
more than their tokens (a cache salt, an image, prompt embeddings: ``extra_keys``) and every block
after them: the index under-reports, never over-reports.

Routed requests also leave *pending* keys for ``pending_ttl`` seconds: a prompt just sent to a
worker is about to be cached there, before its events arrive, so the next call with the same
prefix (a fan-out sibling) already sees it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from runtime.router.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEventBatch

__all__ = ["KvBlockIndex", "chain_keys"]


def chain_keys(tokens: Sequence[int], block_size: int) -> list[int]:
    """The chain key of every full ``block_size``-token block of ``tokens``."""
    keys, prev = [], 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        prev = hash((prev, tuple(tokens[start : start + block_size])))
        keys.append(prev)
    return keys


class _WorkerBlocks:
    __slots__ = ("block_size", "by_hash", "keys", "pending", "unanchored")

    def __init__(self) -> None:
        self.by_hash: dict[int | bytes, int] = {}
        self.keys: dict[int, int] = {}  # chain key -> how many vLLM blocks carry it
        self.pending: OrderedDict[int, float] = OrderedDict()
        self.block_size: int | None = None
        self.unanchored = 0


class KvBlockIndex:
    """Per worker URL: the chain keys of the blocks its events say it holds, plus short-lived pending keys."""

    def __init__(self, pending_ttl: float = 5.0, max_blocks: int = 2_000_000) -> None:
        self.pending_ttl = pending_ttl
        self.max_blocks = max_blocks
        self._workers: dict[str, _WorkerBlocks] = {}

    def block_size(self, url: str) -> int | None:
        """The worker's block size, once an event has told it."""
        blocks = self._workers.get(url)
        return blocks.block_size if blocks is not None else None

    def size(self, url: str) -> int:
        """How many blocks the worker holds according to its events."""
        blocks = self._workers.get(url)
        return len(blocks.by_hash) if blocks is not None else 0

    def holds(self, url: str, key: int) -> bool:
        """Whether the worker's events say it holds the block with this chain key."""
        blocks = self._workers.get(url)
        return blocks is not None and key in blocks.keys

    def apply(self, url: str, batch: KvEventBatch) -> None:
        """Apply one batch of the worker's events, in order."""
        blocks = self._workers.setdefault(url, _WorkerBlocks())
        for event in batch.events:
            if isinstance(event, BlockStored):
                self._stored(blocks, event)
            elif isinstance(event, BlockRemoved):
                for block_hash in event.block_hashes:
                    key = blocks.by_hash.pop(block_hash, None)
                    if key is not None:
                        left = blocks.keys.get(key, 1) - 1
                        if left > 0:
                            blocks.keys[key] = left
                        else:
                            blocks.keys.pop(key, None)
            elif isinstance(event, AllBlocksCleared):
                self.clear(url)
                blocks = self._workers.setdefault(url, _WorkerBlocks())

    def _stored(self, blocks: _WorkerBlocks, event: BlockStored) -> None:
        size = event.block_size
        if size <= 0 or event.lora_name is not None or event.medium not in (None, "GPU"):
            return  # adapters and offloaded tiers are keyed differently: not what a plain prompt reuses
        if event.parent_block_hash is None:
            prev: int | None = 0
        else:
            prev = blocks.by_hash.get(event.parent_block_hash)
        if prev is None:
            blocks.unanchored += len(event.block_hashes)
            return
        if blocks.block_size is None:
            blocks.block_size = size
        elif size != blocks.block_size:
            return  # a partial block (hybrid models) is not a block a prompt of ours looks up
        tokens = event.token_ids
        extra = event.extra_keys or ()
        for i, block_hash in enumerate(event.block_hashes):
            chunk = tokens[i * size : (i + 1) * size]
            if len(chunk) != size or (i < len(extra) and extra[i] is not None):
                break  # a block keyed by more than its tokens is not what a prompt of tokens reuses
            prev = hash((prev, tuple(chunk)))
            if block_hash not in blocks.by_hash:
                blocks.keys[prev] = blocks.keys.get(prev, 0) + 1
            blocks.by_hash[block_hash] = prev
        if len(blocks.by_hash) > self.max_blocks:  # far beyond any real cache: stop trusting it
            blocks.by_hash.clear()
            blocks.keys.clear()

    def add_pending(self, url: str, keys: Sequence[int], now: float | None = None) -> None:
        """A prompt with these keys was just sent to ``url``: count them as held for ``pending_ttl``."""
        blocks = self._workers.setdefault(url, _WorkerBlocks())
        stamp = now if now is not None else time.monotonic()
        for key in keys:
            blocks.pending[key] = stamp
            blocks.pending.move_to_end(key)
        oldest = stamp - self.pending_ttl
        while blocks.pending and next(iter(blocks.pending.values())) < oldest:
            blocks.pending.popitem(last=False)

    def overlap(self, url: str, keys: Sequence[int], now: float | None = None) -> tuple[int, int]:
        """``(held, pending)``: leading blocks the worker holds by its events, and how many more are pending."""
        blocks = self._workers.get(url)
        if blocks is None:
            return 0, 0
        oldest = (now if now is not None else time.monotonic()) - self.pending_ttl
        held = pending = 0
        for key in keys:
            if key in blocks.keys:
                if pending:
                    pending += 1
                else:
                    held += 1
                continue
            seen = blocks.pending.get(key)
            if seen is None or seen < oldest:
                break
            pending += 1
        return held, pending

    def clear(self, url: str) -> None:
        """Forget what ``url`` holds (its cache was reset, or its events can no longer be trusted)."""
        self._workers.pop(url, None)

    def retain(self, urls: Sequence[str]) -> None:
        """Forget workers that left the pool."""
        keep = set(urls)
        for url in [u for u in self._workers if u not in keep]:
            del self._workers[url]
