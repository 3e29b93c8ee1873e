"""Fan-out siblings: calls started together over one shared context go to the worker the first one took.

A pipeline that fans out (``asyncio.gather`` over one context: several questions about one document,
several tool calls after one plan) sends calls that share a long prefix within milliseconds. No cache
feedback exists yet, neither events nor hit counters, and a cost that counts the first call's tokens
as load would spread the rest; yet the second call onwards would find most of its prompt cached on
the first one's worker a moment later. So for ``window`` seconds after a call is routed, each of its
prompt blocks remembers the worker; a new call whose leading blocks (at least ``min_blocks``) match a
recent call scores 1 on that worker. Only calls without a session count: calls that name one (every
call of a pipeline run does) are kept together by session affinity already, and calls of different
sessions that merely share a system prompt are not siblings (spreading them is right). The policy's
filters (load guard, saturation) still run first: a worker that load rules out is not
chosen, sibling or not.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import Worker

__all__ = ["FanoutScorer"]


class FanoutScorer(Part):
    """Scores 1 for the worker of the most recent call sharing this call's longest leading prefix."""

    name = "fanout-scorer"

    def __init__(
        self, block_chars: int, window: float = 1.0, min_blocks: int = 1, capacity: int = 65536
    ) -> None:
        self.block_chars = block_chars
        self.window = window
        self.min_blocks = min_blocks
        self.capacity = capacity
        self._recent: OrderedDict[int, tuple[str, float]] = OrderedDict()

    def match(self, req: RequestView, now: float | None = None) -> tuple[str, int] | None:
        """``(worker URL, shared blocks)`` of the recent call sharing the longest prefix, if any."""
        if req.session is not None:
            return None
        blocks = req.blocks(self.block_chars)
        oldest = (now if now is not None else time.monotonic()) - self.window
        for i in range(len(blocks) - 1, self.min_blocks - 2, -1):
            entry = self._recent.get(blocks[i])
            if entry is not None and entry[1] >= oldest:
                return entry[0], i + 1
        return None

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]:
        found = self.match(req)
        url = found[0] if found else None
        return {w: 1.0 if w.url == url else 0.0 for w in workers}

    def explain(self, worker: Worker, req: RequestView) -> str:
        found = self.match(req)
        if found is None:
            return ""
        url, shared = found
        if url == worker.url:
            return f"fan-out sibling ({shared} shared blocks)"
        return f"fan-out sibling moved from {url}"

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        fact.note_session(req)
        if req.session is None:
            fact.note_blocks(req, self.block_chars)

    def learn(self, fact: RoutedFact) -> None:
        """Each of the call's blocks remembers its worker for ``window`` seconds (calls without a session)."""
        if fact.session is not None:
            return
        stamp = fact.at
        for block in fact.blocks.get(self.block_chars, ()):
            self._recent[block] = (fact.url, stamp)
            self._recent.move_to_end(block)
        oldest = stamp - self.window
        while self._recent and (
            len(self._recent) > self.capacity or next(iter(self._recent.values()))[1] < oldest
        ):
            self._recent.popitem(last=False)

    def on_membership(self, urls: Sequence[str]) -> None:
        keep = set(urls)
        for block in [b for b, (url, _) in self._recent.items() if url not in keep]:
            del self._recent[block]
