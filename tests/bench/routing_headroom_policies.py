"""The routers the headroom model (``routing_headroom.py``) compares, from blind to clairvoyant.

* :class:`RoundRobin`: each worker in turn (ours and vllm-router's are the same rule).
* :class:`ConsistentHash`: vllm-router's ``consistent_hash`` keyed by the ``x-session-id`` header,
  ported from its source (``vllm-project/router`` ``src/policies/consistent_hash.rs`` and
  ``hash_key.rs``): key ``header:x-session-id:<id>``, Facebook's FurcHash expanded by
  MurmurHash64A, 160 virtual nodes per worker URL on a ring, the first node at or after the key's
  hash. Which sessions share a worker depends on the workers' URLs (their ports), which the bench's
  logs do not keep, so the bench draws several port pairs.
* :class:`RealPrefix`: this project's ``prefix`` policy itself (``runtime/router/policies``), driven
  with the router's own :class:`~runtime.router.workers.Worker` objects and
  :class:`~runtime.router.policies.request_view.RequestView` requests; its precise cache view is the
  model's caches (what the workers' KV events would say, with no delay), its load what the router's
  legs would count, and its clock the model's.
* :class:`Forced`: the placement a real run logged (for calibration and validation).
* :class:`Greedy`: clairvoyant per request: the worker on which this request's own first token comes
  soonest, knowing both caches and queues exactly (not knowing later arrivals).
* :class:`Rollout`: clairvoyant with look-ahead: for each request, every worker is tried and the
  rest of the trace played out with base routers; the choice with the best whole-trace objective
  wins. Fortified (the best complete placement found so far is kept and followed unless a better
  one turns up), so it is never worse, on its objective, than any of its base routers.
"""

from __future__ import annotations

import math
import statistics
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from unittest import mock

from runtime.router.policies.cache.precise_cache import CacheView
from runtime.router.policies.registry import make_policy
from runtime.router.policies.request_view import RequestView
from runtime.router.policies.request_work import prompt_work, work_tokens
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.policies.scorers.prefix import PrefixScorer
from runtime.router.policies.scorers.session import SessionAffinityScorer
from runtime.router.workers import Worker
from tests.bench.routing_headroom import Job, Router, SimRequest, Simulation

__all__ = [
    "ConsistentHash",
    "Forced",
    "Greedy",
    "RealPrefix",
    "Rollout",
    "RoundRobin",
    "fbi_hash",
    "mean_objective",
    "p50_objective",
]

_MASK = (1 << 64) - 1
_M = 0xC6A4A7935BD1E995
_SEED = 4193360111


def _murmur64a(key: bytes, seed: int) -> int:
    """MurmurHash64A (mcrouter's ``hash.c``), as vllm-router's ``murmur_hash_64a``."""
    h = (seed ^ (len(key) * _M)) & _MASK
    whole = len(key) - len(key) % 8
    for start in range(0, whole, 8):
        k = int.from_bytes(key[start : start + 8], "little")
        k = (k * _M) & _MASK
        k ^= k >> 47
        k = (k * _M) & _MASK
        h ^= k
        h = (h * _M) & _MASK
    if len(key) % 8:
        h ^= int.from_bytes(key[whole:], "little")
        h = (h * _M) & _MASK
    h ^= h >> 47
    h = (h * _M) & _MASK
    h ^= h >> 47
    return h


def _rehash64a(k: int) -> int:
    """``murmur_rehash_64a``: MurmurHash64A of one 64-bit word."""
    h = (_SEED ^ (8 * _M)) & _MASK
    k = (k * _M) & _MASK
    k ^= k >> 47
    k = (k * _M) & _MASK
    h ^= k
    h = (h * _M) & _MASK
    h ^= h >> 47
    h = (h * _M) & _MASK
    h ^= h >> 47
    return h


def _furc(key: bytes, m: int) -> int:
    """FurcHash (``furc_hash``): a consistent bucket in ``[0, m)``."""
    if m <= 1:
        return 0
    cache: list[int] = []

    def bit(idx: int) -> int:
        word = idx >> 6
        while len(cache) <= word:
            cache.append(_murmur64a(key, _SEED) if not cache else _rehash64a(cache[-1]))
        return (cache[word] >> (idx & 63)) & 1

    d = 0
    while m > (1 << d):
        d += 1
    a = d
    for _ in range(32):
        while not bit(a):
            if d == 0:
                return 0
            d -= 1
            a = d
        a += 23
        num = 1
        for _ in range(max(0, d - 1)):
            num = (num << 1) | bit(a)
            a += 23
        if num < m:
            return num
    return 0


def fbi_hash(key: str) -> int:
    """vllm-router's ``fbi_hash``: FurcHash into 2^23 - 1 buckets, expanded to 64 bits by MurmurHash64A."""
    bucket = _furc(key.encode(), (1 << 23) - 1)
    return _murmur64a(bucket.to_bytes(4, "little"), _SEED)


class ConsistentHash:
    """vllm-router's ``consistent_hash`` on the session header, over workers named by ``urls``."""

    name = "consistent_hash"

    def __init__(self, urls: Sequence[str], virtual_nodes: int = 160) -> None:
        ring: dict[int, int] = {}
        for index, url in enumerate(urls):
            for i in range(virtual_nodes):
                ring[fbi_hash(f"{url}:{i}")] = index
        self._points = sorted(ring)
        self._owner = [ring[p] for p in self._points]
        self._memo: dict[str, int] = {}

    def worker_of(self, session: str) -> int:
        found = self._memo.get(session)
        if found is None:
            at = bisect_left(self._points, fbi_hash(f"header:x-session-id:{session}"))
            found = self._memo[session] = self._owner[at % len(self._points)]
        return found

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        return self.worker_of(req.session)

    def clone(self) -> Router:
        return self  # stateless (its memo only caches the ring)


class RoundRobin:
    """Each worker in turn."""

    name = "round_robin"

    def __init__(self, start: int = 0) -> None:
        self.next = start

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        chosen = self.next % len(sim.workers)
        self.next += 1
        return chosen

    def clone(self) -> Router:
        return RoundRobin(self.next)


class Forced:
    """The placement a real run logged (request key → worker index); unlogged requests go to worker 0."""

    name = "logged placement"

    def __init__(self, placement: dict[str, int]) -> None:
        self.placement = placement

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        return self.placement.get(req.key, 0)

    def clone(self) -> Router:
        return self


class Greedy:
    """Per request, the worker where its own first token comes soonest (ties: the lower index)."""

    name = "oracle greedy"

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        times = [w.ttft_if_added(req, now) for w in sim.workers]
        return min(range(len(times)), key=lambda i: (times[i], i))

    def clone(self) -> Router:
        return self


Objective = Callable[[list[float]], float]


def mean_objective(ttfts: list[float]) -> float:
    """The mean TTFT."""
    return statistics.fmean(ttfts)


def p50_objective(ttfts: list[float]) -> float:
    """The median TTFT (mean as the tie-breaker, so ties among equal medians still improve)."""
    return statistics.median(ttfts) + 1e-3 * statistics.fmean(ttfts)


class Rollout:
    """Fortified rollout over ``bases``: per request, every worker tried, the rest played by each base."""

    def __init__(self, bases: Sequence[Router], objective: Objective, name: str) -> None:
        self.bases = list(bases)
        self.objective = objective
        self.name = name
        self.best: dict[str, int] | None = None
        self.best_cost = math.inf

    def _play(self, sim: Simulation, req: SimRequest, now: float, worker: int, base: Router) -> float:
        probe = sim.clone()
        probe.place(req, worker, now)
        chosen = base.clone()
        jobs = probe.run(chosen)
        self._last = {k: j.worker for k, j in jobs.items()}
        return self.objective([probe.ttft_s(j) for j in jobs.values()])

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        for worker in range(len(sim.workers)):
            for base in self.bases:
                cost = self._play(sim, req, now, worker, base)
                if cost < self.best_cost - 1e-12:
                    self.best_cost, self.best = cost, self._last
        assert self.best is not None
        return self.best[req.key]

    def clone(self) -> Router:
        raise NotImplementedError("a rollout is not a base router")


class _ModelCache:
    """The ``prefix`` scorer's precise view, read from the model's caches instead of KV events."""

    def __init__(self, sim: Simulation, urls: list[str]) -> None:
        self.sim = sim
        self.index = {url: i for i, url in enumerate(urls)}

    def view(self, worker: Worker, req: RequestView) -> CacheView:
        model = self.sim.workers[self.index[worker.url]]
        sim_req: SimRequest = req.memo["sim-request"]
        size = model.cost.block_size
        held = model.held_blocks(sim_req)
        pending = model.pending_blocks(sim_req, held)
        return CacheView(len(sim_req.tokens), size, len(sim_req.usable(size)), held, pending)

    def note(self, fact: RoutedFact, worker: Worker, req: RequestView) -> None:
        """Nothing: a routed prompt counts as pending while it waits in the model's queue."""

    def learn(self, fact: RoutedFact) -> None:
        """Nothing to learn: the model's caches are read directly."""

    def on_membership(self, urls: Sequence[str]) -> None:
        """Nothing: the model's workers are fixed."""


class RealPrefix:
    """This project's ``prefix`` policy, the bench's configuration, on the model's workers and clock."""

    def __init__(self, params: dict[str, object], name: str = "prefix") -> None:
        self.name = name
        self.params = params
        self.policy = make_policy("prefix", params)
        self.clock = 0.0
        self.workers: list[Worker] = []
        self.views: dict[str, tuple[RequestView, Worker, int]] = {}
        self.sim: Simulation | None = None

    def _attach(self, sim: Simulation) -> None:
        self.sim = sim
        self.workers = [Worker(f"http://w{i}", "worker") for i in range(len(sim.workers))]
        cache = _ModelCache(sim, [w.url for w in self.workers])
        for part, _ in self.policy.scorers:
            if isinstance(part, PrefixScorer):
                part.precise = cache  # type: ignore[assignment]
                holds = part.holds
        for part, _ in self.policy.scorers:
            if isinstance(part, SessionAffinityScorer):
                part.holds = holds  # as build() wires it in precise mode
        self.policy.on_membership([w.url for w in self.workers])
        sim.listeners.append(self._on_event)

    def _on_event(self, kind: str, job: Job) -> None:
        found = self.views.get(job.req.key)
        if found is None:
            return
        view, worker, prompt = found
        if kind == "first_token":
            worker.tokens_in_flight -= prompt
        else:
            worker.in_flight -= 1
            worker.tokens_in_flight -= view.max_tokens
            del self.views[job.req.key]

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int:
        if self.sim is not sim:
            self._attach(sim)
        body = {"model": "tiny", "messages": [dict(m) for m in req.messages], "max_tokens": req.output_tokens}
        view = RequestView("chat", body, session=req.session)
        view.memo["sim-request"] = req
        with mock.patch.object(time, "monotonic", lambda: now):
            choice = self.policy.choose(self.workers, view)
            assert choice is not None
            worker = choice.worker
            self.policy.on_routed(worker, view)
        prompt = prompt_work(view, worker)
        worker.in_flight += 1
        worker.tokens_in_flight += work_tokens(view, worker)
        self.views[req.key] = (view, worker, prompt)
        return self.workers.index(worker)

    def clone(self) -> Router:
        """A fresh policy of the same parameters (a rollout needs a deterministic base, not this one's state)."""
        return RealPrefix(self.params, self.name)
