"""Per-hop overhead of the pipeline server, side by side: in-process, HTTP stage servers, Ray Serve handles.

The pipelines (``hop_pipelines.py``) are trivial stages, so what is measured is the cost of a hop:
``hop = (p50(three-hops) - p50(one-hop)) / 2``. Three ways of placing the stages:

* in-process: stages run inside the entry server (no ``GP_STAGE_URL_*``), and the executor alone
  (no HTTP at all) for the cost of the runtime's own bookkeeping per call;
* HTTP: a stage-server process serves the three stages; the entry calls it over keep-alive HTTP
  (in-process and HTTP servers run at once and are measured in interleaved rounds);
* Ray: the same app on Ray Serve, each stage a deployment reached through a handle.

Then req/s of ``three-hops`` with 32 concurrent clients. The client shares the 2 cores with the
servers, so compare the rows with each other, not with other machines. Aims: in-process hop <= 50 us
(issue 4), HTTP hop <= 0.1 ms added (issue 13). Also the CPU one HTTP stage call costs, both
ends in one process (steadier than latency on a loaded machine), and, in the same rounds, the p50
of a bare HTTP round trip (raw asyncio client and server, ``fast_upstream``): the floor under any
hop on this machine. Ends with ``server_http_hop_added_ms=<ms> server_http_hop_cpu_us=<us>
server_in_process_hop_us=<us> bare_round_trip_p50_ms=<ms>``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import aiohttp
import uvloop

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import run_load
from tests.bench.router_bench import CACHE, process

PIPELINES = Path(__file__).with_name("hop_pipelines.py")
ROOT = Path(__file__).resolve().parents[2]
SEQUENTIAL = int(os.environ.get("BENCH_SEQUENTIAL", "600"))
ROUNDS = 6
LOAD_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "6"))
CLIENTS = 32


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sequential(url: str, n: int = SEQUENTIAL) -> list[float]:
    async with aiohttp.ClientSession() as http:
        for _ in range(30):
            async with http.post(url, json={"x": 1}) as resp:
                await resp.read()
        times = []
        for _ in range(n):
            started = time.perf_counter()
            async with http.post(url, json={"x": 1}) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            times.append(time.perf_counter() - started)
    return times


async def _load(url: str, seconds: float = LOAD_SECONDS) -> tuple[float, float, float, int]:
    """Closed loop of CLIENTS clients: (req/s, p50, p99, errors)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with http.post(url, json={"x": 1}) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
        wall = time.perf_counter() - started
    return len(latencies) / wall, _pct(latencies, 0.5), _pct(latencies, 0.99), errors


async def _direct() -> tuple[float, float]:
    """Executor only, no HTTP: (hop us through the runtime's invoker, hop us through a plain await)."""
    from grove_pipelines.loader import load_pipeline
    from runtime.server.executor import Executor

    one = Executor.from_loaded(load_pipeline(f"{PIPELINES}:one-hop"), environ={})
    three = Executor.from_loaded(load_pipeline(f"{PIPELINES}:three-hops"), environ={})

    async def per_run(run: object, n: int = 20000) -> float:
        for _ in range(500):
            await run()  # type: ignore[operator]
        started = time.perf_counter()
        for _ in range(n):
            await run()  # type: ignore[operator]
        return (time.perf_counter() - started) / n

    t1 = await per_run(lambda: one.run({"x": 1}))
    t3 = await per_run(lambda: three.run({"x": 1}))
    p1 = await per_run(lambda: one.pipeline.func(x=1))  # the SDK's default invoker: a plain call
    p3 = await per_run(lambda: three.pipeline.func(x=1))
    return (t3 - t1) / 2 * 1e6, (p3 - p1) / 2 * 1e6


async def _cpu_per_http_call(n: int = 2000) -> float:
    """CPU microseconds one HTTP stage call costs (the caller's client plus the stage server), both in
    this process on one loop: CPU time is steadier than latency on a machine others load."""
    from grove_pipelines.loader import load_pipeline
    from runtime.server.app import PipelineApp
    from runtime.server.executor import Executor
    from runtime.server.serving import AppServer

    stage_side = Executor.from_loaded(load_pipeline(f"{PIPELINES}:three-hops"), environ={})
    async with AppServer(PipelineApp([stage_side], stages=["hop-a"], pipelines=False)) as server:
        remote = Executor.from_loaded(
            load_pipeline(f"{PIPELINES}:one-hop"), environ={"GP_STAGE_URL_HOP_A": server.url}
        )
        local = Executor.from_loaded(load_pipeline(f"{PIPELINES}:one-hop"), environ={})
        per_run = []
        for executor in (remote, local):
            for _ in range(300):
                await executor.run({"x": 1})
            started = time.process_time()
            for _ in range(n):
                await executor.run({"x": 1})
            per_run.append((time.process_time() - started) / n)
        await remote.aclose()
    return (per_run[0] - per_run[1]) * 1e6


@contextmanager
def _serve(*args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    argv = [
        sys.executable,
        "-m",
        "grove_pipelines.cli.main",
        "serve",
        *args,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if " on http://" not in line:
            raise RuntimeError(f"serve did not start: {line}{proc.stderr.read()}")
        yield line.rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _row(one: list[float], three: list[float], three_url: str) -> dict[str, float]:
    """Hop and 3-hop latencies from sequential samples, then req/s of ``three_url`` under load."""
    rps, p50, p99, errors = asyncio.run(_load(three_url))
    return {
        "hop_ms": (statistics.median(three) - statistics.median(one)) / 2 * 1e3,
        "p50_ms": statistics.median(three) * 1e3,
        "p99_ms": _pct(three, 0.99) * 1e3,
        "rps": rps,
        "load_p50_ms": p50 * 1e3,
        "load_p99_ms": p99 * 1e3,
        "errors": errors,
    }


def _measure(
    placements: dict[str, tuple[str, str]], floor: tuple[int, list[float]] | None = None
) -> dict[str, dict[str, float]]:
    """Every placement's (one-hop, three-hops) URLs measured in interleaved rounds (load on the machine shifts).

    ``floor``: a bare server's port, and the list its round trips are added to, once per round.
    """
    samples: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in placements}
    labels = list(placements)
    for round_ in range(ROUNDS):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            for url, kept in zip(placements[label], samples[label], strict=True):
                kept.extend(asyncio.run(_sequential(url, SEQUENTIAL // ROUNDS)))
        if floor is not None:
            floor[1].extend(uvloop.run(_bare_round_trips(floor[0], SEQUENTIAL // ROUNDS)))
    return {label: _row(*samples[label], placements[label][1]) for label in labels}


def _bare_server(port: int) -> AbstractContextManager[object]:
    """``fast_upstream`` on ``port``, in its own process: a raw asyncio HTTP server that answers at once."""
    argv = [sys.executable, "-m", "tests.bench.fast_upstream", str(port)]
    return process("bare server", argv, f"http://127.0.0.1:{port}/health", CACHE / "logs" / "bare-server.log")


async def _bare_round_trips(port: int, n: int) -> list[float]:
    """Seconds of ``n`` sequential keep-alive exchanges, raw client to raw server: the floor under any HTTP hop.

    Two socket writes, two reads and two wake-ups, with no framework at either end: what a stage
    call over HTTP costs at the least on this machine, beside which the hop's aim can be judged.
    """
    body = {"model": "tiny", "prompt": "x", "max_tokens": 1}
    await run_load("127.0.0.1", port, "/v1/completions", body, concurrency=1, count=30, warmup=0)
    result = await run_load("127.0.0.1", port, "/v1/completions", body, concurrency=1, count=n, warmup=0)
    return result.latencies


def _served() -> tuple[dict[str, dict[str, float]], float]:
    """In-process stages and HTTP stage servers, all served at once and measured side by side; and
    the bare round trip's p50 (ms), measured in the same rounds."""
    stages = ["--stage", "hop-a", "--stage", "hop-b", "--stage", "hop-c"]
    floor: list[float] = []
    with ExitStack() as running:
        bare = free_port()
        running.enter_context(_bare_server(bare))
        local = [running.enter_context(_serve(f"{PIPELINES}:{name}")) for name in ("one-hop", "three-hops")]
        stage_url = running.enter_context(_serve(f"{PIPELINES}:three-hops", *stages))
        env = {f"GP_STAGE_URL_HOP_{s}": stage_url for s in "ABC"}
        remote = [
            running.enter_context(_serve(f"{PIPELINES}:{name}", env=env))
            for name in ("one-hop", "three-hops")
        ]
        rows = _measure(
            {
                "in-process": (f"{local[0]}/v1/pipelines/one-hop", f"{local[1]}/v1/pipelines/three-hops"),
                "HTTP stage server": (
                    f"{remote[0]}/v1/pipelines/one-hop",
                    f"{remote[1]}/v1/pipelines/three-hops",
                ),
            },
            (bare, floor),
        )
    return rows, statistics.median(floor) * 1e3


def _ray() -> dict[str, float] | str:
    try:
        from ray import serve
    except ImportError:
        return "skipped: ray[serve] is not installed"
    import ray

    from grove_pipelines.graph.build import build_graph
    from grove_pipelines.loader import load_pipeline
    from grove_pipelines.local.ray_backend import build_ray_app, start_ray

    port = free_port()
    start_ray(port=port)
    try:
        for name in ("one-hop", "three-hops"):
            loaded = load_pipeline(f"{PIPELINES}:{name}")
            graph = build_graph(loaded.pipeline, loaded.stages())
            app = build_ray_app(
                f"{PIPELINES}:{name}", graph, [], model=None, log_dir=ROOT / ".cache" / "logs"
            )
            serve.run(app, name=name, route_prefix=f"/{name}")
        base = f"http://127.0.0.1:{port}"
        urls = (f"{base}/one-hop/v1/pipelines/one-hop", f"{base}/three-hops/v1/pipelines/three-hops")
        return _measure({"ray": urls})["ray"]
    finally:
        serve.shutdown()
        ray.shutdown()


def main() -> str:
    """Print the side-by-side table; return the summary line (``make bench`` prints it with the router's)."""
    print("\n== server_bench: per-hop overhead of trivial stages (hop = (three-hops - one-hop) / 2) ==")
    invoker_us, plain_us = asyncio.run(_direct())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # the loop `serve` runs on
        cpu_us = runner.run(_cpu_per_http_call())
    print(f"one HTTP stage call costs {cpu_us:.0f} us of CPU (caller's client + stage server)")
    print(
        f"executor alone (no HTTP): {invoker_us:.1f} us per hop through the runtime invoker "
        f"(a plain await: {plain_us:.1f} us); aim <= 50 us"
    )
    served, floor_ms = _served()
    rows: list[tuple[str, dict[str, float] | str]] = list(served.items())
    rows.append(("Ray Serve handles", _ray()))
    print(
        f"{'stages':<20}{'hop p50':>10}{'3-hop p50':>11}{'3-hop p99':>11}{'req/s @32':>11}{'p50 @32':>10}{'p99 @32':>10}"
    )
    for label, row in rows:
        if isinstance(row, str):
            print(f"{label:<20}{row}")
            continue
        print(
            f"{label:<20}{row['hop_ms']:>8.2f}ms{row['p50_ms']:>9.2f}ms{row['p99_ms']:>9.2f}ms"
            f"{row['rps']:>11.0f}{row['load_p50_ms']:>8.1f}ms{row['load_p99_ms']:>8.1f}ms"
            + (f"  errors={row['errors']:.0f}" if row["errors"] else "")
        )
    base = rows[0][1]
    http = rows[1][1]
    assert isinstance(base, dict) and isinstance(http, dict)
    added = http["hop_ms"] - base["hop_ms"]
    print(f"HTTP hop adds {added:.2f} ms over an in-process hop (aim <= 0.1 ms)")
    print(
        f"a bare HTTP round trip (raw client, raw server, no framework) takes {floor_ms:.3f} ms at p50: the floor"
    )
    line = (
        f"server_http_hop_added_ms={added:.3f} server_http_hop_cpu_us={cpu_us:.0f} "
        f"server_in_process_hop_us={invoker_us:.1f} bare_round_trip_p50_ms={floor_ms:.3f}"
    )
    print(line)
    return line


if __name__ == "__main__":
    main()
