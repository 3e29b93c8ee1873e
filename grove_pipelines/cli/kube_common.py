"""Options shared by the cluster commands (deploy, status, diff, delete) and the one way they connect."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from grove_pipelines.kube import KubeClient

__all__ = ["Context", "Image", "Kubeconfig", "ManifestRef", "Namespace", "Timeout", "connect", "parse_duration"]

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

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_duration(text: str) -> float:
    """``20m`` -> 1200.0; a bare number is seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 20m or 1h30m", param_hint="--timeout")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def connect(kubeconfig: str | None, context: str | None) -> KubeClient:
    """The cluster client (imported here so ``--help`` does not load the kubernetes package)."""
    from grove_pipelines.kube import connect as kube_connect

    return kube_connect(kubeconfig=kubeconfig, context=context)
