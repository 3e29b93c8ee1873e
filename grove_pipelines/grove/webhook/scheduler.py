"""Grove's scheduler rules: one resolved scheduler per PodCliqueSet, enabled in the operator, and the
backend's own checks (KAI queue, Volcano and LPX refuse topology constraints).

An empty ``podSpec.schedulerName`` resolves to the operator's default profile before names are
compared, so ``""`` next to ``default-scheduler`` is one scheduler on a default install.
"""

from __future__ import annotations

from typing import Any

from grove_pipelines.grove.cluster import GroveCluster
from grove_pipelines.grove.webhook.fields import as_dict
from grove_pipelines.grove.webhook.problems import Problems

__all__ = ["KAI_QUEUE", "check_scheduler", "scheduler_names"]

KAI_QUEUE = "kai.scheduler/queue"
_NO_TOPOLOGY = {"volcano", "lpx-scheduler"}
_PATH = "spec.template.cliques.spec.podSpec.schedulerName"


def scheduler_names(cliques: list[dict[str, Any]]) -> list[str]:
    """Each clique's ``podSpec.schedulerName`` as written (``""`` when unset)."""
    out = []
    for clique in cliques:
        name = as_dict(as_dict(clique.get("spec")).get("podSpec")).get("schedulerName")
        out.append(name if isinstance(name, str) else "")
    return out


def _queue(meta: dict[str, Any]) -> str:
    """KAI's lookup: the label first, then the annotation."""
    label = as_dict(meta.get("labels")).get(KAI_QUEUE)
    if isinstance(label, str) and label:
        return label
    annotation = as_dict(meta.get("annotations")).get(KAI_QUEUE)
    return annotation if isinstance(annotation, str) else ""


def _check_kai_queue(pcs: dict[str, Any], cliques: list[dict[str, Any]], out: Problems) -> None:
    own = _queue(as_dict(pcs.get("metadata")))
    per_clique = {str(c.get("name")): q for c in cliques if (q := _queue(c))}
    if own:
        for name, queue in per_clique.items():
            if queue != own:
                out.add("kai-queue", "spec",
                        f"KAI queue on the PodCliqueSet is {own!r} but clique {name!r} sets {queue!r}")  # fmt: skip
        return
    queues = sorted(set(per_clique.values()))
    if not queues:
        out.add("kai-queue", "spec",
                f"kai-scheduler needs a {KAI_QUEUE} label or annotation on the PodCliqueSet or its cliques")  # fmt: skip
    elif len(queues) > 1:
        out.add("kai-queue", "spec", f"the cliques name different KAI queues: {queues}")


def _has_topology(template: dict[str, Any]) -> bool:
    if template.get("topologyConstraint") is not None:
        return True
    items = [*(template.get("cliques") or []), *(template.get("podCliqueScalingGroups") or [])]
    return any(isinstance(i, dict) and i.get("topologyConstraint") is not None for i in items)


def check_scheduler(
    pcs: dict[str, Any], cliques: list[dict[str, Any]], cluster: GroveCluster, out: Problems
) -> None:
    """All cliques resolve to one enabled scheduler, and that backend accepts the PodCliqueSet."""
    if not cliques:
        return
    config = cluster.config
    resolved = list(dict.fromkeys(n or config.default_scheduler for n in scheduler_names(cliques)))
    if len(resolved) > 1:
        out.add("scheduler-name", _PATH, f"all cliques must use one scheduler, found {resolved}")
    backend = resolved[0]
    if backend not in config.enabled_schedulers:
        enabled = sorted(config.enabled_schedulers)
        out.add("scheduler-enabled", _PATH,
                f"scheduler {backend!r} is not enabled in the operator configuration (enabled: {enabled})")  # fmt: skip
        return
    if backend == "kai-scheduler" and cluster.release.kai_queue_required:
        _check_kai_queue(pcs, cliques, out)
    template = as_dict(as_dict(pcs.get("spec")).get("template"))
    if backend in _NO_TOPOLOGY and _has_topology(template):
        out.add("scheduler-topology", "spec", f"the {backend} backend does not support topologyConstraint")
