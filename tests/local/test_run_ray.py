"""`grove-pipelines run --backend ray`: the same pipeline answers through Ray Serve deployments.

One Ray instance for the session (this module is its only user): Ray starts in ~30 s and takes ~2 GiB
on these machines. The LLM deployment attaches to the session's vLLM pair and runs the router.
"""

from __future__ import annotations

import signal

import httpx
import psutil
import pytest

from runtime.engines.vllm import PDPair
from tests.local.runproc import start_run

pytestmark = [pytest.mark.vllm, pytest.mark.ray]


def test_agentic_rag_answers_through_ray_serve_and_sigterm_cleans_up(vllm_pd_pair: PDPair) -> None:
    pytest.importorskip("ray.serve")
    attach = f"chat={vllm_pd_pair.prefill.url},{vllm_pd_pair.decode.url}"
    run = start_run("pipelines/agentic_rag.py", "--backend", "ray", "--attach", attach, timeout=400)
    try:
        base = run.endpoint.rsplit("/v1/", 1)[0]
        response = httpx.post(run.endpoint, json={"question": "What does the router do?"}, timeout=300)
        assert response.status_code == 200, response.text
        assert response.json()["answer"].strip()
        bad = httpx.post(run.endpoint, content=b"{", headers={"content-type": "application/json"}, timeout=60)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert "agentic-rag" in httpx.get(f"{base}/openapi.json", timeout=60).text
        children = psutil.Process(run.proc.pid).children(recursive=True)
        run.proc.send_signal(signal.SIGTERM)  # the local backend's test sends SIGINT: both are covered
        assert run.proc.wait(timeout=120) == 0
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left behind: {[(p.pid, p.name()) for p in alive]}"
    finally:
        run.kill()
