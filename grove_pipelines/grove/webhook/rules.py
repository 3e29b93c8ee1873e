"""Per-clique, per-scaling-group and naming rules of Grove's validating webhook (used by ``admission``).

Rules Grove has are errors. Rules only this project has (clique names that are DNS labels and not
suffixes of each other, PodClique and hostname lengths, a non-empty ``roleName``, no ``GROVE_*``
variables) are ``Problems.project``: errors for the compiler's own output (``strict``), warnings on
anyone else's manifest, so ``validate`` never refuses what Grove admits.
"""

from __future__ import annotations

import re
from typing import Any

from grove_pipelines.errors import AdmissionError
from grove_pipelines.grove.names import FQN_LIMIT, HOSTNAME_LIMIT, NAME_BUDGET, clique_fqn

__all__ = [
    "Problems",
    "as_dict",
    "as_int",
    "as_list",
    "check_clique",
    "check_groups",
    "check_labels",
    "check_names",
    "is_dns_subdomain",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ANNOTATIONS_BYTES = 256 * 1024


class Problems:
    """Collects errors and warnings; ``strict`` turns the project's own rules into errors."""

    def __init__(self, *, strict: bool = False) -> None:
        self.items: list[AdmissionError] = []
        self.warnings: list[AdmissionError] = []
        self.strict = strict

    def add(self, rule: str, path: str, message: str) -> None:
        self.items.append(AdmissionError(message, rule=rule, path=path))

    def project(self, rule: str, path: str, message: str) -> None:
        """A rule of this project, not of Grove: an error in strict mode, else a warning."""
        target = self.items if self.strict else self.warnings
        target.append(AdmissionError(message, rule=rule, path=path))

    def sorted(self) -> list[AdmissionError]:
        return sorted(self.items, key=lambda p: p.path)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def is_dns_subdomain(name: Any) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or not is_dns_subdomain(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED.match(name))


def check_labels(meta: dict[str, Any], path: str, out: Problems) -> None:
    """Kubernetes' label and annotation syntax (``ValidateLabels``/``ValidateAnnotations``)."""
    for key, value in as_dict(meta.get("labels")).items():
        if not _qualified_name(str(key)):
            out.add("label", f"{path}.labels[{key}]", f"{key!r} is not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or (value and not _QUALIFIED.match(value)):
            out.add("label", f"{path}.labels[{key}]", f"{value!r} is not a valid label value")
    annotations = as_dict(meta.get("annotations"))
    for key in annotations:
        if not _qualified_name(str(key).lower()):
            out.add("annotation", f"{path}.annotations[{key}]", f"{key!r} is not a valid annotation key")
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > _ANNOTATIONS_BYTES:
        out.add("annotation", f"{path}.annotations", f"annotations are {size} bytes, over 256 KiB")


def _check_clique_scale(
    scale: dict[str, Any], *, replicas: int | None, minimum: int | None, path: str, out: Problems
) -> None:
    low, high = as_int(scale.get("minReplicas")), as_int(scale.get("maxReplicas"))
    if low is None:  # Grove's defaulting always sets it (= replicas)
        low = replicas
    if low is None:
        return
    if minimum is not None and low < minimum:
        out.add(
            "autoscaling-bounds",
            f"{path}.minReplicas",
            f"minReplicas ({low}) is below minAvailable ({minimum})",
        )
    if high is not None and high < low:
        out.add(
            "autoscaling-bounds", f"{path}.maxReplicas", f"maxReplicas ({high}) is below minReplicas ({low})"
        )
    if high is not None and replicas is not None and high < replicas:
        out.add(
            "autoscaling-bounds",
            f"{path}.maxReplicas",
            f"maxReplicas ({high}) is below replicas ({replicas})",
        )


def _check_pod(pod: dict[str, Any], *, path: str, create: bool, out: Problems) -> None:
    if create:
        if pod.get("topologySpreadConstraints") is not None:
            out.add("pod-spec-forbidden", f"{path}.topologySpreadConstraints",
                    "topologySpreadConstraints must not be set (Grove places the pods)")  # fmt: skip
        if pod.get("nodeName"):
            out.add(
                "pod-spec-forbidden", f"{path}.nodeName", "nodeName must not be set (Grove places the pods)"
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
                elif name.startswith("GROVE_"):
                    out.project(
                        "env-name-reserved",
                        where,
                        f"{name!r}: GROVE_* variables belong to the Grove operator",
                    )
                if isinstance(name, str):
                    seen.add(name)


def _check_starts_after(spec: dict[str, Any], name: Any, path: str, out: Problems) -> None:
    seen: set[Any] = set()
    for j, dep in enumerate(as_list(spec.get("startsAfter"))):
        where = f"{path}.startsAfter[{j}]"
        if not dep:
            out.add("starts-after-empty", where, "a clique dependency must not be empty")
        elif dep == name:
            out.add("starts-after-self", where, f"clique {name!r} cannot start after itself")
        if dep in seen:
            out.add("starts-after-duplicate", where, f"{dep!r} is listed twice")
        seen.add(dep if isinstance(dep, str) else repr(dep))


def check_clique(
    i: int,
    clique: dict[str, Any],
    *,
    grouped: bool,
    roles: dict[str, int],
    explicit_startup: bool,
    create: bool,
    out: Problems,
) -> None:
    """Rules on one clique template: name, labels, roleName, counts, dependencies, autoscaling, pod spec."""
    path = f"spec.template.cliques[{i}]"
    spec = as_dict(clique.get("spec"))
    name = clique.get("name")
    if not isinstance(name, str) or not name:
        out.add("clique-name", f"{path}.name", "the clique needs a name")
    elif not is_dns_subdomain(name):
        out.add("clique-name", f"{path}.name", f"{name!r} is not a DNS subdomain")
    check_labels(clique, path, out)
    if out.strict:
        for field in ("roleName", "replicas", "minAvailable"):
            if field not in spec:
                out.add(
                    "explicit-fields",
                    f"{path}.spec.{field}",
                    f"set {field} explicitly (Grove's default is a trap)",
                )
    role = spec.get("roleName")
    if not isinstance(role, str) or not role:
        out.project("role-name", f"{path}.spec.roleName", "roleName is empty: two such cliques collide")
    if isinstance(role, str):
        if role in roles:
            out.add(
                "role-name-unique",
                f"{path}.spec.roleName",
                f"roleName {role!r} is also used by cliques[{roles[role]}]",
            )
        else:
            roles[role] = i
    replicas, minimum = as_int(spec.get("replicas")), as_int(spec.get("minAvailable"))
    if replicas is not None and replicas <= 0:
        out.add(
            "clique-replicas", f"{path}.spec.replicas", f"replicas must be greater than 0, got {replicas}"
        )
    if minimum is not None:  # Grove's defaulting always sets it (= the submitted replicas)
        if minimum <= 0:
            out.add(
                "min-available",
                f"{path}.spec.minAvailable",
                f"minAvailable must be greater than 0, got {minimum}",
            )
        if replicas is not None and minimum > replicas:
            out.add(
                "min-available",
                f"{path}.spec.minAvailable",
                f"minAvailable ({minimum}) exceeds replicas ({replicas})",
            )
    if explicit_startup:
        _check_starts_after(spec, name, f"{path}.spec", out)
    scale = spec.get("autoScalingConfig")
    if isinstance(scale, dict):
        if grouped:
            out.add("scaling-group-autoscaling", f"{path}.spec.autoScalingConfig",
                    "a clique in a scaling group cannot autoscale on its own (use the group's scaleConfig)")  # fmt: skip
        _check_clique_scale(
            scale, replicas=replicas, minimum=minimum, path=f"{path}.spec.autoScalingConfig", out=out
        )
    _check_pod(as_dict(spec.get("podSpec")), path=f"{path}.spec.podSpec", create=create, out=out)


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
        elif not _DNS_LABEL.match(str(name)):
            out.project(
                "scaling-group-name",
                f"{path}.name",
                f"{name!r} is not a DNS label (it is part of pod hostnames)",
            )
        seen.add(str(name))
        sizes[str(name)] = _most(group, scale_key="scaleConfig")
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
        if not _DNS_LABEL.match(name):
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
        elif len(fqn) + 1 + len(str(_most(spec) - 1)) > HOSTNAME_LIMIT:
            out.project(
                "hostname-length", path, f"pod hostnames {fqn}-<index> are over {HOSTNAME_LIMIT} characters"
            )
