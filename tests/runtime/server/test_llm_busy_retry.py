"""An LLM call whose router answers busy (429/503 with a short Retry-After) is sent again, as OpenAI's client does:
a pipeline body's calls, awaited and streamed, and the server's OpenAI pass-through.

The LLM stage's endpoint is the fake vLLM (``tests/runtime/fake_vllm.py``), cued to answer as the
router does when it is briefly without a healthy worker or its queue is full. The stage has no
``retries`` of its own: the waits are the client's courtesy, bounded in count (two), in length (a
``Retry-After`` of at most ten seconds) and by the request's deadline. A router still busy after
them, or asking for a wait the call does not take, is told to the client as what it is: the
router's status (503, 429) and its ``Retry-After`` (the delay-seconds form only), never a 502.
Everything else still fails at once, with the stage's 502.
"""

from __future__ import annotations

import time

import pytest

from runtime.server import build_app
from runtime.server.call_protocol import DEADLINE_HEADER
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving
from tests.runtime.server.test_upstream_faults import reads_stream, talks

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]


PASS_THROUGH = "the OpenAI pass-through"


async def _run(
    fakes: MakeFake, name: str, cues: list[tuple[int, str | None]], **headers: str
) -> tuple[int, int, str | None]:
    """Run pipeline ``name`` against a worker cued with ``cues``: (status, completion requests the worker
    saw, the answer's ``Retry-After``)."""
    worker = await fakes()
    worker.cues.fail = list(cues)
    executors = [
        make_executor(p, llm_urls={"talker": worker.url}, llm_models={"talker": "tiny"})
        for p in (talks, reads_stream)
    ]
    async with serving(build_app(executors)) as (_, http):
        if name == PASS_THROUGH:  # the server's OpenAI endpoint, relaying to the stage's router
            body = {"model": "talker", "prompt": "hi", "max_tokens": 4}
            answer = await http.post("/v1/completions", json=body, headers=headers)
        else:
            answer = await http.post(f"/v1/pipelines/{name}", json={"text": "hi"}, headers=headers)
    if answer.status_code == 200:  # the worker's own answer, whole
        text = answer.json()["choices"][0]["text"] if name == PASS_THROUGH else answer.json()
        assert isinstance(text, str) and text
    else:
        error = answer.json()["error"]
        assert error["stage"] == "talker" and error["code"] == answer.status_code
        busy = {503: "service_unavailable", 429: "rate_limit_error"}
        assert error["type"] == busy.get(answer.status_code, "upstream_error")
    return answer.status_code, len(worker.completions()), answer.headers.get("retry-after")


@pytest.mark.parametrize("name", ["talks", "reads-stream", PASS_THROUGH])
@pytest.mark.parametrize("status", [429, 503])
async def test_a_busy_router_is_asked_again_after_its_retry_after(
    fakes: MakeFake, name: str, status: int
) -> None:
    assert await _run(fakes, name, [(status, "0"), (status, "0")]) == (200, 3, None)


@pytest.mark.parametrize("name", ["talks", "reads-stream", PASS_THROUGH])
@pytest.mark.parametrize("status", [429, 503])
async def test_busy_three_times_in_a_row_is_told_to_the_client_after_two_waits(
    fakes: MakeFake, name: str, status: int
) -> None:
    assert await _run(fakes, name, [(status, "0")] * 3) == (status, 3, "0")


@pytest.mark.parametrize("name", ["talks", PASS_THROUGH])
@pytest.mark.parametrize(
    ("cue", "retry_after"),
    [
        ((503, None), None),  # busy, but no word on when to come back: told at once
        ((429, "60"), "60"),  # longer than a call waits: the client is told to wait it
        ((503, "Wed, 21 Oct 2015 07:28:00 GMT"), None),  # the date form is neither honoured nor relayed
        ((503, "\u00b2"), None),  # a digit to str.isdigit, not to HTTP
        ((503, "9999999"), None),  # no router asks for 115 days
    ],
)
async def test_a_busy_answer_not_waited_for_is_told_at_once(
    fakes: MakeFake, name: str, cue: tuple[int, str | None], retry_after: str | None
) -> None:
    assert await _run(fakes, name, [cue]) == (cue[0], 1, retry_after)


@pytest.mark.parametrize(("cue", "status"), [((500, "0"), 502), ((502, "0"), 502), ((504, "0"), 504)])
async def test_other_answers_fail_at_once(fakes: MakeFake, cue: tuple[int, str | None], status: int) -> None:
    assert await _run(fakes, "talks", [cue]) == (status, 1, None)  # failures, not busy answers


@pytest.mark.parametrize("name", ["talks", PASS_THROUGH])
async def test_a_wait_the_requests_deadline_would_not_outlast_is_not_taken(
    fakes: MakeFake, name: str
) -> None:
    began = time.monotonic()
    result = await _run(fakes, name, [(503, "2")], **{DEADLINE_HEADER: f"{time.time() + 1.5:.3f}"})
    assert result == (503, 1, "2") and time.monotonic() - began < 1.5  # told at once, not at the deadline
