"""A small pipeline of Python stages for the page's tests: a chain, a shared helper stage and a stage that can fail.

``search(query, limit, loud)`` ranks three made-up documents and joins the first ``limit``; the query
``"boom"`` makes ``retrieve`` raise, so a test can see a failing stage.
"""

from __future__ import annotations

import asyncio

from grove_pipelines import pipeline, stage

__all__ = ["expected_answer", "search"]


@stage
async def retrieve(query: str) -> list[str]:
    if query == "boom":
        raise RuntimeError("the index is down")
    await asyncio.sleep(0.02)
    return [f"{query} doc {i}" for i in range(3)]


@stage
async def rank(docs: list[str]) -> list[str]:
    await asyncio.sleep(0.01)
    return sorted(docs, reverse=True)


@stage
async def summarise(docs: list[str], limit: int) -> str:
    return " | ".join(docs[:limit])


@pipeline(name="search")
async def search(query: str, limit: int = 2, loud: bool = False) -> dict[str, str]:
    """Find, rank and summarise documents about ``query``."""
    docs = await rank(await retrieve(query))
    text = await summarise(docs, limit)
    return {"answer": text.upper() if loud else text}


def expected_answer(query: str, limit: int, loud: bool) -> dict[str, str]:
    """What ``search`` answers, computed here without the stages."""
    docs = [f"{query} doc {i}" for i in (2, 1, 0)][:limit]
    text = " | ".join(docs)
    return {"answer": text.upper() if loud else text}
