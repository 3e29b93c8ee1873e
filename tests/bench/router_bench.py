"""Router overhead, side by side in one run: direct to the worker, our router, vllm-router 0.1.17.

(a) Against an upstream that answers instantly (``fast_upstream``), which isolates what the proxy
    costs: requests/s at saturation, p50/p99 latency at concurrency 1 (added to direct), and the
    time to the first chunk of a streamed answer. Aggregated mode (one worker) and prefill/decode
    mode (two legs; "direct" there is the decode worker alone). Every candidate (direct, a bare
    layer-4 relay (``bare_proxy``: the floor, what a second hop itself costs on this machine), our
    router, our router with ``--processes 2``, vllm-router, and in aggregated mode the callback proxy
    (``callback_proxy``: HTTP parsed and the body validated in Python, with no coroutine per request
    and none of the router's bookkeeping) and nginx when it is installed (``nginx_proxy``: what a
    mature compiled HTTP proxy adds here)) is up at once and measured in rotated rounds, samples
    pooled, errors counted; then each sidecar's start time (spawn to the first ``/health`` 200) and
    resident memory after the load.
(b) Against the real vLLM prefill/decode pair on the tiny model: latency and throughput.
(c) Streamed TTFT through two real aggregated vLLM workers, both routers with ``round_robin``, in
    rotated rounds with the workers alone as the floor (``router_ttft.py``).

vllm-router is installed once into its own venv under ``.cache/bench/`` (PyPI, ``pip``). Everything
listens on 127.0.0.1 ephemeral ports and stops at the end. Ends with the line
``router_vs_vllm_router_rps=<r> router_pd_vs_vllm_router_pd_rps=<r> router_added_p50_ms=<ms>
router_added_p99_ms=<ms> router_2proc_vs_vllm_router_rps=<r> router_2proc_pd_vs_vllm_router_pd_rps=<r>
vllm_router_added_p50_ms=<ms> bare_relay_added_p50_ms=<ms> nginx_added_p50_ms=<ms>
callback_proxy_added_p50_ms=<ms>`` (fast upstream; the added latency in aggregated mode, one
process, with vllm-router's, the bare relay's, nginx's and the callback proxy's beside it; nan
where nginx is not installed), followed by (c)'s
``router_ttft_p50_ms=<ms> vllm_router_ttft_p50_ms=<ms> router_ttft_p50_added_ms=<ms>`` (and p99,
the floor, the added p50 at concurrency 4 and the errors). ``GROVE_BENCH_SKIP_VLLM=1`` skips (b) and (c).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from runtime.engines.supervisor import free_port, http_ok
from tests.bench.loadgen import Result, run_load
from tests.bench.nginx_proxy import NGINX, nginx_proxy
from tests.bench.router_ttft import ttft_suite

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "bench"
VLLM_ROUTER = "vllm-router==0.1.17"
HOST = "127.0.0.1"
BODY = {"model": "tiny", "prompt": "Say something about routers. " * 8, "max_tokens": 4, "temperature": 0}
REAL = {
    "model": "tiny",
    "prompt": "def route(request):\n    " * 40,
    "max_tokens": 16,
    "temperature": 0,
    "ignore_eos": True,
}


def vllm_router_binary() -> Path | None:
    """The vllm-router executable from its own venv, installed on first use; None if it cannot be had."""
    venv = (CACHE / "vllm-router-venv").resolve()  # its scripts' shebangs name this path: no symlinks in it
    binary = venv / "bin" / "vllm-router"
    if binary.exists() and _shebang_runs(binary):
        return binary
    print(f"installing {VLLM_ROUTER} into {venv} (once)", flush=True)
    try:
        shutil.rmtree(venv, ignore_errors=True)  # a venv whose interpreter path went away is rebuilt
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", VLLM_ROUTER], check=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"vllm-router unavailable: {exc}", flush=True)
        return None
    return binary if binary.exists() else None


def _shebang_runs(script: Path) -> bool:
    """The interpreter a script's ``#!`` line names still exists."""
    with open(script, "rb") as f:
        first = f.readline()
    return not first.startswith(b"#!") or Path(first[2:].split()[0].decode()).exists()


@contextmanager
def process(
    name: str,
    argv: list[str],
    health: str,
    log: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (its own process group, in ``env`` or ours) until the block ends; wait for ``health`` to answer 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + timeout
        while not http_ok(health, timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {log}")
            time.sleep(0.05)
        yield proc
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def our_router(args: list[str], port: int) -> tuple[str, list[str]]:
    cli = str(Path(sys.executable).parent / "grove-pipelines")
    return "router", [cli, "router", "--port", str(port), "--log-level", "error", *args]


def bare_proxy(upstream_port: int, port: int) -> tuple[str, list[str]]:
    """The floor: a relay that pipes bytes to the (decode) worker and does nothing else."""
    argv = [sys.executable, "-m", "tests.bench.bare_proxy", "--upstream", str(upstream_port)]
    return FLOOR, [*argv, "--port", str(port)]


def callback_proxy(upstream_port: int, port: int) -> tuple[str, list[str]]:
    """The Python floor: HTTP parsed and the body validated in protocol callbacks, nothing else."""
    argv = [sys.executable, "-m", "tests.bench.callback_proxy", "--upstream", str(upstream_port)]
    return PYTHON_FLOOR, [*argv, "--port", str(port)]


def vllm_router(binary: Path, args: list[str], port: int) -> tuple[str, list[str]]:
    return "vllm-router", [
        str(binary),
        "--host",
        HOST,
        "--port",
        str(port),
        "--prometheus-port",
        str(free_port()),
        "--log-level",
        "error",
        "--health-check-interval-secs",
        "30",
        *args,
    ]


def measure(
    port: int,
    body: dict[str, object],
    *,
    saturate: float,
    latency_n: int,
    stream_n: int,
    concurrency: int = 32,
) -> dict[str, Result]:
    async def go() -> dict[str, Result]:
        path = "/v1/completions"
        await run_load(HOST, port, path, body, concurrency=4, count=50, warmup=0)  # warm the pools
        out = {"sat": await run_load(HOST, port, path, body, concurrency=concurrency, duration=saturate)}
        out["lat"] = await run_load(HOST, port, path, body, concurrency=1, count=latency_n, warmup=0)
        if stream_n:
            out["stream"] = await run_load(
                HOST, port, path, {**body, "stream": True}, concurrency=1, count=stream_n, warmup=0
            )
        return out

    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(go())
    except ImportError:
        return asyncio.run(go())


def row(label: str, r: dict[str, Result], base: dict[str, Result] | None) -> str:
    lat, sat, stream = r["lat"], r["sat"], r.get("stream")
    add50 = f"{lat.pct(50) - base['lat'].pct(50):+.3f}" if base else "-"
    add99 = f"{lat.pct(99) - base['lat'].pct(99):+.3f}" if base else "-"
    ttfc = f"{stream.pct(50, 'first_chunk'):.3f}" if stream and stream.first_chunk else "-"
    errors = sat.errors + lat.errors + (stream.errors if stream else 0)
    return (
        f"| {label:<24} | {sat.rps:>9.0f} | {lat.pct(50):>8.3f} | {lat.pct(99):>8.3f} | {add50:>9} | "
        f"{add99:>9} | {ttfc:>9} | {errors:>6} |"
    )


HEADER = (
    "| target                   |     req/s |  p50 ms  |  p99 ms  | +p50 ms   | +p99 ms   | "
    "1st chunk | errors |\n|---|---|---|---|---|---|---|---|"
)


FLOOR = "bare relay (floor)"
PYTHON_FLOOR = "callback proxy (Python)"
ROUNDS = 3  # rotated rounds per mode: the load others put on the machine shifts while we measure
PROCESSES = 2  # the multi-process router's line (one per core here)


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


def fast_upstream_suite(vr: Path | None, logs: Path) -> tuple[dict[str, dict[str, Result]], list[str]]:
    """Per mode, every candidate up at once, measured in ``ROUNDS`` rounds whose order rotates."""
    p_port, d_port = free_port(), free_port()
    upstream = [sys.executable, "-m", "tests.bench.fast_upstream", str(p_port), str(d_port)]
    results: dict[str, dict[str, Result]] = {}
    lines = []
    footprint: dict[str, str] = {}
    with process("fast upstream", upstream, f"http://{HOST}:{d_port}/health", logs / "fast-upstream.log"):
        d_url, p_url = f"http://{HOST}:{d_port}", f"http://{HOST}:{p_port}"
        modes = {
            "aggregated": (["--worker", d_url], ["--worker-urls", d_url, "--policy", "round_robin"]),
            "pd": (
                ["--prefill", p_url, "--decode", d_url],
                [
                    "--vllm-pd-disaggregation",
                    "--prefill",
                    p_url,
                    "--decode",
                    d_url,
                    "--policy",
                    "round_robin",
                ],
            ),
        }
        for mode, (ours, theirs) in modes.items():
            lines += [f"\n(a) fast upstream, {mode} mode ({ROUNDS} rotated rounds, samples pooled)", HEADER]
            opts = {"saturate": 2.0, "latency_n": 150, "stream_n": 100}
            candidates = [
                bare_proxy(d_port, free_port()),
                our_router(ours, free_port()),
                (f"router x{PROCESSES}", our_router([*ours, "--processes", str(PROCESSES)], free_port())[1]),
            ]
            if mode == "aggregated":  # the callback proxy has no prefill/decode mode
                candidates.append(callback_proxy(d_port, free_port()))
            if vr is not None:
                candidates.append(vllm_router(vr, theirs, free_port()))
            ports = {"direct": d_port} | {
                name: int(argv[argv.index("--port") + 1]) for name, argv in candidates
            }
            if mode == "aggregated":  # nginx has no prefill/decode mode
                nginx_port = free_port()
                nginx = nginx_proxy(HOST, d_port, nginx_port, logs / "nginx")
                if nginx is None:
                    lines.append(
                        "(nginx not installed: `apt-get install nginx-light` adds a compiled proxy's row)"
                    )
                else:
                    candidates.append(nginx)
                    ports[NGINX] = nginx_port
            runs: dict[str, list[dict[str, Result]]] = {name: [] for name in ports}
            with ExitStack() as stack:
                procs = {}
                for name, argv in candidates:
                    began = time.perf_counter()
                    log = logs / f"{name.replace(' ', '-')}-{mode}.log"
                    procs[name] = stack.enter_context(
                        process(name, argv, f"http://{HOST}:{ports[name]}/health", log)
                    )
                    footprint.setdefault(name, f"start {time.perf_counter() - began:.2f} s")
                names = list(ports)
                for i in range(ROUNDS):
                    for name in names[i % len(names) :] + names[: i % len(names)]:
                        runs[name].append(measure(ports[name], BODY, **opts))
                if mode == "aggregated":
                    for name, proc in procs.items():
                        footprint[name] += f", RSS after the load {rss_mib(proc.pid):.0f} MiB"
            base = results[f"{mode}/direct"] = merged(runs["direct"])
            lines.append(row("direct (one worker)", base, None))
            for name, _ in candidates:
                results[f"{mode}/{name}"] = merged(runs[name])
                lines.append(row(name, results[f"{mode}/{name}"], base))
    lines.append("\nsidecars: " + "; ".join(f"{name}: {text}" for name, text in footprint.items()))
    return results, lines


def real_vllm_suite(vr: Path | None, logs: Path) -> list[str]:
    from grove_pipelines.local.tiny_model import write_tiny_model
    from runtime.engines.vllm import start_pd_pair

    model = write_tiny_model(ROOT / ".cache" / "tiny-model")
    print("starting the vLLM prefill/decode pair (1-3 min)", flush=True)
    lines = ["\n(b) real vLLM NIXL pair, tiny model, 16 tokens greedy", HEADER]
    with start_pd_pair(model, log_dir=logs) as pair:
        d_port = pair.decode.port
        opts = {"saturate": 8.0, "latency_n": 8, "stream_n": 4, "concurrency": 4}
        base = measure(d_port, REAL, **opts)
        lines.append(row("decode worker alone", base, None))
        candidates = [our_router(["--prefill", pair.prefill.url, "--decode", pair.decode.url], free_port())]
        if vr is not None:
            candidates.append(
                vllm_router(
                    vr,
                    [
                        "--vllm-pd-disaggregation",
                        "--prefill",
                        pair.prefill.url,
                        "--decode",
                        pair.decode.url,
                        "--policy",
                        "round_robin",
                    ],
                    free_port(),
                )
            )
        for name, argv in candidates:
            port = int(argv[argv.index("--port") + 1])
            with process(name, argv, f"http://{HOST}:{port}/health", logs / f"{name}-vllm.log"):
                lines.append(row(f"{name} (P/D)", measure(port, REAL, **opts), base))
    return lines


def main() -> str:
    """Run the suites, print the tables and the summary line; return the line."""
    logs = CACHE / "logs"
    vr = vllm_router_binary()
    results, lines = fast_upstream_suite(vr, logs)
    print("\n".join(lines), flush=True)
    line = summary(results)
    if os.environ.get("GROVE_BENCH_SKIP_VLLM") != "1":
        print("\n".join(real_vllm_suite(vr, logs)), flush=True)
        ttft = ttft_suite(vr, logs, ROOT)
        print(
            "\n(c) streamed TTFT, two real aggregated vLLM workers, round_robin\n" + ttft.table(), flush=True
        )
        line += " " + ttft.summary()
    print(line)
    return line


def summary(results: dict[str, dict[str, Result]]) -> str:
    """The acceptance line: req/s ratios against vllm-router (aggregated, P/D) and the added latency."""
    ours, direct = results["aggregated/router"], results["aggregated/direct"]

    def ratio_of(name: str, mode: str) -> float:
        theirs = results.get(f"{mode}/vllm-router")
        return results[f"{mode}/{name}"]["sat"].rps / theirs["sat"].rps if theirs else float("nan")

    add50, add99 = added(ours, direct)
    floor50, _ = added(results[f"aggregated/{FLOOR}"], direct)
    theirs = results.get("aggregated/vllm-router")
    their50 = added(theirs, direct)[0] if theirs else float("nan")
    compiled = results.get(f"aggregated/{NGINX}")
    nginx50 = added(compiled, direct)[0] if compiled else float("nan")
    python50, _ = added(results[f"aggregated/{PYTHON_FLOOR}"], direct)
    many = f"router x{PROCESSES}"
    return (
        f"router_vs_vllm_router_rps={ratio_of('router', 'aggregated'):.2f} "
        f"router_pd_vs_vllm_router_pd_rps={ratio_of('router', 'pd'):.2f} "
        f"router_added_p50_ms={add50:.3f} router_added_p99_ms={add99:.3f} "
        f"router_{PROCESSES}proc_vs_vllm_router_rps={ratio_of(many, 'aggregated'):.2f} "
        f"router_{PROCESSES}proc_pd_vs_vllm_router_pd_rps={ratio_of(many, 'pd'):.2f} "
        f"vllm_router_added_p50_ms={their50:.3f} bare_relay_added_p50_ms={floor50:.3f} "
        f"nginx_added_p50_ms={nginx50:.3f} callback_proxy_added_p50_ms={python50:.3f}"
    )


def added(ours: dict[str, Result], direct: dict[str, Result]) -> tuple[float, float]:
    """Milliseconds a proxy adds to the direct path at concurrency 1: (p50, p99)."""
    return (
        ours["lat"].pct(50) - direct["lat"].pct(50),
        ours["lat"].pct(99) - direct["lat"].pct(99),
    )


if __name__ == "__main__":
    main()
