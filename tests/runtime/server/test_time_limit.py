"""TimeLimit behaves as asyncio.timeout does: each scenario runs under both and their outcomes must agree.

The reference is the standard library's own ``asyncio.timeout``, run on the same kind of loop
(asyncio's and uvloop's) in the same scenario; the outcome is what the block's caller sees (its
value or the exception's type), whether the limit says it expired, and what is left of the task's
cancellation requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import uvloop

from runtime.server import time_limit
from runtime.server.time_limit import TimeLimit

pytestmark = pytest.mark.timeout(30)

Limit = Callable[[float | None], AbstractAsyncContextManager[Any]]


def _standard(delay: float | None) -> AbstractAsyncContextManager[Any]:
    return asyncio.timeout(delay)


@asynccontextmanager
async def _ours_cm(delay: float | None) -> Any:
    with TimeLimit(delay) as limit:
        yield limit


def _ours(delay: float | None) -> AbstractAsyncContextManager[Any]:
    return _ours_cm(delay)


async def _outcome(limit: Limit, delay: float | None, body: Callable[[], Awaitable[Any]]) -> tuple[Any, ...]:
    """(value or exception type, expired, the task's cancellation requests left)."""
    scope = None
    try:
        async with limit(delay) as scope:
            result: Any = await body()
    except BaseException as exc:  # noqa: BLE001  (the outcome is the exception's type)
        result = type(exc)
    task = asyncio.current_task()
    assert task is not None
    return result, scope is not None and scope.expired(), task.cancelling()


def _both(scenario: Callable[[Limit], Coroutine[Any, Any, Any]]) -> None:
    """``scenario`` under asyncio.timeout and under TimeLimit, on both loops: equal outcomes."""
    for factory in (asyncio.new_event_loop, uvloop.new_event_loop):
        outcomes: list[Any] = []
        for limit in (_standard, _ours):
            with asyncio.Runner(loop_factory=factory) as runner:
                outcomes.append(runner.run(scenario(limit)))
        assert outcomes[0] == outcomes[1], (factory, outcomes)


async def _value(seconds: float, value: Any = "done") -> Any:
    await asyncio.sleep(seconds)
    return value


def test_a_block_that_ends_in_time_returns_its_value() -> None:
    async def scenario(limit: Limit) -> Any:
        return [
            await _outcome(limit, 5.0, lambda: _value(0.01)),
            await _outcome(limit, None, lambda: _value(0)),
        ]

    _both(scenario)


def test_a_block_past_its_limit_raises_timeout_and_leaves_the_task_uncancelled() -> None:
    async def scenario(limit: Limit) -> Any:
        late = await _outcome(limit, 0.05, lambda: _value(10))
        after = await _value(0.01, "still runs")  # the task goes on: no cancellation is left over
        return late, after

    _both(scenario)
    with asyncio.Runner() as runner:
        outcome = runner.run(_outcome(_ours, 0.05, lambda: _value(10)))
    assert outcome == (TimeoutError, True, 0)


def test_a_limit_already_past_ends_the_block_at_its_first_wait() -> None:
    async def scenario(limit: Limit) -> Any:
        return [await _outcome(limit, delay, lambda: _value(1)) for delay in (0, -1.0)]

    _both(scenario)


def test_nested_limits_the_earlier_one_ends_the_block_and_only_it_expired() -> None:
    async def inner_first(limit: Limit) -> Any:
        async def body() -> Any:
            return await _outcome(limit, 0.05, lambda: _value(10))

        return await _outcome(limit, 5.0, body)

    async def outer_first(limit: Limit) -> Any:
        seen: list[Any] = []

        async def body() -> Any:
            seen.append(await _outcome(limit, 5.0, lambda: _value(10)))
            return seen

        return await _outcome(limit, 0.05, body), seen

    _both(inner_first)
    _both(outer_first)


def test_someone_elses_cancellation_goes_on_as_a_cancellation() -> None:
    async def cancelled_by_another_task(limit: Limit) -> Any:
        task = asyncio.ensure_future(_outcome(limit, 5.0, lambda: _value(10)))
        await asyncio.sleep(0.02)
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    async def cancelled_again_as_it_expires(limit: Limit) -> Any:
        async def body() -> Any:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                assert current is not None
                current.cancel()  # a second request, not the limit's: it must win
                raise

        task = asyncio.ensure_future(_outcome(limit, 0.05, body))
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    _both(cancelled_by_another_task)
    _both(cancelled_again_as_it_expires)


def test_limits_that_ended_in_time_do_not_pile_up_and_a_later_one_still_fires() -> None:
    async def scenario() -> tuple[int, tuple[Any, ...]]:
        for _ in range(5000):
            with TimeLimit(60.0):
                await asyncio.sleep(0)
        kept = len(time_limit._pending(asyncio.get_running_loop())._heap)
        return kept, await _outcome(_ours, 0.05, lambda: _value(10))

    for factory in (asyncio.new_event_loop, uvloop.new_event_loop):
        with asyncio.Runner(loop_factory=factory) as runner:
            kept, outcome = runner.run(scenario())
        assert kept <= 2 * (time_limit._SWEEP_AFTER + 1)  # swept: not 5000 ended limits
        assert outcome == (TimeoutError, True, 0)


def test_a_limit_is_entered_once_and_only_in_a_task() -> None:
    limit = TimeLimit(1.0)

    async def twice() -> None:
        with limit:
            pass
        with limit:
            pass

    with pytest.raises(RuntimeError), asyncio.Runner() as runner:
        runner.run(twice())
    with pytest.raises(RuntimeError):
        TimeLimit(1.0).__enter__()  # no running loop


def test_blocks_limited_to_one_instant_share_it_as_timeout_at_does() -> None:
    """A stream's chunks: each read is its own block, all under the stream's one deadline."""

    async def scenario(limit: Limit) -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + 0.2
        standard = limit is _standard

        def at_end(_: float | None) -> AbstractAsyncContextManager[Any]:
            return asyncio.timeout_at(end) if standard else _until_cm(end)

        first = await _outcome(at_end, None, lambda: _value(0.1))  # in time
        second = await _outcome(at_end, None, lambda: _value(0.3))  # the shared instant passes
        past = await _outcome(at_end, None, lambda: _value(0))  # entered after it: ends at its first wait
        return first, second, past

    _both(scenario)


@asynccontextmanager
async def _until_cm(when: float) -> Any:
    with TimeLimit.until(when) as limit:
        yield limit
