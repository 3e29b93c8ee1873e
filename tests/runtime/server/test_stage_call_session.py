"""A run's session crosses a stage server: named by the client, it rides on the stage call; else the
stage server takes the run's id as the session, so the LLM calls a remote stage makes carry the same
session as the entry's own would (the run's id), with or without the header on the stage call."""

from __future__ import annotations

import pytest

from grove_pipelines import llm, pipeline, stage
from runtime.server import build_app
from runtime.server.llm_calls import RUN_SESSION
from runtime.server.serving import AppServer
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

talker = llm("talker", model="tiny", served_model_name="tiny")


@stage
async def asks(text: str) -> str | None:
    """Asks the LLM, and tells what session its stage server holds for the run (None: none was named)."""
    await talker.complete(text, max_tokens=2)
    return RUN_SESSION.get()


@pipeline(name="remote-asks")
async def remote_asks(text: str) -> str | None:
    return await asks(text)


@pytest.mark.parametrize("named", [None, "agent-7"])
async def test_the_llm_calls_of_a_remote_stage_carry_the_runs_session(
    fakes: MakeFake, named: str | None
) -> None:
    fake = await fakes("aggregated")
    stage_app = build_app(
        [make_executor(remote_asks, talker, llm_urls={"talker": fake.url})], stages=["asks"], pipelines=False
    )
    async with AppServer(stage_app) as stage_server:
        entry = build_app([make_executor(remote_asks, talker, stage_urls={"asks": stage_server.url})])
        async with serving(entry) as (_, http):
            headers = {} if named is None else {"x-session-id": named}
            response = await http.post("/v1/pipelines/remote-asks", json={"text": "hi"}, headers=headers)
    assert response.status_code == 200, response.text
    run_id = response.headers["x-request-id"]
    assert response.json() == named  # the stage server holds a named session only
    [call] = fake.completions()
    assert call.headers.get("x-request-id") == run_id
    assert call.headers.get("x-session-id") == (named or run_id)
