"""What leaves the server when something behind it fails, and what it sends on from a client.

Upstreams here are the fake vLLM (``tests/runtime/fake_vllm.py``) and, for a stream that stops early,
a few lines of aiohttp that speak vLLM's SSE format and then close without ``data: [DONE]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from grove_pipelines import llm, pipeline, stage
from runtime.server import build_app
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving

SECRET = "sk-live-1d2e3f4a5b6c"


@stage
async def leaky(text: str) -> str:
    raise ConnectionError(f"login to postgres://app:{SECRET}@db.internal:5432 failed for {text!r}")


@pipeline(name="leaks")
async def leaks(text: str) -> str:
    return await leaky(text)


@stage
async def fine(text: str) -> str:
    return text


@pipeline(name="leaks-itself")
async def leaks_itself(text: str) -> str:
    await fine(text)
    raise RuntimeError(f"token={SECRET}")


talker = llm("talker", model="tiny")


@pipeline(name="talks")
async def talks(text: str) -> str:
    return await talker.complete(text, max_tokens=4)


@pipeline(name="reads-stream")
async def reads_stream(text: str) -> str:
    return "".join([piece async for piece in talker.stream_complete(text, max_tokens=4)])


def _events(text: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out


@pytest.mark.parametrize("name", ["leaks", "leaks-itself"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_credential_in_an_exception_never_reaches_the_client(
    name: str, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="grove_pipelines.server")
    app = build_app([make_executor(leaks), make_executor(leaks_itself)])
    async with serving(app) as (_, http):
        response = await http.post(
            f"/v1/pipelines/{name}", json={"text": "q", "stream": stream}, headers={"x-request-id": "rid-9"}
        )
    assert (
        SECRET not in response.text
        and "db.internal" not in response.text
        and "Traceback" not in response.text
    )
    error = _events(response.text)[-1][1]["error"] if stream else response.json()["error"]
    assert error["request_id"] == "rid-9" and error["code"] == 500  # type: ignore[index]
    assert error.get("stage") == ("leaky" if name == "leaks" else None)  # type: ignore[union-attr]
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert SECRET in logged and "rid-9" in logged  # the operator still has the detail


async def test_an_upstream_5xx_body_is_logged_not_relayed(fakes: MakeFake) -> None:
    worker = await fakes()
    worker.fail_next(2, status=500)
    app = build_app([make_executor(talks, llm_urls={"talker": worker.url}, llm_models={"talker": "tiny"})])
    async with serving(app) as (_, http):
        passed = await http.post("/v1/completions", json={"model": "talker", "prompt": "hi"})
        ran = await http.post("/v1/pipelines/talks", json={"text": "hi"})
    for response in (passed, ran):
        assert response.status_code == 502 and response.json()["error"]["stage"] == "talker"
        assert worker.url not in response.text and "127.0.0.1" not in response.text


async def test_the_pass_through_strips_kv_transfer_params_and_engine_request_ids(fakes: MakeFake) -> None:
    worker = await fakes()
    app = build_app([make_executor(talks, llm_urls={"talker": worker.url}, llm_models={"talker": "tiny"})])
    hostile = {
        "model": "talker", "prompt": "hi", "max_tokens": 3, "request_id": "someone-elses-id",
        "vllm_xargs": {"kv_transfer_params": "{}", "ec_transfer_params": "{}", "mine": 1},
        "kv_transfer_params": {"do_remote_prefill": True, "remote_host": "10.6.6.6", "remote_port": 5600,
                               "remote_engine_id": "evil", "remote_block_ids": [0, 1, 2]},
    }  # fmt: skip
    async with serving(app) as (_, http):
        answer = await http.post("/v1/completions", json=hostile)
        chat = await http.post(
            "/v1/chat/completions",
            json={**hostile, "prompt": None, "messages": [{"role": "user", "content": "hi"}]},
        )
        for bad in ([1], {"model": ["talker"]}, {"model": None}, "x"):
            refused = await http.post("/v1/completions", json=bad)
            assert refused.status_code in (400, 404), bad
    assert answer.status_code == 200 and chat.status_code == 200
    received = [seen.body for seen in worker.completions()]
    assert len(received) == 2
    for body in received:
        assert "kv_transfer_params" not in body and "request_id" not in body
        assert body["vllm_xargs"] == {"mine": 1}
        assert body["model"] == "tiny" and body["max_tokens"] == 3
    assert worker.external_kv_requests == 0


async def _truncated_stream(request: web.Request) -> web.StreamResponse:
    """vLLM's SSE chunks of a completion, then the connection closes cleanly with no ``[DONE]``."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for word in ("partial", " answer"):
        chunk = {"id": "cmpl-1", "object": "text_completion", "model": "tiny",
                 "choices": [{"index": 0, "text": word, "finish_reason": None}]}  # fmt: skip
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await resp.write_eof()
    return resp


@pytest_asyncio.fixture(loop_scope="function")
async def truncating() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/v1/completions", _truncated_stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(("name", "stream"), [("reads-stream", False), ("talks", True)])
async def test_an_llm_stream_without_done_is_a_failure_not_a_short_answer(
    truncating: str, name: str, stream: bool
) -> None:
    executors = [make_executor(p, llm_urls={"talker": truncating}) for p in (talks, reads_stream)]
    async with serving(build_app(executors)) as (_, http):
        response = await http.post(f"/v1/pipelines/{name}", json={"text": "q", "stream": stream})
    if stream:
        events = _events(response.text)
        assert [e for e, _ in events] == ["token", "token", "error"]
        error = events[-1][1]["error"]
    else:
        assert response.status_code == 502
        error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["stage"] == "talker"  # type: ignore[index]


async def test_a_passed_through_answer_over_the_bound_is_a_clean_502(fakes: MakeFake) -> None:
    worker = await fakes()
    executor = make_executor(talks, llm_urls={"talker": worker.url}, llm_models={"talker": "tiny"})
    async with serving(build_app([executor])) as (_, http):
        whole = await http.post("/v1/completions", json={"model": "talker", "prompt": "hi"})
        assert whole.status_code == 200
        executor.client.pool.max_answer = len(whole.content) - 1  # the same answer, one byte over the bound
        over = await http.post("/v1/completions", json={"model": "talker", "prompt": "hi"})
    assert over.status_code == 502 and over.json()["error"]["stage"] == "talker"
    assert worker.url not in over.text and "127.0.0.1" not in over.text


@pytest.mark.parametrize(("name", "stream"), [("talks", False), ("reads-stream", False), ("talks", True)])
async def test_an_answer_vllm_aborted_is_a_failure_not_a_short_answer(
    fakes: MakeFake, name: str, stream: bool
) -> None:
    """vLLM ends a request it aborted with ``finish_reason: abort`` (and a stream with ``[DONE]``)."""
    worker = await fakes()
    options = {"llm_urls": {"talker": worker.url}, "llm_models": {"talker": "tiny"}}
    executors = [make_executor(p, **options) for p in (talks, reads_stream)]
    async with serving(build_app(executors)) as (_, http):
        worker.abort_next()
        response = await http.post(f"/v1/pipelines/{name}", json={"text": "q", "stream": stream})
        whole = await http.post(f"/v1/pipelines/{name}", json={"text": "q"})  # the next one is whole
    if stream:
        events = _events(response.text)
        assert [e for e, _ in events][-1] == "error"
        error = events[-1][1]["error"]
    else:
        assert response.status_code == 502
        error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["stage"] == "talker"  # type: ignore[index]
    assert whole.status_code == 200 and whole.json().split() == [f"aggregated{i}" for i in range(4)]
