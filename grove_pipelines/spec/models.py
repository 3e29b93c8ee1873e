"""The option models of stages, LLM stages and pipelines (pydantic, strict: unknown options are errors)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from grove_pipelines.go_duration import parse_go_duration
from grove_pipelines.spec.dns_label import is_dns_label
from grove_pipelines.spec.router_flags import RoutingPolicy
from grove_pipelines.spec.tracing import check_otel_env
from grove_pipelines.spec.vllm import DEFAULT_VLLM_IMAGE

__all__ = [
    "COMPILER_LABEL_PREFIX",
    "DEFAULT_PYTHON_IMAGE",
    "DEFAULT_VLLM_IMAGE",
    "PD",
    "Autoscaling",
    "EntrySpec",
    "LLMSpec",
    "PipelineSpec",
    "PythonStageSpec",
    "Resources",
    "Role",
    "RoleSpec",
    "StageSpec",
    "Topology",
]

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
DEFAULT_PYTHON_IMAGE = "ghcr.io/grove-pipelines/runtime:0.1.0"
COMPILER_LABEL_PREFIX = "grove-pipelines.io/"
"""Label keys under it are the compiler's (``grove_pipelines.grove.labels``): Services select pods by them."""


class _Options(BaseModel):
    """Shared config: frozen, unknown fields rejected, validated on assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _quantity(value: str | float | None) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not QUANTITY.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi')")
    return text


def _dns_label(value: str) -> str:
    """Stage and pipeline names become clique, Service and DNS names."""
    if not is_dns_label(value):
        raise ValueError(
            f"{value!r} is not a DNS label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def _user_labels(value: dict[str, str]) -> dict[str, str]:
    """Labels under the compiler's prefix would be overwritten (or mislead the Services that select by them)."""
    for key in value:
        if key.startswith(COMPILER_LABEL_PREFIX):
            raise ValueError(
                f"label {key!r}: {COMPILER_LABEL_PREFIX}* labels are set by the compiler (Services select by them)"
            )
    return value


class Resources(_Options):
    """Per-pod requests (limits are set equal for memory and GPUs, as GPUs require)."""

    cpu: str | None = None
    memory: str | None = None
    gpus: Annotated[int, Field(ge=0)] = 0

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _check_quantity(cls, value: str | float | None) -> str | None:
        return _quantity(value)


class Autoscaling(_Options):
    """Horizontal autoscaling of one clique (or one scaling group): Grove creates the HPA.

    ``target_cpu_utilization`` is the common case; ``metrics`` takes raw ``autoscaling/v2`` MetricSpecs.
    """

    min_replicas: Annotated[int, Field(ge=1)] | None = None
    max_replicas: Annotated[int, Field(ge=1)]
    target_cpu_utilization: Annotated[int, Field(ge=1, le=100)] | None = None
    metrics: list[dict[str, object]] | None = None

    @model_validator(mode="after")
    def _check_bounds(self) -> Autoscaling:
        if self.min_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        if self.target_cpu_utilization is not None and self.metrics:
            raise ValueError("give target_cpu_utilization or metrics, not both")
        return self


class Topology(_Options):
    """Topology-aware packing (needs TAS on the Grove operator and a ClusterTopologyBinding)."""

    topology_name: str
    required: str | None = None
    preferred: str | None = None

    @model_validator(mode="after")
    def _check_pack(self) -> Topology:
        if self.required is None and self.preferred is None:
            raise ValueError("set required or preferred (a topology domain such as 'rack' or 'host')")
        for domain in (self.required, self.preferred):
            if domain is not None and not re.match(r"^[a-z][a-z0-9-]{0,62}$", domain):
                raise ValueError(f"{domain!r} is not a topology domain (lowercase letters, digits, '-')")
        return self


class _ReplicatedSpec(_Options):
    """What every clique-producing spec shares: replicas, gang minimum and autoscaling."""

    replicas: Annotated[int, Field(ge=1)] = 1
    min_available: Annotated[int, Field(ge=1)] | None = None
    autoscaling: Autoscaling | None = None

    @model_validator(mode="after")
    def _check_gang(self) -> _ReplicatedSpec:
        if self.min_available is not None and self.min_available > self.replicas:
            raise ValueError(f"min_available ({self.min_available}) exceeds replicas ({self.replicas})")
        scale = self.autoscaling
        if scale is not None and scale.max_replicas < self.replicas:
            raise ValueError(
                f"autoscaling.max_replicas ({scale.max_replicas}) is below replicas ({self.replicas})"
            )
        return self

    @property
    def gang_minimum(self) -> int:
        """Pods (or scaling-group replicas) the gang needs: explicit, else 1 so one ready replica serves."""
        return self.min_available if self.min_available is not None else 1


class _NamedSpec(_ReplicatedSpec):
    name: str
    image: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources = Resources()
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    timeout_s: Annotated[float, Field(gt=0)] | None = None
    retries: Annotated[int, Field(ge=0, le=10)] = 0

    _check_name = field_validator("name")(_dns_label)

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"env name {key!r} is not a valid environment variable name")
            if key.startswith("GROVE_"):
                raise ValueError(f"env name {key!r}: GROVE_* variables are set by the Grove operator")
            if key.startswith("GP_"):
                raise ValueError(
                    f"env name {key!r}: GP_* variables are set by the compiler (endpoints, credentials)"
                )
        return value

    _check_labels = field_validator("labels")(_user_labels)


class PythonStageSpec(_NamedSpec):
    """A Python stage (tools, retrieval, glue): one clique running the stage server."""

    kind: Literal["python"] = "python"
    is_class: bool = False
    module: str = ""
    qualname: str = ""


class Role(_Options):
    """Per-role overrides of a disaggregated LLM (prefill or decode); unset fields inherit from the llm()."""

    replicas: Annotated[int, Field(ge=1)] = 1
    min_available: Annotated[int, Field(ge=1)] | None = None
    nodes: Annotated[int, Field(ge=1)] | None = None
    gpus: Annotated[int, Field(ge=0)] | None = None
    tensor_parallel: Annotated[int, Field(ge=1)] | None = None
    vllm_args: tuple[str, ...] = ()
    autoscaling: Autoscaling | None = None

    @model_validator(mode="after")
    def _check_gang(self) -> Role:
        if self.min_available is not None and self.min_available > self.replicas:
            raise ValueError(f"min_available ({self.min_available}) exceeds replicas ({self.replicas})")
        return self


class PD(_Options):
    """Disaggregated serving: separate prefill and decode workers, KV moved by vLLM's NixlConnector."""

    prefill: Role = Role()
    decode: Role = Role()


class RoleSpec(_ReplicatedSpec):
    """One resolved serving role of an LLM: ``serve`` (aggregated), ``prefill`` or ``decode``."""

    role: Literal["serve", "prefill", "decode"]
    nodes: Annotated[int, Field(ge=1)] = 1
    gpus: Annotated[int, Field(ge=0)] = 0
    tensor_parallel: Annotated[int, Field(ge=1)] = 1
    vllm_args: tuple[str, ...] = ()


class LLMSpec(_NamedSpec):
    """A model stage served by vLLM: aggregated, or disaggregated into prefill and decode roles."""

    kind: Literal["llm"] = "llm"
    model: str
    served_model_name: str | None = None
    engine: Literal["vllm"] = "vllm"
    gpus: Annotated[int, Field(ge=0)] = 1
    tensor_parallel: Annotated[int, Field(ge=1)] | None = None
    nodes: Annotated[int, Field(ge=1)] = 1
    max_model_len: Annotated[int, Field(ge=16)] | None = None
    vllm_args: tuple[str, ...] = ()
    disaggregated: PD | None = None
    routing: RoutingPolicy = "prefix"
    """The router sidecar's policy over this model's workers: ``prefix`` by default, so a pipeline
    run's turns (one session id per run) and a fan-out's siblings meet their KV cache."""

    @model_validator(mode="after")
    def _check_parallelism(self) -> LLMSpec:
        for role in self.roles():
            if role.gpus and role.tensor_parallel > role.gpus * role.nodes:
                raise ValueError(
                    f"{role.role}: tensor_parallel ({role.tensor_parallel}) exceeds the role's GPUs "
                    f"({role.gpus} per node x {role.nodes} nodes)"
                )
        return self

    @property
    def model_name(self) -> str:
        """The name clients send as ``model``: served_model_name, else the stage name."""
        return self.served_model_name or self.name

    def roles(self) -> list[RoleSpec]:
        """The serving roles with every inherited option resolved: one when aggregated, two when not."""
        if self.disaggregated is None:
            return [
                RoleSpec(
                    role="serve",
                    replicas=self.replicas,
                    min_available=self.min_available,
                    autoscaling=self.autoscaling,
                    nodes=self.nodes,
                    gpus=self.gpus,
                    tensor_parallel=self.tensor_parallel or max(1, self.gpus * self.nodes),
                    vllm_args=self.vllm_args,
                )
            ]
        resolved = []
        for role_name in ("prefill", "decode"):
            role: Role = getattr(self.disaggregated, role_name)
            nodes = role.nodes or self.nodes
            gpus = self.gpus if role.gpus is None else role.gpus
            resolved.append(
                RoleSpec(
                    role=role_name,
                    replicas=role.replicas,
                    min_available=role.min_available,
                    autoscaling=role.autoscaling,
                    nodes=nodes,
                    gpus=gpus,
                    tensor_parallel=role.tensor_parallel or self.tensor_parallel or max(1, gpus * nodes),
                    vllm_args=(*self.vllm_args, *role.vllm_args),
                )
            )
        return resolved


StageSpec = Annotated[PythonStageSpec | LLMSpec, Field(discriminator="kind")]


class EntrySpec(_ReplicatedSpec):
    """The pipeline server: the entry clique that exposes the pipeline's HTTP endpoints."""

    image: str | None = None
    resources: Resources = Resources(cpu="1", memory="1Gi")
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    auth: bool = True
    """Require a bearer key from the pipeline's Secret (``<pcs>-auth``, key ``api-keys``) on every request."""


class PipelineSpec(_Options):
    """Pipeline-wide options: the PodCliqueSet's name, scheduling, images and the entry server."""

    name: str
    description: str = ""
    module: str = ""
    qualname: str = ""
    namespace: str | None = None
    image: str = DEFAULT_PYTHON_IMAGE
    vllm_image: str = DEFAULT_VLLM_IMAGE
    scheduler: Literal["default-scheduler", "kai-scheduler", "volcano"] | None = None
    queue: str | None = None
    priority_class: str | None = None
    termination_delay: str | None = None
    topology: Topology | None = None
    max_iterations: Annotated[int, Field(ge=1)] = 16
    entry: EntrySpec = EntrySpec()
    public: bool = False
    """The author's word that an entry reachable from outside the cluster may serve without auth."""
    labels: dict[str, str] = Field(default_factory=dict)
    otel: dict[str, str] = Field(default_factory=dict)
    """Standard OpenTelemetry variables (``grove_pipelines.spec.tracing.OTEL_PASSTHROUGH``) every container
    gets: the servers and routers export their spans, the vLLM workers too (``--otlp-traces-endpoint``)."""
    calls: tuple[str, ...] = ()
    """Stages the body calls in ways the reference scan cannot see (``getattr``, names from a file)."""

    _check_name = field_validator("name")(_dns_label)

    _check_labels = field_validator("labels")(_user_labels)

    _check_otel = field_validator("otel")(check_otel_env)

    @field_validator("termination_delay")
    @classmethod
    def _check_duration(cls, value: str | None) -> str | None:
        if value is not None and not (parse_go_duration(value) or 0) > 0:
            raise ValueError(f"{value!r} is not a duration greater than 0 (e.g. '30s', '15m', '4h')")
        return value

    @model_validator(mode="after")
    def _check_queue(self) -> PipelineSpec:
        if self.queue is not None and self.scheduler not in ("kai-scheduler", "volcano"):
            raise ValueError("queue needs scheduler='kai-scheduler' or scheduler='volcano'")
        return self
