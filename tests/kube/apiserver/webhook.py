"""A sliver of Grove's PodCliqueSet webhooks: the defaults it fills and the composition it freezes.

Only what the deploy path meets: ``minAvailable`` defaulted from ``replicas``, ``terminationDelay``
4h, and the refusal to change frozen fields on update (grove-api.md §1.7). A double, not Grove.
"""

from __future__ import annotations

from typing import Any

__all__ = ["grove_admit"]


def _default(pcs: dict[str, Any]) -> None:
    template = (pcs.get("spec") or {}).get("template") or {}
    template.setdefault("terminationDelay", "4h")
    template.setdefault("headlessServiceConfig", {"publishNotReadyAddresses": True})
    for clique in template.get("cliques") or []:
        spec = clique.get("spec") or {}
        spec.setdefault("minAvailable", spec.get("replicas", 1))


def _frozen(template: dict[str, Any]) -> dict[str, Any]:
    cliques = {c["name"]: c.get("spec") or {} for c in template.get("cliques") or []}
    return {
        "cliqueStartupType": template.get("cliqueStartupType", "CliqueStartupTypeAnyOrder"),
        "cliques": {
            n: (
                s.get("roleName"),
                s.get("minAvailable"),
                sorted(s.get("startsAfter") or []),
                (s.get("podSpec") or {}).get("schedulerName", ""),
            )
            for n, s in cliques.items()
        },
        "groups": {
            g["name"]: (sorted(g.get("cliqueNames") or []), g.get("minAvailable", 1))
            for g in template.get("podCliqueScalingGroups") or []
        },
    }


def grove_admit(kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> str | None:
    """Apply Grove's defaults to a PodCliqueSet; the denial message when an update touches frozen fields."""
    if kind != "PodCliqueSet":
        return None
    _default(obj)
    if old is None:
        return None
    before = _frozen((old.get("spec") or {}).get("template") or {})
    after = _frozen((obj.get("spec") or {}).get("template") or {})
    changed = sorted(k for k in before if before[k] != after[k])
    if changed:
        return f"spec.template: Forbidden: field is immutable: {', '.join(changed)}"
    return None
