"""Router processes learn from each other's routing: every policy decides as one router does.

The reference is one router (one process) fed the same requests in the same order. Against it: two
or three routers linked as ``--processes N`` links them (``PeerLink`` over UNIX sockets, the shared
load board), each request routed by a process the test picks at random; and the real CLI with
``--processes 2`` in front of two fake vLLM workers (``tests/runtime/fake_vllm.py``) that record what
reaches them, a fresh connection per request so the kernel spreads them over both processes. The
sequences mix what policies learn: sessions over turns, fan-out siblings, shared system prompts,
cold prompts. Precise mode: each process subscribes to the workers' KV events itself (vLLM's own ZMQ
publisher as the workers' double, as in ``test_kv_events.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from runtime.engines.supervisor import free_port
from runtime.router.config import RouterConfig, load_config
from runtime.router.load_board import LoadBoard
from runtime.router.peer_link import PeerLink
from runtime.router.peer_wire import MAX_KEYS, MAX_LISTS, MAX_MESSAGE, FactWriter, decode_batch, fingerprint
from runtime.router.policies import POLICIES, RequestView
from runtime.router.policies.routed_fact import RoutedFact, session_digest
from runtime.router.policies.scorers.fanout import FanoutScorer
from runtime.router.policies.scorers.prefix import PrefixScorer
from runtime.router.policies.scorers.session import SessionAffinityScorer
from runtime.router.router import ROUTE_HEADER, Route, Router
from tests.polling import eventually
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.router.router_cli import router_process

pytestmark = pytest.mark.timeout(120)

URLS = [f"http://127.0.0.1:{9300 + i}" for i in range(3)]
SYSTEM = "You are a careful assistant that answers in one short paragraph. " * 6
DOC = "The shared document every fan-out sibling reads before its own question. " * 12
Make = Callable[[], RequestView]


def _streams(rng: random.Random) -> list[list[Make]]:
    """Requests in the order each stream must keep; the streams are interleaved at random."""

    def completion(prompt: str, user: str | None = None) -> Make:
        body: dict[str, Any] = {"model": "tiny", "prompt": prompt, "max_tokens": 8}
        if user is not None:
            body["user"] = user
        return lambda: RequestView("completions", dict(body))

    streams: list[list[Make]] = []
    for s in range(3):  # sessions: each turn's prompt extends the last one
        history = SYSTEM + f"Session {s} begins. "
        turns = []
        for t in range(3):
            history += f"Turn {t} of session {s}: tell me more about topic {rng.randrange(100)}. " * 3
            turns.append(completion(history, user=f"session-{s}"))
        streams.append(turns)
    for f in range(2):  # fan-out: siblings sharing one document, no session
        streams.append([completion(DOC + f"Question {f}.{q}: what does it say?") for q in range(3)])
    streams.append([completion(SYSTEM + f"A one-off question number {i}.") for i in range(4)])
    streams.append([completion(f"A cold prompt {i} " * 40) for i in range(3)])
    return streams


def _sequence(seed: int) -> list[Make]:
    rng = random.Random(seed)
    streams = [list(reversed(s)) for s in _streams(rng)]
    out = []
    while any(streams):
        out.append(rng.choice([s for s in streams if s]).pop())
    return out


def _decision(route: Route | None) -> tuple[str, str, str | None, str]:
    assert route is not None
    prefill = route.prefill.url if route.prefill is not None else None
    return route.mode, route.worker.url, prefill, route.reason


def _facts(route: Route) -> int:
    return 2 if route.prefill is not None else 1


def _received(router: Router) -> float:
    return float(router.metrics.of(router.metrics.peer_facts, "received").value)


@asynccontextmanager
async def _linked(config: RouterConfig, n: int) -> Any:
    """``n`` routers as ``serve_processes`` links them: one load board, a ``PeerLink`` each."""
    directory = Path(tempfile.mkdtemp(prefix="grove-t-"))  # short: a UNIX socket path has 108 bytes
    memory = LoadBoard.allocate(n)
    routers = [Router(config, board=LoadBoard(memory, n, i)) for i in range(n)]
    links = [PeerLink(directory, n, i, r.learn, r.metrics) for i, r in enumerate(routers)]
    for router, link in zip(routers, links, strict=True):
        router.peers = link
        await link.start()
    try:
        for link in links:
            assert await link.connected(10), "the routers did not link up"
        yield routers
    finally:
        for link in links:
            await link.close()
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()


async def _replay(
    routers: list[Router], sequence: list[Make], seed: int, linked: bool, order: list[int] | None = None
) -> list[Any]:
    """Route each request on a random router (or the ``order`` given), then wait (bounded) until the
    others learnt its facts."""
    rng = random.Random(seed)
    published = [0] * len(routers)
    decisions = []
    for step, make in enumerate(sequence):
        index = order[step] if order is not None else rng.randrange(len(routers))
        req = make()
        route = routers[index].plan(req)
        assert route is not None
        routers[index].commit(route, req)
        decisions.append(_decision(route))
        published[index] += _facts(route)
        if linked:
            await eventually(
                lambda: all(_received(r) == sum(published) - published[i] for i, r in enumerate(routers)),
                timeout=10,
                what="every router learnt the others' facts",
            )
    return decisions


def _learnt(router: Router) -> dict[str, Any]:
    """What a router's policies and decider learnt (without times: each process stamps a fact as it came)."""
    out: dict[str, Any] = {"decider": {u: list(lru) for u, lru in router.decider.index._lru.items()}}
    for role, policy in router.policies.items():
        out[f"{role}/turn"] = policy.picker._next  # type: ignore[attr-defined]
        for part, _ in policy.scorers:
            if isinstance(part, PrefixScorer):
                out[f"{role}/index"] = {u: list(lru) for u, lru in part.index._lru.items()}
                out[f"{role}/feedback"] = part.feedback._routed if part.feedback else None
            elif isinstance(part, SessionAffinityScorer):
                out[f"{role}/sessions"] = {key: url for key, (url, _) in part._where.items()}
            elif isinstance(part, FanoutScorer):
                out[f"{role}/fanout"] = {block: url for block, (url, _) in part._recent.items()}
    return out


def _reference(config: RouterConfig, sequence: list[Make]) -> list[Any]:
    return _reference_on(Router(config.model_copy(update={"processes": 1})), sequence)


PREFIX = {"name": "prefix", "params": {"fanout_window": 600.0}}  # siblings however slow the machine
CONFIGS: dict[str, dict[str, Any]] = {
    "prefix": {"worker": URLS, "policy": PREFIX},
    "prefix-pd-conditional": {
        "prefill": URLS[:2],
        "decode": [u.replace("93", "94") for u in URLS],
        "policy": PREFIX,
        "disaggregation": {"mode": "conditional", "min_uncached_tokens": 200},
    },
    "least_loaded": {"worker": URLS, "policy": "least_loaded"},
    "round_robin": {"worker": URLS, "policy": "round_robin"},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("n", [2, 3])
async def test_linked_processes_decide_as_one_router(name: str, n: int) -> None:
    config = load_config(overrides={**CONFIGS[name], "processes": n})
    sequence = _sequence(seed=n)
    one = Router(config.model_copy(update={"processes": 1}))
    reference = _reference_on(one, sequence)
    async with _linked(config, n) as routers:
        decisions = await _replay(routers, sequence, seed=n, linked=True)
    assert decisions == reference
    for router in routers:  # and each process knows what the one router knows
        assert _learnt(router) == _learnt(one)
    reasons = " ".join(d[3] for d in reference)
    if name.startswith("prefix"):  # the sequence exercises what the policy learns
        for learnt in ("session-affinity", "fan-out sibling", "cache-hit"):
            assert learnt in reasons
        state = _learnt(one)
        role = "decode" if "pd" in name else "worker"
        for kind in ("index", "feedback", "sessions", "fanout"):
            assert state[f"{role}/{kind}"], kind
    if name == "prefix-pd-conditional":
        assert {d[0] for d in reference} == {"disaggregated", "local-prefill"}
    # the same processes without their links decide otherwise: the facts are what makes them agree
    memory = LoadBoard.allocate(n)
    alone = [Router(config, board=LoadBoard(memory, n, i)) for i in range(n)]
    assert await _replay(alone, sequence, seed=n, linked=False) != reference


def test_every_registered_policy_is_accepted_with_several_processes() -> None:
    for name in POLICIES:
        for key in ("policy", "decode_policy"):
            config = load_config(
                overrides={"prefill": URLS[:1], "decode": URLS[1:], key: name, "processes": 2}
            )
            assert config.processes == 2 and config.policy_for("decode").name == name


def test_a_fact_crosses_the_wire_unchanged_and_a_hostile_batch_is_refused() -> None:
    fact = RoutedFact(
        URLS[0],
        time.monotonic(),
        session_digest("s" * 10_000),
        prompt_chars=123_456,
        cached_chars=1024,
        blocks={256: [hash(("a", i)) for i in range(40)], 64: [-(2**63) + 1, 2**63 - 1]},
        kv_keys=[hash((i, (1, 2))) for i in range(30)],
    )
    writer = FactWriter()
    writer.add("decode", fact)
    writer.add("prefill", RoutedFact(URLS[1], 1.5))
    [batch] = writer.take()
    decoded = decode_batch(batch, fingerprint())
    assert decoded.error is None
    assert decoded.facts == [("decode", fact), ("prefill", RoutedFact(URLS[1], 1.5))]
    # a very long prompt's hashes are cut to the first MAX_KEYS: still a prefix of the prompt
    writer.add("worker", RoutedFact(URLS[0], 2.0, blocks={16: list(range(MAX_KEYS + 5))}))
    assert writer.truncated == 1
    [(_, long)] = decode_batch(writer.take()[0], fingerprint()).facts
    assert long.blocks[16] == list(range(MAX_KEYS))
    # the largest record there can be is one message, within what a peer reads
    widest = {size: list(range(MAX_KEYS + 1)) for size in range(16, 16 + MAX_LISTS + 2)}
    writer.add(
        "worker",
        RoutedFact(
            "http://" + "h" * 5000, 3.0, session_digest("s"), blocks=widest, kv_keys=list(range(MAX_KEYS + 9))
        ),
    )
    [message] = writer.take()
    assert len(message) <= MAX_MESSAGE
    [(_, wide)] = decode_batch(message, fingerprint()).facts
    assert len(wide.blocks) == MAX_LISTS and wide.kv_keys == list(range(MAX_KEYS))
    assert decode_batch(message + bytes(MAX_MESSAGE), fingerprint()).error == "malformed"
    assert decode_batch(batch, fingerprint() + 1).error == "foreign"
    for hostile in (b"", batch[:3], b"XXXX" + batch[4:], batch[:-3], batch + b"\x01"):
        out = decode_batch(hostile, fingerprint())
        assert out.error == "malformed"
    rng = random.Random(5)
    for _ in range(300):  # random corruption: refused or decoded, never an exception
        corrupt = bytearray(batch)
        for _ in range(rng.randrange(1, 6)):
            corrupt[rng.randrange(12, len(corrupt))] = rng.randrange(256)
        decode_batch(bytes(corrupt), fingerprint())


async def test_the_cli_with_two_processes_places_requests_as_one_router(tmp_path: Path) -> None:
    """``grove-pipelines router --processes 2`` with the prefix policy: each placement as one router's."""
    fakes = [FakeVLLM(name=f"w{i}") for i in range(2)]
    urls = [await f.start() for f in fakes]
    config_file = tmp_path / "router.json"
    settings = {"worker": urls, "policy": PREFIX, "health": {"cache_stats_interval": 0}}
    config_file.write_text(json.dumps(settings))
    port = free_port()
    args = ["--config", str(config_file), "--port", str(port), "--processes", "2"]
    sequence = _sequence(seed=7)
    reference = _reference(load_config(overrides=settings), sequence)
    placed, processes = [], []
    try:
        async with router_process(*args, "--debug-routing", "--log-level", "error") as proc:
            assert proc.stderr is not None
            line = await asyncio.wait_for(proc.stderr.readline(), 90)  # once every process has linked up
            assert b"router listening on" in line, line
            for make in sequence:
                body = make().body
                before = [len(f.completions()) for f in fakes]
                connector = aiohttp.TCPConnector(
                    force_close=True
                )  # a new connection: the kernel picks a process
                async with (
                    aiohttp.ClientSession(connector=connector) as http,
                    http.post(f"http://127.0.0.1:{port}/v1/completions", json=body) as reply,
                ):
                    assert reply.status == 200, await reply.text()
                    route = dict(p.split("=", 1) for p in reply.headers[ROUTE_HEADER].split("; "))
                reached = [k for k, f in enumerate(fakes) if len(f.completions()) > before[k]]
                assert len(reached) == 1 and urls[reached[0]] == route["worker"]
                assert fakes[reached[0]].completions()[-1].body["prompt"] == body["prompt"]
                placed.append(route["worker"])
                processes.append(route["process"])
    finally:
        for fake in fakes:
            await fake.stop()
    assert placed == [d[1] for d in reference]
    assert set(processes) == {"0", "1"}  # both processes routed some of the sequence
    assert proc.returncode == 0


def _precise(router: Router) -> Any:
    prefix = next(s for s, _ in router.policies["worker"].scorers if s.name == "prefix-scorer")
    return prefix.precise


async def test_precise_mode_each_process_follows_the_events_and_learns_the_others_pending_keys(
    tiny_model: Path,
) -> None:
    """Each process subscribes to every worker's KV events itself; a prompt one process just routed counts
    as pending on its worker in the others too, so its sibling follows it whichever process takes it."""
    from vllm.distributed import kv_events as vllm_events

    from runtime.router.policies.cache.prompt_tokens import PromptTokenizer

    directory = Path(tempfile.mkdtemp(prefix="grove-kv-"))
    endpoints = {url: f"ipc://{directory / f'w{i}.sock'}" for i, url in enumerate(URLS[:2])}
    publishers = {
        url: vllm_events.ZmqEventPublisher(data_parallel_rank=0, endpoint=ep) for url, ep in endpoints.items()
    }
    params = {
        "tokenizer": str(tiny_model),
        "kv_events": endpoints,
        "kv_block_size": 4,
        "kv_pending_ttl": 600.0,
        "fanout_weight": 0,
    }
    config = load_config(
        overrides={"worker": URLS[:2], "policy": {"name": "prefix", "params": params}, "processes": 2}
    )
    one = Router(config.model_copy(update={"processes": 1}))
    tokenizer = PromptTokenizer(str(tiny_model))

    def completion(prompt: str) -> RequestView:
        return RequestView("completions", {"model": "tiny", "prompt": prompt, "max_tokens": 8})

    held = "A prompt the first worker's events say it holds, block by block. " * 4
    cold = "A prompt nobody holds yet, routed once and then again with more. " * 4
    tokens = tokenizer.tokens(completion(held))
    assert tokens is not None
    full = len(tokens) // 4 * 4

    def stored(hashes: list[int], ids: list[int]) -> Any:
        return vllm_events.KVEventBatch(
            ts=time.time(),
            events=[
                vllm_events.BlockStored(
                    block_hashes=hashes,
                    parent_block_hash=None,
                    token_ids=ids,
                    block_size=4,
                    lora_id=None,
                    medium="GPU",
                    lora_name=None,
                )
            ],
        )

    try:
        async with _linked(config, 2) as routers:
            everyone = [*routers, one]
            for router in everyone:
                await router.policies["worker"].start(URLS[:2])
            for (
                url,
                publisher,
            ) in publishers.items():  # a PUB drops what it sends before a subscription is through

                async def all_follow(url: str = url, publisher: Any = publisher) -> bool:
                    publisher.publish(stored([7], [1, 2, 3, 4]))
                    return all(_precise(r).index.size(url) > 0 for r in everyone)

                deadline = time.monotonic() + 20
                while not await all_follow():
                    assert time.monotonic() < deadline, "a router did not receive a worker's KV events"
                    await asyncio.sleep(0.05)
            publishers[URLS[0]].publish(stored(list(range(100, 100 + full // 4)), tokens[:full]))
            await eventually(
                lambda: all(_precise(r).index.size(URLS[0]) == 1 + full // 4 for r in everyone),
                timeout=20,
                what="every router applied the first worker's stored blocks",
            )
            sequence = [
                lambda: completion(held + " First question?"),
                lambda: completion(cold),
                lambda: completion(cold + " And a follow-up on the same text?"),
                lambda: completion(held + " Second question?"),
            ]
            reference = _reference_on(one, sequence)
            decisions = await _replay(routers, sequence, seed=0, linked=True, order=[1, 0, 1, 0])
            for router in everyone:
                await router.policies["worker"].close()
    finally:
        for publisher in publishers.values():
            publisher.shutdown()
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    assert decisions == reference
    assert reference[0][1] == URLS[0] and "kv-hit" in reference[0][3]
    assert reference[2][1] == reference[1][1] and "pending" in reference[2][3]


def _reference_on(one: Router, sequence: list[Make]) -> list[Any]:
    decisions = []
    for make in sequence:
        req = make()
        route = one.plan(req)
        assert route is not None
        one.commit(route, req)
        decisions.append(_decision(route))
    return decisions


async def test_a_peer_that_stops_reading_costs_dropped_facts_never_a_wait() -> None:
    """The hot path never blocks: with the peer's buffer full, a batch is dropped and counted."""
    config = load_config(overrides={"worker": URLS, "policy": PREFIX, "processes": 2})
    async with _linked(config, 2) as routers:
        sender, stalled = routers
        link, idle = sender.peers, stalled.peers
        assert isinstance(link, PeerLink) and isinstance(idle, PeerLink)
        for sock in idle._peers:  # the peer's loop stops reading (it is stuck)
            asyncio.get_running_loop().remove_reader(sock.fileno())
        dropped = sender.metrics.of(sender.metrics.peer_facts, "dropped")
        fact = RoutedFact(URLS[0], time.monotonic(), blocks={256: list(range(MAX_KEYS))})
        sent = 0
        while dropped.value == 0:
            assert sent < 100_000, "the peer's socket buffer never filled"
            link.publish("worker", fact)
            link.flush()
            sent += 1
        assert sender.metrics.of(sender.metrics.peer_facts, "sent").value == sent - 1
        # a fact about a worker this process does not know (yet) is not learnt
        assert not stalled.learn("worker", RoutedFact("http://10.9.9.9:8000", time.monotonic()))


def test_a_session_binding_keeps_the_newest_of_two_crossing_facts() -> None:
    """Two processes route one session's turns at once: whichever fact arrives last, the newer binding wins."""
    config = load_config(overrides={"worker": URLS, "policy": PREFIX})
    for order in ((1.0, 2.0), (2.0, 1.0)):
        router = Router(config)
        for at in order:
            url = URLS[0] if at == 2.0 else URLS[1]
            router.learn("worker", RoutedFact(url, 1000.0 + at, session=session_digest("s")))
        scorer = router.policies["worker"].scorers[0][0]
        assert scorer.worker_of("s", now=1003.0) == URLS[0]  # type: ignore[attr-defined]


def test_the_processes_get_one_hash_seed_and_the_parent_keeps_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.router.server import shared_hash_seed

    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    before = None
    seeds = set()
    for _ in range(2):
        with shared_hash_seed():
            seeds.add(os.environ["PYTHONHASHSEED"])
            code = "import sys; sys.stdout.write(str(hash('grove')))"
            runs = {
                subprocess.run(
                    [sys.executable, "-c", code], check=True, capture_output=True, text=True
                ).stdout
                for _ in range(2)
            }
            assert len(runs) == 1  # processes started inside hash text alike
        assert os.environ.get("PYTHONHASHSEED") == before
    assert len(seeds) == 2  # a new random seed for each router, not a constant clients could know
