"""Grove's defaulting, applied to manifests grove-pipelines did not write before the rules run.

What the API server and Grove's mutating webhook fill in (grove-api.md §1.2–§1.3), in their order:
CRD schema defaults (PCS ``replicas`` 0, ``cliqueStartupType`` AnyOrder, scaling-group ``replicas``
and ``minAvailable`` 1, ``updateStrategy.type``), then the webhook: namespace ``default``,
``headlessServiceConfig``, ``terminationDelay`` 4h, clique ``minAvailable`` = the *submitted*
``replicas`` (0 when omitted — Grove's own trap) before ``replicas`` 0 → 1, autoscaling
``minReplicas`` = replicas, pod ``terminationGracePeriodSeconds`` 30 and ``restartPolicy`` Always.
The compiler's output sets all of these explicitly, so defaulting changes nothing there.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["apply_defaults"]


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _list(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = parent.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _clique_defaults(clique: dict[str, Any]) -> None:
    spec = _dict(clique, "spec")
    if spec is None:
        return
    submitted = spec.get("replicas", 0)
    spec.setdefault("minAvailable", submitted)
    if spec.get("replicas", 0) == 0:
        spec["replicas"] = 1
    scale = _dict(spec, "autoScalingConfig")
    if scale is not None:
        scale.setdefault("minReplicas", spec["replicas"])
    pod = _dict(spec, "podSpec")
    if pod is not None:
        pod.setdefault("terminationGracePeriodSeconds", 30)
        pod["restartPolicy"] = "Always"


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted deep copy of a PodCliqueSet manifest (malformed parts are left for the schema to report)."""
    obj = copy.deepcopy(obj)
    meta = _dict(obj, "metadata")
    if meta is not None and not meta.get("namespace"):
        meta["namespace"] = "default"
    spec = _dict(obj, "spec")
    if spec is None:
        return obj
    spec.setdefault("replicas", 0)
    strategy = _dict(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingRecreate")
    template = _dict(spec, "template")
    if template is None:
        return obj
    template.setdefault("cliqueStartupType", "CliqueStartupTypeAnyOrder")
    template.setdefault("headlessServiceConfig", {"publishNotReadyAddresses": True})
    template.setdefault("terminationDelay", "4h")
    for clique in _list(template, "cliques"):
        _clique_defaults(clique)
    for group in _list(template, "podCliqueScalingGroups"):
        group.setdefault("replicas", 1)
        group.setdefault("minAvailable", 1)
        scale = _dict(group, "scaleConfig")
        if scale is not None:
            scale.setdefault("minReplicas", group["replicas"])
    return obj
