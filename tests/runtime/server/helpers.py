"""Building executors and servers for tests from pipelines defined inside the tests themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from grove_pipelines.graph.build import build_graph
from grove_pipelines.sdk import LLM, Pipeline, Stage
from runtime.server import Executor
from runtime.server.serving import AppServer


def make_executor(pipeline: Pipeline, *stages: Stage | LLM, **options: Any) -> Executor:
    """An executor for ``pipeline`` (the stages it reaches are found from its code, as the loader does)."""
    graph = build_graph(pipeline, stages)
    return Executor(pipeline, graph, graph.objects, **options)


@asynccontextmanager
async def serving(app: Any, **client: Any) -> AsyncIterator[tuple[AppServer, httpx.AsyncClient]]:
    """``app`` served on a free loopback port, and an HTTP client pointed at it."""
    async with AppServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=30, **client) as http:
        yield server, http
