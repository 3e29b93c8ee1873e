"""Routing on a replayed trace, the way a skeptic would accept it: bounded caches, repeated rotated runs, an oracle.

One *suite* is a trace replayed through several routing *targets* in front of the same two real vLLM
workers. Every target runs ``runs`` times; round r starts the target list at position r, so no target
always runs first (on a warm machine) or last. Each run is salted (a fixed-width tag at the start of
every prompt), so no run reuses the cache another left; the workers' caches are bounded (block size
and block count), so evictions happen. Per run: TTFT p50/p90 (streamed), errors, and the prompt
tokens the workers found in their prefix caches (their own ``/metrics``); every request's result
(TTFT, the router's decision header) is kept beside the run's log as ``.results.json``.

The *oracle* replays the same prompts, tokenized with the model's tokenizer, into one LRU cache of
both workers' blocks together: the reuse any placement of these requests on these two caches could
hope for (it ignores that concurrent requests cannot share blocks not yet computed, so it is an upper
bound). ``reuse_captured`` is a target's cached tokens over the oracle's. The oracle also says which
requests are *reusable* (it finds at least one block of theirs cached): the others (first turns,
prompts nothing before shared) are computed in full whatever the routing, so a target's TTFT p50
over the reusable requests alone is shown too, which is where a cache-aware router can win.

A target's summary is the median of its runs with the spread (min-max); a target with errors does
not win a comparison.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from runtime.router.cache_stats import WorkerCacheStats, parse_vllm_metrics
from runtime.router.policies.cache.kv_index import chain_keys
from tests.bench.agentic_trace import RequestResult, Summary, Trace, replay, summarize
from tests.bench.router_bench import HOST, process

__all__ = [
    "RunResult",
    "Target",
    "TargetSummary",
    "best_vllm_router",
    "oracle_hit_tokens",
    "oracle_hits",
    "paired_key",
    "paired_ratio_line",
    "paired_ttft_ratio",
    "ratio_line",
    "request_key",
    "reusable_ratio_line",
    "reusable_ttft_p50_ms",
    "run_suite",
    "summarize_target",
    "table",
]


class Target(BaseModel):
    """A router to replay through: a label, whose it is, and how to start it on a port."""

    label: str
    ours: bool
    argv: list[str]

    @property
    def port(self) -> int:
        return int(self.argv[self.argv.index("--port") + 1])


class RunResult(BaseModel):
    """One replay of one target."""

    label: str
    round: int
    summary: Summary | None
    hit_tokens: float = 0.0
    query_tokens: float = 0.0
    reusable_ttft_p50_ms: float = float("nan")
    ttft_by_request: dict[str, float] = {}
    """Each answered request's TTFT in seconds, by :func:`paired_key` (for the paired comparison)."""
    failure: str | None = None


class TargetSummary(BaseModel):
    """A target over its runs: medians, spreads, errors, reuse against the oracle."""

    label: str
    ours: bool
    runs: int
    errors: int
    ttft_p50_ms: float
    ttft_p50_min: float
    ttft_p50_max: float
    ttft_p90_ms: float
    reusable_ttft_p50_ms: float
    hit_share: float
    reuse_captured: float


def _stats(urls: list[str]) -> list[WorkerCacheStats | None]:
    out = []
    for url in urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            out.append(parse_vllm_metrics(r.read().decode()))
    return out


def _delta(
    before: list[WorkerCacheStats | None], after: list[WorkerCacheStats | None]
) -> tuple[float, float]:
    hits = queries = 0.0
    for b, a in zip(before, after, strict=True):
        if a is not None and b is not None:
            hits += a.prefix_hits - b.prefix_hits
            queries += a.prefix_queries - b.prefix_queries
    return hits, queries


def oracle_hit_tokens(prompts: list[list[int]], block_size: int, capacity_blocks: int) -> tuple[int, int]:
    """``(cached, total)`` prompt tokens of one LRU cache of ``capacity_blocks`` fed the prompts in order."""
    hits = oracle_hits(prompts, block_size, capacity_blocks)
    return sum(hits), sum(len(tokens) for tokens in prompts)


def oracle_hits(prompts: list[list[int]], block_size: int, capacity_blocks: int) -> list[int]:
    """Each prompt's cached tokens in one LRU cache of ``capacity_blocks`` fed the prompts in order.

    As vLLM does: a prompt hits its leading cached full blocks (never its last token), then all its
    full blocks are cached (most recently used), the least recently used evicted beyond capacity.
    """
    lru: OrderedDict[int, None] = OrderedDict()
    out = []
    for tokens in prompts:
        keys = chain_keys(tokens, block_size)
        usable = keys[: max(0, (len(tokens) - 1) // block_size)]
        hit = 0
        for key in usable:
            if key not in lru:
                break
            hit += 1
        out.append(hit * block_size)
        for key in keys:
            lru[key] = None
            lru.move_to_end(key)
        while len(lru) > capacity_blocks:
            lru.popitem(last=False)
    return out


def request_key(session_id: str, turn: int) -> tuple[str, int]:
    """A request's identity across salted runs: its session id without the run's tag, and its turn."""
    return session_id.split("-", 1)[1] if "-" in session_id else session_id, turn


def paired_key(session_id: str, turn: int) -> str:
    """:func:`request_key` as one string (a JSON object key)."""
    session, turn = request_key(session_id, turn)
    return f"{session}#{turn}"


def paired_ttft_ratio(results: list[RunResult], ours: str, theirs: str) -> tuple[float, int]:
    """Geometric mean over requests of ``ours``' TTFT over ``theirs``', same request in the same round; and the pairs.

    A p50 of run medians moves with where the median request falls (cached ones take tens of
    milliseconds, cold ones hundreds); pairing each request with itself under the other router, in
    the same round, compares every request and leaves out what the two runs share.
    """
    by_round: dict[tuple[str, int], dict[str, float]] = {
        (r.label, r.round): r.ttft_by_request for r in results if r.summary is not None
    }
    logs = []
    for (label, round_), mine in by_round.items():
        other = by_round.get((theirs, round_))
        if label != ours or other is None:
            continue
        logs += [math.log(mine[k] / other[k]) for k in mine.keys() & other.keys() if mine[k] > 0 < other[k]]
    return (math.exp(statistics.fmean(logs)), len(logs)) if logs else (float("nan"), 0)


def reusable_ttft_p50_ms(results: list[RequestResult], reusable: set[tuple[str, int]]) -> float:
    """TTFT p50 (ms) over the answered requests the oracle finds a cached prefix for (nan: none)."""
    ttfts = [
        r.ttft_s * 1000
        for r in results
        if r.ttft_s is not None and request_key(r.session_id, r.turn) in reusable
    ]
    return statistics.median(ttfts) if ttfts else float("nan")


def tag_of(trace_code: str, round_: int, index: int) -> str:
    """A fixed-width salt, so every run's prompts have the same length as the oracle's."""
    return f"{trace_code}{round_:02d}{index:02d}"


def run_suite(
    title: str,
    trace_code: str,
    trace: Trace,
    targets: list[Target],
    workers: list[str],
    logs: Path,
    runs: int,
    reusable: set[tuple[str, int]] | None = None,
    print_row: Callable[[str], None] = print,
) -> list[RunResult]:
    """Every target ``runs`` times in rotated order; one row per run as it finishes.

    ``reusable``: the requests (:func:`request_key`) the oracle finds a cached prefix for.
    """
    print_row(
        f"\n{title}\n| round | target | TTFT p50 ms | reusable TTFT p50 ms | TTFT p90 ms | errors | cache hit % | req/s |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    out: list[RunResult] = []
    for round_ in range(runs):
        shift = round_ % len(targets)
        for target in targets[shift:] + targets[:shift]:
            salted = trace.salted(tag_of(trace_code, round_, targets.index(target)))
            log = logs / f"routing-{trace_code}-{target.label.replace(' ', '-')}-{round_}.log"
            try:
                with process(target.label, target.argv, f"http://{HOST}:{target.port}/health", log):
                    before = _stats(workers)
                    started = time.perf_counter()
                    results = asyncio.run(
                        replay(salted, f"http://{HOST}:{target.port}", "tiny", timeout_s=300)
                    )
                    wall = time.perf_counter() - started
                    time.sleep(0.5)  # the last answers' counters
                    hits, queries = _delta(before, _stats(workers))
            except RuntimeError as exc:  # a router that does not start is a failed run, not a crash
                out.append(RunResult(label=target.label, round=round_, summary=None, failure=str(exc)))
                print_row(f"| {round_} | {target.label} | did not run: {exc} |")
                continue
            log.with_suffix(".results.json").write_text(
                json.dumps([r.model_dump() for r in results])
            )  # every request's TTFT and routing decision, for a look afterwards
            summary = summarize(results, wall)
            warm = reusable_ttft_p50_ms(results, reusable or set())
            out.append(
                RunResult(
                    label=target.label,
                    round=round_,
                    summary=summary,
                    hit_tokens=hits,
                    query_tokens=queries,
                    reusable_ttft_p50_ms=warm,
                    ttft_by_request={
                        paired_key(r.session_id, r.turn): r.ttft_s for r in results if r.ttft_s is not None
                    },
                )
            )
            share = 100 * hits / queries if queries else float("nan")
            print_row(
                f"| {round_} | {target.label} | {summary.ttft_p50_ms:.0f} | {warm:.0f} | {summary.ttft_p90_ms:.0f} | "
                f"{summary.errors} | {share:.1f} | {summary.req_per_s:.2f} |"
            )
    return out


def summarize_target(target: Target, results: list[RunResult], oracle_cached: int) -> TargetSummary | None:
    """Medians over the target's runs (None if it never ran); a failed run counts as errors."""
    mine = [r for r in results if r.label == target.label]
    done = [r for r in mine if r.summary is not None]
    if not done:
        return None
    p50s = [r.summary.ttft_p50_ms for r in done if r.summary is not None]
    p90s = [r.summary.ttft_p90_ms for r in done if r.summary is not None]
    errors = sum(r.summary.errors for r in done if r.summary is not None) + sum(
        r.summary is None for r in mine
    )
    hit_shares = [r.hit_tokens / r.query_tokens for r in done if r.query_tokens]
    captured = [r.hit_tokens / oracle_cached for r in done] if oracle_cached else [float("nan")]
    return TargetSummary(
        label=target.label,
        ours=target.ours,
        runs=len(done),
        errors=errors,
        ttft_p50_ms=statistics.median(p50s),
        ttft_p50_min=min(p50s),
        ttft_p50_max=max(p50s),
        ttft_p90_ms=statistics.median(p90s),
        reusable_ttft_p50_ms=statistics.median(r.reusable_ttft_p50_ms for r in done),
        hit_share=statistics.median(hit_shares) if hit_shares else float("nan"),
        reuse_captured=statistics.median(captured),
    )


def table(
    summaries: list[TargetSummary], oracle: tuple[int, int], reusable: int = 0, requests: int = 0
) -> str:
    """The per-target medians, with the oracle's share (and how many requests it finds reusable) on top."""
    cached, total = oracle
    lines = [
        (
            f"oracle (one LRU of both caches): {100 * cached / total if total else float('nan'):.1f} % of prompt tokens "
            f"cached; {reusable} of {requests} requests reusable (the rest are computed in full whatever the routing)"
        ),
        "| target | runs | TTFT p50 ms (min-max) | reusable TTFT p50 ms | TTFT p90 ms | errors | cache hit % | reuse captured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.label} | {s.runs} | {s.ttft_p50_ms:.0f} ({s.ttft_p50_min:.0f}-{s.ttft_p50_max:.0f}) | "
            f"{s.reusable_ttft_p50_ms:.0f} | {s.ttft_p90_ms:.0f} | {s.errors} | {100 * s.hit_share:.1f} | "
            f"{s.reuse_captured:.2f} |"
        )
    return "\n".join(lines)


def _ratios(
    summaries: list[TargetSummary], ours: str, baseline: str, metric: Callable[[TargetSummary], float]
) -> tuple[float, float]:
    """``metric`` of ``ours`` over ``baseline``'s and over the best vllm-router target's (nan if either is missing).

    A target with errors does not win: it is never the best vllm-router, and ours with errors gives nan.
    """
    by = {s.label: s for s in summaries}
    mine, base = by.get(ours), by.get(baseline)
    theirs = [s for s in summaries if not s.ours and s.errors == 0]
    best = min(theirs, key=metric) if theirs else None

    def over(a: TargetSummary | None, b: TargetSummary | None) -> float:
        if a is None or b is None or a.errors:
            return float("nan")
        return metric(a) / metric(b)

    return over(mine, base), over(mine, best)


def ratio_line(prefix: str, summaries: list[TargetSummary], ours: str, baseline: str) -> str:
    """``<prefix>_prefix_ttft_p50_vs_round_robin=... ..._vs_best_vllm_router=... reuse_captured=...``."""
    vs_base, vs_best = _ratios(summaries, ours, baseline, lambda s: s.ttft_p50_ms)
    mine = next((s for s in summaries if s.label == ours), None)
    captured = mine.reuse_captured if mine is not None else float("nan")
    reuse = (
        "reuse_captured" if prefix == "trace_prefix" else f"{prefix.removesuffix('_prefix')}_reuse_captured"
    )
    return (
        f"{prefix}_ttft_p50_vs_round_robin={vs_base:.2f} "
        f"{prefix}_ttft_p50_vs_best_vllm_router={vs_best:.2f} {reuse}={captured:.2f}"
    )


def best_vllm_router(summaries: list[TargetSummary]) -> str:
    """The label of the fastest vllm-router target without errors (what the ratio compares against)."""
    theirs = [s for s in summaries if not s.ours and s.errors == 0]
    return min(theirs, key=lambda s: s.ttft_p50_ms).label if theirs else "none"


def paired_ratio_line(
    prefix: str, results: list[RunResult], summaries: list[TargetSummary], ours: str, baseline: str
) -> str:
    """``ours`` against ``baseline`` and the best vllm-router target, request by request (:func:`paired_ttft_ratio`)."""
    vs_base, n_base = paired_ttft_ratio(results, ours, baseline)
    vs_best, n_best = paired_ttft_ratio(results, ours, best_vllm_router(summaries))
    return (
        f"{prefix}_paired_ttft_vs_round_robin={vs_base:.2f} ({n_base} pairs) "
        f"{prefix}_paired_ttft_vs_best_vllm_router={vs_best:.2f} ({n_best} pairs)"
    )


def reusable_ratio_line(prefix: str, summaries: list[TargetSummary], ours: str, baseline: str) -> str:
    """The same two ratios over the reusable requests only (where the cache can win)."""
    vs_base, vs_best = _ratios(summaries, ours, baseline, lambda s: s.reusable_ttft_p50_ms)
    return (
        f"{prefix}_reusable_ttft_p50_vs_round_robin={vs_base:.2f} "
        f"{prefix}_reusable_ttft_p50_vs_best_vllm_router={vs_best:.2f}"
    )
