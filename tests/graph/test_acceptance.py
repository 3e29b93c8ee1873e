"""The toolpkg fixture end to end without a model: every stage it reaches is a clique, and Grove accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from grove_pipelines.compile import compile_pipeline, validate_target
from tests.graph.toolpkg import EXPECTED

pytestmark = pytest.mark.timeout(120)

REF = "tests.graph.toolpkg.app:agent"


def test_every_reached_stage_is_a_clique_and_the_manifest_validates(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo_root)
    result = compile_pipeline(REF)
    stages = {callee for _, callee in EXPECTED}
    python = stages - {"chat"}
    cliques = {c["name"] for c in result.documents[0]["spec"]["template"]["cliques"]}
    assert cliques == {"frontend", "chat-prefill", "chat-decode", *python}
    services = {d["metadata"]["name"] for d in result.documents if d["kind"] == "Service"}
    assert services == {"toolbox", *(f"toolbox-{name}" for name in python)}
    frontend = result.documents[0]["spec"]["template"]["cliques"][0]
    assert set(frontend["spec"]["startsAfter"]) == {"chat-prefill", "chat-decode", *python} - {"calc", "fmt"}
    assert (result.warnings, result.notes) == ([], [])
    assert all(report.ok for report in validate_target(REF))
