"""``prefix``: send a prompt where its prefix is still in the KV cache, unless that worker is busy.

The router cannot see the engines' caches block by block, so it remembers what it sent where: each
worker gets an LRU of the prompt-block hashes routed to it (``cache/prefix_index.py``; Dynamo's ApproxKvIndexer and llm-d's
prefix-cache-scorer do the same; with several router processes each also learns what the others
sent where, ``routed_fact.py``). A worker's cost is Dynamo's ``overlap_weight x blocks still to
prefill + active blocks``, where active blocks are the work this router has in flight on it: for
each request, the prompt tokens the worker lacked when it was routed there (until its first token)
plus its output budget
(``request_work.py``; ``load_counts: prompt`` counts whole prompts instead, as before); the
cheapest wins. So a cold request goes to the worker with the least uncached work in flight, and
cache hits in flight weigh only what they compute. A session key (``x-session-id`` header or the
``user`` field) is a strong hint on top: with ``session_weight`` above 1 (the prefix score's range), a session's turns stay on its
worker (in precise mode, only while that worker still holds some of the prompt). A load guard drops workers far busier than the idlest one first, so neither affinity can
overload a worker; the decision header says ``session-affinity`` / ``cache-hit`` and marks the
signal that decided with ``(decided)``.

How the estimate ages out (eviction), per worker: an entry not used for ``ttl`` seconds is ignored;
beyond the capacity (``capacity_blocks``, or less when the worker reports a smaller KV cache in
``vllm:cache_config_info``) the least recently used entries go; and when the worker's own prefix-cache
counters show fewer hits than the index predicted, the oldest entries are dropped, or all of them
after a restart (``cache/cache_feedback.py``).

Type name: ``prefix``. Parameters (defaults): ``block_chars`` 256, ``overlap_weight`` 1.0,
``capacity_blocks`` 65536 per worker, ``ttl`` 120 s, ``chars_per_token`` 4.0, ``balance_abs`` 8,
``balance_rel`` 1.5, ``session_weight`` 2.0 (0: no session affinity), ``session_ttl`` 600 s,
``feedback`` true, ``feedback_min_ratio`` 0.5, ``load_counts`` ``uncached`` (or ``prompt``).
Config example::

    policy: {name: prefix, params: {block_chars: 128, overlap_weight: 2.0, session_weight: 0}}

Precise mode (``cache/precise_cache.py``): with ``tokenizer`` (the model the workers load) and the workers'
KV-event endpoints (``kv_events``: URL → ZMQ address, or ``kv_events_port``), a worker's cost counts
the prompt tokens its own events say it lacks, instead of the estimate; ``kv_block_size`` is the
block size assumed before a worker's first event (default: wait for it), ``kv_pending_ttl`` (5 s) how
long a just-routed prompt counts as held before its events arrive. Chats are tokenized as vLLM
renders them, tool-calling ones included (``cache/vllm_chat.py``), for workers that keep vLLM's
chat defaults (no ``--chat-template``, ``--chat-template-content-format`` or
``--default-chat-template-kwargs`` of their own). The explanation then reads
``kv-hit h/n blocks`` (``+p pending``). Example::

    policy: {name: prefix, params: {tokenizer: /models/llama, kv_events_port: 5557}}

Pipeline awareness: fan-out siblings (``fanout.py``: calls within ``fanout_window`` s sharing a
prefix) score ``fanout_weight`` (1.5, between session and prefix) on the first one's worker; and
affinity is sticky only until saturated (``filters/saturation.py``: ``saturate_in_flight`` requests of ours,
off by default, or ``saturate_waiting`` requests waiting in the engine, 5), and, with
``affinity_slack`` (blocks, off by default), only while its worker's cost stays within that many
blocks of the cheapest worker's (``filters/cost_bound.py``: saturation measured in work, not requests).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.policies.cache.cache_feedback import CacheFeedback
from runtime.router.policies.cache.precise_cache import CacheView, PreciseCache
from runtime.router.policies.cache.prefix_index import PrefixIndex
from runtime.router.policies.cache.prompt_tokens import PromptTokenizer
from runtime.router.policies.filters.cost_bound import CostBoundFilter
from runtime.router.policies.filters.load_guard import LoadGuardFilter
from runtime.router.policies.filters.saturation import SaturationFilter
from runtime.router.policies.parts import Filter, Part, Scorer
from runtime.router.policies.pickers.max_score import MaxScorePicker
from runtime.router.policies.policy import Policy
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.request_work import note_uncached
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.policies.scorers.fanout import FanoutScorer
from runtime.router.policies.scorers.session import SessionAffinityScorer
from runtime.router.workers import Worker

__all__ = ["PrefixParams", "PrefixScorer", "build"]

log = logging.getLogger("grove.router.prefix")


class PrefixParams(BaseModel):
    """Parameters of the ``prefix`` policy."""

    model_config = ConfigDict(extra="forbid")

    block_chars: int = Field(default=256, ge=16)
    overlap_weight: float = Field(default=1.0, ge=0)
    capacity_blocks: int = Field(default=65536, ge=1)
    ttl: float = Field(default=120.0, gt=0)
    chars_per_token: float = Field(default=4.0, gt=0)
    balance_abs: int = Field(default=8, ge=0)
    balance_rel: float = Field(default=1.5, ge=1.0)
    session_weight: float = Field(default=2.0, ge=0)
    session_ttl: float = Field(default=600.0, gt=0)
    feedback: bool = True
    feedback_min_ratio: float = Field(default=0.5, gt=0, le=1)
    tokenizer: str | None = Field(default=None, max_length=4096)
    kv_events: dict[str, str] = Field(default_factory=dict)
    kv_events_port: int | None = Field(default=None, ge=1, le=65535)
    kv_block_size: int | None = Field(default=None, ge=1)
    kv_pending_ttl: float = Field(default=5.0, gt=0)
    fanout_weight: float = Field(default=1.5, ge=0)
    fanout_window: float = Field(default=1.0, gt=0)
    saturate_in_flight: int | None = Field(default=None, ge=1)
    saturate_waiting: float | None = Field(default=5, ge=0)
    affinity_slack: float | None = Field(default=None, ge=0)
    load_counts: Literal["uncached", "prompt"] = "uncached"

    @model_validator(mode="after")
    def _precise_needs_both(self) -> PrefixParams:
        if (self.kv_events or self.kv_events_port) and not self.tokenizer:
            raise ValueError("kv_events needs tokenizer (the model the workers load)")
        return self


class PrefixScorer(Part):
    """Scores ``1 - normalised cost``; explains the chosen worker as ``cache-hit h/n blocks``."""

    name = "prefix-scorer"

    def __init__(self, params: PrefixParams) -> None:
        self.params = params
        self.index = PrefixIndex(params.capacity_blocks, params.ttl)
        self.feedback = CacheFeedback(params.feedback_min_ratio) if params.feedback else None
        self._block_tokens = max(1.0, params.block_chars / params.chars_per_token)
        self.precise: PreciseCache | None = None
        if params.tokenizer and (params.kv_events or params.kv_events_port):
            self.precise = PreciseCache(
                PromptTokenizer(params.tokenizer),
                endpoints=params.kv_events,
                port=params.kv_events_port,
                block_size=params.kv_block_size,
                pending_ttl=params.kv_pending_ttl,
            )

    def view(self, worker: Worker, req: RequestView) -> CacheView | None:
        """The worker's precise cache view of the prompt, when it publishes KV events."""
        return self.precise.view(worker, req) if self.precise is not None else None

    def holds(self, worker: Worker, req: RequestView) -> bool | None:
        """Whether ``worker``'s own events say it holds (or is about to hold) any of the prompt; None: unknown."""
        view = self.view(worker, req)
        if view is None or not view.blocks:
            return None
        return bool(view.held or view.pending)

    def uncached_tokens(self, worker: Worker, req: RequestView) -> int | None:
        """Prompt tokens ``worker`` lacks by its own events (None: no precise state, use an estimate)."""
        view = self.view(worker, req)
        return view.uncached_tokens if view is not None else None

    def cost(self, worker: Worker, req: RequestView, now: float) -> float:
        """Dynamo's cost: ``overlap_weight x blocks to prefill + active blocks`` on this worker.

        Active blocks are the worker's ``tokens_in_flight``: the prompt tokens it still lacked when each
        request in flight was routed there (until that request's first token), plus their output
        budgets (``request_work.py``), so a request that hit the cache weighs only what it computes.

        Blocks to prefill come from the worker's KV events when it publishes them (tokens it lacks,
        in blocks of ``block_chars / chars_per_token`` tokens), else from the routing estimate.
        """
        view = self.view(worker, req)
        if view is not None:
            to_prefill = view.uncached_tokens / self._block_tokens
        else:
            blocks = req.blocks(self.params.block_chars)
            to_prefill = len(blocks) - self.index.overlap(worker.url, blocks, now)
        return self.params.overlap_weight * to_prefill + worker.tokens_in_flight / self._block_tokens

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]:
        now = time.monotonic()
        costs = {w: self.cost(w, req, now) for w in workers}
        low, high = min(costs.values()), max(costs.values())
        if high - low < 1e-9:
            return dict.fromkeys(workers, 1.0)
        return {w: 1.0 - (c - low) / (high - low) for w, c in costs.items()}

    def explain(self, worker: Worker, req: RequestView) -> str:
        view = self.view(worker, req)
        if view is not None:
            more = f" +{view.pending} pending" if view.pending else ""
            kind = "kv-hit" if view.held or view.pending else "kv-miss"
            return f"{kind} {view.held}/{view.blocks} blocks{more}"
        blocks = req.blocks(self.params.block_chars)
        if not blocks:
            return "prompt shorter than one block"
        hit = self.index.overlap(worker.url, blocks)
        return f"cache-hit {hit}/{len(blocks)} blocks" if hit else f"cache-miss 0/{len(blocks)} blocks"

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        """Note the prompt's blocks (and KV keys) and what the index held of it; note the work it brings."""
        blocks = fact.note_blocks(req, self.params.block_chars)
        fact.prompt_chars = len(req.prompt_text)
        fact.cached_chars = self.index.overlap(worker.url, blocks, fact.at) * self.params.block_chars
        if self.params.load_counts == "uncached":  # request-local: the work its own leg counts
            view = self.view(worker, req)
            cpt = self.params.chars_per_token
            lacking = (
                view.uncached_tokens
                if view is not None
                else req.est_prompt_tokens(cpt) - int(fact.cached_chars / cpt)
            )
            note_uncached(req, worker, lacking)
        if self.precise is not None:
            self.precise.note(fact, worker, req)

    def learn(self, fact: RoutedFact) -> None:
        """The worker now holds the prompt's blocks; the hit share the index predicted joins the feedback."""
        if self.feedback is not None:
            self.feedback.expect(fact.url, fact.prompt_chars, fact.cached_chars)
        self.index.insert(fact.url, fact.blocks.get(self.params.block_chars, ()), fact.at)
        if self.precise is not None:
            self.precise.learn(fact)

    async def start(self, urls: Sequence[str]) -> None:
        """Subscribe to the workers' KV events (precise mode)."""
        if self.precise is not None:
            await self.precise.start(urls)

    async def close(self) -> None:
        """Drop the KV-event subscriptions."""
        if self.precise is not None:
            await self.precise.close()

    def on_membership(self, urls: Sequence[str]) -> None:
        self.index.retain(urls)
        if self.precise is not None:
            self.precise.on_membership(urls)
        if self.feedback is not None:
            self.feedback.retain(urls)

    def on_worker_stats(self, url: str, stats: WorkerCacheStats) -> None:
        """Cap the index at the worker's cache size; apply the hit-counter correction."""
        if stats.capacity_tokens:
            self.index.set_capacity(url, int(stats.capacity_tokens / self._block_tokens))
        if self.feedback is None:
            return
        fix = self.feedback.observe(url, stats)
        if fix.clear:
            self.index.drop_oldest(url, 1.0)
        elif fix.drop > 0:
            self.index.drop_oldest(url, fix.drop)
        if fix.clear or fix.drop > 0:
            log.info("prefix index of %s corrected: %s", url, fix.reason)


def build(params: PrefixParams) -> Policy:
    """The ``prefix`` policy: load guard, saturation and cost bound, then session, fan-out and prefix affinity."""
    prefix = PrefixScorer(params)
    scorers: list[tuple[Scorer, float]] = [(prefix, 1.0)]
    if params.fanout_weight > 0:
        scorers.append((FanoutScorer(params.block_chars, params.fanout_window), params.fanout_weight))
    if params.session_weight > 0:
        holds = prefix.holds if prefix.precise is not None else None  # a session lapses with its cache
        scorers.insert(0, (SessionAffinityScorer(params.session_ttl, holds=holds), params.session_weight))
    filters: list[Filter] = [
        LoadGuardFilter(params.balance_abs, params.balance_rel),
        SaturationFilter(params.saturate_in_flight, params.saturate_waiting),
    ]
    if params.affinity_slack is not None:
        filters.append(CostBoundFilter(prefix.cost, params.affinity_slack))
    return Policy(
        "prefix",
        filters=filters,
        scorers=scorers,
        picker=MaxScorePicker(),
    )
