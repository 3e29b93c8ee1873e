"""`grove-pipelines run` serves the toolpkg pipeline: every stage reached through helpers answers.

Attaches to the session's vLLM prefill/decode pair for the ``chat`` stage (no new vLLM).
"""

from __future__ import annotations

import httpx
import pytest

from runtime.engines.vllm import PDPair
from tests.local.runproc import start_run

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(600)]


def test_run_serves_a_pipeline_whose_stages_are_reached_only_through_helpers(vllm_pd_pair: PDPair) -> None:
    attach = f"chat={vllm_pd_pair.prefill.url},{vllm_pd_pair.decode.url}"
    run = start_run("tests.graph.toolpkg.app:agent", "--attach", attach)
    try:
        question = "grove"
        response = httpx.post(run.endpoint, json={"question": question}, timeout=300)
        assert response.status_code == 200, response.text
        result = response.json()
    finally:
        run.kill()
    docs = sorted([f"{question} in depth", f"{question} basics"])
    assert result["docs"] == docs
    assert result["calc"] == len(question)
    assert result["loop"] == [f"tool {i}: {question}" for i in range(3)]
    assert result["fmt"] == "bold: " + "; ".join(docs)
    assert result["weather"] == f"sunny in {question}"
    assert result["units"] == "3 m"
    assert result["shout"] == question.upper()
    assert result["echo"] == question
    assert result["summary"] == question[:20]
    assert result["grade"] == len(question) % 5
    assert result["plan"] == str(len(question))
    assert result["dated"] == f"{question} (today)"
    assert result["captured"] == f"captured {question}"
    assert isinstance(result["answer"], str)
