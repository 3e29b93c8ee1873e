"""Offline admission: Grove's validating-webhook rules on a PodCliqueSet manifest (grove-api.md §0–§1.7).

``check_podcliqueset`` returns every problem, each an ``AdmissionError`` with a rule name and a field
path; it works on plain manifests (ours or anyone's) and tolerates malformed input, which the CRD
schema check reports. Rules on the whole set live here; per-clique and per-group rules in
``grove_pipelines.grove.admission_parts``. ``strict=True`` adds the compiler's own promises
(explicit ``roleName``/``replicas``/``minAvailable``, no ``GROVE_*`` env vars).
"""

from __future__ import annotations

import re
from typing import Any

import networkx as nx

from grove_pipelines.errors import AdmissionError
from grove_pipelines.grove.admission_parts import (
    Problems,
    as_dict,
    as_int,
    as_list,
    check_clique,
    check_groups,
    check_names,
)

__all__ = ["check_podcliqueset", "parse_duration"]

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """A Go duration (``"1h30m"``, ``"4h"``, ``"0"``) in seconds; ``None`` if it is not one."""
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def _check_meta(obj: dict[str, Any], out: Problems) -> str:
    meta = as_dict(obj.get("metadata"))
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        out.add("metadata-name", "metadata.name", "the PodCliqueSet needs a name")
        return ""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        out.add(
            "metadata-name",
            "metadata.name",
            f"{name!r} is not a DNS-1123 subdomain (lowercase, digits, '-', '.')",
        )
    return name


def _check_template(template: dict[str, Any], out: Problems) -> None:
    delay = template.get("terminationDelay")
    if delay is not None:
        seconds = parse_duration(delay) if isinstance(delay, str) else None
        if seconds is None:
            out.add(
                "termination-delay",
                "spec.template.terminationDelay",
                f"{delay!r} is not a duration such as '4h'",
            )
        elif seconds <= 0:
            out.add("termination-delay", "spec.template.terminationDelay", "must be greater than 0")
    names = set()
    for path, node in _topology_constraints(template):
        name = node.get("topologyName")
        if name:
            names.add(name)
        for key in ("required", "preferred"):
            domain = as_dict(node.get("pack")).get(key)
            if domain is not None and (
                not isinstance(domain, str) or not re.match(r"^[a-z][a-z0-9-]{0,62}$", domain)
            ):
                out.add("topology-domain", f"{path}.pack.{key}", f"{domain!r} is not a topology domain")
    if len(names) > 1:
        out.add("topology-name", "spec.template", f"one topologyName per PodCliqueSet, found {sorted(names)}")


def _topology_constraints(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    base = "spec.template"
    if isinstance(template.get("topologyConstraint"), dict):
        found.append((f"{base}.topologyConstraint", template["topologyConstraint"]))
    for key in ("cliques", "podCliqueScalingGroups"):
        for i, item in enumerate(as_list(template.get(key))):
            tc = as_dict(item).get("topologyConstraint")
            if isinstance(tc, dict):
                found.append((f"{base}.{key}[{i}].topologyConstraint", tc))
    return found


def _check_startup(cliques: list[dict[str, Any]], out: Problems) -> None:
    names = {c.get("name") for c in cliques}
    graph: nx.DiGraph[str] = nx.DiGraph()
    for i, clique in enumerate(cliques):
        name = clique.get("name")
        after = as_list(as_dict(clique.get("spec")).get("startsAfter"))
        path = f"spec.template.cliques[{i}].spec.startsAfter"
        seen = set()
        for j, dep in enumerate(after):
            if dep == name:
                out.add("starts-after-self", f"{path}[{j}]", f"clique {name!r} cannot start after itself")
            elif dep not in names:
                out.add(
                    "starts-after-unknown", f"{path}[{j}]", f"{dep!r} is not a clique of this PodCliqueSet"
                )
            elif dep in seen:
                out.add("starts-after-duplicate", f"{path}[{j}]", f"{dep!r} is listed twice")
            else:
                graph.add_edge(str(name), str(dep))
            seen.add(dep)
    if nx.is_directed_acyclic_graph(graph):  # a topological sort: much faster than find_cycle
        return
    cycle = nx.find_cycle(graph)
    loop = " -> ".join([*(edge[0] for edge in cycle), cycle[0][0]])
    out.add("starts-after-cycle", "spec.template.cliques", f"startsAfter has a cycle: {loop}")


def _check_scheduler(cliques: list[dict[str, Any]], template: dict[str, Any], out: Problems) -> None:
    schedulers: dict[str, int] = {}
    for i, clique in enumerate(cliques):
        pod = as_dict(as_dict(clique.get("spec")).get("podSpec"))
        schedulers.setdefault(str(pod.get("schedulerName") or ""), i)
    if len(schedulers) > 1:
        shown = sorted(s or "(empty: operator default)" for s in schedulers)
        last = max(schedulers.values())
        out.add("scheduler-name", f"spec.template.cliques[{last}].spec.podSpec.schedulerName",
                f"all cliques must use one scheduler, found {shown}")  # fmt: skip
    if "kai-scheduler" in schedulers:
        queues = {as_dict(c.get("labels")).get("kai.scheduler/queue") or as_dict(c.get("annotations")).get(
            "kai.scheduler/queue") for c in cliques}  # fmt: skip
        if None in queues or len(queues) > 1:
            out.add("kai-queue", "spec.template.cliques",
                    "with kai-scheduler every clique needs the same kai.scheduler/queue label")  # fmt: skip


def check_podcliqueset(obj: dict[str, Any], *, strict: bool = False) -> list[AdmissionError]:
    """Every webhook-rule problem of a (defaulted) PodCliqueSet manifest; empty means admitted."""
    out = Problems()
    pcs = _check_meta(obj, out)
    spec = as_dict(obj.get("spec"))
    replicas = as_int(spec.get("replicas"))
    if strict and "replicas" not in spec:
        out.add(
            "explicit-fields", "spec.replicas", "set replicas explicitly (the CRD default 0 creates nothing)"
        )
    elif replicas is not None and replicas <= 0:
        out.add(
            "pcs-replicas",
            "spec.replicas",
            f"replicas is {replicas}: a PodCliqueSet with 0 replicas creates nothing",
        )
    template = as_dict(spec.get("template"))
    cliques = [as_dict(c) for c in as_list(template.get("cliques"))]
    if not cliques:
        out.add("cliques-required", "spec.template.cliques", "a PodCliqueSet needs at least one clique")
    groups, sizes = check_groups(template, cliques, out)
    check_names(pcs, cliques, groups, group_size=sizes, pcs_replicas=max(replicas or 1, 1), out=out)
    roles: dict[str, int] = {}
    for i, clique in enumerate(cliques):
        check_clique(i, clique, grouped=clique.get("name") in groups, roles=roles, strict=strict, out=out)
    _check_startup(cliques, out)
    _check_scheduler(cliques, template, out)
    _check_template(template, out)
    return out.sorted()
