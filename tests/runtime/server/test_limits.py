"""Hostile request bodies and deadlines: 413 while reading, bounded memory, deadlines that propagate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from grove_pipelines import llm, pipeline, stage
from runtime.server import build_app
from runtime.server.deadline import Deadline
from runtime.server.serving import AppServer
from runtime.server.settings import ServerSettings
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving
from tests.runtime.server.served import peak_rss_bytes, start_serve

SEEN: dict[str, Any] = {}


@stage
async def remember(text: str) -> str:
    return text


@pipeline(name="echo")
async def echo(text: str) -> str:
    return await remember(text)


@stage(timeout_s=30)
async def sleeps(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@pipeline(name="naps")
async def naps(seconds: float) -> float:
    return await sleeps(seconds)


talker = llm("talker", model="tiny")


@pipeline(name="talks")
async def talks(text: str) -> str:
    return str(await talker.complete(text, max_tokens=2))


LIMIT = 64 * 1024


async def test_a_declared_body_over_the_limit_is_413_before_it_is_read() -> None:
    settings = ServerSettings(max_body_bytes=LIMIT)
    async with serving(build_app([make_executor(echo, settings=settings)])) as (_, http):
        big = b'{"text": "' + b"a" * (LIMIT + 1) + b'"}'
        refused = await http.post(
            "/v1/pipelines/echo", content=big, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 413
        assert refused.json()["error"] == {
            "message": f"the request body is over this server's limit of {LIMIT} bytes",
            "type": "invalid_request_error",
            "code": 413,
            "request_id": refused.headers["x-request-id"],
        }
        fits = await http.post("/v1/pipelines/echo", json={"text": "a" * (LIMIT - 100)})
        assert fits.status_code == 200 and fits.json() == "a" * (LIMIT - 100)


async def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    settings = ServerSettings(max_body_bytes=LIMIT)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        piece = b"x" * 16384
        for _ in range(1024):  # 16 MiB if the server read it all
            sent += len(piece)
            yield piece

    async with serving(build_app([make_executor(echo, settings=settings)])) as (_, http):
        try:
            refused = await http.post("/v1/pipelines/echo", content=chunks())
            assert refused.status_code == 413
        except httpx.TransportError:
            pass  # the server answered 413 and closed while we were still sending: also a refusal
        assert sent > LIMIT  # the client did send more than the limit (the memory test bounds what is kept)
        assert (await http.post("/v1/pipelines/echo", json={"text": "ok"})).json() == "ok"


def test_a_huge_body_leaves_the_server_memory_bounded(write_pipeline: Any) -> None:
    """The review's 96 MiB body took the server to 784 MB; now the peak grows by about the limit, no more."""
    path = write_pipeline(
        "from grove_pipelines import pipeline, stage\n\n"
        "@stage\n"
        "async def measure(text: str) -> int:\n"
        "    return len(text)\n\n"
        "@pipeline(name='sink')\n"
        "async def sink(text: str) -> int:\n"
        "    return await measure(text)\n"
    )
    limit = 1024 * 1024
    served = start_serve(path, env={"GP_MAX_BODY_BYTES": str(limit)})
    try:
        with httpx.Client(base_url=served.endpoint, timeout=60) as http:
            assert http.post("/v1/pipelines/sink", json={"text": "warm"}).json() == 4
            before = peak_rss_bytes(served.proc.pid)
            piece = b"y" * (1024 * 1024)

            def body() -> Iterator[bytes]:
                yield b'{"text": "'
                for _ in range(96):
                    yield piece
                yield b'"}'

            for headers in ({"content-length": str(96 * len(piece) + 12)}, {}):
                try:
                    assert http.post("/v1/pipelines/sink", content=body(), headers=headers).status_code == 413
                except httpx.TransportError:
                    pass  # refused and closed mid-upload
            grown = peak_rss_bytes(served.proc.pid) - before
            assert grown < 16 * limit, f"the server's peak memory grew by {grown} bytes"
            assert http.post("/v1/pipelines/sink", json={"text": "still here"}).json() == 10
    finally:
        served.kill()


async def test_the_default_pipeline_timeout_applies_and_a_client_deadline_shortens_it() -> None:
    settings = ServerSettings(timeout_s=0.5)
    async with serving(build_app([make_executor(naps, settings=settings)])) as (_, http):
        slow = await http.post("/v1/pipelines/naps", json={"seconds": 5})
        assert slow.status_code == 504 and slow.json()["error"]["type"] == "timeout_error"
        assert (await http.post("/v1/pipelines/naps", json={"seconds": 0.01})).json() == 0.01
        soon = f"{time.time() + 0.2:.3f}"
        cut = await http.post(
            "/v1/pipelines/naps", json={"seconds": 0.4}, headers={"x-request-deadline": soon}
        )
        assert cut.status_code == 504 and "deadline" in cut.json()["error"]["message"]
        later = f"{time.time() + 3600:.3f}"  # asking for more than the server allows gets the server's limit
        capped = await http.post(
            "/v1/pipelines/naps", json={"seconds": 5}, headers={"x-request-deadline": later}
        )
        assert capped.status_code == 504
        bad = await http.post(
            "/v1/pipelines/naps", json={"seconds": 0}, headers={"x-request-deadline": "soon"}
        )
        assert bad.status_code == 400 and "X-Request-Deadline" in bad.json()["error"]["message"]


async def test_the_deadline_reaches_stage_servers_and_llm_calls(fakes: MakeFake) -> None:
    worker = await fakes()
    stage_server = AppServer(build_app([make_executor(naps)], stages=["sleeps"], pipelines=False))
    async with stage_server:
        entry = build_app([
            make_executor(naps, stage_urls={"sleeps": stage_server.url}),
            make_executor(talks, llm_urls={"talker": worker.url}, llm_models={"talker": "tiny"}),
        ])  # fmt: skip
        async with AppServer(entry) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            at = time.time() + 0.3
            cut = await http.post(
                "/v1/pipelines/naps", json={"seconds": 2}, headers={"x-request-deadline": f"{at:.3f}"}
            )
            assert cut.status_code == 504
            assert (
                await http.post(
                    "/v1/pipelines/talks",
                    json={"text": "hi"},
                    headers={"x-request-deadline": f"{at + 60:.3f}"},
                )
            ).status_code == 200
    sent = float(worker.completions()[-1].headers["x-request-deadline"])
    assert abs(sent - (at + 60)) < 1.0  # the client's deadline, carried to the router as Unix time


def test_deadline_header_round_trips_and_never_extends_the_limit() -> None:
    given = f"{time.time() + 10:.3f}"
    inner = Deadline.from_header(given, limit_s=100)
    assert 0 < inner.remaining() <= 10.001  # (the header has millisecond resolution)
    assert abs(float(inner.header()) - float(given)) < 0.01  # the next hop gets the same instant back
    assert Deadline.from_header(f"{time.time() + 1e6:.3f}", limit_s=5).remaining() <= 5
    with pytest.raises(Exception, match="Unix time"):
        Deadline.from_header("nan", limit_s=5)
