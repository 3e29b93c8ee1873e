"""Grove's topology-aware scheduling (TAS) rules on ``topologyConstraint`` at all three levels.

On create with TAS off (a default install) any constraint is refused. With TAS on, every constraint
must resolve a ``topologyName`` (its own, or inherited from the PodCliqueSet or its scaling group), all
to one name; that ClusterTopologyBinding must exist; every packed domain must be one of its levels;
and a parent's domain must not be narrower than a child's. On update constraints are frozen, except
moving a deprecated ``packDomain`` to the same ``pack.required``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from grove_pipelines.grove.topology_bindings import TopologyBinding
from grove_pipelines.grove.webhook.fields import as_dict, as_list
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["check_topology", "check_topology_update", "constraints"]

Constraint = tuple[str, str, dict[str, Any]]
"""(kind: ``pcs``/``group``/``clique``, field path of the constraint, the constraint)."""


def constraints(template: dict[str, Any]) -> Iterator[Constraint]:
    """Every ``topologyConstraint`` of the template with its level and path."""
    base = "spec.template"
    if template.get("topologyConstraint") is not None:
        yield "pcs", f"{base}.topologyConstraint", as_dict(template["topologyConstraint"])
    for key, kind in (("podCliqueScalingGroups", "group"), ("cliques", "clique")):
        for i, item in enumerate(as_dict(x) for x in as_list(template.get(key))):
            if item.get("topologyConstraint") is not None:
                yield kind, f"{base}.{key}[{i}].topologyConstraint", as_dict(item["topologyConstraint"])


def _name(tc: dict[str, Any] | None) -> str:
    value = as_dict(tc).get("topologyName")
    return value if isinstance(value, str) else ""


def _required(tc: dict[str, Any] | None) -> str:
    pack = as_dict(as_dict(tc).get("pack"))
    value = pack.get("required") or as_dict(tc).get("packDomain")
    return value if isinstance(value, str) else ""


def _preferred(tc: dict[str, Any] | None) -> str:
    value = as_dict(as_dict(tc).get("pack")).get("preferred")
    return value if isinstance(value, str) else ""


def _resolve(template: dict[str, Any], out: Problems) -> str:
    """The one effective topologyName (``""`` if none resolves); reports missing and conflicting names."""
    found: list[str] = []

    def effective(tc: dict[str, Any], path: str, inherited: str) -> str:
        own = _name(tc)
        if not own and not inherited:
            out.add("topology-name", f"{path}.topologyName",
                    "topologyName is required when topologyConstraint is set and cannot be inherited")  # fmt: skip
            return ""
        name = own or inherited
        found.append(name)
        return name

    pcs_tc = template.get("topologyConstraint")
    pcs_name = (
        effective(as_dict(pcs_tc), "spec.template.topologyConstraint", "") if pcs_tc is not None else ""
    )
    by_clique: dict[str, str] = {}
    for g, group in enumerate(as_dict(x) for x in as_list(template.get("podCliqueScalingGroups"))):
        if group.get("topologyConstraint") is None:
            continue
        name = effective(as_dict(group["topologyConstraint"]),
                         f"spec.template.podCliqueScalingGroups[{g}].topologyConstraint", pcs_name)  # fmt: skip
        for member in as_list(group.get("cliqueNames")):
            if name and isinstance(member, str):
                by_clique.setdefault(member, name)
    for c, clique in enumerate(as_dict(x) for x in as_list(template.get("cliques"))):
        if clique.get("topologyConstraint") is not None:
            inherited = by_clique.get(str(clique.get("name")), pcs_name)
            effective(as_dict(clique["topologyConstraint"]),
                      f"spec.template.cliques[{c}].topologyConstraint", inherited)  # fmt: skip
    names = sorted(set(found))
    if len(names) > 1:  # Grove reports it on every constraint that names a topology itself
        for _, path, tc in constraints(template):
            if _name(tc):
                out.add("topology-name", f"{path}.topologyName",
                        f"all topologyName values of a PodCliqueSet must match, found {names}")  # fmt: skip
        return ""
    return names[0] if names else ""


def _check_domains(template: dict[str, Any], domains: list[str], out: Problems) -> bool:
    ok = True
    for _, path, tc in constraints(template):
        pairs = [("packDomain", tc.get("packDomain")), *((f"pack.{k}", as_dict(tc.get("pack")).get(k))
                 for k in ("required", "preferred"))]  # fmt: skip
        for field, domain in pairs:
            if domain and domain not in domains:
                ok = False
                out.add("topology-domain", f"{path}.{field}",
                        f"topology domain {domain!r} is not a level of the binding {domains}")  # fmt: skip
    return ok


def _narrower(parent: str, child: str, domains: list[str]) -> bool:
    return parent in domains and child in domains and domains.index(parent) > domains.index(child)


def _check_hierarchy(template: dict[str, Any], domains: list[str], out: Problems) -> None:
    cliques = {str(c.get("name")): as_dict(c) for c in (as_dict(x) for x in as_list(template.get("cliques")))}
    groups = [as_dict(g) for g in as_list(template.get("podCliqueScalingGroups"))]

    def compare(parent: dict[str, Any], path: str, child: dict[str, Any], what: str) -> None:
        for pick, suffix in ((_required, ""), (_preferred, ".pack.preferred")):
            if _narrower(pick(parent), pick(child), domains):
                out.add("topology-hierarchy", f"{path}{suffix}",
                        f"domain {pick(parent)!r} is narrower than {what}'s {pick(child)!r}")  # fmt: skip

    pcs_tc = template.get("topologyConstraint")
    if pcs_tc is not None:
        for name, clique in cliques.items():
            if clique.get("topologyConstraint") is not None:
                compare(as_dict(pcs_tc), "spec.template.topologyConstraint",
                        as_dict(clique["topologyConstraint"]), f"clique {name!r}")  # fmt: skip
        for group in groups:
            if group.get("topologyConstraint") is not None:
                compare(as_dict(pcs_tc), "spec.template.topologyConstraint",
                        as_dict(group["topologyConstraint"]), f"scaling group {group.get('name')!r}")  # fmt: skip
    for g, group in enumerate(groups):
        if group.get("topologyConstraint") is None:
            continue
        for member in as_list(group.get("cliqueNames")):
            child = cliques.get(str(member))
            if child is not None and child.get("topologyConstraint") is not None:
                compare(as_dict(group["topologyConstraint"]),
                        f"spec.template.podCliqueScalingGroups[{g}].topologyConstraint",
                        as_dict(child["topologyConstraint"]), f"clique {member!r}")  # fmt: skip


def check_topology(
    template: dict[str, Any], *, tas_enabled: bool, bindings: dict[str, TopologyBinding], out: Problems
) -> None:
    """Create-time TAS rules."""
    found = list(constraints(template))
    if not found:
        return
    if not tas_enabled:
        for _, path, _tc in found:
            out.add("topology-disabled", path,
                    "topology constraints are not allowed: topology-aware scheduling is disabled in the operator")  # fmt: skip
        return
    before = len(out.items)
    name = _resolve(template, out)
    if len(out.items) > before or not name:
        return
    binding = bindings.get(name)
    if binding is None:
        out.add("topology-binding", "spec.template.topologyConstraint.topologyName",
                f"ClusterTopologyBinding {name!r} not found")  # fmt: skip
        return
    if _check_domains(template, binding.domains, out):
        _check_hierarchy(template, binding.domains, out)


def _by_name(template: dict[str, Any], key: str) -> dict[str, dict[str, Any] | None]:
    return {
        str(as_dict(x).get("name")): as_dict(x).get("topologyConstraint") for x in as_list(template.get(key))
    }


def _shape(tc: dict[str, Any] | None) -> tuple[str, str, str] | None:
    """A constraint compared the way Grove's update rule does: ``packDomain`` X equals ``pack.required`` X."""
    return None if tc is None else (_name(tc), _required(tc), _preferred(tc))


def _legacy(template: dict[str, Any]) -> bool:
    """A constraint shape from before ``topologyName`` existed: only ``packDomain``, no name anywhere."""
    found = [tc for _, _, tc in constraints(template)]
    return bool(found) and all(not _name(tc) and tc.get("packDomain") for tc in found)


def _repair(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """Adding the missing ``topologyName`` to a legacy constraint, nothing else."""
    if before is None or after is None or _name(before) or not _name(after):
        return False
    return (_required(before), _preferred(before)) == (_required(after), _preferred(after))


def check_topology_update(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    tas_enabled: bool,
    bindings: dict[str, TopologyBinding],
    out: Problems,
) -> None:
    """Constraints cannot be added, removed or changed on a live PodCliqueSet; a legacy one (``packDomain``
    only) may gain its ``topologyName``, and is then checked as on create."""
    legacy = _legacy(old)

    def allowed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
        return _shape(before) == _shape(after) or (legacy and _repair(before, after))

    before_count = len(out.items)
    before, after = old.get("topologyConstraint"), new.get("topologyConstraint")
    if not legacy and _name(as_dict(before)) != _name(as_dict(after)):
        out.add("topology-immutable", "spec.template.topologyConstraint.topologyName",
                f"the PodCliqueSet: topologyName cannot change ({_name(as_dict(before))!r} -> {_name(as_dict(after))!r})")  # fmt: skip
    elif not allowed(before, after):
        out.add("topology-immutable", "spec.template.topologyConstraint",
                "the PodCliqueSet: topologyConstraint cannot be added, removed or changed after creation")  # fmt: skip
    for key, kind in (("cliques", "clique"), ("podCliqueScalingGroups", "scaling group")):
        was = _by_name(old, key)
        for i, item in enumerate(as_dict(x) for x in as_list(new.get(key))):
            if not allowed(was.get(str(item.get("name"))), item.get("topologyConstraint")):
                out.add("topology-immutable", f"spec.template.{key}[{i}].topologyConstraint",
                        f"{kind} {item.get('name')!r}: topologyConstraint cannot be added, removed or changed "
                        "after creation")  # fmt: skip
    if legacy and len(out.items) == before_count:
        check_topology(new, tas_enabled=tas_enabled, bindings=bindings, out=out)
