"""Helpers in a second module of the package: they reach the stages at depth 3 and keep the registries."""

from __future__ import annotations

import functools
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tests.graph.toolpkg import tools
from tests.graph.toolpkg.tools import calc, captured, dated, echo, grade, summarize


async def retrieve(question: str) -> list[str]:  # depth 1
    return await _expand(question)


async def _expand(question: str) -> list[str]:  # depth 2
    return await _fetch(question)


async def _fetch(question: str) -> list[str]:  # depth 3
    return list(await tools.rerank(await tools.search(question)))


REGISTRY: dict[str, Any] = {
    "calc": calc,
    "len": len,  # a plain callable next to stages: ignored by the scan, runs in the caller
    "nested": {"more": [functools.partial(tools.fmt, style="bold")]},
}

SHOUT = lambda text: tools.shout(text)


def logged(func: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(func)
    async def wrapper(*args: Any) -> Any:
        return await func(*args)

    return wrapper


logged_echo = logged(echo)
KIT = types.SimpleNamespace(weather=tools.weather)


@dataclass
class Units:
    convert: Any


UNITS = Units(convert=tools.units)


async def with_default(text: str, tool: Any = dated) -> str:
    return str(await tool(text))


def make_caller(target: Any) -> Callable[[str], Awaitable[Any]]:
    async def call(text: str) -> Any:
        return await target(text)

    return call


CALL_CAPTURED = make_caller(captured)


class Agent:
    """Methods reached from the body: a staticmethod, a classmethod via ``cls``, a bound method via ``self``."""

    @staticmethod
    async def summary(text: str) -> str:
        return str(await summarize(text))

    @classmethod
    async def judge(cls, text: str) -> int:
        return await cls._grade(text)

    @classmethod
    async def _grade(cls, text: str) -> int:
        return int(await grade(text))

    async def plan(self, text: str) -> str:
        return await self._plan(text)

    async def _plan(self, text: str) -> str:
        from tests.graph.toolpkg.app import plan

        return str(await plan(text))


AGENT = Agent()
PLAN = AGENT.plan  # a bound method stored in a global


async def ask(question: str, docs: list[str]) -> str:
    return await tools.chat.chat(f"{question}: {' '.join(docs)}", max_tokens=8)
