"""Go's duration syntax, read once for Grove's ``terminationDelay`` and the CLI's ``--timeout``."""

from __future__ import annotations

import pytest
import typer

from grove_pipelines.cli.cluster_options import parse_timeout
from grove_pipelines.go_duration import parse_go_duration


@pytest.mark.parametrize(("text", "seconds"), [("4h", 14400.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("0", 0.0),
                                               ("250ms", 0.25), ("soon", None), ("5", None), ("", None),
                                               ("1h x", None)])  # fmt: skip
def test_parse_go_duration(text: str, seconds: float | None) -> None:
    assert parse_go_duration(text) == seconds


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("2.5", 2.5), ("20m", 1200.0), (" 1h30m ", 5400.0),
                                               ("500ms", 0.5)])  # fmt: skip
def test_timeout_is_seconds_or_a_go_duration(text: str, seconds: float) -> None:
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "-5", "nan", "inf", "1h x"])
def test_timeout_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration like 90s"):
        parse_timeout(text)
