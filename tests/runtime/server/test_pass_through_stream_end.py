"""How the OpenAI pass-through ends a stream whose worker closed its socket early.

The worker is a few lines of asyncio speaking HTTP/1.1 with a chunked SSE answer, as vLLM does, that
close the connection either right after ``data: [DONE]`` (before the chunked terminator) or in the
middle of the answer. The reference is the bytes the worker sent: the first must reach the client
whole and end cleanly; the second must end with the server's JSON error event and no ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from grove_pipelines import llm, pipeline
from runtime.server import build_app
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(30)]

talker = llm("talker", model="tiny")


@pipeline(name="talks-once")
async def talks_once(text: str) -> str:
    return await talker.complete(text, max_tokens=2)


EVENTS = [
    b'data: {"choices": [{"index": 0, "text": "an"}]}\n\n',
    b'data: {"choices": [{"index": 0, "text": "swer"}]}\n\n',
    b"data: [DONE]\n\n",
]


@asynccontextmanager
async def worker(events: list[bytes]) -> AsyncIterator[str]:
    """A worker that answers every request with ``events`` as chunks, then closes without the terminator."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for event in events:
            writer.write(b"%x\r\n%b\r\n" % (len(event), event))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _stream(events: list[bytes]) -> tuple[bytes, bool]:
    """What a client of the pass-through receives, and whether the answer ended cleanly."""
    async with worker(events) as url:
        executor = make_executor(talks_once, llm_urls={"talker": url}, llm_models={"talker": "tiny"})
        async with serving(build_app([executor])) as (_, http):
            got = b""
            body = {"model": "talker", "prompt": "q", "max_tokens": 2, "stream": True}
            async with http.stream("POST", "/v1/completions", json=body) as answer:
                assert answer.status_code == 200
                try:
                    async for piece in answer.aiter_raw():
                        got += piece
                except httpx.RemoteProtocolError:
                    return got, False
            return got, True


async def test_a_worker_closing_just_after_done_still_gives_a_whole_answer() -> None:
    got, clean = await _stream(EVENTS)
    assert got == b"".join(EVENTS) and clean


async def test_a_worker_breaking_off_mid_answer_gives_an_error_event_and_no_done() -> None:
    got, clean = await _stream(EVENTS[:1])
    assert not clean and got.startswith(EVENTS[0]) and b"[DONE]" not in got
    events = [e for e in got.decode().split("\n\n") if e]
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["type"] == "upstream_error" and error["stage"] == "talker" and error["code"] == 502
    assert "127.0.0.1" not in got.decode()
