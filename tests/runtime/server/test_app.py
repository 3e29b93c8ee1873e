"""The pipeline server over real sockets: endpoints, JSON errors, SSE, schemas, metrics, disconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from pydantic import BaseModel

from grove_pipelines import llm, pipeline, stage
from runtime.server import build_app
from runtime.server.serving import AppServer
from tests.runtime.server.helpers import make_executor

PROGRESS: dict[str, asyncio.Event] = {}


class Answer(BaseModel):
    text: str
    length: int


@stage
async def upper(text: str) -> str:
    return text.upper()


@stage
async def slow(seconds: float) -> float:
    """Both calls of one ``fan`` request meet here: each waits until the other has started too."""
    key = f"fan-{seconds}"
    arrived = PROGRESS.setdefault(key, asyncio.Event())
    if arrived.is_set():
        PROGRESS[f"{key}-both"].set()
    arrived.set()
    await asyncio.wait_for(PROGRESS.setdefault(f"{key}-both", asyncio.Event()).wait(), 10)
    return seconds


@stage
async def explode(text: str) -> str:
    raise RuntimeError(f"cannot handle {text!r}")


@stage
async def wait_forever(tag: str) -> str:
    PROGRESS[f"{tag}-started"].set()
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        PROGRESS[f"{tag}-cancelled"].set()
        raise
    return tag


@stage
async def twice(x: float) -> float:
    return 2 * x


writer = llm("writer", model="org/writer-7b")


@pipeline(name="shout")
async def shout(text: str, repeat: int = 1) -> Answer:
    """Shout the text."""
    loud = await upper(text)
    return Answer(text=loud * repeat, length=len(loud) * repeat)


@pipeline(name="fan")
async def fan(seconds: float) -> list[float]:
    return list(await asyncio.gather(slow(seconds), slow(seconds)))


@pipeline(name="fails")
async def fails(text: str, crash: bool = True) -> str:
    return await explode(text) if crash else await upper(text)


@pipeline(name="waits")
async def waits(tag: str) -> str:
    return await wait_forever(tag)


@pipeline(name="doubles")
async def doubles(x: float) -> dict[str, float]:
    return {"twice": await twice(x)}


@pipeline(name="writes")
async def writes(topic: str) -> str:
    return await writer.chat(topic)


@pytest_asyncio.fixture(loop_scope="function")
async def server() -> AsyncIterator[AppServer]:
    executors = [make_executor(p) for p in (shout, fan, fails, waits, writes, doubles)]
    async with AppServer(build_app(executors)) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def client(server: AppServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def test_post_runs_the_pipeline_and_returns_its_json_result(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines/shout", json={"text": "hi", "repeat": 2})
    assert response.status_code == 200
    assert response.json() == {"text": "HIHI", "length": 4}
    assert response.headers["x-request-id"]


async def test_fan_out_is_concurrent_through_http(client: httpx.AsyncClient) -> None:
    for key in ("fan-0.3", "fan-0.3-both"):
        PROGRESS.pop(key, None)
    response = await client.post("/v1/pipelines/fan", json={"seconds": 0.3})
    assert response.json() == [0.3, 0.3]  # sequential calls would each wait 10 s for the other and fail


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"text": "hi"', 400, "not valid JSON"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b"{}", 422, "text: Field required"),
        (b'{"text": "hi", "repeat": "many"}', 422, "repeat: Input should be a valid integer"),
        (b'{"text": "hi", "colour": "red"}', 422, "colour: Extra inputs are not permitted"),
        (b'{"text": "hi", "repeat": NaN}', 400, "NaN is not JSON"),
        (b'{"text": "hi", "\\ud800": 1}', 422, "Input should be a valid string"),
    ],
)
async def test_bad_input_is_a_json_error(
    client: httpx.AsyncClient, body: bytes, status: int, fragment: str
) -> None:
    response = await client.post(
        "/v1/pipelines/shout", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert (
        fragment in error["message"] and error["code"] == status and error["type"] == "invalid_request_error"
    )


async def test_what_fuzzing_found_lone_surrogates_and_overflowing_floats_are_answered(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.post(
        "/v1/pipelines/shout", content=b'{"text": "\\ud800"}', headers={"content-type": "application/json"}
    )
    assert echoed.status_code == 200 and echoed.json() == {"text": "\ud800", "length": 1}
    overflow = await client.post("/v1/pipelines/doubles", json={"x": 1e308})
    assert overflow.status_code == 200 and overflow.json() == {
        "twice": None
    }  # inf has no JSON: null, as pydantic writes it


async def test_unknown_pipeline_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines/nope", json={})
    assert response.status_code == 404
    assert "no pipeline 'nope'" in response.json()["error"]["message"]


async def test_stage_error_is_a_500_naming_the_stage_and_the_server_keeps_serving(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.post(
        "/v1/pipelines/fails", json={"text": "x"}, headers={"x-request-id": "req-42"}
    )
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["stage"] == "explode" and error["type"] == "stage_error" and error["request_id"] == "req-42"
    assert "cannot handle" not in response.text  # the exception's text stays in the log
    assert any("req-42" in r.getMessage() and "cannot handle 'x'" in r.getMessage() for r in caplog.records)
    again = await client.post("/v1/pipelines/fails", json={"text": "ok", "crash": False})
    assert again.status_code == 200 and again.json() == "OK"


async def test_llm_stage_without_router_is_a_502(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines/writes", json={"topic": "x"})
    assert response.status_code == 502
    assert response.json()["error"]["stage"] == "writer"


async def test_list_pipelines_gives_input_and_output_schemas(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/v1/pipelines")).json()["data"]
    shout_entry = next(p for p in listing if p["name"] == "shout")
    assert shout_entry["description"] == "Shout the text."
    assert shout_entry["input_schema"]["required"] == ["text"]
    assert set(shout_entry["input_schema"]["properties"]) == {"text", "repeat", "stream"}
    assert shout_entry["output_schema"]["properties"]["length"]["type"] == "integer"
    assert {p["name"] for p in listing} == {"shout", "fan", "fails", "waits", "writes", "doubles"}


async def test_openapi_document_describes_every_pipeline(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/pipelines/shout"]["post"]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/Answer" and "Answer" in document["components"]["schemas"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["required"] == ["text"]
    assert {"/health", "/metrics", "/v1/pipelines", "/v1/chat/completions"} <= set(document["paths"])


async def test_openai_endpoints_route_by_model(client: httpx.AsyncClient) -> None:
    models = (await client.get("/v1/models")).json()["data"]
    assert [(m["id"], m["stage"]) for m in models] == [("writer", "writer")]
    unknown = await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": []})
    assert unknown.status_code == 404 and "models: writer" in unknown.json()["error"]["message"]
    no_router = await client.post("/v1/chat/completions", json={"model": "writer", "messages": []})
    assert no_router.status_code == 502 and no_router.json()["error"]["stage"] == "writer"
    assert "GP_LLM_URL_WRITER" not in no_router.text  # configuration detail is for the log


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    await client.post("/v1/pipelines/shout", json={"text": "a"})
    await client.post("/v1/pipelines/fails", json={"text": "a"})
    text = (await client.get("/metrics")).text
    assert 'grove_pipeline_requests_total{pipeline="shout",status="200"} 1.0' in text
    assert 'grove_pipeline_requests_total{pipeline="fails",status="500"} 1.0' in text
    assert 'grove_stage_calls_total{caller="frontend",outcome="ok",stage="upper"} 1.0' in text
    assert 'grove_stage_calls_total{caller="frontend",outcome="error",stage="explode"} 1.0' in text


def _events(text: str) -> list[tuple[str, object]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_stream_ends_with_the_result_event(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines/shout", json={"text": "hi", "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert _events(response.text) == [("result", {"text": "HI", "length": 2})]


async def test_stream_reports_a_stage_error_as_an_error_event(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/pipelines/fails", json={"text": "x", "stream": True})
    ((event, data),) = _events(response.text)
    assert event == "error" and data["error"]["stage"] == "explode"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
async def test_client_disconnect_cancels_the_stage_calls(server: AppServer, stream: bool) -> None:
    tag = f"disc-{stream}"
    PROGRESS[f"{tag}-started"] = asyncio.Event()
    PROGRESS[f"{tag}-cancelled"] = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.url) as http:
        request = asyncio.ensure_future(http.post("/v1/pipelines/waits", json={"tag": tag, "stream": stream}))
        await asyncio.wait_for(PROGRESS[f"{tag}-started"].wait(), 10)
        request.cancel()  # drops the connection mid-request
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(PROGRESS[f"{tag}-cancelled"].wait(), 10)
