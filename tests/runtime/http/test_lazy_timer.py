"""LazyTimer: one expiry per passed deadline, later deadlines move it, earlier ones bring it forward."""

from __future__ import annotations

import asyncio

import pytest

from runtime.http.lazy_timer import LazyTimer

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(10)]


async def test_it_fires_once_at_the_deadline_in_force_and_not_when_disarmed() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    timer = LazyTimer(loop, lambda: fired.append(loop.time()))
    start = loop.time()
    timer.arm(start + 0.05)
    timer.arm(start + 0.15)  # later: the pending handle re-arms itself when it fires early
    await asyncio.sleep(0.3)
    assert len(fired) == 1 and fired[0] >= start + 0.15

    timer.arm(loop.time() + 0.3)
    timer.arm(loop.time() + 0.05)  # earlier: a new handle
    await asyncio.sleep(0.15)
    assert len(fired) == 2

    timer.arm(loop.time() + 0.05)
    timer.disarm()
    await asyncio.sleep(0.15)
    timer.arm(loop.time() + 0.05)
    timer.cancel()
    await asyncio.sleep(0.15)
    assert len(fired) == 2 and timer.deadline is None
