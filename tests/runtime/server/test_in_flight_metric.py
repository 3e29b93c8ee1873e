"""The pipeline server's in-flight gauge counts the requests running now, as /metrics reads it mid-request."""

from __future__ import annotations

import asyncio

import pytest

from grove_pipelines import pipeline, stage
from grove_pipelines.spec.server_metrics import PIPELINE_IN_FLIGHT
from runtime.server import build_app
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

GATE: dict[str, asyncio.Event] = {}


@stage
async def hold(x: int) -> int:
    GATE["entered"].set()
    await GATE["open"].wait()
    return x


@pipeline(name="held")
async def held(x: int) -> int:
    return await hold(x)


def _in_flight(page: str) -> float | None:
    line = f'{PIPELINE_IN_FLIGHT}{{pipeline="held"}} '
    values = [float(row[len(line) :]) for row in page.splitlines() if row.startswith(line)]
    return values[0] if values else None


async def test_in_flight_is_the_number_of_running_requests() -> None:
    GATE.update(entered=asyncio.Event(), open=asyncio.Event())
    async with serving(build_app([make_executor(held, hold)])) as (_, http):
        assert _in_flight((await http.get("/metrics")).text) is None  # no request yet: no series
        running = asyncio.ensure_future(http.post("/v1/pipelines/held", json={"x": 1}))
        await asyncio.wait_for(GATE["entered"].wait(), 10)
        assert _in_flight((await http.get("/metrics")).text) == 1.0
        GATE["open"].set()
        assert (await running).status_code == 200
        assert _in_flight((await http.get("/metrics")).text) == 0.0
