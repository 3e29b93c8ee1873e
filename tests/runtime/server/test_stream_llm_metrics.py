"""An LLM call the pipeline iterates (``stream_complete``) is counted as an awaited one is: in
``grove_stage_calls_total`` and ``grove_stage_call_seconds``, and on the console page.

The pipelines are the span tests' (one reads the stream to its end, one leaves it after the first
piece); the LLM stage's endpoint is the vLLM double (``tests/runtime/fake_vllm.py``). The reference is one
count per call, with the outcome the client saw; the awaited call beside it is counted by the path
that has always counted (``RequestInvoker._guarded``).
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from grove_pipelines import pipeline
from runtime.auth import ApiKeys
from runtime.server.app import PipelineApp
from runtime.server.settings import ServerSettings
from tests.runtime.conftest import MakeFake
from tests.runtime.server.helpers import make_executor, serving
from tests.runtime.tracing.test_stream_spans import reads_one, reads_stream, talker

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(60)]

KEY = "stream-metrics-key"


@pipeline(name="awaits")
async def awaits(text: str) -> str:
    return await talker.complete(text, max_tokens=3)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _calls(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    labels = (("caller", "frontend"), ("outcome", outcome), ("stage", "talker"))
    return samples.get(("grove_stage_calls_total", labels), 0.0)


async def test_streamed_calls_are_counted_with_their_outcome_beside_awaited_ones(fakes: MakeFake) -> None:
    fake = await fakes("aggregated")
    settings = ServerSettings(api_keys=ApiKeys([KEY]))
    app = PipelineApp(
        [make_executor(p, talker, llm_urls={"talker": fake.url}, settings=settings)
         for p in (reads_stream, reads_one, awaits)]
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {KEY}"}
    async with serving(app, headers=auth) as (_, http):
        for name in ("reads-stream", "reads-one", "awaits"):
            answer = await http.post(f"/v1/pipelines/{name}", json={"text": "hi"})
            assert answer.status_code == 200, answer.text
        fake.break_stream_next(after=1)
        broken = await http.post("/v1/pipelines/reads-stream", json={"text": "hi"})
        assert broken.status_code >= 500
        samples = _samples((await http.get("/metrics")).text)
        state = (await http.get("/v1/console/state")).json()
    assert len(fake.completions()) == 4
    # two streams read to the end or left early, and the awaited call: three calls that did not fail
    assert (_calls(samples, "ok"), _calls(samples, "error")) == (3, 1)
    assert samples[("grove_stage_call_seconds_count", (("stage", "talker"),))] == 4
    assert state["stages"]["talker"]["outcomes"] == {"ok": 3, "error": 1}
    assert state["stages"]["talker"]["failed"] == 1
    waterfalls = [(r["pipeline"], r["status"], r["calls"]) for r in reversed(state["requests"])]
    assert waterfalls == [
        ("reads-stream", "200", 1), ("reads-one", "200", 1), ("awaits", "200", 1), ("reads-stream", "502", 1),
    ]  # fmt: skip
