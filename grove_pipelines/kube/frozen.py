"""What Grove freezes after creation, and which replica changes must go through ``/scale``.

Pure functions of the live and the desired PodCliqueSet. ``frozen_changes`` asks Grove's own update
rules (``grove_pipelines.grove.webhook.updates``, the same ones ``validate --old`` applies) after both
objects are made what Grove compares — the stored form, with CRD and Grove defaults — so composition,
scheduler, startup type, topology at every level, resource sharing at every level and the MNNVL
annotations are all covered. Template ``replicas`` can change, but Grove only reads them when it
creates a PodClique or scaling group, so a live change is a ``/scale`` of each generated object
(grove-api.md §1.7 and §5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.validate import load_crds, prepare
from grove_pipelines.grove.webhook.problems import Problems
from grove_pipelines.grove.webhook.updates import check_update

__all__ = ["ScaleTarget", "frozen_changes", "scale_targets"]

_API = "grove.io/v1alpha1"


def _template(pcs: dict[str, Any]) -> dict[str, Any]:
    return ((pcs.get("spec") or {}).get("template")) or {}


def _cliques(pcs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c.get("spec") or {} for c in _template(pcs).get("cliques") or []}


def _groups(pcs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["name"]: g for g in _template(pcs).get("podCliqueScalingGroups") or []}


def _stored(pcs: dict[str, Any]) -> dict[str, Any]:
    """``pcs`` as Grove stores it: CRD defaults, then Grove's defaulting webhook."""
    crd = load_crds()[("grove.io", "PodCliqueSet")]
    return prepare(
        {**pcs, "apiVersion": pcs.get("apiVersion") or _API, "kind": "PodCliqueSet"}, crd, defaults=True
    )


def frozen_changes(
    live: dict[str, Any], desired: dict[str, Any], *, cluster: GroveCluster | None = None
) -> list[str]:
    """One phrase per change Grove's webhook refuses on update, e.g.
    ``clique 'decode': minAvailable is immutable (1 -> 2)``; empty if none."""
    out = Problems()
    check_update(_stored(live), _stored(desired), out, cluster=cluster)
    return [problem.detail for problem in out.items]


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
