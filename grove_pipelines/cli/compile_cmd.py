"""`grove-pipelines compile REF`: the pipeline's PodCliqueSet and the objects beside it, as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
) -> None:
    """Compile to a multi-document manifest (validated against Grove's CRD schema and webhook rules)."""
    from grove_pipelines import yamlio
    from grove_pipelines.compile import compile_ref

    text = yamlio.dump_all(compile_ref(ref, namespace=namespace, image=image))
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
