"""`grove-pipelines compile REF`: the pipeline's PodCliqueSet and the objects beside it, as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from grove_pipelines.cli.output import echo_notes, echo_warnings

__all__ = ["register"]


def compile_pipeline(
    ref: Annotated[str, typer.Argument(help="The pipeline: path/file.py[:name] or package.module[:name].")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of every object.")
    ] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image of the pipeline server and stages.")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when a stage is defined but the pipeline never calls it.")
    ] = False,
) -> None:
    """Compile to a multi-document manifest (validated against Grove's CRD schema and webhook rules)."""
    from grove_pipelines import compile as compiling
    from grove_pipelines import yamlio

    result = compiling.compile_pipeline(ref, namespace=namespace, image=image, strict=strict)
    echo_warnings(result.warnings)
    echo_notes(result.notes)
    text = yamlio.dump_all(result.documents)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {output}: {exc.strerror or exc}", param_hint="--output"
        ) from None
    typer.echo(f"wrote {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("compile")(compile_pipeline)
