"""Offline admission: Grove's validating-webhook rules on a PodCliqueSet manifest, create and update.

``admit`` runs every rule of the targeted release under the operator's configuration (a
``GroveCluster``) and returns the ``Problems`` (errors, and warnings for this project's own stricter
rules); ``check_podcliqueset`` returns just the errors. It works on defaulted manifests (ours or
anyone's) that passed the CRD schema. Rules live beside it: ``cliques``, ``scaling_groups``,
``clique_names``, ``kube_syntax`` (labels, annotations, names), ``resources``, ``scheduler``,
``topology``, ``mnnvl`` and ``updates`` (what may not change on a live PodCliqueSet); they report into
``problems``.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from grove_pipelines.errors import AdmissionError
from grove_pipelines.go_duration import parse_go_duration
from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.webhook.clique_names import check_names
from grove_pipelines.grove.webhook.cliques import check_clique
from grove_pipelines.grove.webhook.fields import as_dict, as_int, as_list
from grove_pipelines.grove.webhook.kube_syntax import check_labels, is_dns_subdomain
from grove_pipelines.grove.webhook.mnnvl import check_mnnvl
from grove_pipelines.grove.webhook.problems import Problems
from grove_pipelines.grove.webhook.resources import check_resources
from grove_pipelines.grove.webhook.scaling_groups import check_groups
from grove_pipelines.grove.webhook.scheduler import check_scheduler
from grove_pipelines.grove.webhook.topology import check_topology
from grove_pipelines.grove.webhook.updates import check_update

__all__ = ["admit", "check_podcliqueset"]

_EXPLICIT = "CliqueStartupTypeExplicit"


def _check_meta(obj: dict[str, Any], out: Problems) -> str:
    meta = as_dict(obj.get("metadata"))
    check_labels(meta, "metadata", out)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        out.add("metadata-name", "metadata.name", "the PodCliqueSet needs a name")
        return ""
    if not is_dns_subdomain(name):
        out.add(
            "metadata-name",
            "metadata.name",
            f"{name!r} is not a DNS-1123 subdomain (lowercase, digits, '-', '.')",
        )
    return name


def _check_delay(template: dict[str, Any], out: Problems) -> None:
    delay = template.get("terminationDelay")
    if delay is None:  # Grove's defaulting always sets it (4h)
        return
    seconds = parse_go_duration(delay) if isinstance(delay, str) else None
    if seconds is None:
        out.add(
            "termination-delay", "spec.template.terminationDelay", f"{delay!r} is not a duration such as '4h'"
        )
    elif seconds <= 0:
        out.add("termination-delay", "spec.template.terminationDelay", "must be greater than 0")


def _check_startup(cliques: list[dict[str, Any]], out: Problems) -> None:
    """Explicit startup only: dependencies name cliques of this set and form no cycle."""
    names = {c.get("name") for c in cliques}
    graph: nx.DiGraph[str] = nx.DiGraph()
    for i, clique in enumerate(cliques):
        for j, dep in enumerate(as_list(as_dict(clique.get("spec")).get("startsAfter"))):
            if not isinstance(dep, str) or not dep:
                continue
            if dep not in names:
                out.add("starts-after-unknown", f"spec.template.cliques[{i}].spec.startsAfter[{j}]",
                        f"{dep!r} is not a clique of this PodCliqueSet")  # fmt: skip
            elif dep != clique.get("name"):
                graph.add_edge(str(clique.get("name")), dep)
    if nx.is_directed_acyclic_graph(graph):  # a topological sort: much faster than find_cycle
        return
    cycle = nx.find_cycle(graph)
    loop = " -> ".join([*(edge[0] for edge in cycle), cycle[0][0]])
    out.add("starts-after-cycle", "spec.template.cliques", f"startsAfter has a cycle: {loop}")


def admit(
    obj: dict[str, Any],
    *,
    cluster: GroveCluster | None = None,
    strict: bool = False,
    old: dict[str, Any] | None = None,
) -> Problems:
    """Every webhook problem of a defaulted PodCliqueSet; an update when ``old`` (the live object) is given."""
    cluster = cluster or GroveCluster()
    out = Problems(strict=strict)
    create = old is None
    pcs = _check_meta(obj, out)
    spec = as_dict(obj.get("spec"))
    replicas = as_int(spec.get("replicas"))
    if replicas is not None and replicas < 0:
        out.add("pcs-replicas", "spec.replicas", f"replicas must not be negative, got {replicas}")
    template = as_dict(spec.get("template"))
    cliques = [as_dict(c) for c in as_list(template.get("cliques"))]
    if not cliques:
        out.add("cliques-required", "spec.template.cliques", "a PodCliqueSet needs at least one clique")
    check_resources(template, cliques, out)
    groups, sizes, group_paths = check_groups(template, cliques, out)
    check_names(pcs, cliques, groups, group_size=sizes, group_paths=group_paths,
                pcs_replicas=max(replicas or 1, 1), out=out)  # fmt: skip
    explicit = template.get("cliqueStartupType") == _EXPLICIT
    roles: dict[str, int] = {}
    for i, clique in enumerate(cliques):
        check_clique(i, clique, grouped=clique.get("name") in groups, roles=roles,
                     explicit_startup=explicit, create=create, out=out)  # fmt: skip
    if explicit:
        _check_startup(cliques, out)
    check_scheduler(obj, cliques, cluster, out)
    _check_delay(template, out)
    if create:
        check_topology(template, tas_enabled=cluster.config.tas_enabled, bindings=cluster.bindings, out=out)
        check_mnnvl(obj, enabled=cluster.config.mnnvl_enabled, out=out)
    elif not out.items:  # Grove checks what changed only once the new object is valid on its own
        assert old is not None
        check_update(old, obj, out, cluster=cluster)
    return out


def check_podcliqueset(
    obj: dict[str, Any], *, strict: bool = False, cluster: GroveCluster | None = None
) -> list[AdmissionError]:
    """Every webhook error of a (defaulted) PodCliqueSet create; empty means admitted."""
    return admit(obj, cluster=cluster, strict=strict).sorted()
