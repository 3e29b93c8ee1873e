"""``status``: where a deployed pipeline stands, read from Grove's own objects.

Cliques (PodCliques) and scaling groups with desired / ready / minAvailable, the PodGangs' phases, the
conditions Grove sets (``MinAvailableBreached``, ``PodCliqueScheduled``, ...) and the entry endpoint
(the Service named after the set, which the compiler emits beside it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from grove_pipelines.grove.compiler import PIPELINE_LABEL
from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.live import LiveNumbers
from grove_pipelines.kube.manifests import MANAGED_BY, PART_OF, PCS_API_VERSION

__all__ = ["CliqueStatus", "Endpoint", "GangStatus", "GroupStatus", "PipelineStatus", "pipeline_status"]


class Condition(BaseModel):
    """A Kubernetes condition, as Grove sets it."""

    type: str
    status: str
    reason: str = ""
    message: str = ""


class CliqueStatus(BaseModel):
    """One PodClique: a clique of one set replica (or of one scaling-group replica)."""

    name: str
    desired: int
    ready: int
    scheduled: int
    gated: int
    min_available: int
    conditions: list[Condition] = []

    @property
    def breached(self) -> bool:
        return self.ready < self.min_available


class GroupStatus(BaseModel):
    """One PodCliqueScalingGroup."""

    name: str
    desired: int
    available: int
    min_available: int
    conditions: list[Condition] = []


class GangStatus(BaseModel):
    """One PodGang (what the gang scheduler sees)."""

    name: str
    phase: str


class Endpoint(BaseModel):
    """A Service of the pipeline: its in-cluster URL and, for a LoadBalancer, the external one."""

    service: str
    url: str
    external: list[str] = []
    entry: bool = False


class PipelineStatus(BaseModel):
    """Everything ``grove-pipelines status`` shows, as one model (dumped as JSON/YAML by ``-o``)."""

    name: str
    namespace: str
    replicas: int
    available_replicas: int
    ready: bool
    cliques: list[CliqueStatus]
    scaling_groups: list[GroupStatus]
    gangs: list[GangStatus]
    conditions: list[Condition]
    endpoints: list[Endpoint]
    live: LiveNumbers | None = None  # read from the entry's pods when asked (``status --live``)


def _conditions(obj: dict[str, Any]) -> list[Condition]:
    return [
        Condition.model_validate({k: c.get(k) or "" for k in ("type", "status", "reason", "message")})
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def _clique(obj: dict[str, Any]) -> CliqueStatus:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return CliqueStatus(
        name=obj["metadata"]["name"],
        desired=int(spec.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        scheduled=int(status.get("scheduledReplicas") or 0),
        gated=int(status.get("scheduleGatedReplicas") or 0),
        min_available=int(spec.get("minAvailable", spec.get("replicas") or 0)),
        conditions=_conditions(obj),
    )


def _group(obj: dict[str, Any]) -> GroupStatus:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return GroupStatus(
        name=obj["metadata"]["name"],
        desired=int(spec.get("replicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        min_available=int(spec.get("minAvailable") or 1),
        conditions=_conditions(obj),
    )


def _endpoint(svc: dict[str, Any], pcs_name: str) -> Endpoint:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    ports: list[dict[str, Any]] = spec.get("ports") or [{}]
    port = ports[0].get("port")
    host = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = [
        f"http://{i.get('ip') or i.get('hostname')}{':' + str(port) if port else ''}" for i in ingress
    ]
    return Endpoint(
        service=meta["name"],
        url=f"http://{host}{':' + str(port) if port else ''}",
        external=external,
        entry=meta["name"] == pcs_name,
    )


def pipeline_status(client: KubeClient, *, name: str, namespace: str) -> PipelineStatus | None:
    """The status of PodCliqueSet ``name`` (or of the pipeline ``name``, whose set may carry a shortened
    name); None when there is no such set in ``namespace``."""
    pcs = client.get(PCS_API_VERSION, "PodCliqueSet", name, namespace)
    if pcs is None:
        selector = f"{PIPELINE_LABEL}={name},{MANAGED_BY}=grove-pipelines"
        found = client.list(PCS_API_VERSION, "PodCliqueSet", namespace, label_selector=selector)["items"]
        if len(found) != 1:
            return None
        pcs = found[0]
        name = pcs["metadata"]["name"]
    selector = f"{PART_OF}={name}"
    cliques = [
        _clique(o)
        for o in client.list(PCS_API_VERSION, "PodClique", namespace, label_selector=selector)["items"]
    ]
    groups = [
        _group(o)
        for o in client.list(PCS_API_VERSION, "PodCliqueScalingGroup", namespace, label_selector=selector)[
            "items"
        ]
    ]
    status = pcs.get("status") or {}
    gangs = [
        GangStatus(name=g.get("name", ""), phase=g.get("phase") or "Unknown")
        for g in status.get("podGangStatuses") or []
    ]
    services = client.list(
        "v1", "Service", namespace, label_selector=f"{selector},{MANAGED_BY}=grove-pipelines"
    )
    endpoints = sorted(
        (_endpoint(s, name) for s in services["items"]), key=lambda e: (not e.entry, e.service)
    )
    replicas = int((pcs.get("spec") or {}).get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    ready = bool(cliques) and all(not c.breached for c in cliques) and available >= replicas
    return PipelineStatus(
        name=name,
        namespace=namespace,
        replicas=replicas,
        available_replicas=available,
        ready=ready,
        cliques=sorted(cliques, key=lambda c: c.name),
        scaling_groups=sorted(groups, key=lambda g: g.name),
        gangs=gangs,
        conditions=_conditions(pcs),
        endpoints=endpoints,
    )
