"""``deploy``: server-side apply of a pipeline's objects, aware of Grove's rules.

Order of work: pre-flight (cluster, Grove, namespace, schema of the served CRD); Grove's admission rules
under the operator configuration and topology bindings the cluster serves (``grove_cluster``); the
frozen-composition check (Grove's update rules) against the live PodCliqueSet (refuse, or delete and create with ``recreate``); apply every object
as field manager ``grove-pipelines`` (conflicts are errors unless ``force_conflicts``); then carry
template replica changes to the generated PodCliques / scaling groups through ``/scale``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, cast

from pydantic import BaseModel

from grove_pipelines.errors import ManifestRejectedError
from grove_pipelines.grove.validate import check_object, load_crds
from grove_pipelines.kube.client import KubeClient
from grove_pipelines.kube.errors import DeployCancelledError, FrozenCompositionError, UnmanagedPipelineError
from grove_pipelines.kube.frozen import frozen_changes, scale_targets
from grove_pipelines.kube.grove_cluster import live_grove_cluster
from grove_pipelines.kube.manifests import PART_OF, PCS_API_VERSION, is_managed, pcs_of
from grove_pipelines.kube.preflight import Report, check_cluster, ensure_namespaces
from grove_pipelines.kube.secrets import ensure_auth_secret
from grove_pipelines.kube.wait import wait_gone

__all__ = ["Applied", "DeployResult", "deploy"]

Action = Literal["created", "configured", "unchanged", "scaled", "deleted"]


class Applied(BaseModel):
    """One line of what deploy did to one object (kubectl's ``podcliqueset.grove.io/rag configured``)."""

    kind: str
    name: str
    namespace: str | None = None
    action: Action
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.kind.lower()}/{self.name} {self.action}"
        return text + (f" {self.detail}" if self.detail else "")


class DeployResult(BaseModel):
    """Everything deploy changed, in order; ``dry_run`` when nothing was persisted."""

    name: str
    namespace: str
    dry_run: bool = False
    objects: list[Applied] = []

    def lines(self) -> list[str]:
        suffix = " (server dry run)" if self.dry_run else ""
        return [f"{obj}{suffix}" for obj in self.objects]


def _apply_one(client: KubeClient, obj: dict[str, Any], *, force: bool, dry_run: bool) -> Applied:
    meta = obj["metadata"]
    before = client.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
    after = client.apply(obj, force=force, dry_run=dry_run)
    if before is None:
        action: Action = "created"
    elif _comparable(before) == _comparable(after):
        action = "unchanged"
    else:
        action = "configured"
    return Applied(kind=obj["kind"], name=meta["name"], namespace=meta.get("namespace"), action=action)


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k not in ("resourceVersion", "managedFields", "generation")
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def _recreate(
    client: KubeClient,
    live: dict[str, Any],
    confirm: Callable[[str], bool] | None,
    changes: list[str],
    timeout: float,
    report: Report,
) -> None:
    name, ns = live["metadata"]["name"], live["metadata"]["namespace"]
    question = (
        f"PodCliqueSet {ns}/{name} must be deleted and created again ({'; '.join(changes)}); "
        "its pods will restart. Continue?"
    )
    if confirm is not None and not confirm(question):
        raise DeployCancelledError(f"deploy cancelled: PodCliqueSet {ns}/{name} was left as it is")
    client.delete(PCS_API_VERSION, "PodCliqueSet", name, ns, propagation="Foreground")
    report(f"podcliqueset/{name} deleted, waiting for it to be gone before creating it again")
    wait_gone(client, name=name, namespace=ns, timeout=timeout, report=report)


def deploy(
    client: KubeClient,
    manifests: list[dict[str, Any]],
    *,
    force_conflicts: bool = False,
    recreate: bool = False,
    confirm: Callable[[str], bool] | None = None,
    create_namespace: bool = False,
    dry_run: bool = False,
    timeout: float = 300.0,
    report: Report = lambda line: None,
) -> DeployResult:
    """Apply ``manifests`` (prepared: namespaced, labelled, ordered) to the cluster.

    ``confirm`` is asked before ``recreate`` deletes anything (None: do not ask); ``dry_run`` sends
    every write with ``dryRun=All`` (the server validates and answers, and persists nothing).
    Raises ``FrozenCompositionError`` when the live set needs a recreate that was not asked for.
    """
    pcs = pcs_of(manifests)
    name, ns = pcs["metadata"]["name"], pcs["metadata"]["namespace"]
    result = DeployResult(name=name, namespace=ns, dry_run=dry_run)
    check_cluster(client, manifests, report)
    for created in ensure_namespaces(client, manifests, create=create_namespace, dry_run=dry_run):
        result.objects.append(Applied(kind="Namespace", name=created, action="created"))
    grove = live_grove_cluster(client)
    admitted = check_object(pcs, load_crds(), strict=True, defaults=False, cluster=grove)
    if admitted.problems:  # compiled for a default install; this operator is configured otherwise
        raise ManifestRejectedError(admitted.subject, admitted.problems)
    live = client.get(PCS_API_VERSION, "PodCliqueSet", name, ns)
    if live is not None and (changes := frozen_changes(live, pcs, cluster=grove)):
        if not is_managed(live):
            raise UnmanagedPipelineError(name, ns, "recreate")
        if not recreate:
            raise FrozenCompositionError(name, ns, changes)
        if dry_run:
            report(
                f"note: --recreate would delete and create PodCliqueSet {ns}/{name} ({'; '.join(changes)})"
            )
        else:
            _recreate(client, live, confirm, changes, timeout, report)
            result.objects.append(Applied(kind="PodCliqueSet", name=name, namespace=ns, action="deleted"))
            live = None
    children: list[dict[str, Any]] = []
    if live is not None:
        for kind in ("PodClique", "PodCliqueScalingGroup"):
            items = client.list(PCS_API_VERSION, kind, ns, label_selector=f"{PART_OF}={name}")["items"]
            children += [{**item, "kind": kind} for item in items]
    secret = ensure_auth_secret(client, pcs, dry_run=dry_run)
    if secret is not None:
        secret_name, action = secret
        detail = (
            "(random api-keys / stage-token; read with kubectl get secret)" if action != "unchanged" else ""
        )
        result.objects.append(
            Applied(kind="Secret", name=secret_name, namespace=ns, action=cast(Action, action), detail=detail)
        )
    for obj in manifests:
        result.objects.append(_apply_one(client, obj, force=force_conflicts, dry_run=dry_run))
    for target in scale_targets(live, pcs, children) if live is not None else []:
        client.scale(PCS_API_VERSION, target.kind, target.name, ns, target.replicas, dry_run=dry_run)
        result.objects.append(
            Applied(
                kind=target.kind,
                name=target.name,
                namespace=ns,
                action="scaled",
                detail=f"{target.current} -> {target.replicas}",
            )
        )
    return result
