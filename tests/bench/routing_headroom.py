"""A discrete-event model of vLLM workers serving a replayed trace: what any placement could win.

The routing bench (``routing_bench.py``) measures routers on real vLLM; this model asks the question
the measurements cannot: on the same trace, with the same caches, how fast could *any* router be?
``routing_headroom_policies.py`` holds the routers it compares (round robin, vllm-router's
``consistent_hash`` ring, our real ``prefix`` policy, clairvoyant oracles) and
``routing_headroom_bench.py`` calibrates the model on the bench's own per-request logs and prints
the comparison.

What the model assumes (each worker on its own core, nothing shared between workers):

* **vLLM V1's scheduler, one engine step at a time.** A step serves every running request one
  decode token, then admits waiting requests first come first served within the step's token budget
  (``budget_tokens``, vLLM's CPU default of 2048; a prompt longer than what is left is chunked, as
  chunked prefill does). A request's first token comes at the end of the step that computes the last
  of its prompt; it then decodes one token per step until its output is done. A request that arrives
  during a step waits for the next one (steps are not preempted).
* **Continuous batching, approximated by a linear step time**: ``step_s + prefill_token_s x prompt
  tokens computed in the step + decode_seq_s x requests decoding in it``. So a prefill slows every
  decode sharing its step and a decode batch slows a prefill, as on one CPU core; attention's growth
  with context length and batch-size nonlinearities are left out.
* **One LRU prefix cache per worker** of ``capacity_blocks`` blocks of ``block_size`` tokens, looked
  up when a request is first scheduled (as vLLM's ``get_computed_blocks``): the leading full blocks
  present are not computed (never the prompt's last token, as vLLM); then every full block of the
  prompt is (re)inserted as most recently used, least recently used evicted beyond capacity. Blocks
  of requests still running are not pinned (vLLM pins them; at these sizes the difference is a few
  blocks).
* **A constant** ``overhead_s`` per request (client, router, HTTP, detokenizing) is added to the
  engine's time to first token.

What it cannot say: anything about the machine's shared cores (load generator, router and other
developers' jobs steal time from the workers unevenly; the model's workers never slow each other),
the routers' own CPU cost per request, tail effects of Python's garbage collector or the OS
scheduler, and effects of the real engine the linear step time misses (its calibration error,
printed by the bench, bounds how far to trust differences between policies).
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from runtime.router.policies.cache.kv_index import chain_keys

__all__ = [
    "CostModel",
    "Job",
    "Router",
    "SimRequest",
    "Simulation",
    "WorkerSim",
    "floor_ttfts",
    "floor_uncached",
    "mean_ms",
    "p50_ms",
    "simulate",
]


class CostModel(BaseModel):
    """The engine's cost constants (seconds) and the cache and scheduler sizes."""

    model_config = ConfigDict(frozen=True)

    step_s: float = Field(ge=0, description="fixed cost of one engine step")
    prefill_token_s: float = Field(ge=0, description="per prompt token computed in a step")
    decode_seq_s: float = Field(ge=0, description="per request decoding one token in a step")
    overhead_s: float = Field(default=0.0, ge=0, description="client, router and HTTP time per request")
    budget_tokens: int = Field(default=2048, ge=1, description="tokens one step may compute")
    capacity_blocks: int = Field(default=256, ge=1, description="KV blocks per worker")
    block_size: int = Field(default=32, ge=1)


@dataclass(frozen=True, eq=False)
class SimRequest:
    """One request of the replayed trace, as the model needs it.

    ``after``/``think_s``: a closed-loop turn (the agentic trace) arrives ``think_s`` after the answer
    to the request keyed ``after``; otherwise it arrives at ``arrival_s``.
    """

    key: str
    session: str
    arrival_s: float
    tokens: tuple[int, ...]
    output_tokens: int
    messages: tuple[dict[str, str], ...] = ()
    after: str | None = None
    think_s: float = 0.0
    _keys: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def keys(self, block_size: int) -> list[int]:
        """Chain keys of the prompt's full blocks (``kv_index.chain_keys``, as the bench's oracle)."""
        found = self._keys.get(block_size)
        if found is None:
            found = self._keys[block_size] = chain_keys(self.tokens, block_size)
        return found

    def usable(self, block_size: int) -> list[int]:
        """The blocks a cache lookup may hit: vLLM always computes the prompt's last token."""
        return self.keys(block_size)[: max(0, (len(self.tokens) - 1) // block_size)]


@dataclass(eq=False)
class Job:
    """A request on a worker: how much of its prompt is left, its output left, and its times."""

    req: SimRequest
    worker: int
    arrival_s: float
    cached_tokens: int | None = None  # set when first scheduled
    prefill_left: int = 0
    decode_left: int = 0
    first_token_s: float | None = None
    done_s: float | None = None

    def clone(self) -> Job:
        return Job(
            self.req,
            self.worker,
            self.arrival_s,
            self.cached_tokens,
            self.prefill_left,
            self.decode_left,
            self.first_token_s,
            self.done_s,
        )


class WorkerSim:
    """One engine: its LRU prefix cache, its waiting and running requests, and its clock."""

    def __init__(self, index: int, cost: CostModel) -> None:
        self.index = index
        self.cost = cost
        self.clock = 0.0  # when its next step may start
        self.cache: OrderedDict[int, None] = OrderedDict()
        self.waiting: list[Job] = []
        self.running: list[Job] = []

    def clone(self) -> WorkerSim:
        other = WorkerSim(self.index, self.cost)
        other.clock = self.clock
        other.cache = self.cache.copy()
        other.waiting = [j.clone() for j in self.waiting]
        other.running = [j.clone() for j in self.running]
        return other

    @property
    def busy(self) -> bool:
        return bool(self.waiting or self.running)

    def held_blocks(self, req: SimRequest) -> int:
        """Leading blocks of ``req``'s prompt this worker's cache holds now."""
        hit = 0
        for key in req.usable(self.cost.block_size):
            if key not in self.cache:
                break
            hit += 1
        return hit

    def pending_blocks(self, req: SimRequest, held: int) -> int:
        """Blocks after ``held`` that a request waiting here (not yet scheduled) will bring."""
        usable = req.usable(self.cost.block_size)[held:]
        if not usable:
            return 0
        best = 0
        for job in self.waiting:
            if job.cached_tokens is not None:
                continue
            theirs = job.req.keys(self.cost.block_size)[held:]
            n = 0
            for a, b in zip(usable, theirs, strict=False):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        return best

    def uncached_tokens(self, req: SimRequest) -> int:
        """Prompt tokens this worker would compute for ``req`` if it were scheduled now."""
        return len(req.tokens) - self.held_blocks(req) * self.cost.block_size

    def add(self, job: Job, now: float) -> None:
        if not self.busy:
            self.clock = max(self.clock, now)
        self.waiting.append(job)

    def _schedule(self, job: Job) -> None:
        size = self.cost.block_size
        job.cached_tokens = self.held_blocks(job.req) * size
        job.prefill_left = len(job.req.tokens) - job.cached_tokens
        for key in job.req.keys(size):
            self.cache[key] = None
            self.cache.move_to_end(key)
        while len(self.cache) > self.cost.capacity_blocks:
            self.cache.popitem(last=False)

    def step(
        self, first_token: Callable[[Job], None] | None = None, done: Callable[[Job], None] | None = None
    ) -> None:
        """One engine step from ``clock``: decodes, then prefills within the budget."""
        cost = self.cost
        decoding = list(self.running)
        budget = cost.budget_tokens - len(decoding)
        computed = 0
        prefilled: list[Job] = []
        for job in self.waiting:
            if budget <= 0:
                break
            if job.cached_tokens is None:
                self._schedule(job)
            n = min(job.prefill_left, budget)
            job.prefill_left -= n
            budget -= n
            computed += n
            if job.prefill_left == 0:
                prefilled.append(job)
        end = self.clock + cost.step_s + cost.prefill_token_s * computed + cost.decode_seq_s * len(decoding)
        self.clock = end
        for job in decoding:
            job.decode_left -= 1
            if job.decode_left <= 0:
                job.done_s = end
                self.running.remove(job)
                if done is not None:
                    done(job)
        for job in prefilled:
            self.waiting.remove(job)
            job.first_token_s = end
            job.decode_left = job.req.output_tokens - 1
            if first_token is not None:
                first_token(job)
            if job.decode_left > 0:
                self.running.append(job)
            else:
                job.done_s = end
                if done is not None:
                    done(job)

    def ttft_if_added(self, req: SimRequest, now: float) -> float:
        """The engine's time to first token of ``req`` if it joined this worker now (no later arrivals)."""
        probe = self.clone()
        job = Job(req, self.index, now)
        probe.add(job, now)
        while job.first_token_s is None:
            probe.step()
        return job.first_token_s - now


class Router(Protocol):
    """Where each request goes. ``routed``/``first_token``/``done`` let a router keep its own load."""

    name: str

    def choose(self, sim: Simulation, req: SimRequest, now: float) -> int: ...

    def clone(self) -> Router: ...


class Simulation:
    """Workers, pending arrivals and finished jobs; :meth:`run` plays the trace through a router."""

    def __init__(self, requests: Sequence[SimRequest], workers: int, cost: CostModel) -> None:
        self.cost = cost
        self.workers = [WorkerSim(i, cost) for i in range(workers)]
        self.jobs: dict[str, Job] = {}
        self.followers: dict[str, list[SimRequest]] = {}
        self.arrivals: list[tuple[float, int, SimRequest]] = []
        self._seq = 0
        for req in requests:
            if req.after is None:
                self._push(req.arrival_s, req)
            else:
                self.followers.setdefault(req.after, []).append(req)
        self.listeners: list[Callable[[str, Job], None]] = []

    def _push(self, at: float, req: SimRequest) -> None:
        heapq.heappush(self.arrivals, (at, self._seq, req))
        self._seq += 1

    def clone(self) -> Simulation:
        """A copy to play forward without touching this one (jobs and workers copied, requests shared)."""
        other = Simulation.__new__(Simulation)
        other.cost = self.cost
        other.workers = [w.clone() for w in self.workers]
        live = {id(j): j for w in other.workers for j in (*w.waiting, *w.running)}
        by_key = {j.req.key: j for j in live.values()}
        other.jobs = {k: by_key.get(k) or j for k, j in self.jobs.items()}
        other.followers = self.followers
        other.arrivals = list(self.arrivals)
        other._seq = self._seq
        other.listeners = []
        return other

    def _first_token(self, job: Job) -> None:
        for listener in self.listeners:
            listener("first_token", job)

    def _done(self, job: Job) -> None:
        assert job.done_s is not None
        for req in self.followers.get(job.req.key, ()):
            self._push(job.done_s + self.cost.overhead_s + req.think_s, req)
        for listener in self.listeners:
            listener("done", job)

    def next_request(self) -> tuple[float, SimRequest] | None:
        """Run engine steps up to the next arrival; that arrival (None: the trace is over)."""
        while True:
            soonest = self.arrivals[0][0] if self.arrivals else math.inf
            busy = [w for w in self.workers if w.busy]
            worker = min(busy, key=lambda w: w.clock, default=None)
            if worker is not None and worker.clock < soonest:
                worker.step(self._first_token, self._done)
                continue
            if not self.arrivals:
                return None
            at, _, req = heapq.heappop(self.arrivals)
            return at, req

    def place(self, req: SimRequest, worker: int, now: float) -> Job:
        job = Job(req, worker, now)
        self.jobs[req.key] = job
        self.workers[worker].add(job, now)
        return job

    def run(self, router: Router, forced: dict[str, int] | None = None) -> dict[str, Job]:
        """Play every remaining arrival through ``router`` (or ``forced`` choices, where given)."""
        while (arrival := self.next_request()) is not None:
            now, req = arrival
            choice = forced.get(req.key) if forced else None
            self.place(req, router.choose(self, req, now) if choice is None else choice, now)
        return self.jobs

    def ttft_s(self, job: Job) -> float:
        """The client's time to first token: the engine's, plus the per-request overhead."""
        assert job.first_token_s is not None
        return job.first_token_s - job.arrival_s + self.cost.overhead_s


def simulate(
    requests: Sequence[SimRequest], workers: int, cost: CostModel, router: Router
) -> dict[str, float]:
    """Each request's simulated TTFT (seconds), by key, under ``router``."""
    sim = Simulation(requests, workers, cost)
    jobs = sim.run(router)
    return {k: sim.ttft_s(j) for k, j in jobs.items()}


def floor_uncached(requests: Sequence[SimRequest], block_size: int) -> dict[str, int]:
    """Each request's prompt tokens not in any earlier request's blocks (in ``requests``' order): what
    it must compute under any placement, with caches of any size."""
    seen: set[int] = set()
    out = {}
    for req in requests:
        hit = 0
        for key in req.usable(block_size):
            if key not in seen:
                break
            hit += 1
        out[req.key] = len(req.tokens) - hit * block_size
        seen.update(req.keys(block_size))
    return out


def floor_ttfts(requests: Sequence[SimRequest], cost: CostModel) -> dict[str, float]:
    """A lower bound on each request's TTFT under any placement: alone on an idle worker that holds
    every block any earlier request brought (:func:`floor_uncached`), in one step.

    Queueing, decode batches and evictions only add to it, so any router's TTFT percentiles are at
    least these (the p50 of element-wise larger values is larger).
    """
    return {
        key: cost.overhead_s + cost.step_s + cost.prefill_token_s * uncached
        for key, uncached in floor_uncached(requests, cost.block_size).items()
    }


def p50_ms(ttfts: Iterable[float]) -> float:
    """Median in milliseconds."""
    values = list(ttfts)
    return 1000 * statistics.median(values) if values else math.nan


def mean_ms(ttfts: Iterable[float]) -> float:
    """Mean in milliseconds."""
    values = list(ttfts)
    return 1000 * statistics.fmean(values) if values else math.nan
