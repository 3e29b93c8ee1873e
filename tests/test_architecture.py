"""ARCHITECTURE.md stays true to the tree: every path it names exists, so a rename cannot leave it stale."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "ARCHITECTURE.md"

_FILE_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".json", ".sh")
_PATH = re.compile(r"[A-Za-z_][\w.-]*(?:/[\w.-]+)*/?")
_IN_DIAGRAM = re.compile(r"(?<![\w./])[A-Za-z_][\w.-]*(?:/[\w.-]+)+/?")
_MODULE = re.compile(r"(?:grove_pipelines|runtime)(?:\.\w+)+")


def named_paths(markdown: str) -> set[str]:
    """The repository paths a Markdown text names: in code spans (a path with a ``/`` or a file
    suffix, or a dotted module of this project) and anywhere in its Mermaid diagrams (a path with
    a ``/``). A dotted module comes back as the file path it resolves to, without the suffix."""
    found: set[str] = set()
    for block in re.findall(r"```mermaid\n(.*?)```", markdown, flags=re.DOTALL):
        found.update(_IN_DIAGRAM.findall(block))
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if _MODULE.fullmatch(span):
            found.add(span.replace(".", "/"))
        elif _PATH.fullmatch(span) and ("/" in span or span.endswith(_FILE_SUFFIXES)):
            found.add(span)
    return found


def missing(paths: set[str], root: Path) -> list[str]:
    """The paths that do not exist under ``root``: a ``dir/`` must be a folder, a dotted module a package or module."""
    gone = []
    for path in sorted(paths):
        target = root / path
        if path.endswith("/"):
            ok = target.is_dir()
        elif "." in Path(path).name or "/" not in path:
            ok = target.exists()
        else:  # a dotted module: a package folder or a .py file
            ok = target.is_dir() or target.with_suffix(".py").is_file() or target.exists()
        if not ok:
            gone.append(path)
    return gone


def test_the_extractor_finds_paths_in_spans_diagrams_and_modules(tmp_path: Path) -> None:
    text = (
        "See `a/b.py`, `top.md`, `runtime.server.app` and `c/` but not `llm(...)`, `x y/z` or `@stage`.\n"
        '```mermaid\nflowchart LR\n  n["server<br>d/e/"] -- "POST /v1/stages/NAME" --> m\n```\n'
        "```python\nignored/path.py\n```\n"
    )
    assert named_paths(text) == {"a/b.py", "top.md", "runtime/server/app", "c/", "d/e/"}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.py").write_text("")
    (tmp_path / "c").write_text("a file, not a folder")
    (tmp_path / "runtime" / "server").mkdir(parents=True)
    (tmp_path / "runtime" / "server" / "app.py").write_text("")
    assert missing(named_paths(text), tmp_path) == ["c/", "d/e/", "top.md"]


def test_every_path_named_in_architecture_exists() -> None:
    paths = named_paths(ARCHITECTURE.read_text())
    assert len(paths) >= 30, sorted(paths)  # the diagram and the table name the tree
    assert missing(paths, ROOT) == []


def test_the_readme_links_architecture() -> None:
    assert "](ARCHITECTURE.md)" in (ROOT / "README.md").read_text()
