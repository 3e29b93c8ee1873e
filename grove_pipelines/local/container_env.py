"""What the kubelet hands one container of a Grove pod: its environment and its expanded argv.

The environment is the container's own ``env`` followed by the ``GROVE_*`` entries Grove appends
(:meth:`GrovePod.grove_env`), resolved in order with the downward API fields the manifests use
(``metadata.*``, ``status.podIP``, ``spec.serviceAccountName``, resource requests and limits) and the
run's Secrets (``secretKeyRef``); then
``command`` + ``args`` are expanded against it (:mod:`grove_pipelines.local.expansion`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grove_pipelines.errors import RunError
from grove_pipelines.local.expansion import expand_all, resolve_env, unresolved
from grove_pipelines.local.identity import GrovePod

__all__ = ["ContainerLaunch", "container_launch"]

_LABEL_OR_ANNOTATION = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
_SUFFIX = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


@dataclass(frozen=True)
class ContainerLaunch:
    """A container ready to start: its name, the argv after expansion and the resolved environment."""

    name: str
    argv: list[str]
    env: dict[str, str]
    unresolved: list[str]


def container_launch(
    pod: GrovePod, container: Mapping[str, Any], *, pod_ip: str, host_ip: str,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> ContainerLaunch:  # fmt: skip
    """The launch of ``container`` in ``pod`` at ``pod_ip`` on a node at ``host_ip``."""

    def field_value(source: Mapping[str, Any]) -> str:
        ref = source.get("secretKeyRef")
        if ref and secrets is not None and ref.get("key") in secrets.get(str(ref.get("name")), {}):
            return secrets[str(ref["name"])][str(ref["key"])]
        if "fieldRef" in source:
            return _field(pod, str(source["fieldRef"]["fieldPath"]), pod_ip=pod_ip, host_ip=host_ip)
        if "resourceFieldRef" in source:
            return _resource(container, source["resourceFieldRef"])
        raise RunError(
            f"pod {pod.name}: container {container['name']}: env source {sorted(source)} is not available here"
        )

    env = resolve_env([*(container.get("env") or ()), *pod.grove_env()], field_value)
    argv = [*(container.get("command") or ()), *(container.get("args") or ())]
    return ContainerLaunch(str(container["name"]), expand_all(argv, env), env, unresolved(argv, env))


def _field(pod: GrovePod, path: str, *, pod_ip: str, host_ip: str) -> str:
    match = _LABEL_OR_ANNOTATION.match(path)
    if match:
        source = pod.labels if match.group(1) == "labels" else dict(pod.template.get("annotations") or {})
        return source.get(match.group(2), "")
    spec = pod.pod_spec
    values = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.nodeName": "localhost",
        "spec.serviceAccountName": str(spec.get("serviceAccountName") or "default"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in values:
        raise RunError(f"pod {pod.name}: downward API field {path!r} is not available here")
    return values[path]


def _resource(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """``limits.cpu`` and the like, rounded up by the divisor as the kubelet does."""
    kind, _, resource = str(ref["resource"]).partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    if value is None:
        return "0"
    divisor = _quantity(str(ref.get("divisor", "1")))
    return str(math.ceil(_quantity(str(value)) / divisor))


def _quantity(text: str) -> float:
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _SUFFIX[suffix]
    return float(text)
