"""The pipeline: its body names no stage directly; everything goes through ``helpers``."""

from __future__ import annotations

import asyncio
from typing import Any

from grove_pipelines import pipeline, stage
from tests.graph.toolpkg import helpers, tools


@stage(name="plan")
class Planner:
    """A class stage whose method helper calls a stage from a registry."""

    async def __call__(self, text: str) -> str:
        return await self.helper(text)

    async def helper(self, text: str) -> str:
        return str(await helpers.REGISTRY["calc"](text))


plan = Planner


@pipeline(name="toolbox")
async def agent(question: str) -> dict[str, Any]:
    docs = await helpers.retrieve(question)
    loop = await asyncio.gather(*(tool(question) for tool in tools.LOOP_TOOLS))
    return {
        "docs": docs,
        "calc": await helpers.REGISTRY["calc"](question),
        "loop": loop,
        "fmt": await helpers.REGISTRY["nested"]["more"][0](docs),
        "weather": await helpers.KIT.weather(question),
        "units": await helpers.UNITS.convert(3),
        "shout": await helpers.SHOUT(question),
        "echo": await helpers.logged_echo(question),
        "summary": await helpers.Agent.summary(question),
        "grade": await helpers.Agent.judge(question),
        "plan": await helpers.PLAN(question),
        "dated": await helpers.with_default(question),
        "captured": await helpers.CALL_CAPTURED(question),
        "answer": await helpers.ask(question, docs),
    }
