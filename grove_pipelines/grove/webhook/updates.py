"""What Grove's webhook refuses to change on a live PodCliqueSet (``ValidateUpdate``).

Frozen: the set of cliques and their order when startup is InOrder/Explicit, each clique's
``roleName``, ``minAvailable``, ``startsAfter``, ``podSpec.schedulerName`` and ``resourceSharing``;
``cliqueStartupType``; the set of scaling groups and each one's ``cliqueNames``, ``minAvailable`` and
``resourceSharing``; the template's ``resourceClaimTemplates`` and ``resourceSharing``; topology
constraints at every level; the Auto-MNNVL annotations. ``validate --old`` and ``deploy``'s frozen-change
check both use ``check_update``; both objects must already be defaulted as Grove stores them.
"""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.webhook.fields import as_dict, as_list
from grove_pipelines.grove.webhook.mnnvl import check_mnnvl_update
from grove_pipelines.grove.webhook.problems import Problems
from grove_pipelines.grove.webhook.topology import check_topology_update

__all__ = ["check_update"]

_ORDERED = ("CliqueStartupTypeInOrder", "CliqueStartupTypeExplicit")
_CLIQUE_FIELDS = ("roleName", "minAvailable", "startsAfter")
_GROUP_FIELDS = ("cliqueNames", "minAvailable", "resourceSharing")


def _template(pcs: dict[str, Any]) -> dict[str, Any]:
    return as_dict(as_dict(pcs.get("spec")).get("template"))


def _immutable(before: Any, after: Any, path: str, out: Problems, *, owner: str = "the PodCliqueSet") -> None:
    if before != after:
        field = path.rpartition(".")[2]
        out.add("immutable", path, f"{owner}: {field} is immutable ({before!r} -> {after!r})")


def _check_cliques(old: dict[str, Any], new: dict[str, Any], out: Problems) -> None:
    was = [as_dict(c) for c in as_list(old.get("cliques"))]
    now = [as_dict(c) for c in as_list(new.get("cliques"))]
    if len(was) != len(now):
        out.add(
            "composition",
            "spec.template.cliques",
            f"the PodCliqueSet: cliques cannot be added or removed ({len(was)} -> {len(now)})",
        )
    index = {c.get("name"): (i, c) for i, c in enumerate(was)}
    ordered = new.get("cliqueStartupType") in _ORDERED
    for i, clique in enumerate(now):
        name, path = clique.get("name"), f"spec.template.cliques[{i}]"
        if name not in index:
            out.add("composition", f"{path}.name", f"clique {name!r} is new: the set of cliques is fixed")
            continue
        j, before = index[name]
        if ordered and i != j:
            out.add(
                "clique-order",
                path,
                f"clique {name!r} moved from position {j} to {i}: the startup order is fixed",
            )
        old_spec, new_spec = as_dict(before.get("spec")), as_dict(clique.get("spec"))
        owner = f"clique {name!r}"
        for field in _CLIQUE_FIELDS:
            _immutable(old_spec.get(field), new_spec.get(field), f"{path}.spec.{field}", out, owner=owner)
        _immutable(as_dict(old_spec.get("podSpec")).get("schedulerName") or "",
                   as_dict(new_spec.get("podSpec")).get("schedulerName") or "",
                   f"{path}.spec.podSpec.schedulerName", out, owner=owner)  # fmt: skip
        _immutable(before.get("resourceSharing"), clique.get("resourceSharing"), f"{path}.resourceSharing", out,
                   owner=owner)  # fmt: skip


def _check_groups(old: dict[str, Any], new: dict[str, Any], out: Problems) -> None:
    was = {as_dict(g).get("name"): as_dict(g) for g in as_list(old.get("podCliqueScalingGroups"))}
    now = [as_dict(g) for g in as_list(new.get("podCliqueScalingGroups"))]
    if len(was) != len(now):
        out.add("composition", "spec.template.podCliqueScalingGroups",
                f"the PodCliqueSet: scaling groups cannot be added or removed ({len(was)} -> {len(now)})")  # fmt: skip
        return
    for g, group in enumerate(now):
        name, path = group.get("name"), f"spec.template.podCliqueScalingGroups[{g}]"
        if name not in was:
            out.add(
                "composition", f"{path}.name", f"scaling group {name!r} is new: the set of groups is fixed"
            )
            continue
        for field in _GROUP_FIELDS:
            _immutable(
                was[name].get(field),
                group.get(field),
                f"{path}.{field}",
                out,
                owner=f"scaling group {name!r}",
            )


def check_update(
    old: dict[str, Any], new: dict[str, Any], out: Problems, *, cluster: GroveCluster | None = None
) -> None:
    """Every change from ``old`` (live) to ``new`` that Grove refuses."""
    cluster = cluster or GroveCluster()
    before, after = _template(old), _template(new)
    _check_cliques(before, after, out)
    _immutable(
        before.get("cliqueStartupType"),
        after.get("cliqueStartupType"),
        "spec.template.cliqueStartupType",
        out,
    )
    _check_groups(before, after, out)
    check_topology_update(
        before, after, tas_enabled=cluster.config.tas_enabled, bindings=cluster.bindings, out=out
    )
    for field in ("resourceClaimTemplates", "resourceSharing"):
        _immutable(before.get(field), after.get(field), f"spec.template.{field}", out)
    check_mnnvl_update(old, new, out)
