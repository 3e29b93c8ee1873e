"""schemathesis against the router's own OpenAPI document (``/openapi.json``): a few hundred generated
requests, none may get a 5xx, a traceback, an internal address or a malformed error body.

The worker behind the router is the fake (tests/runtime/fake_vllm.py): it answers at once, so the
run measures the router's input handling, not generation. ``make bench`` runs a longer fuzz
(tests/bench/router_fuzz.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import pytest

from runtime.router.server import RouterServer
from tests.runtime.conftest import MakeFake, MakeRouter
from tests.runtime.router.test_legs import metric

pytestmark = [pytest.mark.asyncio(loop_scope="session")]

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
HOOKS = "tests.runtime.router.fuzz_hooks"


async def fuzz(
    router: RouterServer, max_examples: int, seed: int = 1, *, deterministic: bool = True
) -> tuple[int, str]:
    """Run schemathesis against ``router``; its exit code and output."""
    mode = ["--generation-deterministic"] if deterministic else ["--seed", str(seed)]
    with tempfile.TemporaryDirectory(prefix="router-fuzz-") as scratch:
        return await _run(router, max_examples, mode, scratch)


async def _run(router: RouterServer, max_examples: int, mode: list[str], scratch: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "run",
        f"{router.url}/openapi.json",
        "--checks",
        "not_a_server_error,no_leak_and_openai_errors",
        "--max-examples",
        str(max_examples),
        *mode,
        "--request-timeout",
        "20",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=scratch,  # schemathesis keeps its example database in the working directory
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.timeout(300)
async def test_generated_requests_from_the_openapi_document_get_no_5xx_and_no_traceback(
    fakes: MakeFake, make_router: MakeRouter
) -> None:
    worker = await fakes()
    router = await make_router(worker=[worker.url], debug=False, limits={"max_body_bytes": 65536})
    code, out = await fuzz(router, max_examples=60)
    assert code == 0, out[-4000:]
    text = router.router.metrics.render().decode()
    answered = sum(
        metric(text, "grove_router_requests_total", endpoint=e, status=s)
        for e in ("completions", "chat")
        for s in ("200", "400", "404", "413")
    )
    assert answered >= 200  # a few hundred cases reached the completion endpoints
    assert not any('status="5' in line for line in text.splitlines() if "requests_total" in line)
