"""A typed subset of Kubernetes core/v1 and rbac/v1: what the compiler emits, no more.

``PodSpec`` and ``Container`` hold the fields the compiler sets (containers, probes, resources,
/dev/shm volumes, service account, scheduler); the objects emitted beside the PodCliqueSet
(``Service``, ``ServiceAccount``, ``Role``, ``RoleBinding``) are complete enough to apply as-is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from grove_pipelines.grove.kube_model import KubeModel

__all__ = [
    "Capabilities",
    "ConfigMapProjection",
    "Container",
    "ContainerPort",
    "DownwardAPIProjection",
    "DownwardAPIVolumeFile",
    "EmptyDirVolumeSource",
    "EnvVar",
    "EnvVarSource",
    "ExecAction",
    "HTTPGetAction",
    "KeyToPath",
    "LabelSelector",
    "LabelSelectorRequirement",
    "Lifecycle",
    "LifecycleHandler",
    "NetworkPolicy",
    "NetworkPolicyIngressRule",
    "NetworkPolicyPeer",
    "NetworkPolicyPort",
    "NetworkPolicySpec",
    "ObjectFieldSelector",
    "ObjectMeta",
    "PodSpec",
    "PolicyRule",
    "Probe",
    "ProjectedVolumeSource",
    "ResourceRequirements",
    "Role",
    "RoleBinding",
    "RoleRef",
    "SeccompProfile",
    "SecurityContext",
    "Service",
    "ServiceAccount",
    "ServiceAccountTokenProjection",
    "ServicePort",
    "ServiceSpec",
    "Subject",
    "TCPSocketAction",
    "Volume",
    "VolumeMount",
    "VolumeProjection",
]

IntOrString = int | str


class ObjectMeta(KubeModel):
    """Name, namespace, labels and annotations of an object (metav1.ObjectMeta, the part we set)."""

    name: str
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class ObjectFieldSelector(KubeModel):
    """Selects a field of the pod (downward API), e.g. ``status.podIP``."""

    api_version: str | None = None
    field_path: str


class SecretKeySelector(KubeModel):
    """One key of a Secret in the pod's namespace (``optional`` false: the pod waits for it)."""

    name: str
    key: str


class EnvVarSource(KubeModel):
    """Where an env var's value comes from when it is not a literal."""

    field_ref: ObjectFieldSelector | None = None
    secret_key_ref: SecretKeySelector | None = None


class EnvVar(KubeModel):
    """One environment variable of a container."""

    name: str
    value: str | None = None
    value_from: EnvVarSource | None = None


class ContainerPort(KubeModel):
    """A port a container listens on; ``name`` lets probes and Services refer to it."""

    name: str | None = None
    container_port: int
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


class ResourceRequirements(KubeModel):
    """Compute resources: requests and limits by resource name (``cpu``, ``memory``, ``nvidia.com/gpu``)."""

    requests: dict[str, IntOrString] | None = None
    limits: dict[str, IntOrString] | None = None


class HTTPGetAction(KubeModel):
    """An HTTP GET probe."""

    path: str | None = None
    port: IntOrString
    scheme: Literal["HTTP", "HTTPS"] | None = None


class TCPSocketAction(KubeModel):
    """A TCP connect probe."""

    port: IntOrString


class ExecAction(KubeModel):
    """A command run inside the container (probes, lifecycle hooks)."""

    command: list[str]


class Probe(KubeModel):
    """A readiness, startup or liveness probe."""

    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int | None = None
    period_seconds: int | None = None
    timeout_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None


class LifecycleHandler(KubeModel):
    """What a lifecycle hook runs."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None


class Lifecycle(KubeModel):
    """Container lifecycle hooks (``preStop`` runs before SIGTERM, within the grace period)."""

    pre_stop: LifecycleHandler | None = None


class Capabilities(KubeModel):
    """Linux capabilities added to or dropped from the container."""

    drop: list[str] | None = None
    add: list[str] | None = None


class SeccompProfile(KubeModel):
    """The container's seccomp profile."""

    type: Literal["RuntimeDefault", "Localhost", "Unconfined"]


class SecurityContext(KubeModel):
    """A container's privileges."""

    run_as_non_root: bool | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    allow_privilege_escalation: bool | None = None
    privileged: bool | None = None
    read_only_root_filesystem: bool | None = None
    capabilities: Capabilities | None = None
    seccomp_profile: SeccompProfile | None = None


class VolumeMount(KubeModel):
    """Where a volume appears in a container."""

    name: str
    mount_path: str
    read_only: bool | None = None


class EmptyDirVolumeSource(KubeModel):
    """A scratch volume; ``medium: Memory`` makes it tmpfs (used for /dev/shm)."""

    medium: str | None = None
    size_limit: IntOrString | None = None


class KeyToPath(KubeModel):
    """One key of a ConfigMap projected to a file."""

    key: str
    path: str


class ConfigMapProjection(KubeModel):
    """Keys of a ConfigMap in a projected volume."""

    name: str
    items: list[KeyToPath] | None = None


class DownwardAPIVolumeFile(KubeModel):
    """A pod field written to a file."""

    path: str
    field_ref: ObjectFieldSelector


class DownwardAPIProjection(KubeModel):
    """Pod fields in a projected volume."""

    items: list[DownwardAPIVolumeFile]


class ServiceAccountTokenProjection(KubeModel):
    """A bound, expiring service-account token in a projected volume."""

    path: str
    expiration_seconds: int | None = None


class VolumeProjection(KubeModel):
    """One source of a projected volume."""

    service_account_token: ServiceAccountTokenProjection | None = None
    config_map: ConfigMapProjection | None = None
    downward_api: DownwardAPIProjection | None = Field(
        default=None,
        validation_alias=AliasChoices("downwardAPI", "downward_api"),
        serialization_alias="downwardAPI",
    )


class ProjectedVolumeSource(KubeModel):
    """Several sources in one volume (how the service-account token is mounted by hand)."""

    sources: list[VolumeProjection]
    default_mode: int | None = None


class Volume(KubeModel):
    """A pod volume: emptyDir (/dev/shm, /tmp) or projected (the router's service-account token)."""

    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None


class Container(KubeModel):
    """One container of a pod."""

    name: str
    image: str
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    working_dir: str | None = None
    env: list[EnvVar] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    liveness_probe: Probe | None = None
    lifecycle: Lifecycle | None = None
    restart_policy: Literal["Always"] | None = None
    security_context: SecurityContext | None = None
    volume_mounts: list[VolumeMount] | None = None


class PodSpec(KubeModel):
    """The pod template of a clique (core/v1 PodSpec, the part the compiler sets).

    ``initContainers`` holds native sidecars (``restartPolicy: Always``): started before the main
    containers, stopped after them.
    """

    service_account_name: str | None = None
    automount_service_account_token: bool | None = None
    scheduler_name: str | None = None
    termination_grace_period_seconds: int | None = None
    node_selector: dict[str, str] | None = None
    init_containers: list[Container] | None = None
    containers: list[Container]
    volumes: list[Volume] | None = None


class ServicePort(KubeModel):
    """One port of a Service."""

    name: str | None = None
    port: int
    target_port: IntOrString | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


class ServiceSpec(KubeModel):
    """A Service's type, selector and ports."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] | None = None
    selector: dict[str, str] | None = None
    ports: list[ServicePort]


class Service(KubeModel):
    """core/v1 Service: a stable address for a clique's pods."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta
    spec: ServiceSpec


class ServiceAccount(KubeModel):
    """core/v1 ServiceAccount: the identity router sidecars use to list pods."""

    api_version: Literal["v1"] = "v1"
    kind: Literal["ServiceAccount"] = "ServiceAccount"
    metadata: ObjectMeta


class PolicyRule(KubeModel):
    """One RBAC rule: verbs on resources of API groups."""

    api_groups: list[str]
    resources: list[str]
    verbs: list[str]


class Role(KubeModel):
    """rbac/v1 Role: namespaced permissions."""

    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["Role"] = "Role"
    metadata: ObjectMeta
    rules: list[PolicyRule]


class Subject(KubeModel):
    """Who a RoleBinding grants to."""

    kind: Literal["ServiceAccount", "User", "Group"]
    name: str
    namespace: str | None = None
    api_group: str | None = None


class RoleRef(KubeModel):
    """The Role a RoleBinding grants."""

    api_group: Literal["rbac.authorization.k8s.io"] = "rbac.authorization.k8s.io"
    kind: Literal["Role", "ClusterRole"] = "Role"
    name: str


class RoleBinding(KubeModel):
    """rbac/v1 RoleBinding: grants a Role to subjects."""

    api_version: Literal["rbac.authorization.k8s.io/v1"] = "rbac.authorization.k8s.io/v1"
    kind: Literal["RoleBinding"] = "RoleBinding"
    metadata: ObjectMeta
    subjects: list[Subject]
    role_ref: RoleRef


class LabelSelectorRequirement(KubeModel):
    """``key In/NotIn/Exists`` on labels."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(KubeModel):
    """Pods by labels."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class NetworkPolicyPeer(KubeModel):
    """Who may connect: pods of this namespace by labels (no peer: anyone)."""

    pod_selector: LabelSelector | None = None


class NetworkPolicyPort(KubeModel):
    """A port (number or container port name) a rule opens; none: every port."""

    port: IntOrString | None = None
    protocol: Literal["TCP", "UDP", "SCTP"] | None = None


class NetworkPolicyIngressRule(KubeModel):
    """Connections from ``from`` to ``ports`` (an empty ``from``: from anywhere)."""

    from_: list[NetworkPolicyPeer] | None = Field(
        default=None, validation_alias=AliasChoices("from", "from_"), serialization_alias="from"
    )
    ports: list[NetworkPolicyPort] | None = None


class NetworkPolicySpec(KubeModel):
    """Ingress to the selected pods: only what a rule allows."""

    pod_selector: LabelSelector
    policy_types: list[Literal["Ingress", "Egress"]]
    ingress: list[NetworkPolicyIngressRule] | None = None


class NetworkPolicy(KubeModel):
    """networking/v1 NetworkPolicy."""

    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["NetworkPolicy"] = "NetworkPolicy"
    metadata: ObjectMeta
    spec: NetworkPolicySpec
