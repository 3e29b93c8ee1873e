"""Schemathesis against the pipeline server's own OpenAPI document: no 5xx, no traceback, JSON errors.

Shared by the test (a few hundred cases, ``make test``) and the benchmark (a longer run, ``make bench``).
The server runs on a loopback port in a thread of its own (schemathesis calls it synchronously), with
bearer auth on and an LLM stage behind the fake vLLM, as a deployed entry would be.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from pydantic import BaseModel

from grove_pipelines import llm, pipeline, stage
from runtime.auth import ApiKeys
from runtime.server import build_app
from runtime.server.serving import AppServer
from runtime.server.settings import ServerSettings
from tests.runtime.fake_vllm import FakeVLLM
from tests.runtime.server.helpers import make_executor

__all__ = ["FuzzReport", "fuzz_server"]

KEY = "fuzz-key-0123"


class Filters(BaseModel):
    tags: list[str] = []
    year: int | None = None
    mode: Literal["any", "all"] = "any"


@stage
async def tally(query: str, filters: Filters, limit: int, weights: dict[str, float]) -> dict[str, Any]:
    return {"chars": len(query), "tags": len(filters.tags), "limit": limit, "weight": sum(weights.values())}


fuzz_llm = llm("fuzz-llm", model="tiny")


@pipeline(name="search")
async def search(
    query: str, filters: Filters, limit: int = 10, weights: dict[str, float] | None = None, ask: bool = False
) -> dict[str, Any]:
    """Every JSON type in one signature: strings, a nested model, numbers, maps, a flag."""
    result = await tally(query, filters, limit, weights or {})
    if ask:
        result["answer"] = await fuzz_llm.complete(query[:200], max_tokens=2)
    return result


@dataclass
class FuzzReport:
    """What the run sent and what broke the rules."""

    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _check(response: requests.Response, case: schemathesis.Case, report: FuzzReport) -> None:
    report.cases += 1
    report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
    where = f"{case.method} {case.formatted_path} body={str(case.body)[:200]!r}"
    if response.status_code >= 500:
        report.failures.append(f"{response.status_code} for {where}: {response.text[:300]}")
    if "Traceback" in response.text or 'File "' in response.text:
        report.failures.append(f"traceback in the answer to {where}")
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            assert {"message", "type", "code"} <= set(error) and error["code"] == response.status_code
        except (ValueError, KeyError, TypeError, AssertionError):
            report.failures.append(
                f"{response.status_code} without a JSON error for {where}: {response.text[:200]}"
            )


@contextmanager
def _served_in_thread() -> Iterator[str]:
    """The fuzz app (auth on, LLM behind the fake vLLM) on a loopback port, in its own thread and loop."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        fake = FakeVLLM(model="tiny")
        await fake.start()
        settings_ = ServerSettings(api_keys=ApiKeys([KEY]), max_body_bytes=256 * 1024)
        executor = make_executor(
            search, llm_urls={"fuzz-llm": fake.url}, llm_models={"fuzz-llm": "tiny"}, settings=settings_
        )
        stop = asyncio.Event()
        state["stop"], state["loop"] = stop, asyncio.get_running_loop()
        async with AppServer(build_app([executor])) as server:
            state["url"] = server.url
            ready.set()
            await stop.wait()
        await fake.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not ready.wait(30):
        raise AssertionError("the fuzz server did not start within 30 s")
    try:
        yield str(state["url"])
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)


def fuzz_server(examples: int) -> FuzzReport:
    """Run ``examples`` positive and ``examples`` negative cases per operation; return what happened."""
    report = FuzzReport()
    with _served_in_thread() as url, requests.Session() as session:
        document = session.get(
            f"{url}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        ).json()
        schema = schemathesis.openapi.from_dict(document)
        for result in schema.get_all_operations():
            operation = result.ok()
            inputs = bool(list(operation.body)) or bool(list(operation.iter_parameters()))
            for mode in schemathesis.GenerationMode if inputs else [schemathesis.GenerationMode.POSITIVE]:

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case: schemathesis.Case) -> None:
                    response = case.call(
                        base_url=url, session=session, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
                    )
                    _check(response, case, report)

                run()
    return report
