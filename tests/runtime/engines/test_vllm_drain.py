"""vLLM as the compiled pods run it (``--shutdown-timeout``) finishes its generations in flight on
SIGTERM, where vLLM's default aborts them: a rolling update or a scale-down of an LLM clique cuts no
answer short. SIGTERM goes to the ``vllm serve`` process alone, as the kubelet sends it to PID 1."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest

from runtime.engines.vllm import VLLMProcess

pytestmark = pytest.mark.vllm

TOKENS = 400


def test_a_generation_in_flight_at_sigterm_is_finished_and_new_ones_are_refused(
    vllm_drain_worker: VLLMProcess,
) -> None:
    worker = vllm_drain_worker
    assert worker.pid is not None
    body = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": TOKENS, "ignore_eos": True,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    finished: list[str] = []  # each choice's finish_reason ("length": all of max_tokens; "abort": cut)
    generated = 0  # from the usage chunk: a streamed chunk may carry more than one token
    done = False
    with (
        httpx.Client(base_url=worker.url, timeout=60) as http,
        http.stream("POST", "/v1/completions", json=body) as answer,
    ):
        assert answer.status_code == 200
        lines = answer.iter_lines()
        for line in lines:  # up to the first token; then the pod is told to stop
            if line.startswith("data: {"):
                break
        os.kill(worker.pid, signal.SIGTERM)
        refused = False
        for _ in range(100):  # bounded: 5 s for the signal to take effect while the stream goes on
            refused = _new_request_refused(http)
            if refused:
                break
            time.sleep(0.05)
        for line in lines:
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: {"):
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                finished += [c["finish_reason"] for c in chunk["choices"] if c.get("finish_reason")]
                generated = (chunk.get("usage") or {}).get("completion_tokens", generated)
    assert (done, finished, generated) == (True, ["length"], TOKENS)
    assert refused, "a request sent after SIGTERM was served"
    deadline = time.monotonic() + 60
    while worker.running and time.monotonic() < deadline:  # bounded: it exits once drained
        time.sleep(0.2)
    assert not worker.running, "vLLM did not exit after its drain"


def _new_request_refused(http: httpx.Client) -> bool:
    """Whether a request sent now is turned away (a 5xx, which a router retries on another worker, or
    no connection) rather than served."""
    try:
        answer = http.post(
            "/v1/completions", json={"model": "tiny", "prompt": "Once", "max_tokens": 1}, timeout=10
        )
    except httpx.TransportError:
        return True
    return answer.status_code >= 500  # vLLM 0.32 answers 500 ("cannot schedule new futures after shutdown")
