"""The router in front of workers that fail at random points: every client gets a whole answer or a clean error.

The workers are ``tests/runtime/chaos_vllm.py`` (each completion served by a seeded random behaviour:
proper, closed or reset at accept or after the request, cut short, or stalled past the router's read
timeout); ejection is off, so every request meets the chaos. Sequential and concurrent requests, streamed and not; aggregated
workers, and prefill/decode pairs (the prefill answer names its KV, as vLLM's kv_producer does).

The reference is what each request asked for (its number is in its prompt): a 200 must carry exactly
that request's answer (streamed: its pieces in order, then ``[DONE]``); a stream that broke after its
first byte must end with an error event and no ``[DONE]``; anything else is a JSON error with a 5xx
status and an error type. No request may outlast a bound set from the router's own deadlines.
"""

from __future__ import annotations

import asyncio
import json
import random

import aiohttp
import pytest

from tests.runtime.chaos_vllm import ChaosVLLM
from tests.runtime.conftest import MakeRouter

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

READ_TIMEOUT = 0.2
"""The router's read timeout: a stalled worker (``stall_s`` 0.6) costs this much per attempt."""
BOUND = 10.0
"""Any request ends within this: three attempts of a stalled worker each, and the rest is instant."""


async def _client(http: aiohttp.ClientSession, url: str, number: int, streamed: bool) -> None:
    """One request, checked against what request ``number`` must get."""
    body = {"model": "tiny", "prompt": f"request {number}", "max_tokens": 2, "stream": streamed}
    cut = False
    async with http.post(f"{url}/v1/completions", json=body) as r:
        raw = b""
        try:
            async for piece in r.content.iter_any():
                raw += piece
        except aiohttp.ClientPayloadError:  # the router ends a broken stream short, after its error event
            cut = True
    if r.status != 200:
        assert r.status >= 500 and not cut, (number, r.status, raw)
        assert json.loads(raw)["error"]["type"], (number, raw)
        return
    if not streamed:
        assert not cut and json.loads(raw)["choices"][0]["text"] == f"answer {number}", (number, raw)
        return
    events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
    if not cut:
        assert events[-1] == "[DONE]", (number, events)
        pieces = [json.loads(e)["choices"][0]["text"] for e in events[:-1]]
        assert "".join(pieces) == f"answer {number}", (number, events)
        return
    # broke after the first byte: the client is told, and what came before is this request's own
    assert "[DONE]" not in events and json.loads(events[-1])["error"]["type"], (number, events)
    pieces = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert f"answer {number}".startswith(pieces), (number, events)


@pytest.mark.parametrize(("mode", "seed"), [("aggregated", 7), ("aggregated", 8), ("pd", 9)])
async def test_workers_failing_at_random_points_give_every_client_a_whole_answer_or_a_clean_error(
    make_router: MakeRouter, mode: str, seed: int
) -> None:
    roles = ["worker", "worker"] if mode == "aggregated" else ["prefill", "prefill", "decode", "decode"]
    workers = [ChaosVLLM(seed + 100 * i, role) for i, role in enumerate(roles)]
    for w in workers:
        await w.start()
    pools = {role: [w.url for w in workers if w.role == role] for role in set(roles)}
    router = await make_router(
        **pools,
        policy="round_robin",
        retry={"backoff_base": 0},
        health={"eject_after": 1_000_000},
        timeouts={"read": READ_TIMEOUT},
    )
    rng = random.Random(seed)
    number = 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BOUND * 2)) as http:
            for batch in range(60):
                size = 1 if batch % 3 else 4
                numbers = list(range(number, number + size))
                number += size
                await asyncio.wait_for(
                    asyncio.gather(*(_client(http, router.url, n, rng.random() < 0.5) for n in numbers)),
                    BOUND,
                )
    finally:
        for w in workers:
            await w.stop()
    served = [b for w in workers for _, b in w.served]
    assert "ok" in served and len(set(served)) > 5  # the chaos happened, and answers too
