"""The in-process executor: real concurrency, branches, loop guard, timeouts, retries, undeclared calls."""

from __future__ import annotations

import asyncio
import time
import types

import pytest

from grove_pipelines import pipeline, stage
from runtime.server.errors import (
    LoopLimitError,
    StageFailedError,
    StageTimeoutError,
    StageUpstreamError,
    UndeclaredCallError,
)
from tests.runtime.server.helpers import make_executor


async def test_fan_out_runs_stages_concurrently() -> None:
    """Each stage waits until the other has begun: only a concurrent fan-out finishes (no clock read)."""
    began = {"a": asyncio.Event(), "b": asyncio.Event()}

    @stage
    async def slow_a(x: int) -> int:
        began["a"].set()
        await asyncio.wait_for(began["b"].wait(), 10)  # run one after the other, this times out
        return x + 1

    @stage
    async def slow_b(x: int) -> int:
        began["b"].set()
        await asyncio.wait_for(began["a"].wait(), 10)
        return x * 10

    @pipeline(name="fan")
    async def fan(x: int) -> list[int]:
        return list(await asyncio.gather(slow_a(x), slow_b(x)))

    executor = make_executor(fan)
    assert await executor.run({"x": 2}) == [3, 20]


async def test_branches_call_only_the_taken_stage() -> None:
    calls: list[str] = []

    @stage
    async def shout(text: str) -> str:
        calls.append("shout")
        return text.upper()

    @stage
    async def whisper(text: str) -> str:
        calls.append("whisper")
        return text.lower()

    @pipeline(name="branchy")
    async def branchy(text: str, loud: bool) -> str:
        return await (shout(text) if loud else whisper(text))

    executor = make_executor(branchy)
    assert await executor.run({"text": "Hi", "loud": True}) == "HI"
    assert await executor.run({"text": "Hi", "loud": False}) == "hi"
    assert calls == ["shout", "whisper"]


async def test_bounded_loop_runs_and_runaway_loop_is_stopped() -> None:
    @stage
    async def step(n: int) -> int:
        return n + 1

    @pipeline(name="loopy", max_iterations=5)
    async def loopy(until: int) -> int:
        n = 0
        while n < until:
            n = await step(n)
        return n

    executor = make_executor(loopy)
    assert await executor.run({"until": 5}) == 5  # exactly max_iterations calls is fine
    with pytest.raises(LoopLimitError) as info:
        await executor.run({"until": 1000})
    assert info.value.stage == "step" and info.value.status == 500
    assert "'step' was called more than 5 times" in str(info.value)
    assert await executor.run({"until": 3}) == 3  # the count is per request


async def test_timeout_cuts_a_slow_stage_and_names_it() -> None:
    @stage(timeout_s=0.2)
    async def hang(x: int) -> int:
        await asyncio.sleep(30)
        return x

    @pipeline(name="hangs")
    async def hangs(x: int) -> int:
        return await hang(x)

    started = time.perf_counter()
    with pytest.raises(StageTimeoutError) as info:
        await make_executor(hangs).run({"x": 1})
    assert time.perf_counter() - started < 5
    assert info.value.status == 504 and info.value.stage == "hang"
    assert "'hang' did not finish within its timeout of 0.2 s" in str(info.value)


async def test_timeout_applies_per_attempt_and_retries_recover() -> None:
    attempts: list[int] = []

    @stage(timeout_s=0.2, retries=2)
    async def sometimes_slow(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 3:
            await asyncio.sleep(30)
        return x * 2

    @pipeline(name="recovers")
    async def recovers(x: int) -> int:
        return await sometimes_slow(x)

    assert await make_executor(recovers).run({"x": 4}) == 8
    assert attempts == [4, 4, 4]


@pytest.mark.parametrize(("retries", "succeeds"), [(2, True), (1, False)])
async def test_retries_repeat_a_failing_stage(retries: int, succeeds: bool) -> None:
    attempts = []

    @stage(retries=retries)
    async def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) <= 2:
            raise ConnectionResetError("tool backend hiccup")
        return x

    @pipeline(name="flaky-pipe")
    async def flaky_pipe(x: int) -> int:
        return await flaky(x)

    executor = make_executor(flaky_pipe)
    if succeeds:
        assert await executor.run({"x": 7}) == 7
        assert len(attempts) == 3
    else:
        with pytest.raises(StageFailedError) as info:
            await executor.run({"x": 7})
        assert len(attempts) == 2
        assert info.value.stage == "flaky" and "ConnectionResetError: tool backend hiccup" in str(info.value)
    text = executor.metrics.render().decode()
    assert 'grove_stage_calls_total{caller="frontend",outcome="retry",stage="flaky"}' in text


async def test_calling_a_stage_that_is_not_an_edge_names_both_stages() -> None:
    @stage
    async def hidden(x: int) -> int:
        return x

    tools = types.ModuleType("tools")  # looked up by a computed name: the code scan cannot see this call
    tools.hidden = hidden  # type: ignore[attr-defined]

    @stage
    async def planner(x: int) -> int:
        return int(await getattr(tools, "hid" + "den")(x))

    @pipeline(name="sneaky")
    async def sneaky(x: int) -> int:
        return await planner(x)

    with pytest.raises(UndeclaredCallError) as info:
        await make_executor(sneaky).run({"x": 1})
    assert (info.value.caller, info.value.callee) == ("planner", "hidden")
    assert "stage 'planner' called stage 'hidden'" in str(info.value)
    line = planner.target.__code__.co_firstlineno
    assert str(info.value).endswith(
        f"add depends_on=[\"hidden\"] to the @stage decorator of 'planner' at tests/runtime/server/test_executor.py:{line}"
    )


async def test_depends_on_declares_the_hidden_edge() -> None:
    @stage
    async def hidden(x: int) -> int:
        return x + 1

    tools = {"hidden": hidden}

    @stage(depends_on=[hidden])
    async def planner(x: int) -> int:
        return await tools["hidden"](x)

    @pipeline(name="declared")
    async def declared(x: int) -> int:
        return await planner(x)

    assert await make_executor(declared).run({"x": 1}) == 2


async def test_nested_stage_errors_keep_the_failing_stage_and_are_not_retried_by_the_caller() -> None:
    calls = []

    @stage
    async def inner(x: int) -> int:
        calls.append("inner")
        raise ValueError(f"bad {x}")

    @stage(retries=3)
    async def outer(x: int) -> int:
        calls.append("outer")
        return await inner(x)

    @pipeline(name="nested")
    async def nested(x: int) -> int:
        return await outer(x)

    with pytest.raises(StageFailedError) as info:
        await make_executor(nested).run({"x": 5})
    assert info.value.stage == "inner" and "ValueError: bad 5" in str(info.value)
    assert calls == ["outer", "inner"]


async def test_llm_stage_without_endpoint_is_an_upstream_error() -> None:
    from grove_pipelines import llm

    model = llm("writer", model="some/model")

    @pipeline(name="writes")
    async def writes(topic: str) -> str:
        return await model.chat(topic)

    with pytest.raises(StageUpstreamError) as info:
        await make_executor(writes).run({"topic": "x"})
    assert info.value.status == 502 and "GP_LLM_URL_WRITER" in str(info.value)


async def test_cancelling_the_request_cancels_in_flight_stage_calls() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    @stage
    async def long_tool(x: int) -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return x

    @pipeline(name="long")
    async def long(x: int) -> list[int]:
        return list(await asyncio.gather(long_tool(x), long_tool(x + 1)))

    task = asyncio.ensure_future(make_executor(long).run({"x": 1}))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_warm_up_makes_class_stages_before_the_first_request() -> None:
    made: list[str] = []

    @stage
    class Index:
        def __init__(self) -> None:
            made.append("index")

        async def __call__(self, q: str) -> str:
            return q

    @stage
    class Broken:
        def __init__(self) -> None:
            raise OSError("model file missing")

        async def __call__(self, q: str) -> str:
            return q

    @pipeline(name="warm")
    async def warm(q: str, broken: bool = False) -> str:
        return await (Broken(q) if broken else Index(q))

    executor = make_executor(warm)
    assert await executor.warm_up() == ["broken"]
    assert made == ["index"]
    assert await executor.run({"q": "x"}) == "x" and made == ["index"]
    with pytest.raises(StageFailedError, match="'broken' failed: OSError: model file missing"):
        await executor.run({"q": "x", "broken": True})


async def test_an_undeclared_call_from_the_body_names_the_calls_line_to_add() -> None:
    @stage
    async def hidden(x: int) -> int:
        return x

    @stage
    async def shown(x: int) -> int:
        return x

    tools = types.ModuleType("tools")
    tools.hidden = hidden  # type: ignore[attr-defined]

    @pipeline(name="sneaky")
    async def sneaky(x: int) -> int:
        return int(await shown(x)) + int(await getattr(tools, "hid" + "den")(x))

    with pytest.raises(UndeclaredCallError) as info:
        await make_executor(sneaky).run({"x": 1})
    assert (info.value.caller, info.value.callee) == ("frontend", "hidden")
    assert str(info.value) == (
        "the pipeline body called stage 'hidden', which is not an edge of the pipeline graph; the code scan "
        'cannot see this call: add calls=["hidden"] to @pipeline(name="sneaky", ...)'
    )
