"""Shared fixtures. Real-vLLM fixtures live in tests/vllm_fixtures.py (started at most once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.vllm_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def repo_root() -> Path:
    """The repository's root folder."""
    return ROOT


@pytest.fixture
def write_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Write a pipeline module into a temporary folder (the working directory) and return its path."""
    monkeypatch.chdir(tmp_path)

    def write(source: str, name: str = "user_pipeline.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    return write
