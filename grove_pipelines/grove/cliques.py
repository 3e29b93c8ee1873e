"""PodClique templates and PodCliqueScalingGroups from the layout.

Who gets a router sidecar: every clique whose stage calls an LLM stage (the entry included) gets one
``router-<llm>`` native sidecar (an init container that keeps running) per called LLM on
``127.0.0.1:9000+i``; the caller finds it through ``GP_LLM_URL_<LLM>``. Python stages are reached
through their ClusterIP Service (``GP_STAGE_URL_<STAGE>``). Routers list pods, so their pods run as
``<pcs>-router``; no pod automounts a token, the router container alone mounts one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove import containers as ctr
from grove_pipelines.grove.kube_objects import Container, EmptyDirVolumeSource, EnvVar, PodSpec, Volume
from grove_pipelines.grove.labels import ROLE_LABEL, STAGE_LABEL
from grove_pipelines.grove.layout import Layout, Unit
from grove_pipelines.grove.podcliqueset import (
    AutoScalingConfig,
    PodCliqueScalingGroupConfig,
    PodCliqueSpec,
    PodCliqueTemplateSpec,
)
from grove_pipelines.spec import Autoscaling, EntrySpec, LLMSpec, PythonStageSpec
from grove_pipelines.spec.shutdown import ROUTER_DRAIN_S, SERVER_DRAIN_S, grace_period_s, vllm_drain_s
from grove_pipelines.spec.stage_urls import LLM_URL_PREFIX, STAGE_URL_PREFIX, env_name

__all__ = ["CliqueContext", "autoscaling_config", "build_cliques", "build_scaling_groups", "has_router"]

KAI_QUEUE_LABEL = "kai.scheduler/queue"


@dataclass(frozen=True)
class CliqueContext:
    """What every clique builder needs besides the layout: names, images, scheduling."""

    graph: PipelineGraph
    layout: Layout
    pcs: str
    ref: str
    image: str
    starts_after: dict[str, list[str]]

    @cached_property
    def remote_stages(self) -> bool:
        """Whether the pipeline has Python stages (their servers then accept only the stage token)."""
        return any(True for _ in self.graph.python_stages())


def autoscaling_config(scale: Autoscaling | None, replicas: int) -> AutoScalingConfig | None:
    """``autoScalingConfig`` / ``scaleConfig``: explicit minReplicas, CPU target or raw metrics."""
    if scale is None:
        return None
    metrics = [dict(m) for m in scale.metrics] if scale.metrics else None
    if scale.target_cpu_utilization is not None:
        target = {"type": "Utilization", "averageUtilization": scale.target_cpu_utilization}
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]
    minimum = scale.min_replicas if scale.min_replicas is not None else replicas
    return AutoScalingConfig(min_replicas=minimum, max_replicas=scale.max_replicas, metrics=metrics)


def _llm_callees(ctx: CliqueContext, node: str) -> list[LLMSpec]:
    return [s for s in (ctx.graph.stage(n) for n in ctx.graph.callees(node)) if isinstance(s, LLMSpec)]


def has_router(ctx: CliqueContext, node: str) -> bool:
    """Whether ``node``'s pods carry router sidecars (it calls at least one LLM stage)."""
    return bool(_llm_callees(ctx, node))


def _caller_env(ctx: CliqueContext, node: str) -> list[EnvVar]:
    env = []
    for index, llm in enumerate(_llm_callees(ctx, node)):
        url = f"http://127.0.0.1:{ctr.ROUTER_BASE_PORT + index}"
        env.append(EnvVar(name=env_name(LLM_URL_PREFIX, llm.name), value=url))
    for callee in ctx.graph.callees(node):
        if isinstance(ctx.graph.stage(callee), PythonStageSpec):
            url = f"http://{ctx.pcs}-{ctx.layout.targets(callee)[0]}:{ctr.WORKER_PORT}"
            env.append(EnvVar(name=env_name(STAGE_URL_PREFIX, callee), value=url))
    return env


def _pod_spec(ctx: CliqueContext, node: str, main: Container, *, drain_s: float) -> PodSpec:
    """``main`` (which drains for ``drain_s`` after SIGTERM) with the router sidecars of the LLM stages ``node`` calls."""
    pipeline = ctx.graph.pipeline
    otel = ctr.otel_env(pipeline.otel)
    routers = [
        ctr.router_container(
            image=ctx.image,
            index=i,
            llm=llm.name,
            units=ctx.layout.units[llm.name],
            routing=llm.routing,
            env=otel,
        )
        for i, llm in enumerate(_llm_callees(ctx, node))
    ]
    mounts = {m.name for c in (main, *routers) for m in c.volume_mounts or []}
    volumes = (
        [Volume(name="dshm", empty_dir=EmptyDirVolumeSource(medium="Memory"))] if "dshm" in mounts else []
    )
    if ctr.TMP_VOLUME in mounts:
        volumes.append(Volume(name=ctr.TMP_VOLUME, empty_dir=EmptyDirVolumeSource()))
    if routers:
        volumes.append(ctr.router_token_volume())
    return PodSpec(
        service_account_name=f"{ctx.pcs}-router" if routers else None,
        automount_service_account_token=False,  # only the router gets a token, in its own mount
        scheduler_name=pipeline.scheduler,
        termination_grace_period_seconds=grace_period_s(drain_s, *([ROUTER_DRAIN_S] if routers else [])),
        init_containers=routers or None,
        containers=[main],
        volumes=volumes or None,
    )


def _labels(ctx: CliqueContext, unit: Unit, extra: dict[str, str]) -> dict[str, str]:
    labels = {**extra, STAGE_LABEL: unit.stage, ROLE_LABEL: unit.role}
    if ctx.graph.pipeline.queue is not None and ctx.graph.pipeline.scheduler == "kai-scheduler":
        labels[KAI_QUEUE_LABEL] = ctx.graph.pipeline.queue
    return labels


def _template(
    ctx: CliqueContext, unit: Unit, clique: str, pod: PodSpec, *, replicas: int, minimum: int,
    scale: AutoScalingConfig | None, user_labels: dict[str, str], annotations: dict[str, str],
) -> PodCliqueTemplateSpec:  # fmt: skip
    return PodCliqueTemplateSpec(
        name=clique,
        labels=_labels(ctx, unit, user_labels),
        annotations=annotations or None,
        spec=PodCliqueSpec(
            role_name=ctx.layout.role_name(clique),
            replicas=replicas,
            min_available=minimum,
            starts_after=ctx.starts_after.get(clique) or None,
            auto_scaling_config=scale,
            pod_spec=pod,
        ),
    )


def _server_cliques(ctx: CliqueContext, unit: Unit) -> list[PodCliqueTemplateSpec]:
    pipeline = ctx.graph.pipeline
    spec: EntrySpec | PythonStageSpec
    if unit.stage == ENTRY:
        spec, port, stage_arg, env = pipeline.entry, pipeline.entry.port, None, _caller_env(ctx, ENTRY)
        labels: dict[str, str] = {}
        notes: dict[str, str] = {}
        image = pipeline.entry.image or ctx.image
    else:
        stage = ctx.graph.stage(unit.stage)
        assert isinstance(stage, PythonStageSpec)
        spec, port, stage_arg, labels, notes = (
            stage,
            ctr.WORKER_PORT,
            unit.stage,
            stage.labels,
            stage.annotations,
        )
        env = [EnvVar(name=k, value=v) for k, v in stage.env.items()] + _caller_env(ctx, unit.stage)
        image = stage.image or ctx.image
    entry_auth = unit.stage == ENTRY and pipeline.entry.auth
    env += ctr.server_auth_env(ctx.pcs, api_keys=entry_auth, stage_token=ctx.remote_stages)
    env += ctr.otel_env(pipeline.otel, env)
    main = ctr.server_container(
        image=image, ref=ctx.ref, port=port, stage=stage_arg, env=env, res=ctr.resources(spec.resources)
    )
    pod = _pod_spec(ctx, unit.stage, main, drain_s=SERVER_DRAIN_S)
    scale = autoscaling_config(spec.autoscaling, spec.replicas)
    return [_template(ctx, unit, unit.clique, pod, replicas=spec.replicas, minimum=spec.gang_minimum,
                      scale=scale, user_labels=labels, annotations=notes)]  # fmt: skip


def _llm_cliques(ctx: CliqueContext, unit: Unit) -> list[PodCliqueTemplateSpec]:
    spec = ctx.graph.stage(unit.stage)
    role = unit.spec
    assert isinstance(spec, LLMSpec) and role is not None
    image = spec.image or ctx.graph.pipeline.vllm_image
    built = ctr.vllm_containers(spec, unit, image=image, otel=ctx.graph.pipeline.otel)
    drain = vllm_drain_s(role.vllm_args)
    if unit.group is None:
        pod = _pod_spec(ctx, unit.stage, built[unit.clique], drain_s=drain)
        scale = autoscaling_config(role.autoscaling, role.replicas)
        return [_template(ctx, unit, unit.clique, pod, replicas=role.replicas, minimum=role.gang_minimum,
                          scale=scale, user_labels=spec.labels, annotations=spec.annotations)]  # fmt: skip
    templates = []
    for clique, count in ((unit.clique, 1), (unit.worker, role.nodes - 1)):
        assert clique is not None
        pod = _pod_spec(ctx, unit.stage, built[clique], drain_s=drain)
        templates.append(_template(ctx, unit, clique, pod, replicas=count, minimum=count, scale=None,
                                   user_labels=spec.labels, annotations=spec.annotations))  # fmt: skip
    return templates


def build_cliques(ctx: CliqueContext) -> list[PodCliqueTemplateSpec]:
    """Every clique template, entry first, then stages in declaration order."""
    cliques: list[PodCliqueTemplateSpec] = []
    for unit in ctx.layout.all_units():
        cliques += _server_cliques(ctx, unit) if unit.spec is None else _llm_cliques(ctx, unit)
    return cliques


def build_scaling_groups(layout: Layout) -> list[PodCliqueScalingGroupConfig]:
    """One group per multi-node role: leader + workers, replicas and gang minimum of the role."""
    groups = []
    for unit in layout.all_units():
        if unit.group is None or unit.spec is None or unit.worker is None:
            continue
        role = unit.spec
        groups.append(
            PodCliqueScalingGroupConfig(
                name=unit.group,
                clique_names=[unit.clique, unit.worker],
                replicas=role.replicas,
                min_available=role.gang_minimum,
                scale_config=autoscaling_config(role.autoscaling, role.replicas),
            )
        )
    return groups
