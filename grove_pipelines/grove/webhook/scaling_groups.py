"""Grove's rules on ``podCliqueScalingGroups``: names, members (existing cliques, in one group each),
counts and the autoscaler's lower bound."""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.webhook.fields import as_dict, as_int, as_list, most_replicas
from grove_pipelines.grove.webhook.kube_syntax import is_dns_label, is_dns_subdomain
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["check_groups"]


def check_groups(
    template: dict[str, Any], cliques: list[dict[str, Any]], out: Problems
) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """Rules on scaling groups; returns clique name → its group, group → the most replicas it can reach, and
    group → the field path of its name."""
    names = {c.get("name") for c in cliques}
    member_of: dict[str, str] = {}
    sizes: dict[str, int] = {}
    paths: dict[str, str] = {}
    seen: set[str] = set()
    for g, group in enumerate(as_dict(x) for x in as_list(template.get("podCliqueScalingGroups"))):
        path = f"spec.template.podCliqueScalingGroups[{g}]"
        name = group.get("name")
        if not is_dns_subdomain(name):
            out.add("scaling-group-name", f"{path}.name", f"{name!r} is not a DNS subdomain")
        elif name in seen:
            out.add("scaling-group-name", f"{path}.name", f"scaling group {name!r} is defined twice")
        elif not is_dns_label(name):
            out.project(
                "scaling-group-name",
                f"{path}.name",
                f"{name!r} is not a DNS label (it is part of pod hostnames)",
            )
        seen.add(str(name))
        sizes[str(name)] = most_replicas(group, scale_key="scaleConfig")
        paths.setdefault(str(name), f"{path}.name")
        for m, member in enumerate(as_list(group.get("cliqueNames"))):
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
        replicas, minimum = as_int(group.get("replicas")), as_int(group.get("minAvailable"))
        if replicas is not None and replicas <= 0:
            out.add(
                "scaling-group-replicas",
                f"{path}.replicas",
                f"replicas must be greater than 0, got {replicas}",
            )
        if minimum is not None and minimum <= 0:
            out.add(
                "min-available", f"{path}.minAvailable", f"minAvailable must be greater than 0, got {minimum}"
            )
        if minimum is not None and replicas is not None and minimum > replicas:
            out.add(
                "min-available",
                f"{path}.minAvailable",
                f"minAvailable ({minimum}) exceeds replicas ({replicas})",
            )
        low = as_int(as_dict(group.get("scaleConfig")).get("minReplicas"))
        if low is not None and minimum is not None and low < minimum:
            out.add("autoscaling-bounds", f"{path}.scaleConfig.minReplicas",
                    f"minReplicas ({low}) is below minAvailable ({minimum})")  # fmt: skip
    return member_of, sizes, paths
