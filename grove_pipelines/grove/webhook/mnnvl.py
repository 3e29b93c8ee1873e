"""Grove's Auto-MNNVL annotations (``grove.io/auto-mnnvl``, ``grove.io/mnnvl-group``) on the
PodCliqueSet and on each clique template: valid values, the operator's MNNVL switch, no contradiction
on create; neither may be added, removed or changed on update.
"""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.webhook.fields import as_dict, as_list
from grove_pipelines.grove.webhook.kube_syntax import is_dns_label
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["AUTO_MNNVL", "MNNVL_GROUP", "check_mnnvl", "check_mnnvl_update"]

AUTO_MNNVL = "grove.io/auto-mnnvl"
MNNVL_GROUP = "grove.io/mnnvl-group"
_OFF = "MNNVL is not enabled in the operator configuration: enable it or remove the annotation"


def _layers(pcs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(owner, path of the annotations map, the map) for the PodCliqueSet and each clique template, by index."""
    meta = as_dict(pcs.get("metadata"))
    layers = [("the PodCliqueSet", "metadata.annotations", as_dict(meta.get("annotations")))]
    cliques = as_list(as_dict(as_dict(pcs.get("spec")).get("template")).get("cliques"))
    for i, clique in enumerate(as_dict(c) for c in cliques):
        path = f"spec.template.cliques[{i}].annotations"
        layers.append((f"clique {clique.get('name')!r}", path, as_dict(clique.get("annotations"))))
    return layers


def _check_layer(annotations: dict[str, Any], path: str, enabled: bool, out: Problems) -> None:
    if AUTO_MNNVL in annotations:
        value = annotations[AUTO_MNNVL]
        where = f"{path}[{AUTO_MNNVL}]"
        if value not in ("enabled", "disabled"):
            out.add("mnnvl", where, f"{value!r} must be 'enabled' or 'disabled'")
        if value == "enabled" and not enabled:
            out.add("mnnvl", where, _OFF)
    if MNNVL_GROUP in annotations:
        value = annotations[MNNVL_GROUP]
        where = f"{path}[{MNNVL_GROUP}]"
        if not isinstance(value, str) or not (value == "none" or is_dns_label(value)):
            out.add("mnnvl", where, f"{value!r} must be 'none' or a DNS-1123 label")
        if not enabled:
            out.add("mnnvl", where, _OFF)
    auto = annotations.get(AUTO_MNNVL)
    if isinstance(auto, str) and auto.lower() == "disabled" and MNNVL_GROUP in annotations:
        out.add("mnnvl", path, f"{AUTO_MNNVL} is 'disabled' but {MNNVL_GROUP} assigns a group")


def check_mnnvl(pcs: dict[str, Any], *, enabled: bool, out: Problems) -> None:
    """Create-time rules on every annotation layer."""
    for _, path, layer in _layers(pcs):
        _check_layer(layer, path, enabled, out)


def check_mnnvl_update(old: dict[str, Any], new: dict[str, Any], out: Problems) -> None:
    """Both annotations are fixed at creation (cliques compared by index, as Grove does)."""
    for (_, path, before), (owner, _, after) in zip(_layers(old), _layers(new), strict=False):
        for key in (AUTO_MNNVL, MNNVL_GROUP):
            if key not in before and key not in after:
                continue
            if before.get(key) != after.get(key) or (key in before) != (key in after):
                change = "added" if key not in before else "removed" if key not in after else "changed"
                out.add(
                    "mnnvl-immutable",
                    f"{path}[{key}]",
                    f"{owner}: annotation {key} cannot be {change} after creation",
                )
