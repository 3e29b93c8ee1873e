"""Running the CLI in-process the way a shell would: exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from grove_pipelines.cli.main import main

__all__ = ["run_cli"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``grove-pipelines ARGS``: its exit code and what it printed to stdout and stderr."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
