"""The upstream pool against a worker that fails at random points: no request hangs, none is cut unseen.

The worker is ``tests/runtime/chaos_vllm.py``: each completion is served by a behaviour drawn from a
seeded generator (a proper answer, kept alive, closed after with ``connection: close`` or closed
idle a moment later; a close or a reset at accept or after the request; a body or stream cut short;
a stall). Sequential and concurrent requests, read whole or streamed. The reference is the worker's
own record of what it did with each request (its number is in its prompt): a proper answer must
arrive whole and equal to what was sent; a cut one must be an error, never a shorter body taken for
success; only a stall may time out, and every request ends well within its bound (a wait that
outlasts it is a lost wake-up, the defect this test was written after). At the end no connection
is left checked out.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from runtime.errors import UpstreamError, UpstreamTimeout
from runtime.http import UpstreamPool
from tests.runtime.chaos_vllm import PROPER, ChaosVLLM, answer_of, events_of

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

READ_TIMEOUT = 1.0
"""The pool's read timeout: a stall (``STALL_S``) ends in it; a proper answer never comes near it, even on
a loaded machine, so a timeout there is a wake-up lost."""
STALL_S = 1.5
BOUND = 5.0
"""Every request ends within this (the worker never waits longer than a stall)."""


async def _request(pool: UpstreamPool, url: str, number: int, streamed: bool) -> bytes | UpstreamError:
    """Request ``number``'s answer body, or the error that ended it."""
    body = json.dumps({"model": "tiny", "prompt": f"request {number}", "stream": streamed}).encode()
    try:
        reply = await pool.post(f"{url}/v1/completions", body, {})
        if not streamed:
            return await reply.read()
        return b"".join([piece async for piece in reply.chunks()])
    except UpstreamError as exc:
        return exc


@pytest.mark.parametrize("seed", [1, 2])
async def test_a_worker_failing_at_random_points_never_hangs_a_request_nor_cuts_an_answer(seed: int) -> None:
    worker = ChaosVLLM(seed, stall_s=STALL_S)
    await worker.start()
    pool = UpstreamPool(connect=2, read=READ_TIMEOUT, keepalive=30)
    rng = random.Random(seed * 1000)
    outcomes: dict[int, tuple[bool, bytes | UpstreamError]] = {}
    try:
        for batch in range(60):
            numbers = range(len(outcomes), len(outcomes) + (1 if batch % 3 else 4))
            streamed = {n: rng.random() < 0.5 for n in numbers}
            results = await asyncio.wait_for(
                asyncio.gather(*(_request(pool, worker.url, n, streamed[n]) for n in numbers)), BOUND
            )  # a TimeoutError here is a request that waited for nothing
            outcomes.update({n: (streamed[n], r) for n, r in zip(numbers, results, strict=True)})
    finally:
        await pool.close()
        await worker.stop()
    served = dict(worker.served)  # None below: closed before the request was read, on every attempt
    for n, (streamed, outcome) in outcomes.items():
        behaviour = served.get(n)
        if behaviour in PROPER:
            whole = b"".join(events_of(n)) if streamed else json.dumps(answer_of(n)).encode()
            assert outcome == whole, (n, behaviour, outcome)
        elif isinstance(outcome, bytes):  # cut or closed: an error, never a shorter body taken for an answer
            pytest.fail(f"request {n} ({behaviour}) got {outcome!r}")
        elif isinstance(outcome, UpstreamTimeout):
            assert behaviour == "stall", (n, behaviour, outcome)
    answered = sum(isinstance(o, bytes) for _, o in outcomes.values())
    assert 0 < answered < len(outcomes)  # both kinds happened
    assert not pool._busy  # no connection left checked out
