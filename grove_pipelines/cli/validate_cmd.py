"""`grove-pipelines validate REF|FILE`: Grove's verdict, offline — CRD schema and webhook rules.

The verdict depends on what it is judged against: ``--grove-version`` (the targeted release),
``--grove-config`` (the operator's configuration: enabled schedulers, TAS, MNNVL; default: a default
Helm install), ``--topology`` (ClusterTopologyBindings) and ``--old`` (the live objects: the check is an
update). Exit codes: 0 accepted, 1 rejected (one ``error:`` line per problem), 2 not a Kubernetes object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

NOT_AN_OBJECT = 2


def _printable(text: str) -> str:
    """One line whatever the manifest held: control characters (from hostile keys or values) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def validate(
    target: Annotated[
        str, typer.Argument(help="A pipeline ref (path/file.py[:name], module:name) or a manifest.")
    ],
    crd: Annotated[
        Path | None, typer.Option("--crd", help="Directory of CRD YAMLs (default: the vendored Grove CRDs).")
    ] = None,
    grove_version: Annotated[
        str | None, typer.Option("--grove-version", help="The Grove release to judge by (default: main).")
    ] = None,
    grove_config: Annotated[
        Path | None,
        typer.Option(
            "--grove-config", help="The operator's OperatorConfiguration, Helm values or ConfigMap."
        ),
    ] = None,
    topology: Annotated[
        Path | None, typer.Option("--topology", help="A file of ClusterTopologyBindings.")
    ] = None,
    old: Annotated[
        Path | None, typer.Option("--old", help="The live objects: check TARGET as an update of them.")
    ] = None,
) -> None:
    """Print 'ok: KIND/NAME' per accepted object, or one 'error: ...' line per problem (exit code 1)."""
    from grove_pipelines import yamlio
    from grove_pipelines.compile import validate_target
    from grove_pipelines.grove.cluster import GroveCluster
    from grove_pipelines.grove.operator_config import load_operator_config
    from grove_pipelines.grove.releases import grove_release
    from grove_pipelines.grove.topology_bindings import load_topology_bindings

    cluster = GroveCluster(
        release=grove_release(grove_version),
        config=load_operator_config(grove_config),
        bindings=load_topology_bindings(topology),
    )
    live = yamlio.load_all_file(old) if old is not None else None
    try:
        reports = validate_target(target, crd_dir=crd, cluster=cluster, old=live)
    except yamlio.YAMLError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(NOT_AN_OBJECT) from None
    for report in reports:
        subject = _printable(report.subject)
        if report.skipped:
            typer.echo(f"skipped: {subject} (no schema for this kind)")
        elif report.ok:
            typer.echo(f"ok: {subject}")
        for warning in report.warnings:
            typer.echo(f"warning: {subject}: {_printable(str(warning))}", err=True)
        for problem in report.problems:
            typer.echo(f"error: {subject}: {_printable(str(problem))}", err=True)
    if not reports or any(report.not_object for report in reports):
        if not reports:
            typer.echo(f"error: {target}: no Kubernetes object in it", err=True)
        raise typer.Exit(NOT_AN_OBJECT)
    if any(report.problems for report in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("validate")(validate)
