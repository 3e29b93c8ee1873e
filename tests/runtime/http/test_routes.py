"""Dispatch: fixed paths, one trailing parameter, 404 and 405 in the error shape."""

from __future__ import annotations

import json

import pytest

from runtime.http import HttpError, Request, Response, Routes

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(10)]


def _request(method: str, path: str) -> Request:
    return Request(method=method, path=path, query="", headers={})


async def _named(request: Request) -> Response:
    return Response(200, json.dumps({"name": request.params.get("name")}).encode())


async def _health(request: Request) -> Response:
    return Response(200, b"ok")


@pytest.fixture
def routes() -> Routes:
    table = Routes()
    table.add("GET", "/health", _health)
    table.add("POST", "/v1/pipelines/{name}", _named)
    return table


async def test_fixed_and_parameterised_paths(routes: Routes) -> None:
    assert (await routes(_request("GET", "/health"))).body == b"ok"  # type: ignore[union-attr]
    reply = await routes(_request("POST", "/v1/pipelines/rag"))
    assert json.loads(reply.body) == {"name": "rag"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/v1/pipelines/", 404),
        ("POST", "/v1/pipelines/a/b", 404),
        ("POST", "/health", 405),
        ("GET", "/v1/pipelines/rag", 405),
    ],
)
async def test_unknown_paths_and_methods_are_refused(
    routes: Routes, method: str, path: str, status: int
) -> None:
    with pytest.raises(HttpError) as info:
        await routes(_request(method, path))
    assert info.value.status == status
    assert json.loads(info.value.body())["error"]["code"] == status


async def test_only_a_final_parameter_is_supported() -> None:
    with pytest.raises(ValueError, match="final"):
        Routes().add("GET", "/v1/{name}/x", _health)
