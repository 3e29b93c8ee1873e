"""`grove-pipelines run REF`: the pipeline on this machine, with real vLLM workers, until Ctrl-C."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]


def run(
    ref: Annotated[str, typer.Argument(help="The pipeline: path/file.py[:name] or package.module[:name].")],
    port: Annotated[int, typer.Option(help="Port of the pipeline server (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="Address of the pipeline server.")] = "127.0.0.1",
    backend: Annotated[str, typer.Option(help="local (processes on this machine) or ray (Ray Serve).")] = "local",
    model: Annotated[
        Path | None, typer.Option(help="Model directory vLLM serves for every LLM stage. [default: the tiny model]")
    ] = None,
    attach: Annotated[
        list[str] | None,
        typer.Option(hidden=True, help="NAME=URL[,URL]: use running vLLM workers for an LLM stage (tests)."),
    ] = None,
) -> None:
    """Run the pipeline here: vLLM workers per LLM stage, the router, the pipeline server.

    Prints the endpoint and a curl line; SIGINT or SIGTERM stops everything it started.
    """
    from grove_pipelines.local.plan import parse_attach

    # This machine runs models it has (the tiny model, models shipped in wheels): no hub look-ups,
    # which on an offline machine cost a timeout per file.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if backend not in ("local", "ray"):
        raise typer.BadParameter(f"{backend!r} is not one of local, ray", param_hint="--backend")
    options = {"host": host, "port": port, "model": model, "attach": parse_attach(attach or []),
               "progress": echo_progress, "announce": typer.echo}
    if backend == "ray":
        from grove_pipelines.local.ray_backend import run_ray

        run_ray(ref, **options)  # type: ignore[arg-type]
        return
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        echo_progress(f"warning: serving on {host}: the pipeline is reachable from other machines")
    from grove_pipelines.local.runner import run_local

    run_local(ref, **options)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("run")(run)
