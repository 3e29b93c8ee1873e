"""The router in front of a real NixlConnector prefill/decode pair (vLLM CPU build, tiny model).

The reference for every comparison is the decode worker serving the same greedy request alone (it
computes the prompt itself), computed FIRST and in a cache namespace of its own (``cache_salt``), so
that no block of it can be reused by the routed request and no transferred block can leak into it;
through the router the decode worker receives the prompt's KV from the prefill worker instead, which
its ``external_kv_transfer`` prompt-token counter shows. A corrupted transfer changes the text.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from runtime.engines.vllm import PDPair
from runtime.router.config import load_config
from runtime.router.server import RouterServer

pytestmark = [pytest.mark.vllm, pytest.mark.asyncio(loop_scope="session")]

CLI = str(Path(sys.executable).parent / "grove-pipelines")
GREEDY = {"model": "tiny", "max_tokens": 24, "temperature": 0, "ignore_eos": True}
PROMPTS = [
    "def parse_args(argv):\n    parser = argparse.ArgumentParser(description='router test')\n",
    "class LRUCache:\n    def __init__(self, capacity):\n        self.capacity = capacity\n" * 6,
    "import os\nimport sys\n\n"
    + "def walk(root):\n    for name in os.listdir(root):\n        yield name\n" * 12,
]


@pytest_asyncio.fixture(loop_scope="session")
async def routed(vllm_pd_pair: PDPair) -> AsyncIterator[tuple[RouterServer, aiohttp.ClientSession]]:
    """A router in this process in front of the pair, and a client."""
    config = load_config(
        overrides={
            "port": 0,
            "drain_timeout": 5,
            "prefill": [vllm_pd_pair.prefill.url],
            "decode": [vllm_pd_pair.decode.url],
            "health": {"eject_base": 30},
            "debug": True,
        }
    )
    server = RouterServer(config)
    await server.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        yield server, http
    await server.stop()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    async with http.post(url, json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json(), r.headers.get("x-grove-route", "")


async def reference(
    http: aiohttp.ClientSession, decode_url: str, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The decode worker alone, in a cache namespace no other request shares."""
    answer, _ = await post(
        http, f"{decode_url}{path}", {**body, "cache_salt": f"reference-{uuid.uuid4().hex}"}
    )
    return answer


async def external_kv_tokens_since(
    http: aiohttp.ClientSession, decode_url: str, before: float, at_least: float
) -> float:
    """The growth of the counter since ``before``, waiting (bounded) for vLLM to record the last request."""
    grown = 0.0
    for _ in range(50):
        grown = await external_kv_tokens(http, decode_url) - before
        if grown >= at_least:
            break
        await asyncio.sleep(0.1)
    return grown


async def external_kv_tokens(http: aiohttp.ClientSession, decode_url: str) -> float:
    text = await (await http.get(f"{decode_url}/metrics")).text()
    match = re.search(
        r'^vllm:prompt_tokens_by_source_total\{[^}]*source="external_kv_transfer"[^}]*\} (\S+)$',
        text,
        re.MULTILINE,
    )
    assert match, "the decode worker exports no external_kv_transfer counter"
    return float(match.group(1))


async def test_greedy_completion_through_the_router_equals_the_decode_worker_alone(
    routed: tuple[RouterServer, aiohttp.ClientSession], vllm_pd_pair: PDPair
) -> None:
    server, http = routed
    for i, prompt in enumerate(PROMPTS):
        body = {**GREEDY, "prompt": f"# completion test {i}\n{prompt}"}
        alone = await reference(http, vllm_pd_pair.decode.url, "/v1/completions", body)
        before = await external_kv_tokens(http, vllm_pd_pair.decode.url)
        via_router, route = await post(http, f"{server.url}/v1/completions", body)
        prompt_tokens = via_router["usage"]["prompt_tokens"]
        grown = await external_kv_tokens_since(http, vllm_pd_pair.decode.url, before, prompt_tokens - 1)
        assert route.startswith(
            f"mode=disaggregated; prefill={vllm_pd_pair.prefill.url}; decode={vllm_pd_pair.decode.url}"
        )
        assert via_router["choices"][0]["text"] == alone["choices"][0]["text"]
        assert via_router["usage"]["completion_tokens"] == 24
        assert grown >= prompt_tokens - 1  # the KV came over NIXL


async def test_greedy_chat_through_the_router_equals_the_decode_worker_alone(
    routed: tuple[RouterServer, aiohttp.ClientSession], vllm_pd_pair: PDPair
) -> None:
    server, http = routed
    body = {
        **GREEDY,
        "messages": [
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": PROMPTS[1] + "# chat test"},
        ],
    }
    alone = await reference(http, vllm_pd_pair.decode.url, "/v1/chat/completions", body)
    via_router, route = await post(http, f"{server.url}/v1/chat/completions", body)
    assert "mode=disaggregated" in route
    assert via_router["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]


async def test_streaming_chat_yields_chunks_that_add_up_to_the_plain_answer(
    routed: tuple[RouterServer, aiohttp.ClientSession], vllm_pd_pair: PDPair
) -> None:
    server, http = routed
    body = {**GREEDY, "messages": [{"role": "user", "content": PROMPTS[2] + "# stream test"}]}
    plain, _ = await post(http, f"{server.url}/v1/chat/completions", body)
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    chunks: list[dict[str, Any]] = []
    async with http.post(f"{server.url}/v1/chat/completions", json=stream_body) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    # How many chunks vLLM sends is its own timing: its output loop merges the deltas of a request that
    # got ahead of the reader. So the test checks the stream's shape, not a count (the chunk-for-chunk
    # relay is test_legs.py's, against a worker that sends one event per token): the role first, then
    # content deltas that add up to the plain answer, one finish reason, and the usage chunk last.
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    choices = [c["choices"][0] for c in chunks if c["choices"]]
    assert choices[0]["delta"].get("role") == "assistant"
    text = "".join(choice["delta"].get("content") or "" for choice in choices)
    assert text == plain["choices"][0]["message"]["content"]
    assert [choice.get("finish_reason") for choice in choices if choice.get("finish_reason")] == ["length"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 24  # stream_options reached the decode leg


async def test_cli_router_in_front_of_the_pair(vllm_pd_pair: PDPair) -> None:
    """The acceptance command: ``grove-pipelines router --prefill P --decode D --port N``."""
    proc = await asyncio.create_subprocess_exec(
        CLI,
        "router",
        "--prefill",
        vllm_pd_pair.prefill.url,
        "--decode",
        vllm_pd_pair.decode.url,
        "--port",
        "0",
        "--debug-routing",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
        url = line.split(" on ", 1)[1].strip()
        body = {**GREEDY, "prompt": "# cli test\n" + PROMPTS[2]}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
            alone = await reference(http, vllm_pd_pair.decode.url, "/v1/completions", body)
            before = await external_kv_tokens(http, vllm_pd_pair.decode.url)
            via_router, route = await post(http, f"{url}/v1/completions", body)
            assert await external_kv_tokens_since(http, vllm_pd_pair.decode.url, before, 1) >= 1
        assert "mode=disaggregated" in route
        assert via_router["choices"][0]["text"] == alone["choices"][0]["text"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
