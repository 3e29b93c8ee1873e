"""What the ``runtime.http`` layer alone costs, side by side with today's router and vllm-router 0.1.17.

Against the instant upstream (``fast_upstream``), aggregated mode, one run, the same cores: direct to
the worker; the thinnest proxy on ``runtime.http`` (``http_proxy``) on uvloop and on the stock
asyncio loop (does uvloop pay?); our router as it is; vllm-router. Then each sidecar's start time
(spawn to the first ``/health`` 200) and resident memory after the load. Ends with
``http_layer_vs_vllm_router_rps=<r> http_layer_added_p50_ms=<ms> http_layer_added_p99_ms=<ms>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import Result
from tests.bench.router_bench import (
    BODY,
    CACHE,
    HEADER,
    HOST,
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


def main() -> None:
    """Run the comparison and print the table, the start/RSS lines and the summary line."""
    logs = CACHE / "logs"
    vr = vllm_router_binary()
    d_port = free_port()
    upstream = [sys.executable, "-m", "tests.bench.fast_upstream", str(d_port)]
    d_url = f"http://{HOST}:{d_port}"
    opts = {"saturate": 4.0, "latency_n": 400, "stream_n": 300}
    results: dict[str, dict[str, Result]] = {}
    lines = ["\nfast upstream, aggregated mode", HEADER]
    footprint = []
    with process("fast upstream", upstream, f"{d_url}/health", logs / "fast-upstream-http.log"):
        results["direct"] = base = measure(d_port, BODY, **opts)
        lines.append(row("direct (one worker)", base, None))
        candidates: list[tuple[str, list[str], int]] = []
        for loop in ("uvloop", "asyncio"):
            port = free_port()
            argv = [sys.executable, "-m", "tests.bench.http_proxy", str(port), d_url, loop]
            candidates.append((f"runtime.http ({loop})", argv, port))
        for name, argv in [our_router(["--worker", d_url], free_port())] + (
            [vllm_router(vr, ["--worker-urls", d_url, "--policy", "round_robin"], free_port())] if vr else []
        ):
            candidates.append((name, argv, int(argv[argv.index("--port") + 1])))
        for name, argv, port in candidates:
            log = logs / f"http-{name.split()[0]}-{len(footprint)}.log"
            began = time.perf_counter()
            with process(name, argv, f"http://{HOST}:{port}/health", log) as proc:
                started = time.perf_counter() - began
                results[name] = measure(port, BODY, **opts)
                footprint.append(f"{name}: start {started:.2f} s, RSS {rss_mib(proc.pid):.0f} MiB")
            lines.append(row(name, results[name], base))
    print("\n".join(lines), flush=True)
    print("\n".join(footprint), flush=True)
    ours = results["runtime.http (uvloop)"]
    theirs = results.get("vllm-router")
    ratio = ours["sat"].rps / theirs["sat"].rps if theirs else float("nan")
    add50 = ours["lat"].pct(50) - base["lat"].pct(50)
    add99 = ours["lat"].pct(99) - base["lat"].pct(99)
    print(
        f"http_layer_vs_vllm_router_rps={ratio:.2f} http_layer_added_p50_ms={add50:.3f} "
        f"http_layer_added_p99_ms={add99:.3f}"
    )


if __name__ == "__main__":
    main()
