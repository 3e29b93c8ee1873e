"""The README's example pipeline is real: it loads, and its graph is what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grove_pipelines.graph import ENTRY
from grove_pipelines.loader import load_graph

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.fixture
def readme_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The README's Python block, saved as ask.py in a temporary working directory."""
    (block,) = readme_blocks("python")
    assert len(block.strip().splitlines()) <= 16, "the README's example stays about 15 lines"
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ask.py"
    path.write_text(block)
    return path


def test_readme_opens_with_the_two_commands() -> None:
    first = readme_blocks("bash")[0]
    assert first.splitlines()[0].startswith("make run") and first.splitlines()[1].startswith("make test")


def test_readme_pipeline_loads(readme_pipeline: Path) -> None:
    graph = load_graph("ask.py")
    assert graph.name == "ask"
    assert sorted(graph.callees(ENTRY)) == ["chat", "search"]


def readme_curl() -> tuple[str, dict[str, object]]:
    """The path and JSON body of the README's `curl` example (the e2e test of `run` sends it)."""
    import json

    (block,) = [b for b in readme_blocks("bash") if b.lstrip().startswith("curl")]
    command = block.replace("\\\n", " ")
    url = re.search(r"http://[^ ]+", command)
    body = re.search(r"-d '([^']*)'", command)
    assert url and body, command
    return "/" + url.group(0).split("/", 3)[3], json.loads(body.group(1))


def test_readme_pipeline_compiles_and_validates(readme_pipeline: Path) -> None:
    from grove_pipelines.compile import compile_ref, validate_target

    documents = compile_ref("ask.py")
    pcs = documents[0]
    cliques = {c["name"]: c["spec"] for c in pcs["spec"]["template"]["cliques"]}
    assert set(cliques) == {"frontend", "search", "chat-prefill", "chat-decode"}
    assert cliques["chat-prefill"]["replicas"] == 2 and cliques["search"]["replicas"] == 2
    assert sorted(cliques["frontend"]["startsAfter"]) == ["chat-decode", "chat-prefill", "search"]
    assert all(report.ok for report in validate_target("ask.py"))


def test_readme_curl_matches_the_agentic_pipeline(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo_root)
    path, body = readme_curl()
    assert path == "/v1/pipelines/agentic-rag"
    graph = load_graph("pipelines/agentic_rag.py")
    assert graph.name == path.rsplit("/", 1)[1]
    assert set(body) == {"question"}
