"""`grove-pipelines router`: the OpenAI-compatible prefill/decode router that runs next to vLLM workers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from grove_pipelines.spec import router_flags as rf

__all__ = ["register"]

_URLS = "URL of {} worker (repeat the flag for more)."
_CLIQUE = "Grove clique of the {} workers (leader clique with {})."


def router(
    port: Annotated[
        int | None, typer.Option(rf.PORT, help="Port to listen on (0: any free port). [default: 8080]")
    ] = None,
    host: Annotated[
        str | None, typer.Option(rf.HOST, help="Address to listen on. [default: 127.0.0.1]")
    ] = None,
    prefill: Annotated[
        list[str] | None, typer.Option(rf.urls_flag("prefill"), help=_URLS.format("a prefill"))
    ] = None,
    decode: Annotated[
        list[str] | None, typer.Option(rf.urls_flag("decode"), help=_URLS.format("a decode"))
    ] = None,
    worker: Annotated[
        list[str] | None, typer.Option(rf.urls_flag("worker"), help=_URLS.format("an aggregated"))
    ] = None,
    policy: Annotated[str | None, typer.Option(help="round_robin, least_loaded or prefix.")] = None,
    prefill_policy: Annotated[str | None, typer.Option(help="Policy of the prefill pool.")] = None,
    decode_policy: Annotated[str | None, typer.Option(help="Policy of the decode pool.")] = None,
    config: Annotated[
        Path | None, typer.Option(rf.CONFIG, help="YAML/JSON file with any router setting.")
    ] = None,
    conditional_disagg: Annotated[
        bool,
        typer.Option(
            "--conditional-disagg", help="Prefill on the decode worker when little of the prompt is uncached."
        ),
    ] = False,
    min_uncached_tokens: Annotated[
        int | None, typer.Option(help="Remote prefill from this many uncached tokens.")
    ] = None,
    max_prefill_in_flight: Annotated[
        int | None, typer.Option(help="Prefill locally when every prefill worker has this many.")
    ] = None,
    api_key: Annotated[
        list[str] | None,
        typer.Option(help="Accepted bearer key (also $GROVE_ROUTER_API_KEY, comma-separated)."),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option(help="File of accepted bearer keys, one per line (a mounted Secret).")
    ] = None,
    debug_routing: Annotated[
        bool,
        typer.Option(
            "--debug-routing", help="Show clients worker URLs and failure detail (x-grove-route, /health)."
        ),
    ] = False,
    max_concurrent: Annotated[
        int | None, typer.Option(help="Requests proxied at once; more wait in a queue.")
    ] = None,
    queue_size: Annotated[int | None, typer.Option(help="Requests that may wait; beyond: 429.")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body; beyond: 413.")] = None,
    discovery: Annotated[str | None, typer.Option(rf.DISCOVERY, help="static, grove or kubernetes.")] = None,
    prefill_clique: Annotated[
        str | None,
        typer.Option(rf.clique_flag("prefill"), help=_CLIQUE.format("prefill", rf.group_flag("prefill"))),
    ] = None,
    decode_clique: Annotated[
        str | None,
        typer.Option(rf.clique_flag("decode"), help=_CLIQUE.format("decode", rf.group_flag("decode"))),
    ] = None,
    worker_clique: Annotated[
        str | None,
        typer.Option(rf.clique_flag("worker"), help=_CLIQUE.format("aggregated", rf.group_flag("worker"))),
    ] = None,
    prefill_group: Annotated[
        str | None, typer.Option(rf.group_flag("prefill"), help="Grove scaling group of multi-node prefill.")
    ] = None,
    decode_group: Annotated[
        str | None, typer.Option(rf.group_flag("decode"), help="Grove scaling group of multi-node decode.")
    ] = None,
    worker_group: Annotated[
        str | None, typer.Option(rf.group_flag("worker"), help="Grove scaling group of multi-node workers.")
    ] = None,
    prefill_selector: Annotated[
        str | None, typer.Option(rf.selector_flag("prefill"), help="Label selector of prefill pods.")
    ] = None,
    decode_selector: Annotated[
        str | None, typer.Option(rf.selector_flag("decode"), help="Label selector of decode pods.")
    ] = None,
    worker_selector: Annotated[
        str | None, typer.Option(rf.selector_flag("worker"), help="Label selector of aggregated pods.")
    ] = None,
    worker_port: Annotated[
        int | None, typer.Option(rf.WORKER_PORT, help="Port of discovered workers. [default: 8000]")
    ] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of discovered pods.")] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            help="Router processes on the one port (they learn from each other's routing). [default: 1]"
        ),
    ] = None,
) -> None:
    """Route OpenAI requests over vLLM prefill/decode (or aggregated) workers until SIGTERM."""
    from runtime.router.config import load_config
    from runtime.router.server import run

    values = dict(locals())
    overrides = _overrides(values)
    run(
        load_config(config, overrides),
        on_ready=lambda url: typer.echo(f"router listening on {url}", err=True),
    )


def _overrides(v: dict[str, Any]) -> dict[str, Any]:
    """Only the flags that were given, shaped like the config file."""
    top = {k: v[k] for k in ("port", "host", "prefill", "decode", "worker", "log_level") if v[k]}
    top |= {k: v[k] for k in ("port", "processes") if v[k] is not None}
    top |= {k: {"name": v[k]} for k in ("policy", "prefill_policy", "decode_policy") if v[k]}
    if v["api_key"]:
        top["api_keys"] = v["api_key"]
    if v["api_key_file"] is not None:
        top["api_key_file"] = v["api_key_file"]
    if v["debug_routing"]:
        top["debug"] = True
    top["api_key_env"] = "GROVE_ROUTER_API_KEY"
    disagg = {k: v[k] for k in ("min_uncached_tokens", "max_prefill_in_flight") if v[k] is not None}
    if v["conditional_disagg"] or disagg:
        disagg["mode"] = "conditional"
    limits = {k: v[k] for k in ("max_concurrent", "queue_size", "max_body_bytes") if v[k] is not None}
    keys = [
        f"{r}_{kind}" for r in ("prefill", "decode", "worker") for kind in ("clique", "group", "selector")
    ]
    disc = {k: v[k] for k in [*keys, "worker_port", "namespace"] if v[k] is not None}
    if v["discovery"]:
        disc["mode"] = v["discovery"]
    sections = {"disaggregation": disagg, "limits": limits, "discovery": disc}
    return top | {name: section for name, section in sections.items() if section}


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command(rf.SUBCOMMAND)(router)
