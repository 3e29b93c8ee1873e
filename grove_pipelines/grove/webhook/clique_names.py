"""Clique names against Grove's 45-character budget, and this project's rules on them: DNS labels, no
name a suffix of another, PodClique names and pod hostnames within Kubernetes' limits."""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.names import FQN_LIMIT, HOSTNAME_LIMIT, NAME_BUDGET, clique_fqn
from grove_pipelines.grove.webhook.fields import as_dict, most_replicas
from grove_pipelines.grove.webhook.kube_syntax import is_dns_label
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["check_names"]


def check_names(
    pcs: str,
    cliques: list[dict[str, Any]],
    groups: dict[str, str],
    *,
    group_size: dict[str, int],
    group_paths: dict[str, str],
    pcs_replicas: int,
    out: Problems,
) -> None:
    """Grove's 45-character name budget; the project's DNS-label, suffix, FQN and hostname rules."""
    names: list[str] = [c["name"] if isinstance(c.get("name"), str) else "" for c in cliques]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    for i, name in enumerate(names):
        path = f"spec.template.cliques[{i}].name"
        if not name:
            continue
        group = groups.get(name)
        used = len(pcs) + len(group or "") + len(name)
        if used > NAME_BUDGET:
            parts = f"{pcs!r} + {group!r} + {name!r}" if group else f"{pcs!r} + {name!r}"
            where = group_paths.get(group, path) if group else path  # Grove names the group for its members
            out.add(
                "name-budget", where, f"{parts} is {used} characters, over Grove's budget of {NAME_BUDGET}"
            )
            continue
        if not is_dns_label(name):
            out.project("clique-name", path, f"{name!r} is not a DNS label (it is part of pod hostnames)")
            continue
        for k in range(1, len(name)):
            j = index.get(name[k:])
            if j is not None:
                out.project("clique-name-suffix", f"spec.template.cliques[{j}].name",
                            f"clique name {names[j]!r} is a suffix of {name!r} (cliques[{i}]): Grove would mix up their templates")  # fmt: skip
        spec = as_dict(cliques[i].get("spec"))
        group_replicas = group_size.get(group, 1) if group else 1
        fqn = clique_fqn(pcs, name, group=group, pcs_index=pcs_replicas - 1, group_index=group_replicas - 1)
        if len(fqn) > FQN_LIMIT:
            out.project("clique-fqn-length", path, f"PodClique name {fqn!r} is over {FQN_LIMIT} characters")
        elif len(fqn) + 1 + len(str(most_replicas(spec) - 1)) > HOSTNAME_LIMIT:
            out.project(
                "hostname-length", path, f"pod hostnames {fqn}-<index> are over {HOSTNAME_LIMIT} characters"
            )
