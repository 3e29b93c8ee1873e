"""The README's example pipeline is real: it loads, and its graph is what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grove_pipelines.graph import ENTRY
from grove_pipelines.loader import load_graph

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


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
