"""Pydantic mirror of ``grove.io/v1alpha1`` PodCliqueSet, field for field.

Class and field names follow the Go types of Grove (``PodCliqueSetTemplateSpec``,
``PodCliqueScalingGroupConfig``, ...); field docs paraphrase the CRD's descriptions. Opaque
Kubernetes sub-objects the compiler never builds (HPA ``MetricSpec``, DRA ``templateSpec``) are
plain dicts and are checked by the CRD schema instead. The pod template is the typed subset in
``grove_pipelines.grove.kube_objects``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from grove_pipelines.grove.kube_model import KubeModel
from grove_pipelines.grove.kube_objects import ObjectMeta, PodSpec

__all__ = [
    "AutoScalingConfig",
    "CliqueStartupType",
    "HeadlessServiceConfig",
    "PodCliqueScalingGroupConfig",
    "PodCliqueSet",
    "PodCliqueSetSpec",
    "PodCliqueSetTemplateSpec",
    "PodCliqueSpec",
    "PodCliqueTemplateSpec",
    "ResourceClaimTemplateConfig",
    "ResourceSharingFilter",
    "ResourceSharingSpec",
    "TopologyConstraint",
    "TopologyPackConstraint",
    "UpdateStrategy",
]

CliqueStartupType = Literal[
    "CliqueStartupTypeAnyOrder", "CliqueStartupTypeInOrder", "CliqueStartupTypeExplicit"
]


class TopologyPackConstraint(KubeModel):
    """Packing of each replica: ``required`` (hard) and/or ``preferred`` (best effort) topology domain."""

    required: str | None = None
    preferred: str | None = None


class TopologyConstraint(KubeModel):
    """Topology placement (needs topology-aware scheduling on the operator and a ClusterTopologyBinding)."""

    topology_name: str | None = None
    pack: TopologyPackConstraint | None = None
    pack_domain: str | None = Field(default=None, description="Deprecated: forbidden on new objects.")


class AutoScalingConfig(KubeModel):
    """HPA settings; Grove creates the HorizontalPodAutoscaler (``autoScalingConfig`` / ``scaleConfig``)."""

    min_replicas: int | None = None
    max_replicas: int
    metrics: list[dict[str, Any]] | None = None


class ResourceSharingFilter(KubeModel):
    """Restricts which children receive shared ResourceClaims."""

    child_clique_names: list[str] | None = None
    child_scaling_group_names: list[str] | None = None


class ResourceSharingSpec(KubeModel):
    """A shared ResourceClaim: an internal or external template and its scope."""

    name: str
    namespace: str | None = None
    scope: Literal["AllReplicas", "PerReplica"]
    filter: ResourceSharingFilter | None = None


class ResourceClaimTemplateConfig(KubeModel):
    """A named ResourceClaimTemplateSpec (DRA) that ``resourceSharing`` entries may reference."""

    name: str
    template_spec: dict[str, Any]


class PodCliqueSpec(KubeModel):
    """A clique's behaviour: role, pod count, gang minimum, startup dependencies, autoscaling, pod template."""

    role_name: str
    replicas: int
    min_available: int | None = None
    starts_after: list[str] | None = None
    auto_scaling_config: AutoScalingConfig | None = None
    pod_spec: PodSpec


class PodCliqueTemplateSpec(KubeModel):
    """One clique of the set: its unique name, labels/annotations copied to its pods, and its spec."""

    name: str
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    topology_constraint: TopologyConstraint | None = None
    resource_sharing: list[ResourceSharingSpec] | None = None
    spec: PodCliqueSpec


class PodCliqueScalingGroupConfig(KubeModel):
    """Cliques scaled together as one unit (multi-node leader + workers)."""

    name: str
    clique_names: list[str]
    annotations: dict[str, str] | None = None
    replicas: int | None = None
    min_available: int | None = None
    scale_config: AutoScalingConfig | None = None
    resource_sharing: list[ResourceSharingSpec] | None = None
    topology_constraint: TopologyConstraint | None = None


class HeadlessServiceConfig(KubeModel):
    """The per-replica headless Service; ``publishNotReadyAddresses`` lets peers resolve before readiness."""

    publish_not_ready_addresses: bool = True


class PodCliqueSetTemplateSpec(KubeModel):
    """The template of every PodGang: cliques, startup order, scaling groups, gang termination."""

    clique_startup_type: CliqueStartupType | None = None
    priority_class_name: str | None = None
    headless_service_config: HeadlessServiceConfig | None = None
    topology_constraint: TopologyConstraint | None = None
    termination_delay: str | None = None
    resource_claim_templates: list[ResourceClaimTemplateConfig] | None = None
    resource_sharing: list[ResourceSharingSpec] | None = None
    cliques: list[PodCliqueTemplateSpec]
    pod_clique_scaling_groups: list[PodCliqueScalingGroupConfig] | None = None


class UpdateStrategy(KubeModel):
    """How replicas are updated when templates change."""

    type: Literal["RollingRecreate", "OnDelete"] | None = None


class PodCliqueSetSpec(KubeModel):
    """Replicas of the whole set (the CRD default is 0, which creates nothing) and the template."""

    replicas: int
    update_strategy: UpdateStrategy | None = None
    template: PodCliqueSetTemplateSpec


class PodCliqueSet(KubeModel):
    """``grove.io/v1alpha1`` PodCliqueSet: the one object a pipeline compiles to.

    ``status`` is kept opaque so objects read back from a cluster still parse.
    """

    api_version: Literal["grove.io/v1alpha1"] = "grove.io/v1alpha1"
    kind: Literal["PodCliqueSet"] = "PodCliqueSet"
    metadata: ObjectMeta
    spec: PodCliqueSetSpec
    status: dict[str, Any] | None = None
