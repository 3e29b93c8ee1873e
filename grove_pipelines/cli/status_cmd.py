"""`grove-pipelines status NAME`: cliques, scaling groups, gangs, conditions and the entry endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from grove_pipelines.cli.cluster_options import Context, Kubeconfig, Namespace, connect

if TYPE_CHECKING:
    from grove_pipelines.kube.live import LiveNumbers
    from grove_pipelines.kube.status import Condition, PipelineStatus

__all__ = ["register", "render_live", "render_table"]


def _conds(conditions: list[Condition]) -> str:
    return ",".join(f"{c.type}={c.status}" for c in conditions) or "-"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.3g}ms" if value < 1 else f"{value:.3g}s"


def render_live(live: LiveNumbers) -> list[str]:
    """The live numbers: one table of pipelines, one of stages, then the pods that did not answer."""
    pods = f"{live.pods} entry pod{'s' if live.pods != 1 else ''}"
    lines = ["", f"live, since each pod started ({pods} read):"]
    if live.pipelines:
        rows = [["PIPELINE", "REQUESTS", "ERRORS", "IN FLIGHT", "P50", "P99"]]
        rows += [
            [name, str(n.requests), str(n.errors), str(n.in_flight), _seconds(n.p50_s), _seconds(n.p99_s)]
            for name, n in live.pipelines.items()
        ]
        lines += _table(rows)
    if live.stages:
        rows = [["STAGE", "CALLS", "ERRORS", "RETRIES", "P50", "P99"]]
        rows += [
            [name, str(n.calls), str(n.errors), str(n.retries), _seconds(n.p50_s), _seconds(n.p99_s)]
            for name, n in live.stages.items()
        ]
        lines += ["", *_table(rows)] if live.pipelines else _table(rows)
    if live.pods and not live.pipelines and not live.stages:
        lines.append("no requests yet")
    lines += [f"unreadable: {why}" for why in live.unreadable]
    return lines


def render_table(st: PipelineStatus) -> str:
    """The human view: a header line, then one table per kind of object."""
    head = f"{st.available_replicas}/{st.replicas} replicas available, {'ready' if st.ready else 'not ready'}"
    lines = [f"PodCliqueSet {st.namespace}/{st.name}: {head}"]
    rows = [["CLIQUE", "READY", "DESIRED", "MIN", "SCHEDULED", "GATED", "CONDITIONS"]]
    rows += [
        [
            c.name,
            str(c.ready),
            str(c.desired),
            str(c.min_available),
            str(c.scheduled),
            str(c.gated),
            _conds(c.conditions),
        ]
        for c in st.cliques
    ]
    lines += ["", *_table(rows)]
    if st.scaling_groups:
        rows = [["SCALING GROUP", "AVAILABLE", "DESIRED", "MIN", "CONDITIONS"]]
        rows += [
            [g.name, str(g.available), str(g.desired), str(g.min_available), _conds(g.conditions)]
            for g in st.scaling_groups
        ]
        lines += ["", *_table(rows)]
    if st.gangs:
        lines += ["", *_table([["PODGANG", "PHASE"], *([g.name, g.phase] for g in st.gangs)])]
    if st.conditions:
        lines += ["", f"conditions: {_conds(st.conditions)}"]
    for e in st.endpoints:
        label = "entry" if e.entry else "service"
        lines.append(f"{label}: {e.url}" + (f" (external: {', '.join(e.external)})" if e.external else ""))
    if st.live is not None:
        lines += render_live(st.live)
    return "\n".join(lines)


def status(
    name: Annotated[str, typer.Argument(help="The PodCliqueSet name (what deploy printed).")],
    namespace: Namespace = None,
    context: Context = None,
    kubeconfig: Kubeconfig = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table, json or yaml.")] = "table",
    live: Annotated[
        bool,
        typer.Option(
            "--live/--no-live",
            help="Add requests, p50/p99 and errors per pipeline and stage, read from the entry pods' /metrics.",
        ),
    ] = True,
) -> None:
    """Show how a deployed pipeline is doing."""
    from grove_pipelines import yamlio
    from grove_pipelines.kube import pipeline_status
    from grove_pipelines.kube.errors import PipelineNotFoundError
    from grove_pipelines.kube.live import entry_numbers

    if output not in ("table", "json", "yaml"):
        raise typer.BadParameter(f"{output!r} is not one of table, json, yaml", param_hint="--output")
    with connect(kubeconfig, context) as client:
        ns = namespace or client.namespace
        st = pipeline_status(client, name=name, namespace=ns)
        entry = next((e for e in st.endpoints if e.entry), None) if st is not None else None
        if st is not None and live and entry is not None:
            st.live = entry_numbers(client, service=entry.service, namespace=ns)
    if st is None:
        raise PipelineNotFoundError(name, ns)
    if output == "json":
        typer.echo(st.model_dump_json(indent=2))
    elif output == "yaml":
        typer.echo(yamlio.dump(st.model_dump(mode="json")), nl=False)
    else:
        typer.echo(render_table(st))


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("status")(status)
