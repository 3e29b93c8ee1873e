"""The page's endpoints on a real server in this process: open static files, data behind the key, waterfalls."""

from __future__ import annotations

import pytest

from runtime.auth import ApiKeys
from runtime.console.page import PAGE_PATHS
from runtime.console.recent import RecentRequests
from runtime.server.app import PipelineApp
from runtime.server.settings import ServerSettings
from tests.console import search_pipeline
from tests.console.search_pipeline import expected_answer
from tests.runtime.server.helpers import make_executor, serving

pytestmark = pytest.mark.timeout(60)

KEY = "page-test-key"
STAGES = {"retrieve", "rank", "summarise"}


def _app() -> PipelineApp:
    settings = ServerSettings(api_keys=ApiKeys([KEY]))
    return PipelineApp([make_executor(search_pipeline.search, settings=settings)])


async def test_the_page_is_open_but_its_data_needs_the_key() -> None:
    async with serving(_app()) as (_, http):
        for path in PAGE_PATHS:
            page = await http.get(path)
            assert page.status_code == 200, path
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert page.headers["x-content-type-options"] == "nosniff"
        assert b'src="/console/console.js"' in (await http.get("/")).content
        refused = await http.get("/v1/console/state")
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        assert (await http.get("/v1/console/requests/x")).status_code == 401


async def test_state_draws_the_compiled_graph_and_a_run_becomes_a_waterfall() -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with serving(_app(), headers=auth) as (_, http):
        state = (await http.get("/v1/console/state")).json()
        (graph,) = state["pipelines"]
        assert {n["name"] for n in graph["nodes"]} == STAGES | {"frontend"}
        assert sorted(map(tuple, graph["edges"])) == sorted(("frontend", s) for s in STAGES)
        assert state["requests"] == [] and state["stages"] == {}

        answer = await http.post("/v1/pipelines/search", json={"query": "moss", "limit": 2})
        assert answer.json() == expected_answer("moss", 2, False)
        request_id = answer.headers["x-request-id"]

        state = (await http.get("/v1/console/state")).json()
        (listed,) = state["requests"]
        assert listed["request_id"] == request_id and listed["status"] == "200" and listed["calls"] == 3
        assert {name: s["outcomes"] for name, s in state["stages"].items()} == {s: {"ok": 1} for s in STAGES}

        waterfall = (await http.get(f"/v1/console/requests/{request_id}")).json()
        calls = {c["stage"]: c for c in waterfall["calls"]}
        assert set(calls) == STAGES and {c["caller"] for c in calls.values()} == {"frontend"}
        # the body awaits them in turn: each starts after the one before it ended
        retrieve, rank, summarise = calls["retrieve"], calls["rank"], calls["summarise"]
        assert rank["start_s"] >= retrieve["start_s"] + retrieve["duration_s"]
        assert summarise["start_s"] >= rank["start_s"] + rank["duration_s"]
        assert waterfall["request"]["duration_s"] >= summarise["start_s"] + summarise["duration_s"]

        failed = await http.post("/v1/pipelines/search", json={"query": "boom"})
        assert failed.status_code == 500
        state = (await http.get("/v1/console/state")).json()
        assert state["requests"][0]["status"] == "500"
        assert state["stages"]["retrieve"]["failed"] == 1

        missing = await http.get("/v1/console/requests/nope")
        assert missing.status_code == 404
        assert set(missing.json()["error"]) >= {"message", "type", "code"}


def test_the_recorder_is_bounded_in_requests_and_in_calls() -> None:
    recent = RecentRequests(max_requests=3, max_calls=2)
    for n in range(5):
        recent.begin(f"r{n}", "p")
    assert [s.request_id for s in recent.recent()] == ["r4", "r3", "r2"]
    for _ in range(5):
        recent.stage_call("r4", "frontend", "s", "ok", 0.0)
    recent.stage_call("r0", "frontend", "s", "ok", 0.0)  # evicted: ignored
    recent.finish("r4", "200")
    waterfall = recent.waterfall("r4")
    assert waterfall is not None
    assert len(waterfall.calls) == 2 and waterfall.dropped == 3 and waterfall.request.calls == 5
    assert waterfall.request.status == "200" and recent.waterfall("r0") is None


async def test_a_streamed_run_is_recorded_with_its_calls() -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    async with serving(_app(), headers=auth) as (_, http):
        streamed = await http.post("/v1/pipelines/search", json={"query": "fern", "limit": 3, "stream": True})
        assert streamed.status_code == 200 and "event:" in streamed.text
        request_id = streamed.headers["x-request-id"]
        waterfall = (await http.get(f"/v1/console/requests/{request_id}")).json()
        assert waterfall["request"]["status"] == "200"
        assert [c["stage"] for c in waterfall["calls"]] == ["retrieve", "rank", "summarise"]
