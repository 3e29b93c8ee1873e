"""Routing quality on an agentic trace with real vLLM: prefix/session-aware routing vs the rest.

Two real vLLM CPU workers on the tiny model (aggregated, prefix caching on, one core each) serve one
agentic trace (``agentic_trace.py``: sessions of an agent type share a long system prompt and tool
text, histories grow turn by turn, Poisson arrivals) replayed through: our router with
``round_robin``, ``least_loaded`` and ``prefix``; vllm-router 0.1.17 with ``round_robin`` and
``cache_aware``. Each replay is salted (its own tag at the start of every prompt), so no run reuses
the cache another left. Then the same through the NIXL prefill/decode pair: our router always
disaggregating (``round_robin``), our router with ``prefix`` and conditional disaggregation (the
decode worker prefills itself when it probably holds the prefix), vllm-router in its P/D mode.

Prints one table per setup (TTFT p50/p90/p99, e2e p50, req/s, tokens/s, errors, and the share of
prompt tokens the workers found in their prefix cache, from their ``/metrics``) and ends with
``prefix_ttft_p50_vs_round_robin=<ratio> prefix_ttft_p50_vs_vllm_router_cache_aware=<ratio>``.
``python -m tests.bench routing`` runs only this; ``GROVE_BENCH_SKIP_PD=1`` skips the P/D part.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.request
from pathlib import Path

from runtime.engines.supervisor import free_port
from runtime.router.cache_stats import WorkerCacheStats, parse_vllm_metrics
from tests.bench.agentic_trace import Summary, Trace, generate_trace, replay, summarize
from tests.bench.router_bench import CACHE, HOST, ROOT, our_router, process, vllm_router, vllm_router_binary

# Agent loops: a shared system prompt plus tools, then a history that grows by a user turn and a long
# tool/assistant result per turn, so by the last turn most of the prompt is the session's own history.
TRACE = {
    "sessions": 24,
    "turns": 4,
    "agents": 3,
    "rate_per_s": 1.5,
    "system_words": 150,
    "turn_words": 30,
    "reply_words": 90,
    "max_tokens": 16,
    "max_prompt_chars": 4800,  # ~1.8k tokens of the tiny model's tokenizer: within its 2048 context
    "seed": 0,
}
HEADER = (
    "| target                      | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | e2e p50 ms | req/s | tok/s "
    "| errors | cache hit % |\n|---|---|---|---|---|---|---|---|---|"
)


def _stats(urls: list[str]) -> list[WorkerCacheStats | None]:
    out = []
    for url in urls:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            out.append(parse_vllm_metrics(r.read().decode()))
    return out


def _hit_share(before: list[WorkerCacheStats | None], after: list[WorkerCacheStats | None]) -> float:
    hits = queries = 0.0
    for b, a in zip(before, after, strict=True):
        if a is not None and b is not None:
            hits += a.prefix_hits - b.prefix_hits
            queries += a.prefix_queries - b.prefix_queries
    return 100 * hits / queries if queries else float("nan")


def run(label: str, argv: list[str], trace: Trace, workers: list[str], logs: Path) -> tuple[Summary, float]:
    """Start one router, replay the trace through it, stop it; the summary and the cache hit share."""
    port = int(argv[argv.index("--port") + 1])
    log = logs / f"routing-{label.replace(' ', '-')}.log"
    with process(label, argv, f"http://{HOST}:{port}/health", log):
        before = _stats(workers)
        started = time.perf_counter()
        results = asyncio.run(replay(trace, f"http://{HOST}:{port}", "tiny", timeout_s=300))
        wall = time.perf_counter() - started
        after = _stats(workers)
    return summarize(results, wall), _hit_share(before, after)


def row(label: str, s: Summary, hit: float) -> str:
    return (
        f"| {label:<27} | {s.ttft_p50_ms:>11.0f} | {s.ttft_p90_ms:>11.0f} | {s.ttft_p99_ms:>11.0f} | "
        f"{s.e2e_p50_ms:>10.0f} | {s.req_per_s:>5.2f} | {s.tokens_per_s:>5.0f} | {s.errors:>6} | {hit:>11.1f} |"
    )


def suite(
    title: str, targets: list[tuple[str, list[str]]], trace: Trace, workers: list[str], logs: Path
) -> dict[str, Summary]:
    """Replay the (salted) trace through each target in turn; print the table as rows come in."""
    print(f"\n{title}\n{HEADER}", flush=True)
    out: dict[str, Summary] = {}
    for i, (label, argv) in enumerate(targets):
        try:
            summary, hit = run(label, argv, trace.salted(f"run{i}"), workers, logs)
        except RuntimeError as exc:  # a router that does not start is reported, not fatal
            print(f"| {label:<27} | did not run: {exc} |", flush=True)
            continue
        out[label] = summary
        print(row(label, summary, hit), flush=True)
    return out


def _warm(urls: list[str], trace: Trace) -> None:
    """A few sessions of the trace straight to each worker, so the first measured run pays no warm-up."""
    warm = Trace(seed=trace.seed, sessions=trace.salted("warm").sessions[:4])
    for url in urls:
        asyncio.run(replay(warm, url, "tiny", timeout_s=300))


def aggregated(vr: Path | None, trace: Trace, logs: Path) -> dict[str, Summary]:
    """Two aggregated workers: our three policies and vllm-router's two."""
    from runtime.engines.tiny_model import write_tiny_model
    from runtime.engines.vllm import VLLMConfig, VLLMProcess

    model = write_tiny_model(ROOT / ".cache" / "tiny-model")
    procs = [
        VLLMProcess(VLLMConfig(model=model, cpu_bind=str(i)), log_dir=logs, name=f"vllm-worker-{i}")
        for i in range(2)
    ]
    print("starting two aggregated vLLM workers (1-3 min)", flush=True)
    try:
        for proc in procs:
            proc.launch()
        for proc in procs:
            proc.wait_ready(480)
        urls = [p.url for p in procs]
        _warm(urls, trace)
        workers = [a for u in urls for a in ("--worker", u)]
        targets = [
            (f"router {policy}", our_router([*workers, "--policy", policy], free_port())[1])
            for policy in ("round_robin", "least_loaded", "prefix")
        ]
        if vr is not None:
            targets += [
                (
                    f"vllm-router {policy}",
                    vllm_router(vr, ["--worker-urls", *urls, "--policy", policy], free_port())[1],
                )
                for policy in ("round_robin", "cache_aware")
            ]
        return suite("(a) two aggregated vLLM workers, agentic trace", targets, trace, urls, logs)
    finally:
        for proc in procs:
            proc.stop()


def disaggregated(vr: Path | None, trace: Trace, logs: Path) -> dict[str, Summary]:
    """The NIXL prefill/decode pair: always-disaggregate vs prefix-aware conditional disaggregation."""
    from runtime.engines.tiny_model import write_tiny_model
    from runtime.engines.vllm import start_pd_pair

    model = write_tiny_model(ROOT / ".cache" / "tiny-model")
    print("\nstarting the vLLM prefill/decode pair (1-3 min)", flush=True)
    with start_pd_pair(model, log_dir=logs) as pair:
        urls = [pair.prefill.url, pair.decode.url]
        _warm(urls, trace)
        pd = ["--prefill", pair.prefill.url, "--decode", pair.decode.url]
        targets = [
            ("router P/D always", our_router([*pd, "--policy", "round_robin"], free_port())[1]),
            (
                "router P/D prefix+cond.",
                our_router([*pd, "--policy", "prefix", "--conditional-disagg"], free_port())[1],
            ),
        ]
        if vr is not None:
            targets += [
                (
                    f"vllm-router P/D {policy}",
                    vllm_router(vr, ["--vllm-pd-disaggregation", *pd, "--policy", policy], free_port())[1],
                )
                for policy in ("round_robin", "cache_aware")
            ]
        return suite("(b) NIXL prefill/decode pair, same trace", targets, trace, urls, logs)


def main() -> None:
    """Both setups, the tables, and the ratio line."""
    logs = CACHE / "logs"
    vr = vllm_router_binary()
    trace = generate_trace(**TRACE)  # type: ignore[arg-type]
    print(
        f"trace: {len(trace.sessions)} sessions x {TRACE['turns']} turns, {len(trace.requests())} requests, "
        f"prompts up to {max(r.prompt_chars() for r in trace.requests())} chars, seed {TRACE['seed']}",
        flush=True,
    )
    agg = aggregated(vr, trace, logs)
    if os.environ.get("GROVE_BENCH_SKIP_PD") != "1":
        disaggregated(vr, trace, logs)

    def ratio(a: str, b: str) -> float:
        if a not in agg or b not in agg:
            return float("nan")
        return agg[a].ttft_p50_ms / agg[b].ttft_p50_ms

    print(
        f"prefix_ttft_p50_vs_round_robin={ratio('router prefix', 'router round_robin'):.2f} "
        f"prefix_ttft_p50_vs_vllm_router_cache_aware={ratio('router prefix', 'vllm-router cache_aware'):.2f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
