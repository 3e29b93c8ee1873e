"""`grove-pipelines serve REF [--stage NAME]`: the pipeline server a pod runs (entry or stage clique)."""

from __future__ import annotations

from typing import Annotated

import typer

from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]


def serve(
    ref: Annotated[str, typer.Argument(help="The pipeline: path/file.py[:name] or package.module[:name].")],
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on (pods: 0.0.0.0).")] = "0.0.0.0",
    stage: Annotated[
        list[str] | None,
        typer.Option(help="Serve this Python stage at /v1/stages/NAME instead of the pipeline."),
    ] = None,
) -> None:
    """Serve the pipeline's HTTP endpoints (or one stage's) until SIGINT/SIGTERM.

    Stages and LLMs served elsewhere are found through GP_STAGE_URL_<NAME> and GP_LLM_URL_<NAME>.
    """
    from runtime.server.entry import serve as run_server

    def ready(url: str, executor: object) -> None:
        what = f"stage {', '.join(stage)}" if stage else f"pipeline {getattr(executor, 'name', '')}"
        echo_progress(f"serving {what} on {url}")

    run_server(ref, host=host, port=port, stages=stage or (), on_ready=ready)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("serve")(serve)
