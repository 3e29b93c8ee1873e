"""`grove-pipelines graph REF`: show the pipeline's call graph as text, Mermaid or Graphviz dot;
``--explain`` says where each edge comes from (the function and line, or "declared")."""

from __future__ import annotations

from typing import Annotated

import typer

from grove_pipelines.cli.output import echo_notes, echo_warnings
from grove_pipelines.graph import explain, render
from grove_pipelines.loader import load_graph

__all__ = ["register"]


def graph(
    ref: Annotated[str, typer.Argument(help="The pipeline: path/file.py[:name] or package.module[:name].")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, mermaid or dot.")] = "text",
    why: Annotated[
        bool,
        typer.Option("--explain", help="For every edge, the code it comes from (function at file:line)."),
    ] = False,
) -> None:
    """Print the pipeline's stages and who calls whom."""
    if fmt not in ("text", "mermaid", "dot"):
        raise typer.BadParameter(f"{fmt!r} is not one of text, mermaid, dot", param_hint="--format")
    from grove_pipelines.grove.compiler import plan_names

    pipeline_graph = load_graph(ref)
    echo_warnings(pipeline_graph.warnings)
    echo_notes(plan_names(pipeline_graph)[2])
    typer.echo(explain(pipeline_graph) if why else render(pipeline_graph, fmt))  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("graph")(graph)
