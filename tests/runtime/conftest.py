"""Fixtures of the runtime tests: fake vLLM upstreams and routers on ephemeral loopback ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest_asyncio

from runtime.router.config import load_config
from runtime.router.server import RouterServer
from tests.runtime.fake_vllm import FakeVLLM

MakeFake = Callable[..., Awaitable[FakeVLLM]]
MakeRouter = Callable[..., Awaitable[RouterServer]]


@pytest_asyncio.fixture(loop_scope="session")
async def fakes() -> AsyncIterator[MakeFake]:
    """``await fakes("prefill")`` → a started :class:`FakeVLLM`; all are stopped after the test."""
    created: list[FakeVLLM] = []

    async def make(role: str = "aggregated", **kw: Any) -> FakeVLLM:
        fake = FakeVLLM(role=role, **kw)
        await fake.start()
        created.append(fake)
        return fake

    yield make
    for fake in created:
        await fake.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def make_router() -> AsyncIterator[MakeRouter]:
    """``await make_router(prefill=[...], decode=[...], **config)`` → a started router on a free port."""
    servers: list[RouterServer] = []

    async def make(**overrides: Any) -> RouterServer:
        overrides.setdefault("port", 0)
        overrides.setdefault("drain_timeout", 2)
        overrides.setdefault("debug", True)  # the tests read the x-grove-route header
        server = RouterServer(load_config(overrides=overrides))
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for talking to routers."""
    async with aiohttp.ClientSession() as session:
        yield session


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds; fail the test if it never does."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), "the condition never came true"
