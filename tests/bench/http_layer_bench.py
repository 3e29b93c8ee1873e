"""What the ``runtime.http`` layer alone costs, side by side with today's router and vllm-router 0.1.17.

Against the instant upstream (``fast_upstream``), aggregated mode, the same cores, every candidate
running at once and measured in interleaved rounds (the load others put on the machine shifts): direct to
the worker; the thinnest proxy on ``runtime.http`` (``http_proxy``) on uvloop and on the stock
asyncio loop (does uvloop pay?); our router as it is; the callback proxy (``callback_proxy``: HTTP
and validation in protocol callbacks, no coroutine per request: what a Python HTTP hop could cost);
vllm-router; nginx (``nginx_proxy``, the compiled proxy's mark), when installed. Then each sidecar's
start time (spawn to the first ``/health`` 200) and resident memory after the load. Ends with
``http_layer_vs_vllm_router_rps=<r> http_layer_added_p50_ms=<ms> http_layer_added_p99_ms=<ms>
nginx_added_p50_ms=<ms> callback_proxy_added_p50_ms=<ms>``.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import Result
from tests.bench.nginx_proxy import NGINX, nginx_proxy
from tests.bench.router_bench import (
    BODY,
    CACHE,
    HEADER,
    HOST,
    PYTHON_FLOOR,
    added,
    callback_proxy,
    measure,
    merged,
    our_router,
    process,
    row,
    rss_mib,
    vllm_router,
    vllm_router_binary,
)

__all__ = ["main"]


ROUNDS = 3


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
    for name, argv in [our_router(["--worker", d_url], free_port()), callback_proxy(d_port, free_port())] + (
        [vllm_router(vr, ["--worker-urls", d_url, "--policy", "round_robin"], free_port())] if vr else []
    ):
        candidates.append((name, argv, int(argv[argv.index("--port") + 1])))
    nginx_port = free_port()
    nginx = nginx_proxy(HOST, d_port, nginx_port, logs / "nginx-http-layer")
    if nginx is not None:
        candidates.append((*nginx, nginx_port))
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
    compiled = results.get(NGINX)
    nginx50 = added(compiled, base)[0] if compiled else float("nan")
    python50 = added(results[PYTHON_FLOOR], base)[0]
    print(
        f"http_layer_vs_vllm_router_rps={ratio:.2f} http_layer_added_p50_ms={add50:.3f} "
        f"http_layer_added_p99_ms={add99:.3f} nginx_added_p50_ms={nginx50:.3f} "
        f"callback_proxy_added_p50_ms={python50:.3f}"
    )


if __name__ == "__main__":
    main()
