"""A streamed LLM call (``stream_complete``) is guarded as an awaited one is: the stage's ``retries``
for a failure before its first chunk (none after it: the body has acted on part of the answer), and
its ``timeout_s`` over the whole stream.

The LLM stages' endpoint is the vLLM double (``tests/runtime/fake_vllm.py``), told to fail, break a
stream or slow down; the reference is the same pipeline's answer with nothing going wrong.
"""

from __future__ import annotations

import pytest

from grove_pipelines import llm, pipeline
from runtime.server.app import PipelineApp
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

retried = llm("retried", model="tiny", served_model_name="tiny", retries=1)
hasty = llm("hasty", model="tiny", served_model_name="tiny", timeout_s=2)


@pipeline(name="streams-retried")
async def streams_retried(text: str) -> str:
    return "".join([piece async for piece in retried.stream_complete(text, max_tokens=3)])


@pipeline(name="streams-hasty")
async def streams_hasty(text: str) -> str:
    return "".join([piece async for piece in hasty.stream_complete(text, max_tokens=3)])


async def test_a_stream_that_fails_before_its_first_chunk_is_retried_and_one_that_breaks_later_is_not(
    fakes: MakeFake,
) -> None:
    fake = await fakes("aggregated")
    app = PipelineApp([make_executor(streams_retried, retried, llm_urls={"retried": fake.url})])
    async with serving(app) as (_, http):
        reference = await http.post("/v1/pipelines/streams-retried", json={"text": "hi"})
        assert reference.status_code == 200, reference.text
        fake.fail_next(1, status=500)
        again = await http.post("/v1/pipelines/streams-retried", json={"text": "hi"})
        assert (again.status_code, again.json()) == (200, reference.json())
        assert len(fake.completions()) == 3  # the reference, the failed attempt, its retry
        fake.break_stream_next(after=1)
        broken = await http.post("/v1/pipelines/streams-retried", json={"text": "hi"})
        assert broken.status_code == 502 and broken.json()["error"]["type"] == "upstream_error"
        assert len(fake.completions()) == 4  # not sent again: a chunk had reached the body
        metrics = (await http.get("/metrics")).text
    assert 'grove_stage_calls_total{caller="frontend",outcome="retry",stage="retried"} 1.0' in metrics


async def test_the_stage_timeout_bounds_the_whole_stream_not_each_chunk(fakes: MakeFake) -> None:
    fake = await fakes("aggregated")
    app = PipelineApp([make_executor(streams_hasty, hasty, llm_urls={"hasty": fake.url})])
    async with serving(app) as (_, http):
        assert (await http.post("/v1/pipelines/streams-hasty", json={"text": "hi"})).status_code == 200
        fake.set_delay(0.8)  # each chunk well within the 2 s timeout; the stream's three and more are not
        slow = await http.post("/v1/pipelines/streams-hasty", json={"text": "hi"})
    assert slow.status_code == 504, slow.text
    error = slow.json()["error"]
    assert error["type"] == "timeout_error" and "within its timeout of 2 s" in error["message"]
