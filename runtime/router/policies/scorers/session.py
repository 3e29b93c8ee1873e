"""Session affinity: the turns of one conversation go back to the worker that served the previous turn.

The session key is the ``x-session-id`` request header, else the OpenAI ``user`` field
(:attr:`RequestView.session`). A request without one scores every worker alike. The scorer only
hints: in the ``prefix`` policy it runs after the load guard, so a hot session whose worker became
far busier than the idlest is moved (and pinned to its new worker from then on); the explanation
then says ``moved``. Sessions are forgotten ``ttl`` seconds after their last request (expired
ones are swept on every routed request, oldest first), the least recently used first beyond
``capacity``, and at once when their worker leaves the pool. A key is stored as a 16-byte digest,
never whole, so the map's size in bytes is bounded by ``capacity`` whatever clients send.

With ``holds`` (the ``prefix`` policy's precise cache state: whether a worker holds any of this
prompt's blocks, or None when it cannot tell), a session whose worker has evicted all of the prompt
lapses: it pulls nowhere, the cost decides, and the session is pinned to wherever this turn goes.
Pulling a turn to a worker that must compute it all anyway would only queue it behind that
worker's load (the explanation then says ``lapsed``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from runtime.router.policies.parts import Part
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.routed_fact import RoutedFact, session_digest
from runtime.router.workers import Worker

__all__ = ["SessionAffinityScorer"]

_SHOWN = 48  # characters of a session key shown in the decision header


class SessionAffinityScorer(Part):
    """Scores 1 for the worker a session is pinned to, 0 for the others."""

    name = "session-affinity-scorer"

    def __init__(
        self,
        ttl: float = 600.0,
        capacity: int = 100_000,
        holds: Callable[[Worker, RequestView], bool | None] | None = None,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.holds = holds
        self._where: OrderedDict[bytes, tuple[str, float]] = OrderedDict()

    def worker_of(self, session: str | None, now: float | None = None) -> str | None:
        """The URL the session is pinned to, if it is known and not expired."""
        if session is None:
            return None
        key = session_digest(session)
        entry = self._where.get(key)
        if entry is None:
            return None
        url, seen = entry
        if (now if now is not None else time.monotonic()) - seen > self.ttl:
            del self._where[key]
            return None
        return url

    def _lapsed(self, url: str, workers: list[Worker], req: RequestView) -> bool:
        """Whether the session's worker is known to hold none of this prompt any more."""
        if self.holds is None:
            return False
        home = next((w for w in workers if w.url == url), None)
        return home is not None and self.holds(home, req) is False

    def score(self, workers: list[Worker], req: RequestView) -> dict[Worker, float]:
        url = self.worker_of(req.session)
        if url is not None and self._lapsed(url, workers, req):
            url = None
        return {w: 1.0 if w.url == url else 0.0 for w in workers}

    def explain(self, worker: Worker, req: RequestView) -> str:
        if req.session is None:
            return ""
        shown = req.session[:_SHOWN]
        url = self.worker_of(req.session)
        if url is None:
            return f"session {shown} new"
        if url == worker.url:
            if self._lapsed(url, [worker], req):
                return f"session {shown} lapsed (its worker holds none of the prompt)"
            return f"session-affinity {shown}"
        return f"session {shown} moved from {url}"

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        fact.note_session(req)

    def learn(self, fact: RoutedFact) -> None:
        """Pin the fact's session to its worker (a binding newer than the fact stays: another process's)."""
        key, now = fact.session, fact.at
        if key is None:
            return
        known = self._where.get(key)
        if known is not None and known[1] > now:
            return
        self._where[key] = (fact.url, now)
        self._where.move_to_end(key)
        while len(self._where) > self.capacity:
            self._where.popitem(last=False)
        while self._where:  # oldest first: stop at the first one still alive
            oldest_seen = next(iter(self._where.values()))[1]
            if now - oldest_seen <= self.ttl:
                break
            self._where.popitem(last=False)

    def __len__(self) -> int:
        return len(self._where)

    def on_membership(self, urls: Sequence[str]) -> None:
        keep = set(urls)
        for session in [s for s, (url, _) in self._where.items() if url not in keep]:
            del self._where[session]
