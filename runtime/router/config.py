"""The router's configuration: one pydantic model, filled from a YAML/JSON file and command-line flags.

Flags win over the file. Every section has defaults that work for a sidecar next to vLLM, so the
smallest configuration is a list of worker URLs::

    # router.yaml
    prefill: [http://10.0.0.5:8000]
    decode: [http://127.0.0.1:8000]
    policy: {name: prefix, params: {block_chars: 256}}
    disaggregation: {mode: conditional, min_uncached_tokens: 256}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grove_pipelines.spec.router_flags import DiscoveryMode
from grove_pipelines.spec.shutdown import ROUTER_DRAIN_S
from runtime.errors import RouterConfigError

__all__ = [
    "DisaggregationConfig",
    "DiscoveryConfig",
    "HealthConfig",
    "LimitsConfig",
    "PolicyConfig",
    "RetryConfig",
    "RouterConfig",
    "TimeoutConfig",
    "load_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyConfig(_Section):
    """A routing policy by registry name, with its parameters (validated by the policy's own model)."""

    name: str = "round_robin"
    params: dict[str, Any] = Field(default_factory=dict)


class DisaggregationConfig(_Section):
    """When to run the prefill leg on a prefill worker and when to prefill on the decode worker itself.

    ``always``: every request goes prefill worker → decode worker (local prefill only as a failure
    fallback). ``conditional``: prefill locally when the estimated uncached part of the prompt on the
    chosen decode worker is shorter than ``min_uncached_tokens``, or when every prefill worker already
    has ``max_prefill_in_flight`` requests (llm-d's prefix-based decider, Dynamo's conditional disagg).
    """

    mode: Literal["always", "conditional"] = "always"
    min_uncached_tokens: int = Field(default=256, ge=0)
    max_prefill_in_flight: int | None = Field(default=None, ge=1)
    block_chars: int = Field(default=256, ge=16, description="characters per hashed block of the prompt")
    chars_per_token: float = Field(default=4.0, gt=0, description="to turn uncached characters into tokens")


class HealthConfig(_Section):
    """Active checks of ``/health`` and passive ejection of workers that fail requests."""

    interval: float = Field(default=5.0, gt=0, description="seconds between active checks")
    timeout: float = Field(default=2.0, gt=0)
    unhealthy_after: int = Field(
        default=3,
        ge=1,
        description="consecutive failed checks before a worker counts as unhealthy (a busy vLLM "
        "answers /health late now and then); one passed check makes it healthy again",
    )
    models_every: int = Field(default=12, ge=1, description="refresh /v1/models every N checks")
    eject_after: int = Field(default=1, ge=1, description="consecutive request failures before ejection")
    eject_base: float = Field(
        default=1.0, gt=0, description="first ejection lasts this long (s); doubles after"
    )
    eject_max: float = Field(default=30.0, gt=0)
    cache_stats_interval: float = Field(
        default=5.0,
        ge=0,
        description="seconds between scrapes of each worker's /metrics for its prefix-cache counters "
        "(they correct the prefix policy's estimate); 0: never",
    )


class RetryConfig(_Section):
    """Retries of a leg that failed before its first byte reached the client."""

    max_retries: int = Field(default=2, ge=0, description="further decode/worker attempts per request")
    prefill_retries: int = Field(
        default=1, ge=0, description="further prefill workers to try before local prefill"
    )
    backoff_base: float = Field(default=0.02, ge=0, description="seconds; full jitter, doubling per attempt")
    backoff_max: float = Field(default=0.5, ge=0)


class LimitsConfig(_Section):
    """Admission and client hygiene: sizes, read/write deadlines, connections, concurrency with a queue."""

    max_body_bytes: int = Field(default=8 * 2**20, ge=1024)
    max_header_bytes: int = Field(
        default=64 * 2**10, ge=1024, description="request line and headers together; beyond: 431"
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds to receive a request's headers (slowloris); then closed"
    )
    body_timeout: float = Field(default=30.0, gt=0, description="seconds to receive a request body; then 408")
    client_write_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a chunk of the answer may wait for a client that stopped reading; then the "
        "request is cancelled",
    )
    max_connections: int = Field(default=1024, ge=1, description="open client connections; beyond: 503")
    max_concurrent: int | None = Field(
        default=None, ge=1, description="requests proxied at once; None: unbounded"
    )
    queue_size: int = Field(default=256, ge=0, description="requests waiting for a slot; beyond: 429")
    queue_timeout: float = Field(default=30.0, gt=0, description="seconds a request may wait; beyond: 503")
    retry_after: int = Field(
        default=1, ge=1, description="seconds, in the Retry-After of 429 and 503 answers"
    )


class TimeoutConfig(_Section):
    """Upstream timeouts (seconds)."""

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=600.0, gt=0, description="longest silence between two chunks of an answer")
    prefill: float = Field(default=300.0, gt=0, description="whole prefill leg")
    keepalive: float = Field(
        default=4.0,
        gt=0,
        description="idle pooled connections are dropped after this; below "
        "vLLM's own 5 s keep-alive so the router never reuses a socket vLLM is closing",
    )
    kv_lease: float = Field(
        default=30.0,
        ge=0,
        description="seconds a prefill worker keeps a prefilled request's KV for a decode worker to pull "
        "(vLLM NixlConnector's kv_lease_duration); a retried decode leg reuses the KV within it, "
        "less a safety margin; 0: never reuse",
    )


class DiscoveryConfig(_Section):
    """Where the workers come from: fixed URLs, Grove (GROVE_* variables) or a Kubernetes label selector."""

    mode: DiscoveryMode = "static"
    worker_port: int = Field(default=8000, ge=1, le=65535)
    scheme: Literal["http", "https"] = "http"
    namespace: str | None = None
    prefill_clique: str | None = None
    decode_clique: str | None = None
    worker_clique: str | None = None
    prefill_group: str | None = None
    decode_group: str | None = None
    worker_group: str | None = None
    prefill_selector: str | None = None
    decode_selector: str | None = None
    worker_selector: str | None = None
    use_api: Literal["auto", "yes", "no"] = Field(
        default="auto", description="grove mode: Kubernetes API or DNS"
    )
    api_server: str | None = Field(
        default=None, description="Kubernetes API URL; default: in-cluster, kubeconfig"
    )
    dns_interval: float = Field(default=10.0, gt=0, description="seconds between DNS probes of the pod names")
    dns_max_pods: int = Field(default=64, ge=1)
    watch_timeout: int = Field(default=60, ge=1, description="seconds per watch call before it is renewed")


class RouterConfig(_Section):
    """Everything the router reads at startup."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    prefill: list[str] = Field(default_factory=list)
    decode: list[str] = Field(default_factory=list)
    worker: list[str] = Field(default_factory=list)
    policy: PolicyConfig = Field(default_factory=lambda: PolicyConfig())
    prefill_policy: PolicyConfig | None = None
    decode_policy: PolicyConfig | None = None
    disaggregation: DisaggregationConfig = Field(default_factory=lambda: DisaggregationConfig())
    health: HealthConfig = Field(default_factory=lambda: HealthConfig())
    retry: RetryConfig = Field(default_factory=lambda: RetryConfig())
    limits: LimitsConfig = Field(default_factory=lambda: LimitsConfig())
    timeouts: TimeoutConfig = Field(default_factory=lambda: TimeoutConfig())
    discovery: DiscoveryConfig = Field(default_factory=lambda: DiscoveryConfig())
    api_keys: list[str] = Field(default_factory=list)
    api_key_env: str | None = Field(
        default=None,
        description="environment variable with accepted keys (comma-separated); set but empty fails",
    )
    api_key_file: Path | None = Field(
        default=None, description="file with accepted keys, one per line (a mounted Kubernetes Secret)"
    )
    debug: bool = Field(
        default=False,
        description="expose worker URLs and failure detail (the x-grove-route header, /health workers); "
        "off by default so that unauthenticated clients learn nothing about the cluster",
    )
    drain_timeout: float = Field(
        default=float(ROUTER_DRAIN_S), ge=0, description="seconds to finish in-flight requests on SIGTERM"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="router processes on one port (SO_REUSEPORT); they share the workers' in-flight counts "
        "and learn from each other's routing (so every policy decides as one router), and the connection "
        "and concurrency limits are split among them",
    )

    @field_validator("prefill", "decode", "worker")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        out = []
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
            out.append(url.rstrip("/"))
        return out

    @field_validator("policy", "prefill_policy", "decode_policy", mode="before")
    @classmethod
    def _policy_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pools(self) -> RouterConfig:
        if self.discovery.mode == "static":
            if bool(self.prefill) != bool(self.decode):
                raise ValueError("disaggregated mode needs both --prefill and --decode workers")
            if not (self.decode or self.worker):
                raise ValueError("no workers: give --prefill and --decode, or --worker (or a discovery mode)")
        return self

    def policy_for(self, role: str) -> PolicyConfig:
        """The policy of a pool: its own if set, else the shared ``policy``."""
        own = {"prefill": self.prefill_policy, "decode": self.decode_policy}.get(role)
        return own or self.policy


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> RouterConfig:
    """Read ``path`` (YAML or JSON) if given, apply ``overrides`` (nested dicts merge), validate.

    Raises:
        RouterConfigError: unreadable file or invalid values, with one line per bad field.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise RouterConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
        try:
            if Path(path).suffix == ".json":
                loaded = json.loads(text)
            else:
                import yaml

                loaded = yaml.safe_load(text)
        except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's message
            raise RouterConfigError(f"{path}: not valid JSON/YAML: {exc}") from exc
        except Exception as exc:  # yaml.YAMLError is not a ValueError
            raise RouterConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise RouterConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    _merge(data, overrides or {})
    try:
        return RouterConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        details = "; ".join(_describe(err) for err in exc.errors())
        raise RouterConfigError(f"{where}invalid router configuration: {details}") from None


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
