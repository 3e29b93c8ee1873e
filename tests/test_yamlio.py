"""The one YAML helper: model key order, block strings, multi-document streams, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from grove_pipelines import yamlio
from grove_pipelines.errors import ManifestError


def test_dump_keeps_key_order_and_long_lines() -> None:
    text = yamlio.dump({"kind": "X", "apiVersion": "v1", "cmd": "exec " + "a " * 100})
    assert text.splitlines()[0] == "kind: X" and len(text.splitlines()) == 3


def test_multi_line_strings_are_blocks() -> None:
    assert yamlio.dump({"script": "a\nb\n"}) == "script: |\n  a\n  b\n"


def test_multi_document_round_trip(tmp_path: Path) -> None:
    docs = [{"a": 1}, {"b": [1, 2]}]
    text = yamlio.dump_all(docs)
    assert text.count("---") == 1
    (tmp_path / "m.yaml").write_text("---\n" + text + "---\n")
    assert yamlio.load_all_file(tmp_path / "m.yaml") == docs


def test_errors_are_manifest_errors_with_the_source(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"^x.yaml: invalid YAML: .*line 1"):
        yamlio.load("a: [1", source="x.yaml")
    with pytest.raises(ManifestError, match="cannot read"):
        yamlio.load_file(tmp_path / "absent.yaml")
