"""Grove's rules on one clique template: name, labels, ``roleName``, counts, startup dependencies,
autoscaling bounds and the pod spec (no placement fields on create; environment variable names)."""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.webhook.fields import as_dict, as_int, as_list
from grove_pipelines.grove.webhook.kube_syntax import check_labels, is_dns_subdomain, is_env_name
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["check_clique"]


def _check_clique_scale(
    scale: dict[str, Any], *, replicas: int | None, minimum: int | None, path: str, out: Problems
) -> None:
    low, high = as_int(scale.get("minReplicas")), as_int(scale.get("maxReplicas"))
    if low is None:  # Grove's defaulting always sets it (= replicas)
        low = replicas
    if low is None:
        return
    if minimum is not None and low < minimum:
        out.add(
            "autoscaling-bounds",
            f"{path}.minReplicas",
            f"minReplicas ({low}) is below minAvailable ({minimum})",
        )
    if high is not None and high < low:
        out.add(
            "autoscaling-bounds", f"{path}.maxReplicas", f"maxReplicas ({high}) is below minReplicas ({low})"
        )
    if high is not None and replicas is not None and high < replicas:
        out.add(
            "autoscaling-bounds",
            f"{path}.maxReplicas",
            f"maxReplicas ({high}) is below replicas ({replicas})",
        )


def _check_pod(pod: dict[str, Any], *, path: str, create: bool, out: Problems) -> None:
    if create:
        if pod.get("topologySpreadConstraints") is not None:
            out.add("pod-spec-forbidden", f"{path}.topologySpreadConstraints",
                    "topologySpreadConstraints must not be set (Grove places the pods)")  # fmt: skip
        if pod.get("nodeName"):
            out.add(
                "pod-spec-forbidden", f"{path}.nodeName", "nodeName must not be set (Grove places the pods)"
            )
    for kind in ("initContainers", "containers"):
        for c, container in enumerate(as_list(pod.get(kind))):
            seen: set[str] = set()
            for e, env in enumerate(as_list(as_dict(container).get("env"))):
                name = as_dict(env).get("name")
                where = f"{path}.{kind}[{c}].env[{e}].name"
                if not isinstance(name, str) or not is_env_name(name):
                    out.add("env-name", where, f"{name!r} is not a valid environment variable name")
                elif name in seen:
                    out.add("env-name-unique", where, f"{name!r} is set twice in this container")
                elif name.startswith("GROVE_"):
                    out.project(
                        "env-name-reserved",
                        where,
                        f"{name!r}: GROVE_* variables belong to the Grove operator",
                    )
                if isinstance(name, str):
                    seen.add(name)


def _check_starts_after(spec: dict[str, Any], name: Any, path: str, out: Problems) -> None:
    seen: set[Any] = set()
    for j, dep in enumerate(as_list(spec.get("startsAfter"))):
        where = f"{path}.startsAfter[{j}]"
        if not dep:
            out.add("starts-after-empty", where, "a clique dependency must not be empty")
        elif dep == name:
            out.add("starts-after-self", where, f"clique {name!r} cannot start after itself")
        if dep in seen:
            out.add("starts-after-duplicate", where, f"{dep!r} is listed twice")
        seen.add(dep if isinstance(dep, str) else repr(dep))


def check_clique(
    i: int,
    clique: dict[str, Any],
    *,
    grouped: bool,
    roles: dict[str, int],
    explicit_startup: bool,
    create: bool,
    out: Problems,
) -> None:
    """Rules on one clique template: name, labels, roleName, counts, dependencies, autoscaling, pod spec."""
    path = f"spec.template.cliques[{i}]"
    spec = as_dict(clique.get("spec"))
    name = clique.get("name")
    if not isinstance(name, str) or not name:
        out.add("clique-name", f"{path}.name", "the clique needs a name")
    elif not is_dns_subdomain(name):
        out.add("clique-name", f"{path}.name", f"{name!r} is not a DNS subdomain")
    check_labels(clique, path, out)
    if out.strict:
        for field in ("roleName", "replicas", "minAvailable"):
            if field not in spec:
                out.add(
                    "explicit-fields",
                    f"{path}.spec.{field}",
                    f"set {field} explicitly (Grove's default is a trap)",
                )
    role = spec.get("roleName")
    if not isinstance(role, str) or not role:
        out.project("role-name", f"{path}.spec.roleName", "roleName is empty: two such cliques collide")
    if isinstance(role, str):
        if role in roles:
            out.add(
                "role-name-unique",
                f"{path}.spec.roleName",
                f"roleName {role!r} is also used by cliques[{roles[role]}]",
            )
        else:
            roles[role] = i
    replicas, minimum = as_int(spec.get("replicas")), as_int(spec.get("minAvailable"))
    if replicas is not None and replicas <= 0:
        out.add(
            "clique-replicas", f"{path}.spec.replicas", f"replicas must be greater than 0, got {replicas}"
        )
    if minimum is not None:  # Grove's defaulting always sets it (= the submitted replicas)
        if minimum <= 0:
            out.add(
                "min-available",
                f"{path}.spec.minAvailable",
                f"minAvailable must be greater than 0, got {minimum}",
            )
        if replicas is not None and minimum > replicas:
            out.add(
                "min-available",
                f"{path}.spec.minAvailable",
                f"minAvailable ({minimum}) exceeds replicas ({replicas})",
            )
    if explicit_startup:
        _check_starts_after(spec, name, f"{path}.spec", out)
    scale = spec.get("autoScalingConfig")
    if isinstance(scale, dict):
        if grouped:
            out.add("scaling-group-autoscaling", f"{path}.spec.autoScalingConfig",
                    "a clique in a scaling group cannot autoscale on its own (use the group's scaleConfig)")  # fmt: skip
        _check_clique_scale(
            scale, replicas=replicas, minimum=minimum, path=f"{path}.spec.autoScalingConfig", out=out
        )
    _check_pod(as_dict(spec.get("podSpec")), path=f"{path}.spec.podSpec", create=create, out=out)
