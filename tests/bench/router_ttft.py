"""Streamed TTFT through our router and through vllm-router, side by side, in front of two real vLLM workers.

Two aggregated vLLM workers (the tiny model, one core each) start once. Three targets sit in front of
them: the workers directly (the client alternates between them: the floor), our router and
vllm-router, both with ``round_robin``, both started once. The same client measures every target:
streamed completions at concurrency 1 (and again at 4) in ``RUNS`` rounds; a round is a warm-up
(excluded) then ``COUNT`` cycles (twice that at 4) of one request to each target, the order rotated
from cycle to cycle (direct, ours, theirs; ours, theirs, direct; ...), so every target meets the same
moments of a noisy machine and none always goes first. Each round's p50s give the spread; the pooled requests give
p50 and p99.

TTFT is the time from writing the request to the arrival of the first SSE ``data:`` event that carries a
token, as the client sees it; it does not depend on how a proxy chunks the stream. A request that ends
in a status other than 200, a broken stream or no ``[DONE]`` is an error, counted and printed.

``GROVE_BENCH_PYSPY=<file>`` records our router with py-spy during the whole suite (collapsed stacks;
without pausing it, or with native frames and pauses if ``GROVE_BENCH_PYSPY_NATIVE=1``).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runtime.engines.supervisor import free_port
from tests.bench.loadgen import request_bytes

__all__ = ["StreamResult", "TtftReport", "interleaved_load", "ttft_suite"]

HOST = "127.0.0.1"
BODY = {
    "model": "tiny",
    "prompt": "def route(request):\n    " * 40,
    "max_tokens": 16,
    "temperature": 0,
    "ignore_eos": True,
    "stream": True,
}
RUNS = 5
COUNT = 60
WARMUP = 10
CONCURRENCIES = (1, 4)
IDLE_S = 3.0  # a client connection idle this long is replaced (vLLM's uvicorn closes idle ones after 5 s)


@dataclass
class StreamResult:
    """One run against one target: per-request TTFT and end-to-end seconds, and the errors."""

    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)  # which cycle each measured request belongs to
    errors: int = 0
    why: Counter[str] = field(default_factory=Counter)

    def fail(self, reason: str) -> None:
        self.errors += 1
        self.why[reason] += 1


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100, linear between neighbours) of ``values`` seconds, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return 1000 * (ordered[low] + (ordered[high] - ordered[low]) * (pos - low))


class _StreamError(Exception):
    """The answer was not a complete 200 SSE stream."""


async def _stream_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[float, float]:
    """Send one streamed request and read its answer to the end: (TTFT, end-to-end) seconds."""
    start = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if headers.get("transfer-encoding", "").lower() != "chunked":
        await reader.readexactly(int(headers.get("content-length", "0")))
        raise _StreamError(f"status {status}, not chunked")
    body = bytearray()
    first: float | None = None
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
        if size == 0:
            await reader.readline()
            break
        body += (await reader.readexactly(size + 2))[:-2]
        if first is None and _has_token(body):
            first = time.perf_counter() - start
    if status != 200 or first is None or b"data: [DONE]" not in body:
        raise _StreamError(f"status {status}")
    return first, time.perf_counter() - start


def _has_token(body: bytearray) -> bool:
    """The stream so far holds a complete ``data:`` event with a non-empty token."""
    for event in bytes(body).split(b"\n\n")[:-1]:
        if event.startswith(b"data: {"):
            choices = json.loads(event[6:]).get("choices") or [{}]
            if choices[0].get("text"):
                return True
    return False


async def interleaved_load(
    targets: dict[str, list[int]], *, concurrency: int, cycles: int, warmup: int, shift: int = 0
) -> dict[str, StreamResult]:
    """``warmup`` then ``cycles`` cycles over ``concurrency`` keep-alive clients; a cycle is one streamed
    request to every target, the targets' order rotated from one cycle to the next.

    Interleaving request by request puts every target in the same moments of a noisy machine. A
    target with several ports (the workers themselves) gets them in turn, the way round-robin does;
    each client keeps one connection to every port.
    """
    labels = list(targets)
    results = {label: StreamResult() for label in labels}
    queue = list(range(-warmup, cycles))
    queue.reverse()

    async def client() -> None:
        conns = {(lb, p): await asyncio.open_connection(HOST, p) for lb in labels for p in targets[lb]}
        used = dict.fromkeys(conns, time.monotonic())
        requests = {p: request_bytes(HOST, p, "/v1/completions", BODY) for lb in labels for p in targets[lb]}
        turns = dict.fromkeys(labels, 0)
        try:
            while queue:
                cycle = queue.pop()
                k = (cycle + shift) % len(labels)
                for label in labels[k:] + labels[:k]:
                    ports = targets[label]
                    port = ports[turns[label] % len(ports)]
                    turns[label] += 1
                    if time.monotonic() - used[label, port] > IDLE_S:  # the server may close it any moment
                        conns[label, port][1].close()
                        conns[label, port] = await asyncio.open_connection(HOST, port)
                    result = results[label]
                    try:
                        ttft, e2e = await asyncio.wait_for(
                            _stream_one(*conns[label, port], requests[port]), 60
                        )
                    except (
                        _StreamError,
                        ValueError,
                        asyncio.IncompleteReadError,
                        ConnectionError,
                        TimeoutError,
                    ) as exc:
                        result.fail(str(exc) if isinstance(exc, _StreamError) else type(exc).__name__)
                        conns[label, port][1].close()
                        conns[label, port] = await asyncio.open_connection(HOST, port)
                        continue
                    used[label, port] = time.monotonic()
                    if cycle >= 0:
                        result.ttft.append(ttft)
                        result.e2e.append(e2e)
                        result.cycles.append(cycle)
        finally:
            for _, writer in conns.values():
                writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


@dataclass
class TtftReport:
    """Every run of every target at every concurrency: ``runs[(concurrency, label)]``."""

    runs: dict[tuple[int, str], list[StreamResult]] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # each router's CPU seconds over the whole suite

    def pooled(self, concurrency: int, label: str, which: str = "ttft") -> list[float]:
        return [v for r in self.runs.get((concurrency, label), []) for v in getattr(r, which)]

    def errors(self, concurrency: int, label: str) -> int:
        return sum(r.errors for r in self.runs.get((concurrency, label), []))

    def run_p50s(self, concurrency: int, label: str) -> list[float]:
        return [pct(r.ttft, 50) for r in self.runs.get((concurrency, label), [])]

    def table(self) -> str:
        lines = [
            "| conc | target | TTFT p50 ms | TTFT p99 ms | run p50s min-max | e2e p50 ms | requests | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for conc, label in self.runs:
            ttft, p50s = self.pooled(conc, label), self.run_p50s(conc, label)
            lines.append(
                f"| {conc} | {label} | {pct(ttft, 50):.2f} | {pct(ttft, 99):.2f} | "
                f"{min(p50s):.2f}-{max(p50s):.2f} | {pct(self.pooled(conc, label, 'e2e'), 50):.2f} | "
                f"{len(ttft)} | {self.errors(conc, label)} |"
            )
        for conc in CONCURRENCIES:
            diffs = self.paired(conc)
            if diffs:
                lines.append(
                    f"concurrency {conc}: ours minus vllm-router, run by run (TTFT p50 ms): "
                    + " ".join(f"{d:+.2f}" for d in diffs)
                    + f" (median {statistics.median(diffs):+.2f})"
                )
            per_cycle = self.cycle_diffs(conc)
            if per_cycle:
                lines.append(
                    f"concurrency {conc}: ours minus vllm-router, cycle by cycle (TTFT ms, {len(per_cycle)} pairs): "
                    f"median {statistics.median(per_cycle):+.2f}, quartiles {pct(per_cycle, 25) / 1000:+.2f} "
                    f"{pct(per_cycle, 75) / 1000:+.2f}"
                )
        if self.cpu_s:
            handled: Counter[str] = Counter()
            for (_, label), results in self.runs.items():
                handled[label] += sum(len(r.ttft) + r.errors + WARMUP for r in results)
            lines.append(
                "router CPU per streamed request (whole suite, background work included): "
                + ", ".join(
                    f"{name} {1000 * s / max(1, handled.get(name, 0)):.2f} ms"
                    for name, s in self.cpu_s.items()
                )
            )
        return "\n".join(lines)

    def cycle_diffs(self, concurrency: int) -> list[float]:
        """Ours minus theirs for each cycle both measured (ms): requests sent one right after the other."""
        out = []
        pairs = zip(
            self.runs.get((concurrency, "router"), []), self.runs.get((concurrency, "vllm-router"), [])
        )
        for ours, theirs in pairs:
            by_cycle = dict(zip(theirs.cycles, theirs.ttft, strict=True))
            out += [
                1000 * (t - by_cycle[c]) for c, t in zip(ours.cycles, ours.ttft, strict=True) if c in by_cycle
            ]
        return out

    def paired(self, concurrency: int) -> list[float]:
        ours, theirs = self.run_p50s(concurrency, "router"), self.run_p50s(concurrency, "vllm-router")
        return [a - b for a, b in zip(ours, theirs, strict=False)]

    def summary(self) -> str:
        """``router_ttft_p50_ms=... vllm_router_ttft_p50_ms=... router_ttft_p50_added_ms=...`` (and p99)."""
        fields = []
        for q in (50, 99):
            ours, theirs = pct(self.pooled(1, "router"), q), pct(self.pooled(1, "vllm-router"), q)
            fields += [
                f"router_ttft_p{q}_ms={ours:.2f}",
                f"vllm_router_ttft_p{q}_ms={theirs:.2f}",
                f"router_ttft_p{q}_added_ms={ours - theirs:+.2f}",
            ]
        fields.append(f"vllm_direct_ttft_p50_ms={pct(self.pooled(1, 'direct'), 50):.2f}")
        c = CONCURRENCIES[-1]
        added = pct(self.pooled(c, "router"), 50) - pct(self.pooled(c, "vllm-router"), 50)
        fields.append(f"router_ttft_p50_added_c{c}_ms={added:+.2f}")
        for conc in CONCURRENCIES:
            diffs = self.cycle_diffs(conc)
            median = statistics.median(diffs) if diffs else float("nan")
            fields.append(f"router_ttft_added_paired_median_c{conc}_ms={median:+.2f}")
        errors = sum(self.errors(conc, label) for conc, label in self.runs if label != "direct")
        fields.append(f"router_ttft_errors={errors}")
        return " ".join(fields)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds ``pid`` has used so far, all its threads (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _pyspy(pid: int) -> Iterator[None]:
    """Record ``pid`` with py-spy into ``$GROVE_BENCH_PYSPY`` while the block runs (if that is set)."""
    out = os.environ.get("GROVE_BENCH_PYSPY")
    spy = Path(sys.executable).parent / "py-spy"
    if not out or not spy.exists():
        yield
        return
    # native frames (inside uvloop and the kernel calls) need py-spy to pause the process for each sample
    native = ["--native"] if os.environ.get("GROVE_BENCH_PYSPY_NATIVE") == "1" else ["--nonblocking"]
    rec = subprocess.Popen(
        [str(spy), "record", *native, "--format", "raw", "-r", "200", "-o", out, "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        rec.send_signal(2)  # py-spy writes its file on SIGINT
        try:
            rec.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rec.kill()
            rec.wait()


def ttft_suite(vr: Path | None, logs: Path, root: Path) -> TtftReport:
    """Start the two workers and both routers once, measure every target in rotated rounds."""
    from grove_pipelines.local.tiny_model import write_tiny_model
    from runtime.engines.vllm import VLLMConfig, VLLMProcess, start_together
    from tests.bench.router_bench import our_router, process, vllm_router

    model = write_tiny_model(root / ".cache" / "tiny-model")
    workers = [
        VLLMProcess(VLLMConfig(model=model, cpu_bind=str(i)), log_dir=logs, name=f"vllm-ttft-{i}")
        for i in range(2)
    ]
    print("starting two aggregated vLLM workers (1-2 min)", flush=True)
    report = TtftReport()
    try:
        start_together(workers, 480)
        urls = [w.url for w in workers]
        routers = [
            our_router([a for u in urls for a in ("--worker", u)] + ["--policy", "round_robin"], free_port())
        ]
        if vr is not None:
            routers.append(vllm_router(vr, ["--worker-urls", *urls, "--policy", "round_robin"], free_port()))
        with ExitStack() as stack:
            ports: dict[str, list[int]] = {"direct": [w.port for w in workers]}
            pids: dict[str, int] = {}
            for name, argv in routers:
                port = int(argv[argv.index("--port") + 1])
                proc = stack.enter_context(
                    process(name, argv, f"http://{HOST}:{port}/health", logs / f"{name}-ttft.log")
                )
                ports[name] = [port]
                pids[name] = proc.pid
                if name == "router":
                    stack.enter_context(_pyspy(proc.pid))
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            for conc in CONCURRENCIES:
                for round_ in range(RUNS):
                    by_label = asyncio.run(
                        interleaved_load(
                            ports, concurrency=conc, cycles=COUNT * min(conc, 2), warmup=WARMUP, shift=round_
                        )
                    )
                    for label, result in by_label.items():
                        report.runs.setdefault((conc, label), []).append(result)
                    print(
                        f"  concurrency {conc}, round {round_}: TTFT p50 ms "
                        + ", ".join(f"{lb} {pct(r.ttft, 50):.2f}" for lb, r in by_label.items())
                        + "; errors "
                        + (", ".join(f"{lb} {dict(r.why)}" for lb, r in by_label.items() if r.errors) or "0"),
                        flush=True,
                    )
            report.cpu_s = {name: _cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    finally:
        for w in workers:
            w.stop()
    return report


if __name__ == "__main__":
    from tests.bench.router_bench import CACHE, ROOT, vllm_router_binary

    started = time.monotonic()
    rep = ttft_suite(vllm_router_binary(), CACHE / "logs", ROOT)
    print(rep.table())
    print(rep.summary())
    print(f"took {time.monotonic() - started:.0f} s")
