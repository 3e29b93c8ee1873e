"""Small output helpers shared by commands: warnings and progress go to stderr, results to stdout."""

from __future__ import annotations

from collections.abc import Iterable

import typer

__all__ = ["echo_notes", "echo_progress", "echo_warnings"]


def echo_warnings(warnings: Iterable[str]) -> None:
    """One ``warning: ...`` line per warning, on stderr."""
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)


def echo_notes(notes: Iterable[str]) -> None:
    """One ``note: ...`` line per note, on stderr."""
    for note in notes:
        typer.echo(f"note: {note}", err=True)


def echo_progress(line: str) -> None:
    """A progress line on stderr, so stdout stays clean for results."""
    typer.echo(line, err=True)
