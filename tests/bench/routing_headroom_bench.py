"""How much room the routing bench leaves for any router to beat session hashing (no vLLM started).

``python -m tests.bench routing_headroom``. The model (``routing_headroom.py``: engines with the
bench's bounded LRU prefix caches, vLLM's step scheduler, a linear step time) is:

1. **calibrated** on the routing bench's own per-request logs (``.cache/bench/logs/routing-m-
   <target>-<round>.results.json``: each request's TTFT and end-to-end time), grouped by the start of
   the workers they ran on (the machine's load differs from one bench session to the next, so each
   session gets its own constants). Where each request went is known for two targets: our router's
   decision header names the worker; vllm-router's ``consistent_hash`` is recomputed from its ring
   over the workers' URLs (their ports, read from the workers' own ``vllm-bench-<i>.log``) and the
   session header. Arrival times and prompts come from the trace by the bench's own functions; a log
   does not name the time compression it was replayed at (``GROVE_BENCH_ROUTING_TIME_COMPRESSION``
   replays either of the bench's rates under the busy code), so each run takes the rate whose trace
   span is closest to the run's length (from its router's start to its results' write). A
   plain least-squares look first (TTFT against the request's uncached prompt tokens, the uncached
   tokens still being prefilled on its worker when it arrived, and the requests decoding there, all
   from measured times); then the model's four constants are fitted to those requests replayed on
   their logged workers (pattern search on the squared log ratio of simulated to measured TTFT, so
   the body of the distribution counts as much as its tail).
2. **validated**: round robin (never in the fit) and the targets whose placement is known are
   simulated and set beside their measured runs, with the model's cache-hit share (to set beside the
   workers' own counters the routing bench prints); our ``prefix`` policy is also simulated as a
   policy (choosing for itself in the model). Sessions with no known placement are validated with the
   constants of the nearest calibrated one. A data-only line per session says how many measured cache
   hits come in under 0.8x the runs' TTFT p50.
3. then asked what placement can win: round robin, ``consistent_hash``, our real ``prefix`` policy
   object, two clairvoyant oracles (greedy per request, and a fortified rollout with look-ahead over
   the whole trace, never worse on its objective than ring, greedy or ``prefix``), and a floor no
   router can beat (every request alone on an idle worker holding every block any earlier request
   brought), at the busy Mooncake rate for every calibrated session, and, with the best-fitted
   session's constants, at the light rate, on the agentic trace, and with 4 and 8 workers (at the same
   rate, and at a rate scaled with the workers).

Returns ``headroom_oracle_ttft_p50_vs_consistent_hash=<r> headroom_floor_..._vs_consistent_hash=<r>
headroom_prefix_..._vs_consistent_hash=<r>`` for the best-fitted session. The ratios are the model's,
not measurements; the calibration error printed with them says how far to trust them.
``GROVE_BENCH_HEADROOM_QUICK=1`` skips the rollout oracle and the extra scenarios;
``GROVE_BENCH_HEADROOM_LOGS`` reads another logs folder.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.agentic_trace import RequestResult, Trace, generate_trace
from tests.bench.mooncake_trace import MooncakeReplay, load_mooncake, mooncake_to_trace
from tests.bench.router_bench import CACHE, ROOT
from tests.bench.routing_bench import BLOCK_SIZE, FULL, tokenize_trace, trace_path
from tests.bench.routing_headroom import (
    CostModel,
    Job,
    Router,
    SimRequest,
    Simulation,
    floor_ttfts,
    floor_uncached,
    mean_ms,
    p50_ms,
)
from tests.bench.routing_headroom_policies import (
    ConsistentHash,
    Forced,
    Greedy,
    RealPrefix,
    Rollout,
    RoundRobin,
    mean_objective,
    p50_objective,
)
from tests.bench.trace_routing import paired_key, tag_of

__all__ = [
    "LoggedRun",
    "WorkerStart",
    "calibrate",
    "linear_fit",
    "logged_runs",
    "main",
    "sim_requests",
    "worker_starts",
]

PREFIX_PARAMS: dict[str, Any] = {"saturate_in_flight": 4}
"""The bench's ``router prefix`` configuration, less its tokenizer and KV events (the model's caches
stand in for them)."""

PORT_DRAWS = 8
"""Port pairs tried for the consistent-hash ring in scenarios no log covers (the partition of
sessions depends on the workers' URLs)."""

FITTED = ("step_s", "prefill_token_s", "decode_seq_s", "overhead_s")

_WORKER = re.compile(r"worker=(\S+?);")
_STARTED = re.compile(r"^==> .* --port (\d+) .*--num-gpu-blocks-override (\d+)")
_ENGINE = re.compile(r"INFO (\d\d-\d\d \d\d:\d\d:\d\d) \[core\.py:\d+\] Initializing a V1 LLM engine")


def sim_requests(trace: Trace, tokenizer: Any, code: str) -> list[SimRequest]:
    """The trace's requests as the model sees them: prompts tokenized as the bench's oracle does them."""
    salted = trace.salted(tag_of(code, 0, 0))
    prompts = tokenize_trace(tokenizer, salted)
    ordered = [(s, t) for s in sorted(salted.sessions, key=lambda s: s.arrival_s) for t in s.turns]
    out = []
    for (session, turn), tokens in zip(ordered, prompts, strict=True):
        at = session.turns.index(turn)
        previous = session.turns[at - 1] if at else None
        out.append(
            SimRequest(
                key=paired_key(turn.session_id, turn.turn),
                session=turn.session_id,
                arrival_s=session.arrival_s,
                tokens=tuple(tokens),
                output_tokens=turn.max_tokens,
                messages=tuple(turn.messages),
                after=None if previous is None else paired_key(previous.session_id, previous.turn),
                think_s=session.think_s,
            )
        )
    return out


@dataclass(frozen=True)
class WorkerStart:
    """One start of the bench's two vLLM workers, from their own logs: when, their URLs, their cache size."""

    at: datetime
    urls: tuple[str, ...]
    blocks: int


def worker_starts(logs: Path, year: int) -> list[WorkerStart]:
    """Every start of the bench's workers (``vllm-bench-<i>.log``), oldest first."""
    per_worker: list[list[tuple[datetime, str, int]]] = []
    for i in range(2):
        path = logs / f"vllm-bench-{i}.log"
        starts: list[tuple[datetime, str, int]] = []
        pending: tuple[str, int] | None = None
        if path.exists():
            with open(path, errors="replace") as fh:
                for line in fh:
                    if m := _STARTED.match(line):
                        pending = (f"http://127.0.0.1:{m.group(1)}", int(m.group(2)))
                    elif pending and (m := _ENGINE.search(line)):
                        at = datetime.strptime(f"{year}-{m.group(1)}", "%Y-%m-%d %H:%M:%S")
                        starts.append((at, *pending))
                        pending = None
        per_worker.append(starts)
    out = []
    for a, b in zip(*per_worker, strict=False):
        if abs((a[0] - b[0]).total_seconds()) < 120:  # started together
            out.append(WorkerStart(at=max(a[0], b[0]), urls=(a[1], b[1]), blocks=a[2]))
    return out


@dataclass(frozen=True)
class LoggedRun:
    """One replay the routing bench logged: its target, round, results, and the workers it ran on."""

    label: str
    round: int
    results: list[RequestResult]
    workers: WorkerStart | None
    seconds: float | None = None
    """From the router's start (its log's last write: our router and vllm-router write theirs at
    startup only) to the results' write: the replay's length, which tells its time compression."""

    def placement(self) -> dict[str, int] | None:
        """Request key → worker index where the log says it: our router's decision header, or, for
        vllm-router's consistent_hash, its ring over the workers' URLs and the session header."""
        urls = list(self.workers.urls) if self.workers is not None else []
        ring = ConsistentHash(urls) if urls and self.label.endswith("consistent_hash") else None
        out: dict[str, int] = {}
        for r in self.results:
            key = paired_key(r.session_id, r.turn)
            m = _WORKER.search(r.routing or "")
            if m and m.group(1) in urls:
                out[key] = urls.index(m.group(1))
            elif ring is not None:
                out[key] = ring.worker_of(r.session_id)
        return out or None

    def measured(self) -> dict[str, RequestResult]:
        """The answered requests, by key."""
        return {
            paired_key(r.session_id, r.turn): r
            for r in self.results
            if r.ttft_s is not None and r.status == 200 and r.error is None
        }


def logged_runs(logs: Path, code: str) -> list[LoggedRun]:
    """Every ``routing-<code>-<label>-<round>.results.json``, each with the worker start it ran on."""
    found = []
    for path in sorted(logs.glob(f"routing-{code}-*-[0-9].results.json")):
        label, _, round_ = path.name.removesuffix(".results.json")[len(f"routing-{code}-") :].rpartition("-")
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).replace(tzinfo=None)
        starts = [s for s in worker_starts(logs, mtime.year) if s.at <= mtime]
        results = [RequestResult.model_validate(r) for r in json.loads(path.read_text())]
        log = path.with_name(path.name.removesuffix(".results.json") + ".log")
        seconds = path.stat().st_mtime - log.stat().st_mtime if log.exists() else None
        found.append(LoggedRun(label, int(round_), results, starts[-1] if starts else None, seconds))
    return found


def _solve(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares by the normal equations (Gauss-Jordan with partial pivoting)."""
    n = len(rows[0])
    a = [
        [sum(r[i] * r[j] for r in rows) for j in range(n)]
        + [sum(r[i] * y for r, y in zip(rows, ys, strict=True))]
        for i in range(n)
    ]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        if abs(a[col][col]) < 1e-18:
            continue
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    return [a[i][n] / a[i][i] if abs(a[i][i]) > 1e-18 else 0.0 for i in range(n)]


def linear_fit(
    requests: Sequence[SimRequest], runs: Sequence[LoggedRun], cost: CostModel
) -> tuple[list[float], float, float, int]:
    """TTFT ≈ a + b·uncached + c·prefill ahead + d·decoding, from measured times; (a..d, R², RMSE s, n).

    Uncached tokens come from the model's caches replaying the logged placement; "ahead" is the
    uncached tokens of requests on the same worker that arrived earlier and had no first token yet
    when this one arrived, "decoding" the requests there between first token and end.
    """
    by_key = {r.key: r for r in requests}
    rows, ys = [], []
    for run in runs:
        placement = run.placement() or {}
        jobs = Simulation(requests, 2, cost).run(Forced(placement))
        spans = {
            k: (by_key[k].arrival_s, by_key[k].arrival_s + (m.ttft_s or 0.0), by_key[k].arrival_s + m.e2e_s)
            for k, m in run.measured().items()
            if k in placement and k in by_key
        }
        uncached = {k: len(j.req.tokens) - (j.cached_tokens or 0) for k, j in jobs.items()}
        for k, (t, f, _) in spans.items():
            same = [s for o, s in spans.items() if o != k and placement[o] == placement[k]]
            ahead = sum(
                uncached[o]
                for o, s in spans.items()
                if o != k and placement[o] == placement[k] and s[0] <= t < s[1]
            )
            decoding = sum(1 for _, f0, e0 in same if f0 <= t < e0)
            rows.append([1.0, float(uncached[k]), float(ahead), float(decoding)])
            ys.append(f - t)
    coef = _solve(rows, ys)
    pred = [sum(c * x for c, x in zip(coef, r, strict=True)) for r in rows]
    mean_y = statistics.fmean(ys)
    ss_res = sum((y - p) ** 2 for y, p in zip(ys, pred, strict=True))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    return coef, 1 - ss_res / ss_tot, math.sqrt(ss_res / len(ys)), len(ys)


def _errors(
    requests: Sequence[SimRequest], runs: Sequence[LoggedRun], cost: CostModel
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per request, each run replayed on its logged workers: (simulated − measured) TTFT and
    end-to-end seconds, and the measured TTFT and end-to-end seconds."""
    ttft: list[float] = []
    e2e: list[float] = []
    measured: list[float] = []
    measured_e2e: list[float] = []
    for run in runs:
        sim = Simulation(requests, 2, cost)
        jobs = sim.run(Forced(run.placement() or {}))
        for k, m in run.measured().items():
            job = jobs.get(k)
            if job is None or job.done_s is None or m.ttft_s is None:
                continue
            ttft.append(sim.ttft_s(job) - m.ttft_s)
            e2e.append(job.done_s - job.arrival_s + cost.overhead_s - m.e2e_s)
            measured.append(m.ttft_s)
            measured_e2e.append(m.e2e_s)
    return ttft, e2e, measured, measured_e2e


def calibrate(
    requests: Sequence[SimRequest], runs: Sequence[LoggedRun], start: CostModel, rounds: int = 6
) -> CostModel:
    """Pattern search on the four constants: minimise the squared log ratio of simulated to measured TTFT."""

    def loss(cost: CostModel) -> float:
        ttft, _, measured, _ = _errors(requests, runs, cost)
        return sum(math.log((m + e) / m) ** 2 for e, m in zip(ttft, measured, strict=True) if m + e > 0)

    best, best_loss = start, loss(start)
    for factor in (2.0, 1.5, 1.25, 1.1, 1.05, 1.02)[:rounds]:
        improved = True
        while improved:
            improved = False
            for name in FITTED:
                for f in (factor, 1 / factor):
                    value = getattr(best, name) * f if getattr(best, name) > 0 else 1e-4 * (f > 1)
                    trial = best.model_copy(update={name: value})
                    trial_loss = loss(trial)
                    if trial_loss < best_loss - 1e-12:
                        best, best_loss, improved = trial, trial_loss, True
    return best


def _error_line(errors: list[float], measured: list[float]) -> str:
    rmse = math.sqrt(statistics.fmean(e * e for e in errors))
    mae = statistics.fmean(abs(e) for e in errors)
    rel = statistics.median(abs(e) / m for e, m in zip(errors, measured, strict=True) if m > 0)
    bias = statistics.fmean(errors)
    return (
        f"RMSE {1000 * rmse:.1f} ms, MAE {1000 * mae:.1f} ms, bias {1000 * bias:+.1f} ms, "
        f"median |error|/measured {rel:.2f} over {len(errors)} requests"
    )


@dataclass(frozen=True)
class Outcome:
    """One request's simulated result."""

    ttft_s: float
    worker: int
    cached_tokens: int
    prompt_tokens: int = 0


def _run(requests: Sequence[SimRequest], workers: int, cost: CostModel, router: Router) -> dict[str, Outcome]:
    sim = Simulation(requests, workers, cost)
    jobs: dict[str, Job] = sim.run(router)
    return {
        k: Outcome(sim.ttft_s(j), j.worker, j.cached_tokens or 0, len(j.req.tokens)) for k, j in jobs.items()
    }


def _hit_share(outcomes: dict[str, Outcome]) -> float:
    """Prompt tokens found cached, in percent (what the workers' own prefix-cache counters report)."""
    total = sum(o.prompt_tokens for o in outcomes.values())
    return 100 * sum(o.cached_tokens for o in outcomes.values()) / total if total else math.nan


def _ttfts(outcomes: dict[str, Outcome]) -> list[float]:
    return [o.ttft_s for o in outcomes.values()]


def _urls(draw: int, workers: int) -> list[str]:
    """Worker URLs like the bench's (127.0.0.1 and an ephemeral port), one deterministic draw."""
    return [f"http://127.0.0.1:{32768 + (draw * 7919 + i * 104729) % 28000}" for i in range(workers)]


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({min(values):.1f}-{max(values):.1f})"


def compare(
    requests: Sequence[SimRequest],
    workers: int,
    cost: CostModel,
    title: str,
    *,
    rollout: bool = False,
    urls: Sequence[str] | None = None,
) -> dict[str, dict[str, Outcome]]:
    """Every policy on the model; prints a table with the ratios against consistent_hash.

    ``urls``: the workers' URLs for the ring (a logged session's); else the median of
    :data:`PORT_DRAWS` draws by p50.
    """
    started = time.monotonic()
    results: dict[str, dict[str, Outcome]] = {}
    if urls is not None:
        ring = ConsistentHash(urls)
        results["consistent_hash"] = _run(requests, workers, cost, ring)
        note = "consistent_hash: the ring over the logged workers' URLs"
    else:
        draws = [_run(requests, workers, cost, ConsistentHash(_urls(d, workers))) for d in range(PORT_DRAWS)]
        p50s = [p50_ms(_ttfts(r)) for r in draws]
        middle = sorted(range(PORT_DRAWS), key=lambda d: p50s[d])[PORT_DRAWS // 2]
        ring = ConsistentHash(_urls(middle, workers))
        results["consistent_hash"] = draws[middle]
        note = f"consistent_hash: the median of {PORT_DRAWS} port draws by p50; range {min(p50s):.1f}-{max(p50s):.1f} ms"
    results["round_robin"] = _run(requests, workers, cost, RoundRobin())
    results["prefix (real policy)"] = _run(requests, workers, cost, RealPrefix(PREFIX_PARAMS))
    results["oracle greedy"] = _run(requests, workers, cost, Greedy())
    if rollout:
        for objective, label in ((mean_objective, "mean"), (p50_objective, "p50")):
            name = f"oracle rollout ({label})"
            bases: list[Router] = [ring, Greedy(), RealPrefix(PREFIX_PARAMS)]
            results[name] = _run(requests, workers, cost, Rollout(bases, objective, name))
    base = results["consistent_hash"]
    base_p50, base_mean = p50_ms(_ttfts(base)), mean_ms(_ttfts(base))
    floor = floor_ttfts(requests, cost)
    results_floor = {k: Outcome(v, -1, 0) for k, v in floor.items()}
    print(f"\n{title}: {len(requests)} requests, {workers} workers ({note})")
    print(
        "| policy | TTFT p50 ms | TTFT mean ms | p50 / consistent_hash | mean / consistent_hash | paired geomean |"
    )
    print("|---|---|---|---|---|---|")
    for name, outcomes in results.items():
        paired = math.exp(statistics.fmean(math.log(o.ttft_s / base[k].ttft_s) for k, o in outcomes.items()))
        p50, mean = p50_ms(_ttfts(outcomes)), mean_ms(_ttfts(outcomes))
        print(
            f"| {name} | {p50:.1f} | {mean:.1f} | {p50 / base_p50:.2f} | {mean / base_mean:.2f} | {paired:.2f} |"
        )
    p50, mean = p50_ms(floor.values()), mean_ms(floor.values())
    paired = math.exp(statistics.fmean(math.log(o.ttft_s / base[k].ttft_s) for k, o in results_floor.items()))
    print(
        f"| floor (no queue, every earlier block cached: no router can beat it) | {p50:.1f} | {mean:.1f} | "
        f"{p50 / base_p50:.2f} | {mean / base_mean:.2f} | {paired:.2f} |"
    )
    print(f"({time.monotonic() - started:.0f} s of simulation)", flush=True)
    return results


def explain_moves(oracle: dict[str, Outcome], base: dict[str, Outcome], name: str) -> None:
    """Which of the oracle's decisions differ from consistent_hash's, and what they win or lose."""
    moved = [k for k in oracle if oracle[k].worker != base[k].worker]
    stayed = [k for k in oracle if oracle[k].worker == base[k].worker]

    def gain(keys: list[str]) -> str:
        if not keys:
            return "none"
        total = sum(base[k].ttft_s - oracle[k].ttft_s for k in keys)
        faster = sum(oracle[k].ttft_s < base[k].ttft_s - 1e-9 for k in keys)
        return f"{len(keys)} requests, {faster} faster, TTFT saved {1000 * total:.0f} ms in all"

    less_cache = [k for k in moved if oracle[k].cached_tokens < base[k].cached_tokens]
    more_cache = [k for k in moved if oracle[k].cached_tokens > base[k].cached_tokens]
    same_cache = [k for k in moved if oracle[k].cached_tokens == base[k].cached_tokens]
    print(f"{name} against consistent_hash:")
    print(f"  placed elsewhere: {gain(moved)}")
    print(f"    of which gave up cached tokens (load over reuse): {gain(less_cache)}")
    print(f"    of which found more cached tokens: {gain(more_cache)}")
    print(f"    of which found as many (cold prompts balanced): {gain(same_cache)}")
    print(f"  same worker (shorter queues there): {gain(stayed)}")


def _validate(
    group: list[LoggedRun], cost: CostModel, requests: Sequence[SimRequest], fitted: set[str]
) -> None:
    """Measured against simulated TTFT, per target of one session."""
    urls = group[0].workers.urls if group[0].workers is not None else None
    by_label: dict[str, list[LoggedRun]] = {}
    for run in group:
        by_label.setdefault(run.label, []).append(run)
    if not any("round_robin" in label or runs[0].placement() for label, runs in by_label.items()):
        print(f"no target the model can replay ({', '.join(sorted(by_label))}): nothing to validate")
        return
    print(
        "| target | runs | in the fit | measured p50 | simulated p50 | measured mean | simulated mean "
        "| simulated cache hit % |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, runs in sorted(by_label.items()):
        sims: list[dict[str, Outcome]]
        if "round_robin" in label:
            sims = [_run(requests, 2, cost, RoundRobin())]
            how = "RoundRobin"
        elif runs[0].placement() is not None:
            sims = [_run(requests, 2, cost, Forced(r.placement() or {})) for r in runs]
            how = "logged placement"
        else:
            continue
        rows = [(label, how, sims)]
        if label == "router-prefix":
            rows.append(
                (label, "prefix policy in the model", [_run(requests, 2, cost, RealPrefix(PREFIX_PARAMS))])
            )
        if label.endswith("consistent_hash") and urls is not None:
            rows.append((label, "ring in the model", [_run(requests, 2, cost, ConsistentHash(urls))]))
        measured_p50 = [p50_ms(m.ttft_s or 0.0 for m in r.measured().values()) for r in runs]
        measured_mean = [mean_ms(m.ttft_s or 0.0 for m in r.measured().values()) for r in runs]
        for name, shown_how, outs in rows:
            inside = "yes" if name in fitted and shown_how == "logged placement" else "no"
            print(
                f"| {name} ({shown_how}) | {len(runs)} | {inside} | {_spread(measured_p50)} | "
                f"{_spread([p50_ms(_ttfts(o)) for o in outs])} | {_spread(measured_mean)} | "
                f"{_spread([mean_ms(_ttfts(o)) for o in outs])} | {_spread([_hit_share(o) for o in outs])} |"
            )


def hit_mode(requests: Sequence[SimRequest], runs: Sequence[LoggedRun], cost: CostModel) -> None:
    """Measured TTFT of the requests that found (nearly) all their prompt cached, against 0.8x the p50.

    If a router's TTFT p50 is to be 0.8x another's, more than half of all requests must come in under
    that line; when even requests that hit the cache seldom do, placement cannot get there.
    """
    hits: list[float] = []
    p50s: list[float] = []
    for run in runs:
        jobs = Simulation(requests, 2, cost).run(Forced(run.placement() or {}))
        measured = run.measured()
        p50s.append(p50_ms(m.ttft_s or 0.0 for m in measured.values()))
        for k, m in measured.items():
            job = jobs.get(k)
            if job is not None and len(job.req.tokens) - (job.cached_tokens or 0) <= cost.block_size:
                hits.append(1000 * (m.ttft_s or 0.0))
    if not hits:
        return
    line = 0.8 * statistics.median(p50s)
    under = sum(h <= line for h in hits) / len(hits)
    quartiles = statistics.quantiles(hits, n=4)
    can_hit = sum(u <= cost.block_size for u in floor_uncached(requests, cost.block_size).values())
    share = can_hit / len(requests)
    print(
        f"measured TTFT of cache hits (at most one block to compute; {len(hits)} requests): p25 {quartiles[0]:.1f}, "
        f"median {quartiles[1]:.1f}, p75 {quartiles[2]:.1f} ms; 0.8x these runs' p50 is {line:.1f} ms, which "
        f"{100 * under:.0f} % of them beat. Under any placement at most {can_hit} of {len(requests)} requests "
        f"can be such hits (every earlier block cached), so if hits stay this fast, about "
        f"{100 * share * under:.0f} % of requests come in under the line (a p50 there needs 50 %)"
    )


def main() -> str:
    """Calibrate per bench session, validate, compare; returns the headroom line."""
    from transformers import AutoTokenizer

    quick = bool(os.environ.get("GROVE_BENCH_HEADROOM_QUICK"))
    logs = Path(os.environ.get("GROVE_BENCH_HEADROOM_LOGS", str(CACHE / "logs")))
    tokenizer = AutoTokenizer.from_pretrained(str(ROOT / ".cache" / "bench-model"))
    path = trace_path()
    records = load_mooncake(path)
    busy = sim_requests(mooncake_to_trace(records, FULL.mooncake), tokenizer, "m")
    rates = {f"{FULL.mooncake.time_compression:g}x": busy}
    if FULL.mooncake_light is not None:  # a run under the busy code may have been replayed at this rate
        light_m = sim_requests(mooncake_to_trace(records, FULL.mooncake_light), tokenizer, "m")
        rates[f"{FULL.mooncake_light.time_compression:g}x"] = light_m
    start = CostModel(
        step_s=0.005,
        prefill_token_s=0.0002,
        decode_seq_s=0.0005,
        overhead_s=0.002,
        capacity_blocks=FULL.blocks,
        block_size=BLOCK_SIZE,
    )
    spans = {rate: max(r.arrival_s for r in reqs) for rate, reqs in rates.items()}
    sessions: dict[tuple[datetime, str], list[LoggedRun]] = {}
    for run in logged_runs(logs, "m"):
        if run.workers is None or run.workers.blocks != FULL.blocks:
            continue
        # the log does not name the compression (GROVE_BENCH_ROUTING_TIME_COMPRESSION replays either
        # rate under the busy code); the run's length does: the rate whose trace span is closest
        seconds = run.seconds
        rate = min(spans, key=lambda r: abs(spans[r] - seconds)) if seconds is not None else next(iter(rates))
        sessions.setdefault((run.workers.at, rate), []).append(run)
    calibrated: list[tuple[datetime, CostModel, list[str], float]] = []
    uncalibrated: list[tuple[datetime, str, list[LoggedRun]]] = []
    for (at, rate), group in sorted(sessions.items()):
        known = [r for r in group if r.placement() is not None]
        requests = rates[rate]
        print(
            f"\n=== bench session of workers started {at:%m-%d %H:%M} UTC, replayed at {rate} "
            f"(by the runs' length): {len(group)} logged runs"
        )
        if not known:
            print("no run with a known placement: validated below with the nearest session's constants")
            uncalibrated.append((at, rate, group))
            continue
        fitted = sorted({r.label for r in known})
        coef, r2, rmse, n = linear_fit(requests, known, start)
        print(
            f"least squares over {n} requests of {', '.join(fitted)}: TTFT = {1000 * coef[0]:.1f} ms "
            f"+ {1e6 * coef[1]:.1f} us x uncached token + {1e6 * coef[2]:.1f} us x token prefilled ahead "
            f"+ {1000 * coef[3]:.2f} ms x request decoding; R^2 {r2:.2f}, RMSE {1000 * rmse:.1f} ms"
        )
        seed = start.model_copy(update={"prefill_token_s": max(coef[1], 1e-5)})
        cost = calibrate(requests, known, seed, rounds=3 if quick else 6)
        print("model constants: " + ", ".join(f"{n} {1000 * getattr(cost, n):.3f} ms" for n in FITTED))
        ttft_err, e2e_err, measured, e2e = _errors(requests, known, cost)
        print(f"model fit, TTFT: {_error_line(ttft_err, measured)}")
        print(f"  end-to-end time (not fitted): {_error_line(e2e_err, e2e)}")
        _validate(group, cost, requests, set(fitted))
        hit_mode(requests, known, cost)
        error = statistics.median(abs(e) / m for e, m in zip(ttft_err, measured, strict=True) if m > 0)
        calibrated.append((at, cost, list(group[0].workers.urls) if group[0].workers else [], error))
    if not calibrated:
        print("no routing-bench logs with a known placement: run `make bench-routing` first")
        return "headroom_oracle_ttft_p50_vs_consistent_hash=nan"
    for at, rate, group in uncalibrated:
        near = min(calibrated, key=lambda c: abs((c[0] - at).total_seconds()))
        print(
            f"\n=== session {at:%m-%d %H:%M} (replayed at {rate}) with the constants of "
            f"{near[0]:%m-%d %H:%M} (out of sample)"
        )
        _validate(group, near[1], rates[rate], set())
    best_fit = min(calibrated, key=lambda c: c[3])
    line = ""
    for at, cost, urls, error in calibrated:
        results = compare(
            busy,
            2,
            cost,
            f"Mooncake busy ({FULL.mooncake.time_compression:g}x), constants of {at:%m-%d %H:%M} "
            f"(fit: median |error|/measured {error:.2f})",
            rollout=not quick,
            urls=urls,
        )
        base = results["consistent_hash"]
        oracles = {k: v for k, v in results.items() if k.startswith("oracle")}
        best = min(oracles, key=lambda k: p50_ms(_ttfts(oracles[k])))
        explain_moves(oracles[best], base, best)
        if at == best_fit[0]:
            base_p50 = p50_ms(_ttfts(base))
            line = (
                f"headroom_oracle_ttft_p50_vs_consistent_hash={p50_ms(_ttfts(oracles[best])) / base_p50:.2f} "
                f"headroom_floor_ttft_p50_vs_consistent_hash={p50_ms(floor_ttfts(busy, cost).values()) / base_p50:.2f} "
                f"headroom_prefix_ttft_p50_vs_consistent_hash="
                f"{p50_ms(_ttfts(results['prefix (real policy)'])) / base_p50:.2f}"
            )
            print("(the headroom line below is the model's, with the constants of this session)")
    if not quick:
        cost = best_fit[1]
        print(
            f"\n=== other scenarios, with the constants of the best-fitted session {best_fit[0]:%m-%d %H:%M}"
        )
        if FULL.mooncake_light is not None:
            light = sim_requests(mooncake_to_trace(records, FULL.mooncake_light), tokenizer, "l")
            compare(
                light, 2, cost, f"Mooncake light ({FULL.mooncake_light.time_compression:g}x)", rollout=True
            )
        agentic = sim_requests(generate_trace(**FULL.agentic), tokenizer, "a")
        compare(agentic, 2, cost, "agentic trace (closed loop)")
        for workers in (4, 8):
            compare(busy, workers, cost, f"Mooncake busy, {workers} workers (same rate)")
            faster = MooncakeReplay.model_validate(
                {
                    **FULL.mooncake.model_dump(),
                    "time_compression": FULL.mooncake.time_compression * workers / 2,
                }
            )
            scaled = sim_requests(mooncake_to_trace(records, faster), tokenizer, "m")
            compare(
                scaled,
                workers,
                cost,
                f"Mooncake, {workers} workers, rate x{workers / 2:g} (same load per worker)",
            )
    print(line, flush=True)
    return line


if __name__ == "__main__":
    main()
