"""The router's background rounds: a failing round is logged and the rounds go on; stop ends them."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runtime.router.background import Background

pytestmark = pytest.mark.timeout(20)


async def test_a_failing_round_is_logged_and_the_rounds_go_on(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def action() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("first round breaks")

    background = Background("test-rounds")
    with caplog.at_level(logging.ERROR, logger="test.rounds"):
        background.repeat(action, 0.001, log=logging.getLogger("test.rounds"), failed="round failed")
        await asyncio.wait_for(third.wait(), 10)
        await background.stop()
    assert not background.running
    assert [r.getMessage() for r in caplog.records] == ["round failed"]
    assert caplog.records[0].exc_info is not None  # with its traceback
    stopped_at = len(calls)
    await asyncio.sleep(0.02)
    assert len(calls) == stopped_at  # no round after stop


async def test_wait_first_waits_one_interval_before_the_first_round() -> None:
    calls: list[float] = []

    async def action() -> None:
        calls.append(asyncio.get_running_loop().time())

    background = Background("test-wait-first")
    background.repeat(action, 3600, log=logging.getLogger("test.rounds"), failed="x", wait_first=True)
    await asyncio.sleep(0.05)
    await background.stop()
    assert calls == []  # an hour-long first wait: no round yet
    background.repeat(action, 3600, log=logging.getLogger("test.rounds"), failed="x")
    await asyncio.sleep(0.05)
    await background.stop()
    assert len(calls) == 1  # without it, the first round runs at once
