"""The compiler: one ``PipelineGraph`` in, one PodCliqueSet plus the objects beside it out.

Example::

    compiled = compile_graph(graph, namespace="llm")
    compiled.pcs.metadata.name          # the PodCliqueSet name (shortened if Grove's budget needs it)
    yamlio.dump_all(compiled.documents())

It reads only the graph; the builders live per Grove object: ``layout`` (names), ``cliques``
(clique templates, scaling groups, router sidecars), ``startup`` (startsAfter), ``services``
(Services, RBAC). ``validate`` is separate (``grove_pipelines.grove.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import PipelineGraph
from grove_pipelines.grove import podcliqueset as gm
from grove_pipelines.grove.cliques import CliqueContext, build_cliques, build_scaling_groups, has_router
from grove_pipelines.grove.gc_pause import gc_paused
from grove_pipelines.grove.kube_model import KubeModel, to_dict
from grove_pipelines.grove.kube_objects import ObjectMeta
from grove_pipelines.grove.layout import Layout
from grove_pipelines.grove.names import pcs_name
from grove_pipelines.grove.network_policies import build_network_policies
from grove_pipelines.grove.podcliqueset import PodCliqueSet
from grove_pipelines.grove.services import build_rbac, build_services
from grove_pipelines.grove.startup import starts_after

__all__ = ["PIPELINE_LABEL", "CompiledPipeline", "compile_graph", "plan_names"]

MANAGED_BY = {"app.kubernetes.io/managed-by": "grove-pipelines"}
PIPELINE_LABEL = "app.kubernetes.io/name"
"""Carries the pipeline's full name on every object (the PodCliqueSet's own name may be shortened)."""


@dataclass
class CompiledPipeline:
    """The PodCliqueSet and the objects applied beside it (Services, router RBAC), and a note per name
    shortened to fit Grove's budgets."""

    pcs: PodCliqueSet
    objects: list[KubeModel] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @gc_paused
    def documents(self) -> list[dict[str, Any]]:
        """Plain manifests: the PodCliqueSet first."""
        return [to_dict(self.pcs), *(to_dict(obj) for obj in self.objects)]


def _ref(graph: PipelineGraph, ref: str | None) -> str:
    spec = graph.pipeline
    ref = ref or (f"{spec.module}:{spec.name}" if spec.module else spec.name)
    if ref.startswith("/") or ref[1:3] == ":\\":
        raise CompileError(
            f"pipeline ref {ref!r} is an absolute path; load the pipeline by a relative path or module"
        )
    return ref


def plan_names(graph: PipelineGraph) -> tuple[Layout, str, list[str]]:
    """The layout, the PodCliqueSet name, and one note per name shortened to fit Grove's budgets.

    ``graph`` and ``compile`` print the same notes: the names a user then sees in ``status`` and pods.
    """
    layout = Layout(graph)
    pcs = pcs_name(graph.name, layout.slots(), stage_of=layout.stage_of())
    notes = list(layout.notes)
    if pcs != graph.name:
        notes.insert(
            0,
            f"pipeline {graph.name!r} is too long for Grove's name budget: its PodCliqueSet is named {pcs!r}",
        )
    return layout, pcs, notes


@gc_paused
def compile_graph(
    graph: PipelineGraph,
    *,
    namespace: str | None = None,
    image: str | None = None,
    ref: str | None = None,
    default_namespace: str = "default",
) -> CompiledPipeline:
    """Map ``graph`` onto Grove (DESIGN §4.2); ``CompileError`` if it cannot be expressed.

    The namespace is ``namespace`` (``-n``), else the pipeline's own, else ``default_namespace``.
    """
    spec = graph.pipeline
    if spec.scheduler == "kai-scheduler" and spec.queue is None:
        raise CompileError(f"pipeline {spec.name!r}: scheduler='kai-scheduler' needs queue=... (a KAI queue)")
    if not spec.name[0].isalpha():
        raise CompileError(f"pipeline name {spec.name!r} must start with a letter (it names Services)")
    layout, pcs, notes = plan_names(graph)
    namespace = namespace or spec.namespace or default_namespace
    order = starts_after(graph, layout)
    ctx = CliqueContext(graph, layout, pcs, _ref(graph, ref), image or spec.image, order)
    topology = None
    if spec.topology is not None:
        pack = gm.TopologyPackConstraint(required=spec.topology.required, preferred=spec.topology.preferred)
        topology = gm.TopologyConstraint(topology_name=spec.topology.topology_name, pack=pack)
    template = gm.PodCliqueSetTemplateSpec(
        clique_startup_type="CliqueStartupTypeExplicit" if order else "CliqueStartupTypeAnyOrder",
        priority_class_name=spec.priority_class,
        headless_service_config=gm.HeadlessServiceConfig(publish_not_ready_addresses=True),
        topology_constraint=topology,
        termination_delay=spec.termination_delay,
        cliques=build_cliques(ctx),
        pod_clique_scaling_groups=build_scaling_groups(layout) or None,
    )
    labels = {PIPELINE_LABEL: spec.name, **MANAGED_BY}
    volcano = spec.scheduler == "volcano" and spec.queue is not None
    queue = {"scheduling.grove.io/volcano-queue": str(spec.queue)} if volcano else None
    meta = ObjectMeta(name=pcs, namespace=namespace, labels={**spec.labels, **labels}, annotations=queue)
    pcs_spec = gm.PodCliqueSetSpec(replicas=1, template=template)
    compiled = CompiledPipeline(gm.PodCliqueSet(metadata=meta, spec=pcs_spec), notes=notes)
    compiled.objects += build_services(graph, layout, pcs=pcs, namespace=namespace, labels=labels)
    if any(has_router(ctx, node) for node in layout.units):
        compiled.objects += build_rbac(pcs=pcs, namespace=namespace, labels=labels)
    compiled.objects += build_network_policies(
        graph, pcs=pcs, namespace=namespace, labels=labels, entry_port=spec.entry.port
    )
    return compiled
