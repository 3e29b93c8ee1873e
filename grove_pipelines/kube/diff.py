"""``diff``: what a deploy would change, as a unified diff of the fields grove-pipelines manages.

The right side is the server's own answer to a dry-run apply (so its defaulting and normalisation do
not show up as changes); both sides are cut down to the fields our field manager owns before and
after. A PodCliqueSet whose frozen composition changes cannot be dry-run applied (Grove's webhook
refuses it), so there the applied configuration itself is the right side, and a note says why.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel

from grove_pipelines import yamlio
from grove_pipelines.kube.client import FIELD_MANAGER, KubeClient
from grove_pipelines.kube.frozen import frozen_changes, scale_targets
from grove_pipelines.kube.managed_fields import fields_tree, managed_tree, merge_trees, prune
from grove_pipelines.kube.manifests import PART_OF, PCS_API_VERSION, namespaces_of
from grove_pipelines.kube.preflight import Report, check_cluster, namespace_exists

__all__ = ["DiffResult", "diff"]

_KEEP = ("apiVersion", "kind")


class DiffResult(BaseModel):
    """The unified diff (empty when nothing would change) and notes on how deploy would carry it out."""

    text: str = ""
    notes: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.text)


def _view(obj: dict[str, Any] | None, tree: dict[str, Any]) -> str:
    if obj is None:
        return ""
    meta = obj.get("metadata") or {}
    out = {k: obj[k] for k in _KEEP if k in obj}
    pruned = prune(obj, tree)
    out["metadata"] = {k: meta[k] for k in ("name", "namespace") if k in meta} | (
        pruned.get("metadata") or {}
    )
    out |= {k: v for k, v in pruned.items() if k not in (*_KEEP, "metadata")}
    return yamlio.dump(out)


def _one(
    client: KubeClient, obj: dict[str, Any], *, force: bool, namespace_exists: bool, notes: list[str]
) -> str:
    meta = obj["metadata"]
    live = (
        client.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if namespace_exists
        else None
    )
    predicted = obj
    if obj["kind"] == "PodCliqueSet" and live is not None and (changes := frozen_changes(live, obj)):
        notes.append(
            f"PodCliqueSet {meta['name']} changes what Grove freezes ({'; '.join(changes)}): "
            "deploy refuses it without --recreate"
        )
    elif namespace_exists:
        predicted = client.apply(obj, force=force, dry_run=True)
    tree = merge_trees(
        managed_tree(live, FIELD_MANAGER), managed_tree(predicted, FIELD_MANAGER), fields_tree(obj)
    )
    label = f"{obj['kind'].lower()}/{meta['name']}"
    lines = difflib.unified_diff(
        _view(live, tree).splitlines(keepends=True),
        _view(predicted, tree).splitlines(keepends=True),
        fromfile=f"live/{label}",
        tofile=f"applied/{label}",
    )
    return "".join(lines)


def diff(
    client: KubeClient,
    manifests: list[dict[str, Any]],
    *,
    force_conflicts: bool = False,
    report: Report = lambda line: None,
) -> DiffResult:
    """Compare ``manifests`` (prepared) with the live objects; nothing is written."""
    check_cluster(client, manifests, report)
    missing = {ns for ns in namespaces_of(manifests) if not namespace_exists(client, ns)}
    notes = [f"namespace {ns} does not exist yet (deploy --create-namespace)" for ns in sorted(missing)]
    texts = [
        _one(
            client,
            m,
            force=force_conflicts,
            notes=notes,
            namespace_exists=(m.get("metadata") or {}).get("namespace") not in missing,
        )
        for m in manifests
    ]
    for m in manifests:
        ns = m["metadata"].get("namespace")
        if m["kind"] != "PodCliqueSet" or ns in missing:
            continue
        live = client.get(PCS_API_VERSION, "PodCliqueSet", m["metadata"]["name"], ns)
        if live is None:
            continue
        children = [
            {**item, "kind": kind}
            for kind in ("PodClique", "PodCliqueScalingGroup")
            for item in client.list(
                PCS_API_VERSION, kind, ns, label_selector=f"{PART_OF}={m['metadata']['name']}"
            )["items"]
        ]
        notes += [
            f"{t.kind.lower()}/{t.name} would be scaled {t.current} -> {t.replicas} through /scale"
            for t in scale_targets(live, m, children)
        ]
    return DiffResult(text="".join(texts), notes=notes)
