"""`grove-pipelines delete NAME`: remove a deployed pipeline (its PodCliqueSet and what deploy put beside it)."""

from __future__ import annotations

from typing import Annotated

import typer

from grove_pipelines.cli.cluster_options import (
    Context,
    Kubeconfig,
    Namespace,
    Timeout,
    connect,
    parse_timeout,
)
from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]


def delete(
    name: Annotated[str, typer.Argument(help="The PodCliqueSet name (what deploy printed).")],
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the set and its pods are gone.")] = False,
    timeout: Timeout = "10m",
) -> None:
    """Delete a deployed pipeline."""
    from grove_pipelines import kube
    from grove_pipelines.kube.errors import PipelineNotFoundError

    seconds = parse_timeout(timeout)
    with connect(kubeconfig, context) as client:
        ns = namespace or client.namespace
        lines = kube.delete(client, name=name, namespace=ns, wait=wait, timeout=seconds, report=echo_progress)
    if lines is None:
        raise PipelineNotFoundError(name, ns)
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("delete")(delete)
