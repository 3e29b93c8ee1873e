"""Routing quality on a public production trace and on an agentic trace, with real vLLM and bounded caches.

Two aggregated vLLM CPU workers (one core each) serve a bench-sized model from the tiny-model
generator (hidden 512, 4 layers: prefill costs what it costs on GPUs, relatively; the default tiny
model's prefill is nearly free, which would measure only the routers' own overhead). Each worker
caches in 32-token blocks (``--block-size 32``; the CPU default of 128 hides most shared prefixes of
a scaled-down trace) and holds at most ``blocks`` of them (``--num-gpu-blocks-override``), so
capacity matters; each publishes its KV-cache events on ZMQ. Before round 0 each worker answers a
short warm-up (``WARM_UP``, salted apart, not counted), so no target meets a worker's first requests.

Traces (``trace_routing.py`` runs them; every target ``runs`` times in rotated order, medians with
spread, errors counted, reuse against an oracle with the same cache size):

* a sample of the conversations of the Mooncake FAST'25 trace (``../shared/data/
  mooncake_synthetic_trace.jsonl``, or any file in that format named by ``GROVE_BENCH_TRACE``): one
  conversation in 20 over its whole 17 minutes, turned into prompts by ``mooncake_trace.py`` (a
  512-token trace block becomes 91 characters, about 32 tokens: one KV block), replayed twice: time
  compressed 8x (about 1.9 requests a second: light, the workers seldom queue) and 16x (about 3.9:
  busy, queues form and a router must weigh cache against load; the headline line). At small scale,
  one in 60, 40x, once;
* the project's agentic trace (``agentic_trace.py``: agents' shared system prompts, growing histories).

Beside the p50 ratios, each suite prints a paired statistic (``..._paired_ttft_vs_...``): the geometric
mean over requests of one target's TTFT over the other's for the same request in the same round.

Targets: our router with ``round_robin``, with ``prefix`` (precise: the workers' KV events and
the model's tokenizer; sticky until saturated) and with ``prefix`` on its routing estimate alone
(``router prefix estimate``: no tokenizing, no events; what precise state is worth over it), with
affinity bounded by cost (``router prefix bounded``: ``affinity_slack`` 2 blocks) and with whole
prompts counted as load (``router prefix prompt-load``: ``load_counts: prompt``, the accounting
before uncached tokens) and with session affinity off (``router prefix no-session``: what the session
key is worth over the precise cache state alone), these four only when ``GROVE_BENCH_ROUTING_TARGETS``
names them, and vllm-router 0.1.17 with ``round_robin``,
``cache_aware``, ``consistent_hash`` (keyed by the ``x-session-id`` header the replay sends: the
Mooncake request's root block, or the agentic session) and ``power_of_two``. (Its ``kv_aware`` mode
takes events only from ``tcp://HOST:PORT`` endpoints, which vLLM binds only on every interface;
the workers here publish on ``ipc://`` sockets, so it is left out.)

Then the pipeline-level comparison: the agentic trace's sessions run as pipeline runs through the
pipeline server (each run's LLM calls carry its session automatically) in front of our router with
``prefix``, against the same router with session affinity off (at least ``PIPELINE_ROUNDS`` rounds;
the ratio is the median of the rounds' own ratios).

Ends with ``agentic_prefix_ttft_p50_vs_round_robin=... agentic_prefix_ttft_p50_vs_best_vllm_router=...
agentic_reuse_captured=...``, ``pipeline_session_e2e_p50_vs_without=...``, the light rate's ``trace_light_prefix_...`` and, last,
the busy rate's ``trace_prefix_ttft_p50_vs_round_robin=<r> trace_prefix_ttft_p50_vs_best_vllm_router=<r>
reuse_captured=<share>``.

Scale: ``full`` by default (``make bench``, or only this with ``make bench-routing``), or
``GROVE_BENCH_ROUTING_SCALE=small``, which proves the machinery in a fraction of the time (its
numbers are noise). A reduced run may name its parts: ``GROVE_BENCH_ROUTING_SUITES`` (comma list of
``agentic``, ``pipeline``, ``mooncake``; default all) and ``GROVE_BENCH_ROUTING_TARGETS`` (comma list
of target labels, e.g. ``router prefix,vllm-router round_robin``; default all), and
``GROVE_BENCH_ROUTING_TIME_COMPRESSION`` replays the Mooncake window once, at that compression. A
ratio line whose baseline did not run says ``nan``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from runtime.engines.supervisor import free_port
from tests.bench.agentic_trace import Trace, generate_trace, replay
from tests.bench.mooncake_trace import MooncakeReplay, load_mooncake, mooncake_to_trace
from tests.bench.router_bench import CACHE, HOST, ROOT, our_router, process, vllm_router, vllm_router_binary
from tests.bench.trace_routing import (
    Target,
    best_vllm_router,
    oracle_hits,
    paired_ratio_line,
    ratio_line,
    reusable_ratio_line,
    run_suite,
    summarize_target,
    table,
    tag_of,
)

BLOCK_SIZE = 32


class Scale(BaseModel):
    """How big one benchmark run is."""

    runs: int
    blocks: int  # KV blocks per worker
    mooncake: MooncakeReplay
    mooncake_light: MooncakeReplay | None
    """The same window at a lower rate (None: not run), where the workers seldom queue."""
    agentic: dict[str, Any]
    pipeline_sessions: int


FULL = Scale(
    runs=3,
    blocks=256,
    mooncake=MooncakeReplay(
        sample_every=20, time_compression=16, block_chars=91, max_blocks=24, max_tokens=16
    ),
    mooncake_light=MooncakeReplay(
        sample_every=20, time_compression=8, block_chars=91, max_blocks=24, max_tokens=16
    ),
    agentic={
        "sessions": 24,
        "turns": 4,
        "agents": 3,
        "rate_per_s": 1.5,
        "system_words": 150,
        "turn_words": 30,
        "reply_words": 90,
        "max_tokens": 16,
        "max_prompt_chars": 4800,
        "seed": 0,
    },
    pipeline_sessions=24,
)
SMALL = FULL.model_copy(
    update={
        "blocks": 96,
        "mooncake": FULL.mooncake.model_copy(
            update={"sample_every": 60, "time_compression": 40, "max_blocks": 16, "max_tokens": 8}
        ),
        "mooncake_light": None,
        "agentic": {
            **FULL.agentic,
            "sessions": 6,
            "turns": 3,
            "agents": 2,
            "reply_words": 60,
            "max_tokens": 8,
        },
        "pipeline_sessions": 6,
    }
)
SCALES = {"small": SMALL, "full": FULL}

DIAGNOSTIC = {
    "router prefix estimate",
    "router prefix bounded",
    "router prefix prompt-load",
    "router prefix no-session",
}
"""Targets that answer a question about ``router prefix`` (what precise state, a cost bound, counting
only uncached prompt tokens as load are worth): run when named."""

BENCH_MODEL = {"hidden_size": 512, "num_layers": 4, "num_heads": 8}


def _in_arrival_order(trace: Trace) -> list[Any]:
    """The trace's requests in arrival order (sessions by arrival, turns in order)."""
    return [turn for session in sorted(trace.sessions, key=lambda s: s.arrival_s) for turn in session.turns]


def request_keys(trace: Trace) -> list[tuple[str, int]]:
    """Each request's :func:`request_key`, in arrival order (as :func:`tokenize_trace` gives prompts)."""
    return [(turn.session_id, turn.turn) for turn in _in_arrival_order(trace)]


def tokenize_trace(tokenizer: Any, trace: Trace) -> list[list[int]]:
    """Every request's prompt tokens in arrival order (sessions by arrival, turns in order)."""
    prompts = []
    for turn in _in_arrival_order(trace):
        ids = tokenizer.apply_chat_template(turn.messages, add_generation_prompt=True, tokenize=True)
        prompts.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return prompts


def targets(
    vr: Path | None, urls: list[str], events: dict[str, str], model: Path, blocks: int
) -> list[Target]:
    """Our two policies and vllm-router's four, each on a free port."""
    workers = [a for u in urls for a in ("--worker", u)]
    precise = {
        "tokenizer": str(model),
        "kv_events": events,
        "kv_block_size": BLOCK_SIZE,
        "saturate_in_flight": 4,
    }
    folder = Path(tempfile.mkdtemp(prefix="grove-bench-"))
    configs = {
        "router prefix": precise,
        "router prefix bounded": {**precise, "affinity_slack": 2},
        "router prefix estimate": {"saturate_in_flight": 4},
        "router prefix prompt-load": {**precise, "load_counts": "prompt"},
        "router prefix no-session": {**precise, "session_weight": 0},
    }
    out = [
        Target(
            label="router round_robin",
            ours=True,
            argv=our_router([*workers, "--policy", "round_robin"], free_port())[1],
        )
    ]
    for i, (label, params) in enumerate(configs.items()):
        config = folder / f"prefix-{i}.json"
        # debug: the decision header (worker, reason) lands in each request's result
        policy = {"name": "prefix", "params": params}
        config.write_text(json.dumps({"worker": urls, "debug": True, "policy": policy}))
        out.append(Target(label=label, ours=True, argv=our_router(["--config", str(config)], free_port())[1]))
    if vr is None:
        return out
    for policy in ("round_robin", "cache_aware", "consistent_hash", "power_of_two"):
        argv = vllm_router(vr, ["--worker-urls", *urls, "--policy", policy], free_port())[1]
        out.append(Target(label=f"vllm-router {policy}", ours=False, argv=argv))
    return out


def suite(
    name: str,
    code: str,
    trace: Trace,
    tgts: list[Target],
    urls: list[str],
    tokenizer: Any,
    scale: Scale,
    logs: Path,
    prefix: str,
) -> str:
    """One trace through every target; the table, the reusable requests' ratios, and the ratio line."""
    prompts = tokenize_trace(tokenizer, trace.salted(tag_of(code, 0, 0)))
    hits = oracle_hits(prompts, BLOCK_SIZE, 2 * scale.blocks)
    oracle = (sum(hits), sum(len(p) for p in prompts))
    reusable = {k for k, hit in zip(request_keys(trace), hits, strict=True) if hit}
    results = run_suite(
        f"{name}: {len(trace.requests())} requests", code, trace, tgts, urls, logs, scale.runs, reusable
    )
    summaries = [s for t in tgts if (s := summarize_target(t, results, oracle[0])) is not None]
    print("\n" + table(summaries, oracle, len(reusable), len(prompts)), flush=True)
    print(f"(best vllm-router on {name}: {best_vllm_router(summaries)})", flush=True)
    print(reusable_ratio_line(prefix, summaries, "router prefix", "router round_robin"), flush=True)
    print(paired_ratio_line(prefix, results, summaries, "router prefix", "router round_robin"), flush=True)
    return ratio_line(prefix, summaries, "router prefix", "router round_robin")


async def _pipeline_runs(server_url: str, trace: Trace) -> list[float]:
    """Each session as one pipeline run at its arrival time; the runs' end-to-end seconds."""
    out: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        start = time.perf_counter()

        async def one(session: Any) -> None:
            delay = session.arrival_s - (time.perf_counter() - start)
            if delay > 0:
                await asyncio.sleep(delay)
            body = {"turns": [t.messages for t in session.turns], "max_tokens": session.turns[0].max_tokens}
            began = time.perf_counter()
            async with http.post(f"{server_url}/v1/pipelines/agent-session", json=body) as r:
                await r.read()
                if r.status == 200:
                    out.append(time.perf_counter() - began)

        await asyncio.gather(*(one(s) for s in trace.sessions))
    return out


PIPELINE_ROUNDS = 5
"""Rounds of the pipeline comparison (each runs both routers, in alternating order): on a loaded
machine one side's e2e p50 moved from 1.4 to 3.8 s between rounds of the same configuration, so the
ratio is taken within each round and the median of those ratios is reported."""


def pipeline_suite(trace: Trace, urls: list[str], runs: int, logs: Path) -> str:
    """Runs of the agentic pipeline through the pipeline server: run sessions on vs session affinity off."""
    runs = max(runs, PIPELINE_ROUNDS)
    cli = str(Path(sys.executable).parent / "grove-pipelines")
    module = ROOT / "tests" / "bench" / "agent_session_pipeline.py"
    rows: dict[str, list[float]] = {"with run sessions": [], "without": []}
    print(
        "\npipeline runs through the pipeline server (e2e per run)\n| round | router | e2e p50 ms | runs ok |\n|---|---|---|---|"
    )
    labels = list(rows)
    for round_ in range(runs):
        for label in labels[round_ % 2 :] + labels[: round_ % 2]:
            weight = 2.0 if label == "with run sessions" else 0.0
            config = Path(tempfile.mkdtemp(prefix="grove-bench-")) / "router.json"
            params = {"session_weight": weight, "fanout_weight": 0.0}
            config.write_text(json.dumps({"worker": urls, "policy": {"name": "prefix", "params": params}}))
            rport, sport = free_port(), free_port()
            router_argv = our_router(["--config", str(config)], rport)[1]
            server_argv = [cli, "serve", f"{module}:agent-session", "--host", HOST, "--port", str(sport)]
            env_llm = f"http://{HOST}:{rport}"
            os.environ["GP_LLM_URL_AGENT"] = env_llm
            salted = trace.salted(tag_of("p", round_, labels.index(label)))
            with (
                process(
                    "router",
                    router_argv,
                    f"{env_llm}/health",
                    logs / f"pipeline-router-{round_}-{weight:g}.log",
                ),
                process(
                    "server",
                    server_argv,
                    f"http://{HOST}:{sport}/health",
                    logs / f"pipeline-server-{round_}-{weight:g}.log",
                ),
            ):
                seconds = asyncio.run(_pipeline_runs(f"http://{HOST}:{sport}", salted))
            p50 = 1000 * statistics.median(seconds) if seconds else float("nan")
            rows[label].append(p50)
            print(f"| {round_} | {label} | {p50:.0f} | {len(seconds)}/{len(trace.sessions)} |", flush=True)
    paired = [a / b for a, b in zip(rows["with run sessions"], rows["without"], strict=True)]
    print("with / without, round by round: " + " ".join(f"{r:.2f}" for r in paired), flush=True)
    return f"pipeline_session_e2e_p50_vs_without={statistics.median(paired):.2f}"


WARM_UP = {"sessions": 4, "turns": 2}
"""The warm-up before round 0, per worker (the agentic trace's shape, this many sessions and turns)."""


def warm_up(urls: list[str], trace: Trace) -> None:
    """Each worker answers a few requests before round 0, so no target meets a worker's first requests
    (one-time costs); they are salted apart, so no later run reuses what they leave cached."""
    for i, url in enumerate(urls):
        results = asyncio.run(replay(trace.salted(tag_of("w", 0, i)), url, "tiny", timeout_s=300))
        errors = sum(r.status != 200 for r in results)
        print(f"warm-up on worker {i}: {len(results)} requests, {errors} errors (not counted)", flush=True)


def trace_path() -> Path:
    """The Mooncake-format trace to replay: ``GROVE_BENCH_TRACE``, else the shared sample."""
    default = ROOT.parent / "shared" / "data" / "mooncake_synthetic_trace.jsonl"
    return Path(os.environ.get("GROVE_BENCH_TRACE", str(default)))


def _names(variable: str) -> set[str]:
    """The comma-separated names in an environment variable (empty: not set)."""
    return {n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()}


def main() -> None:
    """Start the workers, run both traces and the pipeline comparison, print the ratio lines."""
    from transformers import AutoTokenizer

    from grove_pipelines.local.tiny_model import write_tiny_model
    from runtime.engines.vllm import VLLMConfig, VLLMProcess, start_together

    scale_name = os.environ.get("GROVE_BENCH_ROUTING_SCALE", "full")
    scale = SCALES[scale_name]
    suites = _names("GROVE_BENCH_ROUTING_SUITES") or {"agentic", "pipeline", "mooncake"}
    wanted_targets = _names("GROVE_BENCH_ROUTING_TARGETS")
    logs = CACHE / "logs"
    started = time.monotonic()
    vr = vllm_router_binary()
    model = write_tiny_model(ROOT / ".cache" / "bench-model", **BENCH_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    path = trace_path()
    # (line prefix, log code, window): the light rate first, so the headline (busy) line comes last
    replays = [("trace_prefix", "m", scale.mooncake)]
    if scale.mooncake_light is not None:
        replays.insert(0, ("trace_light_prefix", "l", scale.mooncake_light))
    compression = os.environ.get("GROVE_BENCH_ROUTING_TIME_COMPRESSION")
    if compression:  # one rate only, the one named
        try:
            one = MooncakeReplay.model_validate(
                {**scale.mooncake.model_dump(), "time_compression": compression}
            )
        except ValueError:
            raise SystemExit("GROVE_BENCH_ROUTING_TIME_COMPRESSION must be a number above 0") from None
        replays = [("trace_prefix", "m", one)]
    records = load_mooncake(path)
    agentic = generate_trace(**scale.agentic)
    sockets = Path(tempfile.mkdtemp(prefix="grove-kv-"))
    events = [f"ipc://{sockets / f'w{i}.sock'}" for i in range(2)]
    procs = [
        VLLMProcess(
            VLLMConfig(
                model=model,
                cpu_bind=str(i),
                extra_args=(
                    "--block-size",
                    str(BLOCK_SIZE),
                    "--num-gpu-blocks-override",
                    str(scale.blocks),
                    "--kv-events-config",
                    json.dumps({"enable_kv_cache_events": True, "publisher": "zmq", "endpoint": events[i]}),
                ),
            ),
            log_dir=logs,
            name=f"vllm-bench-{i}",
        )
        for i in range(2)
    ]
    print(
        f"routing bench, scale {scale_name}: {scale.runs} runs per target, {scale.blocks} blocks of {BLOCK_SIZE} tokens per worker",
        flush=True,
    )
    lines = []
    try:
        start_together(procs, 480)
        urls = [p.url for p in procs]
        warm_up(urls, generate_trace(**{**scale.agentic, **WARM_UP}))
        tgts = targets(vr, urls, dict(zip(urls, events, strict=True)), model, scale.blocks)
        tgts = [
            t for t in tgts if t.label in wanted_targets or (not wanted_targets and t.label not in DIAGNOSTIC)
        ]
        if "agentic" in suites:
            lines.append(
                suite("agentic trace", "a", agentic, tgts, urls, tokenizer, scale, logs, "agentic_prefix")
            )
        if "pipeline" in suites:
            pipe_trace = generate_trace(**{**scale.agentic, "sessions": scale.pipeline_sessions})
            try:
                lines.append(pipeline_suite(pipe_trace, urls, scale.runs, logs))
            except RuntimeError as exc:
                print(f"pipeline comparison did not run: {exc}", flush=True)
        for line_prefix, code, window in replays if "mooncake" in suites else []:
            trace = mooncake_to_trace(records, window)
            span = max((s.arrival_s for s in trace.sessions), default=0.0)
            rate = len(trace.sessions) / span if span else float("nan")
            name = f"Mooncake trace ({path.name}, time {window.time_compression:g}x, {rate:.1f} req/s)"
            lines.append(suite(name, code, trace, tgts, urls, tokenizer, scale, logs, line_prefix))
    finally:
        for proc in procs:
            proc.stop()
    print(
        f"\nrouting bench took {time.monotonic() - started:.0f} s (timings on a shared machine are noisy)",
        flush=True,
    )
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
