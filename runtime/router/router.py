"""The router's state and its routing decision: pools, one policy per pool, the disaggregation decider.

:meth:`Router.plan` is the whole decision for one attempt of one request: pick the decode worker
with the decode policy, ask the decider whether prefill runs on a prefill worker, pick that worker
with the prefill policy; without prefill/decode pools, pick from the aggregated pool. The result, a
:class:`Route`, also renders the ``x-grove-route`` header that explains the decision to the client.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runtime.http.upstream import UpstreamPool
from runtime.router.admission import Admission
from runtime.router.cache_stats import CacheStatsScraper, WorkerCacheStats
from runtime.router.config import RouterConfig
from runtime.router.health import HealthChecker
from runtime.router.load_board import LoadBoard
from runtime.router.metrics import RouterMetrics
from runtime.router.policies import Choice, Policy, RequestView, make_policy
from runtime.router.policies.prefill_split_decider import DisaggDecider, DisaggDecision
from runtime.router.policies.routed_fact import RoutedFact
from runtime.router.workers import PoolRole, Worker, WorkerPool

__all__ = ["ROUTE_HEADER", "Catalog", "FactSink", "Route", "Router"]

log = logging.getLogger("grove.router")

ROUTE_HEADER = "x-grove-route"
"""Response header that explains the routing decision."""

Mode = Literal["disaggregated", "local-prefill", "aggregated"]


class FactSink(Protocol):
    """Where a router process sends what it routed (``peer_link.PeerLink``: to the other processes)."""

    def publish(self, role: PoolRole, fact: RoutedFact) -> None: ...


@dataclass
class Route:
    """Where one attempt of a request goes, and why."""

    mode: Mode
    worker: Worker  # the worker that answers: decode worker or aggregated worker
    prefill: Worker | None
    policy: str
    reason: str
    kind: str = "policy"  # low-cardinality label of the reason, for metrics
    notes: list[str] = field(default_factory=list)

    def header(self, process: int | None = None) -> str:
        """``mode=...; prefill=...; decode=...; policy=...; reason=...``, plus ``note=...`` per retry
        (and ``process=i``: which of several router processes decided)."""
        parts = [f"mode={self.mode}"]
        if self.mode == "aggregated":
            parts.append(f"worker={self.worker.url}")
        else:
            if self.prefill is not None:
                parts.append(f"prefill={self.prefill.url}")
            parts.append(f"decode={self.worker.url}")
        parts.append(f"policy={self.policy}")
        if self.reason:
            parts.append(f"reason={self.reason}")
        parts += [f"note={n}" for n in self.notes]
        if process is not None:
            parts.append(f"process={process}")
        # Header values must be latin-1 and single-line.
        return (
            "; ".join(parts)
            .replace("\r", " ")
            .replace("\n", " ")
            .encode("latin-1", "replace")
            .decode("latin-1")
        )


@dataclass(frozen=True)
class Catalog:
    """What the workers serve, as of one model-list and membership version (a request reads it once)."""

    key: tuple[int, ...]
    models: set[str] | None
    cards: list[dict[str, Any]]
    lengths: dict[str, int]

    @staticmethod
    def of(key: tuple[int, ...], workers: list[Worker]) -> Catalog:
        unknown = not workers or any(w.models is None for w in workers)
        models = None if unknown else set().union(*(w.models or () for w in workers))
        seen: dict[str, dict[str, Any]] = {}
        lengths: dict[str, int] = {}
        for worker in workers:
            for card in worker.model_cards:
                seen.setdefault(card["id"], card)
                n = card.get("max_model_len")
                if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                    lengths[card["id"]] = min(n, lengths.get(card["id"], n))
        return Catalog(key, models, list(seen.values()), lengths)


class Router:
    """Pools, policies, health checks, the upstream client and the metrics of one router process."""

    def __init__(self, config: RouterConfig, *, board: LoadBoard | None = None) -> None:
        self.config = config
        #: In-flight counts shared with the other router processes (None: this process is the router).
        self.board = board
        #: With several router processes: where this one's routed facts go (set by the server).
        self.peers: FactSink | None = None
        #: Which of several router processes this is (None: the only one).
        self.process: int | None = None
        self.metrics = RouterMetrics()
        self.upstream = UpstreamPool(
            connect=config.timeouts.connect, read=config.timeouts.read, keepalive=config.timeouts.keepalive
        )
        self.pools: dict[PoolRole, WorkerPool] = {
            "prefill": WorkerPool("prefill", config.prefill),
            "decode": WorkerPool("decode", config.decode),
            "worker": WorkerPool("worker", config.worker),
        }
        self.policies: dict[PoolRole, Policy] = {
            role: make_policy(config.policy_for(role).name, config.policy_for(role).params)
            for role in self.pools
        }
        self._fallback: dict[PoolRole, Policy] = {role: make_policy("round_robin", {}) for role in self.pools}
        self.decider = DisaggDecider(config.disaggregation, self.policies["decode"].uncached_tokens)
        self._labels: dict[tuple[PoolRole, ...], str] = {}
        self._decided: dict[tuple[str, str], Any] = {}  # grove_router_decisions children
        self.admission = Admission(config.limits)
        self.metrics.queue_depth.set_function(lambda: self.admission.waiting)  # read when scraped
        self.health = HealthChecker(
            lambda: list(self.pools.values()), self.upstream, config.health, self.metrics
        )
        self.cache_stats = CacheStatsScraper(
            lambda: list(self.pools.values()),
            self.upstream,
            config.health.cache_stats_interval,
            self._on_worker_stats,
        )
        for worker in self.all_workers():
            self.metrics.watch_load(worker)
        self._catalog_cache: Catalog | None = None
        self.draining = False
        d = config.discovery
        self.pd_enabled = bool(
            config.prefill
            or config.decode
            or d.prefill_clique
            or d.decode_clique
            or d.prefill_group
            or d.decode_group
            or d.prefill_selector
            or d.decode_selector
        )

    async def start(self) -> None:
        """Learn the workers' health and models before taking traffic (connections open on first use)."""
        await self.health.check_all(refresh_models=True)
        for role, policy in self.policies.items():
            await policy.start([w.url for w in self.pools[role].workers])
        self.health.start()
        self.cache_stats.start()

    async def close(self) -> None:
        """Stop the checks and close every upstream connection."""
        await self.cache_stats.stop()
        await self.health.stop()
        for policy in self.policies.values():
            await policy.close()
        await self.upstream.close()

    def _on_worker_stats(self, worker: Worker, stats: WorkerCacheStats) -> None:
        """A worker's own prefix-cache figures: its pool's policy corrects its estimate with them."""
        self.policies[worker.role].on_worker_stats(worker.url, stats)
        self.decider.on_worker_stats(worker, stats)

    def set_members(self, role: PoolRole, urls: list[str]) -> None:
        """Replace a pool's membership (discovery calls this); new workers are checked right away."""
        pool = self.pools[role]
        before = {w.url for w in pool.workers}
        if not pool.set_urls(urls):
            return
        after = {w.url for w in pool.workers}
        log.warning(
            "%s pool: %d workers (+%d -%d)", role, len(after), len(after - before), len(before - after)
        )
        for url in before - after:
            self.metrics.forget_worker(role, url)
        self.policies[role].on_membership(sorted(after))
        for url in after - before:
            worker = pool.get(url)
            if worker is not None:
                self.metrics.watch_load(worker)
                asyncio.get_running_loop().create_task(self.health.check(worker, refresh_models=True))

    def all_workers(self) -> list[Worker]:
        """Every worker of every pool."""
        return [w for pool in self.pools.values() for w in pool.workers]

    def catalog(self) -> Catalog:
        """The workers' models and context lengths, recomputed only when a model list or a pool changed."""
        pools = self.pools
        key = (
            Worker.catalog_version,
            pools["prefill"].version,
            pools["decode"].version,
            pools["worker"].version,
        )
        cached = self._catalog_cache
        if cached is None or cached.key != key:
            cached = self._catalog_cache = Catalog.of(key, self.all_workers())
        return cached

    def known_models(self) -> set[str] | None:
        """Models some worker serves; None while any worker's list is still unknown (no 404 yet)."""
        return self.catalog().models

    def model_cards(self) -> list[dict[str, Any]]:
        """The union of the workers' ``/v1/models`` entries, one per model id."""
        return self.catalog().cards

    def context_length(self, model: str) -> int | None:
        """The smallest ``max_model_len`` the workers report for ``model`` in ``/v1/models``; None if unknown."""
        return self.catalog().lengths.get(model)

    def refresh_load(self, workers: list[Worker]) -> None:
        """With several router processes: set each worker's in-flight counts to those of all processes."""
        board = self.board
        if board is not None:
            for worker in workers:
                worker.in_flight, worker.tokens_in_flight = board.totals(worker.role, worker.url)

    def choose(self, role: PoolRole, workers: list[Worker], req: RequestView) -> Choice | None:
        """The pool's policy's choice; should the policy fail, round robin's (a bad request never breaks routing)."""
        self.refresh_load(workers)
        try:
            return self.policies[role].choose(workers, req)
        except Exception:
            log.exception("%s policy failed; falling back to round robin", role)
            self.metrics.of(self.metrics.policy_errors, role).inc()
            return self._fallback[role].choose(workers, req)

    def _decide(self, decode: Worker, req: RequestView, prefillers: list[Worker]) -> DisaggDecision:
        """The decider's verdict; should it fail, remote prefill when a prefill worker is up (as ``always``)."""
        try:
            return self.decider.decide(decode, req, prefillers)
        except Exception:
            log.exception("the disaggregation decider failed; deciding as mode 'always'")
            self.metrics.of(self.metrics.policy_errors, "decider").inc()
            if prefillers:
                return DisaggDecision(True, "", "decider-error")
            return DisaggDecision(False, "local-prefill: no healthy prefill worker", "no-prefill-worker")

    def ready_workers(self) -> list[Worker]:
        """Workers that passed their active health checks and can answer on their own.

        Passive ejection does not count here: a client can provoke it, and readiness must not be
        something a client can take away.
        """
        return [w for pool in (self.pools["decode"], self.pools["worker"]) for w in pool.workers if w.healthy]

    def serving_workers(self) -> list[Worker]:
        """Workers that can answer a request on their own right now (decode or aggregated)."""
        return self.pools["decode"].available() + self.pools["worker"].available()

    def policy_label(self, *roles: PoolRole) -> str:
        """The policy name(s) for the header: one name, or ``prefill=a,decode=b`` when they differ."""
        label = self._labels.get(roles)
        if label is None:  # the policies are set for the router's life: one label per roles, made once
            names = {role: self.policies[role].name for role in roles}
            if len(set(names.values())) == 1:
                label = next(iter(names.values()))
            else:
                label = ",".join(f"{role}={name}" for role, name in names.items())
            self._labels[roles] = label
        return label

    def plan(self, req: RequestView, exclude: set[str] | frozenset[str] = frozenset()) -> Route | None:
        """The route of one attempt, avoiding workers in ``exclude``; None when no worker can take it."""
        model = req.model
        if self.pd_enabled:
            decoders = self.pools["decode"].available(model, panic=True)
            if exclude:
                decoders = [w for w in decoders if w.url not in exclude]
            choice = self.choose("decode", decoders, req) if decoders else None
            if choice is not None:
                prefillers = self.pools["prefill"].available(model)
                self.refresh_load(prefillers)
                verdict = self._decide(choice.worker, req, prefillers)
                if verdict.remote:
                    pchoice = self.choose("prefill", prefillers, req)
                    if pchoice is not None:
                        reason = "; ".join(
                            r
                            for r in (
                                f"prefill: {pchoice.reason}",
                                f"decode: {choice.reason}",
                                verdict.reason,
                            )
                            if r and not r.endswith(": ")
                        )
                        return Route(
                            "disaggregated",
                            choice.worker,
                            pchoice.worker,
                            self.policy_label("prefill", "decode"),
                            reason,
                            verdict.kind,
                        )
                    verdict_reason, kind = (
                        "local-prefill: the prefill policy left no worker",
                        "no-prefill-worker",
                    )
                else:
                    verdict_reason, kind = verdict.reason, verdict.kind
                local = self._aggregated(req, exclude) if self.pools["worker"].workers else None
                if local is not None:
                    local.reason, local.kind = f"{verdict_reason}; {local.reason}", kind
                    return local
                reason = "; ".join(r for r in (verdict_reason, f"decode: {choice.reason}") if r)
                return Route("local-prefill", choice.worker, None, self.policy_label("decode"), reason, kind)
        return self._aggregated(req, exclude)

    def learn(self, role: PoolRole, fact: RoutedFact) -> bool:
        """A peer router process routed a request: learn from its fact as :meth:`commit` did there.

        Returns False for a worker this process does not know (its discovery has not seen it yet).
        """
        if self.pools[role].get(fact.url) is None:
            return False
        try:
            self.policies[role].learn(fact)
            if role == "decode":
                self.decider.learn(fact)
        except Exception:
            log.exception("%s policy failed to learn a peer's routed request", role)
            self.metrics.of(self.metrics.policy_errors, role).inc()
        return True

    def _aggregated(self, req: RequestView, exclude: set[str] | frozenset[str]) -> Route | None:
        workers = self.pools["worker"].available(req.model, panic=True)
        if exclude:
            workers = [w for w in workers if w.url not in exclude]
        choice = self.choose("worker", workers, req) if workers else None
        if choice is None:
            return None
        return Route("aggregated", choice.worker, None, self.policy_label("worker"), choice.reason)

    def commit(self, route: Route, req: RequestView) -> None:
        """The route is being used: the policies and the decider learn from it (and the peers); count it."""
        role: PoolRole = "worker" if route.mode == "aggregated" else "decode"
        peers = self.peers
        try:
            if route.prefill is not None:
                fact = self.policies["prefill"].on_routed(route.prefill, req)
                if peers is not None:
                    peers.publish("prefill", fact)
            fact = self.policies[role].on_routed(route.worker, req)
            if role == "decode":
                self.decider.note(fact, req)
                self.decider.learn(fact)
            if peers is not None:
                peers.publish(role, fact)
        except Exception:  # learning is best effort: the request still goes where it was routed
            log.exception("%s policy failed to record a routed request", role)
            self.metrics.of(self.metrics.policy_errors, role).inc()
        decided = self._decided.get((route.mode, route.kind))
        if decided is None:  # (mode, kind of reason): a few pairs, each looked up once
            decided = self._decided[route.mode, route.kind] = self.metrics.of(
                self.metrics.decisions, route.mode, route.kind
            )
        decided.inc()
        if log.isEnabledFor(logging.DEBUG):  # the header is built only for a debug log
            log.debug("route %s", route.header())
