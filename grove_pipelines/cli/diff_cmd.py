"""`grove-pipelines diff REF`: what deploy would change; exit 0 when nothing, 1 when something."""

from __future__ import annotations

from typing import Annotated

import typer

from grove_pipelines.cli.cluster_options import Context, Image, Kubeconfig, ManifestRef, Namespace, connect
from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]


def diff(
    ref: ManifestRef,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    image: Image = None,
    force_conflicts: Annotated[
        bool, typer.Option("--force-conflicts", help="Diff as if deploy took over fields other managers own.")
    ] = False,
) -> None:
    """Show a unified diff of the fields grove-pipelines manages, live against what deploy would apply."""
    from grove_pipelines import kube

    with connect(kubeconfig, context) as client:
        manifests = kube.load_manifests(
            ref, namespace=namespace, image=image, default_namespace=client.namespace, report=echo_progress
        )
        prepared = kube.prepare(manifests, namespace=namespace, default_namespace=client.namespace)
        result = kube.diff(client, prepared, force_conflicts=force_conflicts, report=echo_progress)
    for note in result.notes:
        echo_progress(f"note: {note}")
    if result.changed:
        typer.echo(result.text, nl=False)
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("diff")(diff)
