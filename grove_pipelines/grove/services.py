"""The objects emitted beside the PodCliqueSet: Services and the routers' RBAC.

* ``<pcs>``: the pipeline's entry Service (port → ``http``), selecting the ``frontend`` clique. A
  ``NodePort`` or ``LoadBalancer`` entry without auth is refused unless the pipeline says ``public=True``.
* ``<pcs>-<stage>``: a ClusterIP Service per Python stage, how callers reach it.
* ``<pcs>-router``: ServiceAccount + Role (get/list/watch pods in the namespace, nothing else) +
  RoleBinding, only when some pod carries a router sidecar (routers discover workers by label).

Selectors use Grove's ``grove.io/podclique`` label, whose value is the PodClique FQN
``<pcs>-0-<clique>`` (the PodCliqueSet has one replica).
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
from grove_pipelines.grove.layout import Layout
from grove_pipelines.grove.names import clique_fqn

__all__ = ["build_rbac", "build_services"]

_PODCLIQUE_LABEL = "grove.io/podclique"


def _meta(name: str, namespace: str, labels: dict[str, str]) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=namespace, labels=dict(labels))


def _service(
    name: str, *, pcs: str, clique: str, port: int, kind: str, namespace: str, labels: dict[str, str]
) -> Service:
    return Service(
        metadata=_meta(name, namespace, labels),
        spec=ServiceSpec(
            type=kind,  # type: ignore[arg-type]
            selector={_PODCLIQUE_LABEL: clique_fqn(pcs, clique)},
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
        _service(pcs, pcs=pcs, clique=ENTRY, port=entry.port, kind=entry.service_type, namespace=namespace,
                 labels=labels)
    ]  # fmt: skip
    for stage in graph.python_stages():
        clique = layout.targets(stage.name)[0]
        services.append(
            _service(f"{pcs}-{clique}", pcs=pcs, clique=clique, port=8000, kind="ClusterIP",
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
