"""`grove-pipelines run --backend ray`: the same pipeline on a local Ray Serve instance.

Each stage is a deployment (``ray_deployments``), the ingress is the pipeline server's own app, and
the LLM stages' vLLM workers and routers are child processes of their deployment. Settings follow
what was measured on 2-core machines: ``num_cpus=0`` per replica (else a 5-deployment graph does not
fit), ``max_ongoing_requests`` well above the default 5 (which collapses throughput), dashboard off,
workers at normal priority, no access log. SIGINT/SIGTERM: ``serve.shutdown()`` (each LLM deployment
stops its processes) and ``ray.shutdown()``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grove_pipelines.errors import RunError
from grove_pipelines.graph import PipelineGraph
from grove_pipelines.graph.build import build_graph
from grove_pipelines.loader import load_pipeline, split_ref
from grove_pipelines.local.plan import LLMPlan, example_body, model_max_len, plan_llms
from grove_pipelines.local.runner import Progress, ensure_model, served_model
from runtime.engines.supervisor import free_port

__all__ = ["RAY_ENV", "build_ray_app", "run_ray", "start_ray"]

RAY_ENV = {"RAY_worker_niceness": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
REPLICA: dict[str, Any] = {"ray_actor_options": {"num_cpus": 0}, "max_ongoing_requests": 256}


def start_ray(*, host: str = "127.0.0.1", port: int = 8000) -> None:
    """``ray.init`` and ``serve.start`` with the settings that suit a small machine (HTTP on host:port)."""
    os.environ.update({k: os.environ.get(k, v) for k, v in RAY_ENV.items()})
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise RunError("--backend ray needs Ray Serve: pip install 'grove-pipelines[local]'") from exc
    ray.init(
        include_dashboard=False, log_to_driver=False, object_store_memory=80_000_000, configure_logging=False
    )
    serve.start(http_options={"host": host, "port": port}, logging_config={"enable_access_log": False})


def _deployment(cls: type, **options: Any) -> Any:
    """``serve.deployment(cls)`` with the small-machine replica settings and ``options``."""
    from ray import serve

    make: Any = serve.deployment
    return make(cls).options(**{**REPLICA, **options})


def build_ray_app(
    ref: str, graph: PipelineGraph, plans: Sequence[LLMPlan], *, model: Path | None, log_dir: Path
) -> Any:
    """The bound Serve application: stage deployments bottom-up, LLM deployments, then the ingress."""
    from grove_pipelines.local.ray_deployments import LLMDeployment, PipelineIngress, StageDeployment

    ports = {plan.stage: free_port() for plan in plans}
    llm_urls = {stage: f"http://127.0.0.1:{port}" for stage, port in ports.items()}
    llms = [
        _deployment(LLMDeployment, name=f"llm-{plan.stage}", health_check_period_s=10).bind(
            plan, str(model) if model else None, str(log_dir), ports[plan.stage]
        )
        for plan in plans
    ]
    python = {spec.name for spec in graph.python_stages()}
    bound: dict[str, Any] = {}
    for name in graph.startup_order():  # callees first, so their handles exist when a caller binds
        if name not in python:
            continue
        spec = graph.stage(name)
        callees = {c: bound[c] for c in graph.callees(name) if c in python}
        deployment = _deployment(StageDeployment, name=f"stage-{name}", num_replicas=spec.replicas)
        bound[name] = deployment.bind(ref, name, callees, llm_urls)
    entry_callees = {c: bound[c] for c in graph.callees("frontend") if c in python}
    models = {p.stage: served_model(p.attach[-1]) for p in plans if p.attach}
    models = {
        k: v for k, v in models.items() if v != next(p for p in plans if p.stage == k).served_model_name
    }
    ingress = _deployment(PipelineIngress, name="ingress")
    return ingress.bind(ref, entry_callees, llm_urls, models, llms)


def run_ray(
    ref: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model: Path | None = None,
    attach: Mapping[str, Sequence[str]] | None = None,
    progress: Progress,
    announce: Progress,
) -> None:
    """Deploy the pipeline on a local Ray Serve instance; serve until SIGINT or SIGTERM; shut it all down."""
    loaded = load_pipeline(ref)
    graph = build_graph(loaded.pipeline, loaded.stages())
    needs_model = any(not (attach or {}).get(s.name) for s in graph.llm_stages())
    model_dir = ensure_model(model, progress) if needs_model else model
    plans = plan_llms(graph, max_len=model_max_len(model_dir) if model_dir else 2048, attach=attach)
    port = port or free_port()
    # Replicas load the pipeline by path: make it absolute, their working directory is Ray's.
    target, name = split_ref(ref)
    absolute = f"{Path(target).resolve()}{':' + name if name else ''}" if Path(target).is_file() else ref
    log_dir = (Path(".cache/logs") / f"{graph.name}-ray").resolve()
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    from ray import serve

    try:
        progress(
            "starting Ray (about 30 s) and Serve deployments; vLLM workers start inside their deployment"
        )
        start_ray(host=host, port=port)
        for sig in previous:  # ray.init installs its own SIGTERM handler (drain the node, then abort)
            signal.signal(sig, on_signal)
        if not stop.is_set():
            app = build_ray_app(absolute, graph, plans, model=model_dir, log_dir=log_dir)
            serve.run(app, name=graph.name, route_prefix="/")
        if not stop.is_set():
            from runtime.server.pipeline_schema import input_model

            endpoint = f"http://{host}:{port}/v1/pipelines/{graph.name}"
            body = example_body(input_model(graph.name, loaded.pipeline.func).model_json_schema())
            announce(f"pipeline {graph.name!r} is serving on {endpoint} (Ray Serve)")
            announce(f"try: curl -s {endpoint} -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
            progress(f"logs in {log_dir}; Ctrl-C stops everything")
        stop.wait()
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        progress("stopping: Serve deployments (and their vLLM workers), then Ray")
        import ray

        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()
        progress("stopped")
