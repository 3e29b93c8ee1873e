"""`grove-pipelines validate REF|FILE`: Grove's CRD schema and webhook rules, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def validate(
    target: Annotated[
        str, typer.Argument(help="A pipeline ref (path/file.py[:name], module:name) or a manifest.")
    ],
    crd: Annotated[
        Path | None, typer.Option("--crd", help="Directory of CRD YAMLs (default: the vendored Grove CRDs).")
    ] = None,
) -> None:
    """Print ``ok: KIND/NAME`` per accepted object, or one ``error:`` line per problem (exit code 1)."""
    from grove_pipelines.compile import validate_target

    reports = validate_target(target, crd_dir=crd)
    for report in reports:
        if report.skipped:
            typer.echo(f"skipped: {report.subject} (no schema for this kind)")
        elif report.ok:
            typer.echo(f"ok: {report.subject}")
        for problem in report.problems:
            typer.echo(f"error: {report.subject}: {problem}", err=True)
    if any(report.problems for report in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("validate")(validate)
