"""`grove-pipelines run REF`: the pipeline on this machine, with real vLLM workers, until Ctrl-C."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from grove_pipelines.cli.output import echo_progress

__all__ = ["register"]


def run(
    ref: Annotated[
        str | None, typer.Argument(help="The pipeline: path/file.py[:name] or package.module[:name].")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Run this compiled manifest (YAML) instead of compiling REF.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the pipeline server (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="Address of the pipeline server.")] = "127.0.0.1",
    backend: Annotated[
        str, typer.Option(help="local (processes on this machine) or ray (Ray Serve).")
    ] = "local",
    model: Annotated[
        Path | None,
        typer.Option(help="Model directory vLLM serves for every LLM stage. [default: the tiny model]"),
    ] = None,
    attach: Annotated[
        list[str] | None,
        typer.Option(hidden=True, help="NAME=URL[,URL]: use running vLLM workers for an LLM stage (tests)."),
    ] = None,
) -> None:
    """Run the pipeline here: the compiled PodCliqueSet's pods in network namespaces, as Grove would.

    Prints the local profile, progress, the endpoint and a curl line; stdin takes `kill POD`,
    `partition POD`, `heal POD`, `pods`; SIGINT or SIGTERM stops everything it started.
    """
    from grove_pipelines.local import userns
    from grove_pipelines.local.plan import parse_attach

    # This machine runs models it has (the tiny model, models shipped in wheels): no hub look-ups,
    # which on an offline machine cost a timeout per file.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if backend not in ("local", "ray"):
        raise typer.BadParameter(f"{backend!r} is not one of local, ray", param_hint="--backend")
    if (ref is None) == (manifest is None):
        raise typer.BadParameter("give a pipeline REF or --manifest FILE (one of them)", param_hint="REF")
    local = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if not local and not userns.inside():  # said once, before a run enters its user namespace
        echo_progress(f"warning: serving on {host}: the pipeline is reachable from other machines")
    without_pods: str | None = None
    if backend == "local" and not attach:
        without_pods = _pod_network(ref, manifest, host=host, port=port, model=model)
        if without_pods is None:
            return
    if ref is None:
        raise typer.BadParameter(
            "--manifest runs pods in network namespaces: that needs root or a user namespace, and no --attach"
        )
    if without_pods is not None:
        echo_progress(f"warning: {without_pods}: running the stages as plain processes")
    options = {
        "host": host,
        "port": port,
        "model": model,
        "attach": parse_attach(attach or []),
        "progress": echo_progress,
        "announce": typer.echo,
    }
    if backend == "ray":
        from grove_pipelines.local.ray_backend import run_ray

        run_ray(ref, **options)  # type: ignore[arg-type]
        return
    from grove_pipelines.local.runner import run_local

    run_local(ref, **options)  # type: ignore[arg-type]


def _pod_network(
    ref: str | None, manifest: Path | None, *, host: str, port: int, model: Path | None
) -> str | None:
    """Run the compiled pods in network namespaces: as root, or inside a user namespace of the run's own
    (:mod:`~grove_pipelines.local.userns`). None once done; else why the pods cannot have their network."""
    from grove_pipelines.local import userns

    if userns.inside():
        userns.settle()
        _run_manifest(ref, manifest, host=host, port=port, model=model, listener=userns.entry_socket())
        return None
    if not userns.wanted():
        if os.geteuid() != 0:
            return "not root, and user namespaces are off (GROVE_PIPELINES_USERNS=0)"
        _run_manifest(ref, manifest, host=host, port=port, model=model)
        return None
    reason = userns.unavailable()
    if reason is None:
        echo_progress("the pods' network is made in a user namespace of this run's own (no root needed)")
        argv = ["run", *([ref] if ref is not None else []), "--port", str(port), "--host", host]
        argv += ["--manifest", str(manifest.resolve())] if manifest is not None else []
        userns.enter(host, port, argv + (["--model", str(model.resolve())] if model is not None else []))
    if os.geteuid() == 0:
        echo_progress(f"warning: no user namespace ({reason}): the pods' network is this machine's")
        _run_manifest(ref, manifest, host=host, port=port, model=model)
        return None
    return f"not root, and no user namespace ({reason})"


def _run_manifest(
    ref: str | None,
    manifest: Path | None,
    *,
    host: str,
    port: int,
    model: Path | None,
    listener: socket.socket | None = None,
) -> None:
    from grove_pipelines import yamlio
    from grove_pipelines.compile import compile_ref
    from grove_pipelines.local.manifest_run import run_documents
    from grove_pipelines.local.runner import ensure_model

    model_dir = ensure_model(model, echo_progress) if model is not None else None  # a bad --model fails first
    if manifest is not None:
        try:
            documents = yamlio.load_all(manifest.read_text(), source=str(manifest))
        except OSError as exc:
            raise typer.BadParameter(f"{manifest}: {exc.strerror or exc}", param_hint="--manifest") from None
    else:
        assert ref is not None
        documents = compile_ref(ref)
    name = next((d["metadata"]["name"] for d in documents if d.get("kind") == "PodCliqueSet"), "pipeline")
    run_documents(
        documents, model=model_dir or ensure_model(None, echo_progress), host=host, port=port,
        log_dir=Path(".cache/logs") / name, progress=echo_progress, announce=typer.echo, listener=listener,
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("run")(run)
