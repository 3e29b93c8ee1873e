"""The parts of Grove's ``OperatorConfiguration`` that change what its webhook admits.

Enabled scheduler profiles and the default one, topology-aware scheduling (TAS) and Auto-MNNVL. The
defaults are a default Helm install (``operator/charts/values.yaml``: profiles ``default-scheduler`` and
``kai-scheduler``, default profile ``default-scheduler``, TAS off, MNNVL off). ``load_operator_config``
reads the operator's own config file, the Helm values (its ``config:`` section) or the operator's
ConfigMap (``validate --grove-config FILE``; ``deploy`` reads the live ConfigMap the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from grove_pipelines import yamlio
from grove_pipelines.errors import ManifestError

__all__ = [
    "DEFAULT_SCHEDULER",
    "KNOWN_SCHEDULERS",
    "OperatorConfig",
    "SchedulerProfile",
    "load_operator_config",
    "operator_config_from",
]

DEFAULT_SCHEDULER = "default-scheduler"
KNOWN_SCHEDULERS = ("default-scheduler", "kai-scheduler", "volcano", "lpx-scheduler")
_CONFIG_KIND = "OperatorConfiguration"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SchedulerProfile(_Lenient):
    """One enabled scheduler backend (``scheduler.profiles[]``)."""

    name: str

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in KNOWN_SCHEDULERS:
            raise ValueError(f"{name!r} is not a Grove scheduler backend ({', '.join(KNOWN_SCHEDULERS)})")
        return name


class _Scheduler(_Lenient):
    profiles: list[SchedulerProfile] = Field(
        default_factory=lambda: [
            SchedulerProfile(name="default-scheduler"),
            SchedulerProfile(name="kai-scheduler"),
        ]
    )
    default_profile_name: str = Field(default="", alias="defaultProfileName")


class _Toggle(_Lenient):
    enabled: bool = False


class _Network(_Lenient):
    auto_mnnvl_enabled: bool = Field(default=False, alias="autoMNNVLEnabled")


class OperatorConfig(_Lenient):
    """What Grove's validating webhook reads from the operator configuration."""

    scheduler: _Scheduler = Field(default_factory=_Scheduler)
    topology_aware_scheduling: _Toggle = Field(default_factory=_Toggle, alias="topologyAwareScheduling")
    network: _Network = Field(default_factory=_Network)

    @property
    def enabled_schedulers(self) -> set[str]:
        """Enabled backends; ``default-scheduler`` is always one of them."""
        return {p.name for p in self.scheduler.profiles} | {DEFAULT_SCHEDULER}

    @property
    def default_scheduler(self) -> str:
        """The backend an empty ``podSpec.schedulerName`` resolves to."""
        return self.scheduler.default_profile_name or DEFAULT_SCHEDULER

    @property
    def tas_enabled(self) -> bool:
        return self.topology_aware_scheduling.enabled

    @property
    def mnnvl_enabled(self) -> bool:
        return self.network.auto_mnnvl_enabled


def _section(doc: Any) -> dict[str, Any] | None:
    """The OperatorConfiguration mapping inside a config file, Helm values or a ConfigMap; ``None`` if none."""
    if not isinstance(doc, dict):
        return None
    if doc.get("kind") == _CONFIG_KIND:
        return doc
    if doc.get("kind") == "ConfigMap":
        for text in (doc.get("data") or {}).values():
            try:
                inner = yamlio.load(text) if isinstance(text, str) else None
            except ManifestError:
                continue
            if isinstance(inner, dict) and inner.get("kind") == _CONFIG_KIND:
                return inner
        return None
    config = doc.get("config")
    if isinstance(config, dict) and any(
        k in config for k in ("scheduler", "topologyAwareScheduling", "network")
    ):
        return config
    return None


def operator_config_from(doc: Any, *, source: str = "operator config") -> OperatorConfig:
    """The configuration in one parsed document (OperatorConfiguration, Helm values or ConfigMap)."""
    section = _section(doc)
    if section is None:
        raise ManifestError(
            f"{source}: not an OperatorConfiguration, Grove Helm values (config:) or the operator's ConfigMap"
        )
    try:
        config = OperatorConfig.model_validate(section)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ManifestError(f"{source}: {where}: {first['msg']}") from None
    if config.scheduler.default_profile_name and config.default_scheduler not in config.enabled_schedulers:
        raise ManifestError(
            f"{source}: defaultProfileName {config.default_scheduler!r} is not an enabled profile"
        )
    return config


def load_operator_config(path: str | Path | None) -> OperatorConfig:
    """The configuration in ``path``, or a default Helm install's when ``path`` is ``None``."""
    if path is None:
        return OperatorConfig()
    docs = [d for d in yamlio.load_all_file(path) if d is not None]
    for doc in docs:
        if _section(doc) is not None:
            return operator_config_from(doc, source=str(path))
    raise ManifestError(
        f"{path}: not an OperatorConfiguration, Grove Helm values (config:) or the operator's ConfigMap"
    )
