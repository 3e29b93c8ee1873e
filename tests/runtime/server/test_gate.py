"""The server's door: bearer keys on the entry, the stage token on stage servers, draining on SIGTERM."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from grove_pipelines import pipeline, stage
from runtime.auth import ApiKeys, AuthConfigError
from runtime.server import build_app
from runtime.server.call_protocol import CALLER_HEADER
from runtime.server.serving import AppServer
from runtime.server.settings import ServerSettings
from tests.polling import eventually
from tests.runtime.server.helpers import make_executor, serving

GATES: dict[str, asyncio.Event] = {}


@stage
async def double(n: int) -> int:
    return 2 * n


@stage
async def held(tag: str) -> str:
    GATES[f"{tag}-in"].set()
    await GATES[f"{tag}-go"].wait()
    return tag


@pipeline(name="doubles")
async def doubles(n: int) -> int:
    return await double(n)


@pipeline(name="holds")
async def holds(tag: str) -> str:
    return await held(tag)


KEY = "k-3f9a1c"
LOCKED = ServerSettings(api_keys=ApiKeys([KEY]))


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", "Bearer k-3f9a1"]
)
async def test_the_entry_refuses_requests_without_an_accepted_key(authorization: str | None) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    async with serving(build_app([make_executor(doubles, settings=LOCKED)])) as (_, http):
        for method, path, body in (
            ("POST", "/v1/pipelines/doubles", {"n": 2}),
            ("GET", "/v1/pipelines", None),
            ("POST", "/v1/chat/completions", {"model": "x"}),
            ("GET", "/openapi.json", None),
        ):
            refused = await http.request(method, path, json=body, headers=headers)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["type"] == "authentication_error"


async def test_the_entry_serves_a_request_with_the_key_and_keeps_probes_open() -> None:
    async with serving(build_app([make_executor(doubles, settings=LOCKED)])) as (_, http):
        ok = await http.post(
            "/v1/pipelines/doubles", json={"n": 21}, headers={"authorization": f"bearer {KEY}"}
        )
        assert ok.status_code == 200 and ok.json() == 42
        for probe in ("/health", "/ready", "/metrics"):
            assert (await http.get(probe)).status_code == 200, probe


@pytest.mark.parametrize("value", ["", " ", ",", "a b\x01"])
def test_a_key_variable_that_is_set_but_empty_or_malformed_refuses_to_start(value: str) -> None:
    with pytest.raises(AuthConfigError):
        ServerSettings.from_env({"GP_API_KEYS": value})
    with pytest.raises(AuthConfigError):
        ServerSettings.from_env({"GP_STAGE_TOKEN": value})


async def test_a_stage_server_accepts_calls_only_with_the_pipelines_stage_token() -> None:
    """``X-GP-Caller`` is trusted only from the pipeline's own pods: the ones holding the stage token."""
    token = "st-77aa"
    stage_settings = ServerSettings(stage_token=token)
    stage_app = build_app(
        [make_executor(doubles, settings=stage_settings)], stages=["double"], pipelines=False
    )
    async with serving(stage_app) as (stage_server, http):
        call = {"args": [4], "kwargs": {}}
        forged = await http.post("/v1/stages/double", json=call, headers={CALLER_HEADER: "frontend"})
        assert forged.status_code == 401
        wrong = await http.post("/v1/stages/double", json=call, headers={"authorization": "Bearer st-77ab"})
        assert wrong.status_code == 401
        entry_settings = ServerSettings(stage_token=token)
        entry = build_app(
            [make_executor(doubles, stage_urls={"double": stage_server.url}, settings=entry_settings)]
        )
        async with serving(entry) as (_, client):
            assert (await client.post("/v1/pipelines/doubles", json={"n": 4})).json() == 8
        stranger = build_app([make_executor(doubles, stage_urls={"double": stage_server.url})])
        async with serving(stranger) as (_, client):
            refused = await client.post("/v1/pipelines/doubles", json={"n": 4})
            assert refused.status_code == 502 and refused.json()["error"]["stage"] == "double"


async def test_draining_finishes_requests_in_flight_and_answers_503_to_new_ones() -> None:
    tag = "drain"
    GATES[f"{tag}-in"], GATES[f"{tag}-go"] = asyncio.Event(), asyncio.Event()
    server = await AppServer(build_app([make_executor(holds), make_executor(doubles)])).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            running = asyncio.ensure_future(http.post("/v1/pipelines/holds", json={"tag": tag}))
            await asyncio.wait_for(GATES[f"{tag}-in"].wait(), 10)
            drained = asyncio.ensure_future(server.drain())
            await eventually(lambda: server.app.gate.draining, what="draining")
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as fresh:
                new = await fresh.post("/v1/pipelines/doubles", json={"n": 1})
                assert new.status_code == 503 and new.headers["retry-after"] == "1"
                assert new.json()["error"]["type"] == "service_unavailable"
                assert (await fresh.get("/ready")).status_code == 503
                assert (await fresh.get("/health")).status_code == 200  # alive, just not taking work
            assert not drained.done()  # still waiting for the request in flight
            GATES[f"{tag}-go"].set()
            finished = await running
            assert finished.status_code == 200 and finished.json() == tag
            await asyncio.wait_for(drained, 10)
    finally:
        await server.stop()


async def test_a_connection_opened_while_draining_is_answered_not_dropped() -> None:
    """A probe that connects during the drain and speaks a moment later gets its 503, not a closed socket."""
    tag = "late-probe"
    GATES[f"{tag}-in"], GATES[f"{tag}-go"] = asyncio.Event(), asyncio.Event()
    server = await AppServer(build_app([make_executor(holds)])).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            running = asyncio.ensure_future(http.post("/v1/pipelines/holds", json={"tag": tag}))
            await asyncio.wait_for(GATES[f"{tag}-in"].wait(), 10)  # keeps the drain going
            drained = asyncio.ensure_future(server.drain())
            await eventually(lambda: server.app.gate.draining, what="draining")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await asyncio.sleep(0.2)  # the drain looks at its connections every 10 ms meanwhile
            writer.write(b"GET /ready HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 503 "), head
            writer.close()
            GATES[f"{tag}-go"].set()
            assert (await running).json() == tag
            await asyncio.wait_for(drained, 10)
    finally:
        await server.stop()
