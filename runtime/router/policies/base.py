"""The shape of a routing policy: filters narrow the candidates, scorers rate them, a picker chooses.

Each part is a small class that implements one method of :class:`Filter`, :class:`Scorer` or
:class:`Picker` (as llm-d's scheduler plugins do). A :class:`Policy` runs them in that order: it
stops when a filter leaves nobody, clamps every score to [0, 1] and weights it, and collects each
part's explanation of the chosen worker into the decision's ``reason`` (the response header). When
a policy has several scorers, the explanation of one without whose share another worker would have
won ends in ``(decided)``: the header says which signal made the choice.

Parts may keep state (a round-robin counter, a prefix index). They see the request through a
:class:`RequestView`, which computes the prompt text and its block hashes only when asked, so a
policy that never looks at the prompt costs no parsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from runtime.router.cache_stats import WorkerCacheStats
from runtime.router.workers import Worker

__all__ = ["Choice", "Filter", "Part", "Picker", "Policy", "RequestView", "Scorer"]

Endpoint = Literal["completions", "chat"]


class RequestView:
    """What policies may read of a request; derived values are computed once, on first use."""

    __slots__ = ("_blocks", "_text", "body", "endpoint", "memo", "model", "session")

    def __init__(self, endpoint: Endpoint, body: dict[str, Any], session: str | None = None) -> None:
        self.endpoint = endpoint
        self.body = body
        self.model: str = body.get("model", "")
        user = body.get("user")
        #: The session key: the ``x-session-id`` header (given by the app), else the OpenAI ``user`` field.
        self.session: str | None = session or (user if isinstance(user, str) and user else None)
        self._text: str | None = None
        self._blocks: dict[int, list[int]] = {}
        #: Values parts derive from the request once (token ids, chain keys), shared by every part.
        self.memo: dict[str, Any] = {}

    @property
    def prompt_text(self) -> str:
        """The prompt as one string (chat messages rendered role by role); token-id prompts as digits."""
        if self._text is None:
            self._text = _render_prompt(self.endpoint, self.body)
        return self._text

    def blocks(self, block_chars: int) -> list[int]:
        """Chained hashes of the prompt's full ``block_chars``-character blocks (block i covers 0..i).

        Only full blocks count, as an engine caches only full KV blocks. A hash covers the whole
        prefix, so equal hashes at position i mean equal prompts up to the end of block i.
        """
        cached = self._blocks.get(block_chars)
        if cached is None:
            text = self.prompt_text
            cached, prev = [], 0
            for start in range(0, len(text) - block_chars + 1, block_chars):
                prev = hash((prev, text[start : start + block_chars]))
                cached.append(prev)
            self._blocks[block_chars] = cached
        return cached

    def est_prompt_tokens(self, chars_per_token: float = 4.0) -> int:
        """Prompt length in tokens: exact for token-id prompts, else characters / ``chars_per_token``."""
        prompt = self.body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            return len(prompt)
        return int(len(self.prompt_text) / chars_per_token) + 1

    @property
    def max_tokens(self) -> int:
        """The requested output budget (vLLM's default 16 when absent)."""
        value = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        return value if isinstance(value, int) and value > 0 else 16


def _render_prompt(endpoint: Endpoint, body: dict[str, Any]) -> str:
    if endpoint == "chat":
        parts = []
        for msg in body.get("messages") or ():
            if not isinstance(msg, dict):
                continue
            content = msg.get("content")
            if isinstance(content, list):  # content parts: keep the text ones
                texts = (p.get("text") for p in content if isinstance(p, dict))
                content = "".join(t for t in texts if isinstance(t, str))
            parts.append(f"<|{msg.get('role', '')}|>\n{content or ''}\n")
        return "".join(parts)
    prompt = body.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        if isinstance(prompt[0], str):
            return prompt[0]  # batched prompts: route by the first
        if isinstance(prompt[0], int):
            return " ".join(map(str, prompt))
    return ""


class Part:
    """Common base of policy parts: a name and no-op hooks (override what you need)."""

    name = "part"

    def on_routed(self, worker: Worker, req: RequestView) -> None:
        """The request was sent to ``worker`` (for parts that learn, e.g. a prefix index)."""

    def on_membership(self, urls: Sequence[str]) -> None:
        """The pool now has exactly these workers (drop state of departed ones)."""

    def on_worker_stats(self, url: str, stats: WorkerCacheStats) -> None:
        """A worker's own cache counters were scraped (for parts that correct an estimate with them)."""


@runtime_checkable
class Filter(Protocol):
    """Drops candidates that must not get the request. Must not reorder."""

    name: str

    def filter(self, workers: list[Worker], req: RequestView) -> list[Worker]: ...


@runtime_checkable
class Scorer(Protocol):
    """Rates each candidate in [0, 1] (higher is better) and explains the rating of one worker."""

    name: str

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]: ...

    def explain(self, worker: Worker, req: RequestView) -> str: ...


@runtime_checkable
class Picker(Protocol):
    """Chooses one candidate from the weighted scores; returns it with a short reason (may be empty)."""

    name: str

    def pick(
        self, workers: list[Worker], scores: dict[Worker, float], req: RequestView
    ) -> tuple[Worker, str]: ...


@dataclass
class Choice:
    """A policy's decision for one pool: the worker, why, and the weighted score of every candidate."""

    worker: Worker
    reason: str
    totals: dict[Worker, float] = field(default_factory=dict)

    @property
    def scores(self) -> dict[str, float]:
        """The candidates' weighted scores by URL, rounded (made only when asked: nothing on the hot path)."""
        return {w.url: round(s, 4) for w, s in self.totals.items()}


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

    def choose(self, workers: list[Worker], req: RequestView) -> Choice | None:
        """Run the policy over ``workers`` (already healthy and serving the model); None if nobody is left."""
        candidates = workers
        for flt in self.filters:
            candidates = flt.filter(candidates, req)
            if not candidates:
                return None
        totals = dict.fromkeys(candidates, 0.0)
        parts: dict[int, dict[Worker, float]] = {}
        for i, (scorer, weight) in enumerate(self.scorers):
            part = parts[i] = {}
            for worker, value in scorer.score(candidates, req).items():
                if worker in totals:
                    part[worker] = weight * min(1.0, max(0.0, value))
                    totals[worker] += part[worker]
        worker, pick_reason = self.picker.pick(candidates, totals, req)
        reasons = []
        for i, (scorer, _) in enumerate(self.scorers):
            text = scorer.explain(worker, req)
            if text and len(self.scorers) > 1 and _decisive(worker, totals, parts[i]):
                text += " (decided)"
            reasons.append(text)
        reason = ", ".join(r for r in [*reasons, pick_reason] if r)
        return Choice(worker, reason, totals)

    def on_routed(self, worker: Worker, req: RequestView) -> None:
        """Tell every part where the request went."""
        for part in self._parts:
            hook = getattr(part, "on_routed", None)
            if hook is not None:
                hook(worker, req)

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
