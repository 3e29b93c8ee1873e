"""Grove's rules on DRA ``resourceClaimTemplates`` and ``resourceSharing`` at every level.

Templates: a name, unique, and at least one device request. Sharing (PodCliqueSet, scaling group and
clique level): a name, unique per list, an empty ``namespace`` when the name is an internal template,
scope ``AllReplicas`` or ``PerReplica``; a filter names at least one child, and only existing ones.
"""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.webhook.fields import as_dict, as_list
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["check_resources"]

_SCOPES = ("AllReplicas", "PerReplica")


def _templates(template: dict[str, Any], out: Problems) -> set[str]:
    names: set[str] = set()
    for i, rct in enumerate(as_dict(x) for x in as_list(template.get("resourceClaimTemplates"))):
        path = f"spec.template.resourceClaimTemplates[{i}]"
        name = rct.get("name")
        if not isinstance(name, str) or not name:
            out.add("resource-claim-template", f"{path}.name", "a template name is required")
        elif name in names:
            out.add("resource-claim-template", f"{path}.name", f"template {name!r} is defined twice")
        requests = as_list(
            as_dict(as_dict(as_dict(rct.get("templateSpec")).get("spec")).get("devices")).get("requests")
        )
        if not requests:
            out.add("resource-claim-template", f"{path}.templateSpec.spec.devices.requests",
                    "at least one device request is required")  # fmt: skip
        names.add(str(name))
    return names


def _sharing(refs: list[Any], path: str, templates: set[str], out: Problems) -> list[dict[str, Any]]:
    seen: set[str] = set()
    items = [as_dict(x) for x in refs]
    for i, ref in enumerate(items):
        name, where = ref.get("name"), f"{path}[{i}]"
        if not isinstance(name, str) or not name:
            out.add("resource-sharing", f"{where}.name", "a reference name is required")
        elif name in seen:
            out.add("resource-sharing", f"{where}.name", f"{name!r} is shared twice in this list")
        seen.add(str(name))
        if ref.get("namespace") and name and name in templates:
            out.add("resource-sharing", f"{where}.namespace",
                    f"must be empty: {name!r} is one of this PodCliqueSet's resourceClaimTemplates")  # fmt: skip
        if ref.get("scope") not in _SCOPES:
            out.add(
                "resource-sharing", f"{where}.scope", f"{ref.get('scope')!r} is not one of {list(_SCOPES)}"
            )
    return items


def _filter(ref: dict[str, Any], where: str, children: dict[str, set[str]], out: Problems) -> None:
    chosen = as_dict(ref.get("filter")) if ref.get("filter") is not None else None
    if chosen is None:
        return
    if not any(as_list(chosen.get(key)) for key in children):
        keys = " or ".join(children)
        out.add("resource-sharing", f"{where}.filter", f"a filter needs at least one {keys} entry")
    for key, known in children.items():
        for j, child in enumerate(as_list(chosen.get(key))):
            if child not in known:
                out.add("resource-sharing", f"{where}.filter.{key}[{j}]", f"{child!r} is not found")


def check_resources(template: dict[str, Any], cliques: list[dict[str, Any]], out: Problems) -> None:
    """Every template and sharing rule of the PodCliqueSet template."""
    templates = _templates(template, out)
    clique_names = {str(c.get("name")) for c in cliques}
    groups = [as_dict(g) for g in as_list(template.get("podCliqueScalingGroups"))]
    group_names = {str(g.get("name")) for g in groups}
    path = "spec.template.resourceSharing"
    for i, ref in enumerate(_sharing(as_list(template.get("resourceSharing")), path, templates, out)):
        _filter(ref, f"{path}[{i}]",
                {"childCliqueNames": clique_names, "childScalingGroupNames": group_names}, out)  # fmt: skip
    for g, group in enumerate(groups):
        path = f"spec.template.podCliqueScalingGroups[{g}].resourceSharing"
        members = {str(m) for m in as_list(group.get("cliqueNames"))}
        for i, ref in enumerate(_sharing(as_list(group.get("resourceSharing")), path, templates, out)):
            _filter(ref, f"{path}[{i}]", {"childCliqueNames": members}, out)
    for c, clique in enumerate(cliques):
        _sharing(
            as_list(clique.get("resourceSharing")),
            f"spec.template.cliques[{c}].resourceSharing",
            templates,
            out,
        )
