"""What the ``runtime.http`` layer alone costs, side by side with today's router and vllm-router 0.1.17.

Against the instant upstream (``fast_upstream``), aggregated mode, the same cores, every candidate
running at once and measured in interleaved rounds (the load others put on the machine shifts): direct to
the worker; the thinnest proxy on ``runtime.http`` (``http_proxy``) on uvloop and on the stock
asyncio loop (does uvloop pay?); our router as it is; vllm-router. Then each sidecar's start time
(spawn to the first ``/health`` 200) and resident memory after the load. Ends with
``http_layer_vs_vllm_router_rps=<r> http_layer_added_p50_ms=<ms> http_layer_added_p99_ms=<ms>``.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import Result
from tests.bench.router_bench import (
    BODY,
    CACHE,
    HEADER,
    HOST,
    added,
    measure,
    our_router,
    process,
    row,
    vllm_router,
    vllm_router_binary,
)

__all__ = ["main"]


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MiB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


ROUNDS = 3


def merged(runs: list[dict[str, Result]]) -> dict[str, Result]:
    """One result per measure from interleaved rounds: samples pooled, req/s over the summed time."""
    return {
        key: Result(
            latencies=[x for r in runs for x in r[key].latencies],
            first_chunk=[x for r in runs for x in r[key].first_chunk],
            errors=sum(r[key].errors for r in runs),
            elapsed=sum(r[key].elapsed for r in runs),
        )
        for key in runs[0]
    }


def main() -> None:
    """Start every candidate, measure them in interleaved rounds (load on the machine shifts), print."""
    logs = CACHE / "logs"
    vr = vllm_router_binary()
    d_port = free_port()
    upstream = [sys.executable, "-m", "tests.bench.fast_upstream", str(d_port)]
    d_url = f"http://{HOST}:{d_port}"
    opts = {"saturate": 1.5, "latency_n": 150, "stream_n": 100}
    candidates: list[tuple[str, list[str], int]] = []
    for loop in ("uvloop", "asyncio"):
        port = free_port()
        argv = [sys.executable, "-m", "tests.bench.http_proxy", str(port), d_url, loop]
        candidates.append((f"runtime.http ({loop})", argv, port))
    for name, argv in [our_router(["--worker", d_url], free_port())] + (
        [vllm_router(vr, ["--worker-urls", d_url, "--policy", "round_robin"], free_port())] if vr else []
    ):
        candidates.append((name, argv, int(argv[argv.index("--port") + 1])))
    runs: dict[str, list[dict[str, Result]]] = {"direct": []}
    procs = {}
    footprint = []
    with ExitStack() as stack:
        stack.enter_context(
            process("fast upstream", upstream, f"{d_url}/health", logs / "fast-upstream-http.log")
        )
        for i, (name, argv, port) in enumerate(candidates):
            began = time.perf_counter()
            procs[name] = stack.enter_context(
                process(name, argv, f"http://{HOST}:{port}/health", logs / f"http-layer-{i}.log")
            )
            footprint.append(f"{name}: start {time.perf_counter() - began:.2f} s")
            runs[name] = []
        for _ in range(ROUNDS):
            runs["direct"].append(measure(d_port, BODY, **opts))
            for name, _, port in candidates:
                runs[name].append(measure(port, BODY, **opts))
        footprint = [f"{line}, RSS {rss_mib(procs[line.split(':')[0]].pid):.0f} MiB" for line in footprint]
    results = {name: merged(r) for name, r in runs.items()}
    base = results["direct"]
    lines = [f"\nfast upstream, aggregated mode ({ROUNDS} interleaved rounds)", HEADER]
    lines += [
        row(name if name != "direct" else "direct (one worker)", r, None if name == "direct" else base)
        for name, r in results.items()
    ]
    print("\n".join(lines), flush=True)
    print("\n".join(footprint), flush=True)
    ours = results["runtime.http (uvloop)"]
    theirs = results.get("vllm-router")
    ratio = ours["sat"].rps / theirs["sat"].rps if theirs else float("nan")
    add50, add99 = added(ours, base)
    print(
        f"http_layer_vs_vllm_router_rps={ratio:.2f} http_layer_added_p50_ms={add50:.3f} "
        f"http_layer_added_p99_ms={add99:.3f}"
    )


if __name__ == "__main__":
    main()
