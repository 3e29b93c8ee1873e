"""`grove-pipelines deploy REF`: compile, check against the cluster, server-side apply, optionally wait."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from grove_pipelines.cli.cluster_options import (
    Context,
    Image,
    Kubeconfig,
    ManifestRef,
    Namespace,
    Timeout,
    connect,
    parse_timeout,
)
from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]

DryRun = Annotated[
    str,
    typer.Option(
        "--dry-run",
        help="client: print the manifests, touch no cluster; server: the API server "
        "validates every write and persists nothing; none: deploy.",
    ),
]


def _confirm(question: str) -> bool:
    from grove_pipelines.kube.errors import DeployCancelledError

    if not sys.stdin.isatty():
        raise DeployCancelledError(
            "--recreate deletes a running PodCliqueSet: pass --yes to confirm without a terminal"
        )
    return typer.confirm(question, err=True)


def deploy(
    ref: ManifestRef,
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    image: Image = None,
    dry_run: DryRun = "none",
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until every clique has minAvailable ready pods.")
    ] = False,
    timeout: Timeout = "20m",
    recreate: Annotated[
        bool,
        typer.Option("--recreate", help="Delete and create the set when its frozen composition changed."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --recreate deletes.")] = False,
    force_conflicts: Annotated[
        bool, typer.Option("--force-conflicts", help="Take over fields other field managers own.")
    ] = False,
    create_namespace: Annotated[
        bool, typer.Option("--create-namespace", help="Create the namespace if it is missing.")
    ] = False,
) -> None:
    """Deploy a pipeline to a Grove cluster (server-side apply, field manager grove-pipelines)."""
    from grove_pipelines import kube, yamlio

    if dry_run not in ("none", "client", "server"):
        raise typer.BadParameter(f"{dry_run!r} is not one of client, server, none", param_hint="--dry-run")
    seconds = parse_timeout(timeout)
    if dry_run == "client":
        manifests = kube.load_manifests(ref, namespace=namespace, image=image, report=echo_progress)
        typer.echo(
            yamlio.dump_all(kube.prepare(manifests, namespace=namespace, default_namespace="default")),
            nl=False,
        )
        return
    with connect(kubeconfig, context) as client:
        manifests = kube.load_manifests(
            ref, namespace=namespace, image=image, default_namespace=client.namespace, report=echo_progress
        )
        prepared = kube.prepare(manifests, namespace=namespace, default_namespace=client.namespace)
        result = kube.deploy(
            client,
            prepared,
            force_conflicts=force_conflicts,
            recreate=recreate,
            confirm=None if yes else _confirm,
            create_namespace=create_namespace,
            dry_run=dry_run == "server",
            timeout=seconds,
            report=echo_progress,
        )
        typer.echo("\n".join(result.lines()))
        if wait and dry_run == "none":
            kube.wait_ready(
                client, name=result.name, namespace=result.namespace, timeout=seconds, report=echo_progress
            )


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("deploy")(deploy)
