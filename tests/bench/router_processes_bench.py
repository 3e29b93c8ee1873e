"""What several router processes cost and give: the routed facts they exchange, and 1 vs 2 processes.

(a) CPU per request of routing a request with the ``prefix`` policy (``plan`` and ``commit``, three
    workers, chat prompts of about 2k and 8k characters with a session) alone, and with a peer
    process linked (``runtime/router/peer_link.py``; both ends in this process): routing with the
    fact noted and encoded, sending it, and the peer's receiving and learning from it, with one
    fact a batch (a light load: one request a turn of the event loop) and 32 (a busy one: a batch
    carries every fact of a turn); the last column is what one peer adds to the router's CPU per
    request, both ends together (in the summary: one fact a batch, 2k characters).
(b) Requests/s at concurrency 32 against the instant upstream (``fast_upstream.py``, two workers),
    ``round_robin`` and ``prefix``, one and two processes, in rotated rounds (samples pooled).

Run: ``python -m tests.bench processes`` (part of ``make bench``, about a minute). CPU times are the
best of several repeats; on a shared machine every number is noisy: read the rows side by side.
Ends with ``router_2proc_vs_1proc_rps_prefix=<r> router_2proc_vs_1proc_rps_round_robin=<r>
peer_fact_added_us=<us>`` (the 2k-character row).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from runtime.engines.supervisor import free_port
from runtime.router.config import load_config
from runtime.router.load_board import LoadBoard
from runtime.router.peer_link import PeerLink
from runtime.router.policies import RequestView
from runtime.router.router import Router
from tests.bench.router_bench import BODY, HOST, ROOT, measure, merged, our_router, process

URLS = [f"http://127.0.0.1:{9500 + i}" for i in range(3)]
SYSTEM = "You are a careful assistant that answers in one short paragraph. " * 4
ROUNDS = 3
REQUESTS = 3200  # a multiple of the batch sizes


def _request(i: int, chars: int) -> RequestView:
    text = SYSTEM + f"Conversation {i % 50}: " + "and the question goes on " * (chars // 25)
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text[:chars]}]
    return RequestView("chat", {"model": "tiny", "messages": messages, "max_tokens": 16}, f"s{i % 50}")


def _routers(n: int) -> list[Router]:
    config = load_config(overrides={"worker": URLS, "policy": "prefix", "processes": n})
    memory = LoadBoard.allocate(n)
    return [Router(config, board=LoadBoard(memory, n, i)) for i in range(n)]


def _route_one(router: Router, i: int, chars: int) -> float:
    """Route request ``i`` as the router does (``plan``, ``commit``); its CPU seconds."""
    start = time.process_time()
    req = _request(i, chars)
    route = router.plan(req)
    assert route is not None
    router.commit(route, req)
    return time.process_time() - start


def _route(router: Router, chars: int) -> float:
    """CPU seconds per request of routing alone (timed per request, as the linked rows are)."""
    return sum(_route_one(router, i, chars) for i in range(REQUESTS)) / REQUESTS


async def _linked_costs(chars: int, batch: int) -> tuple[float, float, float]:
    """CPU seconds per request on two linked routers: route + encode, send (``batch`` facts a batch),
    and the peer's receiving and learning; timed apart, without turns of the event loop in between."""
    directory = Path(tempfile.mkdtemp(prefix="grove-b-"))
    pair = _routers(2)
    links = [PeerLink(directory, 2, i, r.learn, r.metrics) for i, r in enumerate(pair)]
    for router, link in zip(pair, links, strict=True):
        router.peers = link
        await link.start()
    for link in links:
        await link.connected(10)
    origin, link, peer = pair[0], links[0], links[1]
    inbound = peer._peers[0]  # the peer's end: read as its event loop would, when readable
    routed = sent = learnt = 0.0
    for i in range(REQUESTS):
        routed += _route_one(origin, i, chars)
        t1 = time.process_time()
        if (i + 1) % batch == 0:
            link.flush()
            t2 = time.process_time()
            peer._readable(inbound)
            sent, learnt = sent + t2 - t1, learnt + time.process_time() - t2
    received = pair[1].metrics.of(pair[1].metrics.peer_facts, "received").value
    assert received == REQUESTS, received
    for link in links:
        await link.close()
    directory.rmdir()
    return routed / REQUESTS, sent / REQUESTS, learnt / REQUESTS


async def _cpu_rows() -> tuple[list[str], float]:
    lines = ["\n(a) CPU per request, prefix policy, three workers, one peer (best of 5, µs)"]
    lines.append(
        "| prompt | facts a batch | route alone | route, fact noted | fact sent | peer: received + learnt "
        "| added, both |\n|---|---|---|---|---|---|---|"
    )
    added_2k = float("nan")
    for chars in (2000, 8000):
        for batch in (1, 32):  # one fact a turn of the event loop (light load), or many (busy)
            alone, costs = [], []
            for _ in range(5):
                alone.append(_route(_routers(2)[0], chars))  # the same board, no link
                costs.append(await _linked_costs(chars, batch))
            a = min(alone) * 1e6
            routed, sent, learnt = (min(c[k] for c in costs) * 1e6 for k in range(3))
            added = routed - a + sent + learnt
            lines.append(
                f"| {chars} chars | {batch} | {a:.1f} | {routed:.1f} | {sent:.1f} | {learnt:.1f} | {added:+.1f} |"
            )
            if chars == 2000 and batch == 1:
                added_2k = added
    return lines, added_2k


def _rps_rows() -> tuple[list[str], dict[str, float]]:
    logs = ROOT / ".cache" / "bench" / "logs"
    a, b = free_port(), free_port()
    upstream = [sys.executable, "-m", "tests.bench.fast_upstream", str(a), str(b)]
    lines = [f"\n(b) requests/s at c=32, fast upstream, two workers ({ROUNDS} rotated rounds)"]
    ratios: dict[str, float] = {}
    with process("fast upstream", upstream, f"http://{HOST}:{a}/health", logs / "fast-upstream-proc.log"):
        workers = ["--worker", f"http://{HOST}:{a}", "--worker", f"http://{HOST}:{b}"]
        candidates = {
            f"{policy} x{n}": our_router([*workers, "--policy", policy, "--processes", str(n)], free_port())[
                1
            ]
            for policy in ("round_robin", "prefix")
            for n in (1, 2)
        }
        ports = {name: int(argv[argv.index("--port") + 1]) for name, argv in candidates.items()}
        runs: dict[str, list] = {name: [] for name in candidates}
        with ExitStack() as stack:
            for name, argv in candidates.items():
                log = logs / f"router-{name.replace(' ', '-')}.log"
                stack.enter_context(process(name, argv, f"http://{HOST}:{ports[name]}/health", log))
            names = list(candidates)
            for i in range(ROUNDS):
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    runs[name].append(measure(ports[name], BODY, saturate=3.0, latency_n=100, stream_n=0))
        rps = {name: merged(runs[name])["sat"].rps for name in names}
        lines.append("| router | req/s |\n|---|---|")
        lines += [f"| {name} | {rps[name]:.0f} |" for name in names]
        for policy in ("round_robin", "prefix"):
            ratios[policy] = rps[f"{policy} x2"] / rps[f"{policy} x1"]
    return lines, ratios


def main() -> str:
    cpu, added = asyncio.run(_cpu_rows())
    print("\n".join(cpu), flush=True)
    rps, ratios = _rps_rows()
    print("\n".join(rps), flush=True)
    return (
        f"router_2proc_vs_1proc_rps_prefix={ratios['prefix']:.2f} "
        f"router_2proc_vs_1proc_rps_round_robin={ratios['round_robin']:.2f} peer_fact_added_us={added:.1f}"
    )


if __name__ == "__main__":
    print(main())
