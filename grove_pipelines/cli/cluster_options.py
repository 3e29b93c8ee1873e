"""Options shared by the cluster commands (deploy, status, diff, delete) and the one way they connect."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

import typer

from grove_pipelines.go_duration import parse_go_duration

if TYPE_CHECKING:
    from grove_pipelines.kube import KubeClient

__all__ = [
    "Context",
    "Image",
    "Kubeconfig",
    "ManifestRef",
    "Namespace",
    "Timeout",
    "connect",
    "parse_timeout",
]

Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the manifest's, else the context's)."),
]
ManifestRef = Annotated[
    str, typer.Argument(help="The pipeline (path/file.py[:name], module:name) or a YAML manifest.")
]
Image = Annotated[str | None, typer.Option("--image", help="Runtime image for the Python stages.")]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context to use.")]
Kubeconfig = Annotated[
    str | None,
    typer.Option("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."),
]
Timeout = Annotated[str, typer.Option("--timeout", help="How long --wait waits: 90s, 20m, 1h30m.")]


def parse_timeout(text: str) -> float:
    """``--timeout`` in seconds: a bare number of seconds, or a Go duration as kubectl takes (``20m``)."""
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = parse_go_duration(text.strip())
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 20m or 1h30m", param_hint="--timeout")
    return seconds


def connect(kubeconfig: str | None, context: str | None) -> KubeClient:
    """The cluster client (imported here so ``--help`` does not load the kubernetes package)."""
    from grove_pipelines.kube import connect as kube_connect

    return kube_connect(kubeconfig=kubeconfig, context=context)
