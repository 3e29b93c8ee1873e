"""Per-clique, per-scaling-group and naming rules of Grove's validating webhook (used by ``admission``)."""

from __future__ import annotations

import re
from typing import Any

from grove_pipelines.errors import AdmissionError
from grove_pipelines.grove.names import FQN_LIMIT, HOSTNAME_LIMIT, NAME_BUDGET, clique_fqn

__all__ = ["Problems", "as_dict", "as_int", "as_list", "check_clique", "check_groups", "check_names"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class Problems:
    """Collects problems; ``sorted()`` orders them by field path."""

    def __init__(self) -> None:
        self.items: list[AdmissionError] = []

    def add(self, rule: str, path: str, message: str) -> None:
        self.items.append(AdmissionError(message, rule=rule, path=path))

    def sorted(self) -> list[AdmissionError]:
        return sorted(self.items, key=lambda p: p.path)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_scale(
    scale: dict[str, Any], *, replicas: int | None, minimum: int | None, path: str, out: Problems
) -> None:
    low, high = as_int(scale.get("minReplicas")), as_int(scale.get("maxReplicas"))
    low = low if low is not None else replicas
    if low is not None and minimum is not None and low < minimum:
        out.add(
            "autoscaling-bounds",
            f"{path}.minReplicas",
            f"minReplicas ({low}) is below minAvailable ({minimum})",
        )
    if high is not None and low is not None and high < low:
        out.add(
            "autoscaling-bounds", f"{path}.maxReplicas", f"maxReplicas ({high}) is below minReplicas ({low})"
        )
    if high is not None and replicas is not None and high < replicas:
        out.add(
            "autoscaling-bounds",
            f"{path}.maxReplicas",
            f"maxReplicas ({high}) is below replicas ({replicas})",
        )


def _check_counts(
    item: dict[str, Any], *, path: str, rule: str, out: Problems
) -> tuple[int | None, int | None]:
    replicas, minimum = as_int(item.get("replicas")), as_int(item.get("minAvailable"))
    if replicas is not None and replicas <= 0:
        out.add(rule, f"{path}.replicas", f"replicas must be greater than 0, got {replicas}")
    if minimum is not None and minimum < 1:
        out.add("min-available", f"{path}.minAvailable", f"minAvailable must be at least 1, got {minimum}")
    elif minimum is not None and replicas is not None and replicas > 0 and minimum > replicas:
        out.add(
            "min-available", f"{path}.minAvailable", f"minAvailable ({minimum}) exceeds replicas ({replicas})"
        )
    return replicas, minimum


def _check_pod(pod: dict[str, Any], *, path: str, strict: bool, out: Problems) -> None:
    for field in ("nodeName", "topologySpreadConstraints"):
        if pod.get(field):
            out.add(
                "pod-spec-forbidden", f"{path}.{field}", f"{field} must not be set (Grove places the pods)"
            )
    for kind in ("initContainers", "containers"):
        for c, container in enumerate(as_list(pod.get(kind))):
            seen: set[str] = set()
            for e, env in enumerate(as_list(as_dict(container).get("env"))):
                name = as_dict(env).get("name")
                where = f"{path}.{kind}[{c}].env[{e}].name"
                if not isinstance(name, str) or not _ENV_NAME.match(name):
                    out.add("env-name", where, f"{name!r} is not a valid environment variable name")
                elif name in seen:
                    out.add("env-name-unique", where, f"{name!r} is set twice in this container")
                elif strict and name.startswith("GROVE_"):
                    out.add(
                        "env-name-reserved",
                        where,
                        f"{name!r}: GROVE_* variables belong to the Grove operator",
                    )
                if isinstance(name, str):
                    seen.add(name)


def check_clique(
    i: int, clique: dict[str, Any], *, grouped: bool, roles: dict[str, int], strict: bool, out: Problems
) -> None:
    """Rules on one clique template: roleName, counts, autoscaling, pod spec."""
    path = f"spec.template.cliques[{i}]"
    spec = as_dict(clique.get("spec"))
    role = spec.get("roleName")
    if strict:
        for field in ("roleName", "replicas", "minAvailable"):
            if field not in spec:
                out.add(
                    "explicit-fields",
                    f"{path}.spec.{field}",
                    f"set {field} explicitly (Grove's default is a trap)",
                )
    if not isinstance(role, str) or not role:
        out.add("role-name", f"{path}.spec.roleName", "roleName must not be empty")
    elif role in roles:
        out.add(
            "role-name-unique",
            f"{path}.spec.roleName",
            f"roleName {role!r} is also used by cliques[{roles[role]}]",
        )
    else:
        roles[role] = i
    replicas, minimum = _check_counts(spec, path=f"{path}.spec", rule="clique-replicas", out=out)
    scale = spec.get("autoScalingConfig")
    if isinstance(scale, dict):
        if grouped:
            out.add("scaling-group-autoscaling", f"{path}.spec.autoScalingConfig",
                    "a clique in a scaling group cannot autoscale on its own (use the group's scaleConfig)")  # fmt: skip
        _check_scale(
            scale, replicas=replicas, minimum=minimum, path=f"{path}.spec.autoScalingConfig", out=out
        )
    _check_pod(as_dict(spec.get("podSpec")), path=f"{path}.spec.podSpec", strict=strict, out=out)


def check_groups(
    template: dict[str, Any], cliques: list[dict[str, Any]], out: Problems
) -> tuple[dict[str, str], dict[str, int]]:
    """Rules on scaling groups; returns clique name → its group, and group → the most replicas it can reach."""
    names = {c.get("name") for c in cliques}
    member_of: dict[str, str] = {}
    sizes: dict[str, int] = {}
    seen: set[str] = set()
    for g, group in enumerate(as_dict(x) for x in as_list(template.get("podCliqueScalingGroups"))):
        path = f"spec.template.podCliqueScalingGroups[{g}]"
        name = group.get("name")
        if not isinstance(name, str) or not _DNS_LABEL.match(name):
            out.add("scaling-group-name", f"{path}.name", f"{name!r} is not a DNS label")
        elif name in seen:
            out.add("scaling-group-name", f"{path}.name", f"scaling group {name!r} is defined twice")
        seen.add(str(name))
        sizes[str(name)] = _most(group, scale_key="scaleConfig")
        members = as_list(group.get("cliqueNames"))
        if not members:
            out.add(
                "scaling-group-members", f"{path}.cliqueNames", "a scaling group needs at least one clique"
            )
        for m, member in enumerate(members):
            if member not in names:
                out.add(
                    "scaling-group-members",
                    f"{path}.cliqueNames[{m}]",
                    f"{member!r} is not a clique of this PodCliqueSet",
                )
            elif member in member_of:
                out.add("scaling-group-members", f"{path}.cliqueNames[{m}]",
                        f"{member!r} is already in scaling group {member_of[member]!r}")  # fmt: skip
            else:
                member_of[member] = str(name)
        replicas, minimum = _check_counts(group, path=path, rule="scaling-group-replicas", out=out)
        if isinstance(group.get("scaleConfig"), dict):
            _check_scale(
                group["scaleConfig"], replicas=replicas, minimum=minimum, path=f"{path}.scaleConfig", out=out
            )
    return member_of, sizes


def _most(spec: dict[str, Any], key: str = "replicas", scale_key: str = "autoScalingConfig") -> int:
    count = as_int(spec.get(key)) or 1
    high = as_int(as_dict(spec.get(scale_key)).get("maxReplicas")) or 0
    return max(count, high, 1)


def check_names(
    pcs: str,
    cliques: list[dict[str, Any]],
    groups: dict[str, str],
    *,
    group_size: dict[str, int],
    pcs_replicas: int,
    out: Problems,
) -> None:
    """Clique names: DNS labels, no suffix clashes, Grove's 45-character budget, FQN and hostname lengths."""
    names: list[str] = [c["name"] if isinstance(c.get("name"), str) else "" for c in cliques]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    for i, name in enumerate(names):
        path = f"spec.template.cliques[{i}].name"
        if not _DNS_LABEL.match(name):
            out.add("clique-name", path, f"{name!r} is not a DNS label")
            continue
        for k in range(1, len(name)):
            j = index.get(name[k:])
            if j is not None:
                out.add("clique-name-suffix", f"spec.template.cliques[{j}].name",
                        f"clique name {names[j]!r} is a suffix of {name!r} (cliques[{i}]): Grove would mix up their templates")  # fmt: skip
        group = groups.get(name)
        used = len(pcs) + len(group or "") + len(name)
        if used > NAME_BUDGET:
            parts = f"{pcs!r} + {group!r} + {name!r}" if group else f"{pcs!r} + {name!r}"
            out.add(
                "name-budget", path, f"{parts} is {used} characters, over Grove's budget of {NAME_BUDGET}"
            )
            continue
        spec = as_dict(cliques[i].get("spec"))
        group_replicas = group_size.get(group, 1) if group else 1
        fqn = clique_fqn(pcs, name, group=group, pcs_index=pcs_replicas - 1, group_index=group_replicas - 1)
        if len(fqn) > FQN_LIMIT:
            out.add("clique-fqn-length", path, f"PodClique name {fqn!r} is over {FQN_LIMIT} characters")
        elif len(fqn) + 1 + len(str(_most(spec) - 1)) > HOSTNAME_LIMIT:
            out.add(
                "hostname-length", path, f"pod hostnames {fqn}-<index> are over {HOSTNAME_LIMIT} characters"
            )
