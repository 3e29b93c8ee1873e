"""The objects emitted beside the PodCliqueSet: Services and the routers' RBAC.

* ``<pcs>``: the pipeline's entry Service (port → ``http``), selecting the ``frontend`` clique. A
  ``NodePort`` or ``LoadBalancer`` entry without auth is refused unless the pipeline says ``public=True``.
* ``<pcs>-<stage>``: a ClusterIP Service per Python stage, how callers reach it.
* ``<pcs>-router``: ServiceAccount + Role (get/list/watch pods in the namespace, nothing else) +
  RoleBinding, only when some pod carries a router sidecar (routers discover workers by label).

A Service selects its stage's pods in every replica of the PodCliqueSet (``labels.stage_pods``: Grove's
``part-of`` and the compiler's stage label), not one replica's PodClique (``grove.io/podclique`` is
``<pcs>-<i>-<clique>``), so scaling the PodCliqueSet out puts the new replicas behind the Services too.
"""

from __future__ import annotations

from grove_pipelines.errors import CompileError
from grove_pipelines.graph import ENTRY, PipelineGraph
from grove_pipelines.grove.kube_model import KubeModel
from grove_pipelines.grove.kube_objects import (
    ObjectMeta,
    PolicyRule,
    Role,
    RoleBinding,
    RoleRef,
    Service,
    ServiceAccount,
    ServicePort,
    ServiceSpec,
    Subject,
)
from grove_pipelines.grove.labels import stage_pods
from grove_pipelines.grove.layout import Layout

__all__ = ["build_rbac", "build_services"]


def _meta(name: str, namespace: str, labels: dict[str, str]) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=namespace, labels=dict(labels))


def _service(
    name: str, *, pcs: str, stage: str, port: int, kind: str, namespace: str, labels: dict[str, str]
) -> Service:
    return Service(
        metadata=_meta(name, namespace, labels),
        spec=ServiceSpec(
            type=kind,  # type: ignore[arg-type]
            selector=stage_pods(pcs, stage),
            ports=[ServicePort(name="http", port=port, target_port="http", protocol="TCP")],
        ),
    )


def build_services(
    graph: PipelineGraph, layout: Layout, *, pcs: str, namespace: str, labels: dict[str, str]
) -> list[Service]:
    """The entry Service, then one Service per Python stage, named ``<pcs>-<its clique>``."""
    entry = graph.pipeline.entry
    if entry.service_type != "ClusterIP" and not entry.auth and not graph.pipeline.public:
        raise CompileError(
            f"pipeline {graph.pipeline.name!r}: a {entry.service_type} entry with auth=False lets anyone who "
            "reaches the cluster run it; keep auth (the default) or say @pipeline(..., public=True)"
        )
    services = [
        _service(pcs, pcs=pcs, stage=ENTRY, port=entry.port, kind=entry.service_type, namespace=namespace,
                 labels=labels)
    ]  # fmt: skip
    for stage in graph.python_stages():
        clique = layout.targets(stage.name)[0]
        services.append(
            _service(f"{pcs}-{clique}", pcs=pcs, stage=stage.name, port=8000, kind="ClusterIP",
                     namespace=namespace, labels=labels)
        )  # fmt: skip
    return services


def build_rbac(*, pcs: str, namespace: str, labels: dict[str, str]) -> list[KubeModel]:
    """ServiceAccount, Role and RoleBinding ``<pcs>-router`` for router sidecars."""
    name = f"{pcs}-router"
    return [
        ServiceAccount(metadata=_meta(name, namespace, labels)),
        Role(
            metadata=_meta(name, namespace, labels),
            rules=[PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"])],
        ),
        RoleBinding(
            metadata=_meta(name, namespace, labels),
            subjects=[Subject(kind="ServiceAccount", name=name, namespace=namespace)],
            role_ref=RoleRef(name=name),
        ),
    ]
