"""Waiting: until every clique of a PodCliqueSet has ``minAvailable`` ready pods, or until it is gone.

``wait_ready`` lists the PodCliques once, then follows a watch, reporting one line per clique whenever
its progress changes (ready/desired, gang scheduled or not). On timeout it looks at the pods of the
cliques that are not ready and says why: a scheduling gate still on, unschedulable, image pull
errors, and the pods' warning events.
"""

from __future__ import annotations

import time
from typing import Any

from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.errors import KubeAPIError, KubeForbiddenError, WaitTimeoutError
from grove_pipelines.kube.manifests import PART_OF, PCS_API_VERSION
from grove_pipelines.kube.preflight import Report

__all__ = ["expected_cliques", "format_duration", "progress_line", "wait_gone", "wait_ready"]

MAX_PODS_EXPLAINED = 3


def format_duration(seconds: float) -> str:
    """``1200`` -> ``20m``; ``90`` -> ``1m30s``."""
    minutes, secs = divmod(round(seconds), 60)
    return (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs or not minutes else "")


def expected_cliques(pcs: dict[str, Any]) -> list[str]:
    """The PodClique names that must be ready for the gang's minimum (grove-api.md §1.6, §5.2)."""
    name = pcs["metadata"]["name"]
    template = pcs["spec"]["template"]
    groups = template.get("podCliqueScalingGroups") or []
    grouped = {c for g in groups for c in g.get("cliqueNames") or []}
    out = []
    for i in range(pcs["spec"].get("replicas", 1)):
        out += [f"{name}-{i}-{c['name']}" for c in template.get("cliques") or [] if c["name"] not in grouped]
        for g in groups:
            for j in range(g.get("minAvailable", 1)):
                out += [f"{name}-{i}-{g['name']}-{j}-{c}" for c in g.get("cliqueNames") or []]
    return out


def _ready(pclq: dict[str, Any] | None) -> bool:
    if pclq is None:
        return False
    spec, status = pclq.get("spec") or {}, pclq.get("status") or {}
    return int(status.get("readyReplicas") or 0) >= int(spec.get("minAvailable", spec.get("replicas", 1)))


def progress_line(fqn: str, pclq: dict[str, Any] | None) -> str:
    """``rag-0-decode: 1/2 ready (minAvailable 1), gang scheduled``."""
    if pclq is None:
        return f"{fqn}: not created yet"
    spec, status = pclq.get("spec") or {}, pclq.get("status") or {}
    minimum = spec.get("minAvailable", spec.get("replicas", 1))
    scheduled, gated = (
        int(status.get("scheduledReplicas") or 0),
        int(status.get("scheduleGatedReplicas") or 0),
    )
    if scheduled >= minimum:
        gang = "gang scheduled"
    elif gated:
        gang = f"gang not scheduled ({gated} pods gated)"
    else:
        gang = "gang not scheduled"
    return f"{fqn}: {status.get('readyReplicas') or 0}/{spec.get('replicas', 0)} ready (minAvailable {minimum}), {gang}"


def _pod_reasons(client: KubeClient, pod: dict[str, Any]) -> list[str]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reasons = [f"scheduling gate {g['name']} still on" for g in spec.get("schedulingGates") or []]
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") != "SchedulingGated"
        ):
            reasons.append(f"{cond.get('reason')}: {cond.get('message', '')}".strip())
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            reasons.append(
                f"container {cs.get('name')}: {waiting.get('reason')}: {waiting.get('message', '')}".strip()
            )
    try:
        meta = pod["metadata"]
        events = client.list(
            "v1", "Event", meta["namespace"], field_selector=f"involvedObject.name={meta['name']}"
        )
        warnings = [e for e in events["items"] if e.get("type") == "Warning"]
        reasons += [f"event {e.get('reason')}: {e.get('message', '')}" for e in warnings[-2:]]
    except KubeForbiddenError:
        pass
    return reasons or [f"phase {status.get('phase', 'Unknown')}, not ready yet"]


def _explain(client: KubeClient, fqn: str, pclq: dict[str, Any] | None, namespace: str) -> str:
    if pclq is None:
        return f"{fqn}: PodClique not created (is the Grove operator running?)"
    pods = client.list("v1", "Pod", namespace, label_selector=f"grove.io/podclique={fqn}")["items"]
    waiting = [
        p
        for p in pods
        if not any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]
    head = progress_line(fqn, pclq)
    if not pods:
        return f"{head}; no pods yet"
    parts = [
        f"pod {p['metadata']['name']}: {', '.join(_pod_reasons(client, p))}"
        for p in waiting[:MAX_PODS_EXPLAINED]
    ]
    return f"{head}; " + "; ".join(parts)


def wait_ready(client: KubeClient, *, name: str, namespace: str, timeout: float, report: Report) -> None:
    """Block until every expected PodClique has ``minAvailable`` ready pods; ``WaitTimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    pcs = client.get(PCS_API_VERSION, "PodCliqueSet", name, namespace)
    expected = expected_cliques(pcs) if pcs else []
    state: dict[str, dict[str, Any]] = {}
    shown: dict[str, str] = {}

    def progress() -> bool:
        for fqn in expected:
            line = progress_line(fqn, state.get(fqn))
            if shown.get(fqn) != line:
                shown[fqn] = line
                report(line)
        return bool(expected) and all(_ready(state.get(fqn)) for fqn in expected)

    while True:
        listing = client.list(PCS_API_VERSION, "PodClique", namespace, label_selector=f"{PART_OF}={name}")
        state = {item["metadata"]["name"]: item for item in listing["items"]}
        if progress():
            return
        left = deadline - time.monotonic()
        try:
            if left > 0:
                for event in client.watch(
                    PCS_API_VERSION,
                    "PodClique",
                    namespace,
                    resource_version=listing["metadata"]["resourceVersion"],
                    label_selector=f"{PART_OF}={name}",
                    timeout_seconds=max(1, int(min(left, 60))),
                ):
                    obj = event.get("object") or {}
                    if event.get("type") == "DELETED":
                        state.pop(obj["metadata"]["name"], None)
                    elif event.get("type") in ("ADDED", "MODIFIED"):
                        state[obj["metadata"]["name"]] = obj
                    if progress():
                        return
                    if time.monotonic() >= deadline:
                        break
        except KubeAPIError as exc:
            if exc.status != 410:  # 410 Gone: our resourceVersion is too old; list again
                raise
        if time.monotonic() >= deadline:
            missing = [
                _explain(client, fqn, state.get(fqn), namespace)
                for fqn in expected
                if not _ready(state.get(fqn))
            ]
            for line in missing:
                report(f"not ready: {line}")
            raise WaitTimeoutError(
                f"timed out after {format_duration(timeout)} waiting for PodCliqueSet {namespace}/{name}: "
                + " | ".join(missing),
                not_ready=missing,
            )


def wait_gone(client: KubeClient, *, name: str, namespace: str, timeout: float, report: Report) -> None:
    """Block until the PodCliqueSet and its pods are gone (Grove's finalizers done)."""
    deadline = time.monotonic() + timeout
    delay, last = 0.1, -1
    while True:
        pcs = client.get(PCS_API_VERSION, "PodCliqueSet", name, namespace)
        pods = client.list("v1", "Pod", namespace, label_selector=f"{PART_OF}={name}")["items"]
        if pcs is None and not pods:
            return
        if len(pods) != last:
            last = len(pods)
            report(f"podcliqueset/{name}: deleting, {last} pods left")
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {format_duration(timeout)} waiting for PodCliqueSet {namespace}/{name} to be "
                f"deleted ({'still there' if pcs else 'gone'}, {len(pods)} pods left)",
                not_ready=[name],
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
