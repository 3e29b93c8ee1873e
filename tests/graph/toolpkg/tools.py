"""The stages: plain tools, stages made in a loop, and one LLM stage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from grove_pipelines import PD, Role, llm, stage


@stage
async def search(query: str) -> list[str]:
    return [f"{query} in depth", f"{query} basics"]


@stage
async def rerank(docs: list[str]) -> list[str]:
    return sorted(docs)


@stage
async def calc(expression: str) -> int:
    return len(expression)


@stage
async def fmt(docs: list[str], style: str = "plain") -> str:
    return f"{style}: " + "; ".join(docs)


@stage
async def weather(city: str) -> str:
    return f"sunny in {city}"


@stage
async def units(value: int) -> str:
    return f"{value} m"


@stage
async def shout(text: str) -> str:
    return text.upper()


@stage
async def echo(text: str) -> str:
    return text


@stage
async def summarize(text: str) -> str:
    return text[:20]


@stage
async def grade(text: str) -> int:
    return len(text) % 5


@stage
async def dated(text: str) -> str:
    return f"{text} (today)"


@stage
async def captured(text: str) -> str:
    return f"captured {text}"


@stage
async def decoy(text: str) -> str:
    """Defined but never reached: the scan must not find it."""
    return text


def make_tool(index: int) -> Callable[[str], Awaitable[Any]]:
    async def tool(text: str) -> str:
        return f"tool {index}: {text}"

    return stage(name=f"loop-tool-{index}")(tool)


LOOP_TOOLS = [make_tool(i) for i in range(3)]

chat = llm("chat", model="Qwen/Qwen3-8B", max_model_len=2048, disaggregated=PD(prefill=Role(), decode=Role()))
