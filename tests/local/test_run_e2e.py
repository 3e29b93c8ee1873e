"""`grove-pipelines run pipelines/agentic_rag.py` end to end: real vLLM prefill/decode, router, pipeline server.

The run attaches to the session's vLLM pair (``--attach``) so CI starts vLLM once; everything else
(the router process, the pipeline server, the retrieval model) is what `make run` starts.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import httpx
import psutil
import pytest

from runtime.engines.vllm import PDPair
from tests.local.runproc import RunProcess, start_run
from tests.test_readme import readme_curl

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def agentic_run(vllm_pd_pair: PDPair) -> Iterator[RunProcess]:
    run = start_run(
        "pipelines/agentic_rag.py", "--attach", f"chat={vllm_pd_pair.prefill.url},{vllm_pd_pair.decode.url}"
    )
    try:
        yield run
    finally:
        run.kill()


def test_run_answers_the_readme_request(agentic_run: RunProcess) -> None:
    path, body = readme_curl()
    assert agentic_run.endpoint.endswith(path)
    response = httpx.post(agentic_run.endpoint, json=body, timeout=300)
    assert response.status_code == 200, response.text
    result = response.json()
    assert isinstance(result["answer"], str) and result["answer"].strip()
    assert result["sources"] >= 1 and 1 <= result["rounds"] <= 2


def test_streaming_yields_tokens_then_the_result(agentic_run: RunProcess) -> None:
    body = {"question": "How does prefill/decode disaggregation move the KV cache?", "stream": True}
    events: list[tuple[str, dict[str, object]]] = []
    with httpx.stream("POST", agentic_run.endpoint, json=body, timeout=300) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "result" and kinds.count("result") == 1, events[-1]
    tokens = [data for kind, data in events if kind == "token"]
    assert tokens and all(t["stage"] == "chat" and t["text"] for t in tokens)
    result = events[-1][1]
    last_call = max(int(t["call"]) for t in tokens)  # type: ignore[call-overload]
    assert "".join(str(t["text"]) for t in tokens if t["call"] == last_call) == result["answer"]


def test_malformed_json_and_bad_input_are_json_errors(agentic_run: RunProcess) -> None:
    broken = httpx.post(
        agentic_run.endpoint, content=b'{"question": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(agentic_run.endpoint, json={"query": "wrong field"})
    assert missing.status_code == 422 and "question" in missing.json()["error"]["message"]


def test_openai_endpoint_reaches_the_chat_stage(agentic_run: RunProcess) -> None:
    base = agentic_run.endpoint.rsplit("/v1/", 1)[0]
    response = httpx.post(
        f"{base}/v1/completions", json={"model": "chat", "prompt": "def", "max_tokens": 4}, timeout=120
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["text"] is not None


def test_sigint_stops_everything_run_started(agentic_run: RunProcess) -> None:
    """Last in this module: it stops the shared `run` process."""
    children = psutil.Process(agentic_run.proc.pid).children(recursive=True)
    assert children, "run started its router as a child process"
    agentic_run.proc.send_signal(signal.SIGINT)
    assert agentic_run.proc.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    agentic_run.wait_for("stopped", timeout=5)
