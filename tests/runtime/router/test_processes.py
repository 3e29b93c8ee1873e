"""Several router processes on one port: the shared load board, the same decisions as one router, one page.

The board's sums are checked against counts the test keeps itself; the policies' decisions with
two routers on one board against what one router (and a plain argmin over the test's own counts)
decides for the same sequence; the real ``--processes 2`` router against two fake vLLM workers
(``tests/runtime/fake_vllm.py``) that hold every request, so each decision can be checked against
the load the test knows is on each worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime.engines.supervisor import free_port
from runtime.router.config import load_config
from runtime.router.legs import Load
from runtime.router.load_board import SLOTS, LoadBoard
from runtime.router.metrics import RouterMetrics
from runtime.router.metrics_peers import MetricsPeers
from runtime.router.policies import RequestView
from runtime.router.router import Router
from runtime.router.server import share_limits
from runtime.router.workers import Worker
from tests.polling import eventually
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.router.router_cli import router_process

pytestmark = pytest.mark.timeout(90)

URLS = [f"http://127.0.0.1:{9100 + i}" for i in range(3)]


def _decisions(page: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "grove_router_decisions_total"
    )


def _req() -> RequestView:
    return RequestView("completions", {"model": "tiny", "prompt": "hello", "max_tokens": 8})


def test_board_sums_every_process_row_and_each_process_writes_only_its_own() -> None:
    memory = LoadBoard.allocate(3)
    boards = [LoadBoard(memory, 3, i) for i in range(3)]
    reference: Counter[tuple[str, str]] = Counter()
    tokens: Counter[tuple[str, str]] = Counter()
    rng = random.Random(7)
    held: list[tuple[int, str, str, int]] = []
    for _ in range(2000):
        if held and rng.random() < 0.45:
            p, role, url, n = held.pop(rng.randrange(len(held)))
            boards[p].add(role, url, -1, -n)
            reference[role, url] -= 1
            tokens[role, url] -= n
        else:
            p, role, url, n = (
                rng.randrange(3),
                rng.choice(["prefill", "decode"]),
                rng.choice(URLS),
                rng.randrange(100),
            )
            boards[p].add(role, url, 1, n)
            held.append((p, role, url, n))
            reference[role, url] += 1
            tokens[role, url] += n
        role, url = rng.choice(["prefill", "decode"]), rng.choice(URLS)
        reader = boards[rng.randrange(3)]
        assert reader.totals(role, url) == (reference[role, url], tokens[role, url])
    # a row is written by its process alone: zero a row and only that process's share disappears
    own = Counter((role, url) for p, role, url, _ in held if p == 1)
    memoryview(memory).cast("B").cast("q")[SLOTS * 3 : 2 * SLOTS * 3] = memoryview(bytes(SLOTS * 3 * 8)).cast(
        "q"
    )
    for role in ("prefill", "decode"):
        for url in URLS:
            assert boards[0].totals(role, url)[0] == reference[role, url] - own[role, url]


def test_a_full_row_reuses_slots_of_workers_with_nothing_in_flight() -> None:
    memory = LoadBoard.allocate(2)
    board, other = LoadBoard(memory, 2, 0), LoadBoard(memory, 2, 1)
    for i in range(SLOTS):  # every slot of row 0 keyed, all back at zero
        board.add("decode", f"http://gone-{i}", 1, 1)
        board.add("decode", f"http://gone-{i}", -1, -1)
    board.add("decode", "http://busy", 1, 5)
    board.add("decode", "http://new", 2, 3)
    other.add("decode", "http://new", 1, 1)
    assert other.totals("decode", "http://busy") == (1, 5)
    assert other.totals("decode", "http://new") == (3, 4)
    assert board.totals("decode", "http://gone-0") == (0, 0)


def _child(memory: object, url: str, n: int, done: object) -> None:
    board = LoadBoard(memory, 2, 1)
    board.add("worker", url, n, 10 * n)
    done.set()  # type: ignore[attr-defined]


def test_the_board_is_shared_with_a_spawned_process() -> None:
    context = multiprocessing.get_context("spawn")
    memory = LoadBoard.allocate(2)
    done = context.Event()
    proc = context.Process(target=_child, args=(memory, URLS[0], 3, done))
    proc.start()
    try:
        assert done.wait(60)
    finally:
        proc.join(30)
    board = LoadBoard(memory, 2, 0)
    board.add("worker", URLS[0], 1, 1)
    assert board.totals("worker", URLS[0]) == (4, 31)


def _routers(n: int, policy: str) -> list[Router]:
    config = load_config(overrides={"worker": URLS, "policy": {"name": policy}, "processes": max(n, 1)})
    memory = LoadBoard.allocate(n)
    return [Router(config, board=LoadBoard(memory, n, i)) for i in range(n)]


async def test_least_loaded_on_two_processes_decides_as_one_router_does() -> None:
    """Requests start and end in a random order on random processes; each choice is a least-loaded one."""
    two = _routers(2, "least_loaded")
    one = Router(load_config(overrides={"worker": URLS, "policy": {"name": "least_loaded"}}))
    rng = random.Random(11)
    held: list[tuple[Load, Load, str]] = []
    load: Counter[str] = Counter()  # the test's own count of what is in flight on each worker
    for _ in range(400):
        if held and rng.random() < 0.4:
            ours, single, url = held.pop(rng.randrange(len(held)))
            ours.release()
            single.release()
            load[url] -= 1
            continue
        router = two[rng.randrange(2)]
        route, reference = router.plan(_req()), one.plan(_req())
        assert route is not None and reference is not None
        least = min(load[u] for u in URLS)
        assert load[route.worker.url] == least  # the idlest, counting both processes' requests
        assert load[reference.worker.url] == least  # and so does one router alone
        held.append(
            (
                Load(router, route.worker, 8),
                Load(one, one.pools["worker"].get(route.worker.url), 8),
                route.worker.url,
            )  # type: ignore[arg-type]
        )
        load[route.worker.url] += 1


def test_a_legs_prompt_leaves_every_process_count_at_its_first_token() -> None:
    first, second = _routers(2, "least_loaded")
    worker = first.pools["worker"].workers[0]
    load = Load(first, worker, 108, prompt=100)  # 100 prompt tokens to compute, 8 to generate
    assert second.board is not None and second.board.totals("worker", worker.url) == (1, 108)
    load.prefilled()
    load.prefilled()  # a second first token changes nothing
    assert second.board.totals("worker", worker.url) == (1, 8)
    assert (worker.in_flight, worker.tokens_in_flight) == (1, 8)
    load.release()
    assert second.board.totals("worker", worker.url) == (0, 0)
    assert (worker.in_flight, worker.tokens_in_flight) == (0, 0)


def test_round_robin_per_process_keeps_the_workers_within_one_turn_per_process() -> None:
    two = _routers(2, "round_robin")
    rng = random.Random(3)
    sent: Counter[str] = Counter()
    for _ in range(301):
        route = two[rng.randrange(2)].plan(_req())
        assert route is not None
        sent[route.worker.url] += 1
    assert max(sent.values()) - min(sent.values()) <= 2  # each process is at most one turn ahead


def test_each_process_page_counts_every_process(tmp_path: Path) -> None:
    """Counters and histograms add up; the queue depth adds up; a worker's shared gauges are not doubled."""
    pages = [RouterMetrics() for _ in range(3)]
    worker = Worker(URLS[0], "worker", in_flight=4)
    for i, metrics in enumerate(pages):
        metrics.peers = MetricsPeers(tmp_path, 3, i)
        metrics.of(metrics.requests, "chat", "200").inc(i + 1)
        metrics.of(metrics.latency, "chat").observe(0.003 * (i + 1))
        metrics.watch_load(worker)
        metrics.queue_depth.set(i)
    for metrics in pages[1:]:
        assert metrics.peers is not None
        metrics.peers.publish(metrics.registry)
    pages[0].of(pages[0].requests, "chat", "200").inc(10)  # the scraped process's own numbers are fresh
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(pages[0].render().decode())
        for s in family.samples
    }
    assert (
        samples[("grove_router_requests_total", (("endpoint", "chat"), ("status", "200")))] == 1 + 2 + 3 + 10
    )
    assert samples[("grove_router_request_duration_seconds_count", (("endpoint", "chat"),))] == 3
    assert (
        samples[("grove_router_request_duration_seconds_bucket", (("endpoint", "chat"), ("le", "0.005")))]
        == 1
    )
    assert samples[("grove_router_request_duration_seconds_sum", (("endpoint", "chat"),))] == pytest.approx(
        0.018
    )
    assert samples[("grove_router_worker_in_flight", (("role", "worker"), ("worker", URLS[0])))] == 4
    assert samples[("grove_router_queue_depth", ())] == 0 + 1 + 2


def test_limits_are_split_between_the_processes() -> None:
    config = load_config(
        overrides={
            "worker": URLS,
            "processes": 3,
            "limits": {"max_connections": 1000, "max_concurrent": 10, "queue_size": 7},
        }
    )
    limits = share_limits(config).limits
    assert (limits.max_connections, limits.max_concurrent, limits.queue_size) == (333, 3, 2)


async def test_two_router_processes_route_each_request_to_the_least_loaded_worker() -> None:
    """The CLI's ``--processes 2``: held requests on fresh connections, whichever process takes each."""
    fakes = [FakeVLLM(name=f"w{i}") for i in range(2)]
    urls = [await f.start() for f in fakes]
    for fake in fakes:
        fake.set_delay(60)  # every completion is held until the test ends
    port = free_port()
    args = ["--port", str(port), "--processes", "2", "--policy", "least_loaded", "--log-level", "error"]
    args += [a for u in urls for a in ("--worker", u)]
    tasks: list[asyncio.Task[object]] = []
    sessions: list[aiohttp.ClientSession] = []
    try:
        async with router_process(*args) as proc:
            try:
                async with aiohttp.ClientSession() as http:

                    async def ready() -> bool:
                        try:
                            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                                return r.status == 200
                        except aiohttp.ClientError:
                            return False

                    # spawn imports the runtime in both processes: seconds on a busy machine
                    for _ in range(600):
                        if await ready():
                            break
                        await asyncio.sleep(0.1)
                    load = [0, 0]
                    for i in range(10):
                        # a new connection: the kernel picks a process
                        connector = aiohttp.TCPConnector(force_close=True)
                        session = aiohttp.ClientSession(connector=connector)
                        sessions.append(session)
                        body = {"model": "tiny", "prompt": f"request {i}", "max_tokens": 4}
                        tasks.append(
                            asyncio.create_task(
                                session.post(f"http://127.0.0.1:{port}/v1/completions", json=body)
                            )
                        )
                        before = [len(f.completions()) for f in fakes]
                        await eventually(
                            lambda b=before: sum(len(f.completions()) for f in fakes) > sum(b),  # type: ignore[misc]
                            timeout=30,
                            what=f"request {i} reached a worker",
                        )
                        chosen = next(k for k, f in enumerate(fakes) if len(f.completions()) > before[k])
                        assert load[chosen] == min(load), f"request {i} went to a busier worker: {load}"
                        load[chosen] += 1
                    assert load == [5, 5]

                    async def pages_count_every_decision() -> bool:
                        for _ in range(6):  # fresh connections: pages of both processes
                            connector = aiohttp.TCPConnector(force_close=True)
                            async with (
                                aiohttp.ClientSession(connector=connector) as fresh,
                                fresh.get(f"http://127.0.0.1:{port}/metrics") as r,
                            ):
                                if _decisions(await r.text()) != 10:
                                    return False
                        return True

                    for _ in range(150):  # another process's numbers are at most a second old on a page
                        if await pages_count_every_decision():
                            break
                        await asyncio.sleep(0.1)
                    else:
                        raise AssertionError("a /metrics page did not count both processes' decisions")
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for session in sessions:
                    await session.close()
    finally:
        for fake in fakes:
            await fake.stop()
    errors = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert proc.returncode == 0, errors


async def test_a_socket_directory_too_deep_is_one_error_line_before_any_process_starts(
    tmp_path: Path,
) -> None:
    """Peer sockets live in a temporary directory; a TMPDIR too deep for a UNIX socket path is named."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    env = {**os.environ, "TMPDIR": str(deep)}
    cli = str(Path(sys.executable).parent / "grove-pipelines")
    proc = await asyncio.create_subprocess_exec(
        cli, "router", "--worker", "http://127.0.0.1:1", "--processes", "2", "--port", str(free_port()),
        stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error: ") and "set TMPDIR" in lines[0], lines
    assert list(deep.iterdir()) == []  # the directory it made is gone again
