"""A stage server that drains (SIGTERM in a rolling update) refuses calls without running them: its
callers send them again, and reach another replica behind the Service, or tell the client to retry.

The Service is the local runner's own (``grove_pipelines.local.services``): each new connection goes
to the next Ready endpoint, round robin, as kube-proxy spreads them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from grove_pipelines import pipeline, stage
from grove_pipelines.local.services import Endpoint, ServiceForwarder
from runtime.server import build_app
from runtime.server.errors import (
    DrainingError,
    StageBusyError,
    StageFailedError,
    StageUpstreamError,
    from_body,
)
from runtime.server.serving import AppServer
from tests.polling import eventually
from tests.runtime.server.helpers import make_executor, serving

RUNS: list[int] = []
HOLD: dict[str, asyncio.Event] = {}


@stage
async def triple(n: int) -> int:
    RUNS.append(n)
    return 3 * n


@stage
async def parked(tag: str) -> str:
    HOLD["in"].set()
    await HOLD["go"].wait()
    return tag


@pipeline(name="triples")
async def triples(n: int) -> int:
    return await triple(n)


@pipeline(name="parks")
async def parks(tag: str) -> str:
    return await parked(tag)


def replica(address: str, port: int = 0) -> AppServer:
    """A stage server of ``triple`` (and of ``parked``, whose held call keeps a drain going) on ``address``."""
    app = build_app([make_executor(triples), make_executor(parks)], stages=["triple", "parked"])
    return AppServer(app, host=address, port=port)


@asynccontextmanager
async def service(*replicas: AppServer) -> AsyncIterator[tuple[str, list[int]]]:
    """A Service in front of ``replicas`` (one port, one address each): its URL, and how many
    connections it has forwarded (one entry per connection)."""
    connections: list[int] = []

    def endpoints() -> list[Endpoint]:
        connections.append(len(connections))
        return [Endpoint(r.sock.getsockname()[0], ()) for r in replicas]

    spec = {"metadata": {"name": "stages"}, "spec": {"ports": [{"port": 0, "targetPort": replicas[0].port}]}}
    forwarder = ServiceForwarder(spec, endpoints)
    try:
        [port] = await forwarder.listen("127.0.0.1")
        yield f"http://127.0.0.1:{port}", connections
    finally:
        await forwarder.close()


@asynccontextmanager
async def draining(server: AppServer) -> AsyncIterator[None]:
    """``server`` draining (as after SIGTERM) for as long as the block runs: a request held in flight keeps it so."""
    HOLD["in"], HOLD["go"] = asyncio.Event(), asyncio.Event()
    async with serving(build_app([make_executor(parks, stage_urls={"parked": server.url})])) as (_, http):
        held = asyncio.ensure_future(http.post("/v1/pipelines/parks", json={"tag": "t"}))
        await asyncio.wait_for(HOLD["in"].wait(), 10)
        drained = asyncio.ensure_future(server.drain())
        await eventually(lambda: server.app.gate.draining, what="draining")
        try:
            yield
        finally:
            HOLD["go"].set()
            assert (await asyncio.wait_for(held, 10)).status_code == 200  # the drain finished what it had
            await asyncio.wait_for(drained, 10)


async def test_a_call_refused_by_a_draining_replica_is_sent_again_and_another_replica_runs_it() -> None:
    RUNS.clear()
    async with replica("127.0.0.2") as old, replica("127.0.0.3", old.port) as new, draining(old):
        async with (
            service(old, new) as (url, connections),
            serving(build_app([make_executor(triples, stage_urls={"triple": url})])) as (_, http),
        ):
            answer = await http.post("/v1/pipelines/triples", json={"n": 7})
        assert answer.status_code == 200 and answer.json() == 21, answer.text
        assert len(connections) == 2  # the draining replica's, then a new one: the Service's next endpoint
    assert RUNS == [7]  # run once, by the replica that took it


async def test_a_call_no_replica_takes_is_told_to_the_client_as_busy_with_retry_after() -> None:
    RUNS.clear()
    async with replica("127.0.0.2") as only, draining(only), service(only) as (url, connections):
        entry = build_app([make_executor(triples, stage_urls={"triple": url})])
        async with serving(entry) as (_, http):
            answer = await http.post("/v1/pipelines/triples", json={"n": 7})
        assert len(connections) == 3  # at once, then after its Retry-After, then told
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    error = answer.json()["error"]
    assert (error["type"], error["stage"]) == ("service_unavailable", "triple")
    assert RUNS == []


@pytest.mark.parametrize(
    ("status", "error", "retry_after", "expected"),
    [
        # the server itself refused (no stage named): draining, the call was not run
        (
            503,
            {"message": "m", "type": "service_unavailable", "code": 503},
            1,
            (DrainingError, 503, "triple"),
        ),
        # a stage the callee called answered busy: that stage, with the callee's status and Retry-After
        (
            503,
            {"message": "m", "type": "service_unavailable", "stage": "chat"},
            2,
            (StageBusyError, 503, "chat"),
        ),
        (
            429,
            {"message": "m", "type": "rate_limit_error", "stage": "chat"},
            3,
            (StageBusyError, 429, "chat"),
        ),
        # a wrong stage token is the deployment's fault: upstream, not the client's
        (401, {"message": "m", "type": "authentication_error"}, None, (StageUpstreamError, 502, "triple")),
        (404, {"message": "m", "type": "not_found_error"}, None, (StageFailedError, 500, "triple")),
        (503, "not an error body", None, (StageUpstreamError, 502, "triple")),
    ],
)
def test_a_remote_error_is_rebuilt_by_what_it_says(
    status: int, error: object, retry_after: int | None, expected: tuple[type, int, str]
) -> None:
    body = {"error": error} if isinstance(error, dict) else error
    rebuilt = from_body(status, body, stage="triple", url="http://stage", retry_after=retry_after)
    assert (type(rebuilt), rebuilt.status, rebuilt.stage) == expected
    if isinstance(rebuilt, StageBusyError):
        assert rebuilt.headers() == ((b"retry-after", str(retry_after).encode()),)
