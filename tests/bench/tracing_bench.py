"""What tracing costs the router's hot path, side by side: nothing recording, the in-memory store, OTLP export.

Three router processes in P/D mode in front of the instant upstream (``fast_upstream``), started
once and measured in rotated rounds (each round visits them in another order, so drift on this
shared, noisy machine falls on all three alike): requests/s with 32 clients, and p50 at one client.

* ``off``: no ``OTEL_*``, no store, the default: no span is made, ``traceparent`` passes through;
* ``store``: ``GROVE_TRACE_STORE_TRACES=200``: every request records its three spans (router, two
  legs) in memory, which is what every router did before tracing was made lazy;
* ``export``: ``OTEL_EXPORTER_OTLP_ENDPOINT`` at a sink process that answers OTLP/HTTP and decodes
  nothing: the three spans plus OpenTelemetry's batch exporter.

Every request carries a client ``traceparent`` (sampled), as a pipeline server's LLM calls do. Ends
with ``tracing_store_vs_off_rps=<r> tracing_export_vs_off_rps=<r> tracing_off_rps=<n>``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import Result, run_load
from tests.bench.router_bench import CACHE, HOST, process

ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "4"))
SATURATE_S = float(os.environ.get("BENCH_LOAD_SECONDS", "3"))
BODY = {"model": "tiny", "prompt": "Say something about routers. " * 8, "max_tokens": 4, "temperature": 0}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
_SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _env(extra: dict[str, str]) -> dict[str, str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "GROVE_TRACE_STORE_TRACES"
    }
    return {**clean, **extra}


async def _measure(port: int) -> tuple[Result, Result]:
    path = "/v1/completions"
    sat = await run_load(
        HOST, port, path, BODY, concurrency=32, duration=SATURATE_S, headers={"traceparent": TRACEPARENT}
    )
    lat = await run_load(
        HOST, port, path, BODY, concurrency=1, count=300, warmup=0, headers={"traceparent": TRACEPARENT}
    )
    return sat, lat


def main() -> str:
    """Run the rounds, print the table and return the summary line."""
    import uvloop

    logs = CACHE / "logs"
    p_port, d_port, sink_port = free_port(), free_port(), free_port()
    upstream = [sys.executable, "-m", "tests.bench.fast_upstream", str(p_port), str(d_port)]
    sink = [sys.executable, "-c", _SINK, str(sink_port)]
    configs = {
        "off": {},
        "store": {"GROVE_TRACE_STORE_TRACES": "200"},
        "export": {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{sink_port}"},
    }
    rps: dict[str, list[float]] = {name: [] for name in configs}
    p50: dict[str, list[float]] = {name: [] for name in configs}
    errors = 0
    with ExitStack() as stack:
        stack.enter_context(
            process(
                "fast upstream", upstream, f"http://{HOST}:{d_port}/health", logs / "tracing-upstream.log"
            )
        )
        stack.enter_context(
            process("otlp sink", sink, f"http://{HOST}:{sink_port}/", logs / "tracing-sink.log")
        )
        ports = {}
        cli = str(Path(sys.executable).parent / "grove-pipelines")
        legs = ["--prefill", f"http://{HOST}:{p_port}", "--decode", f"http://{HOST}:{d_port}"]
        for name, extra in configs.items():
            port = ports[name] = free_port()
            argv = [cli, "router", "--port", str(port), "--log-level", "error", *legs]
            health = f"http://{HOST}:{port}/health"
            stack.enter_context(
                process(f"router ({name})", argv, health, logs / f"tracing-{name}.log", env=_env(extra))
            )
        names = list(configs)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            for port in ports.values():  # warm every pool once
                runner.run(run_load(HOST, port, "/v1/completions", BODY, concurrency=4, count=100, warmup=0))
            for r in range(ROUNDS):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    sat, lat = runner.run(_measure(ports[name]))
                    rps[name].append(sat.rps)
                    p50[name].append(lat.pct(50))
                    errors += sat.errors + lat.errors
    med = {name: statistics.median(v) for name, v in rps.items()}
    lines = [
        "\ntracing on the router's hot path (P/D, instant upstream; medians of rotated rounds; noisy shared machine)",
        "| tracing | req/s (32 clients) | p50 ms (1 client) | rounds req/s |",
        "|---|---|---|---|",
    ]
    for name in names:
        rounds = " ".join(f"{v:.0f}" for v in rps[name])
        lines.append(f"| {name} | {med[name]:.0f} | {statistics.median(p50[name]):.3f} | {rounds} |")
    print("\n".join(lines), flush=True)
    line = (
        f"tracing_store_vs_off_rps={med['store'] / med['off']:.2f} tracing_export_vs_off_rps={med['export'] / med['off']:.2f} "
        f"tracing_off_rps={med['off']:.0f} tracing_errors={errors}"
    )
    print(line, flush=True)
    return line


if __name__ == "__main__":
    main()
