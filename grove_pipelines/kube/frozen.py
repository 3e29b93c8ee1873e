"""What Grove freezes after creation, and which replica changes must go through ``/scale``.

Pure functions of the live and the desired PodCliqueSet (grove-api.md §1.7 and §5.3): composition
(cliques, scaling groups, roleName, minAvailable, startsAfter, scheduler, startup type, topology,
resource sharing) cannot change in place; template ``replicas`` can, but Grove only reads them when it
creates a PodClique or scaling group, so a live change is a ``/scale`` of each generated object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ScaleTarget", "frozen_changes", "scale_targets"]


def _template(pcs: dict[str, Any]) -> dict[str, Any]:
    return ((pcs.get("spec") or {}).get("template")) or {}


def _cliques(pcs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c.get("spec") or {} for c in _template(pcs).get("cliques") or []}


def _groups(pcs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in _template(pcs).get("podCliqueScalingGroups") or []}


def _min_available(spec: dict[str, Any]) -> Any:
    return spec.get("minAvailable", spec.get("replicas"))  # Grove's default: minAvailable = replicas


def _scheduler(spec: dict[str, Any]) -> str:
    return (spec.get("podSpec") or {}).get("schedulerName") or "(default)"


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def frozen_changes(live: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """One phrase per frozen field that differs, e.g. ``clique 'decode' minAvailable 1 -> 2``; empty if none."""
    changes: list[str] = []
    lt, dt = _template(live), _template(desired)
    startup = [t.get("cliqueStartupType") or "CliqueStartupTypeAnyOrder" for t in (lt, dt)]
    if startup[0] != startup[1]:
        changes.append(f"cliqueStartupType {startup[0]} -> {startup[1]}")
    lc, dc = _cliques(live), _cliques(desired)
    if added := [n for n in dc if n not in lc]:
        changes.append(f"cliques added: {_names(added)}")
    if removed := [n for n in lc if n not in dc]:
        changes.append(f"cliques removed: {_names(removed)}")
    common = [n for n in dc if n in lc]
    if startup[1] != "CliqueStartupTypeAnyOrder" and [n for n in lc if n in dc] != common:
        changes.append("clique order (it is the startup order)")
    for name in common:
        old, new = lc[name], dc[name]
        pairs = {
            "roleName": (old.get("roleName"), new.get("roleName")),
            "minAvailable": (_min_available(old), _min_available(new)),
            "startsAfter": (sorted(old.get("startsAfter") or []), sorted(new.get("startsAfter") or [])),
            "schedulerName": (_scheduler(old), _scheduler(new)),
        }
        changes += [f"clique {name!r} {field} {a} -> {b}" for field, (a, b) in pairs.items() if a != b]
    lg, dg = _groups(live), _groups(desired)
    if added := [n for n in dg if n not in lg]:
        changes.append(f"scaling groups added: {_names(added)}")
    if removed := [n for n in lg if n not in dg]:
        changes.append(f"scaling groups removed: {_names(removed)}")
    for name in (n for n in dg if n in lg):
        old, new = lg[name], dg[name]
        if sorted(old.get("cliqueNames") or []) != sorted(new.get("cliqueNames") or []):
            changes.append(
                f"scaling group {name!r} cliqueNames {old.get('cliqueNames')} -> {new.get('cliqueNames')}"
            )
        if old.get("minAvailable", 1) != new.get("minAvailable", 1):
            changes.append(
                f"scaling group {name!r} minAvailable {old.get('minAvailable', 1)} -> "
                f"{new.get('minAvailable', 1)}"
            )
    for field in ("topologyConstraint", "resourceSharing", "resourceClaimTemplates"):
        if lt.get(field) != dt.get(field):
            changes.append(f"template {field}")
    return changes


@dataclass(frozen=True)
class ScaleTarget:
    """One generated object to scale: ``kind`` PodClique or PodCliqueScalingGroup, its name, the new count."""

    kind: str
    name: str
    replicas: int
    current: int


def scale_targets(
    live: dict[str, Any], desired: dict[str, Any], children: list[dict[str, Any]]
) -> list[ScaleTarget]:
    """The ``/scale`` calls that carry template replica changes to the live PodCliques and scaling groups.

    ``children`` are the live PodCliques and PodCliqueScalingGroups of the set. Only templates whose
    replicas changed are considered (a clique scaled by hand or by an HPA is left alone otherwise), and
    only generated objects whose ``spec.replicas`` differs from the new value are scaled.
    """
    pcs = live["metadata"]["name"]
    lc, dc = _cliques(live), _cliques(desired)
    lg, dg = _groups(live), _groups(desired)
    grouped = {c: g for g, group in dg.items() for c in group.get("cliqueNames") or []}
    patterns: list[tuple[str, re.Pattern[str], int]] = []
    for name, spec in dc.items():
        if (
            name in lc
            and spec.get("replicas") != lc[name].get("replicas")
            and spec.get("replicas") is not None
        ):
            middle = rf"{re.escape(grouped[name])}-\d+-" if name in grouped else ""
            patterns.append(
                (
                    "PodClique",
                    re.compile(rf"{re.escape(pcs)}-\d+-{middle}{re.escape(name)}"),
                    spec["replicas"],
                )
            )
    for name, group in dg.items():
        if name in lg and group.get("replicas", 1) != lg[name].get("replicas", 1):
            patterns.append(
                (
                    "PodCliqueScalingGroup",
                    re.compile(rf"{re.escape(pcs)}-\d+-{re.escape(name)}"),
                    group.get("replicas", 1),
                )
            )
    targets = []
    for child in children:
        name, kind = child["metadata"]["name"], child.get("kind", "")
        current = (child.get("spec") or {}).get("replicas")
        for want_kind, pattern, replicas in patterns:
            if kind == want_kind and pattern.fullmatch(name) and current != replicas:
                targets.append(ScaleTarget(kind, name, replicas, current if isinstance(current, int) else 0))
    return sorted(targets, key=lambda t: (t.kind, t.name))
