"""The issue's long names: compile shortens them, deploy applies them, status finds the set by the pipeline's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grove_pipelines.grove.names import fnv_suffix
from tests.kube.apiserver import ApiServerDouble
from tests.kube.conftest import Cli

pytestmark = pytest.mark.timeout(120)

NAME = "customer-support-agentic-pipeline-prod"
MODEL = "a-rather-long-language-model-stage-name"
PIPELINE = f"""
from grove_pipelines import PD, Role, llm, pipeline

model = llm("{MODEL}", model="Qwen/Qwen3-0.6B", gpus=1, max_model_len=4096,
            disaggregated=PD(prefill=Role(nodes=2), decode=Role(nodes=2)))


@pipeline(name="{NAME}")
async def support(question: str) -> str:
    return await model.chat(question, max_tokens=8)
"""


def test_long_names_compile_deploy_and_show_in_status(
    apiserver: ApiServerDouble, kubeconfig: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "support.py").write_text(PIPELINE)
    pcs, base = f"customer-su-{fnv_suffix(NAME)}", f"a-rathe-{fnv_suffix(MODEL)}"
    graph = cli("graph", "support.py")
    assert graph.code == 0, graph.err
    assert (
        f"note: pipeline {NAME!r} is too long for Grove's name budget: its PodCliqueSet is named {pcs!r}"
        in graph.err
    )
    assert graph.err.count("note: ") == 2

    deployed = cli("deploy", "support.py")
    assert deployed.code == 0, deployed.err
    assert f"podcliqueset/{pcs} created" in deployed.out
    assert f"note: pipeline {NAME!r} is too long for Grove's name budget" in deployed.err
    status = cli("status", NAME, "-o", "json")
    assert status.code == 0, status.err
    data = json.loads(status.out)
    assert data["name"] == pcs
    assert {g["name"] for g in data["scaling_groups"]} == {f"{pcs}-0-{base}-p", f"{pcs}-0-{base}-d"}
    assert {c["name"] for c in data["cliques"]} >= {f"{pcs}-0-frontend", f"{pcs}-0-{base}-p-0-{base}-pl"}
